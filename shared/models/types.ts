// Contracts of the model layer: what the trainer, the workers and the tools call.
import type * as tf from '@tensorflow/tfjs';

export type ModelKind = 'ae' | 'vae' | 'cvae';
export type ModelArch = 'conv' | 'mlp';

export interface ModelOptions {
  kind: ModelKind;
  arch: ModelArch;
  /** Latent size for vae/cvae (default 16 conv, 20 for the Kingma & Welling mlp); for an mlp ae, its bottleneck. */
  latentDim: number;
  /** Conv filters per layer (default 64). */
  filters: number;
  /** Hidden units of the mlp arch (default 500). */
  hiddenUnits: number;
  /** Seeds the initial weights and, with (step, image index), the VAE noise. */
  seed: number;
}

/** A part of a global batch. images: n*784 in [0,1]; indices: global image indices (they key the noise). */
export interface Batch {
  images: Float32Array;
  labels: Uint8Array;
  indices: Int32Array;
  n: number;
}

/** SUMS over the batch's images, not means (kl = 0 for ae). total = reconstruction + kl. */
export interface LossSums {
  total: number;
  reconstruction: number;
  kl: number;
}

export interface GradientResult {
  /** Gradient of the SUM of per-image losses, flat in paramShapes order. */
  grad: Float32Array;
  loss: LossSums;
  /** Images in the part (= batch.n). */
  count: number;
}

export interface ParamShape {
  /** Weight name as saved in model.json (stable across processes), e.g. 'enc_conv1/kernel'. */
  name: string;
  shape: number[];
  size: number;
  /** Offset of this weight in the flat vector. */
  offset: number;
}

export interface ModelBundle {
  readonly options: ModelOptions;
  /**
   * The whole model as one LayersModel. ae: x -> reconstruction (sigmoid
   * probabilities). vae/cvae: [x(, label one-hot)] -> [logits of decode(mu), mu, logvar].
   */
  readonly model: tf.LayersModel;
  /** vae/cvae: [z(, label one-hot)] -> logits [n,28,28,1]; null for ae. Shares weights with `model`. */
  readonly decoder: tf.LayersModel | null;
  readonly numParams: number;
  readonly paramShapes: readonly ParamShape[];
  getFlatWeights(): Float32Array;
  setFlatWeights(w: Float32Array): void;
  /** Gradient and loss SUMS over the batch; noise (vae) is keyed by (seed, step, batch.indices). */
  gradientSum(batch: Batch, step: number): GradientResult;
  /** Loss sums without gradients, with the same noise gradientSum would use at this step. */
  evaluate(batch: Batch, step: number): LossSums;
  /** Reconstructions as probabilities, n*784 (vae: decode(mu)). */
  reconstruct(images: Float32Array, labels: Uint8Array | null, n: number): Float32Array;
  /** Decoder probabilities for latent codes z (n*latentDim), n*784. Throws ModelError for ae. */
  decode(z: Float32Array, labels: Uint8Array | null, n: number): Float32Array;
  dispose(): void;
}

export const IMAGE_SIZE = 28;
export const IMAGE_PIXELS = IMAGE_SIZE * IMAGE_SIZE;
export const NUM_CLASSES = 10;
