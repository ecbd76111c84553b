import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CodecError } from '../../shared/errors.js';
import { crc32 } from '../../shared/protocol/crc32.js';
import { readFloat32LE, readUint16LE, writeFloat32LE, writeUint16LE } from '../../shared/protocol/endian.js';
import { decodeFrame, encodeFrame, FRAME_HEADER_BYTES, frameByteLength } from '../../shared/protocol/frame.js';
import type { FrameErrorReason } from '../../shared/protocol/frame.js';

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

function tensor(n: number, seed = 1): Float32Array {
  const r = seeded(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() - 0.5) * 10;
  return a;
}

/** Rewrites the trailing CRC so that a deliberately edited frame passes the checksum. */
function refreshCrc(buf: Uint8Array): Uint8Array {
  new DataView(buf.buffer, buf.byteOffset, buf.byteLength).setUint32(buf.length - 4, crc32(buf, 0, 0, buf.length - 4), true);
  return buf;
}

/** A frame with arbitrary meta bytes (valid lengths and CRC). */
function rawFrame(metaBytes: Uint8Array, payloadBytes = new Uint8Array(0), dtype = 0): Uint8Array {
  const buf = new Uint8Array(16 + metaBytes.length + payloadBytes.length + 4);
  const v = new DataView(buf.buffer);
  buf.set(new TextEncoder().encode('LSF1'));
  v.setUint8(4, 1);
  v.setUint8(5, dtype);
  v.setUint32(8, metaBytes.length, true);
  v.setUint32(12, payloadBytes.length, true);
  buf.set(metaBytes, 16);
  buf.set(payloadBytes, 16 + metaBytes.length);
  return refreshCrc(buf);
}

