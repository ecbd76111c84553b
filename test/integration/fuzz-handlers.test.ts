// Seeded fuzz of a RUNNING coordinator's NATS handlers: a real nats-server, a real
// `lockstep coordinator` process (tiny model) waiting for two workers, so its join,
// state, hb.<id> and grad.<id> handlers are live. Each subject gets thousands of cases:
// random bytes, truncations, bit flips, oversized buffers and valid-looking messages
// with wrong fields, plus some valid messages (which must NOT be counted).
//
// The expected outcome of every case is computed here, before sending, from the
// protocol contract: the shared codec (parseMessage / BinaryReceiver, the same code
// that defines what is well formed on the wire) plus the rules of each subject (join
// must be a join of this job; state a state request of this job with a reply subject;
// hb.<id> a heartbeat or leave of this job whose sender is <id>; grad.<id> is never
// acceptable while no step is running). Then, per subject kind, the increase of
// lockstep_rejected_messages_total{reason} on the coordinator's /metrics must equal the
// expected count for every reason. Afterwards two real workers join the same
// coordinator and the run must finish with the losses of the in-process reference.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect, createInbox, type NatsConnection } from 'nats';
import { CodecError, ProtocolError } from '../../shared/errors.js';
import { BinaryReceiver } from '../../shared/protocol/binary-message.js';
import { CHUNK_HEADER_BYTES, splitFrame } from '../../shared/protocol/chunks.js';
import { crc32 } from '../../shared/protocol/crc32.js';
import { encodeFrame } from '../../shared/protocol/frame.js';
import { DEFAULT_MAX_MESSAGE_BYTES, MSG, createMessage, encodeMessage, parseMessage } from '../../shared/protocol/messages.js';
import { subjectsFor } from '../../shared/protocol/subjects.js';
import { freePort, startNatsServer, type NatsServerHandle } from '../helpers/nats-server.js';

const ROOT = resolve(__dirname, '..', '..', '..');
const CLI = join(ROOT, 'dist', 'bin', 'lockstep.js');
const SEED = 0x1f0c_2026;
const JOB = 'fuzz';
const SUBJ = subjectsFor(JOB);
const TRAIN = ['--filters', '4', '--train-limit', '256', '--steps', '5'];
const CASES = { join: 2500, state: 2500, hb: 2500, grad: 2600 } as const;
/** Subject tokens the heartbeats and gradients arrive on (the real workers later use worker-0/1). */
const IDS = ['worker-0', 'worker-1', 'worker-7', 'w_x', 'fuzz-a', 'B9'] as const;
/** The coordinator's grad receiver keeps incomplete transfers this long: far beyond this test. */
const GRAD_TTL_MS = 120_000;
const utf8 = new TextEncoder();

class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
  /** Mostly small, sometimes up to 64 KiB. */
  size(): number {
    const r = this.next();
    return r < 0.4 ? this.int(64) : r < 0.9 ? this.int(4096) : this.int(65536);
  }
}

// ---------------------------------------------------------------------------------------
// What the coordinator must do with each message (null = accept, else the reason counted)

function reasonOf(err: unknown): string {
  if (err instanceof CodecError || err instanceof ProtocolError) return err.reason;
  throw err;
}

type Parsed = { ok: true; m: ReturnType<typeof parseMessage> } | { ok: false; reason: string };
function parse(bytes: Uint8Array): Parsed {
  try {
    return { ok: true, m: parseMessage(bytes) };
  } catch (err) {
    return { ok: false, reason: reasonOf(err) };
  }
}

function expectJoin(bytes: Uint8Array): string | null {
  const p = parse(bytes);
  if (!p.ok) return p.reason;
  if (p.m.type !== MSG.join) return 'unexpected-type';
  if (p.m.job !== JOB) return 'wrong-job';
  return null;
}

function expectState(bytes: Uint8Array, hasReply: boolean): string | null {
  const p = parse(bytes);
  if (!p.ok) return p.reason;
  if (p.m.type !== MSG.state) return 'unexpected-type';
  if (p.m.job !== JOB) return 'wrong-job';
  if (!hasReply) return 'schema';
  return null;
}

function expectHb(id: string, bytes: Uint8Array): string | null {
  const p = parse(bytes);
  if (!p.ok) return p.reason;
  if (p.m.sender !== id) return 'sender-mismatch';
  if (p.m.job !== JOB) return 'wrong-job';
  if (p.m.type === MSG.leave) return null;
  if (p.m.type !== MSG.hb) return 'unexpected-type';
  return null; // any term: a worker of another term is told to rejoin by our heartbeat, not rejected
}

