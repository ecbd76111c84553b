// The one image path for `lockstep sample` and the live dashboard: tiles of
// 28x28 grayscale images in [0, 1] into a single 8-bit grayscale PNG (pngjs).
import { PNG } from 'pngjs';
import { DataError } from '../errors.js';

export const MNIST_SIDE = 28;

export interface GridOptions {
  /** n * height * width values in [0, 1] (clamped; NaN becomes 0), image after image, row-major. */
  images: Float32Array | ArrayLike<number>;
  n: number;
  /** Tiles per row; default ceil(sqrt(n)). */
  cols?: number;
  /** Integer upscale factor (nearest neighbour), default 1. */
  scale?: number;
  /** Gap between tiles and around the grid, in output pixels (after scaling), default 1. */
  pad?: number;
  /** Gray level of the gaps in [0, 1], default 0.35 (visible against black digit backgrounds). */
  padValue?: number;
  height?: number;
  width?: number;
}

export interface GridGeometry {
  rows: number;
  cols: number;
  width: number;
  height: number;
}

function toByte(v: number): number {
  if (!(v > 0)) return 0; // also catches NaN
  if (v >= 1) return 255;
  return Math.round(v * 255);
}

export function gridGeometry(o: Pick<GridOptions, 'n' | 'cols' | 'scale' | 'pad' | 'height' | 'width'>): GridGeometry {
  const h = o.height ?? MNIST_SIDE;
  const w = o.width ?? MNIST_SIDE;
  const scale = o.scale ?? 1;
  const pad = o.pad ?? 1;
  const cols = Math.max(1, Math.min(o.cols ?? Math.ceil(Math.sqrt(o.n)), o.n));
  const rows = Math.ceil(o.n / cols);
  return { rows, cols, width: pad + cols * (w * scale + pad), height: pad + rows * (h * scale + pad) };
}

/** Raw grid pixels (one byte per pixel, row-major) before PNG encoding; exported for tests and other encoders. */
export function gridPixels(o: GridOptions): { data: Buffer } & GridGeometry {
  const h = o.height ?? MNIST_SIDE;
  const w = o.width ?? MNIST_SIDE;
  const scale = o.scale ?? 1;
  const pad = o.pad ?? 1;
  if (!Number.isInteger(o.n) || o.n < 1) throw new DataError(`gridPng: n must be a positive integer, got ${o.n}`);
  if (!Number.isInteger(scale) || scale < 1 || scale > 64) throw new DataError(`gridPng: scale must be an integer in 1..64, got ${scale}`);
  if (!Number.isInteger(pad) || pad < 0 || pad > 64) throw new DataError(`gridPng: pad must be an integer in 0..64, got ${pad}`);
  if (o.cols !== undefined && (!Number.isInteger(o.cols) || o.cols < 1)) throw new DataError(`gridPng: cols must be a positive integer, got ${o.cols}`);
  if (o.images.length !== o.n * h * w) {
    throw new DataError(`gridPng: expected ${o.n}x${h}x${w} = ${o.n * h * w} values, got ${o.images.length}`);
  }
  const geo = gridGeometry(o);
  const data = Buffer.alloc(geo.width * geo.height, toByte(o.padValue ?? 0.35));
  for (let k = 0; k < o.n; k++) {
    const x0 = pad + (k % geo.cols) * (w * scale + pad);
    const y0 = pad + Math.floor(k / geo.cols) * (h * scale + pad);
    const base = k * h * w;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = toByte(o.images[base + y * w + x] as number);
        for (let dy = 0; dy < scale; dy++) {
          const row = (y0 + y * scale + dy) * geo.width + x0 + x * scale;
          data.fill(v, row, row + scale);
        }
      }
    }
  }
  return { data, ...geo };
}

/** Encodes the grid as an 8-bit grayscale PNG. */
export function gridPng(o: GridOptions): Buffer {
  const px = gridPixels(o);
  const png = new PNG({ width: px.width, height: px.height });
  // Grayscale in, grayscale out: pngjs passes the bytes through unchanged.
  png.data = px.data;
  return PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false, bitDepth: 8 });
}

export interface ComparisonOptions {
  inputs: Float32Array | ArrayLike<number>;
  reconstructions: Float32Array | ArrayLike<number>;
  n: number;
  /** Images per row; default min(n, 8). */
  cols?: number;
  height?: number;
  width?: number;
}

