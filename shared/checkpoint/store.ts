// Checkpoint directories: one per step, written to a temporary name, fsynced,
// renamed, the parent fsynced; the last K kept. Reading checks every file's
// sha256 and skips a partial or corrupt checkpoint for the previous one.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { CheckpointError } from '../errors.js';
import type { Logger } from '../logger.js';
import { fsyncDir, writeFileSynced } from './fs-atomic.js';
import { CHECKPOINT_FORMAT, manifestSchema, type Manifest } from './manifest.js';
import type { SavedModelFiles } from './artifacts.js';

const STEP_DIR = /^step-(\d{9})$/;

export interface CheckpointState {
  weights: Float32Array;
  adamM: Float32Array;
  adamV: Float32Array;
}

export interface WriteInput {
  manifest: Omit<Manifest, 'files' | 'format' | 'kind' | 'createdAt'>;
  state: CheckpointState;
  model: SavedModelFiles;
  decoder: SavedModelFiles | null;
}

/** Test hook: called after each file is durable, with its relative name; used by the crash-safety suite. */
export type FaultHook = (point: string) => void;

export function stepDirName(step: number): string {
  return `step-${String(step).padStart(9, '0')}`;
}

function f32Bytes(a: Float32Array): Uint8Array {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (endianness() === 'LE') return bytes;
  const out = new Uint8Array(bytes.length);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) dv.setFloat32(i * 4, a[i] as number, true);
  return out;
}

function f32From(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.length / 4);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(i * 4, true);
  return out;
}

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function writeCheckpoint(root: string, input: WriteInput, hook?: FaultHook): string {
  mkdirSync(root, { recursive: true });
  const tmp = join(root, `.tmp-${stepDirName(input.manifest.step)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(tmp);
  const files: Record<string, string> = {};
  const put = (rel: string, data: Uint8Array | string): void => {
    const p = join(tmp, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSynced(p, data);
    files[rel] = sha256(data);
    hook?.(rel);
  };
  put('model/model.json', input.model.modelJson);
  put('model/weights.bin', input.model.weightsBin);
  if (input.decoder !== null) {
    put('decoder/model.json', input.decoder.modelJson);
    put('decoder/weights.bin', input.decoder.weightsBin);
  }
  put('state/weights.f32', f32Bytes(input.state.weights));
  put('state/adam-m.f32', f32Bytes(input.state.adamM));
  put('state/adam-v.f32', f32Bytes(input.state.adamV));
  const manifest: Manifest = { format: CHECKPOINT_FORMAT, kind: 'lockstep-checkpoint', createdAt: new Date().toISOString(), ...input.manifest, files };
  // The manifest goes last: a directory without it is incomplete by construction.
  put('manifest.json', JSON.stringify(manifest, null, 1));
  for (const sub of ['model', 'decoder', 'state']) if (existsSync(join(tmp, sub))) fsyncDir(join(tmp, sub));
  fsyncDir(tmp);
  hook?.('before-rename');
  const final = join(root, stepDirName(input.manifest.step));
  if (existsSync(final)) {
    const trash = join(root, `.trash-${basename(final)}-${randomBytes(4).toString('hex')}`);
    renameSync(final, trash);
    renameSync(tmp, final);
    rmSync(trash, { recursive: true, force: true });
  } else {
    renameSync(tmp, final);
  }
  fsyncDir(root);
  hook?.('after-rename');
  return final;
}

/** Keeps the newest `keep` step directories; removes older ones and leftovers of interrupted writes. */
export function pruneCheckpoints(root: string, keep: number): void {
  if (!existsSync(root)) return;
  const steps = listStepDirs(root);
  for (const name of steps.slice(keep)) {
    // Renamed out of the step-* namespace first: a crash in the middle of the
    // recursive delete then leaves a half-deleted trash directory, never a half-deleted checkpoint.
    const trash = join(root, `.trash-${name}-${randomBytes(4).toString('hex')}`);
    renameSync(join(root, name), trash);
    rmSync(trash, { recursive: true, force: true });
  }
  for (const name of readdirSync(root)) {
    if (name.startsWith('.tmp-') || name.startsWith('.trash-')) {
      // A write in progress in this process never outlives writeCheckpoint, so anything left is a crash leftover.
      rmSync(join(root, name), { recursive: true, force: true });
    }
  }
}

/** Step directory names, newest first. */
export function listStepDirs(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((n) => STEP_DIR.test(n) && statSync(join(root, n)).isDirectory())
    .sort()
    .reverse();
}

/** Validates a step directory: manifest parses and matches the schema, every file exists with its sha256. */
export function validateCheckpoint(dir: string): Manifest {
  const mpath = join(dir, 'manifest.json');
  if (!existsSync(dir)) throw new CheckpointError(`${dir}: no such checkpoint directory`, { notFound: true });
  if (!existsSync(mpath)) throw new CheckpointError(`${dir}: incomplete: manifest.json is missing`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(mpath, 'utf8'));
  } catch (err) {
    throw new CheckpointError(`${dir}: manifest.json is not valid JSON`, { cause: err });
  }
  const res = manifestSchema.safeParse(raw);
  if (!res.success) {
    const issue = res.error.issues[0];
    throw new CheckpointError(`${dir}: manifest.json is invalid at '${issue?.path.join('.') ?? ''}': ${issue?.message ?? 'schema mismatch'}`);
  }
  const m = res.data;
  for (const need of ['model/model.json', 'model/weights.bin', 'state/weights.f32', 'state/adam-m.f32', 'state/adam-v.f32']) {
    if (m.files[need] === undefined) throw new CheckpointError(`${dir}: manifest lists no '${need}'`);
  }
  for (const [rel, want] of Object.entries(m.files)) {
    const p = join(dir, rel);
    if (!existsSync(p)) throw new CheckpointError(`${dir}: file '${rel}' is missing`);
    const got = sha256(readFileSync(p));
    if (got !== want) throw new CheckpointError(`${dir}: file '${rel}' is corrupt: sha256 ${got.slice(0, 12)}… does not match the manifest's ${want.slice(0, 12)}…`);
  }
  const numel = m.model.numParams * 4;
  for (const rel of ['state/weights.f32', 'state/adam-m.f32', 'state/adam-v.f32']) {
    const size = statSync(join(dir, rel)).size;
    if (size !== numel) throw new CheckpointError(`${dir}: '${rel}' holds ${size} bytes, the model needs ${numel}`);
  }
  return m;
}

