import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CodecError, ConfigError } from '../../shared/errors.js';
import { crc32 } from '../../shared/protocol/crc32.js';
import {
  CHUNK_HEADER_BYTES,
  CHUNK_HEADROOM_BYTES,
  maxChunkDataBytes,
  parseChunk,
  Reassembler,
  splitFrame,
  transferIdHex,
} from '../../shared/protocol/chunks.js';
import type { ChunkErrorReason, EvictedTransfer } from '../../shared/protocol/chunks.js';

const MiB = 1024 * 1024;

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function bytes(n: number, seed = 1): Uint8Array {
  const r = seeded(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

function id(fill: number): Uint8Array {
  return new Uint8Array(16).fill(fill);
}

function shuffle<T>(xs: T[], seed: number): T[] {
  const r = seeded(seed);
  const out = xs.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Recomputes a chunk's CRC after a deliberate header edit. */
function refreshCrc(chunk: Uint8Array): Uint8Array {
  new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength).setUint32(32, crc32(chunk.subarray(36), crc32(chunk, 0, 0, 32)), true);
  return chunk;
}

function setU32(chunk: Uint8Array, off: number, v: number): Uint8Array {
  new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength).setUint32(off, v, true);
  return refreshCrc(chunk);
}

function rejects(fn: () => unknown, reason: ChunkErrorReason, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CodecError, `expected CodecError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    assert.match(err.message, message);
    return true;
  });
}

void test('chunks: a frame that fits is one chunk; layout is the documented one', () => {
  const frame = bytes(1000);
  const chunks = splitFrame(frame, MiB, id(7));
  assert.equal(chunks.length, 1);
  const c = chunks[0] as Uint8Array;
  const v = new DataView(c.buffer);
  assert.equal(new TextDecoder().decode(c.subarray(0, 4)), 'LSC1');
  assert.deepEqual(c.subarray(4, 20), id(7));
  assert.equal(v.getUint32(20, true), 0);
  assert.equal(v.getUint32(24, true), 1);
  assert.equal(v.getUint32(28, true), 1000);
  assert.equal(v.getUint32(32, true), crc32(c.subarray(36), crc32(c, 0, 0, 32)));
  assert.deepEqual(c.subarray(36), frame);
  const r = new Reassembler();
  const out = r.push(c, 'grad.w1');
  assert.deepEqual(out, frame);
  // single chunk: a view of the input, no copy
  assert.equal(out?.buffer, c.buffer);
  assert.equal(r.completed, 1);
});

void test('chunks: a 2.5 MiB frame splits below max_payload and reassembles in order, reversed and shuffled', () => {
  const frame = bytes(2.5 * MiB, 2);
  const chunks = splitFrame(frame, MiB);
  assert.equal(chunks.length, 3);
  for (const c of chunks) assert.ok(c.length <= MiB - CHUNK_HEADROOM_BYTES, `chunk of ${c.length} bytes`);
  assert.equal(maxChunkDataBytes(MiB), MiB - CHUNK_HEADROOM_BYTES - CHUNK_HEADER_BYTES);
  for (const [name, order] of [
    ['in order', chunks],
    ['reversed', chunks.slice().reverse()],
    ['shuffled', shuffle(chunks, 5)],
  ] as const) {
    const r = new Reassembler();
    let out: Uint8Array | null = null;
    order.forEach((c, i) => {
      out = r.push(c, 'src');
      if (i < order.length - 1) assert.equal(out, null, `${name}: complete too early`);
    });
    assert.ok(out !== null, `${name}: not complete`);
    assert.ok(Buffer.from(out as Uint8Array).equals(Buffer.from(frame)), `${name}: bytes differ`);
    assert.equal(r.openTransfers, 0);
    assert.equal(r.bufferedBytes, 0);
  }
});

void test('chunks: uneven sizes, many small chunks, boundaries exactly at a chunk size, and an empty frame', () => {
  const maxPayload = CHUNK_HEADROOM_BYTES + CHUNK_HEADER_BYTES + 100; // 100 data bytes per chunk
  for (const n of [0, 1, 99, 100, 101, 200, 1000, 1001]) {
    const frame = bytes(n, n + 10);
    const chunks = splitFrame(frame, maxPayload);
    assert.equal(chunks.length, Math.max(1, Math.ceil(n / 100)), `n=${n}`);
    const r = new Reassembler();
    let out: Uint8Array | null = null;
    for (const c of shuffle(chunks, n)) out = r.push(c, 's') ?? out;
    assert.deepEqual(out, frame, `n=${n}`);
  }
});

void test('chunks: rejection reasons and messages', () => {
  const frame = bytes(250, 3);
  const maxPayload = CHUNK_HEADROOM_BYTES + CHUNK_HEADER_BYTES + 100;
  const chunks = (): Uint8Array[] => splitFrame(frame, maxPayload, id(1));
  const r = new Reassembler({ maxTransferBytes: 1000 });

  rejects(() => r.push(new Uint8Array(20), 's'), 'chunk-header', /20 bytes is shorter than the 36-byte header/);
  const badMagic = chunks()[0] as Uint8Array;
  badMagic[3] = 0x30;
  rejects(() => r.push(badMagic, 's'), 'chunk-header', /bad magic \(expected "LSC1"\)/);

  const flipped = chunks()[1] as Uint8Array;
  (flipped[50] as number) ^= 1;
  rejects(() => r.push(flipped, 's'), 'chunk-crc', /CRC-32 0x[0-9a-f]+ does not match stored/);
  const flippedHeader = chunks()[1] as Uint8Array;
  (flippedHeader[21] as number) ^= 1; // the index field is covered by the CRC too
  rejects(() => r.push(flippedHeader, 's'), 'chunk-crc', /CRC-32/);

  rejects(() => r.push(setU32(chunks()[0] as Uint8Array, 24, 0), 's'), 'chunk-header', /chunk index 0 of count 0/);
  rejects(() => r.push(setU32(chunks()[0] as Uint8Array, 20, 3), 's'), 'chunk-header', /chunk index 3 of count 3/);
  rejects(() => r.push(setU32(chunks()[0] as Uint8Array, 28, 2000), 's'), 'oversize', /transfer of 2000 bytes exceeds the limit of 1000/);
  // 3 chunks of 100 bytes cannot make 400 bytes; a last chunk of 50 cannot end 3 chunks of 260
  rejects(() => r.push(setU32(chunks()[0] as Uint8Array, 28, 400), 's'), 'chunk-header', /chunk 0\/3 of 100 bytes cannot be part of a 400-byte transfer/);
  rejects(() => r.push(setU32(chunks()[2] as Uint8Array, 28, 261), 's'), 'chunk-header', /last chunk of 50 bytes cannot end a 3-chunk, 261-byte transfer/);
  rejects(() => r.push(setU32(chunks()[0] as Uint8Array, 24, 1), 's'), 'chunk-header', /single chunk carries 100 bytes of a 250-byte transfer/);

  // mismatch: same transfer id, a different split of a different frame
  const other = splitFrame(bytes(290, 4), CHUNK_HEADROOM_BYTES + CHUNK_HEADER_BYTES + 100, id(1));
  assert.equal(r.push(chunks()[0] as Uint8Array, 's'), null);
  rejects(() => r.push(other[1] as Uint8Array, 's'), 'chunk-mismatch', /transfer 01010101010101010101010101010101 from s began with 3 of 100, 250 in all/);
  const otherSize = splitFrame(bytes(250, 3), CHUNK_HEADROOM_BYTES + CHUNK_HEADER_BYTES + 125, id(1));
  rejects(() => r.push(otherSize[1] as Uint8Array, 's'), 'chunk-mismatch', /says 2 chunks of 125 bytes/);

  rejects(() => r.push(chunks()[0] as Uint8Array, 's'), 'duplicate', /chunk 0 of transfer 0101.* from s already received/);
  assert.equal(r.push(chunks()[2] as Uint8Array, 's'), null);
  const done = r.push(chunks()[1] as Uint8Array, 's');
  assert.deepEqual(done, frame);
  // a late copy of a completed transfer is a duplicate, not the start of a new one
  rejects(() => r.push(chunks()[1] as Uint8Array, 's'), 'duplicate', /transfer 0101.* from s was already completed/);
  const single = splitFrame(bytes(10), maxPayload, id(2));
  assert.ok(r.push(single[0] as Uint8Array, 's') !== null);
  rejects(() => r.push(single[0] as Uint8Array, 's'), 'duplicate', /already completed/);
  assert.equal(r.openTransfers, 0);
  assert.equal(r.bufferedBytes, 0);
});

void test('chunks: bad arguments to the sender side are ConfigErrors', () => {
  assert.throws(() => splitFrame(bytes(10), 1000), (e: unknown) => e instanceof ConfigError && /max_payload 1000 is too small/.test(e.message));
  assert.throws(() => splitFrame(bytes(10), MiB, new Uint8Array(8)), (e: unknown) => e instanceof ConfigError && /transferId must be 16 bytes/.test(e.message));
  assert.throws(() => new Reassembler({ ttlMs: 0 }), ConfigError);
  assert.throws(() => new Reassembler({ maxTransferBytes: 100, maxBufferedBytes: 50 }), ConfigError);
});

void test('chunks: the same transfer id from two sources never mixes', () => {
  const a = bytes(300, 5);
  const b = bytes(300, 6);
  const mp = CHUNK_HEADROOM_BYTES + CHUNK_HEADER_BYTES + 100;
  const ca = splitFrame(a, mp, id(9));
  const cb = splitFrame(b, mp, id(9));
  const r = new Reassembler();
  assert.equal(r.push(ca[0] as Uint8Array, 'grad.w1'), null);
  assert.equal(r.push(cb[1] as Uint8Array, 'grad.w2'), null);
  assert.equal(r.push(ca[1] as Uint8Array, 'grad.w1'), null);
  assert.equal(r.push(cb[2] as Uint8Array, 'grad.w2'), null);
  assert.equal(r.openTransfers, 2);
  assert.deepEqual(r.push(ca[2] as Uint8Array, 'grad.w1'), a);
  assert.deepEqual(r.push(cb[0] as Uint8Array, 'grad.w2'), b);
});

void test('chunks: stale transfers are evicted by ttl and by capacity, and counted', () => {
  let now = 1000;
  const evictions: EvictedTransfer[] = [];
  const r = new Reassembler({ ttlMs: 500, maxOpenTransfers: 2, now: () => now, onEvict: (e) => evictions.push(e) });
  const mp = CHUNK_HEADROOM_BYTES + CHUNK_HEADER_BYTES + 100;
  const t1 = splitFrame(bytes(250, 1), mp, id(1));
  const t2 = splitFrame(bytes(250, 2), mp, id(2));
  const t3 = splitFrame(bytes(250, 3), mp, id(3));
  const t4 = splitFrame(bytes(250, 4), mp, id(4));
  r.push(t1[0] as Uint8Array, 's');
  now += 200;
  r.push(t2[0] as Uint8Array, 's');
  now += 200;
  r.push(t1[1] as Uint8Array, 's'); // t1 is now the most recently active
  r.push(t3[0] as Uint8Array, 's'); // capacity: evicts t2, the least recently active
  assert.equal(r.evicted, 1);
  assert.equal(evictions[0]?.reason, 'capacity');
  assert.equal(evictions[0]?.transferId, transferIdHex(id(2)));
  assert.equal(evictions[0]?.receivedChunks, 1);
  assert.equal(evictions[0]?.chunkCount, 3);
  assert.equal(evictions[0]?.ageMs, 200);
  now += 499;
  assert.equal(r.sweep(), 0);
  now += 1;
  assert.equal(r.sweep(), 2); // t1 and t3 idle for 500 ms
  assert.deepEqual(
    evictions.slice(1).map((e) => [e.reason, e.transferId]),
    [
      ['ttl', transferIdHex(id(1))],
      ['ttl', transferIdHex(id(3))],
    ],
  );
  assert.equal(r.evicted, 3);
  assert.equal(r.openTransfers, 0);
  assert.equal(r.bufferedBytes, 0);
  // push sweeps too
  r.push(t4[0] as Uint8Array, 's');
  now += 600;
  r.push(t1[0] as Uint8Array, 's');
  assert.equal(r.evicted, 4);
  assert.equal(r.openTransfers, 1);
  assert.equal(r.dropSource('s'), 1);
  assert.equal(r.openTransfers, 0);
  assert.equal(r.evicted, 4);
});

void test('chunks: buffered bytes stay bounded by maxBufferedBytes', () => {
  const mp = CHUNK_HEADROOM_BYTES + CHUNK_HEADER_BYTES + 100;
  const r = new Reassembler({ maxTransferBytes: 1000, maxBufferedBytes: 1000, maxOpenTransfers: 100 });
  for (let i = 0; i < 20; i++) {
    const c = splitFrame(bytes(900, i), mp, id(i));
    for (let k = 0; k < 4; k++) r.push(c[k] as Uint8Array, 's');
    assert.ok(r.bufferedBytes <= 1000, `${r.bufferedBytes} buffered`);
  }
  assert.ok(r.evicted >= 10, `evicted ${r.evicted}`);
});

void test('chunks: under 10% chunk loss memory stays bounded and every transfer ends complete or evicted', () => {
  let now = 0;
  const maxOpen = 8;
  const mp = CHUNK_HEADROOM_BYTES + CHUNK_HEADER_BYTES + 512;
  const r = new Reassembler({ ttlMs: 50, maxOpenTransfers: maxOpen, maxTransferBytes: 8192, now: () => now });
  const rand = seeded(42);
  const transfers = 600;
  let expectComplete = 0;
  let fullyLost = 0;
  let gotComplete = 0;
  let peakBuffered = 0;
  for (let t = 0; t < transfers; t++) {
    const frame = bytes(512 * 4 + (t % 7), t);
    const chunks = splitFrame(frame, mp);
    const kept = chunks.filter(() => rand() >= 0.1);
    if (kept.length === chunks.length) expectComplete++;
    if (kept.length === 0) fullyLost++;
    for (const c of shuffle(kept, t)) {
      const out = r.push(c, `src${t % 3}`);
      if (out !== null) {
        gotComplete++;
        assert.deepEqual(out, frame);
      }
      peakBuffered = Math.max(peakBuffered, r.bufferedBytes);
      assert.ok(r.openTransfers <= maxOpen);
    }
    now += 10;
  }
  now += 1000;
  r.sweep();
  assert.equal(gotComplete, expectComplete);
  assert.equal(r.completed, expectComplete);
  assert.ok(expectComplete > transfers / 3 && expectComplete < transfers, `${expectComplete} complete`);
  assert.equal(r.evicted, transfers - expectComplete - fullyLost, 'each incomplete transfer is evicted once');
  assert.equal(r.openTransfers, 0);
  assert.equal(r.bufferedBytes, 0);
  assert.ok(peakBuffered <= maxOpen * 8192, `peak ${peakBuffered}`);
});

void test('chunks: parseChunk reports offsets for every chunk', () => {
  const mp = CHUNK_HEADROOM_BYTES + CHUNK_HEADER_BYTES + 100;
  const chunks = splitFrame(bytes(250), mp, id(3));
  assert.deepEqual(
    chunks.map((c) => {
      const p = parseChunk(c);
      return [p.index, p.count, p.offset, p.chunkSize, p.data.length, p.totalLength];
    }),
    [
      [0, 3, 0, 100, 100, 250],
      [1, 3, 100, 100, 100, 250],
      [2, 3, 200, 100, 50, 250],
    ],
  );
});