/** Mirrors the coordinator's grad receiver (same class, same options, same order of chunks). */
class GradOracle {
  private readonly rx = new BinaryReceiver({ accept: [MSG.grad], ttlMs: GRAD_TTL_MS });
  /** One chunk on grad.<id>: the reason it is counted under, or null when it is held (incomplete transfer). */
  push(id: string, chunk: Uint8Array): string | null {
    let got;
    try {
      got = this.rx.push(chunk, SUBJ.grad(id));
    } catch (err) {
      return reasonOf(err);
    }
    if (got === null) return null;
    // No worker has joined and no step runs: nothing on grad.* can be accepted.
    return got.meta.sender !== id ? 'sender-mismatch' : 'unknown-worker';
  }
}

// ---------------------------------------------------------------------------------------
// Cases

interface Send {
  subject: string;
  data: Uint8Array;
  reply?: string;
  /** What the coordinator must count for this message (null: nothing). */
  expect: string | null;
}

interface Case {
  kind: string;
  sends: Send[];
}

function flipBits(rng: Rng, bytes: Uint8Array, max = 8): Uint8Array {
  const out = Uint8Array.from(bytes);
  if (out.length === 0) return out;
  const n = 1 + rng.int(max);
  for (let i = 0; i < n; i++) {
    const at = rng.int(out.length);
    out[at] = (out[at] as number) ^ (1 << rng.int(8));
  }
  return out;
}

function jsonish(rng: Rng): Uint8Array {
  const tokens = ['{', '}', '[', ']', '"', ':', ',', 'true', 'false', 'null', '0', '-1', '1e999', '"type"', '"lockstep.v1.join"', '"job"', `"${JOB}"`, ' ', '\\u0000', '"a"'];
  let s = '';
  const n = rng.int(40);
  for (let i = 0; i < n; i++) s += rng.pick(tokens);
  return utf8.encode(s);
}

