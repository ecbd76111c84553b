// IEEE 754 binary16 <-> binary32 conversion, kept apart from framing so that a
// caller can quantise (and check the damage) without building a frame.
// float32 -> float16 rounds to nearest, ties to even; values beyond the half
// range (65504) become +-Infinity, NaN stays NaN (quiet), -0 stays -0, and
// magnitudes below half the smallest subnormal (2^-25) become +-0.

/** float32 bit pattern (as uint32) -> float16 bit pattern (uint16). */
export function float32BitsToFloat16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) {
    // Inf keeps a zero mantissa; NaN keeps its top payload bits plus the quiet
    // bit, so a NaN whose payload lives only in the low 13 bits is not turned into Inf.
    return mant === 0 ? sign | 0x7c00 : sign | 0x7c00 | 0x200 | (mant >>> 13);
  }
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e >= 1) {
    let h = sign | (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    // A carry out of the mantissa correctly bumps the exponent (up to Inf).
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
    return h;
  }
  // Half subnormal (or zero): m_h = M * 2^(e-14) with M the 24-bit significand.
  const shift = 14 - e;
  if (shift > 24) return sign;
  const m = mant | 0x800000;
  let r = m >>> shift;
  const rem = m & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rem > halfway || (rem === halfway && (r & 1) === 1)) r++;
  return sign | r;
}

/** float16 bit pattern (uint16) -> float32 bit pattern (uint32). Exact: every half is a float. */
export function float16BitsToFloat32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal half: normalise into a float32 normal.
  let m = mant;
  let e = 113; // float32 exponent of 2^-14 is 113
  while ((m & 0x400) === 0) {
    m <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

/** Scalar convenience: a JS number rounded through float32 then float16, as a uint16 bit pattern. */
export function toFloat16Bits(value: number): number {
  const f = new Float32Array([value]);
  return float32BitsToFloat16Bits(new Uint32Array(f.buffer)[0] as number);
}

/** Scalar convenience: the number a float16 bit pattern stands for. */
export function fromFloat16Bits(h: number): number {
  const u = new Uint32Array([float16BitsToFloat32Bits(h & 0xffff)]);
  return new Float32Array(u.buffer)[0] as number;
}

/**
 * Converts a float32 array to float16 bit patterns (host-endian Uint16Array).
 * `dst` may be supplied (length >= src.length) to write in place, e.g. into a frame.
 */
export function float32ToFloat16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const n = src.length;
  for (let i = 0; i < n; i++) dst[i] = float32BitsToFloat16Bits(bits[i] as number);
  return dst;
}

/** Converts float16 bit patterns (host-endian) to float32. */
export function float16ToFloat32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  const n = src.length;
  for (let i = 0; i < n; i++) out[i] = float16BitsToFloat32Bits(src[i] as number);
  return dst;
}
