// Seeded fuzz of everything that reads bytes off the wire: decodeFrame,
// Reassembler.push, parseMessage and BinaryReceiver.push. Inputs are random
// bytes, truncations, bit flips, header fields rewritten with the checksum
// fixed up (so the checks behind the CRC are reached), JSON-level mutations and
// oversized buffers. Every case must end accepted or rejected with a
// CodecError/ProtocolError reason; anything else fails the test with the case.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CodecError, ProtocolError } from '../../shared/errors.js';
import { BinaryReceiver } from '../../shared/protocol/binary-message.js';
import { Reassembler, splitFrame } from '../../shared/protocol/chunks.js';
import { crc32 } from '../../shared/protocol/crc32.js';
import { decodeFrame, encodeFrame } from '../../shared/protocol/frame.js';
import { createMessage, encodeMessage, MSG, parseMessage } from '../../shared/protocol/messages.js';
import type { EnvelopeInit, Message } from '../../shared/protocol/messages.js';

const SEED = 0x5eed_c0de;
const CASES_PER_TARGET = 5000;
const LIMIT = 4096; // bytes: frames, transfers and messages above this are 'oversize'
const CHUNK_PAYLOAD = 1024 + 36 + 200; // max_payload giving 200 data bytes per chunk

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
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

const rng = new Rng(SEED);
const env: EnvelopeInit = { job: 'fuzz', term: 1, step: 3, sender: 'w1' };

function floats(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.next() * 2 - 1;
  return a;
}

function gradMeta(numel: number): Message {
  return createMessage(MSG.grad, env, { part: rng.int(4), attempt: 0, weightsVersion: 3, count: 8, numel, lossSums: { total: 1, reconstruction: 0.75, kl: 0.25 }, computeSeconds: 0.1 });
}

function weightsMeta(numel: number): Message {
  return createMessage(MSG.weights, { ...env, sender: 'coord' }, { version: 4, epoch: 0, numel });
}

function sampleMessages(): Message[] {
  return [
    createMessage(MSG.join, env, { host: 'h', pid: 1, backend: 'wasm', backendVersion: '4.22', device: 'cpu' }),
    createMessage(MSG.joinAck, { ...env, sender: 'coord' }, { rank: 1, workerId: 'w1', accepted: true, config: { lr: 1e-3 }, weightsVersion: 3 }),
    createMessage(MSG.step, { ...env, sender: 'coord' }, { epoch: 0, weightsVersion: 3, globalCount: 4, parts: [{ part: 0, worker: 'w1', attempt: 0, indices: [1, 2, 3, 4] }] }),
    gradMeta(10),
    weightsMeta(10),
    createMessage(MSG.state, env, { wantVersion: 3 }),
    createMessage(MSG.hb, env, { status: 'busy', members: ['w1'] }),
    createMessage(MSG.ctl, { ...env, sender: 'coord' }, { action: 'stop' }),
    createMessage(MSG.leave, env, {}),
    createMessage(MSG.error, { ...env, sender: 'coord' }, { error: { name: 'ConfigError', code: 'CONFIG_INVALID', message: 'x' } }),
  ];
}

function validFrame(): Uint8Array {
  const n = rng.int(60);
  const meta = rng.next() < 0.5 ? gradMeta(n) : weightsMeta(n);
  return encodeFrame(meta, floats(n), { dtype: rng.next() < 0.3 ? 'float16' : 'float32' });
}

function fixFrameCrc(b: Uint8Array): Uint8Array {
  if (b.length >= 4) new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(b.length - 4, crc32(b, 0, 0, b.length - 4), true);
  return b;
}

function fixChunkCrc(b: Uint8Array): Uint8Array {
  if (b.length >= 36) new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(32, crc32(b.subarray(36), crc32(b, 0, 0, 32)), true);
  return b;
}

