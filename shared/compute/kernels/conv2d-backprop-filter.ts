// Conv2DBackpropFilter for wasm, which tfjs 4.22 does not register (training any
// conv model fails without it). dW[kr,kc,ci,co] = sum_{b,oh,ow} x[b, oh*s+kr-pt,
// ow*s+kc-pl, ci] * dy[b,oh,ow,co]. Several ways to hand that sum to XNNPACK, all
// exact up to float32 summation order (DESIGN.md section 4 has the first measurements):
//  - 'swapped': a forward conv with batch and channels swapped: input x padded
//    and laid out [ci, Hp, Wp, B], filter dy laid out [Ho, Wo, B, co] (dilated by
//    the stride), 'valid' -> [ci, kh, kw, co]. Fastest where ci and co are large.
//  - 'im2col-x-t': dW^T = dy^T [co, B*Ho*Wo] x P [B*Ho*Wo, kh*kw*ci], P the im2col
//    of x, dy transposed in JS. Cheapest where ci is tiny (the first conv, ci = 1).
//  - 'im2col-dy-t': dW^T = x^T [ci, B*H*W] x A [B*H*W, kh*kw*co], A gathering dy for
//    each x position. Cheapest where co is tiny (the last conv, co = 1).
//  - 'im2col-x' / 'im2col-dy': the same with the big operand as XNNPACK's packed
//    right-hand side; correct, but packing a [65536, 64] operand costs 40-100 ms, so
//    'auto' never picks them (kept for measurements and tests).
// Only plain (untransposed) matMul is used: transposed matMul is ~14x slower on wasm.
// Measured on the 2-core build machine (fresh tensors, batch 64, median ms): 16x16
// 64->64 swapped 65-72 against 42-45 for the forward conv; 32x32 1->64 im2col-x-t 17
// (swapped 50-67, im2col-x 49-75); 32x32 64->1 im2col-dy-t 17-18 (swapped 39-71,
// im2col-dy 50-55). Splitting the swapped conv's long reduction (by batch or by rows)
// did not help.
import type * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BackendError } from '../../errors.js';
import { convGeometry, type ConvGeometry } from './conv-geometry.js';
import { asWasm, heapF32, release, requireInput, runWasmKernel, transpose2d, view, type KernelArgs } from './wasm-ops.js';

export type FilterGradStrategy = 'auto' | 'swapped' | 'im2col-x' | 'im2col-x-t' | 'im2col-dy' | 'im2col-dy-t';

const KERNEL = 'Conv2DBackpropFilter';
/** Below this many channels on one side the im2col of that side is cheaper than two big transposes. */
const SMALL_CHANNELS = 4;

export function chooseFilterGradStrategy(g: ConvGeometry): Exclude<FilterGradStrategy, 'auto'> {
  if (g.inC <= SMALL_CHANNELS && g.inC <= g.outC) return 'im2col-x-t';
  if (g.outC <= SMALL_CHANNELS) return 'im2col-dy-t';
  return 'swapped';
}

export function conv2DBackpropFilterKernel(strategy: FilterGradStrategy = 'auto') {
  return (args: KernelArgs): tf.TensorInfo => {
    const backend = asWasm(args.backend);
    const x = requireInput(args.inputs, 'x', KERNEL);
    const dy = requireInput(args.inputs, 'dy', KERNEL);
    const attrs = args.attrs ?? {};
    const filterShape = attrs['filterShape'] as number[];
    const g = convGeometry(x.shape, filterShape, attrs, KERNEL);
    if (dy.shape[1] !== g.outH || dy.shape[2] !== g.outW || dy.shape[3] !== g.outC) {
      throw new BackendError(`${KERNEL}: dy shape ${JSON.stringify(dy.shape)} does not match the conv output`);
    }
    const s = strategy === 'auto' ? chooseFilterGradStrategy(g) : strategy;
    if (s === 'im2col-x') return viaIm2colX(backend, x, dy, g);
    if (s === 'im2col-x-t') return viaIm2colXT(backend, x, dy, g);
    if (s === 'im2col-dy') return viaIm2colDy(backend, x, dy, g);
    if (s === 'im2col-dy-t') return viaIm2colDyT(backend, x, dy, g);
    return viaSwappedConv(backend, x, dy, g);
  };
}