/**
 * Interleaves inputs and reconstructions row by row: a row of `cols` inputs, then the
 * row of their reconstructions right below, and so on. Feed the result to gridPng with
 * the returned `n` and `cols`.
 */
export function comparisonImages(o: ComparisonOptions): { images: Float32Array; n: number; cols: number } {
  const size = (o.height ?? MNIST_SIDE) * (o.width ?? MNIST_SIDE);
  if (o.inputs.length !== o.n * size || o.reconstructions.length !== o.n * size) {
    throw new DataError(`comparisonImages: expected ${o.n * size} values in inputs and reconstructions, got ${o.inputs.length} and ${o.reconstructions.length}`);
  }
  const cols = Math.max(1, Math.min(o.cols ?? 8, o.n));
  const rows = Math.ceil(o.n / cols);
  // Partial last rows are padded with blank tiles so pairs stay vertically aligned.
  const out = new Float32Array(rows * 2 * cols * size);
  for (let k = 0; k < o.n; k++) {
    const r = Math.floor(k / cols);
    const c = k % cols;
    const inAt = (2 * r * cols + c) * size;
    const recAt = ((2 * r + 1) * cols + c) * size;
    for (let i = 0; i < size; i++) {
      out[inAt + i] = o.inputs[k * size + i] as number;
      out[recAt + i] = o.reconstructions[k * size + i] as number;
    }
  }
  return { images: out, n: rows * 2 * cols, cols };
}

/** Inputs above their reconstructions, as one PNG. */
export function comparisonPng(o: ComparisonOptions & { scale?: number; pad?: number }): Buffer {
  const c = comparisonImages(o);
  return gridPng({ images: c.images, n: c.n, cols: c.cols, scale: o.scale, pad: o.pad, height: o.height, width: o.width });
}

export function pngDataUrl(png: Buffer): string {
  return `data:image/png;base64,${png.toString('base64')}`;
}

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function isPng(buf: Buffer): boolean {
  return buf.length > PNG_SIGNATURE.length && buf.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE);
}

/**
 * Inverse of the standard normal CDF (Acklam's rational approximation, relative
 * error below 1.2e-9 on (0, 1)); plenty for placing latent grid points.
 */
export function inverseNormalCdf(p: number): number {
  if (!(p > 0 && p < 1)) {
    if (p === 0) return -Infinity;
    if (p === 1) return Infinity;
    return NaN;
  }
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const [a0, a1, a2, a3, a4, a5] = a as [number, number, number, number, number, number];
  const [b0, b1, b2, b3, b4] = b as [number, number, number, number, number];
  const [c0, c1, c2, c3, c4, c5] = c as [number, number, number, number, number, number];
  const [d0, d1, d2, d3] = d as [number, number, number, number];
  const plow = 0.02425;
  let x: number;
  if (p < plow) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1);
  } else if (p <= 1 - plow) {
    const q = p - 0.5;
    const r = q * q;
    x = ((((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q) / (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x = -(((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1);
  }
  return x;
}

/**
 * k*k points of a 2-D latent space for the manifold figure of Kingma & Welling
 * (2014): a uniform grid on the unit square, p in linspace(0.05, 0.95, k), mapped
 * through the inverse normal CDF so it covers the prior evenly in probability.
 * Returns 2*k*k values [z0, z1, z0, z1, ...], row-major for gridPng(cols = k):
 * z0 grows left to right, z1 grows bottom to top (top row has the largest z1).
 */
export function latentGrid2d(k: number, range: { low?: number; high?: number } = {}): Float32Array {
  if (!Number.isInteger(k) || k < 1) throw new DataError(`latentGrid2d: k must be a positive integer, got ${k}`);
  const low = range.low ?? 0.05;
  const high = range.high ?? 0.95;
  if (!(low > 0 && high < 1 && low <= high)) throw new DataError(`latentGrid2d: need 0 < low <= high < 1, got ${low}, ${high}`);
  const axis = Array.from({ length: k }, (_, i) => inverseNormalCdf(k === 1 ? 0.5 : low + ((high - low) * i) / (k - 1)));
  const out = new Float32Array(2 * k * k);
  for (let row = 0; row < k; row++) {
    for (let col = 0; col < k; col++) {
      const at = 2 * (row * k + col);
      out[at] = axis[col] as number;
      out[at + 1] = axis[k - 1 - row] as number;
    }
  }
  return out;
}
