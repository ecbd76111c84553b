// Slice for wasm. The stock kernel first copies the whole input out of the heap
// (readSync) and then copies one innermost row at a time through a new subarray
// each: 6-7 ms to crop [64,32,32,1] to [64,28,28,1] (Cropping2D). This one reads the
// heap in place and copies each contiguous run directly.
import type * as tf from '@tensorflow/tfjs';
import * as tfc from '@tensorflow/tfjs';
import { asWasm, requireInput, type KernelArgs } from './wasm-ops.js';

type KernelFn = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

export function fastSliceKernel(original: KernelFn): KernelFn {
  return (args: KernelArgs) => {
    const x = requireInput(args.inputs, 'x', 'Slice');
    if (x.dtype === 'string' || x.shape.length === 0) return original(args);
    const backend = asWasm(args.backend);
    const attrs = args.attrs ?? {};
    const parsed = tfc.slice_util.parseSliceParams(x as tf.Tensor, attrs['begin'] as number | number[], attrs['size'] as number | number[] | undefined);
    const begin = parsed[0] as number[];
    const size = parsed[1] as number[];
    const out = backend.makeOutput(size.slice(), x.dtype);
    const total = size.reduce((a, b) => a * b, 1);
    if (total === 0) return out;
    const src = backend.typedArrayFromHeap(x);
    const dst = backend.typedArrayFromHeap(out);
    const rank = x.shape.length;
    const strides = new Array<number>(rank);
    let acc = 1;
    for (let d = rank - 1; d >= 0; d--) {
      strides[d] = acc;
      acc *= x.shape[d] as number;
    }
    // Innermost axes taken whole (after the first partial one from the end) form one contiguous run.
    let inner = rank - 1;
    let run = size[inner] as number;
    while (inner > 0 && size[inner] === x.shape[inner] && begin[inner] === 0) {
      inner--;
      run *= size[inner] as number;
    }
    // Odometer over the outer axes [0, inner).
    const idx = new Array<number>(inner).fill(0);
    let base = 0;
    for (let d = 0; d <= inner; d++) base += (begin[d] as number) * (strides[d] as number);
    let o = 0;
    for (;;) {
      let s = base;
      for (let d = 0; d < inner; d++) s += (idx[d] as number) * (strides[d] as number);
      if (run >= 64) {
        dst.set(src.subarray(s, s + run), o);
        o += run;
      } else {
        for (let k = 0; k < run; k++) dst[o++] = src[s + k] as number;
      }
      let d = inner - 1;
      while (d >= 0) {
        idx[d] = (idx[d] as number) + 1;
        if ((idx[d] as number) < (size[d] as number)) break;
        idx[d] = 0;
        d--;
      }
      if (d < 0) break;
    }
    return out;
  };
}
