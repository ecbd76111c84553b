// Every kernel this project registers for wasm, against tfjs's cpu backend on
// small shapes, for the strides and paddings the models use (stride 1 'same')
// and the general cases the kernels claim (stride 2, 'valid', other windows).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../shared/compute/backend.js';
import {
  conv2DBackpropFilterKernel,
  registerWasmKernels,
  WASM_KERNELS,
  type FilterGradStrategy,
} from '../../shared/compute/kernels/index.js';

/** Deterministic values in [-1, 1) (optionally with exact zeros, to create max-pool ties). */
function values(n: number, seed: number, zeroFraction = 0): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = s / 4294967296;
    out[i] = u < zeroFraction ? 0 : u * 2 - 1;
  }
  return out;
}

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** max |a - b| / max |b|: agreement up to float32 rounding means ~1e-7, we allow 1e-5. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs((a[i] as number) - (b[i] as number)));
    den = Math.max(den, Math.abs(b[i] as number));
  }
  return num / (den === 0 ? 1 : den);
}

/** Runs fn on a backend and returns the result's values (tensors created inside are disposed). */
async function on(backend: 'wasm' | 'cpu', fn: () => tf.Tensor): Promise<Float32Array> {
  await tf.setBackend(backend);
  const out = tf.tidy(fn);
  const data = Float32Array.from(out.dataSync());
  out.dispose();
  await tf.setBackend('wasm');
  return data;
}

async function agree(name: string, fn: () => tf.Tensor, tol = 1e-5): Promise<void> {
  const w = await on('wasm', fn);
  const c = await on('cpu', fn);
  const e = relErr(w, c);
  assert.ok(e <= tol, `${name}: wasm vs cpu relative error ${e.toExponential(2)} > ${tol}`);
}

interface ConvCase {
  b: number; h: number; w: number; ci: number; co: number; k: number; s: number; pad: 'same' | 'valid';
}
const convCases: ConvCase[] = [
  // The models: 3x3, stride 1, 'same', with ci = 1 (first conv), co = 1 (last conv) and wide layers.
  { b: 2, h: 8, w: 8, ci: 1, co: 6, k: 3, s: 1, pad: 'same' },
  { b: 2, h: 8, w: 8, ci: 6, co: 1, k: 3, s: 1, pad: 'same' },
  { b: 3, h: 8, w: 8, ci: 8, co: 8, k: 3, s: 1, pad: 'same' },
  { b: 2, h: 4, w: 4, ci: 5, co: 7, k: 3, s: 1, pad: 'same' },
  // General cases.
  { b: 2, h: 8, w: 8, ci: 3, co: 5, k: 3, s: 1, pad: 'valid' },
  { b: 2, h: 9, w: 9, ci: 3, co: 5, k: 3, s: 2, pad: 'same' },
  { b: 2, h: 8, w: 8, ci: 3, co: 5, k: 3, s: 2, pad: 'same' },
  { b: 2, h: 9, w: 9, ci: 3, co: 5, k: 3, s: 2, pad: 'valid' },
  { b: 2, h: 8, w: 7, ci: 4, co: 2, k: 3, s: 2, pad: 'valid' },
  { b: 1, h: 7, w: 6, ci: 2, co: 3, k: 5, s: 1, pad: 'same' },
  { b: 2, h: 6, w: 6, ci: 3, co: 4, k: 2, s: 2, pad: 'same' },
];

function label(c: ConvCase): string {
  return `x[${c.b},${c.h},${c.w},${c.ci}] k${c.k} co${c.co} s${c.s} ${c.pad}`;
}

