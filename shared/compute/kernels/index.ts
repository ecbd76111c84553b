// Registers this project's wasm kernels with tfjs's kernel registry (a registry
// that tfjs keeps process-wide; registration is idempotent and keeps the stock
// kernel it replaces as the fallback for cases the fast path does not cover).
import * as tf from '@tensorflow/tfjs';
import { BackendError } from '../../errors.js';
import { untransposedMatMulKernel } from './batch-matmul.js';
import { conv2DBackpropFilterKernel } from './conv2d-backprop-filter.js';
import { conv2DBackpropInputKernel } from './conv2d-backprop-input.js';
import { fewOutputsConvKernel } from './conv2d-few-outputs.js';
import { sharedIdentityKernel } from './identity.js';
import { maxPoolGradKernel } from './max-pool-grad.js';
import { resizeNearestNeighborGradKernel } from './resize-nearest-grad.js';
import { fastSliceKernel } from './slice.js';
import { isLockstepKernel, markKernel, type KernelArgs } from './wasm-ops.js';

export { conv2DBackpropFilterKernel, chooseFilterGradStrategy, type FilterGradStrategy } from './conv2d-backprop-filter.js';
export { conv2DBackpropInputKernel } from './conv2d-backprop-input.js';
export { fewOutputsConvKernel } from './conv2d-few-outputs.js';
export { maxPoolGradKernel } from './max-pool-grad.js';
export { resizeNearestNeighborGradKernel } from './resize-nearest-grad.js';
export { untransposedMatMulKernel } from './batch-matmul.js';

type KernelFn = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

/** Names of the wasm kernels that registerWasmKernels installs or replaces. */
export const WASM_KERNELS = [
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'Conv2D',
  'FusedConv2D',
  'BatchMatMul',
  '_FusedMatMul',
  'MaxPoolGrad',
  'ResizeNearestNeighborGrad',
  'Identity',
  'Cast',
  'Slice',
] as const;

function install(name: string, make: (original: tf.KernelConfig | undefined) => KernelFn): void {
  const existing = tf.getKernel(name, 'wasm');
  if (existing !== undefined && isLockstepKernel(existing.kernelFunc)) return;
  const fn = markKernel(make(existing));
  if (existing !== undefined) tf.unregisterKernel(name, 'wasm');
  const config: tf.KernelConfig = { kernelName: name, backendName: 'wasm', kernelFunc: fn as tf.KernelFunc };
  // The stock kernel's setup binds its wasm export; keep it so the fallback works
  // even when the backend is (re)initialised after this registration.
  if (existing?.setupFunc !== undefined) config.setupFunc = existing.setupFunc;
  if (existing?.disposeFunc !== undefined) config.disposeFunc = existing.disposeFunc;
  tf.registerKernel(config);
}

function stock(name: string, original: tf.KernelConfig | undefined): KernelFn {
  if (original === undefined) throw new BackendError(`wasm kernel '${name}' is missing from @tensorflow/tfjs-backend-wasm`);
  return original.kernelFunc as KernelFn;
}

/**
 * Installs the fast wasm kernels. Safe to call more than once and before or after
 * the wasm backend is initialised. Returns the names of the kernels in place.
 */
export function registerWasmKernels(): string[] {
  install('Conv2DBackpropFilter', () => conv2DBackpropFilterKernel('auto'));
  install('Conv2DBackpropInput', () => conv2DBackpropInputKernel());
  install('Conv2D', (orig) => fewOutputsConvKernel('Conv2D', stock('Conv2D', orig)));
  install('FusedConv2D', (orig) => fewOutputsConvKernel('FusedConv2D', stock('FusedConv2D', orig)));
  install('BatchMatMul', (orig) => untransposedMatMulKernel('BatchMatMul', stock('BatchMatMul', orig)));
  install('_FusedMatMul', (orig) => untransposedMatMulKernel('_FusedMatMul', stock('_FusedMatMul', orig)));
  install('MaxPoolGrad', () => maxPoolGradKernel());
  install('ResizeNearestNeighborGrad', (orig) => resizeNearestNeighborGradKernel(stock('ResizeNearestNeighborGrad', orig)));
  install('Identity', (orig) => sharedIdentityKernel('Identity', stock('Identity', orig)));
  install('Cast', (orig) => sharedIdentityKernel('Cast', stock('Cast', orig)));
  install('Slice', (orig) => fastSliceKernel(stock('Slice', orig)));
  return [...WASM_KERNELS];
}
