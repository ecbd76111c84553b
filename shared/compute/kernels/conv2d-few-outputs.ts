// Conv2D / FusedConv2D for wasm when the conv has very few output channels (the
// models' last conv, 64 -> 1 at 32x32). XNNPACK's conv runs that at ~2.5 GFLOP/s
// (30 ms for batch 64): its micro-kernels tile the output channels. Here one plain
// matMul computes every tap's contribution at once,
//   P[(b,i,j), (kr,kc,o)] = sum_c x[b,i,j,c] * W[kr,kc,c,o]     ([B*H*W, ci] x [ci, kh*kw*co]),
// and a gather adds the taps up:
//   y[b,oh,ow,o] = bias[o] + sum_{kr,kc} P[(b, oh*s+kr-pt, ow*s+kc-pl), (kr,kc,o)].
// Same products, summed in a different order. Other convs go to the stock kernel.
import type * as tf from '@tensorflow/tfjs';
import { convGeometry } from './conv-geometry.js';
import { asWasm, heapF32, release, requireInput, runWasmKernel, view, type KernelArgs } from './wasm-ops.js';

type KernelFn = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

/** Output channels up to which the tap-matmul path is used. */
export const FEW_OUTPUTS = 4;
/** Below this many input channels XNNPACK's direct conv is already fine. */
const MIN_INPUTS = 8;
/** P holds kh*kw*co values per input pixel: only for small kernels (not the 32x32 'filters' of gradient convs). */
const MAX_TAPS = 25;

export function fewOutputsConvKernel(kernel: 'Conv2D' | 'FusedConv2D', original: KernelFn): KernelFn {
  return (args: KernelArgs) => {
    const attrs = args.attrs ?? {};
    const x = requireInput(args.inputs, 'x', kernel);
    const filter = requireInput(args.inputs, 'filter', kernel);
    const activation = (attrs['activation'] ?? 'linear') as string;
    const dil = attrs['dilations'] as number | [number, number] | undefined;
    const dilated = dil !== undefined && (Array.isArray(dil) ? dil[0] !== 1 || dil[1] !== 1 : dil !== 1);
    const co = filter.shape[3] as number;
    const ci = filter.shape[2] as number;
    const taps = (filter.shape[0] as number) * (filter.shape[1] as number);
    const biasIn = args.inputs['bias'];
    const biasOk = biasIn == null || biasIn.shape.reduce((a, b) => a * b, 1) === 1 || biasIn.shape.reduce((a, b) => a * b, 1) === co;
    const usable =
      co <= FEW_OUTPUTS && ci >= MIN_INPUTS && taps <= MAX_TAPS && !dilated && biasOk && x.dtype === 'float32' &&
      (attrs['dataFormat'] ?? 'NHWC') === 'NHWC' &&
      (activation === 'linear' || activation === 'relu') &&
      args.inputs['preluActivationWeights'] == null;
    if (!usable) return original(args);
    const backend = asWasm(args.backend);
    const g = convGeometry(x.shape, filter.shape, attrs, kernel);
    const { batch: B, inH: H, inW: W, outH: Ho, outW: Wo, kh, kw, sh, sw, padTop: pt, padLeft: pl } = g;
    const T = kh * kw * co;
    const wm = backend.makeOutput([1, ci, T], 'float32');
    {
      const src = heapF32(backend, filter);
      const dst = heapF32(backend, wm);
      for (let tap = 0; tap < kh * kw; tap++) {
        for (let c = 0; c < ci; c++) {
          for (let o = 0; o < co; o++) dst[c * T + tap * co + o] = src[(tap * ci + c) * co + o] as number;
        }
      }
    }
    const p = runWasmKernel('BatchMatMul', backend, { a: view(x, [1, B * H * W, ci]), b: wm }, { transposeA: false, transposeB: false });
    release(backend, wm);
    const out = backend.makeOutput([B, Ho, Wo, co], 'float32');
    const P = heapF32(backend, p);
    const y = heapF32(backend, out);
    const biasInfo = args.inputs['bias'];
    const bias = biasInfo != null ? heapF32(backend, biasInfo) : null;
    const relu = activation === 'relu';
    for (let b = 0; b < B; b++) {
      for (let oh = 0; oh < Ho; oh++) {
        const i0 = oh * sh - pt;
        for (let ow = 0; ow < Wo; ow++) {
          const j0 = ow * sw - pl;
          const d = ((b * Ho + oh) * Wo + ow) * co;
          for (let o = 0; o < co; o++) {
            let acc = 0;
            for (let kr = 0; kr < kh; kr++) {
              const i = i0 + kr;
              if (i < 0 || i >= H) continue;
              for (let kc = 0; kc < kw; kc++) {
                const j = j0 + kc;
                if (j < 0 || j >= W) continue;
                acc += P[((b * H + i) * W + j) * T + (kr * kw + kc) * co + o] as number;
              }
            }
            if (bias !== null) acc += bias[bias.length === 1 ? 0 : o] as number;
            y[d + o] = relu && acc < 0 ? 0 : acc;
          }
        }
      }
    }
    release(backend, p);
    return out;
  };
}
