// The seed's convolutional autoencoder. Output layer: sigmoid, so the model emits
// pixel probabilities and the loss (per-image sum of squared error, summed here and
// averaged over the global batch by the caller) compares them with intensities.
import * as tf from '@tensorflow/tfjs';
import { convDecoderTail, convEncoderTrunk, imageInput, SeedSequence } from './layers-common.js';
import type { BuiltModel } from './built.js';

export function buildConvAe(opts: { filters: number; seed: number }): BuiltModel {
  const seeds = new SeedSequence(opts.seed);
  const x = imageInput();
  const h = convEncoderTrunk(x, opts.filters, seeds);
  const out = convDecoderTail(opts.filters, 'sigmoid', seeds)(h);
  const model = tf.model({ name: 'conv_ae', inputs: x, outputs: out });
  return { kind: 'ae', model, encoder: null, decoder: null, conditional: false, latentDim: 0 };
}
