import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../shared/compute/backend.js';
import { BackendError } from '../../shared/errors.js';
import { createRootLogger } from '../../shared/logger.js';

function capture(): { log: ReturnType<typeof createRootLogger>; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  const log = createRootLogger({ level: 'debug', destination: dest });
  return {
    log,
    lines: () => chunks.join('').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

for (const [choice, pkg] of [['tfjs-node', '@tensorflow/tfjs-node'], ['tfjs-node-gpu', '@tensorflow/tfjs-node-gpu']] as const) {
  void test(`--backend ${choice} either starts or fails with a BackendError naming ${pkg}`, async () => {
    try {
      const info = await selectBackend({ backend: choice });
      assert.equal(info.name, choice); // only where the optional dependency installed with libtensorflow
    } catch (err) {
      assert.ok(err instanceof BackendError, `expected BackendError, got ${String(err)}`);
      assert.equal(err.code, 'BACKEND_UNAVAILABLE');
      assert.match(err.message, new RegExp(pkg.replace('/', '\\/')));
      assert.match(err.message, /cannot load|failed to start/);
    }
  });
}

void test('auto picks the first backend that starts, logs it, and is idempotent', async () => {
  const c = capture();
  const a = await selectBackend({ backend: 'auto', log: c.log });
  const b = await selectBackend({ backend: 'auto' });
  assert.deepEqual(b, a);
  assert.ok(['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'].includes(a.name));
  assert.ok(a.version.length > 0 && a.device.length > 0);
  const selected = c.lines().find((l) => l['msg'] === 'compute backend selected');
  assert.ok(selected !== undefined, 'an info line names the backend');
  assert.equal(selected['backend'], a.name);
  assert.equal(selected['version'], a.version);
  assert.equal(selected['device'], a.device);
  assert.equal(selected['level'], 30);
  if (a.name === 'wasm') {
    assert.equal(tf.getBackend(), 'wasm');
    // The skipped native backends are explained at debug level.
    assert.ok(c.lines().some((l) => l['backend'] === 'tfjs-node' && typeof l['reason'] === 'string'));
  }
});

void test('wasm, then cpu, then wasm again; tensors work on each', async () => {
  const w = await selectBackend({ backend: 'wasm' });
  assert.equal(w.name, 'wasm');
  assert.equal(w.version, '4.22.0');
  assert.match(w.device, /wasm/);
  assert.deepEqual(Array.from(tf.add(tf.tensor1d([1, 2]), 1).dataSync()), [2, 3]);
  const c = await selectBackend({ backend: 'cpu' });
  assert.equal(c.name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.deepEqual(Array.from(tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync()), [11]);
  const w2 = await selectBackend({ backend: 'wasm' });
  assert.deepEqual(w2, w);
  assert.equal(tf.getBackend(), 'wasm');
  assert.ok(tf.getKernel('Conv2DBackpropFilter', 'wasm') !== undefined, 'the project kernels are in place');
});

void test('an unknown backend is a BackendError', async () => {
  await assert.rejects(selectBackend({ backend: 'webgpu' as 'wasm' }), (err: unknown) => err instanceof BackendError && /unknown backend 'webgpu'/.test(err.message));
});
