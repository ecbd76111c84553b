// Counter-based Gaussian noise for the VAE's reparameterisation: eps for image
// `index` at step `step` is a pure function of (seed, step, index, k). No state
// is carried between calls, so how a global batch is split over workers (or
// recomputed after a worker died) cannot change the math.
//
// Each 32-bit word is a murmur3-fmix32 hash chain over the four counters (every
// input passes through a full avalanche); two words give two uniforms in (0,1)
// and Box-Muller turns them into two standard normals.

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Uniform 32-bit word for the counter tuple (seed, step, index, k). */
export function hashWord(seed: number, step: number, index: number, k: number): number {
  let h = fmix32((seed ^ 0x9e3779b9) >>> 0);
  h = fmix32((h ^ Math.imul(step >>> 0, 0x85ebca77)) + 0x165667b1);
  h = fmix32((h ^ Math.imul(index >>> 0, 0xc2b2ae3d)) + 0x27d4eb2f);
  h = fmix32((h ^ Math.imul(k >>> 0, 0x9e3779b1)) + 0x61c88647);
  return h;
}

const TWO_POW_32 = 4294967296;
const TWO_PI = 2 * Math.PI;

/** Uniform in the open interval (0, 1). */
function uniform(word: number): number {
  return (word + 0.5) / TWO_POW_32;
}

/** Standard normal eps for one image, `dim` values. */
export function imageNoise(seed: number, step: number, index: number, dim: number, out?: Float32Array, offset = 0): Float32Array {
  const dst = out ?? new Float32Array(dim);
  for (let k = 0; k < dim; k += 2) {
    const u1 = uniform(hashWord(seed, step, index, k));
    const u2 = uniform(hashWord(seed, step, index, k + 1));
    const r = Math.sqrt(-2 * Math.log(u1));
    const a = TWO_PI * u2;
    dst[offset + k] = r * Math.cos(a);
    if (k + 1 < dim) dst[offset + k + 1] = r * Math.sin(a);
  }
  return dst;
}

/** eps for a batch: Float32Array [indices.length * dim], row i from (seed, step, indices[i]). */
export function batchNoise(seed: number, step: number, indices: ArrayLike<number>, dim: number): Float32Array {
  const out = new Float32Array(indices.length * dim);
  for (let i = 0; i < indices.length; i++) imageNoise(seed, step, indices[i] as number, dim, out, i * dim);
  return out;
}
