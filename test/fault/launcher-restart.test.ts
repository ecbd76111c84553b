// The local launcher's supervision (`lockstep train --workers 2`): the coordinator
// is killed -9 and restarted with --resume auto while the workers keep their
// processes; then a worker is killed -9 and restarted under the same id (below
// --min-workers the run pauses until it is back). One JSON result, same math.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertInvariants, launcherRestart } from './scenarios.js';

void test('launcher supervision: coordinator and worker kill -9 are restarted, workers keep their PIDs across the coordinator restart', { timeout: 150_000 }, async () => {
  const r = await launcherRestart({ seed: 20, quick: true, onProgress: (s) => process.stderr.write(`  ${s}\n`) });
  assertInvariants(r, { maxWallSeconds: 100, maxJoinsPerWorker: 3 });
  const f = r.facts;
  assert.equal(f.coordinatorRestartLogged, true);
  assert.equal(f.workerRestartLogged, true);
  assert.equal((f.coordinatorPids as number[]).length, 2, 'two coordinator processes');
  assert.deepEqual(f.terms, [1, 2]);
  assert.equal(f.rejoinedFromSamePids, true, 'workers rejoined the new term from their original processes');
  const pids = f.workerPids as Record<string, number[]>;
  const before = f.workerPidsBefore as Record<string, number>;
  assert.deepEqual(pids.w0, [before.w0], 'w0 never restarted');
  assert.deepEqual(pids.w1, [before.w1, f.restartedWorkerPid], 'w1 restarted once, after its own kill only');
});
