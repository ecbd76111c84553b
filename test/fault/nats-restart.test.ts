// The nats-server is killed -9 mid-run and restarted on the same port: every
// client reconnects, messages lost in between are recovered by the protocol
// (re-sent plans, re-requested parts, rejoin), no process restarts, same math.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertInvariants, natsRestart } from './scenarios.js';

void test('nats-server kill -9 and restart on the same port: the run finishes with the same math', { timeout: 150_000 }, async () => {
  const r = await natsRestart({ seed: 15, quick: true, onProgress: (s) => process.stderr.write(`  ${s}\n`) });
  assertInvariants(r, { maxWallSeconds: 90, maxJoinsPerWorker: 2 });
  assert.equal(r.facts.processesAlive, true, 'no lockstep process died or was restarted');
  assert.deepEqual(r.facts.reconnected, [true, true, true], 'both workers and the coordinator reconnected');
  for (const s of r.recoverSeconds) assert.ok(s < 15, `stepping again ${s.toFixed(2)} s after the kill (broker down ${String(r.facts.downSeconds)} s)`);
});