function matMul(backend: BackendWasm, a: tf.TensorInfo, b: tf.TensorInfo): tf.TensorInfo {
  return runWasmKernel('BatchMatMul', backend, { a, b }, { transposeA: false, transposeB: false });
}

function viaSwappedConv(backend: BackendWasm, x: tf.TensorInfo, dy: tf.TensorInfo, g: ConvGeometry): tf.TensorInfo {
  const { batch: B, inH: H, inW: W, inC: C, outH: Ho, outW: Wo, kh, kw, sh, sw, padTop: pt, padLeft: pl } = g;
  // Padded extent the valid conv needs to produce exactly kh x kw outputs; it may
  // be smaller than H + pads (stride 2, 'valid', odd remainder), which crops.
  const Hp = kh + (Ho - 1) * sh;
  const Wp = kw + (Wo - 1) * sw;
  const xT = backend.makeOutput([C, Hp, Wp, B], 'float32');
  {
    const src = heapF32(backend, x);
    const dst = heapF32(backend, xT);
    const P = Hp * Wp;
    const rowStride = W * C;
    const batchStride = H * W * C;
    for (let u = 0; u < Hp; u++) {
      const i = u - pt;
      const rowOk = i >= 0 && i < H;
      for (let v = 0; v < Wp; v++) {
        const j = v - pl;
        const p = u * Wp + v;
        if (!rowOk || j < 0 || j >= W) {
          for (let c = 0; c < C; c++) dst.fill(0, (c * P + p) * B, (c * P + p + 1) * B);
          continue;
        }
        // A [B, C] block (rows one image apart) into C rows of B: eight channels per
        // pass, so each source cache line is read once.
        const base = i * rowStride + j * C;
        const c8 = C - (C % 8);
        const cs = P * B;
        for (let c = 0; c < c8; c += 8) {
          const d = (c * P + p) * B;
          let sIdx = base + c;
          for (let b = 0; b < B; b++, sIdx += batchStride) {
            dst[d + b] = src[sIdx] as number;
            dst[d + cs + b] = src[sIdx + 1] as number;
            dst[d + 2 * cs + b] = src[sIdx + 2] as number;
            dst[d + 3 * cs + b] = src[sIdx + 3] as number;
            dst[d + 4 * cs + b] = src[sIdx + 4] as number;
            dst[d + 5 * cs + b] = src[sIdx + 5] as number;
            dst[d + 6 * cs + b] = src[sIdx + 6] as number;
            dst[d + 7 * cs + b] = src[sIdx + 7] as number;
          }
        }
        for (let c = c8; c < C; c++) {
          const d = (c * P + p) * B;
          let sIdx = base + c;
          for (let b = 0; b < B; b++, sIdx += batchStride) dst[d + b] = src[sIdx] as number;
        }
      }
    }
  }
  const dyT = runWasmKernel('Transpose', backend, { x: dy }, { perm: [1, 2, 0, 3] });
  const conv = runWasmKernel('Conv2D', backend, { x: xT, filter: dyT }, {
    strides: [1, 1],
    pad: 'valid',
    dataFormat: 'NHWC',
    dilations: [sh, sw],
  });
  release(backend, xT, dyT);
  const out = runWasmKernel('Transpose', backend, { x: conv }, { perm: [1, 2, 0, 3] });
  release(backend, conv);
  return out;
}

