// Exact resume (issue 4): 20 steps straight vs 10 steps, stop, resume, 10 more.
// Same workers: bitwise-identical weights and the same per-step losses. A
// different number of workers after the resume: within 1e-5.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { relativeDifference } from '../../shared/train/core.js';
import { checkpointWeights, tempDir, trainJson } from '../helpers/cli.js';

const COMMON = ['--model', 'vae', '--train-limit', '300', '--batch-size', '32', '--seed', '11', '--filters', '4', '--checkpoint-every', '5', '--metrics-port', '0', '--dashboard-port', '0', '--log-level', 'warn'];

void test('stop mid-epoch and resume: bitwise identical to 20 straight steps (300 images, batch 32: 10 steps per epoch)', { timeout: 300_000 }, async () => {
  const straightDir = tempDir('resume-straight');
  const splitDir = tempDir('resume-split');
  const otherDir = tempDir('resume-other');
  try {
    const straight = await trainJson(['--workers', '2', '--steps', '20', '--checkpoint-dir', straightDir, ...COMMON]);
    const first = await trainJson(['--workers', '2', '--steps', '7', '--checkpoint-dir', splitDir, ...COMMON]);
    assert.equal(first.steps, 7);
    const resumed = await trainJson(['--workers', '2', '--steps', '20', '--resume', '--checkpoint-dir', splitDir, ...COMMON]);
    assert.equal(resumed.startStep, 7);
    assert.equal(resumed.steps, 20);
    assert.equal(resumed.samples, straight.samples, 'the resumed run used exactly the images the straight one did');
    assert.deepEqual(resumed.losses, straight.losses, 'same per-step losses, so the same images and noise in the same order');
    assert.equal(resumed.weightsSha256, straight.weightsSha256, 'bitwise identical weights');
    assert.ok(straight.checkpoint !== null && resumed.checkpoint !== null);
    assert.deepEqual(checkpointWeights(resumed.checkpoint), checkpointWeights(straight.checkpoint));

    // Resuming with another number of workers (3, then in-process) changes only the float32 summation order.
    await trainJson(['--workers', '2', '--steps', '13', '--checkpoint-dir', otherDir, ...COMMON]);
    const three = await trainJson(['--workers', '3', '--steps', '20', '--resume', '--checkpoint-dir', otherDir, ...COMMON]);
    assert.equal(three.startStep, 13);
    assert.ok(three.checkpoint !== null);
    const diff = relativeDifference(checkpointWeights(straight.checkpoint), checkpointWeights(three.checkpoint));
    assert.ok(diff <= 1e-5, `relative difference ${diff}`);
    for (let s = 0; s < 20; s++) assert.ok(Math.abs((three.losses[s] as number) - (straight.losses[s] as number)) <= 1e-5 * Math.abs(straight.losses[s] as number), `step ${s}`);
  } finally {
    for (const d of [straightDir, splitDir, otherDir]) rmSync(d, { recursive: true, force: true });
  }
});

void test('--resume with no checkpoint is a clear error, not a fresh start; --resume auto starts fresh', { timeout: 120_000 }, async () => {
  const dir = tempDir('resume-none');
  try {
    const { runCli } = await import('../helpers/cli.js');
    const r = await runCli(['train', '--workers', '0', '--steps', '2', '--resume', '--checkpoint-dir', dir, ...COMMON]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no valid checkpoint in .*resume-none/);
    const fresh = await trainJson(['--workers', '0', '--steps', '2', '--resume', 'auto', '--checkpoint-dir', dir, ...COMMON]);
    assert.equal(fresh.startStep, 0);
    const again = await trainJson(['--workers', '0', '--steps', '4', '--resume', 'auto', '--checkpoint-dir', dir, ...COMMON]);
    assert.equal(again.startStep, 2);
    const mismatch = await runCli(['train', '--workers', '0', '--steps', '6', '--resume', '--checkpoint-dir', dir, ...COMMON.map((a) => (a === '11' ? '12' : a))]);
    assert.equal(mismatch.code, 1);
    assert.match(mismatch.stderr, /was written with --seed 11, this run has 12/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
