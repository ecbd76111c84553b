// Loss terms against values computed by hand, and the VAE bundle's evaluate() on a
// tiny configuration whose every term is also computed by hand.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../shared/compute/backend.js';
import { createModel } from '../../shared/models/factory.js';
import { aeLossSums, perImageBernoulliNll, perImageGaussianKl, perImageSquaredError, reparameterize, vaeLossSums } from '../../shared/models/losses.js';
import { imageNoise } from '../../shared/models/noise.js';

const close = (a: number, b: number, tol = 1e-5): void => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} != ${b}`);
const softplus = (l: number): number => Math.log1p(Math.exp(l));

before(async () => {
  await selectBackend({ backend: 'wasm' });
});

void test('Bernoulli NLL with logits by hand', () => {
  // l = 0, x = 0: log 2; l = 2, x = 1: log(1 + e^-2); l = -1, x = 0.5: 0.5 + log(1 + e^-1).
  const want0 = Math.log(2) + Math.log1p(Math.exp(-2)) + 0.5 + Math.log1p(Math.exp(-1));
  const want1 = softplus(3) - 3 * 0.25 + softplus(-4) + softplus(0.5) - 0.5;
  const v = tf.tidy(() => perImageBernoulliNll(tf.tensor2d([[0, 2, -1], [3, -4, 0.5]]), tf.tensor2d([[0, 1, 0.5], [0.25, 0, 1]])).arraySync());
  close(v[0] as number, want0);
  close(v[1] as number, want1);
  assert.ok(Math.abs(want0 - 1.6333372) < 1e-6);
});

void test('Bernoulli NLL is finite and accurate for large logits', () => {
  const v = tf.tidy(() => perImageBernoulliNll(tf.tensor2d([[100, -100, 30]]), tf.tensor2d([[1, 1, 0]])).arraySync());
  close(v[0] as number, Math.exp(-100) + 100 + 30, 1e-6);
});

void test('Gaussian KL by hand', () => {
  // mu = (0.5, -1), logvar = (0, ln 2): -1/2 [(1 + 0 - 0.25 - 1) + (1 + ln2 - 1 - 2)] = 0.7784264
  const v = tf.tidy(() => perImageGaussianKl(tf.tensor2d([[0.5, -1], [0, 0]]), tf.tensor2d([[0, Math.log(2)], [0, 0]])).arraySync());
  close(v[0] as number, 0.7784264);
  close(v[1] as number, 0);
});

void test('squared error, reparameterisation and the summed loss objects', () => {
  const se = tf.tidy(() => perImageSquaredError(tf.tensor2d([[0.5, 1], [0, 0]]), tf.tensor2d([[0, 0], [0.25, 1]])).arraySync());
  close(se[0] as number, 1.25);
  close(se[1] as number, 1.0625);
  const z = tf.tidy(() => reparameterize(tf.tensor2d([[1, -1]]), tf.tensor2d([[0, Math.log(4)]]), tf.tensor2d([[0.5, -0.5]])).arraySync()) as number[][];
  close((z[0] as number[])[0] as number, 1.5);
  close((z[0] as number[])[1] as number, -2);
  const ae = aeLossSums(tf.tensor2d([[0.5, 1], [0, 0]]), tf.tensor2d([[0, 0], [0.25, 1]]));
  close(ae.total.dataSync()[0] as number, 2.3125);
  close(ae.reconstruction.dataSync()[0] as number, 2.3125);
  close(ae.kl.dataSync()[0] as number, 0);
  const vae = vaeLossSums(tf.tensor2d([[0, 2, -1]]), tf.tensor2d([[0, 1, 0.5]]), tf.tensor2d([[0.5, -1]]), tf.tensor2d([[0, Math.log(2)]]));
  close(vae.reconstruction.dataSync()[0] as number, 1.6333372);
  close(vae.kl.dataSync()[0] as number, 0.7784264);
  close(vae.total.dataSync()[0] as number, 1.6333372 + 0.7784264);
  tf.dispose([ae.total, ae.reconstruction, ae.kl, vae.total, vae.reconstruction, vae.kl]);
});

void test('VAE bundle: KL and reconstruction of a tiny configuration match hand-computed values', () => {
  // mlp vae with 1 hidden unit and latent 2. All kernels zero, so mu and logvar are
  // their biases for every image, the decoder's hidden unit is tanh(0) = 0 and each
  // pixel's logit is the output bias b_p: everything is computable by hand.
  const bundle = createModel({ kind: 'vae', arch: 'mlp', latentDim: 2, filters: 1, hiddenUnits: 1, seed: 5 });
  try {
    const w = new Float32Array(bundle.numParams);
    const muBias = [0.5, -1];
    const lvBias = [0, Math.log(2)];
    const outBias = Array.from({ length: 784 }, (_, p) => ((p % 7) - 3) * 0.5);
    for (const p of bundle.paramShapes) {
      if (p.name === 'enc_mu/bias') muBias.forEach((v, i) => (w[p.offset + i] = v));
      if (p.name === 'enc_logvar/bias') lvBias.forEach((v, i) => (w[p.offset + i] = v));
      if (p.name === 'dec_out/bias') outBias.forEach((v, i) => (w[p.offset + i] = v));
    }
    bundle.setFlatWeights(w);
    const n = 2;
    const images = Float32Array.from({ length: n * 784 }, (_, i) => ((i * 37) % 11) / 10);
    let recon = 0;
    for (let i = 0; i < n; i++) {
      for (let p = 0; p < 784; p++) {
        const l = outBias[p] as number;
        const x = images[i * 784 + p] as number;
        recon += Math.max(l, 0) - l * x + Math.log1p(Math.exp(-Math.abs(l)));
      }
    }
    const klPerImage = -0.5 * ((1 + 0 - 0.25 - 1) + (1 + Math.log(2) - 1 - 2));
    const loss = bundle.evaluate({ images, labels: new Uint8Array(n), indices: Int32Array.from([3, 9]), n }, 0);
    close(loss.kl, n * klPerImage);
    close(loss.reconstruction, recon);
    close(loss.total, recon + n * klPerImage);
    // The gradient of the sum w.r.t. the logvar bias is n * d/dlv KL = n * -1/2 (1 - e^lv) per dim,
    // since the reconstruction does not depend on z here (decoder kernels are zero).
    const g = bundle.gradientSum({ images, labels: new Uint8Array(n), indices: Int32Array.from([3, 9]), n }, 0);
    const lv = bundle.paramShapes.find((p) => p.name === 'enc_logvar/bias');
    assert.ok(lv !== undefined);
    close(g.grad[lv.offset] as number, n * -0.5 * (1 - 1), 1e-6);
    close(g.grad[lv.offset + 1] as number, n * -0.5 * (1 - 2), 1e-5);
    // Now let the decoder depend on z: hidden = tanh(a . z), logit_p = b_p + c_p * hidden,
    // with z = mu + exp(logvar / 2) * eps and eps = imageNoise(seed, step, image index).
    const a = [0.7, -0.4];
    const cOut = Array.from({ length: 784 }, (_, p) => ((p % 5) - 2) * 0.3);
    for (const p of bundle.paramShapes) {
      if (p.name === 'dec_hidden/kernel') a.forEach((v, i) => (w[p.offset + i] = v));
      if (p.name === 'dec_out/kernel') cOut.forEach((v, i) => (w[p.offset + i] = v));
    }
    bundle.setFlatWeights(w);
    const step = 17;
    const indices = Int32Array.from([3, 59999]);
    let recon2 = 0;
    for (let i = 0; i < n; i++) {
      const eps = imageNoise(5, step, indices[i] as number, 2);
      const z = [0, 1].map((k) => (muBias[k] as number) + Math.exp((lvBias[k] as number) / 2) * (eps[k] as number));
      const hidden = Math.tanh((a[0] as number) * (z[0] as number) + (a[1] as number) * (z[1] as number));
      for (let p = 0; p < 784; p++) {
        const l = (outBias[p] as number) + (cOut[p] as number) * hidden;
        const x = images[i * 784 + p] as number;
        recon2 += Math.max(l, 0) - l * x + Math.log1p(Math.exp(-Math.abs(l)));
      }
    }
    const loss2 = bundle.evaluate({ images, labels: new Uint8Array(n), indices, n }, step);
    close(loss2.reconstruction, recon2);
    close(loss2.kl, n * klPerImage);
    assert.ok(Math.abs(loss2.reconstruction - recon) > 1e-3, 'the decoder now depends on the sample');
  } finally {
    bundle.dispose();
  }
});
