// One flat Float32Array for all trainable weights, in model.trainableWeights order:
// the layout the protocol ships and the optimizer updates.
import * as tf from '@tensorflow/tfjs';
import { ModelError } from '../errors.js';
import type { ParamShape } from './types.js';

export function paramLayout(weights: readonly tf.LayerVariable[]): ParamShape[] {
  let offset = 0;
  return weights.map((w) => {
    const shape = w.shape.map((d) => {
      if (d === null) throw new ModelError(`weight ${w.originalName} has an undefined dimension`);
      return d;
    });
    const size = shape.reduce((a, b) => a * b, 1);
    const p: ParamShape = { name: w.originalName, shape, size, offset };
    offset += size;
    return p;
  });
}

export function layoutSize(layout: readonly ParamShape[]): number {
  const last = layout[layout.length - 1];
  return last === undefined ? 0 : last.offset + last.size;
}

/** Copies tensors (one per layout entry, same order) into one flat vector. */
export function flattenInto(tensors: readonly tf.Tensor[], layout: readonly ParamShape[], out?: Float32Array): Float32Array {
  if (tensors.length !== layout.length) throw new ModelError(`expected ${layout.length} tensors, got ${tensors.length}`);
  const flat = out ?? new Float32Array(layoutSize(layout));
  tensors.forEach((t, i) => {
    const p = layout[i] as ParamShape;
    if (t.size !== p.size) throw new ModelError(`${p.name}: expected ${p.size} values, got ${t.size}`);
    flat.set(t.dataSync() as Float32Array, p.offset);
  });
  return flat;
}

export function readFlatWeights(weights: readonly tf.LayerVariable[], layout: readonly ParamShape[]): Float32Array {
  return flattenInto(weights.map((w) => w.read()), layout);
}

export function writeFlatWeights(weights: readonly tf.LayerVariable[], layout: readonly ParamShape[], flat: Float32Array): void {
  const expected = layoutSize(layout);
  if (flat.length !== expected) throw new ModelError(`flat weights have ${flat.length} values, the model ${expected}`);
  for (let i = 0; i < weights.length; i++) {
    const p = layout[i] as ParamShape;
    const w = weights[i] as tf.LayerVariable;
    // A copy, not a view: the tensor must not alias the caller's buffer.
    const t = tf.tensor(flat.slice(p.offset, p.offset + p.size), p.shape, 'float32');
    w.write(t);
    t.dispose();
  }
}
