// createModel: builds the layers graph for (kind, arch) and wraps it with the
// flat-weight and gradient API the trainer and workers use.
import * as tf from '@tensorflow/tfjs';
import { ModelError } from '../errors.js';
import type { BuiltModel } from './built.js';
import { buildConvAe } from './conv-ae.js';
import { buildConvVae } from './conv-vae.js';
import { flattenInto, layoutSize, paramLayout, readFlatWeights, writeFlatWeights } from './flat-weights.js';
import { aeLossSums, reparameterize, vaeLossSums, type LossTensors } from './losses.js';
import { buildMlp } from './mlp-vae.js';
import { batchNoise } from './noise.js';
import {
  IMAGE_PIXELS,
  IMAGE_SIZE,
  NUM_CLASSES,
  type Batch,
  type GradientResult,
  type LossSums,
  type ModelBundle,
  type ModelOptions,
  type ParamShape,
} from './types.js';

export const DEFAULT_MODEL_OPTIONS: Readonly<Omit<ModelOptions, 'kind' | 'arch'>> = {
  latentDim: 16,
  filters: 64,
  hiddenUnits: 500,
  seed: 1,
};

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new ModelError(`${name} must be a positive integer, got ${String(v)}`);
  return v;
}

function validateOptions(o: ModelOptions): ModelOptions {
  if (o.kind !== 'ae' && o.kind !== 'vae' && o.kind !== 'cvae') throw new ModelError(`unknown model kind '${String(o.kind)}' (ae, vae, cvae)`);
  if (o.arch !== 'conv' && o.arch !== 'mlp') throw new ModelError(`unknown model arch '${String(o.arch)}' (conv, mlp)`);
  if (typeof o.seed !== 'number' || !Number.isInteger(o.seed)) throw new ModelError(`seed must be an integer, got ${String(o.seed)}`);
  positiveInt('latentDim', o.latentDim);
  positiveInt('filters', o.filters);
  positiveInt('hiddenUnits', o.hiddenUnits);
  return { ...o };
}

function build(o: ModelOptions): BuiltModel {
  if (o.arch === 'mlp') return buildMlp({ kind: o.kind, hiddenUnits: o.hiddenUnits, latentDim: o.latentDim, seed: o.seed });
  if (o.kind === 'ae') return buildConvAe({ filters: o.filters, seed: o.seed });
  return buildConvVae({ filters: o.filters, latentDim: o.latentDim, seed: o.seed, conditional: o.kind === 'cvae' });
}

/** Images per forward/backward pass; bigger parts are summed chunk by chunk to bound memory. */
function chunkSize(o: ModelOptions): number {
  return o.arch === 'conv' ? 128 : 1024;
}

class Bundle implements ModelBundle {
  readonly options: ModelOptions;
  readonly model: tf.LayersModel;
  readonly decoder: tf.LayersModel | null;
  readonly numParams: number;
  readonly paramShapes: readonly ParamShape[];
  private readonly built: BuiltModel;
  private readonly weights: tf.LayerVariable[];
  private readonly chunk: number;
  private disposed = false;

  constructor(options: ModelOptions) {
    this.options = validateOptions(options);
    this.built = build(this.options);
    this.model = this.built.model;
    this.decoder = this.built.decoder;
    this.weights = this.model.trainableWeights;
    this.paramShapes = Object.freeze(paramLayout(this.weights));
    this.numParams = layoutSize(this.paramShapes);
    this.chunk = chunkSize(this.options);
  }

  getFlatWeights(): Float32Array {
    this.assertLive();
    return readFlatWeights(this.weights, this.paramShapes);
  }

  setFlatWeights(w: Float32Array): void {
    this.assertLive();
    writeFlatWeights(this.weights, this.paramShapes, w);
  }

  gradientSum(batch: Batch, step: number): GradientResult {
    this.assertLive();
    this.checkBatch(batch, true);
    const grad = new Float32Array(this.numParams);
    const loss: LossSums = { total: 0, reconstruction: 0, kl: 0 };
    const vars = this.weights.map((w) => w.read() as tf.Variable);
    const part = new Float32Array(this.numParams);
    for (let start = 0; start < batch.n; start += this.chunk) {
      const end = Math.min(batch.n, start + this.chunk);
      const kept: tf.Tensor[] = [];
      const { value, grads } = tf.variableGrads(() => {
        const l = this.lossTensors(batch, start, end, step);
        kept.push(tf.keep(l.reconstruction), tf.keep(l.kl));
        return l.total;
      }, vars);
      try {
        const ordered = vars.map((v) => {
          const g = grads[v.name];
          if (g === undefined) throw new ModelError(`no gradient for weight ${v.name}`);
          return g;
        });
        flattenInto(ordered, this.paramShapes, part);
        if (start === 0) grad.set(part);
        else for (let i = 0; i < part.length; i++) grad[i] = (grad[i] as number) + (part[i] as number);
        loss.total += value.dataSync()[0] as number;
        loss.reconstruction += (kept[0] as tf.Tensor).dataSync()[0] as number;
        loss.kl += (kept[1] as tf.Tensor).dataSync()[0] as number;
      } finally {
        tf.dispose([value, ...Object.values(grads), ...kept]);
      }
    }
    return { grad, loss, count: batch.n };
  }

  evaluate(batch: Batch, step: number): LossSums {
    this.assertLive();
    this.checkBatch(batch, true);
    const loss: LossSums = { total: 0, reconstruction: 0, kl: 0 };
    for (let start = 0; start < batch.n; start += this.chunk) {
      const end = Math.min(batch.n, start + this.chunk);
      const sums = tf.tidy(() => {
        const l = this.lossTensors(batch, start, end, step);
        return [l.total.dataSync()[0], l.reconstruction.dataSync()[0], l.kl.dataSync()[0]] as number[];
      });
      loss.total += sums[0] as number;
      loss.reconstruction += sums[1] as number;
      loss.kl += sums[2] as number;
    }
    return loss;
  }

