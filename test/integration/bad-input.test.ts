// Bad gradient parts sent to a RUNNING coordinator over a real nats-server
// (issue 3, 'Bad input'). The test itself is the job's two workers ('ta' and
// 'tb'): it joins twice, computes the real parts of every step with the worker's
// own compute module, and publishes them on grad.<id>. While step 2 is open (tb's
// part held back) it publishes, each twice: a frame whose numel disagrees with
// its payload, a part of the wrong shape, of the wrong step, of the wrong term,
// with a NaN and with an Inf, duplicates of ta's accepted part (a re-encoded copy
// and a byte-for-byte replay), a part from a worker that never joined, one whose
// subject and sender disagree, and a chunk with a flipped byte. Each must be
// rejected and counted by reason on /metrics (lockstep_rejected_messages_total),
// logged once with its sender, and never applied: the step waits for tb's valid
// part, and the run's final weights are bitwise those of the same run without the
// bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createInbox, type NatsConnection } from 'nats';
import { selectBackend } from '../../shared/compute/backend.js';
import { BinaryReceiver, encodeBinaryMessage } from '../../shared/protocol/binary-message.js';
import { CHUNK_HEADER_BYTES, splitFrame } from '../../shared/protocol/chunks.js';
import { encodeFrame } from '../../shared/protocol/frame.js';
import { MSG, createMessage, encodeMessage, parseMessage, type GradMessage, type StepMessage } from '../../shared/protocol/messages.js';
import { subjectsFor } from '../../shared/protocol/subjects.js';
import { parseJobConfig } from '../../shared/train/job-config.js';
import type { TrainResult } from '../../shared/train/result.js';
import { WorkerCompute } from '../../worker/compute.js';
import { Cluster, finalWeights, metricValue, until, type LogLine } from '../helpers/cluster.js';

const JOB = 'lockstep';
const SUBJ = subjectsFor(JOB);
const STEPS = 5;
const BAD_STEP = 2;
const TRAIN = ['--model', 'vae', '--arch', 'mlp', '--hidden-units', '32', '--train-limit', '256', '--batch-size', '32', '--steps', String(STEPS), '--seed', '21'];

/** reason -> [how many we send, the sender the coordinator must name in its one log line] */
const EXPECTED: Record<string, [number, string]> = {
  numel: [2, 'tb'],
  'wrong-shape': [2, 'tb'],
  'stale-step': [2, 'tb'],
  'stale-term': [2, 'tb'],
  'non-finite': [4, 'tb'],
  duplicate: [4, 'ta'],
  'unknown-worker': [2, 'intruder'],
  'sender-mismatch': [2, 'tb'],
  'chunk-crc': [2, 'tb'],
};

interface Joined {
  id: string;
  term: number;
  rank: number;
}

async function join(nc: NatsConnection, id: string): Promise<{ joined: Joined; config: unknown; maxPayload: number }> {
  const req = createMessage(MSG.join, { job: JOB, term: 0, step: 0, sender: id }, { host: 'test', pid: process.pid, backend: 'wasm', backendVersion: 'test', device: 'test' });
  // The coordinator's subscription may reach the server a moment after its log line: retry 'no responders'.
  const raw = await until(() => nc.request(SUBJ.join, encodeMessage(req), { timeout: 5000 }).catch(() => undefined), 30_000, `the join of ${id}`, 100);
  const reply = parseMessage(raw.data);
  assert.equal(reply.type, MSG.joinAck, `join of ${id} accepted`);
  if (reply.type !== MSG.joinAck) throw new Error('unreachable');
  return { joined: { id, term: reply.term, rank: reply.rank }, config: reply.config, maxPayload: reply.maxPayload ?? 1024 * 1024 };
}

/** The current weights by a state request (the reply is chunked like the broadcast). */
async function fetchWeights(nc: NatsConnection, sender: string, term: number, version: number): Promise<Float32Array> {
  const inbox = createInbox();
  const sub = nc.subscribe(inbox);
  const rx = new BinaryReceiver({ accept: [MSG.weights] });
  nc.publish(SUBJ.state, encodeMessage(createMessage(MSG.state, { job: JOB, term, step: version, sender }, { wantVersion: version })), { reply: inbox });
  const timer = setTimeout(() => sub.unsubscribe(), 10_000);
  try {
    for await (const m of sub) {
      const got = rx.push(m.data, 'coord');
      if (got === null) continue;
      assert.equal(got.meta.version, version, 'the state reply carries the weights of the planned version');
      return Float32Array.from(got.payload);
    }
  } finally {
    clearTimeout(timer);
    sub.unsubscribe();
  }
  throw new Error(`no weights of version ${version}`);
}

