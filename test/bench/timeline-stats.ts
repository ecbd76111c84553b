// Per-step figures from a coordinator's --timeline file (Chrome trace): the
// coordinator's phases (wait, aggregate, optimizer, broadcast) and each
// worker's compute and encode spans, tagged with the step. Steady state means
// the steps after the first `warmup` ones, so process start-up, joins and the
// first (JIT, kernel set-up) steps never count.
import { readFileSync } from 'node:fs';
import { DataError } from '../../shared/errors.js';
import type { TraceEvent } from '../../shared/timeline.js';

export interface StepTiming {
  step: number;
  startUs: number;
  endUs: number;
  seconds: number;
  images: number;
  /** The slowest part's compute (the critical path when parts run in parallel). */
  computeSeconds: number;
  /** Encode time of that slowest part. */
  encodeSeconds: number;
  aggregateSeconds: number;
  optimizerSeconds: number;
  broadcastSeconds: number;
  parts: number;
}

export interface Breakdown {
  /** Mean seconds per steady step. */
  stepSeconds: number;
  computeSeconds: number;
  encodeSeconds: number;
  aggregateSeconds: number;
  optimizerSeconds: number;
  broadcastSeconds: number;
  /** Step time not in any of the above: NATS transfer, decoding, weight receive, scheduling. */
  transportSeconds: number;
  /** Everything but the slowest worker's compute. */
  outsideComputeSeconds: number;
  outsideComputeShare: number;
}

export interface TimelineSummary {
  steps: number;
  warmup: number;
  steadySteps: number;
  steadyImages: number;
  /** From the start of the first steady step to the end of the last: gaps between steps (checkpoints) included. */
  steadySeconds: number;
  samplesPerSecond: number;
  breakdown: Breakdown;
  checkpointSeconds: number[];
  perStep: StepTiming[];
}

export function readTrace(file: string): TraceEvent[] {
  let parsed: { traceEvents?: TraceEvent[] };
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as { traceEvents?: TraceEvent[] };
  } catch (err) {
    throw new DataError(`timeline ${file}: cannot read or parse it`, { cause: err });
  }
  if (!Array.isArray(parsed.traceEvents)) throw new DataError(`timeline ${file}: no traceEvents array`);
  return parsed.traceEvents;
}

export function stepTimings(events: readonly TraceEvent[]): { steps: StepTiming[]; checkpointSeconds: number[] } {
  const coordTid = events.find((e) => e.ph === 'M' && e.name === 'thread_name' && (e.args as { name?: string } | undefined)?.name === 'coordinator')?.tid ?? 1;
  const byStep = new Map<number, { c: Map<string, TraceEvent>; compute: Map<number, TraceEvent[]>; encode: Map<number, TraceEvent[]> }>();
  const checkpointSeconds: number[] = [];
  for (const e of events) {
    if (e.ph !== 'X') continue;
    if (e.tid === coordTid && e.name === 'checkpoint') {
      checkpointSeconds.push((e.dur ?? 0) / 1e6);
      continue;
    }
    const args = e.args as { step?: number; part?: number } | undefined;
    if (typeof args?.step !== 'number') continue;
    let s = byStep.get(args.step);
    if (s === undefined) {
      s = { c: new Map(), compute: new Map(), encode: new Map() };
      byStep.set(args.step, s);
    }
    if (e.tid === coordTid) s.c.set(e.name, e);
    else if ((e.name === 'compute' || e.name === 'encode') && typeof args.part === 'number') {
      const m = e.name === 'compute' ? s.compute : s.encode;
      m.set(args.part, [...(m.get(args.part) ?? []), e]);
    }
  }
  const steps: StepTiming[] = [];
  for (const [step, s] of [...byStep.entries()].sort((a, b) => a[0] - b[0])) {
    const wait = s.c.get('wait');
    const bc = s.c.get('broadcast');
    if (wait === undefined || bc === undefined) continue;
    const startUs = wait.ts;
    const endUs = bc.ts + (bc.dur ?? 0);
    let images = 0;
    let compute = 0;
    let encode = 0;
    for (const [part, spans] of s.compute) {
      // A part computed twice (a backup copy) counts its images once; the first result is the one used.
      const first = spans[0] as TraceEvent;
      images += Number((first.args as { images?: number } | undefined)?.images ?? 0);
      const c = Math.min(...spans.map((x) => x.dur ?? 0)) / 1e6;
      if (c >= compute) {
        compute = c;
        encode = Math.min(...(s.encode.get(part) ?? []).map((x) => x.dur ?? 0), Infinity);
        encode = Number.isFinite(encode) ? encode / 1e6 : 0;
      }
    }
    steps.push({
      step,
      startUs,
      endUs,
      seconds: (endUs - startUs) / 1e6,
      images,
      computeSeconds: compute,
      encodeSeconds: encode,
      aggregateSeconds: (s.c.get('aggregate')?.dur ?? 0) / 1e6,
      optimizerSeconds: (s.c.get('optimizer')?.dur ?? 0) / 1e6,
      broadcastSeconds: (bc.dur ?? 0) / 1e6,
      parts: s.compute.size,
    });
  }
  return { steps, checkpointSeconds };
}