function convData(c: ConvCase) {
  const xShape = [c.b, c.h, c.w, c.ci];
  const fShape = [c.k, c.k, c.ci, c.co];
  const oh = c.pad === 'same' ? Math.ceil(c.h / c.s) : Math.ceil((c.h - c.k + 1) / c.s);
  const ow = c.pad === 'same' ? Math.ceil(c.w / c.s) : Math.ceil((c.w - c.k + 1) / c.s);
  const dyShape = [c.b, oh, ow, c.co];
  return {
    xShape, fShape, dyShape,
    x: values(size(xShape), 1),
    f: values(size(fShape), 2),
    dy: values(size(dyShape), 3),
  };
}

/** dL/dW for L = sum(conv2d(x, W) * dy): runs the Conv2DBackpropFilter kernel. */
function filterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, fShape: number[], c: ConvCase): tf.Tensor {
  const g = tf.grad((f: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, f as tf.Tensor4D, c.s, c.pad), dy)));
  return g(tf.zeros(fShape));
}

before(async () => {
  await selectBackend({ backend: 'wasm' });
});

void describe('registration', () => {
  void test('registerWasmKernels is idempotent and installs every kernel it names', () => {
    const first = WASM_KERNELS.map((k) => tf.getKernel(k, 'wasm')?.kernelFunc);
    registerWasmKernels();
    registerWasmKernels();
    const second = WASM_KERNELS.map((k) => tf.getKernel(k, 'wasm')?.kernelFunc);
    for (let i = 0; i < WASM_KERNELS.length; i++) {
      assert.ok(first[i] !== undefined, `${WASM_KERNELS[i]} is registered`);
      assert.equal(second[i], first[i], `${WASM_KERNELS[i]} was not wrapped twice`);
    }
  });
});

void describe('Conv2DBackpropFilter', () => {
  for (const c of convCases) {
    void test(`registered kernel (auto) ${label(c)}`, async () => {
      const d = convData(c);
      await agree(label(c), () => {
        const x = tf.tensor4d(d.x, d.xShape as [number, number, number, number]);
        const dy = tf.tensor4d(d.dy, d.dyShape as [number, number, number, number]);
        return filterGrad(x, dy, d.fShape, c);
      });
    });
  }
  const strategies: FilterGradStrategy[] = ['swapped', 'im2col-x', 'im2col-x-t', 'im2col-dy', 'im2col-dy-t'];
  for (const strategy of strategies) {
    void test(`strategy ${strategy} on every case`, async () => {
      const kernel = conv2DBackpropFilterKernel(strategy);
      for (const c of convCases) {
        const d = convData(c);
        const ref = await on('cpu', () => {
          const x = tf.tensor4d(d.x, d.xShape as [number, number, number, number]);
          const dy = tf.tensor4d(d.dy, d.dyShape as [number, number, number, number]);
          return filterGrad(x, dy, d.fShape, c);
        });
        const x = tf.tensor4d(d.x, d.xShape as [number, number, number, number]);
        const dy = tf.tensor4d(d.dy, d.dyShape as [number, number, number, number]);
        const info = kernel({ inputs: { x, dy }, backend: tf.backend(), attrs: { strides: [c.s, c.s], pad: c.pad, dataFormat: 'NHWC', filterShape: d.fShape } });
        const out = tf.engine().makeTensorFromTensorInfo(info);
        assert.deepEqual(out.shape, d.fShape);
        const e = relErr(out.dataSync(), ref);
        tf.dispose([x, dy, out]);
        assert.ok(e <= 1e-5, `${strategy} ${label(c)}: relative error ${e.toExponential(2)}`);
      }
    });
  }
});

void describe('Conv2DBackpropInput', () => {
  for (const c of convCases) {
    void test(label(c), async () => {
      const d = convData(c);
      await agree(label(c), () => {
        const f = tf.tensor4d(d.f, d.fShape as [number, number, number, number]);
        const dy = tf.tensor4d(d.dy, d.dyShape as [number, number, number, number]);
        return tf.conv2dTranspose(dy, f, d.xShape as [number, number, number, number], c.s, c.pad);
      });
    });
  }
});

