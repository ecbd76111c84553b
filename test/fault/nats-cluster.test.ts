// A 3-server NATS cluster (routes on loopback, test-local configs). The
// coordinator is on server a, the workers on b and c; server b is killed -9.
// Its worker fails over to a server it learned from the cluster's INFO gossip and
// keeps working in the same process. --min-workers 2 makes the failover
// necessary: the run could not finish without it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertInvariants, natsCluster } from './scenarios.js';

void test('3-server NATS cluster: the server a worker is attached to is killed, the worker fails over', { timeout: 150_000 }, async () => {
  const r = await natsCluster({ seed: 17, quick: true, onProgress: (s) => process.stderr.write(`  ${s}\n`) });
  assertInvariants(r, { maxWallSeconds: 90, maxJoinsPerWorker: 2 });
  assert.equal(r.facts.workerAlive, true, 'the worker kept its process');
  assert.notEqual(`nats://${String(r.facts.reconnectedTo)}`, r.facts.killedServer, 'it reconnected to another server');
  assert.ok((r.facts.reconnectSeconds as number) < 15, `reconnected after ${String(r.facts.reconnectSeconds)} s`);
  assert.ok(typeof r.facts.firstStepAfterFailover === 'number', 'it computed parts after the failover');
});
