// Building blocks shared by the model files: seeded initialisers, the conv trunk
// and the conv decoder, all with explicit layer names so that weight names (and
// so the flat layout and model.json) are the same in every process.
import * as tf from '@tensorflow/tfjs';
import { IMAGE_SIZE } from './types.js';

/** Padding that takes 28x28 to 32x32, so three 2x pools land on 4x4. */
export const PAD = 2;

/** Hands out a distinct seed per initialiser, so each layer's draw is reproducible. */
export class SeedSequence {
  private next: number;
  constructor(seed: number) {
    // Keep clear of 0 and of small integers reused by other seeded code.
    this.next = ((seed >>> 0) % 1_000_000) * 1000 + 17;
  }
  take(): number {
    return this.next++;
  }
}

export function glorot(seeds: SeedSequence): ReturnType<typeof tf.initializers.glorotUniform> {
  return tf.initializers.glorotUniform({ seed: seeds.take() });
}

export function conv3x3(name: string, filters: number, activation: 'relu' | 'sigmoid' | 'linear', useBias: boolean, seeds: SeedSequence): tf.layers.Layer {
  return tf.layers.conv2d({
    name,
    filters,
    kernelSize: 3,
    padding: 'same',
    activation,
    useBias,
    kernelInitializer: glorot(seeds),
    biasInitializer: 'zeros',
  });
}

export function dense(name: string, units: number, activation: 'relu' | 'tanh' | 'sigmoid' | 'linear', seeds: SeedSequence): tf.layers.Layer {
  return tf.layers.dense({ name, units, activation, kernelInitializer: glorot(seeds), biasInitializer: 'zeros' });
}

/** Encoder trunk: 28x28x1 -> pad 32 -> 3 x [conv 3x3 F, ReLU, no bias, max-pool 2] -> 4x4xF. */
export function convEncoderTrunk(x: tf.SymbolicTensor, filters: number, seeds: SeedSequence): tf.SymbolicTensor {
  let h = tf.layers.zeroPadding2d({ name: 'enc_pad', padding: PAD }).apply(x) as tf.SymbolicTensor;
  for (let i = 1; i <= 3; i++) {
    h = conv3x3(`enc_conv${i}`, filters, 'relu', false, seeds).apply(h) as tf.SymbolicTensor;
    h = tf.layers.maxPooling2d({ name: `enc_pool${i}`, poolSize: 2, strides: 2 }).apply(h) as tf.SymbolicTensor;
  }
  return h;
}

/**
 * Decoder layers from 4x4xF: 3 x [conv 3x3 F, ReLU, no bias, upsample 2] -> 32x32xF,
 * final conv 3x3 to 1 channel (with bias), crop back to 28x28. Returned as a function
 * so the same layer objects (the same weights) can be applied to several inputs.
 */
export function convDecoderTail(filters: number, outActivation: 'sigmoid' | 'linear', seeds: SeedSequence): (h: tf.SymbolicTensor) => tf.SymbolicTensor {
  const layers: tf.layers.Layer[] = [];
  for (let i = 1; i <= 3; i++) {
    layers.push(conv3x3(`dec_conv${i}`, filters, 'relu', false, seeds));
    layers.push(tf.layers.upSampling2d({ name: `dec_up${i}`, size: [2, 2] }));
  }
  layers.push(conv3x3('dec_out', 1, outActivation, true, seeds));
  layers.push(tf.layers.cropping2D({ name: 'dec_crop', cropping: PAD }));
  return (h) => layers.reduce((t, l) => l.apply(t) as tf.SymbolicTensor, h);
}

export function imageInput(name = 'image'): tf.SymbolicTensor {
  return tf.input({ name, shape: [IMAGE_SIZE, IMAGE_SIZE, 1] });
}