function rejects(fn: () => unknown, reason: FrameErrorReason, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CodecError, `expected CodecError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    assert.match(err.message, message);
    assert.equal((err.details as { reason: string }).reason, reason);
    return true;
  });
}

void test('frame: float32 round trip is bit exact, with the documented little-endian layout', () => {
  const payload = tensor(1001);
  payload[3] = -0;
  payload[4] = 1e-42; // float32 subnormal
  const meta = { type: 'x', numel: 1001, note: 'grüße ✓' };
  const buf = encodeFrame(meta, payload);
  assert.equal(buf.length, frameByteLength(new TextEncoder().encode(JSON.stringify(meta)).length, 1001));
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  assert.equal(new TextDecoder().decode(buf.subarray(0, 4)), 'LSF1');
  assert.equal(buf[4], 1);
  assert.equal(buf[5], 0);
  assert.equal(v.getUint16(6, true), 0);
  const metaLength = (buf[8] as number) | ((buf[9] as number) << 8) | ((buf[10] as number) << 16) | ((buf[11] as number) << 24);
  assert.equal(metaLength % 4, 0, 'meta padded so the payload is 4-byte aligned');
  assert.equal(v.getUint32(12, true), 1001 * 4);
  assert.equal(v.getUint32(buf.length - 4, true), crc32(buf, 0, 0, buf.length - 4));
  // payload bytes are little-endian float32, independent of how they are read back
  assert.equal(v.getFloat32(FRAME_HEADER_BYTES + metaLength, true), payload[0]);
  const out = decodeFrame(buf);
  assert.deepEqual(out.meta, meta);
  assert.equal(out.dtype, 'float32');
  assert.deepEqual(Array.from(out.payload), Array.from(payload));
  assert.ok(Object.is(out.payload[3], -0));
  // zero-copy: the aligned payload is a view of the input
  assert.equal(out.payload.buffer, buf.buffer);
});

void test('frame: an unaligned input buffer decodes to a correct copy', () => {
  const payload = tensor(257, 2);
  const buf = encodeFrame({ a: 1 }, payload);
  const holder = new Uint8Array(buf.length + 1);
  holder.set(buf, 1);
  const out = decodeFrame(holder.subarray(1));
  assert.notEqual(out.payload.buffer, holder.buffer);
  assert.deepEqual(Array.from(out.payload), Array.from(payload));
});

void test('frame: the portable DataView path (big-endian hosts) writes and reads the same bytes', () => {
  const payload = tensor(99, 3);
  const a = new Uint8Array(8 + 99 * 4);
  const b = new Uint8Array(8 + 99 * 4);
  writeFloat32LE(a, 8, payload);
  writeFloat32LE(b, 8, payload, true);
  assert.deepEqual(a, b);
  assert.deepEqual(Array.from(readFloat32LE(a, 8, 99, true)), Array.from(payload));
  assert.deepEqual(Array.from(readFloat32LE(a.subarray(1), 7, 99)), Array.from(payload));
  const halves = new Uint16Array([1, 0x3c00, 0xfffe, 0x8000]);
  const c = new Uint8Array(9);
  const d = new Uint8Array(9);
  writeUint16LE(c, 1, halves);
  writeUint16LE(d, 1, halves, true);
  assert.deepEqual(c, d);
  assert.deepEqual(Array.from(c.subarray(1, 5)), [1, 0, 0x00, 0x3c]);
  assert.deepEqual(Array.from(readUint16LE(c, 1, 4, true)), Array.from(halves));
  assert.deepEqual(Array.from(readUint16LE(c, 1, 4)), Array.from(halves));
});

void test('frame: float16 round trip halves the payload and stays within half precision', () => {
  const payload = tensor(4096, 4);
  const buf = encodeFrame({ k: 'v' }, payload, { dtype: 'float16' });
  const f32 = encodeFrame({ k: 'v' }, payload);
  assert.equal(buf[5], 1);
  assert.equal(f32.length - buf.length, 4096 * 2);
  const out = decodeFrame(buf);
  assert.equal(out.dtype, 'float16');
  assert.equal(out.payload.length, 4096);
  for (let i = 0; i < payload.length; i++) {
    const x = payload[i] as number;
    assert.ok(Math.abs((out.payload[i] as number) - x) <= Math.abs(x) * 2 ** -11 + 2 ** -25, `index ${i}: ${x} -> ${out.payload[i]}`);
  }
  // odd element count: 2-byte elements, still a valid frame
  const odd = decodeFrame(encodeFrame({}, new Float32Array([1, 2, 3]), { dtype: 'float16' }));
  assert.deepEqual(Array.from(odd.payload), [1, 2, 3]);
});

void test('frame: empty payload and empty meta object', () => {
  for (const dtype of ['float32', 'float16'] as const) {
    const out = decodeFrame(encodeFrame({}, new Float32Array(0), { dtype }));
    assert.deepEqual(out.meta, {});
    assert.equal(out.payload.length, 0);
    assert.equal(out.dtype, dtype);
  }
});

void test('frame: each rejection reason, with its message', () => {
  const good = encodeFrame({ n: 3 }, new Float32Array([1, 2, 3]));
  const copy = (): Uint8Array => good.slice();

  rejects(() => decodeFrame(good.subarray(0, 2)), 'truncated', /shorter than the magic/);
  rejects(() => decodeFrame(good.subarray(0, 12)), 'truncated', /shorter than the 20-byte minimum/);
  rejects(() => decodeFrame(good.subarray(0, good.length - 1)), 'truncated', /declared \d+ bytes, got \d+/);

  const badMagic = copy();
  badMagic[0] = 0x58;
  rejects(() => decodeFrame(badMagic), 'magic', /bad magic \(expected "LSF1"\)/);

  const v2 = copy();
  v2[4] = 2;
  rejects(() => decodeFrame(v2), 'version', /format version 2, this reader understands 1/);
  const reserved = copy();
  reserved[6] = 1;
  rejects(() => decodeFrame(reserved), 'version', /reserved field is 0x1/);

  const dt = copy();
  dt[5] = 9;
  rejects(() => decodeFrame(dt), 'dtype', /unknown dtype code 9/);

  const ragged = rawFrame(new TextEncoder().encode('{}  '), new Uint8Array(6));
  rejects(() => decodeFrame(ragged), 'length', /payload of 6 bytes is not a whole number of float32 elements/);
  const ragged16 = rawFrame(new TextEncoder().encode('{}  '), new Uint8Array(3), 1);
  rejects(() => decodeFrame(ragged16), 'length', /not a whole number of float16 elements/);
  const trailing = new Uint8Array(good.length + 4);
  trailing.set(good);
  rejects(() => decodeFrame(trailing), 'length', /trailing bytes/);

  const flipped = copy();
  (flipped[flipped.length - 8] as number) ^= 0x10;
  rejects(() => decodeFrame(flipped), 'crc', /CRC-32 0x[0-9a-f]+ does not match stored 0x[0-9a-f]+/);

  rejects(() => decodeFrame(rawFrame(new TextEncoder().encode('{"a":'))), 'meta-json', /meta-json/);
  rejects(() => decodeFrame(rawFrame(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))), 'meta-json', /meta-json/);
  rejects(() => decodeFrame(rawFrame(new TextEncoder().encode('[1] '))), 'meta-json', /meta is not a JSON object/);
  rejects(() => decodeFrame(rawFrame(new Uint8Array(0))), 'meta-json', /meta-json/);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  rejects(() => encodeFrame(cyclic, new Float32Array(0)), 'meta-json', /meta does not serialise/);
  rejects(() => encodeFrame([1, 2] as unknown as object, new Float32Array(0)), 'meta-json', /must serialise to a JSON object/);
  rejects(() => encodeFrame({}, new Float32Array(0), { dtype: 'toString' as 'float32' }), 'dtype', /unknown dtype toString/);

  rejects(() => decodeFrame(good, { maxBytes: 16 }), 'oversize', /\d+ bytes exceeds the limit of 16/);
  // a small buffer whose header claims a huge frame is refused before anything is allocated
  const huge = copy();
  new DataView(huge.buffer).setUint32(12, 0xfffffff0, true);
  rejects(() => decodeFrame(huge), 'oversize', /declared frame of \d+ bytes exceeds the limit/);

  // the good frame still decodes (the helpers did not mutate it)
  assert.deepEqual(Array.from(decodeFrame(good).payload), [1, 2, 3]);
});