export interface FoundCheckpoint {
  path: string;
  manifest: Manifest;
  skipped: Array<{ path: string; reason: string }>;
}

/**
 * The newest valid checkpoint under `pathOrRoot` (a checkpoint root, or one step
 * directory). Invalid ones are reported in `skipped` and passed over; none valid is an error.
 */
export function findLatestCheckpoint(pathOrRoot: string, log?: Logger): FoundCheckpoint {
  if (!existsSync(pathOrRoot)) throw new CheckpointError(`${pathOrRoot}: no such checkpoint directory`, { notFound: true });
  const candidates = existsSync(join(pathOrRoot, 'manifest.json')) || STEP_DIR.test(basename(pathOrRoot)) ? [pathOrRoot] : listStepDirs(pathOrRoot).map((n) => join(pathOrRoot, n));
  const skipped: Array<{ path: string; reason: string }> = [];
  for (const path of candidates) {
    try {
      const manifest = validateCheckpoint(path);
      return { path, manifest, skipped };
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      skipped.push({ path, reason });
      log?.warn({ checkpoint: path, reason }, 'skipping invalid checkpoint');
    }
  }
  const why = skipped.length > 0 ? `; skipped: ${skipped.map((s) => s.reason).join(' | ')}` : '';
  throw new CheckpointError(`no valid checkpoint in ${pathOrRoot}${why}`, { notFound: true, details: { skipped } });
}

export function readCheckpointState(path: string): CheckpointState {
  return {
    weights: f32From(readFileSync(join(path, 'state/weights.f32'))),
    adamM: f32From(readFileSync(join(path, 'state/adam-m.f32'))),
    adamV: f32From(readFileSync(join(path, 'state/adam-v.f32'))),
  };
}
