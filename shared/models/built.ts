// What each model file builds; factory.ts wraps it into a ModelBundle.
import type * as tf from '@tensorflow/tfjs';
import type { ModelKind } from './types.js';

export interface BuiltModel {
  kind: ModelKind;
  /** ae: x -> probabilities. vae/cvae: [x(, y)] -> [logits of decode(mu), mu, logvar]. */
  model: tf.LayersModel;
  /** vae/cvae: [x(, y)] -> [mu, logvar]; same layers as `model`. */
  encoder: tf.LayersModel | null;
  /** vae/cvae: [z(, y)] -> logits; same layers as `model`. */
  decoder: tf.LayersModel | null;
  /** cvae: the label one-hot is a second input of all three models. */
  conditional: boolean;
  latentDim: number;
}
