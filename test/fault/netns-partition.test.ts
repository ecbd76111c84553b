// Workers in their own network namespaces, joined to the host by veth pairs that
// the test creates and removes. Each worker's link is cut (ip link set down) and
// restored in turn: the cut worker is declared lost, its part recomputed by the
// other, the run pauses below --min-workers 2, and resumes when the worker's TCP
// session recovers and it rejoins in the same process. Same math.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertInvariants, netnsPartition, type ScenarioResult } from './scenarios.js';
import { netnsAvailable } from '../helpers/cluster.js';

const probe = netnsAvailable();

void test('network namespaces: a worker link cut and restored, the worker rejoins and the run finishes with the same math', { timeout: 180_000, skip: probe.ok ? false : probe.why }, async () => {
  const out = await netnsPartition({ seed: 18, quick: false, onProgress: (s) => process.stderr.write(`  ${s}\n`) });
  assert.ok(!('skipped' in out && out.skipped !== undefined), `skipped: ${String((out as { skipped?: string }).skipped)}`);
  const r = out as ScenarioResult;
  // Joins per worker: the first, the rejoin after its cut, and at most one more: the ack of a retried
  // request can wait for TCP's backed-off retransmission after the link comes back.
  assertInvariants(r, { maxWallSeconds: 120, maxJoinsPerWorker: 3 });
  assert.equal(r.faults.length, 2, 'both links were cut and restored');
  assert.equal(r.facts.workersAlive, true, 'the cut workers kept their processes');
  const lost = r.facts.lost as string[];
  assert.ok(lost.includes('w0') && lost.includes('w1'), `each cut worker was declared lost: ${lost.join(', ')}`);
  assert.equal(r.facts.pausedWhileCut, true, 'the run paused below --min-workers while a link was down');
  for (const s of r.facts.rejoinSecondsAfterRestore as number[]) assert.ok(s < 30, `rejoined ${s.toFixed(2)} s after the link came back`);
});