function gradMeta(p: { sender: string; term: number; step: number; part: number; attempt: number; count: number; numel: number; loss: GradMessage['lossSums'] }): GradMessage {
  return createMessage(MSG.grad, { job: JOB, term: p.term, step: p.step, sender: p.sender }, { part: p.part, attempt: p.attempt, weightsVersion: p.step, count: p.count, numel: p.numel, lossSums: p.loss, computeSeconds: 0 });
}

/**
 * Runs the job with the test as both workers. With `bad`, step BAD_STEP gets the bad
 * input; returns the coordinator's result, log and the /metrics text scraped while
 * the bad step was held open (after every bad message was counted).
 */
async function runJob(bad: boolean): Promise<{ result: TrainResult; weights: Float32Array; lines: LogLine[]; metricsWhileOpen: string | null; appliedBeforeValid: boolean }> {
  const cluster = await Cluster.start({ train: TRAIN, heartbeatTimeout: 30, checkpointEvery: 0, coordinatorFlags: ['--wait-workers', '2', '--straggler-factor', '1000'], name: bad ? 'bad-input' : 'bad-input-clean' });
  const nc = await connect({ servers: cluster.nats.url, name: 'bad-input-test' });
  try {
    const coordinator = cluster.startCoordinator();
    await coordinator.waitFor((l) => l.msg === 'waiting for workers to join', 60_000, 'the coordinator waiting for workers');
    const plans: StepMessage[] = [];
    const stepSub = nc.subscribe(SUBJ.step, {
      callback: (err, msg) => {
        if (err) return;
        const m = parseMessage(msg.data);
        if (m.type === MSG.step) plans.push(m);
      },
    });
    const ta = await join(nc, 'ta');
    const tb = await join(nc, 'tb');
    assert.deepEqual([ta.joined.rank, tb.joined.rank], [0, 1]);
    const compute = WorkerCompute.create(parseJobConfig(ta.config), undefined);
    const term = ta.joined.term;
    const maxPayload = ta.maxPayload;
    const send = (id: string, chunks: Uint8Array[]): void => {
      for (const c of chunks) nc.publish(SUBJ.grad(id), c);
    };
    let metricsWhileOpen: string | null = null;
    let appliedBeforeValid = false;
    try {
      for (let step = 0; step < STEPS; step++) {
        const plan = await until(() => plans.find((p) => p.step === step), 30_000, `the plan of step ${step}`);
        const weights = await fetchWeights(nc, 'ta', term, plan.weightsVersion);
        const parts = new Map<string, { chunks: Uint8Array[]; meta: GradMessage; grad: Float32Array }>();
        for (const p of plan.parts) {
          const out = compute.computePart(weights, p.indices, step);
          const meta = gradMeta({ sender: p.worker, term, step, part: p.part, attempt: p.attempt, count: out.count, numel: out.grad.length, loss: out.loss });
          parts.set(p.worker, { meta, grad: out.grad, chunks: encodeBinaryMessage(meta, out.grad, { maxPayload }) });
        }
        const a = parts.get('ta');
        const b = parts.get('tb');
        assert.ok(a !== undefined && b !== undefined, `step ${step} plans a part for each member`);
        send('ta', a.chunks);
        if (bad && step === BAD_STEP) {
          const twice = (f: () => void): void => {
            f();
            f();
          };
          const m = b.meta;
          const n = b.grad.length;
          // Duplicates of ta's accepted part: a fresh transfer of the same part, and the same bytes again.
          twice(() => send('ta', encodeBinaryMessage(a.meta, a.grad, { maxPayload })));
          twice(() => send('ta', a.chunks));
          // numel: the meta claims one element more than the payload carries (built below the encoder, which refuses it).
          twice(() => send('tb', splitFrame(encodeFrame({ ...m, numel: n + 1 }, b.grad), maxPayload)));
          // wrong shape: consistent frame, but not the model's size.
          twice(() => send('tb', encodeBinaryMessage({ ...m, numel: n + 3 }, Float32Array.from([...b.grad, 0, 0, 0]), { maxPayload })));
          twice(() => send('tb', encodeBinaryMessage({ ...m, step: step + 1, weightsVersion: step + 1 }, b.grad, { maxPayload })));
          twice(() => send('tb', encodeBinaryMessage({ ...m, term: term + 1 }, b.grad, { maxPayload })));
          for (const v of [Number.NaN, Number.POSITIVE_INFINITY]) {
            const g = Float32Array.from(b.grad);
            g[Math.floor(n / 2)] = v;
            twice(() => send('tb', encodeBinaryMessage(m, g, { maxPayload })));
          }
          twice(() => send('intruder', encodeBinaryMessage({ ...m, sender: 'intruder' }, b.grad, { maxPayload })));
          // tb's subject, ta's name in the payload: the subject is what permissions bind, so this is refused.
          twice(() => send('tb', encodeBinaryMessage({ ...m, sender: 'ta' }, b.grad, { maxPayload })));
          twice(() => {
            const chunks = encodeBinaryMessage(m, b.grad, { maxPayload }).map((c) => Uint8Array.from(c));
            const c0 = chunks[0] as Uint8Array;
            c0[CHUNK_HEADER_BYTES + 100] = (c0[CHUNK_HEADER_BYTES + 100] as number) ^ 0x40;
            send('tb', chunks);
          });
          await nc.flush();
          // Every bad message counted, by reason, before the valid part goes out.
          metricsWhileOpen = await until(
            async () => {
              const text = await cluster.metrics();
              return Object.entries(EXPECTED).every(([reason, [count]]) => metricValue(text, 'lockstep_rejected_messages_total', { reason }) >= count) ? text : undefined;
            },
            15_000,
            'every bad message counted',
            100,
          );
          appliedBeforeValid = coordinator.lines.some((l) => l.msg === 'step applied' && l.step === step);
        }
        send('tb', b.chunks);
        await coordinator.waitFor((l) => l.msg === 'step applied' && l.step === step, 30_000, `step ${step} applied`);
      }
      const result = await cluster.result(60_000);
      return { result, weights: finalWeights(result), lines: coordinator.lines, metricsWhileOpen, appliedBeforeValid };
    } finally {
      stepSub.unsubscribe();
      compute.dispose();
    }
  } finally {
    await nc.close();
    await cluster.stop();
  }
}

