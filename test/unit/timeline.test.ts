import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PhaseRecorder, TimelineWriter } from '../../shared/timeline.js';
import type { PhaseSpan, TraceEvent, TraceFile } from '../../shared/timeline.js';

function fakeClock(startUs = 1_700_000_000_000_000) {
  let t = startUs;
  return { now: () => t, advance: (us: number) => (t += us) };
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lockstep-timeline-'));
}

void test('writes a Chrome trace with named actors and step phases', async () => {
  const dir = tmpDir();
  try {
    const file = path.join(dir, 'sub', 'trace.json');
    const clock = fakeClock();
    const tl = new TimelineWriter({ path: file, clock: clock.now, processName: 'lockstep test-job', metadata: { job: 'test-job' } });
    const workerClock = fakeClock(5); // another host's clock: never compared with ours
    const recorders = new Map(['w-a', 'w-b'].map((id) => [id, new PhaseRecorder(workerClock.now)] as const));

    for (let step = 1; step <= 3; step++) {
      const published = tl.nowUs();
      const endWait = tl.begin('coordinator', 'wait', { step });
      const remote = new Map<string, PhaseSpan[]>();
      for (const [id, rec] of recorders) {
        rec.begin();
        workerClock.advance(100);
        rec.start('wait')();
        const endCompute = rec.start('compute');
        workerClock.advance(5000);
        endCompute();
        await rec.time('encode', () => workerClock.advance(300));
        const endPublish = rec.start('publish');
        workerClock.advance(50);
        endPublish();
        remote.set(id, rec.spans());
      }
      clock.advance(6000);
      endWait();
      for (const [id, spans] of remote) tl.addRemoteSpans(id, spans, { anchorUs: published, args: { step } });
      await tl.measure('coordinator', 'aggregate', () => clock.advance(400), { step });
      tl.span('coordinator', 'optimizer', clock.now(), 250, { step });
      clock.advance(250);
      const endBroadcast = tl.begin('coordinator', 'broadcast', { step });
      clock.advance(120);
      endBroadcast({ bytes: 4096 });
    }
    tl.instant('coordinator', 'checkpoint written', { step: 3 });
    assert.equal(fs.existsSync(file), false, 'nothing is written before close()');
    assert.equal(await tl.close(), file);
    assert.equal(await tl.close(), file, 'close is idempotent');

    const trace = JSON.parse(fs.readFileSync(file, 'utf8')) as TraceFile;
    assert.equal(trace.displayTimeUnit, 'ms');
    assert.ok(Array.isArray(trace.traceEvents));
    assert.equal(trace.otherData.job, 'test-job');
    assert.equal(trace.otherData.droppedEvents, 0);

    const meta = trace.traceEvents.filter((e) => e.ph === 'M');
    const proc = meta.find((e) => e.name === 'process_name');
    assert.equal(proc?.args?.name, 'lockstep test-job');
    const threads = new Map(meta.filter((e) => e.name === 'thread_name').map((e) => [e.args?.name as string, e.tid]));
    assert.deepEqual([...threads.keys()].sort(), ['coordinator', 'w-a', 'w-b']);
    assert.equal(new Set(threads.values()).size, 3, 'one track per actor');

    const spans = trace.traceEvents.filter((e): e is TraceEvent & { dur: number } => e.ph === 'X');
    for (const e of spans) {
      assert.equal(typeof e.name, 'string');
      assert.ok(e.cat === 'coordinator' || e.cat === 'worker');
      assert.ok(Number.isInteger(e.ts) && Number.isInteger(e.dur) && e.dur >= 0);
      assert.equal(e.pid, 1);
      assert.ok([...threads.values()].includes(e.tid));
    }
    const names = (tid: number | undefined) => spans.filter((e) => e.tid === tid).map((e) => e.name);
    assert.deepEqual(names(threads.get('coordinator')), Array.from({ length: 3 }, () => ['wait', 'aggregate', 'optimizer', 'broadcast']).flat());
    assert.deepEqual(names(threads.get('w-a')), Array.from({ length: 3 }, () => ['wait', 'compute', 'encode', 'publish']).flat());
    assert.equal(spans.length, 3 * 4 + 3 * 4 * 2);

    // Worker spans sit on the coordinator's clock, inside the coordinator's wait of that step.
    for (const step of [1, 2, 3]) {
      const wait = spans.find((e) => e.tid === threads.get('coordinator') && e.name === 'wait' && e.args?.step === step);
      const compute = spans.find((e) => e.tid === threads.get('w-b') && e.name === 'compute' && e.args?.step === step);
      assert.ok(wait !== undefined && compute !== undefined);
      assert.equal(compute.dur, 5000);
      assert.equal(compute.ts, wait.ts + 100);
      assert.ok(compute.ts + compute.dur <= wait.ts + wait.dur);
    }
    const broadcast = spans.find((e) => e.name === 'broadcast');
    assert.deepEqual(broadcast?.args, { step: 1, bytes: 4096 });
    const instant = trace.traceEvents.find((e) => e.ph === 'i');
    assert.equal(instant?.name, 'checkpoint written');
    assert.equal(instant?.s, 't');
    // The temp file is gone.
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['trace.json']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

void test('memory is bounded: the newest events are kept, the rest counted as dropped', () => {
  const dir = tmpDir();
  try {
    const clock = fakeClock(0);
    const tl = new TimelineWriter({ path: path.join(dir, 't.json'), clock: clock.now, maxEvents: 50 });
    for (let i = 0; i < 5000; i++) tl.span(i % 2 === 0 ? 'coordinator' : 'w1', 'compute', i * 10, 5, { i });
    assert.equal(tl.size, 50);
    assert.equal(tl.dropped, 4950);
    tl.closeSync();
    const trace = JSON.parse(fs.readFileSync(path.join(dir, 't.json'), 'utf8')) as TraceFile;
    const kept = trace.traceEvents.filter((e) => e.ph === 'X').map((e) => e.args?.i as number);
    assert.deepEqual(kept, Array.from({ length: 50 }, (_, j) => 4950 + j));
    assert.equal(trace.otherData.droppedEvents, 4950);
    // After close, nothing more is recorded.
    tl.span('coordinator', 'late', 0, 1);
    assert.equal(tl.size, 50);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

void test('remote spans are untrusted input: junk is dropped, count is capped', () => {
  const tl = new TimelineWriter({ path: '/nonexistent/never-written.json', clock: () => 1000 });
  const junk = [
    { name: 'compute', startUs: 10, durUs: 20 },
    { name: '', startUs: 1, durUs: 1 },
    { name: 'x'.repeat(65), startUs: 1, durUs: 1 },
    { name: 'nan', startUs: NaN, durUs: 1 },
    { name: 'neg', startUs: 5, durUs: -1 },
    { name: 'inf', startUs: 5, durUs: Infinity },
    null,
    { name: 42, startUs: 1, durUs: 1 },
  ] as unknown as PhaseSpan[];
  tl.addRemoteSpans('w', junk, { anchorUs: 1000 });
  const x = tl.events().filter((e) => e.ph === 'X');
  assert.equal(x.length, 1);
  assert.equal(x[0]?.ts, 1010);
  const many = Array.from({ length: 1000 }, (_, i) => ({ name: 'compute', startUs: i, durUs: 1 }));
  tl.addRemoteSpans('w2', many, { anchorUs: 0 });
  assert.equal(tl.events().filter((e) => e.ph === 'X').length, 1 + 64);
});