const EDGE_U32 = [0, 1, 2, 3, 4, 5, 7, 8, 199, 200, 201, 4095, 4096, 4097, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

function flipBits(src: Uint8Array): Uint8Array {
  const b = src.slice();
  if (b.length === 0) return b;
  const flips = 1 + rng.int(8);
  for (let i = 0; i < flips; i++) (b[rng.int(b.length)] as number) ^= 1 << rng.int(8);
  return b;
}

function truncate(src: Uint8Array): Uint8Array {
  return src.slice(0, rng.int(src.length));
}

function oversized(prefix: Uint8Array): Uint8Array {
  const b = rng.bytes(LIMIT + 1 + rng.int(4 * LIMIT));
  b.set(prefix.subarray(0, Math.min(prefix.length, b.length)));
  return b;
}

/** Frame mutations: header fields rewritten with the CRC fixed, meta bytes scrambled, appended bytes... */
function mutateFrame(src: Uint8Array): Uint8Array {
  const kind = rng.int(10);
  const b = src.slice();
  const v = new DataView(b.buffer);
  switch (kind) {
    case 0:
      return rng.bytes(rng.int(300));
    case 1:
      return truncate(src);
    case 2:
      return flipBits(src);
    case 3:
      return oversized(src);
    case 4:
      b[4] = rng.int(256);
      return rng.next() < 0.5 ? fixFrameCrc(b) : b;
    case 5:
      b[5] = rng.pick([0, 1, 2, 3, 255]);
      if (rng.next() < 0.3) v.setUint16(6, rng.int(65536), true);
      return fixFrameCrc(b);
    case 6:
      v.setUint32(rng.pick([8, 12]), rng.pick(EDGE_U32), true);
      return rng.next() < 0.5 ? fixFrameCrc(b) : b;
    case 7: {
      // scramble meta bytes, keep lengths, fix CRC: reaches the JSON and schema checks
      const metaLength = v.getUint32(8, true);
      const at = 16 + rng.int(Math.max(1, metaLength));
      const n = 1 + rng.int(4);
      for (let i = 0; i < n && at + i < 16 + metaLength; i++) b[at + i] = rng.pick([0x22, 0x7b, 0x7d, 0x3a, 0x2c, 0xff, 0xc3, 0x20, rng.int(256)]);
      return fixFrameCrc(b);
    }
    case 8: {
      const extra = new Uint8Array(b.length + 1 + rng.int(8));
      extra.set(b);
      return rng.next() < 0.5 ? fixFrameCrc(extra) : extra;
    }
    default:
      b[rng.int(4)] = rng.int(256);
      return b;
  }
}

/** Chunk mutations, including header fields with the chunk CRC fixed. */
function mutateChunk(src: Uint8Array): Uint8Array {
  const kind = rng.int(8);
  const b = src.slice();
  const v = new DataView(b.buffer);
  switch (kind) {
    case 0:
      return rng.bytes(rng.int(300));
    case 1:
      return truncate(src);
    case 2:
      return flipBits(src);
    case 3:
      return oversized(src);
    case 4:
      v.setUint32(rng.pick([20, 24, 28]), rng.pick(EDGE_U32), true);
      return fixChunkCrc(b);
    case 5:
      b[rng.int(4)] = rng.int(256);
      return b;
    case 6: {
      // shorten or lengthen the data and fix the CRC: sizes no longer fit the header
      const cut = b.subarray(0, Math.max(36, b.length - 1 - rng.int(50)));
      return fixChunkCrc(rng.next() < 0.5 ? cut.slice() : new Uint8Array([...b, ...rng.bytes(1 + rng.int(20))]));
    }
    default:
      return b;
  }
}

/** JSON message mutations at the value level and the byte level. */
function mutatedMessage(samples: Message[]): Uint8Array | string | unknown {
  const m = JSON.parse(JSON.stringify(rng.pick(samples))) as Record<string, unknown>;
  const kind = rng.int(12);
  const keys = Object.keys(m);
  switch (kind) {
    case 0:
      return rng.bytes(rng.int(200));
    case 1:
      return truncate(encodeMessage(m as unknown as Message));
    case 2:
      return flipBits(encodeMessage(m as unknown as Message));
    case 3:
      return oversized(encodeMessage(m as unknown as Message));
    case 4:
      delete m[rng.pick(keys)];
      return m;
    case 5:
      m[rng.pick(keys)] = rng.pick([null, -1, 1.5, 'x', '', true, [], {}, 2 ** 60, 'a.b', '>']);
      return JSON.stringify(m);
    case 6:
      m.type = `lockstep.v${rng.pick([0, 2, 3, 10, 999])}.${String(m.type).split('.')[2]}`;
      return m;
    case 7:
      m.protocol = rng.pick([0, 2, 3, 1.5]);
      return m;
    case 8:
      m.type = rng.pick(['lockstep.v1.nope', 'hello', 'lockstep.v1.', 'LOCKSTEP.V1.HB', 'lockstep.v1.__proto__', 'lockstep.v1.constructor']);
      return m;
    case 9:
      return rng.pick(['', 'null', '[]', '1', '"x"', '{', '{"type":1}', 'true', '{"type":"lockstep.v1.hb"}']);
    case 10:
      m[`extra${rng.int(5)}`] = rng.pick([1, 'x', { nested: [1, 2] }]);
      return encodeMessage(m as unknown as Message);
    default:
      return encodeMessage(m as unknown as Message);
  }
}

type Counts = Map<string, number>;

function count(counts: Counts, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** Runs one case; returns the outcome label. Anything but a typed rejection fails the test. */
async function runCase(label: string, fn: () => unknown): Promise<string> {
  try {
    // awaited like a NATS subscription handler would be
    const out = await Promise.resolve().then(fn);
    return out === null ? 'pending' : 'accepted';
  } catch (err) {
    if (err instanceof CodecError || err instanceof ProtocolError) {
      assert.equal(typeof err.reason, 'string');
      assert.ok(err.message.length > 0);
      return err.reason;
    }
    throw new Error(`fuzz case ${label} threw a non-typed error: ${String(err)}`, { cause: err });
  }
}

void test('fuzz: codec, reassembler, message parser and binary receiver reject malformed input by reason only', { timeout: 120_000 }, async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  process.on('unhandledRejection', onUnhandled);
  t.after(() => process.off('unhandledRejection', onUnhandled));

  const started = Date.now();
  const counts: Counts = new Map();
  const perTarget: Record<string, number> = {};
  let total = 0;
  const record = (target: string, outcome: string): void => {
    count(counts, `${target}:${outcome}`);
    perTarget[target] = (perTarget[target] ?? 0) + 1;
    total++;
  };

  // 1. decodeFrame
  const frames = Array.from({ length: 40 }, validFrame);
  for (let i = 0; i < CASES_PER_TARGET; i++) {
    const input = rng.next() < 0.1 ? rng.pick(frames) : mutateFrame(rng.pick(frames));
    record('frame', await runCase(`frame#${i}`, () => decodeFrame(input, { maxBytes: LIMIT })));
  }

  // 2. Reassembler.push: a long-lived instance, small limits, a clock that moves, a
  //    pool of transfers that share ids (mismatch), replays (duplicate) and mutations.
  let now = 0;
  let evictedByCallback = 0;
  const reasm = new Reassembler({ maxTransferBytes: LIMIT, maxOpenTransfers: 6, maxBufferedBytes: 2 * LIMIT, ttlMs: 200, now: () => now, onEvict: () => evictedByCallback++ });
  const ids = Array.from({ length: 6 }, () => rng.bytes(16));
  const splitPool = (): Uint8Array[] => {
    const id = rng.pick(ids);
    const frame = rng.next() < 0.8 ? validFrame() : rng.bytes(rng.int(1500));
    return splitFrame(frame, rng.next() < 0.5 ? CHUNK_PAYLOAD : CHUNK_PAYLOAD + rng.int(100), id);
  };
  let pool = splitPool();
  for (let i = 0; i < CASES_PER_TARGET; i++) {
    if (rng.next() < 0.15) pool = splitPool();
    const r = rng.next();
    let input: Uint8Array;
    if (r < 0.45) input = rng.pick(pool);
    else if (r < 0.55) input = splitFrame(rng.bytes(LIMIT + 1 + rng.int(LIMIT)), 1024 + 36 + 2 * LIMIT, rng.pick(ids))[0] as Uint8Array;
    else input = mutateChunk(rng.pick(pool));
    const source = rng.pick(['grad.w1', 'grad.w2']);
    record('chunks', await runCase(`chunks#${i}`, () => reasm.push(input, source)));
    assert.ok(reasm.bufferedBytes <= 2 * LIMIT, `buffered ${reasm.bufferedBytes}`);
    assert.ok(reasm.openTransfers <= 6);
    now += rng.int(20);
  }
  assert.equal(reasm.evicted, evictedByCallback);
  assert.ok(reasm.evicted > 0, 'the fuzz should also drive evictions');

  // 3. parseMessage
  const samples = sampleMessages();
  for (let i = 0; i < CASES_PER_TARGET; i++) {
    const input = mutatedMessage(samples);
    record('message', await runCase(`message#${i}`, () => parseMessage(input, { maxBytes: LIMIT })));
  }

  // 4. BinaryReceiver.push: whole binary messages, some valid, some semantically wrong
  //    (numel, NaN/Inf, wrong type, bad meta), and chunk-level mutations of all of them.
  const rx = new BinaryReceiver({ accept: [MSG.grad], maxTransferBytes: LIMIT, maxOpenTransfers: 6, ttlMs: 200, now: () => now });
  const binaryChunks = (): Uint8Array[] => {
    const n = 1 + rng.int(300);
    const payload = floats(n);
    let meta: object = gradMeta(n);
    switch (rng.int(6)) {
      case 0:
        meta = gradMeta(n + 1 + rng.int(3));
        break;
      case 1:
        payload[rng.int(n)] = rng.pick([NaN, Infinity, -Infinity]);
        break;
      case 2:
        meta = rng.next() < 0.5 ? weightsMeta(n) : createMessage(MSG.leave, env, {});
        break;
      case 3:
        meta = { ...gradMeta(n), lossSums: { total: 'x' } };
        break;
      default:
        break;
    }
    return splitFrame(encodeFrame(meta, payload), CHUNK_PAYLOAD + rng.int(400), rng.bytes(16));
  };
  let bpool = binaryChunks();
  let bnext = 0;
  for (let i = 0; i < CASES_PER_TARGET; i++) {
    let input: Uint8Array;
    if (bnext >= bpool.length || rng.next() < 0.1) {
      bpool = binaryChunks();
      bnext = 0;
    }
    if (rng.next() < 0.75) input = bpool[bnext++] as Uint8Array;
    else input = mutateChunk(rng.pick(bpool));
    record('binary', await runCase(`binary#${i}`, () => rx.push(input, 'grad.w1')));
    now += rng.int(5);
    if (i % 500 === 0) await new Promise((r) => setImmediate(r));
  }
  // A frame whose chunks are intact but whose inner frame is damaged: reaches decodeFrame's checks.
  for (let i = 0; i < 500; i++) {
    const frame = mutateFrame(encodeFrame(gradMeta(20), floats(20)));
    const chunks = splitFrame(frame.length > LIMIT ? frame.subarray(0, LIMIT) : frame, CHUNK_PAYLOAD, rng.bytes(16));
    let outcome = 'pending';
    for (const c of chunks) outcome = await runCase(`binary-frame#${i}`, () => rx.push(c, 'grad.w2'));
    record('binary', outcome);
  }

  await new Promise((r) => setImmediate(r));
  assert.deepEqual(unhandled, [], 'no unhandled rejections');

  const table = Object.fromEntries([...counts.entries()].sort());
  t.diagnostic(`${total} cases in ${Date.now() - started} ms: ${JSON.stringify(table)}`);
  assert.ok(total >= 10_000, `${total} cases`);
  const counted = [...counts.values()].reduce((a, b) => a + b, 0);
  assert.equal(counted, total, 'every case is counted once');

  const expected: Record<string, string[]> = {
    frame: ['accepted', 'truncated', 'magic', 'version', 'dtype', 'length', 'crc', 'meta-json', 'oversize'],
    chunks: ['accepted', 'pending', 'chunk-header', 'chunk-crc', 'chunk-mismatch', 'duplicate', 'oversize'],
    message: ['accepted', 'json', 'schema', 'protocol-version', 'unknown-type', 'oversize'],
    binary: ['accepted', 'pending', 'numel', 'non-finite', 'unexpected-type', 'schema', 'chunk-crc', 'chunk-header', 'crc', 'meta-json', 'truncated', 'magic', 'version', 'dtype', 'length'],
  };
  for (const [target, reasons] of Object.entries(expected)) {
    for (const r of reasons) assert.ok((counts.get(`${target}:${r}`) ?? 0) > 0, `${target}: no case ended as '${r}'`);
  }
  const known = new Set(['accepted', 'pending', 'truncated', 'magic', 'version', 'dtype', 'length', 'crc', 'meta-json', 'oversize', 'chunk-header', 'chunk-crc', 'chunk-mismatch', 'duplicate', 'json', 'schema', 'protocol-version', 'unknown-type', 'numel', 'non-finite', 'unexpected-type']);
  for (const key of counts.keys()) assert.ok(known.has(key.split(':')[1] as string), `unexpected outcome ${key}`);
});
