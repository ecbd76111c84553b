// Compute benchmark on the wasm backend: samples/s of one training step
// (setFlatWeights + gradientSum, what a worker does per step) for the conv ae,
// vae, cvae and the mlp vae at their default sizes, and GFLOP/s of the conv
// kernels (forward, filter gradient, input gradient) for the conv models' layer
// shapes, all in the same run. The machine may be shared: each figure is the
// median of several repeats, and the load average is reported with them.
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { selectBackend, type BackendInfo } from '../../shared/compute/backend.js';
import { chooseFilterGradStrategy } from '../../shared/compute/kernels/index.js';
import { loadMnist } from '../../shared/data/mnist.js';
import { createModel } from '../../shared/models/factory.js';
import type { Batch, ModelArch, ModelKind } from '../../shared/models/types.js';

export interface StepBench {
  model: string;
  kind: ModelKind;
  arch: ModelArch;
  batch: number;
  filters: number | null;
  hiddenUnits: number | null;
  params: number;
  repeats: number;
  msMedian: number;
  msMin: number;
  /** batch / median step time. */
  samplesPerSecond: number;
  /** batch / fastest step. */
  samplesPerSecondBest: number;
}

export interface KernelTiming {
  msMedian: number;
  gflops: number;
}

export interface ConvBench {
  layer: string;
  batch: number;
  height: number;
  width: number;
  inChannels: number;
  outChannels: number;
  /** 2 * multiply-adds of one pass, in GFLOP. */
  gflop: number;
  forward: KernelTiming;
  filterGrad: KernelTiming & { strategy: string };
  inputGrad: KernelTiming;
}

export interface ComputeBenchResult {
  backend: BackendInfo;
  quick: boolean;
  loadAverageBefore: number[];
  loadAverageAfter: number[];
  steps: StepBench[];
  convs: ConvBench[];
  /** FLOP-weighted over the conv ae's layers (total GFLOP / total time), median over rounds; the ratio is per round. */
  convTotals: { forwardGflops: number; filterGradGflops: number; inputGradGflops: number; filterToForwardRatio: number };
  targets: Array<{ name: string; value: number; floor: number; met: boolean }> | null;
}