function viaIm2colX(backend: BackendWasm, x: tf.TensorInfo, dy: tf.TensorInfo, g: ConvGeometry): tf.TensorInfo {
  const { batch: B, inH: H, inW: W, inC: C, outH: Ho, outW: Wo, outC: Co, kh, kw, sh, sw, padTop: pt, padLeft: pl } = g;
  const K = kh * kw * C;
  const N = B * Ho * Wo;
  const patches = backend.makeOutput([1, K, N], 'float32');
  {
    const src = heapF32(backend, x);
    const dst = heapF32(backend, patches);
    for (let kr = 0; kr < kh; kr++) {
      for (let kc = 0; kc < kw; kc++) {
        for (let c = 0; c < C; c++) {
          let d = ((kr * kw + kc) * C + c) * N;
          for (let b = 0; b < B; b++) {
            for (let oh = 0; oh < Ho; oh++) {
              const i = oh * sh + kr - pt;
              if (i < 0 || i >= H) {
                dst.fill(0, d, d + Wo);
                d += Wo;
                continue;
              }
              const rowBase = (b * H + i) * W * C + c;
              for (let ow = 0; ow < Wo; ow++, d++) {
                const j = ow * sw + kc - pl;
                dst[d] = j >= 0 && j < W ? (src[rowBase + j * C] as number) : 0;
              }
            }
          }
        }
      }
    }
  }
  const prod = matMul(backend, patches, view(dy, [1, N, Co]));
  release(backend, patches);
  // Rows are ordered (kr, kc, ci): already the filter layout.
  return view(prod, [kh, kw, C, Co]);
}

function viaIm2colDy(backend: BackendWasm, x: tf.TensorInfo, dy: tf.TensorInfo, g: ConvGeometry): tf.TensorInfo {
  const { batch: B, inH: H, inW: W, inC: C, outH: Ho, outW: Wo, outC: Co, kh, kw, sh, sw, padTop: pt, padLeft: pl } = g;
  const K = kh * kw * Co;
  const M = B * H * W;
  const a = backend.makeOutput([1, K, M], 'float32');
  {
    const src = heapF32(backend, dy);
    const dst = heapF32(backend, a);
    for (let kr = 0; kr < kh; kr++) {
      for (let kc = 0; kc < kw; kc++) {
        for (let o = 0; o < Co; o++) {
          let d = ((kr * kw + kc) * Co + o) * M;
          for (let b = 0; b < B; b++) {
            for (let i = 0; i < H; i++) {
              const ohNum = i + pt - kr;
              const oh = ohNum / sh;
              if (ohNum < 0 || oh >= Ho || ohNum % sh !== 0) {
                dst.fill(0, d, d + W);
                d += W;
                continue;
              }
              const rowBase = (b * Ho + oh) * Wo * Co + o;
              for (let j = 0; j < W; j++, d++) {
                const owNum = j + pl - kc;
                const ow = owNum / sw;
                dst[d] = owNum >= 0 && ow < Wo && owNum % sw === 0 ? (src[rowBase + ow * Co] as number) : 0;
              }
            }
          }
        }
      }
    }
  }
  const prod = matMul(backend, a, view(x, [1, M, C]));
  release(backend, a);
  if (Co === 1) return view(prod, [kh, kw, C, Co]);
  // Rows are (kr, kc, co) x ci: swap the last two axes into the filter layout.
  const out = runWasmKernel('Transpose', backend, { x: view(prod, [kh * kw, Co, C]) }, { perm: [0, 2, 1] });
  release(backend, prod);
  return view(out, [kh, kw, C, Co]);
}

/**
 * dW^T [co, kh*kw*ci] = dy^T [co, N] x P [N, kh*kw*ci]: the im2col P in its natural
 * layout is the (packed) right operand, small when ci is; the big dy is transposed
 * in JS rather than packed by XNNPACK (whose packing of a [65536, 64] right operand
 * costs 40-100 ms, against 10 ms for the transpose).
 */