void describe('Conv2D / FusedConv2D with few output channels', () => {
  const cases: ConvCase[] = [
    { b: 2, h: 8, w: 8, ci: 8, co: 1, k: 3, s: 1, pad: 'same' },
    { b: 2, h: 8, w: 8, ci: 9, co: 3, k: 3, s: 1, pad: 'same' },
    { b: 2, h: 9, w: 9, ci: 8, co: 2, k: 3, s: 2, pad: 'same' },
    { b: 2, h: 9, w: 8, ci: 8, co: 4, k: 3, s: 2, pad: 'valid' },
    { b: 1, h: 7, w: 7, ci: 12, co: 1, k: 5, s: 1, pad: 'valid' },
  ];
  for (const c of cases) {
    void test(`conv2d ${label(c)}`, async () => {
      const d = convData(c);
      await agree(label(c), () => tf.conv2d(tf.tensor4d(d.x, d.xShape as [number, number, number, number]), tf.tensor4d(d.f, d.fShape as [number, number, number, number]), c.s, c.pad));
    });
    for (const activation of ['linear', 'relu'] as const) {
      void test(`fused conv2d + bias + ${activation} ${label(c)}`, async () => {
        const d = convData(c);
        await agree(label(c), () => tf.fused.conv2d({
          x: tf.tensor4d(d.x, d.xShape as [number, number, number, number]),
          filter: tf.tensor4d(d.f, d.fShape as [number, number, number, number]),
          strides: c.s,
          pad: c.pad,
          bias: tf.tensor1d(values(c.co, 9)),
          activation,
        }));
      });
    }
  }
  void test('fused conv2d with a scalar-shaped bias and the stock path (sigmoid) still agree', async () => {
    const c = cases[0] as ConvCase;
    const d = convData(c);
    await agree('scalar bias', () => tf.fused.conv2d({
      x: tf.tensor4d(d.x, d.xShape as [number, number, number, number]),
      filter: tf.tensor4d(d.f, d.fShape as [number, number, number, number]),
      strides: 1, pad: 'same', bias: tf.tensor1d([0.25]), activation: 'linear',
    }));
    await agree('sigmoid', () => tf.fused.conv2d({
      x: tf.tensor4d(d.x, d.xShape as [number, number, number, number]),
      filter: tf.tensor4d(d.f, d.fShape as [number, number, number, number]),
      strides: 1, pad: 'same', bias: tf.tensor1d([0.25]), activation: 'sigmoid',
    }));
  });
});

void describe('BatchMatMul / _FusedMatMul with transposes', () => {
  for (const ta of [false, true]) {
    for (const tb of [false, true]) {
      void test(`matMul transposeA=${ta} transposeB=${tb}`, async () => {
        const a = values(7 * 5, 4);
        const b = values(5 * 6, 5);
        await agree('matMul', () => tf.matMul(tf.tensor2d(a, ta ? [5, 7] : [7, 5]), tf.tensor2d(b, tb ? [6, 5] : [5, 6]), ta, tb));
        const a3 = values(3 * 4 * 5, 6);
        const b3 = values(3 * 5 * 2, 7);
        await agree('batched', () => tf.matMul(tf.tensor3d(a3, ta ? [3, 5, 4] : [3, 4, 5]), tf.tensor3d(b3, tb ? [3, 2, 5] : [3, 5, 2]), ta, tb));
        await agree('fused', () => tf.fused.matMul({
          a: tf.tensor2d(a, ta ? [5, 7] : [7, 5]),
          b: tf.tensor2d(b, tb ? [6, 5] : [5, 6]),
          transposeA: ta, transposeB: tb,
          bias: tf.tensor1d(values(6, 8)),
          activation: 'relu',
        }));
      });
    }
  }
  void test('dense-layer gradients (the transposed products) agree', async () => {
    const x = values(4 * 6, 11);
    const w = values(6 * 3, 12);
    for (const which of [0, 1]) {
      await agree(`grad ${which}`, () => {
        const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.tanh(tf.matMul(a, b))));
        return g([tf.tensor2d(x, [4, 6]), tf.tensor2d(w, [6, 3])])[which] as tf.Tensor;
      });
    }
  });
});