export interface BenchOptions {
  quick: boolean;
  /** Timed repeats per figure (default 9, quick 2). */
  repeats?: number;
  /** Progress lines (default: none). */
  onProgress?: (line: string) => void;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function batchOf(images: Float32Array, labels: Uint8Array, n: number, offset: number): Batch {
  const count = labels.length;
  const idx = Int32Array.from({ length: n }, (_, i) => (offset + i) % count);
  const out = new Float32Array(n * 784);
  const labs = new Uint8Array(n);
  idx.forEach((g, k) => {
    out.set(images.subarray(g * 784, (g + 1) * 784), k * 784);
    labs[k] = labels[g] as number;
  });
  return { images: out, labels: labs, indices: idx, n };
}

async function benchStep(
  spec: { kind: ModelKind; arch: ModelArch; batch: number; filters: number; hiddenUnits: number; latentDim: number },
  data: { images: Float32Array; labels: Uint8Array },
  warmup: number,
  repeats: number,
): Promise<StepBench> {
  const bundle = createModel({ kind: spec.kind, arch: spec.arch, latentDim: spec.latentDim, filters: spec.filters, hiddenUnits: spec.hiddenUnits, seed: 1 });
  try {
    const w = bundle.getFlatWeights();
    const times: number[] = [];
    for (let s = 0; s < warmup + repeats; s++) {
      const batch = batchOf(data.images, data.labels, spec.batch, s * spec.batch);
      // Perturb the weights as an optimizer would, so no cache sees the same tensors twice.
      w[s % w.length] = (w[s % w.length] as number) + 1e-6;
      const t0 = performance.now();
      bundle.setFlatWeights(w);
      const g = bundle.gradientSum(batch, s);
      const dt = performance.now() - t0;
      if (!Number.isFinite(g.loss.total)) throw new Error(`non-finite loss in ${spec.arch} ${spec.kind}`);
      if (s >= warmup) times.push(dt);
      // Let timers and I/O run between steps, as in a worker.
      await new Promise((r) => setImmediate(r));
    }
    const ms = median(times);
    const min = Math.min(...times);
    return {
      model: `${spec.arch}-${spec.kind}`,
      kind: spec.kind,
      arch: spec.arch,
      batch: spec.batch,
      filters: spec.arch === 'conv' ? spec.filters : null,
      hiddenUnits: spec.arch === 'mlp' ? spec.hiddenUnits : null,
      params: bundle.numParams,
      repeats,
      msMedian: ms,
      msMin: min,
      samplesPerSecond: (spec.batch / ms) * 1000,
      samplesPerSecondBest: (spec.batch / min) * 1000,
    };
  } finally {
    bundle.dispose();
  }
}

/** One timing of a kernel on fresh inputs (as in training: XNNPACK caches packed weights by tensor). */
function timeOnce(make: () => tf.Tensor[], run: (t: tf.Tensor[]) => tf.Tensor): number {
  const inputs = make();
  inputs.forEach((t) => t.dataSync());
  const t0 = performance.now();
  // wasm kernels run synchronously: the work is done when run() returns. Reading the
  // output back (dataSync copies it out of the heap) would add a copy to the timing.
  const out = run(inputs);
  const dt = performance.now() - t0;
  tf.dispose([out, ...inputs]);
  return dt;
}

interface ConvShape {
  layer: string;
  b: number;
  h: number;
  ci: number;
  co: number;
}

/** Times forward, filter-grad and input-grad of one layer shape once each, back to back. */
function convRound(c: ConvShape, seed: { next: number }): [number, number, number] {
  const xShape: [number, number, number, number] = [c.b, c.h, c.h, c.ci];
  const fShape: [number, number, number, number] = [3, 3, c.ci, c.co];
  const yShape: [number, number, number, number] = [c.b, c.h, c.h, c.co];
  const attrs = { strides: [1, 1], pad: 'same', dataFormat: 'NHWC', dimRoundingMode: undefined as unknown as string };
  const rnd = (shape: number[]): tf.Tensor => tf.randomNormal(shape, 0, 1, 'float32', seed.next++);
  const fwd = timeOnce(() => [rnd(xShape), rnd(fShape)], ([x, f]) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same'));
  const dw = timeOnce(() => [rnd(xShape), rnd(yShape)], ([x, dy]) =>
    tf.engine().runKernel('Conv2DBackpropFilter', { x: x as tf.Tensor, dy: dy as tf.Tensor }, { ...attrs, filterShape: fShape }) as tf.Tensor);
  const dx = timeOnce(() => [rnd(yShape), rnd(fShape)], ([dy, f]) =>
    tf.engine().runKernel('Conv2DBackpropInput', { dy: dy as tf.Tensor, filter: f as tf.Tensor }, { ...attrs, inputShape: xShape }) as tf.Tensor);
  return [fwd, dw, dx];
}

/**
 * Rounds over all layer shapes, repeated: slow periods on a shared machine then hit
 * forward and gradient kernels alike, and the ratio is taken per round.
 */
function benchConvs(shapes: ConvShape[], counts: number[], repeats: number): { convs: ConvBench[]; ratios: number[]; totals: Array<[number, number, number]> } {
  const seed = { next: 1 };
  const times = shapes.map(() => ({ f: [] as number[], w: [] as number[], x: [] as number[] }));
  const totals: Array<[number, number, number]> = [];
  const ratios: number[] = [];
  let flop = 0;
  shapes.forEach((c, i) => (flop += (counts[i] as number) * (2 * c.b * c.h * c.h * 9 * c.ci * c.co) / 1e9));
  for (let r = 0; r < repeats + 1; r++) {
    let tf_ = 0;
    let tw = 0;
    let tx = 0;
    shapes.forEach((c, i) => {
      const [f, w, x] = convRound(c, seed);
      const k = counts[i] as number;
      tf_ += (k * f) / 1000;
      tw += (k * w) / 1000;
      tx += (k * x) / 1000;
      if (r > 0) {
        times[i]?.f.push(f);
        times[i]?.w.push(w);
        times[i]?.x.push(x);
      }
    });
    if (r > 0) {
      totals.push([flop / tf_, flop / tw, flop / tx]);
      ratios.push(tf_ / tw);
    }
  }
  const convs = shapes.map((c, i): ConvBench => {
    const gflop = (2 * c.b * c.h * c.h * 9 * c.ci * c.co) / 1e9;
    const t = times[i] as { f: number[]; w: number[]; x: number[] };
    const f = median(t.f);
    const w = median(t.w);
    const x = median(t.x);
    const strategy = chooseFilterGradStrategy({ batch: c.b, inH: c.h, inW: c.h, inC: c.ci, outH: c.h, outW: c.h, outC: c.co, kh: 3, kw: 3, sh: 1, sw: 1, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 });
    return {
      layer: c.layer, batch: c.b, height: c.h, width: c.h, inChannels: c.ci, outChannels: c.co, gflop,
      forward: { msMedian: f, gflops: gflop / (f / 1000) },
      filterGrad: { msMedian: w, gflops: gflop / (w / 1000), strategy },
      inputGrad: { msMedian: x, gflops: gflop / (x / 1000) },
    };
  });
  return { convs, ratios, totals };
}

export async function benchCompute(opts: BenchOptions): Promise<ComputeBenchResult> {
  const { quick } = opts;
  const say = opts.onProgress ?? (() => undefined);
  const repeats = opts.repeats ?? (quick ? 2 : 9);
  // Enough steps for V8 to optimise the JS kernels' loops before timing.
  const warmup = quick ? 1 : 3;
  const backend = await selectBackend({ backend: 'wasm' });
  const loadAverageBefore = os.loadavg();
  const data = loadMnist({ split: 'train', limit: quick ? 64 : 2048 });
  const F = quick ? 4 : 64;
  const B = quick ? 4 : 64;
  const specs = [
    { kind: 'ae' as const, arch: 'conv' as const, batch: B, filters: F, hiddenUnits: 500, latentDim: 16 },
    { kind: 'vae' as const, arch: 'conv' as const, batch: B, filters: F, hiddenUnits: 500, latentDim: 16 },
    { kind: 'cvae' as const, arch: 'conv' as const, batch: B, filters: F, hiddenUnits: 500, latentDim: 16 },
    { kind: 'vae' as const, arch: 'mlp' as const, batch: quick ? 10 : 100, filters: F, hiddenUnits: quick ? 50 : 500, latentDim: 20 },
  ];
  const steps: StepBench[] = [];
  for (const spec of specs) {
    const r = await benchStep(spec, { images: data.images, labels: data.labels }, warmup, repeats);
    say(`${r.model}: ${r.samplesPerSecond.toFixed(0)} samples/s (median of ${repeats})`);
    steps.push(r);
  }
  const shapes: ConvShape[] = [
    { layer: 'enc_conv1 (32x32, 1->F)', b: B, h: 32, ci: 1, co: F },
    { layer: 'enc_conv2 / dec_conv3 (16x16)', b: B, h: 16, ci: F, co: F },
    { layer: 'enc_conv3 / dec_conv2 (8x8)', b: B, h: 8, ci: F, co: F },
    { layer: 'dec_conv1 (4x4)', b: B, h: 4, ci: F, co: F },
    { layer: 'dec_out (32x32, F->1)', b: B, h: 32, ci: F, co: 1 },
  ];
  // How often each shape occurs in the conv ae (for the FLOP-weighted totals).
  const counts = [1, 2, 2, 1, 1];
  const { convs, ratios, totals } = benchConvs(shapes, counts, repeats);
  for (const c of convs) say(`${c.layer}: forward ${c.forward.gflops.toFixed(1)} GFLOP/s, filter grad ${c.filterGrad.gflops.toFixed(1)} GFLOP/s`);
  const convTotals = {
    forwardGflops: median(totals.map((t) => t[0])),
    filterGradGflops: median(totals.map((t) => t[1])),
    inputGradGflops: median(totals.map((t) => t[2])),
    filterToForwardRatio: median(ratios),
  };
  const ae = steps.find((s) => s.model === 'conv-ae');
  const mlp = steps.find((s) => s.model === 'mlp-vae');
  const targets = quick
    ? null
    : [
        { name: 'conv ae samples/s (wasm, 1 process)', value: ae?.samplesPerSecond ?? 0, floor: 60 },
        { name: 'mlp vae samples/s (wasm, 1 process)', value: mlp?.samplesPerSecond ?? 0, floor: 1000 },
        { name: 'filter-grad / forward GFLOP/s', value: convTotals.filterToForwardRatio, floor: 0.5 },
      ].map((t) => ({ ...t, met: t.value >= t.floor }));
  return { backend, quick, loadAverageBefore, loadAverageAfter: os.loadavg(), steps, convs, convTotals, targets };
}
