// kill -9 of the coordinator mid-run; a new coordinator process with --resume auto
// resumes from the newest checkpoint with a new term. The workers keep their
// processes (same PIDs), notice the new term, rejoin it and carry on; steps after
// the checkpoint are redone with the same images; the final weights equal the
// uninterrupted run's within 1e-5 and no sample is counted twice. Messages of the
// old term (a plan, a stop, a heartbeat), published after the rejoin, are ignored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertInvariants, coordinatorRestart } from './scenarios.js';

void test('coordinator kill -9 and restart with --resume auto: workers keep their PIDs and rejoin the new term', { timeout: 150_000 }, async () => {
  const r = await coordinatorRestart({ seed: 14, quick: true, onProgress: (s) => process.stderr.write(`  ${s}\n`) });
  assertInvariants(r, { maxWallSeconds: 90, maxJoinsPerWorker: 2 });
  const f = r.facts;
  assert.ok((f.newTerm as number) > (f.oldTerm as number), `new term ${String(f.newTerm)} > old term ${String(f.oldTerm)}`);
  assert.deepEqual(f.pidsAfter, f.pidsBefore, 'worker PIDs unchanged');
  assert.equal(f.workersAlive, true);
  assert.equal(f.workerProcessesStarted, 2, 'no worker process was (re)started');
  for (const pids of f.workerLogPids as number[][]) assert.equal(pids.length, 1, 'each worker logged from one process only');
  assert.equal(r.result.startStep, f.resumedFromStep, 'the new coordinator started at its checkpoint');
  assert.ok((f.resumedFromStep as number) <= (f.killedAfterStep as number) + 1);
  assert.ok((f.resumedFromStep as number) > 0, 'resumed from a checkpoint, not from scratch');
  assert.equal(f.staleTermComputed, false, 'a plan of the old term was not computed');
  assert.equal(f.staleTermObeyed, false, 'a stop and a heartbeat of the old term were ignored');
  for (const s of r.recoverSeconds) assert.ok(s < 30, `stepping again ${s.toFixed(2)} s after the kill`);
});
