// `--timeline FILE` on a real run (`lockstep train --workers 2`: embedded nats-server,
// coordinator and two worker processes): the file is a Chrome trace (chrome://tracing,
// Perfetto) with every step's phases on the coordinator and on each worker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TINY_MODEL, spawnLockstep, tempDir } from './observability-harness.js';

interface TraceEvent {
  name: string;
  cat: string;
  ph: string;
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

const STEPS = 8;

void test('a real run writes a Chrome-trace timeline of every step phase, per actor', { timeout: 90_000 }, async (t) => {
  const dir = tempDir('timeline');
  const file = path.join(dir, 'trace', 'timeline.json');
  try {
    const run = spawnLockstep('train', ['train', '--workers', '2', ...TINY_MODEL, '--steps', String(STEPS), '--checkpoint-every', '4', '--checkpoint-dir', path.join(dir, 'checkpoints'), '--metrics-port', '0', '--dashboard-port', '0', '--timeline', file, '--log-level', 'warn', '--json']);
    const exit = await run.exited;
    assert.equal(exit.code, 0, run.stderr().slice(-3000));
    const result = JSON.parse(run.stdout().trim()) as { steps: number };
    assert.equal(result.steps, STEPS);

    const trace = JSON.parse(fs.readFileSync(file, 'utf8')) as { traceEvents: TraceEvent[]; displayTimeUnit: string; otherData: Record<string, unknown> };
    assert.ok(Array.isArray(trace.traceEvents));
    assert.equal(trace.displayTimeUnit, 'ms');
    assert.equal(trace.otherData.droppedEvents, 0);
    assert.equal(trace.otherData.model, 'vae');
    for (const e of trace.traceEvents) {
      assert.equal(typeof e.name, 'string');
      assert.ok(['X', 'M', 'i'].includes(e.ph), `phase type ${e.ph}`);
      assert.ok(Number.isInteger(e.ts) && e.ts >= 0, `ts ${e.ts}`);
      assert.equal(e.pid, 1);
      assert.ok(Number.isInteger(e.tid));
      if (e.ph === 'X') assert.ok(Number.isInteger(e.dur) && (e.dur as number) >= 0, `dur of ${e.name}`);
    }

    // One trace process, one named thread per actor.
    const meta = trace.traceEvents.filter((e) => e.ph === 'M');
    assert.deepEqual(meta.filter((e) => e.name === 'process_name').map((e) => e.args?.name), ['lockstep lockstep']);
    const threads = new Map(meta.filter((e) => e.name === 'thread_name').map((e) => [String(e.args?.name), e.tid]));
    assert.deepEqual([...threads.keys()].sort(), ['coordinator', 'w0', 'w1']);
    assert.equal(new Set(threads.values()).size, 3, 'distinct thread ids');

    const spans = trace.traceEvents.filter((e) => e.ph === 'X');
    for (const s of spans) assert.ok([...threads.values()].includes(s.tid), `span ${s.name} on an unnamed thread ${s.tid}`);
    const of = (actor: string, name: string): TraceEvent[] => spans.filter((s) => s.tid === threads.get(actor) && s.name === name);

    // The coordinator: wait, aggregate, optimizer, broadcast for every step, in that order.
    const phases = ['wait', 'aggregate', 'optimizer', 'broadcast'];
    for (const name of phases) assert.deepEqual(of('coordinator', name).map((s) => s.args?.step), Array.from({ length: STEPS }, (_, i) => i), `coordinator ${name} spans`);
    assert.ok(of('coordinator', 'checkpoint').length >= 2, 'checkpoint spans (every 4 steps and at the end)');
    let lastEnd = 0;
    for (let step = 0; step < STEPS; step++) {
      const [w, a, o, b] = phases.map((p) => of('coordinator', p).find((s) => s.args?.step === step) as TraceEvent);
      assert.ok(w && a && o && b);
      // Laid end to end within the step, and steps one after the other (1 ms slack for rounding).
      assert.ok(w.ts + (w.dur as number) <= a.ts + 1 && a.ts <= o.ts && o.ts <= b.ts, `step ${step} phases out of order`);
      assert.ok(w.ts >= lastEnd - 1000, `step ${step} starts ${lastEnd - w.ts} us before the previous one ended`);
      lastEnd = b.ts + (b.dur as number);
    }

    // Each worker: wait, compute, encode, publish for the parts it computed.
    let parts = 0;
    for (const actor of ['w0', 'w1']) {
      const compute = of(actor, 'compute');
      assert.ok(compute.length >= 1, `${actor} computed parts`);
      parts += compute.length;
      for (const name of ['wait', 'encode', 'publish']) assert.equal(of(actor, name).length, compute.length, `${actor}: one ${name} per compute`);
      for (const c of compute) {
        const step = c.args?.step as number;
        assert.equal(typeof c.args?.part, 'number');
        assert.ok((c.args?.images as number) > 0);
        const enc = of(actor, 'encode').find((s) => s.args?.step === step && s.args?.part === c.args?.part) as TraceEvent;
        assert.ok(c.ts + (c.dur as number) <= enc.ts + 1, `${actor} step ${step}: encode after compute`);
        // Inside its step on the coordinator's clock.
        const w = of('coordinator', 'wait').find((s) => s.args?.step === step) as TraceEvent;
        const b = of('coordinator', 'broadcast').find((s) => s.args?.step === step) as TraceEvent;
        assert.ok(c.ts >= w.ts - 1000 && c.ts + (c.dur as number) <= b.ts + (b.dur as number) + 1000, `${actor} step ${step}: compute outside its step`);
      }
    }
    assert.ok(parts >= STEPS * 2, `${parts} parts for ${STEPS} steps of 2 workers`);
    t.diagnostic(`${trace.traceEvents.length} events, ${spans.length} spans`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