/** Hand-made trouble that is not a mutation of a message. */
function oddJson(rng: Rng): Uint8Array {
  const depth = 1000 + rng.int(100_000);
  return rng.pick([
    () => utf8.encode('null'),
    () => utf8.encode('[]'),
    () => utf8.encode('"lockstep.v1.join"'),
    () => utf8.encode('12'),
    () => utf8.encode('{}'),
    () => utf8.encode('['.repeat(depth)),
    () => utf8.encode(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`),
    () => new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), // {"a":"<invalid UTF-8>"}
    () => utf8.encode('{"__proto__":{"type":"lockstep.v1.join"}}'),
    () => utf8.encode('\ufeff{}'),
  ])();
}

/** An object mutated in one field (or a few), re-serialised. */
type Mutation = (o: Record<string, unknown>, rng: Rng) => void;
const ENVELOPE_MUTATIONS: Mutation[] = [
  (o) => (o.type = 'lockstep.v2.join'),
  (o) => (o.type = 'lockstep.v1.nope'),
  (o) => (o.type = 'not a type'),
  (o) => (o.type = 7),
  (o) => delete o.type,
  (o) => (o.protocol = 2),
  (o) => (o.protocol = '1'),
  (o) => (o.job = 'other-job'),
  (o) => (o.job = 'a.b'),
  (o) => (o.job = ''),
  (o) => delete o.job,
  (o) => (o.term = -1),
  (o) => (o.term = 1.5),
  (o) => (o.term = '1'),
  (o) => (o.term = 2 ** 60),
  (o) => (o.step = null),
  (o) => (o.sender = ''),
  (o) => (o.sender = 'has space'),
  (o) => (o.sender = 'x'.repeat(65)),
  (o) => (o.sender = 'coord.worker-0'),
  (o) => delete o.sender,
  (o, r) => (o.type = r.pick(Object.values(MSG))),
];
const BODY_MUTATIONS: Record<string, Mutation[]> = {
  join: [
    (o) => (o.pid = -1),
    (o) => (o.pid = 'x'),
    (o) => (o.host = 'h'.repeat(5000)),
    (o) => delete o.backend,
    (o) => (o.device = { gpu: true }),
    (o) => (o.metricsPort = 70000),
    (o) => (o.backendVersion = null),
  ],
  state: [(o) => (o.wantVersion = -1), (o) => (o.wantVersion = 'latest'), (o) => (o.wantVersion = 0.5)],
  hb: [
    (o) => (o.status = 'dead'),
    (o) => (o.status = 'lost'),
    (o) => (o.partsDone = -3),
    (o) => (o.lastPartSeconds = -1),
    (o) => (o.lastPartSeconds = 'NaN'),
    (o) => (o.members = ['ok', 'not ok']),
    (o) => delete o.status,
  ],
};

function mutate(rng: Rng, base: object, kind: string): Uint8Array {
  const o = structuredClone(base) as Record<string, unknown>;
  const pool = [...ENVELOPE_MUTATIONS, ...(BODY_MUTATIONS[kind] ?? [])];
  const n = rng.chance(0.8) ? 1 : 2 + rng.int(2);
  for (let i = 0; i < n; i++) rng.pick(pool)(o, rng);
  return utf8.encode(JSON.stringify(o));
}

/** Over the JSON limit (8 MiB): a well-formed start with a giant string. */
function oversizeJson(rng: Rng, base: object): Uint8Array {
  const head = JSON.stringify(base).slice(0, -1);
  const target = DEFAULT_MAX_MESSAGE_BYTES + 1 + rng.int(1000);
  const pad = target - head.length - ',"pad":""}'.length;
  return utf8.encode(`${head},"pad":"${'p'.repeat(pad)}"}`);
}

/** Large but under the limit: valid JSON whose text field is far over its 4096 limit. */
function bigJson(rng: Rng, base: object, field: string): Uint8Array {
  return utf8.encode(JSON.stringify({ ...base, [field]: 'x'.repeat(100_000 + rng.int(900_000)) }));
}

/** A well-formed message of another type, same envelope (a step plan on join, a ctl on hb...). */
function otherType(rng: Rng, base: { job: string; term: number; step: number; sender: string; type: string }): Uint8Array {
  const env = { job: base.job, term: base.term, step: base.step, sender: base.sender };
  const all = [
    () => createMessage(MSG.state, env, {}),
    () => createMessage(MSG.hb, env, { status: 'idle' }),
    () => createMessage(MSG.ctl, env, { action: 'stop' }),
    () => createMessage(MSG.join, env, { host: 'h', pid: 1, backend: 'wasm', backendVersion: '1', device: 'cpu' }),
    () => createMessage(MSG.step, env, { epoch: 0, weightsVersion: 0, globalCount: 1, parts: [{ part: 0, worker: base.sender, attempt: 0, indices: [0] }] }),
    () => createMessage(MSG.joinAck, env, { rank: 0, workerId: base.sender, accepted: true, config: {}, weightsVersion: 0 }),
  ];
  let m = rng.pick(all)();
  while (m.type === base.type) m = rng.pick(all)();
  return encodeMessage(m);
}

/** Common generator for the three JSON subjects: `valid` draws a message the coordinator must accept (or null when the kind has none). */
function jsonBytes(rng: Rng, kind: string, base: object, validVariant: (() => Uint8Array) | null, bigField: string, allowHuge: { left: number }): { bytes: Uint8Array; intent: 'valid' | 'invalid' | 'either' } {
  const r = rng.next();
  const baseBytes = utf8.encode(JSON.stringify(base));
  if (r < 0.15) return { bytes: rng.bytes(rng.size()), intent: 'either' };
  if (r < 0.22) return { bytes: jsonish(rng), intent: 'either' };
  if (r < 0.37) return { bytes: baseBytes.subarray(0, rng.int(baseBytes.length)), intent: 'invalid' };
  if (r < 0.55) return { bytes: flipBits(rng, baseBytes), intent: 'either' };
  if (r < 0.85) return { bytes: mutate(rng, base, kind), intent: 'either' };
  if (r < 0.88) return { bytes: oddJson(rng), intent: 'invalid' };
  if (r < 0.885 && allowHuge.left > 0) {
    allowHuge.left -= 1;
    return { bytes: oversizeJson(rng, base), intent: 'invalid' };
  }
  if (r < 0.89) return { bytes: bigJson(rng, base, bigField), intent: 'invalid' };
  if (r < 0.92) return { bytes: otherType(rng, base as { job: string; term: number; step: number; sender: string; type: string }), intent: 'invalid' };
  if (validVariant !== null) return { bytes: validVariant(), intent: 'valid' };
  return { bytes: mutate(rng, base, kind), intent: 'either' };
}

function joinCases(rng: Rng, inbox: string): Case[] {
  const out: Case[] = [];
  const huge = { left: 3 };
  while (out.length < CASES.join) {
    const base = createMessage(MSG.join, { job: JOB, term: 0, step: 0, sender: `fuzz-${rng.int(1000)}` }, { host: 'fuzzhost', pid: 4242, backend: 'wasm', backendVersion: '4.22.0', device: 'cpu' });
    const { bytes, intent } = jsonBytes(rng, 'join', base, null, 'host', huge);
    const expect = expectJoin(bytes);
    // A valid join would make the fuzzer a member (and start the run): every join case must be refused.
    if (expect === null) {
      assert.notEqual(intent, 'invalid', 'a case built to be invalid parses as a valid join');
      continue;
    }
    out.push({ kind: 'join', sends: [{ subject: SUBJ.join, data: bytes, reply: inbox, expect }] });
  }
  return out;
}

function stateCases(rng: Rng, inbox: string): Case[] {
  const out: Case[] = [];
  const huge = { left: 3 };
  for (let i = 0; i < CASES.state; i++) {
    const env = { job: JOB, term: rng.int(3), step: rng.int(10), sender: rng.pick(IDS) };
    const base = createMessage(MSG.state, env, { wantVersion: rng.int(5) });
    const valid = (): Uint8Array => encodeMessage(createMessage(MSG.state, env, rng.chance(0.5) ? {} : { wantVersion: rng.int(100) }));
    // Valid variants: also with fields this version does not know (they are dropped, not refused).
    const validVariant = (): Uint8Array => (rng.chance(0.5) ? valid() : utf8.encode(JSON.stringify({ ...base, futureField: { a: [1, 2] } })));
    const { bytes, intent } = jsonBytes(rng, 'state', base, validVariant, 'sender', huge);
    const hasReply = rng.chance(0.9);
    const expect = expectState(bytes, hasReply);
    if (intent === 'valid' && hasReply) assert.equal(expect, null, 'a valid state request');
    if (intent === 'invalid') assert.notEqual(expect, null, 'a case built to be invalid');
    out.push({ kind: 'state', sends: [{ subject: SUBJ.state, data: bytes, ...(hasReply ? { reply: inbox } : {}), expect }] });
  }
  return out;
}

function hbCases(rng: Rng, term: number): Case[] {
  const out: Case[] = [];
  const huge = { left: 3 };
  for (let i = 0; i < CASES.hb; i++) {
    const id = rng.pick(IDS);
    const sender = rng.chance(0.9) ? id : rng.pick(IDS);
    const env = { job: JOB, term, step: rng.int(10), sender };
    const base = createMessage(MSG.hb, env, { status: 'idle', partsDone: rng.int(10), lastPartSeconds: 0.25 });
    const validVariant = (): Uint8Array => {
      const own = { ...env, sender: id };
      return rng.pick([
        () => encodeMessage(createMessage(MSG.hb, own, { status: rng.pick(['idle', 'busy', 'joining', 'paused', 'stopping'] as const) })),
        () => encodeMessage(createMessage(MSG.hb, { ...own, term: term + 1 + rng.int(5) }, { status: 'idle' })),
        () => encodeMessage(createMessage(MSG.leave, own, { reason: 'stopping' })),
        () => utf8.encode(JSON.stringify({ ...createMessage(MSG.hb, own, { status: 'busy' }), unknownField: 1 })),
      ])();
    };
    const { bytes, intent } = jsonBytes(rng, 'hb', base, validVariant, 'sender', huge);
    const expect = expectHb(id, bytes);
    if (intent === 'valid') assert.equal(expect, null, 'a valid heartbeat');
    if (intent === 'invalid') assert.notEqual(expect, null, 'a case built to be invalid');
    out.push({ kind: 'hb', sends: [{ subject: SUBJ.hb(id), data: bytes, expect }] });
  }
  return out;
}

// ---- gradients (binary: chunk -> frame -> meta) ----

function gradMeta(id: string, numel: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...createMessage(MSG.grad, { job: JOB, term: 1, step: 0, sender: id }, { part: 0, attempt: 0, weightsVersion: 0, count: 32, numel, lossSums: { total: 1, reconstruction: 1, kl: 0 }, computeSeconds: 0.1 }),
    ...over,
  };
}

function floats(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.next() * 2 - 1;
  return out;
}

/** A whole frame around a (possibly invalid) meta, split into chunks. */
function chunksOf(rng: Rng, meta: object, payload: Float32Array, maxPayload = 16 * 1024 * 1024, dtype: 'float32' | 'float16' = 'float32'): Uint8Array[] {
  return splitFrame(encodeFrame(meta, payload, { dtype }), maxPayload, rng.bytes(16));
}

/** Rewrites the chunk CRC after a change, so that the checks behind it are reached. */
function fixChunkCrc(chunk: Uint8Array): Uint8Array {
  new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength).setUint32(32, crc32(chunk, crc32(chunk, 0, 0, 32), CHUNK_HEADER_BYTES), true);
  return chunk;
}

/** Rewrites a frame's trailing CRC after an edit. */
function fixFrameCrc(frame: Uint8Array): Uint8Array {
  new DataView(frame.buffer, frame.byteOffset, frame.byteLength).setUint32(frame.length - 4, crc32(frame, 0, 0, frame.length - 4), true);
  return frame;
}

/** A single chunk whose frame is edited (header byte, trailing bytes...) with both CRCs or only the chunk CRC fixed. */
function editedFrameChunk(rng: Rng, id: string, edit: (frame: Uint8Array) => Uint8Array): Uint8Array {
  const frame = edit(encodeFrame(gradMeta(id, 8), floats(rng, 8)));
  return splitFrame(frame, 16 * 1024 * 1024, rng.bytes(16))[0] as Uint8Array;
}

function gradCases(rng: Rng, oracle: GradOracle): Case[] {
  const out: Case[] = [];
  let bigLeft = 3;
  const add = (kind: string, id: string, chunks: Uint8Array[], designed?: number): void => {
    const sends = chunks.map((c) => ({ subject: SUBJ.grad(id), data: c, expect: oracle.push(id, c) }));
    const counted = sends.filter((s) => s.expect !== null).length;
    if (designed !== undefined) assert.equal(counted, designed, `grad case '${kind}' counts ${counted}, designed for ${designed}: ${JSON.stringify(sends.map((s) => s.expect))}`);
    out.push({ kind, sends });
  };
  while (out.length < CASES.grad) {
    const id = rng.pick(IDS);
    const numel = 1 + rng.int(64);
    const good = (): Uint8Array[] => chunksOf(rng, gradMeta(id, numel), floats(rng, numel));
    const r = rng.next();
    if (r < 0.12) add('random', id, [rng.bytes(rng.size())], 1);
    else if (r < 0.2) add('random-with-magic', id, [Uint8Array.from([0x4c, 0x53, 0x43, 0x31, ...rng.bytes(rng.size())])], 1);
    else if (r < 0.32) {
      const c = good()[0] as Uint8Array;
      add('truncated', id, [c.subarray(0, rng.int(c.length))], 1);
    } else if (r < 0.47) add('bit-flipped', id, [flipBits(rng, good()[0] as Uint8Array)], 1);
    else if (r < 0.67) {
      // Valid chunk and frame, wrong meta fields.
      const wrong = rng.pick<() => [object, Float32Array]>([
        () => [gradMeta(id, numel), floats(rng, numel)], // well formed, but nobody joined
        () => [gradMeta(rng.pick(IDS.filter((x) => x !== id)), numel), floats(rng, numel)], // sender is not the subject
        () => [gradMeta(id, numel + 1), floats(rng, numel)], // numel
        () => [gradMeta(id, numel), Float32Array.from(floats(rng, numel), (x, i) => (i === numel - 1 ? rng.pick([NaN, Infinity, -Infinity]) : x))],
        () => [{ ...gradMeta(id, numel), type: MSG.weights, version: 0, epoch: 0 }, floats(rng, numel)], // a weights frame on grad
        () => [{ ...gradMeta(id, numel), type: 'lockstep.v2.grad' }, floats(rng, numel)],
        () => [{ ...gradMeta(id, numel), lossSums: { total: 1 } }, floats(rng, numel)],
        () => [{ ...gradMeta(id, numel), count: -1 }, floats(rng, numel)],
        () => [{ ...gradMeta(id, numel), term: 'one' }, floats(rng, numel)],
        () => [{ ...gradMeta(id, numel), job: 'other-job' }, floats(rng, numel)],
        () => [{ note: 'not a message' }, floats(rng, numel)],
      ])();
      add('wrong-fields', id, chunksOf(rng, wrong[0], wrong[1], 16 * 1024 * 1024, rng.chance(0.2) ? 'float16' : 'float32'), 1);
    } else if (r < 0.75) {
      // Frame-level damage behind a valid chunk CRC.
      const edit = rng.pick<(f: Uint8Array) => Uint8Array>([
        (f) => ((f[0] = 0x58), f), // frame magic
        (f) => ((f[4] = 9), f), // frame version
        (f) => ((f[6] = 1), f), // reserved
        (f) => ((f[5] = 7), f), // dtype
        (f) => ((f[f.length - 1] = (f[f.length - 1] as number) ^ 0xff), f), // frame CRC
        (f) => Uint8Array.from([...f, 0, 0, 0, 0]), // trailing bytes
        (f) => f.subarray(0, f.length - 4), // truncated frame (consistent chunk)
        (f) => (new DataView(f.buffer).setUint32(8, 0xfffffff0, true), f), // meta length
        (f) => (new DataView(f.buffer).setUint32(12, 3, true), f), // payload not whole floats
        (f) => fixFrameCrc(((f[16] = 0xff), f)), // meta is not UTF-8 JSON, frame CRC intact
        (f) => fixFrameCrc(f.fill(0x5b, 16, 16 + new DataView(f.buffer).getUint32(8, true))), // meta is JSON, not an object
      ]);
      add('frame-damage', id, [editedFrameChunk(rng, id, edit)], 1);
    } else if (r < 0.83) {
      // Chunked below a small max_payload: complete transfers count once, on the last chunk.
      const chunks = chunksOf(rng, gradMeta(rng.chance(0.8) ? id : 'someone-else', 100 + rng.int(200)), floats(rng, 300), 1060 + 256 + rng.int(256));
      if (chunks.length > 1) {
        for (let i = chunks.length - 1; i > 0; i--) {
          const j = rng.int(i + 1); // any arrival order
          [chunks[i], chunks[j]] = [chunks[j] as Uint8Array, chunks[i] as Uint8Array];
        }
      }
      add('multi-chunk', id, chunks, 1);
    } else if (r < 0.88) {
      // A multi-chunk transfer with one damaged chunk: that chunk is counted, the rest waits (and is later evicted).
      const chunks = chunksOf(rng, gradMeta(id, 200), floats(rng, 200), 1060 + 256);
      const bad = rng.int(chunks.length);
      chunks[bad] = flipBits(rng, chunks[bad] as Uint8Array, 3);
      add('multi-chunk-damaged', id, chunks, 1);
    } else if (r < 0.92) {
      // Two chunks claiming the same transfer with different geometry.
      const tid = rng.bytes(16);
      const a = splitFrame(encodeFrame(gradMeta(id, 200), floats(rng, 200)), 1060 + 256, tid);
      const b = splitFrame(encodeFrame(gradMeta(id, 150), floats(rng, 150)), 1060 + 300, tid);
      add('chunk-mismatch', id, [a[0] as Uint8Array, b[1] as Uint8Array], 1);
    } else if (r < 0.96) {
      // A replayed message: counted again, as a duplicate.
      const c = good()[0] as Uint8Array;
      add('replay', id, [c, c], 2);
    } else if (r < 0.99) {
      // A chunk declaring a transfer over the receiver's limit (256 MiB), CRC intact.
      const c = new Uint8Array(CHUNK_HEADER_BYTES + 64);
      c.set([0x4c, 0x53, 0x43, 0x31], 0);
      c.set(rng.bytes(16), 4);
      const v = new DataView(c.buffer);
      v.setUint32(20, 0, true);
      v.setUint32(24, 2 + rng.int(1000), true);
      v.setUint32(28, 0x10000001 + rng.int(0x0fffffff), true);
      add('oversize-declared', id, [fixChunkCrc(c)], 1);
    } else if (bigLeft > 0) {
      bigLeft -= 1;
      // Really big: a 4 MiB well-formed gradient frame, and 2-8 MiB of noise.
      add('big-frame', id, chunksOf(rng, gradMeta(id, 1 << 20), floats(rng, 1 << 20)), 1);
      add('big-noise', id, [rng.bytes(2 * 1024 * 1024 + rng.int(6 * 1024 * 1024))], 1);
    } else add('random', id, [rng.bytes(rng.size())], 1);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Processes and scraping

const children = new Set<ChildProcess>();
interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function lockstep(args: string[]): Proc {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LOCKSTEP_')) env[k] = v;
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('close', (code, signal) => {
      children.delete(child);
      r({ code, signal });
    }),
  );
  return { child, stdout: () => out, stderr: () => err, exit };
}

function get(url: string): Promise<string> {
  return new Promise((resolveGet, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolveGet(body) : reject(new Error(`GET ${url}: ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

async function rejectedCounts(metricsUrl: string): Promise<Map<string, number>> {
  const text = await get(metricsUrl);
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^lockstep_rejected_messages_total\{reason="([^"]*)"\} (\S+)$/gm)) out.set(m[1] as string, Number(m[2]));
  return out;
}

function delta(after: Map<string, number>, before: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

function tally(cases: Case[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of cases) for (const s of c.sends) if (s.expect !== null) out[s.expect] = (out[s.expect] ?? 0) + 1;
  return out;
}

const sorted = (r: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(r).sort(([a], [b]) => a.localeCompare(b)));

async function until(cond: () => boolean, what: string, ms: number, proc?: Proc): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}${proc === undefined ? '' : `\ncoordinator stderr:\n${proc.stderr().slice(-3000)}`}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---------------------------------------------------------------------------------------

let server: NatsServerHandle;
let ckpt: string;

void before(async () => {
  assert.ok(existsSync(CLI), `${CLI} missing: build with npx tsc -p tsconfig.json && node scripts/copy-assets.mjs`);
  // 9 MiB payloads so that JSON messages over the coordinator's own 8 MiB limit reach it;
  // room in the coordinator's outbound buffer for the bursts.
  server = await startNatsServer({ config: 'max_payload: 9437184\nmax_pending: 536870912\n' });
  ckpt = mkdtempSync(join(tmpdir(), 'lockstep-fuzz-'));
});

void after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await server?.stop();
  if (ckpt !== undefined) rmSync(ckpt, { recursive: true, force: true });
});

