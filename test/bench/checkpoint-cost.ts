// `bench checkpoint` (issue 4 item 6): how long a checkpoint takes to write,
// and what `--checkpoint-every 50` costs in training time against no periodic
// checkpoints, for the default model (vae, conv, 64 filters, batch 64, 2 workers).
import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { TrainResult } from '../../shared/train/result.js';
import { runLockstep } from './child.js';
import type { BenchContext, PartOutput } from './context.js';
import { fmt, pct, table, target, targetLine, type Target } from './markdown.js';
import { summarizeTimeline, type TimelineSummary } from './timeline-stats.js';

export interface CheckpointConfig {
  model: 'vae';
  filters: number;
  batchSize: number;
  workers: number;
  steps: number;
  every: number;
  warmupSteps: number;
  trainLimit: number;
}

export function checkpointConfig(quick: boolean): CheckpointConfig {
  return quick
    ? { model: 'vae', filters: 4, batchSize: 16, workers: 2, steps: 6, every: 2, warmupSteps: 1, trainLimit: 256 }
    : { model: 'vae', filters: 64, batchSize: 64, workers: 2, steps: 110, every: 50, warmupSteps: 5, trainLimit: 8192 };
}

export interface CheckpointRun {
  checkpointEvery: number;
  steps: number;
  /** Steady window (after warm-up, checkpoint pauses included), seconds. */
  windowSeconds: number;
  meanStepSeconds: number;
  samplesPerSecond: number;
  /** Every checkpoint write the coordinator timed, in order (the last one is the end-of-run checkpoint). */
  checkpointSeconds: number[];
  /** Mean step over the steady steps before the first periodic checkpoint (the same steps in both runs): the control. */
  meanStepBeforeFirstCheckpointSeconds: number;
}

export interface CheckpointResults {
  quick: boolean;
  config: CheckpointConfig;
  modelParams: number;
  checkpointBytes: number;
  runs: [CheckpointRun, CheckpointRun];
  writeSeconds: { mean: number; max: number; count: number };
  /** Mean write time over `every` steady steps: the cost of the schedule. */
  scheduleCost: number;
  /** (window with - window without) / window without: the same, measured as a difference of two runs (noisier). */
  abCost: number;
  /** abCost with the run-to-run difference of the steps before any periodic checkpoint divided out. */
  abCostControlled: number;
  targets: Target[];
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return n;
}

function runOf(every: number, s: TimelineSummary, firstCheckpointStep: number): CheckpointRun {
  const before = s.perStep.slice(s.warmup, Math.max(s.warmup + 1, firstCheckpointStep));
  return {
    meanStepBeforeFirstCheckpointSeconds: before.reduce((a, x) => a + x.seconds, 0) / before.length,
    checkpointEvery: every,
    steps: s.steps,
    windowSeconds: s.steadySeconds,
    meanStepSeconds: s.breakdown.stepSeconds,
    samplesPerSecond: s.samplesPerSecond,
    checkpointSeconds: s.checkpointSeconds,
  };
}

