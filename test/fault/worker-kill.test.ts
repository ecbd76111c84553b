// kill -9 of a worker that holds a part of the current step: the step still
// completes (its part recomputed by a live worker: a straggler backup copy or,
// after the heartbeat timeout, a reassignment), every image is used exactly once
// per epoch, the weights right after the recomputed step are bitwise those of a
// fault-free 3-worker run, and the final weights equal the uninterrupted
// in-process run's within 1e-5.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertInvariants, workerKill } from './scenarios.js';

void test('worker kill -9 mid-step: the part is recomputed, same math as the clean run', { timeout: 150_000 }, async () => {
  const r = await workerKill({ seed: 11, quick: true, onProgress: (s) => process.stderr.write(`  ${s}\n`) });
  assertInvariants(r, { maxWallSeconds: 90, maxJoinsPerWorker: 1 });
  const victims = r.facts.victims as string[];
  const lost = r.facts.lost as string[];
  for (const v of victims) assert.ok(lost.includes(v), `${v} was declared lost`);
  const moved = r.facts.reassigned as Array<{ step: number; part: number; from: string; to: string; creditedTo: string }>;
  assert.ok(moved.some((m) => victims.includes(m.from)), 'a part held by a killed worker was reassigned');
  for (const m of moved) {
    assert.ok(!victims.includes(m.to), `reassigned to a live worker: ${JSON.stringify(m)}`);
    // The applied step's coverage credits the part to a live worker, never to the dead one.
    assert.ok(m.creditedTo !== undefined && !victims.includes(m.creditedTo), `step ${m.step} part ${m.part} computed by ${m.creditedTo}`);
  }
  // The step whose part was recomputed by another worker has the SAME math as the clean run:
  // the coordinator's weights after it are bitwise those of a fault-free 3-worker run.
  const rec = r.facts.recomputed as { step: number; part: number; by: string };
  assert.ok(!victims.includes(rec.by), `step ${rec.step} part ${rec.part} recomputed by ${rec.by}`);
  assert.ok((r.facts.recomputedStepRelDiff as number) <= 1e-5, `relative difference after the recomputed step: ${String(r.facts.recomputedStepRelDiff)}`);
  assert.equal(r.facts.recomputedStepBitwise, true, 'weights after the recomputed step bitwise equal to the clean run');
  // Bounded by the 1 s heartbeat timeout plus a recompute.
  for (const s of r.recoverSeconds) assert.ok(s < 10, `recovered in ${s.toFixed(2)} s`);
});
