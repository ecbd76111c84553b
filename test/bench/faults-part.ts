// `bench faults`: the fault-recovery benchmark (test/bench/faults.ts, benchFaults)
// as a report section. Loaded at run time so that the rest of the suite builds
// and runs in a tree that does not have it.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { DependencyError } from '../../shared/errors.js';
import type { BenchContext, PartOutput } from './context.js';
import { tableOfObjects } from './markdown.js';

type BenchFaults = (opts: { quick: boolean; onProgress: (line: string) => void }) => Promise<unknown>;

/** Thrown when this build has no faults benchmark; the suite reports it and goes on. */
export class PartUnavailableError extends DependencyError {}

export async function runFaultsPart(ctx: BenchContext): Promise<PartOutput> {
  const file = path.join(__dirname, 'faults.js');
  if (!existsSync(file)) throw new PartUnavailableError('faults: this build has no fault benchmark (test/bench/faults.ts is missing), so no fault-recovery figures were measured');
  // The build is CommonJS: load the compiled file the way it was emitted.
  const mod = createRequire(__filename)(file) as { benchFaults?: BenchFaults; faultsTable?: (rows: unknown[]) => string };
  if (typeof mod.benchFaults !== 'function') throw new PartUnavailableError('faults: test/bench/faults.ts does not export benchFaults');
  const out = await mod.benchFaults({ quick: ctx.quick, onProgress: (l) => ctx.say(`[faults] ${l}`) });
  const rows = rowsOf(out);
  if (rows === null) return { results: out, markdown: `\`\`\`json\n${JSON.stringify(out, null, 2)}\n\`\`\``, plots: [] };
  // The fault benchmark's own table when it has one: its author knows its columns best.
  const md = typeof mod.faultsTable === 'function' ? mod.faultsTable(rows) : tableOfObjects(rows);
  const ok = rows.filter((r) => r.ok === true).length;
  const skipped = rows.filter((r) => typeof r.note === 'string' && r.note.startsWith('skipped')).length;
  const summary = `${ok} of ${rows.length} scenarios recovered with every invariant held${skipped > 0 ? ` (${skipped} skipped on this machine)` : ''}.`;
  return { results: out, markdown: `${ctx.quick ? '**Quick run.** ' : ''}${summary}\n\n${md}`, plots: [] };
}

function rowsOf(out: unknown): Array<Record<string, unknown>> | null {
  const isRows = (x: unknown): x is Array<Record<string, unknown>> => Array.isArray(x) && x.every((r) => typeof r === 'object' && r !== null && !Array.isArray(r));
  if (isRows(out)) return out;
  if (typeof out === 'object' && out !== null && isRows((out as { rows?: unknown }).rows)) return (out as { rows: Array<Record<string, unknown>> }).rows;
  return null;
}
