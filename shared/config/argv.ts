// argv -> { command, raw }. Values stay strings here; compileOptions validates them.
import { ConfigError } from '../errors.js';
import { OPTIONS, type Command } from './spec.js';

export const COMMANDS: readonly Command[] = ['train', 'coordinator', 'worker', 'eval', 'sample', 'bench'];

export interface ParsedArgv {
  command: Command;
  raw: Record<string, string | boolean>;
  positionals: string[];
  help: boolean;
}

export function parseArgv(argv: readonly string[]): ParsedArgv {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    return { command: 'train', raw: {}, positionals: [], help: true };
  }
  if (!(COMMANDS as readonly string[]).includes(first)) {
    throw new ConfigError(`unknown command '${first}': expected one of ${COMMANDS.join(', ')}`, { details: { field: 'command', allowed: COMMANDS } });
  }
  const command = first as Command;
  const raw: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] as string;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    const spec = OPTIONS.find((o) => o.flag === name);
    if (eq >= 0) {
      raw[name] = arg.slice(eq + 1);
      continue;
    }
    const next = rest[i + 1];
    const takesValue = spec === undefined ? next !== undefined && !next.startsWith('--') : spec.kind !== 'bool' && spec.kind !== 'bool-or-path';
    if (spec?.kind === 'bool-or-path') {
      if (next !== undefined && !next.startsWith('--')) {
        raw[name] = next;
        i++;
      } else raw[name] = true;
      continue;
    }
    if (!takesValue) {
      raw[name] = true;
      continue;
    }
    if (next === undefined || next.startsWith('--')) {
      throw new ConfigError(`--${name}: missing value`, { details: { field: name } });
    }
    raw[name] = next;
    i++;
  }
  if (positionals.length > 0) {
    throw new ConfigError(`unexpected argument '${positionals[0]}' for '${command}': options are written --name value`, { details: { field: positionals[0] } });
  }
  return { command, raw, positionals, help };
}
