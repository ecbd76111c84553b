// The aggregator's cost per byte, measured with the project's own code (the
// binary codec, TrainingCore's sum, Adam), and a simulation built on those
// figures plus the NATS throughput measured in the same run: how long one
// coordinator needs per step for N workers, and how that changes when the
// aggregator role is sharded by parameter range over M processes
// (DESIGN.md section 7: chunk k to aggregator k mod M).
import { BinaryReceiver, encodeBinaryMessage } from '../../shared/protocol/binary-message.js';
import { MSG, createMessage } from '../../shared/protocol/messages.js';
import { TrainingCore } from '../../shared/train/core.js';

export interface PerByteCosts {
  numel: number;
  bytes: number;
  repeats: number;
  /** Seconds per MB (1e6 bytes) of float32 tensor. */
  encodeSecondsPerMB: number;
  /** Reassembly + CRC32 + schema + finiteness check. */
  decodeSecondsPerMB: number;
  /** Adding one part into the float64 accumulator (TrainingCore.apply's aggregate phase, per part). */
  sumSecondsPerMB: number;
  /** Adam on the coordinator, per MB of model. */
  adamSecondsPerMB: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export function measurePerByteCosts(numel: number, opts: { repeats: number; parts?: number; maxPayload?: number }): PerByteCosts {
  const parts = opts.parts ?? 4;
  const maxPayload = opts.maxPayload ?? 1024 * 1024;
  const bytes = numel * 4;
  const mb = bytes / 1e6;
  const grad = new Float32Array(numel);
  for (let i = 0; i < numel; i++) grad[i] = Math.sin(i) * 1e-3;
  const enc: number[] = [];
  const dec: number[] = [];
  const sum: number[] = [];
  const adam: number[] = [];
  const core = new TrainingCore(new Float32Array(numel).fill(0.01), { lr: 1e-3 });
  for (let r = 0; r < opts.repeats + 1; r++) {
    const meta = createMessage(MSG.grad, { job: 'bench', term: 1, step: r, sender: 'w0' }, {
      part: 0, attempt: 0, weightsVersion: r, count: 64, numel, lossSums: { total: 1, reconstruction: 1, kl: 0 }, computeSeconds: 0.1,
    });
    const t0 = performance.now();
    const chunks = encodeBinaryMessage(meta, grad, { maxPayload });
    const t1 = performance.now();
    const rx = new BinaryReceiver({ accept: [MSG.grad] });
    let got = null;
    for (const c of chunks) got = rx.push(c, 'lockstep.bench.grad.w0') ?? got;
    const t2 = performance.now();
    const payload = got === null ? grad : Float32Array.from(got.payload);
    const out = core.apply(Array.from({ length: parts }, (_, p) => ({ part: p, count: 64, grad: payload, loss: { total: 1, reconstruction: 1, kl: 0 } })));
    // The first round warms up V8; it is not counted.
    if (r === 0) continue;
    enc.push((t1 - t0) / 1000 / mb);
    dec.push((t2 - t1) / 1000 / mb);
    sum.push(out.aggregateSeconds / parts / mb);
    adam.push(out.optimizerSeconds / mb);
  }
  return { numel, bytes, repeats: opts.repeats, encodeSecondsPerMB: median(enc), decodeSecondsPerMB: median(dec), sumSecondsPerMB: median(sum), adamSecondsPerMB: median(adam) };
}

export interface SimulationInput {
  /** Bytes of one gradient or weights transfer (the model's float32 size). */
  modelBytes: number;
  /** One worker's compute per step (its per-worker batch), measured. */
  computeSeconds: number;
  workerBatch: number;
  /** One NATS connection's throughput, MB/s, measured. */
  natsMBps: number;
  costs: PerByteCosts;
}

export interface SimulationRow {
  workers: number;
  aggregators: number;
  /** Gradient bytes into each aggregator per step, MB. */
  ingressMBPerAggregator: number;
  aggregatorSeconds: number;
  workerTransferSeconds: number;
  stepSeconds: number;
  /** Share of the step spent in the aggregators (the part that grows with N). */
  aggregatorShare: number;
  outsideComputeShare: number;
  samplesPerSecond: number;
  /** samples/s over N x one worker's compute-only rate. */
  efficiency: number;
}

export interface Simulation {
  assumptions: string[];
  /** Aggregator seconds per step added by each worker (decode + sum + receive). */
  perWorkerSeconds: number;
  /** Aggregator seconds per step that do not depend on N (Adam, encode and publish the weights). */
  fixedSeconds: number;
  workerTransferSeconds: number;
  rows: SimulationRow[];
  /** Largest N for which one aggregator keeps its share of the step <= 10%. */
  maxWorkersOneAggregator10pct: number;
  /** N at which one aggregator's time equals a worker's compute (the step at least doubles). */
  workersWhereAggregatorEqualsCompute: number;
  /** For each N, the fewest aggregators that keep their share <= 10%. */
  minAggregators: Array<{ workers: number; aggregators: number }>;
}

export function simulateAggregation(input: SimulationInput, workerCounts: number[], aggregatorCounts: number[]): Simulation {
  const mb = input.modelBytes / 1e6;
  const c = input.costs;
  const net = 1 / input.natsMBps;
  // Per worker, into one aggregator holding the whole model: receive, decode, add.
  const perWorker = mb * (net + c.decodeSecondsPerMB + c.sumSecondsPerMB);
  // Once per step: Adam over the model, encode the new weights, publish them once (the server fans out).
  const fixed = mb * (c.adamSecondsPerMB + c.encodeSecondsPerMB + net);
  // Each worker, whatever N and M: receive + decode the weights, encode + send its gradient.
  const workerTransfer = mb * (net + c.decodeSecondsPerMB + c.encodeSecondsPerMB + net);
  const aggSeconds = (n: number, m: number): number => (n * perWorker + fixed) / m;
  const row = (n: number, m: number): SimulationRow => {
    const agg = aggSeconds(n, m);
    const step = input.computeSeconds + workerTransfer + agg;
    const sps = (n * input.workerBatch) / step;
    return {
      workers: n,
      aggregators: m,
      ingressMBPerAggregator: (n * mb) / m,
      aggregatorSeconds: agg,
      workerTransferSeconds: workerTransfer,
      stepSeconds: step,
      aggregatorShare: agg / step,
      outsideComputeShare: (step - input.computeSeconds) / step,
      samplesPerSecond: sps,
      efficiency: sps / ((n * input.workerBatch) / input.computeSeconds),
    };
  };
  const rows: SimulationRow[] = [];
  for (const n of workerCounts) for (const m of aggregatorCounts) rows.push(row(n, m));
  // agg <= 0.1 * (compute + transfer + agg)  <=>  agg <= (compute + transfer) / 9
  const budget = (input.computeSeconds + workerTransfer) / 9;
  const maxN = Math.max(0, Math.floor((budget - fixed) / perWorker));
  const equal = Math.max(0, (input.computeSeconds - fixed) / perWorker);
  const minAggregators = workerCounts.map((n) => {
    let m = 1;
    while (aggSeconds(n, m) > budget && m < 4096) m++;
    return { workers: n, aggregators: m };
  });
  return {
    assumptions: [
      `weak scaling: every worker computes ${input.workerBatch} images per step in ${(input.computeSeconds * 1000).toFixed(1)} ms (measured: 1 worker, this model)`,
      `aggregator k of M owns 1/M of the parameters: per step it receives N x ${mb.toFixed(3)} MB / M of gradients, decodes and adds them, runs Adam on its range, encodes and publishes its range of the new weights once (the NATS server fans it out)`,
      `each aggregator is one process with one NATS connection at the measured ${input.natsMBps.toFixed(0)} MB/s; the NATS servers (a cluster) and the network are not the limit`,
      'each worker, whatever N and M, receives and decodes the weights and encodes and sends its gradient (measured per-MB costs); steps are synchronous, nothing overlaps',
    ],
    perWorkerSeconds: perWorker,
    fixedSeconds: fixed,
    workerTransferSeconds: workerTransfer,
    rows,
    maxWorkersOneAggregator10pct: maxN,
    workersWhereAggregatorEqualsCompute: equal,
    minAggregators,
  };
}
