// The coordinator's side of checkpoints: what goes into one, and resuming from one.
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Options } from '../config/types.js';
import { CheckpointError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ModelBundle } from '../models/types.js';
import { captureModelFiles } from './artifacts.js';
import type { Manifest } from './manifest.js';
import { findLatestCheckpoint, listStepDirs, pruneCheckpoints, readCheckpointState, writeCheckpoint, type FaultHook } from './store.js';
import { fsyncDir, writeFileSynced } from './fs-atomic.js';
import type { TrainingCore } from '../train/core.js';
import type { StepPlanner } from '../train/plan.js';

/** Options that must match between a checkpoint and the run resuming it. */
const MUST_MATCH = ['model', 'arch', 'latentDim', 'filters', 'hiddenUnits', 'seed', 'batchSize', 'trainLimit', 'lr'] as const;

export function checkpointConfig(o: Options): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of MUST_MATCH) out[k] = o[k] ?? null;
  out.job = o.job;
  if (o.steps !== undefined) out.steps = o.steps;
  if (o.epochs !== undefined) out.epochs = o.epochs;
  return out;
}

export interface ResumePoint {
  path: string;
  manifest: Manifest;
  weights: Float32Array;
  adam: { t: number; m: Float32Array; v: Float32Array };
}

/**
 * `--resume auto` (for restarts under Kubernetes or the launcher): resume when the
 * checkpoint directory holds any checkpoint, start fresh when it holds none. A plain
 * `--resume` with nothing to resume from is an error, never a silent fresh start.
 */
export function wantsResume(o: Options): boolean {
  if (o.resume === undefined || o.resume === false) return false;
  if (o.resume === 'auto') return listStepDirs(o.checkpointDir).length > 0;
  return true;
}

export function loadResumePoint(o: Options, numParams: number, datasetSize: number, log: Logger): ResumePoint {
  const where = typeof o.resume === 'string' && o.resume !== 'auto' ? o.resume : o.checkpointDir;
  const found = findLatestCheckpoint(where, log);
  const m = found.manifest;
  for (const k of MUST_MATCH) {
    const want = o[k] ?? null;
    if (m.config[k] !== want) {
      throw new CheckpointError(`${found.path}: was written with --${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} ${String(m.config[k])}, this run has ${String(want)}; resume with the same settings`);
    }
  }
  if (m.model.numParams !== numParams) throw new CheckpointError(`${found.path}: holds ${m.model.numParams} parameters, the model has ${numParams}`);
  if (m.cursor.datasetSize !== datasetSize) throw new CheckpointError(`${found.path}: was trained on ${m.cursor.datasetSize} images, this run has ${datasetSize}`);
  const state = readCheckpointState(found.path);
  log.info({ checkpoint: found.path, step: m.step, term: m.term, skipped: found.skipped.length }, 'resuming from checkpoint');
  return { path: found.path, manifest: m, weights: state.weights, adam: { t: m.optimizer.t, m: state.adamM, v: state.adamV } };
}

/** The term survives restarts even before the first checkpoint, so a new coordinator always outranks the old. */
export function nextTerm(checkpointDir: string, atLeast: number): number {
  mkdirSync(checkpointDir, { recursive: true });
  const file = join(checkpointDir, 'TERM');
  let prev = 0;
  if (existsSync(file)) {
    const n = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    if (Number.isFinite(n)) prev = n;
  }
  const term = Math.max(prev, atLeast) + 1;
  writeFileSynced(`${file}.tmp`, String(term));
  // rename is atomic; a torn TERM file would only lower the term, which the max above tolerates.
  renameSync(`${file}.tmp`, file);
  fsyncDir(checkpointDir);
  return term;
}

export interface SaveInput {
  o: Options;
  term: number;
  step: number;
  planner: StepPlanner;
  core: TrainingCore;
  bundle: ModelBundle;
  losses: Array<number | null>;
  samples: number;
  hook?: FaultHook;
}

export async function saveCheckpoint(s: SaveInput): Promise<string> {
  s.bundle.setFlatWeights(s.core.weights);
  const model = await captureModelFiles(s.bundle.model);
  const decoder = s.bundle.decoder === null ? null : await captureModelFiles(s.bundle.decoder);
  const epoch = Math.floor(s.step / s.planner.stepsPerEpoch);
  const adam = s.core.adam;
  const path = writeCheckpoint(
    s.o.checkpointDir,
    {
      manifest: {
        job: s.o.job,
        term: s.term,
        step: s.step,
        epoch,
        cursor: { batchInEpoch: s.step - epoch * s.planner.stepsPerEpoch, stepsPerEpoch: s.planner.stepsPerEpoch, datasetSize: s.planner.options.datasetSize },
        rng: { algorithm: 'lockstep-hash32', seed: s.o.seed },
        config: checkpointConfig(s.o),
        model: { kind: s.o.model, arch: s.o.arch, numParams: s.bundle.numParams, latentDim: s.o.latentDim, filters: s.o.filters, hiddenUnits: s.o.hiddenUnits, seed: s.o.seed },
        optimizer: { name: 'adam', t: adam.state.t, lr: adam.lr, beta1: adam.beta1, beta2: adam.beta2, epsilon: adam.epsilon },
        losses: s.losses,
        samples: s.samples,
      },
      state: { weights: s.core.weights, adamM: adam.state.m, adamV: adam.state.v },
      model,
      decoder,
    },
    s.hook,
  );
  pruneCheckpoints(s.o.checkpointDir, s.o.keepCheckpoints);
  return path;
}
