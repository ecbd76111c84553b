// DESIGN.md section 2: N workers equal one process. Same seed, 20 steps:
// in-process, 2 workers and 3 workers (an uneven split, and the epoch's short
// last batch) agree within 1e-5 in weights and in every step's loss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { relativeDifference } from '../../shared/train/core.js';
import { checkpointWeights, coverageByEpoch, logOf, tempDir, trainJson } from '../helpers/cli.js';

// 520 images, batch 50: 11 steps per epoch, the 11th has 20 images; 20 steps cross into epoch 1.
const COMMON = ['--train-limit', '520', '--batch-size', '50', '--steps', '20', '--seed', '7', '--filters', '4', '--checkpoint-every', '0', '--metrics-port', '0', '--dashboard-port', '0', '--log-level', 'warn'];

for (const model of ['ae', 'vae'] as const) {
  void test(`${model}: 1 process, 2 workers and 3 workers agree within 1e-5 after 20 steps`, { timeout: 300_000 }, async () => {
    const dirs: string[] = [];
    try {
      const runs = [];
      for (const workers of [0, 2, 3]) {
        const dir = tempDir(`eq-${model}-${workers}`);
        dirs.push(dir);
        const r = await trainJson(['--model', model, '--workers', String(workers), '--checkpoint-dir', dir, ...COMMON, ...(workers > 0 ? ['--log-level', 'debug'] : [])]);
        if (workers > 0) {
          // What the coordinator actually applied: epoch 0 used each of the 520 images exactly once.
          const cov = coverageByEpoch(logOf(r));
          const e0 = cov.get(0);
          assert.ok(e0 !== undefined);
          assert.equal(e0.size, 520);
          for (const [i, n] of e0) assert.equal(n, 1, `image ${i} used ${n} times in epoch 0`);
          const e1 = cov.get(1);
          assert.ok(e1 !== undefined && e1.size === 9 * 50 && [...e1.values()].every((n) => n === 1));
        }
        assert.equal(r.steps, 20);
        assert.equal(r.samples, 11 * 50 - 30 + 9 * 50, 'every image of epoch 0 once, then 9 batches of epoch 1');
        assert.ok(r.checkpoint !== null);
        runs.push({ workers, r, weights: checkpointWeights(r.checkpoint) });
      }
      const [ref, ...others] = runs as [(typeof runs)[number], ...typeof runs];
      assert.equal(ref.r.losses.length, 20);
      assert.ok((ref.r.losses[19] as number) < (ref.r.losses[0] as number), 'loss falls');
      for (const o of others) {
        const diff = relativeDifference(ref.weights, o.weights);
        assert.ok(diff <= 1e-5, `${o.workers} workers: relative weight difference ${diff}`);
        for (let s = 0; s < 20; s++) {
          const a = ref.r.losses[s] as number;
          const b = o.r.losses[s] as number;
          assert.ok(Math.abs(a - b) <= 1e-5 * Math.abs(a), `${o.workers} workers, step ${s}: loss ${b} vs ${a}`);
        }
      }
    } finally {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });
}