void describe('MaxPoolGrad', () => {
  const cases: Array<{ shape: [number, number, number, number]; k: number; s: number; pad: 'same' | 'valid'; zeros: number }> = [
    { shape: [2, 8, 8, 3], k: 2, s: 2, pad: 'valid', zeros: 0 },
    { shape: [2, 8, 8, 3], k: 2, s: 2, pad: 'valid', zeros: 0.6 },
    { shape: [2, 7, 9, 3], k: 2, s: 2, pad: 'valid', zeros: 0 },
    { shape: [2, 7, 7, 2], k: 3, s: 1, pad: 'same', zeros: 0.3 },
    { shape: [2, 7, 8, 2], k: 3, s: 2, pad: 'same', zeros: 0 },
    { shape: [1, 6, 6, 2], k: 2, s: 1, pad: 'valid', zeros: 0.5 },
  ];
  for (const c of cases) {
    void test(`${JSON.stringify(c.shape)} k${c.k} s${c.s} ${c.pad} zeros=${c.zeros}`, async () => {
      const x = values(size(c.shape), 21, c.zeros);
      await agree('maxPool grad', () => {
        const g = tf.grad((t: tf.Tensor) => {
          const y = tf.maxPool(t as tf.Tensor4D, c.k, c.s, c.pad);
          return tf.sum(tf.mul(y, tf.range(1, 1 + size(y.shape)).reshape(y.shape)));
        });
        return g(tf.tensor4d(x, c.shape));
      });
    });
  }
});

void describe('ResizeNearestNeighborGrad', () => {
  // Reference from the forward mapping itself: the cpu backend's grad kernel reads dy
  // with the images' batch stride (tfjs 4.22), so it is wrong for batch > 1 when upscaling.
  function referenceGrad(shape: [number, number, number, number], out: [number, number], alignCorners: boolean, dy: Float32Array): Float32Array {
    const [B, h, w, C] = shape;
    const [H, W] = out;
    const src = (d: number, inSize: number, outSize: number): number => {
      if (alignCorners && outSize > 1) return Math.min(inSize - 1, Math.round((d * (inSize - 1)) / (outSize - 1)));
      return Math.min(inSize - 1, Math.floor((d * inSize) / outSize));
    };
    const dx = new Float32Array(B * h * w * C);
    for (let b = 0; b < B; b++) for (let r = 0; r < H; r++) for (let q = 0; q < W; q++) {
      const i = src(r, h, H);
      const j = src(q, w, W);
      for (let c = 0; c < C; c++) dx[((b * h + i) * w + j) * C + c] = (dx[((b * h + i) * w + j) * C + c] as number) + (dy[((b * H + r) * W + q) * C + c] as number);
    }
    return dx;
  }
  const cases: Array<{ shape: [number, number, number, number]; out: [number, number]; alignCorners: boolean }> = [
    { shape: [2, 4, 4, 3], out: [8, 8], alignCorners: false },
    { shape: [2, 3, 5, 2], out: [9, 10], alignCorners: false },
    { shape: [2, 4, 4, 2], out: [6, 7], alignCorners: false },
    { shape: [2, 4, 4, 2], out: [8, 8], alignCorners: true },
  ];
  for (const c of cases) {
    void test(`${JSON.stringify(c.shape)} -> ${JSON.stringify(c.out)} alignCorners=${c.alignCorners}`, async () => {
      const x = values(size(c.shape), 31);
      const dyShape: [number, number, number, number] = [c.shape[0], c.out[0], c.out[1], c.shape[3]];
      const dy = values(size(dyShape), 32);
      // The forward mappings agree, so the reference above is the gradient of what both compute.
      await agree('resize forward', () => tf.image.resizeNearestNeighbor(tf.tensor4d(x, c.shape), c.out, c.alignCorners));
      const got = await on('wasm', () => {
        const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.image.resizeNearestNeighbor(t as tf.Tensor4D, c.out, c.alignCorners), tf.tensor4d(dy, dyShape))));
        return g(tf.tensor4d(x, c.shape));
      });
      const e = relErr(got, referenceGrad(c.shape, c.out, c.alignCorners, dy));
      assert.ok(e <= 1e-6, `relative error ${e.toExponential(2)}`);
    });
  }
  void test('UpSampling2D gradient (what the decoder uses), batch 1 against cpu', async () => {
    const x = values(1 * 4 * 4 * 3, 33);
    await agree('upsampling', () => {
      const layer = tf.layers.upSampling2d({ size: [2, 2] });
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.square(layer.apply(t) as tf.Tensor)));
      return g(tf.tensor4d(x, [1, 4, 4, 3]));
    });
  });
});