function mean(xs: number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function breakdownOf(steps: readonly StepTiming[]): Breakdown {
  const stepSeconds = mean(steps.map((s) => s.seconds));
  const computeSeconds = mean(steps.map((s) => s.computeSeconds));
  const encodeSeconds = mean(steps.map((s) => s.encodeSeconds));
  const aggregateSeconds = mean(steps.map((s) => s.aggregateSeconds));
  const optimizerSeconds = mean(steps.map((s) => s.optimizerSeconds));
  const broadcastSeconds = mean(steps.map((s) => s.broadcastSeconds));
  const outside = stepSeconds - computeSeconds;
  return {
    stepSeconds,
    computeSeconds,
    encodeSeconds,
    aggregateSeconds,
    optimizerSeconds,
    broadcastSeconds,
    transportSeconds: Math.max(0, outside - encodeSeconds - aggregateSeconds - optimizerSeconds - broadcastSeconds),
    outsideComputeSeconds: outside,
    outsideComputeShare: outside / stepSeconds,
  };
}

export function summarizeTimeline(file: string, warmup: number): TimelineSummary {
  const { steps, checkpointSeconds } = stepTimings(readTrace(file));
  if (steps.length === 0) throw new DataError(`timeline ${file}: no complete steps`);
  // Keep at least two steps when a run is shorter than its warm-up (tiny test runs).
  const w = Math.min(warmup, Math.max(0, steps.length - 2));
  const steady = steps.slice(w);
  const first = steady[0] as StepTiming;
  const last = steady[steady.length - 1] as StepTiming;
  const steadySeconds = (last.endUs - first.startUs) / 1e6;
  const steadyImages = steady.reduce((a, s) => a + s.images, 0);
  return {
    steps: steps.length,
    warmup: w,
    steadySteps: steady.length,
    steadyImages,
    steadySeconds,
    samplesPerSecond: steadyImages / steadySeconds,
    breakdown: breakdownOf(steady),
    checkpointSeconds,
    perStep: steps,
  };
}

/**
 * Steady-state rate of the in-process trainer from its progress log lines
 * (pino: time in ms, step = steps done). The first line at or after `warmup`
 * steps and the last line bound the window; null when there are fewer than two.
 */
export function rateFromProgressLogs(logs: ReadonlyArray<Record<string, unknown>>, warmup: number, batchSize: number): { samplesPerSecond: number; fromStep: number; toStep: number; seconds: number } | null {
  const pts = logs
    .filter((l) => l.msg === 'progress' && typeof l.step === 'number' && typeof l.time === 'number')
    .map((l) => ({ step: l.step as number, time: l.time as number }));
  if (pts.length < 2) return null;
  const last = pts[pts.length - 1] as { step: number; time: number };
  const first = pts.find((p) => p.step >= warmup && p.step < last.step) ?? (pts[0] as { step: number; time: number });
  if (last.step <= first.step || last.time <= first.time) return null;
  const seconds = (last.time - first.time) / 1000;
  return { samplesPerSecond: ((last.step - first.step) * batchSize) / seconds, fromStep: first.step, toStep: last.step, seconds };
}
