// The worker's compute: the job's model and its own copy of the training set.
// A part is (global image indices, step); its result is the gradient SUM and
// loss sums over those images, so parts add up to the global batch exactly.
import { gather, loadMnist, type Dataset } from '../shared/data/mnist.js';
import { DataError } from '../shared/errors.js';
import { createModel } from '../shared/models/factory.js';
import type { ModelBundle } from '../shared/models/types.js';
import type { JobConfig } from '../shared/train/job-config.js';
import type { LossSums } from '../shared/train/core.js';

export interface PartOutput {
  grad: Float32Array;
  loss: LossSums;
  count: number;
  computeSeconds: number;
}

export class WorkerCompute {
  private constructor(
    readonly config: JobConfig,
    private readonly bundle: ModelBundle,
    private readonly data: Dataset,
  ) {}

  static create(config: JobConfig, dataDir: string | undefined): WorkerCompute {
    const data = loadMnist({ split: 'train', dataDir, limit: config.trainLimit ?? undefined });
    if (data.count !== config.datasetSize) {
      throw new DataError(`this worker's training set has ${data.count} images, the job's has ${config.datasetSize}: check --data-dir and --train-limit`);
    }
    const bundle = createModel({ kind: config.model, arch: config.arch, latentDim: config.latentDim, filters: config.filters, hiddenUnits: config.hiddenUnits, seed: config.seed });
    if (bundle.numParams !== config.numParams) {
      bundle.dispose();
      throw new DataError(`this worker's model has ${bundle.numParams} parameters, the job's ${config.numParams}: versions differ`);
    }
    return new WorkerCompute(config, bundle, data);
  }

  computePart(weights: Float32Array, indices: ArrayLike<number>, step: number): PartOutput {
    const t0 = performance.now();
    this.bundle.setFlatWeights(weights);
    const batch = gather(this.data, indices);
    const out = this.bundle.gradientSum(batch, step);
    return { grad: out.grad, loss: out.loss, count: out.count, computeSeconds: (performance.now() - t0) / 1000 };
  }

  dispose(): void {
    this.bundle.dispose();
  }
}