  reconstruct(images: Float32Array, labels: Uint8Array | null, n: number): Float32Array {
    this.assertLive();
    if (images.length !== n * IMAGE_PIXELS) throw new ModelError(`images has ${images.length} values, expected ${n} x ${IMAGE_PIXELS}`);
    const labs = this.labelsFor(labels, n);
    const out = new Float32Array(n * IMAGE_PIXELS);
    for (let start = 0; start < n; start += this.chunk) {
      const end = Math.min(n, start + this.chunk);
      const probs = tf.tidy(() => {
        const inputs = this.encoderInputs(images, labs, start, end);
        if (this.built.kind === 'ae') return (this.model.apply(inputs) as tf.Tensor).dataSync();
        const [logits] = this.model.apply(inputs) as tf.Tensor[];
        return tf.sigmoid(logits as tf.Tensor).dataSync();
      });
      out.set(probs as Float32Array, start * IMAGE_PIXELS);
    }
    return out;
  }

  decode(z: Float32Array, labels: Uint8Array | null, n: number): Float32Array {
    this.assertLive();
    const decoder = this.decoder;
    if (decoder === null) throw new ModelError(`model '${this.options.kind}' has no decoder to sample from (use vae or cvae)`);
    const d = this.built.latentDim;
    if (z.length !== n * d) throw new ModelError(`z has ${z.length} values, expected ${n} x ${d}`);
    const labs = this.labelsFor(labels, n);
    const out = new Float32Array(n * IMAGE_PIXELS);
    for (let start = 0; start < n; start += this.chunk) {
      const end = Math.min(n, start + this.chunk);
      const probs = tf.tidy(() => {
        const zt = tf.tensor2d(z.subarray(start * d, end * d), [end - start, d]);
        const inputs = this.built.conditional ? [zt, this.oneHot(labs as Uint8Array, start, end)] : zt;
        return tf.sigmoid(decoder.apply(inputs) as tf.Tensor).dataSync();
      });
      out.set(probs as Float32Array, start * IMAGE_PIXELS);
    }
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // The encoder model is a view over layers the full model owns; the decoder's
    // layers are applied in both graphs, so each of the two releases them once.
    this.model.dispose();
    this.decoder?.dispose();
  }

  /** Loss sums for images [start, end) of the batch, as tensors. */
  private lossTensors(batch: Batch, start: number, end: number, step: number): LossTensors {
    const inputs = this.encoderInputs(batch.images, this.labelsFor(batch.labels, batch.n), start, end);
    const x = Array.isArray(inputs) ? (inputs[0] as tf.Tensor) : inputs;
    if (this.built.kind === 'ae') return aeLossSums(this.model.apply(inputs) as tf.Tensor, x);
    const encoder = this.built.encoder as tf.LayersModel;
    const decoder = this.built.decoder as tf.LayersModel;
    const [mu, logvar] = encoder.apply(inputs) as [tf.Tensor, tf.Tensor];
    const eps = tf.tensor2d(batchNoise(this.options.seed, step, batch.indices.subarray(start, end), this.built.latentDim), [end - start, this.built.latentDim]);
    const z = reparameterize(mu, logvar, eps);
    const logits = decoder.apply(Array.isArray(inputs) ? [z, inputs[1] as tf.Tensor] : z) as tf.Tensor;
    return vaeLossSums(logits, x, mu, logvar);
  }

  private encoderInputs(images: Float32Array, labels: Uint8Array | null, start: number, end: number): tf.Tensor | tf.Tensor[] {
    const x = tf.tensor4d(images.subarray(start * IMAGE_PIXELS, end * IMAGE_PIXELS), [end - start, IMAGE_SIZE, IMAGE_SIZE, 1]);
    return this.built.conditional ? [x, this.oneHot(labels as Uint8Array, start, end)] : x;
  }

  private oneHot(labels: Uint8Array, start: number, end: number): tf.Tensor2D {
    const n = end - start;
    const v = new Float32Array(n * NUM_CLASSES);
    for (let i = 0; i < n; i++) v[i * NUM_CLASSES + (labels[start + i] as number)] = 1;
    return tf.tensor2d(v, [n, NUM_CLASSES]);
  }

  private labelsFor(labels: Uint8Array | null, n: number): Uint8Array | null {
    if (!this.built.conditional) return labels;
    if (labels === null || labels.length < n) throw new ModelError(`model '${this.options.kind}' needs a label per image (${n}), got ${labels === null ? 'none' : labels.length}`);
    for (let i = 0; i < n; i++) {
      const l = labels[i] as number;
      if (l >= NUM_CLASSES) throw new ModelError(`label ${l} at ${i} is not a digit 0-9`);
    }
    return labels;
  }

  private checkBatch(batch: Batch, needIndices: boolean): void {
    const { n } = batch;
    if (!Number.isInteger(n) || n < 1) throw new ModelError(`batch.n must be a positive integer, got ${String(n)}`);
    if (batch.images.length !== n * IMAGE_PIXELS) throw new ModelError(`batch.images has ${batch.images.length} values, expected ${n} x ${IMAGE_PIXELS}`);
    if (needIndices && this.built.kind !== 'ae' && batch.indices.length < n) throw new ModelError(`batch.indices has ${batch.indices.length} entries, expected ${n} (they key the noise)`);
  }

  private assertLive(): void {
    if (this.disposed) throw new ModelError('the model bundle was disposed');
  }
}

/** Builds a model with seeded initial weights: the same options give bitwise the same weights. */
export function createModel(options: ModelOptions): ModelBundle {
  return new Bundle(options);
}