void describe('Identity / Cast', () => {
  void test('clone shares data without changing values; disposing either keeps the other', async () => {
    const a = tf.tensor1d([1, 2, 3]);
    const b = a.clone();
    a.dispose();
    assert.deepEqual(Array.from(b.dataSync()), [1, 2, 3]);
    b.dispose();
  });
  void test('same-dtype cast and real conversions', async () => {
    const v = [1.5, -2.5, 0, 3.25];
    await agree('float->float', () => tf.cast(tf.tensor1d(v), 'float32').add(1));
    await agree('float->int', () => tf.cast(tf.cast(tf.tensor1d(v), 'int32'), 'float32'));
    const i = tf.tensor1d([1, 2, 3], 'int32');
    const same = tf.cast(i, 'int32');
    assert.equal(same.dtype, 'int32');
    assert.deepEqual(Array.from(same.dataSync()), [1, 2, 3]);
    tf.dispose([i, same]);
  });
});

void describe('Slice', () => {
  const x4 = values(3 * 6 * 5 * 4, 41);
  const cases: Array<{ begin: number[]; size: number[] }> = [
    { begin: [0, 1, 1, 0], size: [3, 4, 3, 4] },
    { begin: [1, 0, 0, 0], size: [2, 6, 5, 4] },
    { begin: [0, 2, 0, 1], size: [3, 2, 5, 2] },
    { begin: [2, 5, 4, 3], size: [1, 1, 1, 1] },
    { begin: [0, 0, 0, 0], size: [-1, 3, -1, -1] },
  ];
  for (const c of cases) {
    void test(`4-D begin ${JSON.stringify(c.begin)} size ${JSON.stringify(c.size)}`, async () => {
      await agree('slice', () => tf.slice(tf.tensor4d(x4, [3, 6, 5, 4]), c.begin, c.size));
    });
  }
  void test('1-D, 2-D, 3-D, 5-D and int32', async () => {
    await agree('1d', () => tf.slice(tf.tensor1d(values(10, 42)), [3], [4]));
    await agree('2d', () => tf.slice(tf.tensor2d(values(80, 43), [8, 10]), [1, 2], [5, 6]));
    await agree('3d', () => tf.slice(tf.tensor3d(values(120, 44), [4, 5, 6]), [1, 1, 2], [2, 3, 4]));
    await agree('5d', () => tf.slice(tf.tensor(values(240, 45), [2, 3, 4, 5, 2]), [1, 0, 1, 2, 0], [1, 3, 2, 3, 2]));
    await agree('int32', () => tf.cast(tf.slice(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3], 'int32'), [0, 1], [2, 2]), 'float32'));
    await agree('cropping2d', () => tf.layers.cropping2D({ cropping: 2 }).apply(tf.tensor4d(values(2 * 8 * 8 * 1, 46), [2, 8, 8, 1])) as tf.Tensor);
  });
});
