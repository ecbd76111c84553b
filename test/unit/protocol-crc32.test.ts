import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import { crc32, crc32Js } from '../../shared/protocol/crc32.js';

const enc = new TextEncoder();
const VECTORS: [string, number][] = [
  ['', 0x00000000],
  ['a', 0xe8b7be43],
  ['abc', 0x352441c2],
  ['123456789', 0xcbf43926],
  ['The quick brown fox jumps over the lazy dog', 0x414fa339],
  ['message digest', 0x20159d7f],
];

void test('crc32: known IEEE vectors, both the table-driven JS and the exported function', () => {
  for (const [s, want] of VECTORS) {
    assert.equal(crc32Js(enc.encode(s)), want, `crc32Js(${JSON.stringify(s)})`);
    assert.equal(crc32(enc.encode(s)), want, `crc32(${JSON.stringify(s)})`);
  }
});

void test('crc32: running checksum over pieces and start/end ranges equal the one-shot value', () => {
  const data = new Uint8Array(10_007);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
  const whole = crc32Js(data);
  for (const cut of [0, 1, 7, 8, 9, 4096, 10_006, 10_007]) {
    assert.equal(crc32Js(data.subarray(cut), crc32Js(data.subarray(0, cut))), whole, `js split at ${cut}`);
    assert.equal(crc32(data.subarray(cut), crc32(data.subarray(0, cut))), whole, `split at ${cut}`);
    assert.equal(crc32Js(data, crc32Js(data, 0, 0, cut), cut), whole, `js range at ${cut}`);
    assert.equal(crc32(data, crc32(data, 0, 0, cut), cut), whole, `range at ${cut}`);
  }
  // a view at an odd byte offset of a larger buffer
  const big = new Uint8Array(data.length + 3);
  big.set(data, 3);
  assert.equal(crc32Js(big.subarray(3)), whole);
  assert.equal(crc32(big.subarray(3)), whole);
});

void test('crc32: the JS tables agree with zlib on random data of every length up to 300', (t) => {
  const native = (zlib as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
  if (typeof native !== 'function') {
    t.skip('zlib.crc32 is not in this Node version');
    return;
  }
  let s = 12345;
  const data = new Uint8Array(300);
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = s >>> 24;
  }
  for (let n = 0; n <= 300; n++) assert.equal(crc32Js(data.subarray(0, n)), native(data.subarray(0, n)) >>> 0, `length ${n}`);
});
