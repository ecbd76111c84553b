// `lockstep eval` and `lockstep sample` read checkpoints; the saved model is an
// ordinary LayersModel: plain tf.loadLayersModel gives the project's reconstructions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { PNG } from 'pngjs';
import { selectBackend } from '../../shared/compute/backend.js';
import { registerFileRouters } from '../../shared/models/file-io.js';
import { loadMnist } from '../../shared/data/mnist.js';
import { loadCheckpointModel } from '../../cli/evaluate.js';
import { runCli, tempDir, trainJson } from '../helpers/cli.js';

void test('eval and sample read a checkpoint; plain tf.loadLayersModel reproduces the reconstructions', { timeout: 180_000 }, async () => {
  const dir = tempDir('eval');
  try {
    const r = await trainJson(['--workers', '0', '--model', 'cvae', '--filters', '4', '--train-limit', '256', '--batch-size', '32', '--steps', '6', '--checkpoint-dir', dir, '--log-level', 'warn']);
    assert.ok(r.checkpoint !== null);
    const ev = await runCli(['eval', '--checkpoint', dir, '--test-limit', '500', '--json', '--log-level', 'warn']);
    assert.equal(ev.code, 0, ev.stderr);
    const e = JSON.parse(ev.stdout) as { images: number; reconstruction: number; negElbo: number; kl: number; step: number };
    assert.equal(e.images, 500);
    assert.equal(e.step, 6);
    assert.ok(e.reconstruction > 0 && Number.isFinite(e.negElbo) && Math.abs(e.negElbo - (e.reconstruction + e.kl)) < 1e-6 * e.negElbo);

    const out = join(dir, 'threes.png');
    const sm = await runCli(['sample', '--checkpoint', dir, '--label', '3', '--count', '16', '--out', out, '--log-level', 'warn']);
    assert.equal(sm.code, 0, sm.stderr);
    const png = PNG.sync.read(readFileSync(out));
    assert.ok(png.width > 28 && png.height > 28);
    const bad = await runCli(['eval', '--checkpoint', join(dir, 'missing'), '--json']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /missing: no such checkpoint directory/);

    await selectBackend({ backend: 'wasm' });
    registerFileRouters();
    const { bundle, path } = loadCheckpointModel(dir);
    try {
      const test = loadMnist({ split: 'test', limit: 8 });
      const ours = bundle.reconstruct(test.images, test.labels, 8);
      const plain = await tf.loadLayersModel(`file://${join(path, 'model', 'model.json')}`);
      const x = tf.tensor4d(test.images, [8, 28, 28, 1]);
      const y = tf.oneHot(tf.tensor1d(Array.from(test.labels), 'int32'), 10).toFloat();
      const outputs = plain.predict([x, y]) as tf.Tensor[];
      const theirs = tf.sigmoid(outputs[0] as tf.Tensor).dataSync();
      let maxDiff = 0;
      for (let i = 0; i < ours.length; i++) maxDiff = Math.max(maxDiff, Math.abs((ours[i] as number) - (theirs[i] as number)));
      assert.ok(maxDiff < 1e-5, `max difference ${maxDiff}`);
      const decoder = await tf.loadLayersModel(`file://${join(path, 'decoder', 'model.json')}`);
      assert.equal(decoder.inputs.length, 2, 'the cvae decoder takes z and the label');
      tf.dispose([x, y, ...outputs]);
      plain.dispose();
      decoder.dispose();
    } finally {
      bundle.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
