// Crash safety of checkpoints (issue 4): the coordinator is killed with SIGKILL
// at seeded moments, both at file-level fault points inside a checkpoint write
// and at random times. After every kill, every step directory on disk is
// complete and valid, the newest is found, and the run resumes from it. After
// all trials the run finishes with the weights of an uninterrupted run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { findLatestCheckpoint, listStepDirs, validateCheckpoint } from '../../shared/checkpoint/store.js';
import { relativeDifference } from '../../shared/train/core.js';
import { Mulberry32 } from '../../shared/train/rng.js';
import { ENTRY, checkpointWeights, tempDir, trainJson } from '../helpers/cli.js';
import { startNatsServer } from '../helpers/nats-server.js';

const MODEL = ['--model', 'vae', '--filters', '4', '--train-limit', '256', '--batch-size', '32', '--seed', '5'];
const STEPS = 400;
const POINTS = ['model/model.json', 'model/weights.bin', 'decoder/model.json', 'decoder/weights.bin', 'state/weights.f32', 'state/adam-m.f32', 'state/adam-v.f32', 'manifest.json', 'before-rename', 'after-rename'];

function startProcess(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; stderr: () => string } {
  const child = spawn(process.execPath, [ENTRY, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-20000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited, stderr: () => err };
}

void test('SIGKILL during checkpoint writes never leaves a bad newest checkpoint, and the run resumes exactly', { timeout: 420_000 }, async () => {
  const dir = tempDir('crash');
  const refDir = tempDir('crash-ref');
  const nats = await startNatsServer();
  const worker = startProcess(['worker', '--nats', nats.url, '--worker-id', 'w0', '--heartbeat-timeout', '2', '--log-level', 'warn']);
  try {
    const reference = await trainJson(['--workers', '0', '--steps', String(STEPS), '--checkpoint-dir', refDir, '--checkpoint-every', '0', '--metrics-port', '0', ...MODEL, '--log-level', 'warn']);
    const rng = new Mulberry32(20261204);
    const coordArgs = ['coordinator', '--nats', nats.url, '--steps', String(STEPS), '--checkpoint-every', '1', '--keep-checkpoints', '3', '--resume', 'auto', '--checkpoint-dir', dir, '--heartbeat-timeout', '2', '--metrics-port', '0', '--dashboard-port', '0', '--log-level', 'warn', ...MODEL];
    let kills = 0;
    let lastStep = 0;
    let finished = false;
    // Trials go on until 20 kills have happened (a timer trial may land after the run's end).
    for (let trial = 0; trial < 40 && kills < 20; trial++) {
      const filePoint = trial % 3 !== 2;
      const env: NodeJS.ProcessEnv = {};
      if (filePoint) {
        env.LOCKSTEP_FAULT_CHECKPOINT = POINTS[rng.nextInt(POINTS.length)];
        env.LOCKSTEP_FAULT_CHECKPOINT_NTH = String(1 + rng.nextInt(3));
      }
      const coord = startProcess(coordArgs, env);
      let timer: NodeJS.Timeout | undefined;
      if (!filePoint) {
        // A random moment: anywhere in start-up, a step or a checkpoint write.
        timer = setTimeout(() => coord.child.kill('SIGKILL'), 500 + rng.nextInt(1500));
      }
      const exit = await coord.exited;
      clearTimeout(timer);
      if (exit.signal === 'SIGKILL') kills += 1;
      else assert.equal(exit.code, 0, `trial ${trial} (${env.LOCKSTEP_FAULT_CHECKPOINT ?? 'timer'}) exited ${exit.code}: ${coord.stderr().slice(-2000)}`);
      // Every step directory that exists is whole: the rename is the commit point.
      for (const name of listStepDirs(dir)) validateCheckpoint(join(dir, name));
      const steps = listStepDirs(dir);
      if (steps.length > 0) {
        const found = findLatestCheckpoint(dir);
        assert.equal(found.skipped.length, 0);
        assert.ok(found.manifest.step >= lastStep, `trial ${trial}: newest checkpoint went back from ${lastStep} to ${found.manifest.step}`);
        lastStep = found.manifest.step;
      }
      if (exit.code === 0) {
        // The run completed; its coordinator told the worker to stop.
        finished = true;
        break;
      }
    }
    assert.ok(kills >= 20, `only ${kills} kills happened`);
    // Finish the run without faults; it resumes from the newest checkpoint.
    if (!finished) {
      const final = startProcess(coordArgs);
      const exit = await final.exited;
      assert.equal(exit.code, 0, final.stderr().slice(-2000));
    }
    const last = findLatestCheckpoint(dir);
    assert.equal(last.manifest.step, STEPS);
    assert.ok(reference.checkpoint !== null);
    const diff = relativeDifference(checkpointWeights(reference.checkpoint), checkpointWeights(last.path));
    assert.ok(diff <= 1e-5, `after ${kills} kills the weights differ from the uninterrupted run by ${diff}`);
    assert.deepEqual(last.manifest.losses.map((l) => Math.fround(l ?? NaN)), reference.losses.map((l) => Math.fround(l)));
  } finally {
    worker.child.kill('SIGKILL');
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(refDir, { recursive: true, force: true });
  }
});
