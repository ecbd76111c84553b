import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { comparisonImages, comparisonPng, gridGeometry, gridPng, inverseNormalCdf, isPng, latentGrid2d, pngDataUrl } from '../../shared/images/png.js';

const SIDE = 28;
const SIZE = SIDE * SIDE;

/** Image k has the constant value (k + 1) / (n + 1), except pixel (y=3, x=5) which is 1. */
function testImages(n: number): Float32Array {
  const out = new Float32Array(n * SIZE);
  for (let k = 0; k < n; k++) {
    out.fill((k + 1) / (n + 1), k * SIZE, (k + 1) * SIZE);
    out[k * SIZE + 3 * SIDE + 5] = 1;
  }
  return out;
}

function gray(png: PNG, x: number, y: number): number {
  const i = (y * png.width + x) * 4;
  const [r, g, b, a] = [png.data[i], png.data[i + 1], png.data[i + 2], png.data[i + 3]];
  assert.equal(r, g);
  assert.equal(g, b);
  assert.equal(a, 255);
  return r as number;
}

void test('gridPng decodes back to the right size and pixel values', () => {
  const n = 10;
  const cols = 4;
  const scale = 2;
  const pad = 1;
  const buf = gridPng({ images: testImages(n), n, cols, scale, pad, padValue: 0 });
  assert.ok(isPng(buf));
  const png = PNG.sync.read(buf);
  const rows = Math.ceil(n / cols);
  assert.equal(png.width, pad + cols * (SIDE * scale + pad));
  assert.equal(png.height, pad + rows * (SIDE * scale + pad));
  assert.deepEqual(gridGeometry({ n, cols, scale, pad }), { rows, cols, width: png.width, height: png.height });
  for (let k = 0; k < n; k++) {
    const x0 = pad + (k % cols) * (SIDE * scale + pad);
    const y0 = pad + Math.floor(k / cols) * (SIDE * scale + pad);
    const expected = Math.round(Math.fround((k + 1) / (n + 1)) * 255);
    // Corners of the tile and the marked pixel, each scaled to a 2x2 block.
    assert.equal(gray(png, x0, y0), expected, `tile ${k} top-left`);
    assert.equal(gray(png, x0 + SIDE * scale - 1, y0 + SIDE * scale - 1), expected, `tile ${k} bottom-right`);
    for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]] as const) {
      assert.equal(gray(png, x0 + 5 * scale + dx, y0 + 3 * scale + dy), 255, `tile ${k} marked pixel`);
    }
    assert.equal(gray(png, x0 - 1, y0), 0, 'padding left of the tile');
  }
  // The unused slots of the last row are background.
  const emptyX = pad + 3 * (SIDE * scale + pad) + 10;
  const emptyY = pad + 2 * (SIDE * scale + pad) + 10;
  assert.equal(gray(png, emptyX, emptyY), 0);
});

void test('values are clamped to [0, 1], NaN is black, padding takes padValue', () => {
  const img = new Float32Array(SIZE);
  img[0] = -3;
  img[1] = 7;
  img[2] = NaN;
  img[3] = 0.5;
  const png = PNG.sync.read(gridPng({ images: img, n: 1, pad: 2, padValue: 1 }));
  assert.equal(png.width, 2 + SIDE + 2);
  assert.equal(gray(png, 2, 2), 0);
  assert.equal(gray(png, 3, 2), 255);
  assert.equal(gray(png, 4, 2), 0);
  assert.equal(gray(png, 5, 2), 128);
  assert.equal(gray(png, 0, 0), 255);
  assert.equal(gray(png, 1, 15), 255);
});

void test('the file is 8-bit grayscale and small', () => {
  const buf = gridPng({ images: testImages(64), n: 64, cols: 8 });
  assert.equal(buf.readUInt32BE(16), 8 * 29 + 1); // IHDR width
  assert.equal(buf[24], 8, 'bit depth');
  assert.equal(buf[25], 0, 'color type grayscale');
  assert.ok(buf.length < 20_000, `${buf.length} bytes`);
  assert.match(pngDataUrl(buf), /^data:image\/png;base64,iVBORw0KGgo/);
});

void test('bad input is a DataError, not a broken image', () => {
  assert.throws(() => gridPng({ images: new Float32Array(100), n: 1 }), { name: 'DataError' });
  assert.throws(() => gridPng({ images: new Float32Array(SIZE), n: 1, scale: 1.5 }), { name: 'DataError' });
  assert.throws(() => gridPng({ images: new Float32Array(0), n: 0 }), { name: 'DataError' });
});

void test('comparison grid puts each reconstruction right below its input', () => {
  const n = 5;
  const inputs = testImages(n);
  const recon = new Float32Array(n * SIZE).fill(1);
  const c = comparisonImages({ inputs, reconstructions: recon, n, cols: 3 });
  assert.equal(c.cols, 3);
  assert.equal(c.n, 2 * 2 * 3); // 2 pair-rows of 3
  const png = PNG.sync.read(comparisonPng({ inputs, reconstructions: recon, n, cols: 3, pad: 1 }));
  assert.equal(png.width, 1 + 3 * 29);
  assert.equal(png.height, 1 + 4 * 29);
  for (let k = 0; k < n; k++) {
    const r = Math.floor(k / 3);
    const x = 1 + (k % 3) * 29 + 1;
    const yIn = 1 + 2 * r * 29 + 1;
    const yRec = 1 + (2 * r + 1) * 29 + 1;
    assert.equal(gray(png, x, yIn), Math.round(Math.fround((k + 1) / (n + 1)) * 255), `input ${k}`);
    assert.equal(gray(png, x, yRec), 255, `reconstruction ${k}`);
  }
  // Slot after the last pair stays blank in both rows.
  assert.equal(gray(png, 1 + 2 * 29 + 1, 1 + 2 * 29 + 1), 0);
  assert.equal(gray(png, 1 + 2 * 29 + 1, 1 + 3 * 29 + 1), 0);
});

void test('inverse normal CDF matches known quantiles', () => {
  const cases: Array<[number, number]> = [
    [0.5, 0],
    [0.975, 1.959963984540054],
    [0.95, 1.6448536269514722],
    [0.05, -1.6448536269514722],
    [0.001, -3.090232306167813],
    [0.8413447460685429, 1],
  ];
  for (const [p, z] of cases) assert.ok(Math.abs(inverseNormalCdf(p) - z) < 1e-8, `p=${p}: ${inverseNormalCdf(p)} vs ${z}`);
  assert.equal(inverseNormalCdf(0), -Infinity);
  assert.ok(Number.isNaN(inverseNormalCdf(1.5)));
});

void test('latentGrid2d spaces k*k points by the inverse normal CDF, top row highest z1', () => {
  const k = 5;
  const g = latentGrid2d(k);
  assert.equal(g.length, 2 * k * k);
  const axis = [0.05, 0.275, 0.5, 0.725, 0.95].map(inverseNormalCdf);
  for (let row = 0; row < k; row++) {
    for (let col = 0; col < k; col++) {
      const at = 2 * (row * k + col);
      assert.ok(Math.abs((g[at] as number) - (axis[col] as number)) < 1e-6);
      assert.ok(Math.abs((g[at + 1] as number) - (axis[k - 1 - row] as number)) < 1e-6);
    }
  }
  assert.ok(Math.abs((g[0] as number) + 1.6448536) < 1e-5);
  assert.ok(Math.abs((g[1] as number) - 1.6448536) < 1e-5);
  assert.deepEqual(Array.from(latentGrid2d(1)), [0, 0]);
  assert.throws(() => latentGrid2d(0), { name: 'DataError' });
});
