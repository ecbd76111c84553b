import { test } from 'node:test';
import assert from 'node:assert/strict';
import { float16ToFloat32, float32ToFloat16, fromFloat16Bits, toFloat16Bits } from '../../shared/protocol/float16.js';

void test('float16: exact values, range limits and specials', () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff], // largest finite half
    [65519, 0x7bff], // below the midpoint to 65536: rounds down
    [65520, 0x7c00], // the midpoint: ties to even, which is Inf
    [1e6, 0x7c00],
    [-1e6, 0xfc00],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // half of it: tie to even -> 0
    [1.5 * 2 ** -25, 0x0001],
    [-(2 ** -26), 0x8000],
    [2 ** -14 - 2 ** -24, 0x03ff], // largest subnormal
    [0.1, 0x2e66],
    [1 / 3, 0x3555],
    [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: to even (1)
    [1 + 3 * 2 ** -11, 0x3c02], // tie between mantissa 1 and 2: to even (2)
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
    [2 ** -40, 0x0000],
    [1e-45, 0x0000], // float32 subnormal
  ];
  for (const [x, h] of cases) assert.equal(toFloat16Bits(x), h, `toFloat16Bits(${x}) = 0x${toFloat16Bits(x).toString(16)}, want 0x${h.toString(16)}`);
  const nan = toFloat16Bits(NaN);
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x3ff, 0);
  // a float32 NaN whose payload is only in the low 13 bits must stay NaN, not become Inf
  const lowNaN = new Float32Array(new Uint32Array([0x7f800001]).buffer);
  const h = float32ToFloat16(lowNaN)[0] as number;
  assert.ok(Number.isNaN(fromFloat16Bits(h)), `0x${h.toString(16)} should be NaN`);
  assert.ok(Object.is(fromFloat16Bits(0x8000), -0));
  assert.equal(fromFloat16Bits(0x7c00), Infinity);
  assert.equal(fromFloat16Bits(0xfc00), -Infinity);
  assert.equal(fromFloat16Bits(0x0001), 2 ** -24);
  assert.equal(fromFloat16Bits(0x03ff), 2 ** -14 - 2 ** -24);
  assert.equal(fromFloat16Bits(0x7bff), 65504);
});

void test('float16: every one of the 65536 patterns survives half -> float -> half (NaNs stay NaN)', () => {
  const all = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) all[i] = i;
  const f = float16ToFloat32(all);
  const back = float32ToFloat16(f);
  for (let i = 0; i < 65536; i++) {
    const isNaN = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
    if (isNaN) assert.ok(Number.isNaN(f[i]), `0x${i.toString(16)} should decode to NaN`);
    else assert.equal(back[i], i, `0x${i.toString(16)} -> ${f[i]} -> 0x${(back[i] as number).toString(16)}`);
  }
});

void test('float16: random float32 values round to the nearest half, ties to even', () => {
  let s = 0x9e3779b9;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  const bits = new Uint32Array(50_000);
  for (let i = 0; i < bits.length; i++) {
    // exponents around the half range, both signs
    const exp = 127 - 30 + (next() % 50);
    bits[i] = ((next() & 1) << 31) | (exp << 23) | (next() & 0x7fffff);
  }
  const xs = new Float32Array(bits.buffer);
  const hs = float32ToFloat16(xs);
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i] as number;
    const h = hs[i] as number;
    const v = fromFloat16Bits(h);
    if (!Number.isFinite(v)) {
      assert.ok(Math.abs(x) >= 65520, `${x} overflowed to ${v}`);
      continue;
    }
    const err = Math.abs(x - v);
    for (const nb of [h - 1, h + 1]) {
      if ((nb & 0x7fff) > 0x7bff || (nb & 0x8000) !== (h & 0x8000) || nb < 0) continue;
      const d = Math.abs(x - fromFloat16Bits(nb));
      assert.ok(err < d || (err === d && (h & 1) === 0), `${x}: chose ${v} (0x${h.toString(16)}), neighbour ${fromFloat16Bits(nb)} is nearer or an even tie`);
    }
  }
});
