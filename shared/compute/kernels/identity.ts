// Identity and same-dtype Cast for wasm without a copy. tfjs's engine clones every
// tensor it saves for the backward pass (saveTensorsForBackwardMode -> Identity),
// and the ReLU gradient casts float32 to float32; the stock wasm kernels copy the
// data each time (10 ms per conv-AE step at batch 64). Tensor data is immutable in
// tfjs, so sharing it with a reference count is what the cpu backend does too.
import type * as tf from '@tensorflow/tfjs';
import { asWasm, requireInput, type KernelArgs } from './wasm-ops.js';

type KernelFn = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

export function sharedIdentityKernel(kernel: 'Identity' | 'Cast', original: KernelFn): KernelFn {
  return (args: KernelArgs) => {
    const x = requireInput(args.inputs, 'x', kernel);
    const dtype = kernel === 'Cast' ? (args.attrs?.['dtype'] as string | undefined) : x.dtype;
    if (x.dtype === 'string' || dtype !== x.dtype) return original(args);
    const backend = asWasm(args.backend);
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
  };
}
