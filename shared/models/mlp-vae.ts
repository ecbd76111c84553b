// Kingma & Welling's MNIST VAE (2013): 784 -> hidden tanh -> (mu, logvar) of the
// latent, decoder latent -> hidden tanh -> 784 Bernoulli logits. The cvae variant
// concatenates the label one-hot into both inputs. An mlp ae (hidden tanh ->
// linear bottleneck -> hidden tanh -> 784 sigmoid) exists for symmetry.
import * as tf from '@tensorflow/tfjs';
import { dense, imageInput, SeedSequence } from './layers-common.js';
import type { BuiltModel } from './built.js';
import { IMAGE_PIXELS, IMAGE_SIZE, NUM_CLASSES, type ModelKind } from './types.js';

export function buildMlp(opts: { kind: ModelKind; hiddenUnits: number; latentDim: number; seed: number }): BuiltModel {
  const { kind, hiddenUnits, latentDim } = opts;
  const conditional = kind === 'cvae';
  const seeds = new SeedSequence(opts.seed);
  const x = imageInput();
  const y = conditional ? tf.input({ name: 'label', shape: [NUM_CLASSES] }) : null;
  let h = tf.layers.flatten({ name: 'enc_flatten' }).apply(x) as tf.SymbolicTensor;
  if (y !== null) h = tf.layers.concatenate({ name: 'enc_concat_label' }).apply([h, y]) as tf.SymbolicTensor;
  h = dense('enc_hidden', hiddenUnits, 'tanh', seeds).apply(h) as tf.SymbolicTensor;

  const concatZ = conditional ? tf.layers.concatenate({ name: 'dec_concat_label' }) : null;
  const hidden = dense('dec_hidden', hiddenUnits, 'tanh', seeds);
  const out = dense('dec_out', IMAGE_PIXELS, kind === 'ae' ? 'sigmoid' : 'linear', seeds);
  const toImage = tf.layers.reshape({ name: 'dec_reshape', targetShape: [IMAGE_SIZE, IMAGE_SIZE, 1] });
  const decode = (z: tf.SymbolicTensor, label: tf.SymbolicTensor | null): tf.SymbolicTensor => {
    let t = concatZ !== null && label !== null ? (concatZ.apply([z, label]) as tf.SymbolicTensor) : z;
    t = hidden.apply(t) as tf.SymbolicTensor;
    t = out.apply(t) as tf.SymbolicTensor;
    return toImage.apply(t) as tf.SymbolicTensor;
  };

  if (kind === 'ae') {
    const code = dense('enc_code', latentDim, 'linear', seeds).apply(h) as tf.SymbolicTensor;
    const model = tf.model({ name: 'mlp_ae', inputs: x, outputs: decode(code, null) });
    return { kind, model, encoder: null, decoder: null, conditional: false, latentDim };
  }
  const mu = dense('enc_mu', latentDim, 'linear', seeds).apply(h) as tf.SymbolicTensor;
  const logvar = dense('enc_logvar', latentDim, 'linear', seeds).apply(h) as tf.SymbolicTensor;
  const inputs = y !== null ? [x, y] : [x];
  const name = conditional ? 'mlp_cvae' : 'mlp_vae';
  const model = tf.model({ name, inputs, outputs: [decode(mu, y), mu, logvar] });
  const encoder = tf.model({ name: `${name}_encoder`, inputs, outputs: [mu, logvar] });
  const z = tf.input({ name: 'z', shape: [latentDim] });
  const yd = conditional ? tf.input({ name: 'label', shape: [NUM_CLASSES] }) : null;
  const decoder = tf.model({ name: `${name}_decoder`, inputs: yd !== null ? [z, yd] : [z], outputs: decode(z, yd) });
  return { kind, model, encoder, decoder, conditional, latentDim };
}
