// Checkpoint files: written whole or not at all, checked on read, and a
// malformed checkpoint is refused with its reason and skipped for the previous one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { findLatestCheckpoint, listStepDirs, pruneCheckpoints, readCheckpointState, validateCheckpoint, writeCheckpoint, type WriteInput } from '../../shared/checkpoint/store.js';
import { CheckpointError } from '../../shared/errors.js';
import { tempDir } from '../helpers/cli.js';

function input(step: number): WriteInput {
  const n = 6;
  return {
    manifest: {
      job: 'j',
      term: 1,
      step,
      epoch: 0,
      cursor: { batchInEpoch: step, stepsPerEpoch: 100, datasetSize: 1000 },
      rng: { algorithm: 'lockstep-hash32', seed: 1 },
      config: { model: 'ae' },
      model: { kind: 'ae', arch: 'conv', numParams: n, latentDim: 16, filters: 4, hiddenUnits: 500, seed: 1 },
      optimizer: { name: 'adam', t: step, lr: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
      losses: Array.from({ length: step }, (_, i) => 10 - i),
      samples: step * 10,
    },
    state: { weights: Float32Array.from({ length: n }, (_, i) => i + step), adamM: new Float32Array(n).fill(0.5), adamV: new Float32Array(n).fill(0.25) },
    model: { modelJson: '{"modelTopology":{}}', weightsBin: new Uint8Array([1, 2, 3, 4]) },
    decoder: null,
  };
}

void test('write, read back, keep the newest K, and leave no temp directories', () => {
  const root = tempDir('ckpt');
  try {
    for (const s of [1, 2, 3, 4]) {
      writeCheckpoint(root, input(s));
      pruneCheckpoints(root, 2);
    }
    assert.deepEqual(listStepDirs(root), ['step-000000004', 'step-000000003']);
    assert.ok(readdirSync(root).every((n) => n.startsWith('step-')));
    const found = findLatestCheckpoint(root);
    assert.equal(found.manifest.step, 4);
    const st = readCheckpointState(found.path);
    assert.deepEqual(Array.from(st.weights), [4, 5, 6, 7, 8, 9]);
    assert.deepEqual(Array.from(st.adamV), [0.25, 0.25, 0.25, 0.25, 0.25, 0.25]);
    // Rewriting the same step (a resumed run that checkpoints again) replaces it atomically.
    writeCheckpoint(root, input(4));
    assert.equal(findLatestCheckpoint(root).manifest.step, 4);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

void test('each kind of damage is refused with its reason, and the previous checkpoint is used', () => {
  const root = tempDir('ckpt-bad');
  try {
    const damage: Array<[string, (dir: string) => void, RegExp]> = [
      ['missing manifest', (d) => unlinkSync(join(d, 'manifest.json')), /incomplete: manifest\.json is missing/],
      ['unparseable manifest', (d) => writeFileSync(join(d, 'manifest.json'), '{"format": 1, '), /manifest\.json is not valid JSON/],
      ['schema', (d) => writeFileSync(join(d, 'manifest.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8')), step: -1 })), /manifest\.json is invalid at 'step'/],
      ['missing file', (d) => unlinkSync(join(d, 'state', 'adam-m.f32')), /file 'state\/adam-m\.f32' is missing/],
      ['bad sha256', (d) => writeFileSync(join(d, 'state', 'weights.f32'), Buffer.alloc(24, 7)), /file 'state\/weights\.f32' is corrupt: sha256/],
      ['truncated weights', (d) => writeFileSync(join(d, 'model', 'weights.bin'), new Uint8Array([1, 2])), /file 'model\/weights\.bin' is corrupt/],
    ];
    for (const [name, hurt, re] of damage) {
      rmSync(root, { recursive: true, force: true });
      mkdirSync(root);
      writeCheckpoint(root, input(1));
      const newest = writeCheckpoint(root, input(2));
      hurt(newest);
      assert.throws(() => validateCheckpoint(newest), (e: unknown) => e instanceof CheckpointError && re.test(e.message), name);
      const found = findLatestCheckpoint(root);
      assert.equal(found.manifest.step, 1, `${name}: falls back to the previous checkpoint`);
      assert.equal(found.skipped.length, 1);
      assert.match(found.skipped[0]?.reason ?? '', re);
    }
    // None valid: a clear error listing why, not a fresh start.
    for (const n of listStepDirs(root)) unlinkSync(join(root, n, 'manifest.json'));
    assert.throws(() => findLatestCheckpoint(root), (e: unknown) => e instanceof CheckpointError && e.code === 'CHECKPOINT_NOT_FOUND' && /no valid checkpoint in .*skipped: .*manifest\.json is missing/.test(e.message));
    assert.throws(() => findLatestCheckpoint(join(root, 'nope')), /no such checkpoint directory/);
    assert.ok(existsSync(root));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
