// `bench scaling` (issue 3 item 6, issue 8 item 3): in one run on this
// machine, the same conv ae and global batch trained by the in-process trainer,
// then by 1 and 2 workers over a real nats-server; steady-state samples/s from
// per-step timings, the share of each step spent outside worker compute, the
// raw NATS throughput for a payload of the model's size through the same
// server, and the simulated aggregation cost for 8, 32 and 128 workers.
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { selectBackend } from '../../shared/compute/backend.js';
import { createModel } from '../../shared/models/factory.js';
import type { TrainResult } from '../../shared/train/result.js';
import { measurePerByteCosts, simulateAggregation, type PerByteCosts, type Simulation } from './aggregation.js';
import { runLockstep } from './child.js';
import type { BenchContext, PartOutput } from './context.js';
import { fmt, pct, table, target, targetLine, type Target } from './markdown.js';
import { measureNatsThroughput, type NatsThroughput } from './nats-throughput.js';
import { writePlot } from './plots.js';
import { rateFromProgressLogs, summarizeTimeline, type Breakdown } from './timeline-stats.js';

export interface ScalingConfig {
  model: 'ae';
  filters: number;
  batchSize: number;
  steps: number;
  warmupSteps: number;
  trainLimit: number;
  natsSeconds: number;
  costRepeats: number;
  simulatedWorkers: number[];
  simulatedAggregators: number[];
}

export function scalingConfig(quick: boolean): ScalingConfig {
  return quick
    ? { model: 'ae', filters: 4, batchSize: 16, steps: 6, warmupSteps: 2, trainLimit: 256, natsSeconds: 0.3, costRepeats: 2, simulatedWorkers: [8, 32, 128], simulatedAggregators: [1, 2, 4, 8] }
    : { model: 'ae', filters: 64, batchSize: 64, steps: 80, warmupSteps: 5, trainLimit: 8192, natsSeconds: 3, costRepeats: 9, simulatedWorkers: [8, 32, 128], simulatedAggregators: [1, 2, 4, 8, 16] };
}

export interface ScalingRun {
  label: string;
  workers: number;
  /** Steady state: steps after the warm-up ones. */
  samplesPerSecond: number;
  /** The trainer's own figure: all steps over its wall time (first steps and, for workers, the end-of-run checkpoint included). */
  samplesPerSecondWhole: number;
  ratioToInProcess: number;
  steadySteps: number;
  steadySeconds: number;
  /** null for the in-process trainer (no phases to separate). */
  breakdown: Breakdown | null;
  /** Gradient bytes the coordinator received per step. */
  gradientBytesPerStep: number;
  finalLoss: number;
  processSeconds: number;
}

export interface ScalingResults {
  quick: boolean;
  config: ScalingConfig;
  modelParams: number;
  modelBytes: number;
  nats: NatsThroughput;
  runs: ScalingRun[];
  twoVsOneWorker: number;
  /** max over steps of |loss_N - loss_inprocess| / |loss_inprocess|: the runs did the same math. */
  maxRelativeLossDifference: number;
  gradientTraffic: { bytesPerStep: number; mbPerSecondAt2Workers: number; shareOfNatsThroughput: number };
  costs: PerByteCosts;
  simulation: Simulation;
  targets: Target[];
}

function trainArgs(c: ScalingConfig, dir: string): string[] {
  return [
    'train', '--model', c.model, '--arch', 'conv', '--filters', String(c.filters), '--batch-size', String(c.batchSize), '--steps', String(c.steps),
    '--train-limit', String(c.trainLimit), '--seed', '42', '--checkpoint-every', '0', '--checkpoint-dir', dir, '--json', '--log-level', 'info',
    '--metrics-port', '0', '--dashboard-port', '0',
  ];
}

function maxRelDiff(a: readonly number[], b: readonly number[]): number {
  let m = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)) / Math.max(1e-30, Math.abs(a[i] as number)));
  return a.length === b.length ? m : Infinity;
}

