// The invariant the coordinator checks before every apply (StepRound.coverage):
// each part has exactly one accepted result, for its own part and of its size,
// and the parts are exactly the planned global batch, each image once. The fault
// scenarios rely on it throwing; here each way of breaking it is shown to throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InternalError } from '../../shared/errors.js';
import { StepPlanner, splitBatch } from '../../shared/train/plan.js';
import { StepRound } from '../../coordinator/round.js';

function round(workers = 3): { r: StepRound; slice: Int32Array } {
  const planner = new StepPlanner({ seed: 3, datasetSize: 100, batchSize: 32 });
  const slice = planner.slice(4).indices;
  const ids = Array.from({ length: workers }, (_, i) => `w${i}`);
  const r = new StepRound(1, 4, 1, slice.length, splitBatch(slice, workers), ids, 0);
  return { r, slice };
}

function finish(r: StepRound): void {
  for (const p of r.parts) {
    p.result = { part: p.part, count: p.indices.length, grad: new Float32Array(2), loss: { total: 0, reconstruction: 0, kl: 0 } };
    p.doneBy = p.assigned[0] ?? null;
  }
}

void test('coverage: a complete round covers its planned batch exactly once and says who computed what', () => {
  const { r, slice } = round();
  finish(r);
  const cov = r.coverage(slice);
  assert.deepEqual(cov.map((c) => c.worker), ['w0', 'w1', 'w2']);
  assert.deepEqual(cov.flatMap((c) => c.indices).sort((a, b) => a - b), Array.from(slice).sort((a, b) => a - b));
  assert.equal(cov.reduce((a, c) => a + c.count, 0), 32);
});

void test('coverage: a missing result, a result of another part, a wrong count, or another batch throws', () => {
  {
    const { r, slice } = round();
    finish(r);
    (r.parts[1] as { result: unknown }).result = null;
    assert.throws(() => r.coverage(slice), InternalError);
  }
  {
    const { r, slice } = round();
    finish(r);
    const p = r.parts[2];
    if (p?.result) p.result = { ...p.result, part: 1 };
    assert.throws(() => r.coverage(slice), /holds the result of part 1/);
  }
  {
    const { r, slice } = round();
    finish(r);
    const p = r.parts[0];
    if (p?.result) p.result = { ...p.result, count: p.result.count + 1 };
    assert.throws(() => r.coverage(slice), /its result counts/);
  }
  {
    const { r } = round();
    finish(r);
    const other = new StepPlanner({ seed: 3, datasetSize: 100, batchSize: 32 }).slice(5).indices;
    assert.throws(() => r.coverage(other), InternalError);
  }
  {
    // A part whose images overlap another's: an image covered twice.
    const { r, slice } = round(2);
    finish(r);
    const p0 = r.parts[0];
    const p1 = r.parts[1];
    if (p0 && p1) p1.indices = Int32Array.from([...p1.indices.slice(1), p0.indices[0] as number]);
    assert.throws(() => r.coverage(slice), /covered by 2 parts|not in the step's global batch/);
  }
});
