// The one image path shared by `lockstep sample` and the dashboard: a model's
// reconstructions beside their inputs, and fresh samples from the decoder
// (cvae: one row per digit; a 2-d latent: the manifold grid).
import type { ModelBundle } from '../models/types.js';
import { batchNoise } from '../models/noise.js';
import { comparisonPng, gridPng, latentGrid2d } from './png.js';

export interface RenderedImages {
  /** Inputs above their reconstructions. */
  reconstructions: Buffer;
  /** Decoder samples (null for ae). */
  samples: Buffer | null;
  /** Manifold grid for a 2-d latent (null otherwise). */
  manifold: Buffer | null;
  caption: string;
}

export interface RenderOptions {
  images: Float32Array;
  labels: Uint8Array;
  n: number;
  /** Seeds the sample noise so successive renders of one run are comparable. */
  seed: number;
  /** Samples per row (cvae: per digit). */
  perRow?: number;
  rows?: number;
  /** cvae: draw only this digit. */
  label?: number;
  scale?: number;
  manifoldSize?: number;
}

export function renderImages(bundle: ModelBundle, o: RenderOptions): RenderedImages {
  const scale = o.scale ?? 2;
  const recon = bundle.reconstruct(o.images, bundle.options.kind === 'cvae' ? o.labels : null, o.n);
  const reconstructions = comparisonPng({ inputs: o.images, reconstructions: recon, n: o.n, cols: Math.min(o.n, 8), scale });
  if (bundle.decoder === null) return { reconstructions, samples: null, manifold: null, caption: 'inputs (odd rows) above their reconstructions' };
  const kind = bundle.options.kind;
  const latent = bundle.options.latentDim;
  const perRow = o.perRow ?? 8;
  let labels: Uint8Array | null = null;
  let rows = o.rows ?? 4;
  let caption = 'samples from the prior';
  if (kind === 'cvae') {
    if (o.label !== undefined) {
      labels = new Uint8Array(rows * perRow).fill(o.label);
      caption = `samples of digit ${o.label}`;
    } else {
      rows = 10;
      labels = Uint8Array.from({ length: rows * perRow }, (_, i) => Math.floor(i / perRow));
      caption = 'one row per digit 0-9';
    }
  }
  const count = rows * perRow;
  const z = batchNoise(o.seed, 0x7fffffff, Int32Array.from({ length: count }, (_, i) => i), latent);
  const samples = gridPng({ images: bundle.decode(z, labels, count), n: count, cols: perRow, scale });
  let manifold: Buffer | null = null;
  if (latent === 2) {
    const k = o.manifoldSize ?? 15;
    const grid = latentGrid2d(k);
    const ml = kind === 'cvae' ? new Uint8Array(k * k).fill(o.label ?? 0) : null;
    manifold = gridPng({ images: bundle.decode(grid, ml, k * k), n: k * k, cols: k, scale: 1, pad: 0 });
  }
  return { reconstructions, samples, manifold, caption };
}