export async function runScaling(ctx: BenchContext): Promise<PartOutput> {
  const c = scalingConfig(ctx.quick);
  await selectBackend({ backend: 'auto' });
  const probe = createModel({ kind: 'ae', arch: 'conv', latentDim: 16, filters: c.filters, hiddenUnits: 500, seed: 42 });
  const modelParams = probe.numParams;
  probe.dispose();
  const modelBytes = modelParams * 4;
  const url = await ctx.natsUrl();

  ctx.say(`[scaling] NATS throughput for ${(modelBytes / 1e6).toFixed(3)} MB payloads through ${url}`);
  const nats = await measureNatsThroughput(url, modelBytes, { seconds: c.natsSeconds, latencyRounds: ctx.quick ? 5 : 30 });
  ctx.say(`[scaling] NATS: ${nats.mbPerSecond.toFixed(0)} MB/s, ${nats.payloadsPerSecond.toFixed(0)} payloads/s, latency ${nats.latencyMsMedian.toFixed(2)} ms`);

  const costs = measurePerByteCosts(modelParams, { repeats: c.costRepeats, maxPayload: nats.maxPayload });
  const timeoutMs = ctx.quick ? 120_000 : 1_800_000;

  // In-process reference: a child process, as a user runs it.
  ctx.say(`[scaling] in-process trainer: conv ae, ${c.filters} filters, batch ${c.batchSize}, ${c.steps} steps`);
  const ip = await runLockstep<TrainResult>([...trainArgs(c, ctx.scratch('scaling-0')), '--workers', '0'], { label: '[scaling] in-process', timeoutMs, onProgress: ctx.say });
  const ipRate = rateFromProgressLogs(ip.logs, c.warmupSteps, c.batchSize);
  const ipSps = ipRate?.samplesPerSecond ?? ip.json.samplesPerSecond;
  const runs: ScalingRun[] = [
    {
      label: 'in-process',
      workers: 0,
      samplesPerSecond: ipSps,
      samplesPerSecondWhole: ip.json.samplesPerSecond,
      ratioToInProcess: 1,
      steadySteps: ipRate === null ? ip.json.steps : ipRate.toStep - ipRate.fromStep,
      steadySeconds: ipRate?.seconds ?? ip.json.wallSeconds,
      breakdown: null,
      gradientBytesPerStep: 0,
      finalLoss: ip.json.finalLoss.total,
      processSeconds: ip.seconds,
    },
  ];
  ctx.say(`[scaling] in-process: ${ipSps.toFixed(1)} samples/s (steady)`);
  const lossRuns: number[][] = [ip.json.losses];

  for (const workers of [1, 2]) {
    const tl = ctx.scratch(`scaling-${workers}.timeline.json`);
    ctx.say(`[scaling] ${workers} worker${workers > 1 ? 's' : ''} over NATS`);
    const r = await runLockstep<TrainResult>(
      [...trainArgs(c, ctx.scratch(`scaling-${workers}`)), '--workers', String(workers), '--nats', url, '--job', ctx.job(`scaling-${workers}`), '--timeline', tl],
      { label: `[scaling] ${workers} worker(s)`, timeoutMs, onProgress: ctx.say },
    );
    const s = summarizeTimeline(tl, c.warmupSteps);
    runs.push({
      label: `${workers} worker${workers > 1 ? 's' : ''}`,
      workers,
      samplesPerSecond: s.samplesPerSecond,
      samplesPerSecondWhole: r.json.samplesPerSecond,
      ratioToInProcess: s.samplesPerSecond / ipSps,
      steadySteps: s.steadySteps,
      steadySeconds: s.steadySeconds,
      breakdown: s.breakdown,
      gradientBytesPerStep: r.json.gradientBytes / Math.max(1, r.json.steps),
      finalLoss: r.json.finalLoss.total,
      processSeconds: r.seconds,
    });
    lossRuns.push(r.json.losses);
    ctx.say(`[scaling] ${workers} worker(s): ${s.samplesPerSecond.toFixed(1)} samples/s (steady), outside compute ${pct(s.breakdown.outsideComputeShare)}`);
  }
  const one = runs[1] as ScalingRun;
  const two = runs[2] as ScalingRun;
  const maxRelativeLossDifference = Math.max(...lossRuns.slice(1).map((l) => maxRelDiff(lossRuns[0] as number[], l)));
  const bytesPerStep = two.gradientBytesPerStep;
  const stepsPerSecond2 = two.samplesPerSecond / c.batchSize;
  const mbPerSecondAt2Workers = (bytesPerStep * stepsPerSecond2) / 1e6;

  const oneCompute = one.breakdown?.computeSeconds ?? NaN;
  const simulation = simulateAggregation({ modelBytes, computeSeconds: oneCompute, workerBatch: c.batchSize, natsMBps: nats.mbPerSecond, costs }, c.simulatedWorkers, c.simulatedAggregators);
  const targets = [
    target('1 worker over NATS / in-process samples/s', one.ratioToInProcess, { floor: 0.9 }),
    target('time outside worker compute, share of step (1 worker)', one.breakdown?.outsideComputeShare ?? NaN, { ceiling: 0.1 }, pct(one.breakdown?.outsideComputeShare ?? NaN)),
    target('2 workers / 1 worker samples/s', two.samplesPerSecond / one.samplesPerSecond, { floor: 1.6 }),
  ];
  const results: ScalingResults = {
    quick: ctx.quick,
    config: c,
    modelParams,
    modelBytes,
    nats,
    runs,
    twoVsOneWorker: two.samplesPerSecond / one.samplesPerSecond,
    maxRelativeLossDifference,
    gradientTraffic: { bytesPerStep, mbPerSecondAt2Workers, shareOfNatsThroughput: mbPerSecondAt2Workers / nats.mbPerSecond },
    costs,
    simulation,
    targets,
  };
  const plots = await scalingPlots(results, ctx.outDir);
  return { results, markdown: scalingMarkdown(results, plots.map((p) => path.basename(p))), plots };
}

