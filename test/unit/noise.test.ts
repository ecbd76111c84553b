import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batchNoise, hashWord, imageNoise } from '../../shared/models/noise.js';

void test('eps is a pure function of (seed, step, image index)', () => {
  const a = imageNoise(7, 123, 4567, 16);
  const b = imageNoise(7, 123, 4567, 16);
  assert.deepEqual(Array.from(a), Array.from(b));
  assert.equal(hashWord(1, 2, 3, 4), hashWord(1, 2, 3, 4));
  // Each counter matters.
  for (const other of [imageNoise(8, 123, 4567, 16), imageNoise(7, 124, 4567, 16), imageNoise(7, 123, 4568, 16)]) {
    assert.notDeepEqual(Array.from(other), Array.from(a));
  }
});

void test('splitting a batch into parts (any order) gives each image the same eps', () => {
  const indices = Int32Array.from({ length: 37 }, (_, i) => (i * 7919) % 60000);
  const whole = batchNoise(3, 42, indices, 20);
  const parts = [indices.subarray(0, 10), indices.subarray(10, 11), indices.subarray(11)];
  const joined = new Float32Array(whole.length);
  let at = 0;
  for (const p of parts) {
    joined.set(batchNoise(3, 42, p, 20), at);
    at += p.length * 20;
  }
  assert.deepEqual(Array.from(joined), Array.from(whole));
  const reversed = batchNoise(3, 42, Int32Array.from(indices).reverse(), 20);
  for (let i = 0; i < indices.length; i++) {
    assert.deepEqual(Array.from(reversed.subarray((indices.length - 1 - i) * 20, (indices.length - i) * 20)), Array.from(whole.subarray(i * 20, (i + 1) * 20)));
  }
});

void test('odd latent sizes are filled completely', () => {
  const e = imageNoise(1, 1, 1, 5);
  assert.equal(e.length, 5);
  assert.ok(e.every((v) => Number.isFinite(v)));
  assert.deepEqual(Array.from(e.subarray(0, 4)), Array.from(imageNoise(1, 1, 1, 4)));
});

void test('eps looks standard normal: mean, variance, tails, no correlation between neighbours', () => {
  const n = 200_000;
  const idx = Int32Array.from({ length: n / 16 }, (_, i) => i);
  const e = batchNoise(11, 5, idx, 16);
  let s = 0;
  let s2 = 0;
  let s4 = 0;
  let cross = 0;
  let beyond3 = 0;
  for (let i = 0; i < e.length; i++) {
    const v = e[i] as number;
    s += v;
    s2 += v * v;
    s4 += v * v * v * v;
    if (Math.abs(v) > 3) beyond3++;
    if (i > 0) cross += v * (e[i - 1] as number);
  }
  const mean = s / n;
  const variance = s2 / n - mean * mean;
  assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.015, `variance ${variance}`);
  assert.ok(Math.abs(s4 / n - 3) < 0.1, `fourth moment ${s4 / n}`);
  assert.ok(Math.abs(cross / n) < 0.01, `lag-1 correlation ${cross / n}`);
  const p3 = beyond3 / n; // 0.0027 for a normal
  assert.ok(p3 > 0.002 && p3 < 0.0035, `P(|eps| > 3) = ${p3}`);
});
