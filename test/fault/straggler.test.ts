// SIGSTOP of a worker mid-part (a straggler), SIGCONT after 1.5 s: a backup copy
// of its part goes to the idle worker and wins long before the heartbeat timeout
// would declare the slow one lost; lockstep_stragglers_total counts it; the slow
// worker's late result is discarded (never double-counted) and it carries on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertInvariants, straggler } from './scenarios.js';

void test('SIGSTOP/SIGCONT straggler: the backup copy wins, counted in lockstep_stragglers_total', { timeout: 150_000 }, async () => {
  const r = await straggler({ seed: 12, quick: true, onProgress: (s) => process.stderr.write(`  ${s}\n`) });
  assertInvariants(r, { maxWallSeconds: 90, maxJoinsPerWorker: 1 });
  const f = r.facts;
  assert.equal(f.backupWorker, 'w0', 'the idle worker got the backup copy');
  assert.ok((f.stragglersMetric as number) >= 1, `lockstep_stragglers_total = ${String(f.stragglersMetric)}`);
  assert.ok((f.stepSecondsAfterStop as number) < (f.heartbeatTimeout as number), `the straggled step finished ${String(f.stepSecondsAfterStop)} s after the stop, before the ${String(f.heartbeatTimeout)} s heartbeat timeout`);
  assert.ok(!(f.lost as string[]).includes('w1'), 'the straggler was not declared lost');
  assert.equal(f.slowWorkerComputedAgain, true, 'after SIGCONT the slow worker computes parts again');
  assert.ok(r.coverage.partsByWorker.get('w1') !== undefined && (r.coverage.partsByWorker.get('w1') as number) > 0, 'w1 contributed parts');
});
