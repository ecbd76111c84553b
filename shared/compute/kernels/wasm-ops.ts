// Small helpers for kernels that are composed from the wasm backend's own kernel
// functions. They work on TensorInfos, never on tf.Tensors, so nothing here
// touches the engine's bookkeeping: every intermediate is released with
// backend.disposeData, which also drops XNNPACK operators cached for it.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BackendError } from '../../errors.js';

export type KernelArgs = {
  inputs: tf.NamedTensorInfoMap;
  backend: tf.KernelBackend;
  attrs?: tf.NamedAttrMap;
};

export function asWasm(backend: tf.KernelBackend): BackendWasm {
  return backend as BackendWasm;
}

export function requireInput(inputs: tf.NamedTensorInfoMap, name: string, kernel: string): tf.TensorInfo {
  const t = inputs[name];
  if (t === undefined) throw new BackendError(`${kernel}: missing input '${name}'`);
  return t;
}

/** Runs a kernel as currently registered for wasm (so wrapped kernels are used). */
export function runWasmKernel(name: string, backend: BackendWasm, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap = {}): tf.TensorInfo {
  const config = tf.getKernel(name, 'wasm');
  if (config === undefined) throw new BackendError(`wasm kernel '${name}' is not registered`);
  const out = config.kernelFunc({ inputs, backend, attrs });
  if (Array.isArray(out)) throw new BackendError(`wasm kernel '${name}' returned several outputs`);
  return out;
}

/** A view of the same data with another shape; owns no reference. */
export function view(info: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  return { dataId: info.dataId, shape, dtype: info.dtype };
}

export function release(backend: BackendWasm, ...infos: tf.TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

/**
 * Float32 view of a tensor in the wasm heap. Any later allocation may grow the
 * heap and detach the view, so take views only after the last makeOutput.
 */
export function heapF32(backend: BackendWasm, info: tf.TensorInfo): Float32Array {
  if (info.dtype !== 'float32') throw new BackendError(`expected a float32 tensor, got ${info.dtype}`);
  return backend.typedArrayFromHeap(info) as Float32Array;
}

/** Swaps the last two axes (float32: blocked JS transpose, else the wasm Transpose kernel); caller releases the result. */
export function transposeLast2(backend: BackendWasm, x: tf.TensorInfo): tf.TensorInfo {
  const r = x.shape.length;
  const rows = x.shape[r - 2] as number;
  const cols = x.shape[r - 1] as number;
  if (x.dtype === 'float32') {
    const shape = x.shape.slice();
    shape[r - 2] = cols;
    shape[r - 1] = rows;
    const out = backend.makeOutput(shape, 'float32');
    const src = heapF32(backend, x);
    const dst = heapF32(backend, out);
    const m = rows * cols;
    for (let off = 0; off < src.length; off += m) transpose2d(src.subarray(off, off + m), dst.subarray(off, off + m), rows, cols);
    return out;
  }
  const perm = Array.from({ length: r }, (_, i) => i);
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return runWasmKernel('Transpose', backend, { x }, { perm });
}

/** Marks kernel functions this project registered, so registration is idempotent. */
export const LOCKSTEP_KERNEL = Symbol.for('lockstep.kernel');

export function markKernel<F extends object>(fn: F): F {
  Object.defineProperty(fn, LOCKSTEP_KERNEL, { value: true });
  return fn;
}

export function isLockstepKernel(fn: unknown): boolean {
  return typeof fn === 'function' && (fn as unknown as Record<symbol, unknown>)[LOCKSTEP_KERNEL] === true;
}

/**
 * dst[c*rows + r] = src[r*cols + c]. Eight columns per pass over a band of rows:
 * each source cache line is read once and eight output rows are streamed, ~5 ms for
 * [65536, 64] (the wasm Transpose kernel: 28 ms; a plain row loop: 15 ms).
 */
export function transpose2d(src: Float32Array, dst: Float32Array, rows: number, cols: number): void {
  const T = 128;
  const c8 = cols - (cols % 8);
  for (let r0 = 0; r0 < rows; r0 += T) {
    const rEnd = Math.min(rows, r0 + T);
    for (let c = 0; c < c8; c += 8) {
      const d0 = c * rows;
      const d1 = d0 + rows;
      const d2 = d1 + rows;
      const d3 = d2 + rows;
      const d4 = d3 + rows;
      const d5 = d4 + rows;
      const d6 = d5 + rows;
      const d7 = d6 + rows;
      for (let r = r0; r < rEnd; r++) {
        const s = r * cols + c;
        dst[d0 + r] = src[s] as number;
        dst[d1 + r] = src[s + 1] as number;
        dst[d2 + r] = src[s + 2] as number;
        dst[d3 + r] = src[s + 3] as number;
        dst[d4 + r] = src[s + 4] as number;
        dst[d5 + r] = src[s + 5] as number;
        dst[d6 + r] = src[s + 6] as number;
        dst[d7 + r] = src[s + 7] as number;
      }
    }
    for (let c = c8; c < cols; c++) {
      const d = c * rows;
      for (let r = r0; r < rEnd; r++) dst[d + r] = src[r * cols + c] as number;
    }
  }
}
