// BatchMatMul and _FusedMatMul with transposeA / transposeB done as an explicit
// wasm Transpose followed by a plain matMul: XNNPACK only covers the plain case,
// and the transposed ones fall to a loop ~14x slower (42 ms against 3 ms for the
// dense-layer gradients of a 784x500 layer at batch 100). Same products, the
// summation order inside XNNPACK aside.
import type * as tf from '@tensorflow/tfjs';
import { asWasm, release, requireInput, transposeLast2, type KernelArgs } from './wasm-ops.js';

type KernelFn = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

export function untransposedMatMulKernel(kernel: 'BatchMatMul' | '_FusedMatMul', original: KernelFn): KernelFn {
  return (args: KernelArgs) => {
    const attrs = args.attrs ?? {};
    const ta = attrs['transposeA'] === true;
    const tb = attrs['transposeB'] === true;
    if (!ta && !tb) return original(args);
    const backend = asWasm(args.backend);
    const a = requireInput(args.inputs, 'a', kernel);
    const b = requireInput(args.inputs, 'b', kernel);
    const temps: tf.TensorInfo[] = [];
    const a2 = ta ? transposeLast2(backend, a) : a;
    if (ta) temps.push(a2);
    const b2 = tb ? transposeLast2(backend, b) : b;
    if (tb) temps.push(b2);
    try {
      return original({
        inputs: { ...args.inputs, a: a2, b: b2 },
        backend: args.backend,
        attrs: { ...attrs, transposeA: false, transposeB: false },
      });
    } finally {
      release(backend, ...temps);
    }
  };
}