void test('a live coordinator counts every malformed message on join, state, hb.<id>, grad.<id> by reason, survives, then trains', async (t) => {
  const started = Date.now();
  const metricsPort = await freePort();
  const coord = lockstep(['coordinator', '--nats', server.url, '--job', JOB, ...TRAIN, '--json', '--wait-workers', '2', '--min-workers', '2', '--metrics-port', String(metricsPort), '--dashboard-port', '0', '--checkpoint-dir', ckpt, '--log-level', 'warn']);
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  let alive = true;
  void coord.exit.then(() => (alive = false));
  const nc: NatsConnection = await connect({ servers: server.url, name: 'fuzzer', maxReconnectAttempts: 0 });
  t.after(() => nc.close());

  // The coordinator is up when it heartbeats: that also tells its term (stale-term cases need it).
  let term = -1;
  const hbSub = nc.subscribe(SUBJ.hbCoord, {
    callback: (err, msg) => {
      if (err === null) {
        const m = parseMessage(msg.data);
        term = m.term;
      }
    },
  });
  await until(() => term >= 0 || !alive, 'the coordinator heartbeat', 30_000, coord);
  assert.ok(alive, `the coordinator exited:\n${coord.stderr()}`);
  hbSub.unsubscribe();
  for (let i = 0; ; i++) {
    try {
      await rejectedCounts(metricsUrl);
      break;
    } catch (err) {
      if (i > 100) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  // Replies: join errors on one inbox, state weights on another.
  const joinInbox = createInbox();
  const stateInbox = createInbox();
  const barrierInbox = createInbox();
  const joinReplies: string[] = [];
  let stateReplies = 0;
  let barrierReplies = 0;
  nc.subscribe(joinInbox, { callback: (err, msg) => err === null && joinReplies.push(parseMessage(msg.data).type) });
  nc.subscribe(stateInbox, { callback: (err) => err === null && (stateReplies += 1) });
  nc.subscribe(barrierInbox, { callback: (err) => err === null && (barrierReplies += 1) });
  await nc.flush();

  const rng = new Rng(SEED);
  const oracle = new GradOracle();
  const phases: [string, Case[]][] = [
    ['join', joinCases(rng, joinInbox)],
    ['state', stateCases(rng, stateInbox)],
    ['hb', hbCases(rng, term)],
    ['grad', gradCases(rng, oracle)],
  ];
  const total = phases.reduce((a, [, cs]) => a + cs.length, 0);
  assert.ok(total >= 10_000, `${total} cases`);
  const barrier = encodeMessage(createMessage(MSG.state, { job: JOB, term, step: 0, sender: 'fuzz-barrier' }, {}));

  const summary: Record<string, unknown> = {};
  for (const [kind, cases] of phases) {
    const before = await rejectedCounts(metricsUrl);
    let bytes = 0;
    for (const c of cases) {
      for (const s of c.sends) {
        nc.publish(s.subject, s.data, s.reply === undefined ? undefined : { reply: s.reply });
        bytes += s.data.length;
        if (s.data.length > 1024 * 1024 || bytes > 16 * 1024 * 1024) {
          await nc.flush();
          bytes = 0;
        }
      }
    }
    // A valid state request after the last case: its reply means every earlier case was handled
    // (one publisher connection, one subscriber connection: NATS keeps the order).
    const seen = barrierReplies;
    nc.publish(SUBJ.state, barrier, { reply: barrierInbox });
    await nc.flush();
    await until(() => barrierReplies > seen || !alive, `the barrier after the ${kind} cases`, 20_000, coord);
    assert.ok(alive, `the coordinator died during the ${kind} cases:\n${coord.stderr().slice(-4000)}`);
    const counted = delta(await rejectedCounts(metricsUrl), before);
    // Transfers left incomplete by truncated cases are evicted (and counted as 'incomplete') when the
    // reassembler sweeps them: a consequence of earlier cases, not a case of its own, so checked apart.
    delete counted.incomplete;
    const got = sorted(counted);
    const want = sorted(tally(cases));
    const sends = cases.reduce((a, c) => a + c.sends.length, 0);
    const invalid = Object.values(want).reduce((a, b) => a + b, 0);
    assert.deepEqual(got, want, `${kind}: lockstep_rejected_messages_total increase by reason`);
    summary[kind] = { cases: cases.length, messages: sends, counted: invalid, notCounted: sends - invalid, reasons: want };
  }

  // Every join case is a refused request and got an error reply; every valid state request got the weights.
  const joins = phases[0]?.[1] ?? [];
  await until(() => joinReplies.length >= joins.length, 'join error replies', 10_000, coord);
  assert.equal(joinReplies.length, joins.length);
  assert.ok(joinReplies.every((x) => x === MSG.error), 'join replies are error messages');
  const validStates = (phases[1]?.[1] ?? []).filter((c) => c.sends[0]?.expect === null).length;
  assert.ok(validStates >= 50, `only ${validStates} valid state requests`);
  await until(() => stateReplies >= validStates, 'state replies', 10_000, coord);
  assert.equal(stateReplies, validStates, 'one weights reply per valid state request');
  const validHbs = (phases[2]?.[1] ?? []).filter((c) => c.sends[0]?.expect === null).length;
  assert.ok(validHbs >= 50, `only ${validHbs} valid heartbeats`);

  // Alive, nothing logged above warn, no unhandled rejection, no handler failure.
  assert.ok(alive && coord.child.exitCode === null, 'the coordinator is alive');
  const errors = coord.stderr().split('\n').filter((l) => /"level":(50|60)/.test(l) || /unhandled|UnhandledPromiseRejection|uncaught/i.test(l));
  assert.deepEqual(errors, [], 'no error logs');
  const counts = await rejectedCounts(metricsUrl);
  assert.equal(counts.get('internal') ?? 0, 0, 'no handler threw a non-protocol error');
  const fuzzSeconds = (Date.now() - started) / 1000;

  // The same coordinator now trains with two real workers, to the in-process reference losses.
  const ref = lockstep(['train', '--workers', '0', ...TRAIN, '--json', '--log-level', 'warn']);
  const workers = ['worker-0', 'worker-1'].map((id) => lockstep(['worker', '--nats', server.url, '--job', JOB, '--worker-id', id, '--log-level', 'warn']));
  const [ce, ...we] = await Promise.all([coord.exit, ...workers.map((w) => w.exit)]);
  assert.equal(ce?.code, 0, `coordinator: ${coord.stderr().slice(-3000)}`);
  for (const [i, w] of we.entries()) assert.equal(w.code, 0, `worker ${i}: ${(workers[i] as Proc).stderr().slice(-2000)}`);
  const result = JSON.parse(coord.stdout().trim().split('\n').pop() ?? '') as { steps: number; workers: number; losses: number[] };
  assert.equal(result.steps, 5);
  assert.equal(result.workers, 2);
  assert.equal((await ref.exit).code, 0, ref.stderr());
  const reference = JSON.parse(ref.stdout().trim().split('\n').pop() ?? '') as { losses: number[] };
  for (const [i, l] of result.losses.entries()) {
    const r = reference.losses[i] as number;
    assert.ok(Math.abs(l - r) <= 1e-5 * Math.abs(r), `step ${i}: loss ${l}, reference ${r}`);
  }
  t.diagnostic(JSON.stringify({ total, fuzzSeconds, totalSeconds: (Date.now() - started) / 1000, ...summary }));
});