export function scalingMarkdown(r: ScalingResults, plotNames: string[]): string {
  const c = r.config;
  const out: string[] = [];
  out.push(`Conv ae, ${c.filters} filters (${r.modelParams.toLocaleString('en-US')} parameters, ${(r.modelBytes / 1e6).toFixed(3)} MB), global batch ${c.batchSize}, ${c.steps} steps on the first ${c.trainLimit} images; steady state = steps after the first ${c.warmupSteps}.${r.quick ? ' **Quick run: tiny model, figures only check the machinery.**' : ''}`);
  out.push('');
  out.push(table(
    ['run', 'samples/s (steady)', 'x in-process', 'samples/s (whole run)', 'step ms', 'worker compute ms', 'outside compute', 'grad bytes/step'],
    r.runs.map((x) => [
      x.label, fmt(x.samplesPerSecond, 1), fmt(x.ratioToInProcess, 2), fmt(x.samplesPerSecondWhole, 1),
      x.breakdown === null ? fmt((c.batchSize / x.samplesPerSecond) * 1000, 1) : fmt(x.breakdown.stepSeconds * 1000, 1),
      x.breakdown === null ? '(whole step)' : fmt(x.breakdown.computeSeconds * 1000, 1),
      x.breakdown === null ? '–' : pct(x.breakdown.outsideComputeShare),
      x.gradientBytesPerStep === 0 ? '–' : x.gradientBytesPerStep.toLocaleString('en-US', { maximumFractionDigits: 0 }),
    ]),
  ));
  out.push('');
  out.push(`2 workers / 1 worker: **${fmt(r.twoVsOneWorker, 2)}x**. Per-step losses of the three runs agree within ${fmt(r.maxRelativeLossDifference, 2)} (relative, max over steps).`);
  out.push('');
  out.push('Step-time breakdown (mean ms per steady step; compute = the slowest part; transport = NATS transfer, decoding, weight receive and scheduling, i.e. the rest):');
  out.push('');
  out.push(table(
    ['run', 'step', 'compute', 'encode', 'transport', 'aggregate', 'optimizer', 'broadcast', 'outside compute'],
    r.runs.filter((x) => x.breakdown !== null).map((x) => {
      const b = x.breakdown as Breakdown;
      return [x.label, fmt(b.stepSeconds * 1000, 1), fmt(b.computeSeconds * 1000, 1), fmt(b.encodeSeconds * 1000, 2), fmt(b.transportSeconds * 1000, 1), fmt(b.aggregateSeconds * 1000, 2), fmt(b.optimizerSeconds * 1000, 2), fmt(b.broadcastSeconds * 1000, 2), pct(b.outsideComputeShare)];
    }),
  ));
  out.push('');
  const n = r.nats;
  out.push(`Raw NATS through the same nats-server (one publisher, one subscriber connection, ${n.chunksPerPayload} chunk(s) of ≤ ${n.chunkBytes.toLocaleString('en-US')} bytes per payload, ${n.depth} payloads in flight): **${fmt(n.mbPerSecond, 0)} MB/s**, ${fmt(n.payloadsPerSecond, 0)} model-size payloads/s; one payload alone ${fmt(n.latencyMsMedian, 2)} ms (median). Gradient traffic at 2 workers: ${fmt(r.gradientTraffic.mbPerSecondAt2Workers, 2)} MB/s into the coordinator = ${pct(r.gradientTraffic.shareOfNatsThroughput, 2)} of that.`);
  out.push('');
  const k = r.costs;
  out.push(`Measured per-MB costs on the coordinator (median of ${k.repeats}): encode ${fmt(k.encodeSecondsPerMB * 1000, 2)} ms/MB, decode (reassemble + CRC32 + checks) ${fmt(k.decodeSecondsPerMB * 1000, 2)} ms/MB, sum ${fmt(k.sumSecondsPerMB * 1000, 2)} ms/MB per part, Adam ${fmt(k.adamSecondsPerMB * 1000, 2)} ms/MB.`);
  out.push('');
  const s = r.simulation;
  out.push('Simulated aggregation per step (weak scaling, from the measured costs above):');
  out.push('');
  for (const a of s.assumptions) out.push(`- ${a}`);
  out.push('');
  out.push(table(
    ['workers', 'aggregators', 'MB in per aggregator', 'aggregator ms', 'step ms', 'aggregator share', 'samples/s', 'efficiency'],
    s.rows.map((x) => [x.workers, x.aggregators, fmt(x.ingressMBPerAggregator, 2), fmt(x.aggregatorSeconds * 1000, 1), fmt(x.stepSeconds * 1000, 1), pct(x.aggregatorShare), fmt(x.samplesPerSecond, 0), pct(x.efficiency)]),
  ));
  out.push('');
  out.push(`One coordinator adds ${fmt(s.perWorkerSeconds * 1000, 2)} ms per worker per step plus ${fmt(s.fixedSeconds * 1000, 2)} ms fixed. **It stops being enough (aggregation > 10% of the step) beyond ${s.maxWorkersOneAggregator10pct} workers**; at about ${fmt(s.workersWhereAggregatorEqualsCompute, 0)} workers it takes as long as a worker's compute. Fewest aggregators for ≤ 10%: ${s.minAggregators.map((m) => `${m.workers} workers → ${m.aggregators}`).join(', ')}.`);
  out.push('');
  for (const t of r.targets) out.push(targetLine(t));
  out.push('');
  for (const p of plotNames) out.push(`![${p}](${p})`);
  return out.join('\n');
}

