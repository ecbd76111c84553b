// The compute benchmark's quick mode (tiny sizes) runs end to end and reports
// well-formed figures; the real figures come from `node dist/test/bench/compute-main.js`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../shared/compute/backend.js';
import { benchCompute } from '../bench/compute.js';
import { formatComputeBench } from '../bench/compute-main.js';

void test('benchCompute({ quick: true }) measures every model and conv layer shape', async () => {
  await selectBackend({ backend: 'wasm' });
  const before = tf.memory().numTensors;
  const r = await benchCompute({ quick: true });
  assert.equal(r.backend.name, 'wasm');
  assert.deepEqual(r.steps.map((s) => s.model), ['conv-ae', 'conv-vae', 'conv-cvae', 'mlp-vae']);
  for (const s of r.steps) {
    assert.ok(s.msMedian > 0 && Number.isFinite(s.samplesPerSecond) && s.samplesPerSecond > 0, s.model);
    assert.ok(s.samplesPerSecondBest >= s.samplesPerSecond);
  }
  assert.equal(r.convs.length, 5);
  for (const c of r.convs) {
    for (const k of [c.forward, c.filterGrad, c.inputGrad]) assert.ok(k.gflops > 0 && Number.isFinite(k.gflops), c.layer);
  }
  assert.ok(r.convTotals.filterToForwardRatio > 0);
  assert.equal(r.targets, null, 'quick runs make no claims about the targets');
  assert.equal(tf.memory().numTensors, before, 'the benchmark leaks no tensors');
  const text = formatComputeBench(r);
  assert.match(text, /conv-ae/);
  assert.match(text, /filter grad \/ forward/);
});
