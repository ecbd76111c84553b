// Adam on flat float32 vectors, in plain JS on the coordinator. Owning the
// optimizer here (not in a tfjs graph) makes the update identical in every
// process that applies it, and its state a pair of arrays to checkpoint.

export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  /** tfjs' default epsilon. */
  epsilon?: number;
}

export interface AdamState {
  t: number;
  m: Float32Array;
  v: Float32Array;
}

export class Adam {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  state: AdamState;

  constructor(numel: number, options: AdamOptions, state?: AdamState) {
    this.lr = options.lr;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-7;
    this.state = state ?? { t: 0, m: new Float32Array(numel), v: new Float32Array(numel) };
  }

  /** weights -= lr * mhat / (sqrt(vhat) + eps), in place. `grad` is the batch MEAN gradient. */
  step(weights: Float32Array, grad: Float32Array): void {
    const s = this.state;
    s.t += 1;
    const b1 = this.beta1;
    const b2 = this.beta2;
    const c1 = 1 - Math.pow(b1, s.t);
    const c2 = 1 - Math.pow(b2, s.t);
    const lr = this.lr;
    const eps = this.epsilon;
    const { m, v } = s;
    for (let i = 0; i < weights.length; i++) {
      const g = grad[i] as number;
      const mi = b1 * (m[i] as number) + (1 - b1) * g;
      const vi = b2 * (v[i] as number) + (1 - b2) * g * g;
      m[i] = mi;
      v[i] = vi;
      weights[i] = (weights[i] as number) - (lr * (mi / c1)) / (Math.sqrt(vi / c2) + eps);
    }
  }
}
