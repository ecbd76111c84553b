// The step planner: which images global step s trains on, and how that global
// batch is split into parts. Everything is a pure function of (seed, dataset
// size, batch size, step), so the position in the run is just the step number:
// resuming mid-epoch needs no iterator state, and every image is used exactly
// once per epoch whatever the membership history.
import { ConfigError } from '../errors.js';
import { Mulberry32, hash32 } from './rng.js';

export interface PlanOptions {
  seed: number;
  datasetSize: number;
  batchSize: number;
}

export interface StepSlice {
  step: number;
  epoch: number;
  /** Index of the batch within its epoch. */
  batchInEpoch: number;
  indices: Int32Array;
}

export class StepPlanner {
  readonly stepsPerEpoch: number;
  private cachedEpoch = -1;
  private cachedPerm: Int32Array = new Int32Array(0);

  constructor(readonly options: PlanOptions) {
    if (options.datasetSize < 1) throw new ConfigError(`dataset is empty: nothing to train on`);
    if (options.batchSize < 1) throw new ConfigError(`--batch-size: must be >= 1`);
    this.stepsPerEpoch = Math.ceil(options.datasetSize / options.batchSize);
  }

  /** Seeded Fisher-Yates permutation of the epoch. */
  permutation(epoch: number): Int32Array {
    if (epoch === this.cachedEpoch) return this.cachedPerm;
    const n = this.options.datasetSize;
    const perm = new Int32Array(n);
    for (let i = 0; i < n; i++) perm[i] = i;
    const rng = new Mulberry32(hash32(this.options.seed, 0x5eed, epoch));
    for (let i = n - 1; i > 0; i--) {
      const j = rng.nextInt(i + 1);
      const t = perm[i] as number;
      perm[i] = perm[j] as number;
      perm[j] = t;
    }
    this.cachedEpoch = epoch;
    this.cachedPerm = perm;
    return perm;
  }

  /** The global batch of step `step` (0-based). The epoch's last batch may be smaller: it is used, not dropped. */
  slice(step: number): StepSlice {
    const epoch = Math.floor(step / this.stepsPerEpoch);
    const batchInEpoch = step - epoch * this.stepsPerEpoch;
    const start = batchInEpoch * this.options.batchSize;
    const end = Math.min(start + this.options.batchSize, this.options.datasetSize);
    return { step, epoch, batchInEpoch, indices: this.permutation(epoch).slice(start, end) };
  }

  /** Total steps for a run given --steps or --epochs (steps wins). */
  totalSteps(opts: { steps?: number; epochs?: number }): number {
    if (opts.steps !== undefined) return opts.steps;
    return (opts.epochs ?? 1) * this.stepsPerEpoch;
  }
}

/**
 * Splits a global batch into `parts` contiguous slices in rank order, sizes
 * differing by at most one (earlier parts get the extra image). A part may be
 * empty when there are more workers than images.
 */
export function splitBatch(indices: Int32Array, parts: number): Int32Array[] {
  const out: Int32Array[] = [];
  const base = Math.floor(indices.length / parts);
  const extra = indices.length % parts;
  let at = 0;
  for (let p = 0; p < parts; p++) {
    const size = base + (p < extra ? 1 : 0);
    out.push(indices.subarray(at, at + size));
    at += size;
  }
  return out;
}
