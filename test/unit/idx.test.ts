import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, copyFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseIdx } from '../../shared/data/idx.js';
import { loadMnist, defaultDataDir, gather } from '../../shared/data/mnist.js';
import { DataError } from '../../shared/errors.js';

function idx(ndims: number, dims: number[], data: number[], type = 0x08): Buffer {
  const head = Buffer.alloc(4 + 4 * ndims);
  head[2] = type;
  head[3] = ndims;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data)]);
}

test('parses a well-formed IDX file', () => {
  const a = parseIdx(idx(3, [2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]), 'x', { ndims: 3 });
  assert.deepEqual(a.dims, [2, 2, 2]);
  assert.deepEqual([...a.data], [1, 2, 3, 4, 5, 6, 7, 8]);
});

test('malformed IDX inputs get errors naming the file and the fault', () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ['empty', Buffer.alloc(0), /f\.idx: truncated: 0 bytes, shorter than the 4-byte IDX magic/],
    ['wrong magic', Buffer.from([0x1f, 0x8b, 0x08, 0x03, 0, 0, 0, 0]), /f\.idx: wrong magic number 0x1f8b0803: not an IDX file/],
    ['wrong element type', idx(3, [1, 1, 1], [0], 0x0d), /f\.idx: wrong magic number .*element type 0x0d is not unsigned byte/],
    ['wrong ndims', idx(1, [4], [1, 2, 3, 4]), /f\.idx: wrong magic number .*1 dimensions, expected 3/],
    ['truncated header', idx(3, [1, 1, 1], []).subarray(0, 10), /f\.idx: truncated header: 10 bytes, need 16/],
    ['truncated data', idx(3, [2, 2, 2], [1, 2, 3]), /f\.idx: truncated: header declares 2x2x2 = 8 bytes of data, file has 3/],
    ['trailing bytes', idx(3, [1, 1, 2], [1, 2, 3]), /f\.idx: corrupt: 1 trailing bytes/],
  ];
  for (const [name, buf, re] of cases) {
    assert.throws(() => parseIdx(buf, 'f.idx', { ndims: 3 }), (e: unknown) => e instanceof DataError && re.test(e.message), name);
  }
});

test('loads the real MNIST: 60,000 train and 10,000 test images with checksums', () => {
  const train = loadMnist({ split: 'train' });
  assert.equal(train.count, 60000);
  assert.equal(train.images.length, 60000 * 784);
  assert.equal(train.labels[0], 5); // MNIST's first training label
  const test = loadMnist({ split: 'test' });
  assert.equal(test.count, 10000);
  assert.equal(test.labels[0], 7);
  let max = 0;
  for (let i = 0; i < 784 * 10; i++) max = Math.max(max, train.images[i] ?? 0);
  assert.equal(max, 1);
  const g = gather(test, [3, 0]);
  assert.equal(g.n, 2);
  assert.deepEqual([...g.labels], [test.labels[3], 7]);
});

test('a corrupted copy of the default files is caught; --data-dir accepts other IDX sets; missing files are named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-idx-'));
  try {
    for (const f of ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) copyFileSync(join(defaultDataDir(), f), join(dir, f));
    // A different but well-formed set (think Fashion-MNIST) loads from --data-dir.
    const ds = loadMnist({ split: 'test', dataDir: dir, limit: 5 });
    assert.equal(ds.count, 5);
    // Truncate the images: error names the file.
    const img = readFileSync(join(dir, 't10k-images-idx3-ubyte'));
    writeFileSync(join(dir, 't10k-images-idx3-ubyte'), img.subarray(0, 1000));
    assert.throws(() => loadMnist({ split: 'test', dataDir: dir }), /t10k-images-idx3-ubyte: truncated: header declares 10000x28x28/);
    // Labels out of range.
    writeFileSync(join(dir, 't10k-images-idx3-ubyte'), img);
    const lbl = Buffer.from(readFileSync(join(dir, 't10k-labels-idx1-ubyte')));
    lbl[8 + 17] = 12;
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), lbl);
    assert.throws(() => loadMnist({ split: 'test', dataDir: dir }), /label 12 at index 17 is outside 0\.\.9/);
    assert.throws(() => loadMnist({ split: 'train', dataDir: dir }), (e: unknown) => e instanceof DataError && e.code === 'DATA_MISSING' && /train-images-idx3-ubyte: file not found/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
