// The in-process trainer (`lockstep train --workers 0`): the reference that
// distributed training must equal. Same planner, same per-part gradient sum,
// same TrainingCore as the coordinator; only the transport is missing.
import { createHash } from 'node:crypto';
import type { Options } from '../config/types.js';
import { gather, loadMnist } from '../data/mnist.js';
import type { Logger } from '../logger.js';
import { createModel } from '../models/factory.js';
import { TrainingCore, type StepOutcome } from './core.js';
import { modelOptionsOf } from './model-options.js';
import { StepPlanner } from './plan.js';
import { loadResumePoint, nextTerm, saveCheckpoint, wantsResume } from '../checkpoint/training.js';
import { finalLossOf, type TrainResult } from './result.js';

export interface StepReport {
  step: number;
  epoch: number;
  totalSteps: number;
  outcome: StepOutcome;
  seconds: number;
  indices: Int32Array;
}

export interface ReferenceDeps {
  log: Logger;
  backendName: string;
  onStep?: (r: StepReport) => void;
  signal?: AbortSignal;
}

export async function trainInProcess(opts: Options, deps: ReferenceDeps): Promise<TrainResult & { weights: Float32Array }> {
  const data = loadMnist({ split: 'train', dataDir: opts.dataDir, limit: opts.trainLimit });
  const planner = new StepPlanner({ seed: opts.seed, datasetSize: data.count, batchSize: opts.batchSize });
  const totalSteps = planner.totalSteps(opts);
  const bundle = createModel(modelOptionsOf(opts));
  try {
    let weights = bundle.getFlatWeights();
    let adamState;
    let startStep = 0;
    let losses: number[] = [];
    let samplesBefore = 0;
    let atLeastTerm = 0;
    let checkpoint: string | null = null;
    if (wantsResume(opts)) {
      const rp = loadResumePoint(opts, bundle.numParams, data.count, deps.log);
      weights = rp.weights;
      adamState = rp.adam;
      startStep = rp.manifest.step;
      losses = rp.manifest.losses.map((l) => l ?? NaN);
      samplesBefore = rp.manifest.samples;
      atLeastTerm = rp.manifest.term;
      checkpoint = rp.path;
    }
    const term = nextTerm(opts.checkpointDir, atLeastTerm);
    const core = new TrainingCore(weights, { lr: opts.lr }, adamState);
    deps.log.info({ params: bundle.numParams, images: data.count, totalSteps, stepsPerEpoch: planner.stepsPerEpoch, startStep }, 'in-process training starts');
    let last: StepOutcome | undefined;
    let samples = 0;
    const save = async (step: number): Promise<void> => {
      checkpoint = await saveCheckpoint({ o: opts, term, step, planner, core, bundle, losses, samples: samplesBefore + samples });
    };
    const t0 = performance.now();
    let step = startStep;
    for (; step < totalSteps; step++) {
      if (deps.signal?.aborted === true) break;
      const ts = performance.now();
      const slice = planner.slice(step);
      const batch = gather(data, slice.indices);
      bundle.setFlatWeights(core.weights);
      const part = bundle.gradientSum(batch, step);
      last = core.apply([{ part: 0, count: part.count, grad: part.grad, loss: part.loss }]);
      losses.push(last.loss.total);
      samples += last.count;
      deps.onStep?.({ step, epoch: slice.epoch, totalSteps, outcome: last, seconds: (performance.now() - ts) / 1000, indices: slice.indices });
      if (opts.checkpointEvery > 0 && (step + 1) % opts.checkpointEvery === 0 && step + 1 < totalSteps) await save(step + 1);
      // Yield so signals and timers run between steps.
      await new Promise<void>((r) => setImmediate(r));
    }
    const wallSeconds = (performance.now() - t0) / 1000;
    if (step > startStep || checkpoint === null) await save(step);
    return {
      model: opts.model,
      arch: opts.arch,
      backend: deps.backendName,
      workers: 0,
      steps: step,
      epochs: step / planner.stepsPerEpoch,
      samples: samplesBefore + samples,
      wallSeconds,
      samplesPerSecond: samples / wallSeconds,
      finalLoss: finalLossOf(opts.model, last?.loss ?? { total: NaN, reconstruction: NaN, kl: NaN }),
      losses,
      gradientBytes: 0,
      checkpoint,
      startStep,
      weightsSha256: sha256Of(core.weights),
      weights: core.weights,
    };
  } finally {
    bundle.dispose();
  }
}

export function sha256Of(w: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(w.buffer, w.byteOffset, w.byteLength)).digest('hex');
}
