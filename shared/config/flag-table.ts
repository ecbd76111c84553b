// The README's flag table, generated from the option spec (`lockstep --help --markdown`).
import { OPTIONS, envName } from './spec.js';

export function flagTableMarkdown(): string {
  const rows = OPTIONS.map((o) => {
    const values = o.kind === 'enum' ? (o.values ?? []).join(' \\| ') : o.kind === 'bool' ? '' : o.kind === 'bool-or-path' ? '[PATH]' : o.kind.toUpperCase();
    const def = o.defaultText ?? (o.default === undefined ? '' : String(o.default));
    return `| \`--${o.flag}\` | ${values} | ${def} | \`${envName(o.flag)}\` | ${o.commands.join(', ')} | ${o.description} |`;
  });
  return ['| flag | values | default | environment | commands | meaning |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

export function helpText(command?: string): string {
  const opts = command === undefined ? OPTIONS : OPTIONS.filter((o) => (o.commands as readonly string[]).includes(command));
  const lines = opts.map((o) => {
    const v = o.kind === 'enum' ? ` ${(o.values ?? []).join('|')}` : o.kind === 'bool' ? '' : o.kind === 'bool-or-path' ? ' [PATH]' : ` ${o.kind === 'string' ? 'VALUE' : 'N'}`;
    const def = o.defaultText ?? (o.default === undefined ? '' : String(o.default));
    return `  --${o.flag}${v}`.padEnd(44) + o.description + (def !== '' ? ` (default ${def})` : '');
  });
  return [`usage: lockstep <train|coordinator|worker|eval|sample|bench> [options]`, '', ...lines].join('\n');
}
