// The math of one synchronous step, shared by the in-process reference trainer
// and the coordinator: sum the parts' gradient sums in part order, divide by the
// global count, apply Adam. Sharing this code is what makes "N workers equal
// one process" hold up to float32 summation order.
import { InternalError } from '../errors.js';
import { Adam, type AdamState } from './adam.js';

export interface LossSums {
  total: number;
  reconstruction: number;
  kl: number;
}

export interface PartResult {
  part: number;
  count: number;
  grad: Float32Array;
  loss: LossSums;
}

export interface StepOutcome {
  count: number;
  /** Global-batch means. */
  loss: LossSums;
  aggregateSeconds: number;
  optimizerSeconds: number;
}

export class TrainingCore {
  readonly weights: Float32Array;
  readonly adam: Adam;
  private readonly acc: Float64Array;
  private readonly mean: Float32Array;

  constructor(initialWeights: Float32Array, options: { lr: number }, adamState?: AdamState) {
    this.weights = Float32Array.from(initialWeights);
    this.adam = new Adam(initialWeights.length, { lr: options.lr }, adamState);
    this.acc = new Float64Array(initialWeights.length);
    this.mean = new Float32Array(initialWeights.length);
  }

  /** Applies one step from its parts (any order in, summed in part order). */
  apply(parts: readonly PartResult[]): StepOutcome {
    const t0 = performance.now();
    const sorted = [...parts].sort((a, b) => a.part - b.part);
    const acc = this.acc;
    acc.fill(0);
    let count = 0;
    const loss: LossSums = { total: 0, reconstruction: 0, kl: 0 };
    for (const p of sorted) {
      if (p.grad.length !== acc.length) {
        throw new InternalError(`part ${p.part}: gradient has ${p.grad.length} values, the model ${acc.length}`);
      }
      const g = p.grad;
      for (let i = 0; i < acc.length; i++) acc[i] = (acc[i] as number) + (g[i] as number);
      count += p.count;
      loss.total += p.loss.total;
      loss.reconstruction += p.loss.reconstruction;
      loss.kl += p.loss.kl;
    }
    if (count === 0) throw new InternalError('a step with no images');
    const mean = this.mean;
    for (let i = 0; i < acc.length; i++) mean[i] = (acc[i] as number) / count;
    const t1 = performance.now();
    this.adam.step(this.weights, mean);
    const t2 = performance.now();
    return {
      count,
      loss: { total: loss.total / count, reconstruction: loss.reconstruction / count, kl: loss.kl / count },
      aggregateSeconds: (t1 - t0) / 1000,
      optimizerSeconds: (t2 - t1) / 1000,
    };
  }
}

/** ||a - b|| / ||a|| over all weights (DESIGN.md section 2's "within 1e-5"). */
export function relativeDifference(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] as number) - (b[i] as number);
    num += d * d;
    den += (a[i] as number) * (a[i] as number);
  }
  return Math.sqrt(num) / Math.sqrt(den);
}
