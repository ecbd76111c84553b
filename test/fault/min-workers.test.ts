// --min-workers: when a worker dies and fewer than --min-workers remain, the run
// pauses at the step boundary (a log line says why, lockstep_paused is 1, no step
// is applied) instead of hanging or training on; a worker joining resumes it
// (lockstep_paused back to 0). Same math.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertInvariants, minWorkers } from './scenarios.js';

void test('--min-workers pauses (log line + lockstep_paused) and a joining worker resumes the run', { timeout: 150_000 }, async () => {
  const r = await minWorkers({ seed: 19, quick: true, onProgress: (s) => process.stderr.write(`  ${s}\n`) });
  assertInvariants(r, { maxWallSeconds: 90, maxJoinsPerWorker: 1 });
  const f = r.facts;
  assert.match(String(f.pausedLog), /run paused: 1 live workers, --min-workers is 2/);
  assert.equal(f.pausedMetric, 1, 'lockstep_paused 1 while paused');
  assert.equal(f.workersMetricWhilePaused, 1, 'lockstep_workers shows the one live worker');
  assert.equal(f.stepsWhilePaused, 0, 'no step applied while paused');
  assert.ok((f.failuresMetric as number) >= 1, `lockstep_worker_failures_total = ${String(f.failuresMetric)}`);
  assert.equal(f.resumedMetric, 0, 'lockstep_paused 0 after the join');
  assert.ok((f.lost as string[]).includes('w1'));
  assert.ok((r.coverage.partsByWorker.get('w2') ?? 0) > 0, 'the joining worker took parts after the resume');
});