void test('bad gradient parts are rejected, counted by reason, logged once with the sender, never applied', { timeout: 180_000 }, async () => {
  await selectBackend({ backend: 'wasm' });
  const clean = await runJob(false);
  const dirty = await runJob(true);

  assert.equal(dirty.result.steps, STEPS, 'the run finished');
  assert.equal(dirty.appliedBeforeValid, false, 'the bad step waited for the valid part: nothing bad completed it');
  const text = dirty.metricsWhileOpen;
  assert.ok(text !== null);
  for (const [reason, [count, sender]] of Object.entries(EXPECTED)) {
    assert.equal(metricValue(text, 'lockstep_rejected_messages_total', { reason }), count, `lockstep_rejected_messages_total{reason="${reason}"}`);
    const logged = dirty.lines.filter((l) => l.msg === 'rejected a message' && l.reason === reason);
    assert.equal(logged.length, 1, `'${reason}' logged once (${logged.length} lines)`);
    assert.equal(logged[0]?.sender, sender, `'${reason}' logged with its sender`);
  }
  const unexpected = dirty.lines.filter((l) => l.msg === 'rejected a message' && !(String(l.reason) in EXPECTED));
  assert.deepEqual(unexpected.map((l) => l.reason), [], 'no other rejections');
  assert.equal(clean.lines.filter((l) => l.msg === 'rejected a message').length, 0, 'the clean run rejected nothing');

  // Never applied: the final weights are bitwise the clean run's.
  assert.equal(dirty.result.weightsSha256, clean.result.weightsSha256);
  assert.equal(dirty.weights.length, clean.weights.length);
  assert.ok(dirty.weights.every((v, i) => v === clean.weights[i]), 'final weights bitwise equal to the clean run');
  assert.deepEqual(dirty.result.losses, clean.result.losses, 'per-step losses equal');
  assert.equal(dirty.result.samples, STEPS * 32, 'no sample counted twice');
});
