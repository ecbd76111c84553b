// A worker joins mid-run: it is admitted at the next step boundary, receives the
// current weights, and from then on the global batch is split over one more
// worker, with the same math (the global batch is the unit, not the worker).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertInvariants, workerJoin } from './scenarios.js';

void test('a worker joining mid-run takes parts from the next step on, same math as the clean run', { timeout: 150_000 }, async () => {
  const r = await workerJoin({ seed: 13, quick: true, onProgress: (s) => process.stderr.write(`  ${s}\n`) });
  assertInvariants(r, { maxWallSeconds: 90, maxJoinsPerWorker: 1 });
  const joined = r.coverage.partsByWorker.get('w1') ?? 0;
  assert.ok(joined > 0, 'the newcomer computed parts');
  assert.ok(joined < r.steps, `it joined mid-run: ${joined} of ${r.steps} steps`);
  assert.ok((r.facts.joinerFirstStep as number) > 0, `its first part was of step ${String(r.facts.joinerFirstStep)}`);
  assert.deepEqual(r.facts.lost, [], 'nobody was declared lost');
  for (const s of r.recoverSeconds) assert.ok(s < 10, `the newcomer contributed ${s.toFixed(2)} s after it started`);
});
