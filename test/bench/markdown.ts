// Markdown tables and number formatting for results.md and BENCHMARKS.md.

export type Cell = string | number | boolean | null | undefined;

export function fmt(x: Cell, digits = 2): string {
  if (x === null || x === undefined) return '–';
  if (typeof x === 'boolean') return x ? 'yes' : 'no';
  if (typeof x === 'string') return x;
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x)) return String(x);
  if (x !== 0 && Math.abs(x) < 10 ** -digits) return x.toExponential(1);
  return x.toFixed(digits);
}

export function pct(x: number, digits = 1): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(digits)}%` : String(x);
}

function escape(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function table(header: string[], rows: Cell[][]): string {
  const out = [`| ${header.map(escape).join(' | ')} |`, `|${header.map(() => ' --- ').join('|')}|`];
  for (const r of rows) out.push(`| ${r.map((c) => escape(typeof c === 'string' ? c : fmt(c))).join(' | ')} |`);
  return out.join('\n');
}

/** A table from an array of flat objects (keys of the first row as columns). */
export function tableOfObjects(rows: ReadonlyArray<Record<string, unknown>>): string {
  if (rows.length === 0) return '_(no rows)_';
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return table(
    keys,
    rows.map((r) => keys.map((k) => {
      const v = r[k];
      return typeof v === 'object' && v !== null ? JSON.stringify(v) : (v as Cell);
    })),
  );
}

export function targetLine(t: Target): string {
  const b = t.floor ?? t.ceiling;
  const shown = t.text?.endsWith('%') === true && b !== undefined ? pct(b, 0) : String(b);
  const bound = t.floor !== undefined ? `>= ${shown}` : `<= ${shown}`;
  return `- ${t.met ? '**MET**' : '**MISSED**'} ${t.name}: ${t.text ?? fmt(t.value)} (target ${bound})`;
}

export interface Target {
  name: string;
  value: number;
  floor?: number;
  ceiling?: number;
  met: boolean;
  text?: string;
}

export function target(name: string, value: number, bound: { floor: number } | { ceiling: number }, text?: string): Target {
  const met = 'floor' in bound ? value >= bound.floor : value <= bound.ceiling;
  return { name, value, ...bound, met, ...(text === undefined ? {} : { text }) };
}
