// MaxPoolGrad for wasm. The stock kernel takes 111 ms for a 64x32x32x64 input
// (2x2, stride 2); this loop over the heap takes ~20 ms. Semantics follow the cpu
// backend: each window's gradient goes to the FIRST maximum in row-major window
// order (ties, e.g. all-zero ReLU windows, send it to one position only), and
// overlapping windows accumulate.
import * as tf from '@tensorflow/tfjs';
import { asWasm, heapF32, requireInput, type KernelArgs } from './wasm-ops.js';

const KERNEL = 'MaxPoolGrad';

export function maxPoolGradKernel() {
  return (args: KernelArgs): tf.TensorInfo => {
    const backend = asWasm(args.backend);
    const dy = requireInput(args.inputs, 'dy', KERNEL);
    const input = requireInput(args.inputs, 'input', KERNEL);
    const attrs = args.attrs ?? {};
    const info = tf.backend_util.computePool2DInfo(
      input.shape as [number, number, number, number],
      attrs['filterSize'] as [number, number] | number,
      attrs['strides'] as [number, number] | number,
      1,
      attrs['pad'] as 'valid' | 'same' | number,
      attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
    );
    const B = info.batchSize;
    const H = info.inHeight;
    const W = info.inWidth;
    const C = info.inChannels;
    const Ho = info.outHeight;
    const Wo = info.outWidth;
    const fh = info.effectiveFilterHeight;
    const fw = info.effectiveFilterWidth;
    const dh = info.dilationHeight;
    const dw = info.dilationWidth;
    const sh = info.strideHeight;
    const sw = info.strideWidth;
    const pt = info.padInfo.top;
    const pl = info.padInfo.left;
    const out = backend.makeOutput(input.shape.slice(), 'float32');
    const x = heapF32(backend, input);
    const g = heapF32(backend, dy);
    const dx = heapF32(backend, out);
    dx.fill(0);
    const simple2x2 = fh === 2 && fw === 2 && sh === 2 && sw === 2 && pt === 0 && pl === 0 && dh === 1 && dw === 1 && H >= 2 * Ho && W >= 2 * Wo;
    if (simple2x2) {
      const rowC = W * C;
      for (let b = 0; b < B; b++) {
        for (let oh = 0; oh < Ho; oh++) {
          for (let ow = 0; ow < Wo; ow++) {
            const o = ((b * Ho + oh) * Wo + ow) * C;
            const i00 = ((b * H + 2 * oh) * W + 2 * ow) * C;
            const i01 = i00 + C;
            const i10 = i00 + rowC;
            const i11 = i10 + C;
            for (let c = 0; c < C; c++) {
              let m = x[i00 + c] as number;
              let at = i00 + c;
              const v1 = x[i01 + c] as number;
              if (v1 > m) { m = v1; at = i01 + c; }
              const v2 = x[i10 + c] as number;
              if (v2 > m) { m = v2; at = i10 + c; }
              const v3 = x[i11 + c] as number;
              if (v3 > m) { at = i11 + c; }
              dx[at] = g[o + c] as number;
            }
          }
        }
      }
      return out;
    }
    const best = new Float64Array(C);
    const where = new Int32Array(C);
    for (let b = 0; b < B; b++) {
      for (let oh = 0; oh < Ho; oh++) {
        const r0 = oh * sh - pt;
        for (let ow = 0; ow < Wo; ow++) {
          const c0 = ow * sw - pl;
          best.fill(Number.NEGATIVE_INFINITY);
          where.fill(-1);
          for (let wr = 0; wr < fh; wr += dh) {
            const r = r0 + wr;
            if (r < 0 || r >= H) continue;
            for (let wc = 0; wc < fw; wc += dw) {
              const cc = c0 + wc;
              if (cc < 0 || cc >= W) continue;
              const base = ((b * H + r) * W + cc) * C;
              for (let c = 0; c < C; c++) {
                const v = x[base + c] as number;
                if (v > (best[c] as number)) {
                  best[c] = v;
                  where[c] = base + c;
                }
              }
            }
          }
          const o = ((b * Ho + oh) * Wo + ow) * C;
          for (let c = 0; c < C; c++) {
            const at = where[c] as number;
            if (at >= 0) dx[at] = (dx[at] as number) + (g[o + c] as number);
          }
        }
      }
    }
    return out;
  };
}
