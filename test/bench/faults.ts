// `bench faults`: every fault scenario of the fault suite (test/fault/scenarios.ts)
// run once with real processes, one row each: what was injected, whether the run
// recovered, images lost (must be 0), seconds from each fault to the next applied
// step, and the relative difference of the final weights to the uninterrupted
// in-process run with the same seed (must be <= 1e-5).
import { SCENARIOS, assertInvariants, type ScenarioResult } from '../fault/scenarios.js';

export interface FaultBenchRow {
  scenario: string;
  /** The faults injected, in words. */
  faults: string;
  injected: number;
  /** Faults after which the run applied a step again. */
  recovered: number;
  /** Images not used exactly once in their epoch (checked from the coordinator's coverage records). */
  imagesLost: number;
  /** Worst seconds from a fault to the next applied step (includes heartbeat timeouts and pauses). */
  recoverSeconds: number;
  /** ||reference - final|| / ||reference|| against the in-process run with the same seed. */
  relDiff: number;
  bitwise: boolean;
  steps: number;
  wallSeconds: number;
  /** The run passed every invariant of the fault suite. */
  ok: boolean;
  /** Why not, or why the scenario could not run here. */
  note: string;
}

function recomputedNote(r: ScenarioResult): string {
  const rec = r.facts.recomputed as { step: number; by: string } | undefined;
  if (rec === undefined) return '';
  return `weights after step ${rec.step} (a killed worker's part recomputed by ${rec.by}): ${r.facts.recomputedStepBitwise === true ? 'bitwise equal to' : `rel. diff ${String(r.facts.recomputedStepRelDiff)} to`} a fault-free distributed run`;
}

function rowOf(r: ScenarioResult, error: string | null): FaultBenchRow {
  const kinds = new Map<string, number>();
  for (const f of r.faults) kinds.set(f.kind, (kinds.get(f.kind) ?? 0) + 1);
  const finite = r.recoverSeconds.filter((s) => Number.isFinite(s));
  return {
    scenario: r.name,
    faults: [...kinds].map(([k, n]) => (n > 1 ? `${n} x ${k}` : k)).join('; '),
    injected: r.faults.length,
    recovered: finite.length,
    imagesLost: r.coverage.imagesLost,
    recoverSeconds: finite.length > 0 ? Math.max(...finite) : Number.NaN,
    relDiff: r.relDiff,
    bitwise: r.bitwise,
    steps: r.steps,
    wallSeconds: r.wallSeconds,
    ok: error === null,
    note: error ?? recomputedNote(r),
  };
}

export async function benchFaults(opts: { quick: boolean; onProgress?: (s: string) => void }): Promise<FaultBenchRow[]> {
  const rows: FaultBenchRow[] = [];
  for (const [i, s] of SCENARIOS.entries()) {
    opts.onProgress?.(`${s.name} (${i + 1}/${SCENARIOS.length})`);
    const t0 = Date.now();
    try {
      const out = await s.run({ seed: 1000 + i, quick: opts.quick, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
      if ('skipped' in out && out.skipped !== undefined) {
        rows.push({ scenario: s.name, faults: '', injected: 0, recovered: 0, imagesLost: Number.NaN, recoverSeconds: Number.NaN, relDiff: Number.NaN, bitwise: false, steps: 0, wallSeconds: (Date.now() - t0) / 1000, ok: false, note: `skipped: ${out.skipped}` });
        continue;
      }
      const r = out as ScenarioResult;
      let error: string | null = null;
      try {
        assertInvariants(r, { maxWallSeconds: 180 });
      } catch (err) {
        error = err instanceof Error ? err.message.split('\n')[0] ?? err.message : String(err);
      }
      rows.push(rowOf(r, error));
    } catch (err) {
      // A scenario that throws broke an invariant mid-run (coverage, a wait that timed out): a failed row, not a failed bench.
      const msg = err instanceof Error ? err.message.split('\n')[0] ?? err.message : String(err);
      rows.push({ scenario: s.name, faults: '', injected: 0, recovered: 0, imagesLost: Number.NaN, recoverSeconds: Number.NaN, relDiff: Number.NaN, bitwise: false, steps: 0, wallSeconds: (Date.now() - t0) / 1000, ok: false, note: msg });
    }
  }
  return rows;
}

/** The rows as a markdown table. */
export function faultsTable(rows: readonly FaultBenchRow[]): string {
  const num = (x: number, d: number): string => (Number.isFinite(x) ? x.toFixed(d) : '–');
  const sci = (x: number): string => (Number.isFinite(x) ? x.toExponential(1) : '–');
  const out = ['| scenario | faults injected | injected | recovered | images lost | time to recover (s) | rel. weight diff to clean run | bitwise | steps | wall (s) | ok |', '| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |'];
  for (const r of rows) {
    const ok = r.ok ? (r.note === '' ? 'yes' : `yes (${r.note})`) : `no: ${r.note.replace(/\|/g, '\\|')}`;
    out.push(`| ${r.scenario} | ${r.faults} | ${r.injected} | ${r.recovered} | ${Number.isFinite(r.imagesLost) ? r.imagesLost : '–'} | ${num(r.recoverSeconds, 2)} | ${sci(r.relDiff)} | ${r.bitwise ? 'yes' : 'no'} | ${r.steps} | ${num(r.wallSeconds, 1)} | ${ok} |`);
  }
  return out.join('\n');
}