async function scalingPlots(r: ScalingResults, outDir: string): Promise<string[]> {
  mkdirSync(outDir, { recursive: true });
  const throughput = r.runs.map((x) => ({ run: x.label, samplesPerSecond: Math.round(x.samplesPerSecond * 10) / 10 }));
  const phases: Array<{ run: string; phase: string; ms: number; order: number }> = [];
  const names: Array<[keyof Breakdown, string]> = [['computeSeconds', 'worker compute'], ['encodeSeconds', 'encode'], ['transportSeconds', 'NATS + decode + other'], ['aggregateSeconds', 'aggregate'], ['optimizerSeconds', 'optimizer'], ['broadcastSeconds', 'broadcast']];
  for (const x of r.runs) {
    if (x.breakdown === null) {
      phases.push({ run: x.label, phase: 'worker compute', ms: (r.config.batchSize / x.samplesPerSecond) * 1000, order: 0 });
      continue;
    }
    names.forEach(([k, label], i) => phases.push({ run: x.label, phase: label, ms: (x.breakdown as Breakdown)[k] * 1000, order: i }));
  }
  const order = r.runs.map((x) => x.label);
  const main = await writePlot({
    title: { text: `conv ae (${r.config.filters} filters, batch ${r.config.batchSize}) on this machine`, fontSize: 13 },
    hconcat: [
      {
        width: 220,
        height: 180,
        title: 'samples/s (steady state)',
        data: { values: throughput },
        layer: [
          { mark: { type: 'bar', color: '#4c78a8' }, encoding: { x: { field: 'run', type: 'nominal', sort: order, title: null, axis: { labelAngle: 0 } }, y: { field: 'samplesPerSecond', type: 'quantitative', title: 'samples/s' } } },
          { mark: { type: 'text', dy: -6 }, encoding: { x: { field: 'run', type: 'nominal', sort: order }, y: { field: 'samplesPerSecond', type: 'quantitative' }, text: { field: 'samplesPerSecond', type: 'quantitative', format: '.0f' } } },
        ],
      },
      {
        width: 300,
        height: 180,
        title: 'step time by phase (ms)',
        data: { values: phases },
        mark: 'bar',
        encoding: {
          y: { field: 'run', type: 'nominal', sort: order, title: null },
          x: { field: 'ms', type: 'quantitative', title: 'ms per step', stack: 'zero' },
          color: { field: 'phase', type: 'nominal', sort: names.map((n) => n[1]), scale: { scheme: 'tableau10' }, legend: { orient: 'bottom', columns: 3, title: null, labelLimit: 300 } },
          order: { field: 'order', type: 'quantitative' },
        },
      },
    ],
  }, path.join(outDir, 'scaling'));
  const sim = r.simulation.rows.map((x) => ({ workers: x.workers, aggregators: `M = ${x.aggregators}`, m: x.aggregators, ms: x.aggregatorSeconds * 1000, step: x.stepSeconds * 1000 }));
  const budget = r.simulation.rows.filter((x) => x.aggregators === 1).map((x) => ({ workers: x.workers, ms: ((x.stepSeconds - x.aggregatorSeconds) / 9) * 1000 }));
  const agg = await writePlot({
    title: { text: 'simulated aggregation time per step vs workers', subtitle: 'M aggregators sharded by parameter range; dashed: 10% of the step (one aggregator)', fontSize: 13 },
    width: 380,
    height: 220,
    layer: [
      {
        data: { values: sim },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'workers', type: 'quantitative', scale: { type: 'log', base: 2 }, title: 'workers (N)' },
          y: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'aggregator ms per step' },
          color: { field: 'aggregators', type: 'nominal', sort: { field: 'm' }, title: 'aggregators' },
        },
      },
      {
        data: { values: budget },
        mark: { type: 'line', strokeDash: [4, 4], color: 'black' },
        encoding: { x: { field: 'workers', type: 'quantitative' }, y: { field: 'ms', type: 'quantitative' } },
      },
    ],
  }, path.join(outDir, 'aggregation-sim'));
  return [main.png, agg.png];
}
