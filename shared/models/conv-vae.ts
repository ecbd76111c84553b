// Convolutional VAE and CVAE. Encoder: the ae's conv trunk, flatten (cvae: concat
// the label one-hot), two dense heads for mu and logvar. The sample
// z = mu + exp(logvar/2) * eps happens outside the layers graph (eps from noise.ts).
// Decoder mirrors the trunk: (cvae: concat one-hot) dense to 4x4xF with ReLU,
// 3 x [conv, ReLU, upsample], conv to 1 channel: Bernoulli logits (linear).
import * as tf from '@tensorflow/tfjs';
import { convDecoderTail, convEncoderTrunk, dense, imageInput, SeedSequence } from './layers-common.js';
import type { BuiltModel } from './built.js';
import { NUM_CLASSES } from './types.js';

export function buildConvVae(opts: { filters: number; latentDim: number; seed: number; conditional: boolean }): BuiltModel {
  const { filters, latentDim, conditional } = opts;
  const seeds = new SeedSequence(opts.seed);
  const x = imageInput();
  const y = conditional ? tf.input({ name: 'label', shape: [NUM_CLASSES] }) : null;
  let h = convEncoderTrunk(x, filters, seeds);
  h = tf.layers.flatten({ name: 'enc_flatten' }).apply(h) as tf.SymbolicTensor;
  if (y !== null) h = tf.layers.concatenate({ name: 'enc_concat_label' }).apply([h, y]) as tf.SymbolicTensor;
  const mu = dense('enc_mu', latentDim, 'linear', seeds).apply(h) as tf.SymbolicTensor;
  const logvar = dense('enc_logvar', latentDim, 'linear', seeds).apply(h) as tf.SymbolicTensor;

  const concatZ = conditional ? tf.layers.concatenate({ name: 'dec_concat_label' }) : null;
  const fromZ = dense('dec_dense', 4 * 4 * filters, 'relu', seeds);
  const toGrid = tf.layers.reshape({ name: 'dec_reshape', targetShape: [4, 4, filters] });
  const tail = convDecoderTail(filters, 'linear', seeds);
  const decode = (z: tf.SymbolicTensor, label: tf.SymbolicTensor | null): tf.SymbolicTensor => {
    let t = concatZ !== null && label !== null ? (concatZ.apply([z, label]) as tf.SymbolicTensor) : z;
    t = fromZ.apply(t) as tf.SymbolicTensor;
    t = toGrid.apply(t) as tf.SymbolicTensor;
    return tail(t);
  };

  const inputs = y !== null ? [x, y] : [x];
  const name = conditional ? 'conv_cvae' : 'conv_vae';
  const model = tf.model({ name, inputs, outputs: [decode(mu, y), mu, logvar] });
  const encoder = tf.model({ name: `${name}_encoder`, inputs, outputs: [mu, logvar] });
  const z = tf.input({ name: 'z', shape: [latentDim] });
  const yd = conditional ? tf.input({ name: 'label', shape: [NUM_CLASSES] }) : null;
  const decoder = tf.model({ name: `${name}_decoder`, inputs: yd !== null ? [z, yd] : [z], outputs: decode(z, yd) });
  return { kind: conditional ? 'cvae' : 'vae', model, encoder, decoder, conditional, latentDim };
}
