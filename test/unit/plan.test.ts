import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StepPlanner, splitBatch } from '../../shared/train/plan.js';
import { Adam } from '../../shared/train/adam.js';
import { TrainingCore, relativeDifference } from '../../shared/train/core.js';

test('every image exactly once per epoch, last partial batch included', () => {
  const p = new StepPlanner({ seed: 7, datasetSize: 1000, batchSize: 64 });
  assert.equal(p.stepsPerEpoch, 16);
  for (const epoch of [0, 1]) {
    const seen = new Uint8Array(1000);
    for (let s = epoch * 16; s < (epoch + 1) * 16; s++) {
      const sl = p.slice(s);
      assert.equal(sl.epoch, epoch);
      for (const i of sl.indices) seen[i] = (seen[i] ?? 0) + 1;
      assert.equal(sl.indices.length, s % 16 === 15 ? 1000 - 15 * 64 : 64);
    }
    assert.ok(seen.every((c) => c === 1));
  }
  assert.notDeepEqual([...p.slice(0).indices], [...p.slice(16).indices], 'epochs are permuted differently');
});

test('the plan is a pure function of (seed, size, batch, step)', () => {
  const a = new StepPlanner({ seed: 3, datasetSize: 500, batchSize: 32 });
  const b = new StepPlanner({ seed: 3, datasetSize: 500, batchSize: 32 });
  b.slice(40); // different cache history
  assert.deepEqual([...a.slice(7).indices], [...b.slice(7).indices]);
  assert.notDeepEqual([...a.slice(7).indices], [...new StepPlanner({ seed: 4, datasetSize: 500, batchSize: 32 }).slice(7).indices]);
  assert.equal(a.totalSteps({ epochs: 2 }), 32);
  assert.equal(a.totalSteps({ steps: 5, epochs: 2 }), 5);
});

test('splitBatch: rank-ordered contiguous parts, sizes differ by at most one', () => {
  const idx = Int32Array.from({ length: 10 }, (_, i) => i);
  const parts = splitBatch(idx, 3);
  assert.deepEqual(parts.map((p) => p.length), [4, 3, 3]);
  assert.deepEqual(parts.flatMap((p) => [...p]), [...idx]);
  assert.deepEqual(splitBatch(idx.subarray(0, 2), 3).map((p) => p.length), [1, 1, 0]);
});

test('Adam matches the textbook update on a quadratic', () => {
  const w = Float32Array.from([1, -2]);
  const adam = new Adam(2, { lr: 0.1 });
  adam.step(w, Float32Array.from([2, -4]));
  // First step: mhat = g, vhat = g^2 => w -= lr * sign(g) (up to eps).
  assert.ok(Math.abs((w[0] ?? 0) - 0.9) < 1e-6);
  assert.ok(Math.abs((w[1] ?? 0) + 1.9) < 1e-6);
  assert.equal(adam.state.t, 1);
});

test('TrainingCore: parts in any order give the same step as one part', () => {
  const g1 = Float32Array.from([1, 2, 3]);
  const g2 = Float32Array.from([0.5, -1, 4]);
  const whole = Float32Array.from([1.5, 1, 7]);
  const a = new TrainingCore(Float32Array.from([0.1, 0.2, 0.3]), { lr: 0.01 });
  const b = new TrainingCore(Float32Array.from([0.1, 0.2, 0.3]), { lr: 0.01 });
  const loss = { total: 1, reconstruction: 1, kl: 0 };
  const oa = a.apply([{ part: 1, count: 2, grad: g2, loss }, { part: 0, count: 3, grad: g1, loss }]);
  const ob = b.apply([{ part: 0, count: 5, grad: whole, loss: { total: 2, reconstruction: 2, kl: 0 } }]);
  assert.equal(oa.count, 5);
  assert.equal(oa.loss.total, ob.loss.total);
  assert.deepEqual([...a.weights], [...b.weights]);
  assert.equal(relativeDifference(a.weights, b.weights), 0);
});