export async function runCheckpointCost(ctx: BenchContext): Promise<PartOutput> {
  const c = checkpointConfig(ctx.quick);
  const url = await ctx.natsUrl();
  const timeoutMs = ctx.quick ? 120_000 : 1_800_000;
  const summaries: TimelineSummary[] = [];
  let last: TrainResult | null = null;
  let modelParams = 0;
  for (const every of [0, c.every]) {
    const tl = ctx.scratch(`checkpoint-${every}.timeline.json`);
    const dir = ctx.scratch(`checkpoint-${every}`);
    ctx.say(`[checkpoint] ${c.model} conv ${c.filters} filters, ${c.workers} workers, ${c.steps} steps, --checkpoint-every ${every}`);
    const r = await runLockstep<TrainResult>([
      'train', '--model', c.model, '--arch', 'conv', '--filters', String(c.filters), '--batch-size', String(c.batchSize), '--workers', String(c.workers),
      '--steps', String(c.steps), '--train-limit', String(c.trainLimit), '--seed', '42', '--checkpoint-every', String(every), '--checkpoint-dir', dir,
      '--keep-checkpoints', '3', '--nats', url, '--job', ctx.job(`ckpt-${every}`), '--timeline', tl, '--json', '--log-level', 'info', '--metrics-port', '0', '--dashboard-port', '0',
    ], { label: `[checkpoint] every ${every}`, timeoutMs, onProgress: ctx.say });
    summaries.push(summarizeTimeline(tl, c.warmupSteps));
    last = r.json;
  }
  const checkpointBytes = last?.checkpoint === null || last === null ? 0 : dirBytes(last.checkpoint);
  // Model size from the checkpoint's weights file (4 bytes per parameter).
  if (last?.checkpoint !== null && last !== null) modelParams = statSync(path.join(last.checkpoint, 'state', 'weights.f32')).size / 4;
  const none = runOf(0, summaries[0] as TimelineSummary, c.every);
  const every = runOf(c.every, summaries[1] as TimelineSummary, c.every);
  const writes = every.checkpointSeconds;
  const mean = writes.reduce((a, b) => a + b, 0) / Math.max(1, writes.length);
  const scheduleCost = mean / (c.every * none.meanStepSeconds);
  const abCost = (every.windowSeconds - none.windowSeconds) / none.windowSeconds;
  const abCostControlled = every.windowSeconds / none.windowSeconds / (every.meanStepBeforeFirstCheckpointSeconds / none.meanStepBeforeFirstCheckpointSeconds) - 1;
  const results: CheckpointResults = {
    quick: ctx.quick,
    config: c,
    modelParams,
    checkpointBytes,
    runs: [none, every],
    writeSeconds: { mean, max: Math.max(...writes), count: writes.length },
    scheduleCost,
    abCost,
    abCostControlled,
    targets: [target(`checkpoint cost at --checkpoint-every ${c.every} (write time / training time)`, scheduleCost, { ceiling: 0.05 }, pct(scheduleCost, 2))],
  };
  ctx.say(`[checkpoint] write ${(mean * 1000).toFixed(0)} ms mean; cost of every ${c.every}: ${pct(scheduleCost, 2)} (A/B ${pct(abCost, 1)})`);
  return { results, markdown: checkpointMarkdown(results), plots: [] };
}

export function checkpointMarkdown(r: CheckpointResults): string {
  const c = r.config;
  const out: string[] = [];
  out.push(`Default model: ${c.model}, conv, ${c.filters} filters (${r.modelParams.toLocaleString('en-US')} parameters), batch ${c.batchSize}, ${c.workers} workers, ${c.steps} steps; one checkpoint = ${(r.checkpointBytes / 1e6).toFixed(2)} MB on disk (model.json + weights, decoder, Adam state, manifest).${r.quick ? ' **Quick run: tiny model.**' : ''}`);
  out.push('');
  out.push(table(
    ['--checkpoint-every', 'steady steps window (s)', 'mean step ms', `mean step ms before step ${c.every} (control)`, 'samples/s', 'checkpoint writes (ms)'],
    r.runs.map((x) => [x.checkpointEvery, fmt(x.windowSeconds, 2), fmt(x.meanStepSeconds * 1000, 1), fmt(x.meanStepBeforeFirstCheckpointSeconds * 1000, 1), fmt(x.samplesPerSecond, 1), x.checkpointSeconds.map((s) => (s * 1000).toFixed(0)).join(', ')]),
  ));
  out.push('');
  out.push(`Checkpoint write: **${fmt(r.writeSeconds.mean * 1000, 0)} ms** mean, ${fmt(r.writeSeconds.max * 1000, 0)} ms max over ${r.writeSeconds.count} writes (temp dir, fsync, rename, dir fsync; the step loop waits for it).`);
  out.push('');
  out.push(`Cost of \`--checkpoint-every ${c.every}\`: mean write / (${c.every} x mean step) = **${pct(r.scheduleCost, 2)}** of training time. The same measured as the difference of the two runs' windows: ${pct(r.abCost, 1)}; with the runs' difference before any periodic checkpoint (same steps, no checkpoint in either) divided out: ${pct(r.abCostControlled, 1)}. The two-run figures carry the run-to-run noise of a shared machine; the write-time figure does not.`);
  out.push('');
  for (const t of r.targets) out.push(targetLine(t));
  return out.join('\n');
}