function viaIm2colXT(backend: BackendWasm, x: tf.TensorInfo, dy: tf.TensorInfo, g: ConvGeometry): tf.TensorInfo {
  const { batch: B, inH: H, inW: W, inC: C, outH: Ho, outW: Wo, outC: Co, kh, kw, sh, sw, padTop: pt, padLeft: pl } = g;
  const K = kh * kw * C;
  const N = B * Ho * Wo;
  const patches = backend.makeOutput([1, N, K], 'float32');
  const dyT = backend.makeOutput([1, Co, N], 'float32');
  {
    const src = heapF32(backend, x);
    const dst = heapF32(backend, patches);
    let d = 0;
    for (let b = 0; b < B; b++) {
      for (let oh = 0; oh < Ho; oh++) {
        for (let ow = 0; ow < Wo; ow++) {
          for (let kr = 0; kr < kh; kr++) {
            const i = oh * sh + kr - pt;
            const rowOk = i >= 0 && i < H;
            for (let kc = 0; kc < kw; kc++) {
              const j = ow * sw + kc - pl;
              if (!rowOk || j < 0 || j >= W) {
                dst.fill(0, d, d + C);
                d += C;
                continue;
              }
              const s0 = ((b * H + i) * W + j) * C;
              for (let c = 0; c < C; c++) dst[d++] = src[s0 + c] as number;
            }
          }
        }
      }
    }
    transpose2d(heapF32(backend, dy), heapF32(backend, dyT), N, Co);
  }
  const prod = matMul(backend, dyT, patches);
  release(backend, patches, dyT);
  const out = backend.makeOutput([kh, kw, C, Co], 'float32');
  transpose2d(heapF32(backend, prod), heapF32(backend, out), Co, K);
  release(backend, prod);
  return out;
}

/**
 * dW^T [ci, kh*kw*co] = x^T [ci, M] x A [M, kh*kw*co], A being dy gathered per x
 * position (small when co is): the last conv's filter gradient (co = 1).
 */
function viaIm2colDyT(backend: BackendWasm, x: tf.TensorInfo, dy: tf.TensorInfo, g: ConvGeometry): tf.TensorInfo {
  const { batch: B, inH: H, inW: W, inC: C, outH: Ho, outW: Wo, outC: Co, kh, kw, sh, sw, padTop: pt, padLeft: pl } = g;
  const K = kh * kw * Co;
  const M = B * H * W;
  const a = backend.makeOutput([1, M, K], 'float32');
  const xT = backend.makeOutput([1, C, M], 'float32');
  {
    const src = heapF32(backend, dy);
    const dst = heapF32(backend, a);
    let d = 0;
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < H; i++) {
        for (let j = 0; j < W; j++) {
          for (let kr = 0; kr < kh; kr++) {
            const ohNum = i + pt - kr;
            const oh = ohNum / sh;
            const rowOk = ohNum >= 0 && oh < Ho && ohNum % sh === 0;
            for (let kc = 0; kc < kw; kc++) {
              const owNum = j + pl - kc;
              const ow = owNum / sw;
              if (!rowOk || owNum < 0 || ow >= Wo || owNum % sw !== 0) {
                dst.fill(0, d, d + Co);
                d += Co;
                continue;
              }
              const s0 = ((b * Ho + oh) * Wo + ow) * Co;
              for (let o = 0; o < Co; o++) dst[d++] = src[s0 + o] as number;
            }
          }
        }
      }
    }
    transpose2d(heapF32(backend, x), heapF32(backend, xT), M, C);
  }
  const prod = matMul(backend, xT, a);
  release(backend, a, xT);
  // prod[c, (kr,kc,o)] -> out[(kr,kc), c, o]
  const out = backend.makeOutput([kh, kw, C, Co], 'float32');
  {
    const src = heapF32(backend, prod);
    const dst = heapF32(backend, out);
    for (let c = 0; c < C; c++) {
      for (let t = 0; t < kh * kw; t++) {
        for (let o = 0; o < Co; o++) dst[(t * C + c) * Co + o] = src[c * K + t * Co + o] as number;
      }
    }
  }
  release(backend, prod);
  return out;
}
