// `lockstep eval` and `lockstep sample`: read a checkpoint, no training.
import { writeFileSync } from 'node:fs';
import type { Options } from '../shared/config/types.js';
import { findLatestCheckpoint, readCheckpointState } from '../shared/checkpoint/store.js';
import { gather, loadMnist } from '../shared/data/mnist.js';
import { CheckpointError } from '../shared/errors.js';
import { renderImages } from '../shared/images/render.js';
import type { Logger } from '../shared/logger.js';
import { createModel } from '../shared/models/factory.js';
import type { ModelBundle } from '../shared/models/types.js';
import { MODELS, ARCHS } from '../shared/config/spec.js';

export function loadCheckpointModel(path: string, log?: Logger): { bundle: ModelBundle; path: string; step: number } {
  const found = findLatestCheckpoint(path, log);
  const m = found.manifest.model;
  if (!(MODELS as readonly string[]).includes(m.kind) || !(ARCHS as readonly string[]).includes(m.arch)) {
    throw new CheckpointError(`${found.path}: unknown model ${m.kind}/${m.arch}`);
  }
  const bundle = createModel({ kind: m.kind as (typeof MODELS)[number], arch: m.arch as (typeof ARCHS)[number], latentDim: m.latentDim, filters: m.filters, hiddenUnits: m.hiddenUnits, seed: m.seed });
  if (bundle.numParams !== m.numParams) {
    bundle.dispose();
    throw new CheckpointError(`${found.path}: holds ${m.numParams} parameters, the model built from its manifest has ${bundle.numParams}`);
  }
  bundle.setFlatWeights(readCheckpointState(found.path).weights);
  return { bundle, path: found.path, step: found.manifest.step };
}

export interface EvalResult {
  checkpoint: string;
  step: number;
  model: string;
  images: number;
  /** Mean per image: sum of squared error (ae) or Bernoulli cross-entropy in nats (vae/cvae). */
  reconstruction: number;
  kl?: number;
  /** vae/cvae: reconstruction + KL, nats per image (single-sample estimate with fixed noise). */
  negElbo?: number;
}

export function evaluateCheckpoint(o: Options, log?: Logger): EvalResult {
  const { bundle, path, step } = loadCheckpointModel(o.checkpoint as string, log);
  try {
    const test = loadMnist({ split: 'test', dataDir: o.dataDir, limit: o.testLimit });
    const sums = { total: 0, reconstruction: 0, kl: 0 };
    const B = 500;
    for (let at = 0; at < test.count; at += B) {
      const idx = Array.from({ length: Math.min(B, test.count - at) }, (_, i) => at + i);
      const l = bundle.evaluate(gather(test, idx), 0);
      sums.total += l.total;
      sums.reconstruction += l.reconstruction;
      sums.kl += l.kl;
    }
    const n = test.count;
    const kind = bundle.options.kind;
    const out: EvalResult = { checkpoint: path, step, model: kind, images: n, reconstruction: sums.reconstruction / n };
    if (kind !== 'ae') {
      out.kl = sums.kl / n;
      out.negElbo = sums.total / n;
    }
    return out;
  } finally {
    bundle.dispose();
  }
}

export function sampleCheckpoint(o: Options, log?: Logger): { out: string; files: string[] } {
  const { bundle } = loadCheckpointModel(o.checkpoint as string, log);
  try {
    const test = loadMnist({ split: 'test', dataDir: o.dataDir, limit: 16 });
    const img = renderImages(bundle, { images: test.images, labels: test.labels, n: test.count, seed: o.seed, perRow: 8, rows: Math.ceil(o.count / 8), ...(o.label === undefined ? {} : { label: o.label }) });
    const base = o.out.replace(/\.png$/i, '');
    const files: string[] = [];
    const main = o.manifold === true && img.manifold !== null ? img.manifold : (img.samples ?? img.reconstructions);
    writeFileSync(o.out, main);
    files.push(o.out);
    writeFileSync(`${base}-reconstructions.png`, img.reconstructions);
    files.push(`${base}-reconstructions.png`);
    if (img.manifold !== null && o.manifold !== true) {
      writeFileSync(`${base}-manifold.png`, img.manifold);
      files.push(`${base}-manifold.png`);
    }
    return { out: o.out, files };
  } finally {
    bundle.dispose();
  }
}
