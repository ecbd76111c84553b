// Compute-backend selection: --backend auto|tfjs-node-gpu|tfjs-node|wasm|cpu.
// The two native packages are optionalDependencies whose install downloads
// libtensorflow; where that failed they are absent or cannot load, so they are
// required lazily inside try/catch and `auto` falls through to wasm, then cpu.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import { BackendError } from '../errors.js';
import type { Logger } from '../logger.js';
import { registerWasmKernels } from './kernels/index.js';

export type BackendChoice = 'auto' | 'tfjs-node-gpu' | 'tfjs-node' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'];

export interface BackendInfo {
  /** What was selected: 'tfjs-node-gpu' | 'tfjs-node' | 'wasm' | 'cpu'. */
  name: string;
  /** Version of the package providing the backend. */
  version: string;
  /** Human-readable device, e.g. 'GPU 0: NVIDIA H200' or 'cpu: AMD EPYC x2 (wasm simd)'. */
  device: string;
}

export interface SelectBackendOptions {
  backend: BackendChoice;
  log?: Logger;
}

type Concrete = Exclude<BackendChoice, 'auto'>;

const nodeRequire = createRequire(__filename);

function cpuDevice(suffix: string): string {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() ?? 'unknown cpu';
  return `cpu: ${model} x${cpus.length}${suffix}`;
}

/** A GPU is present if the driver's device node exists or nvidia-smi lists one. */
export function detectGpu(): { present: boolean; name: string | null } {
  let name: string | null = null;
  try {
    const r = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 5000 });
    if (r.status === 0 && typeof r.stdout === 'string') {
      const first = r.stdout.split('\n').find((l) => l.startsWith('GPU '));
      if (first !== undefined) name = first.replace(/\s*\(UUID:.*\)\s*$/, '').trim();
    }
  } catch {
    // nvidia-smi absent: fall back to the device node.
  }
  return { present: name !== null || existsSync('/dev/nvidia0'), name };
}

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const first = err.message.split('\n')[0] ?? err.message;
    return code === 'MODULE_NOT_FOUND' ? `${first} (the optional dependency is not installed)` : first;
  }
  return String(err);
}

async function useNative(pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node', name: Concrete): Promise<BackendInfo> {
  let mod: { version?: Record<string, string> };
  try {
    mod = nodeRequire(pkg) as { version?: Record<string, string> };
  } catch (err) {
    throw new BackendError(`cannot load ${pkg}: ${describeError(err)}`, { cause: err, details: { backend: name, package: pkg } });
  }
  // The native packages register the 'tensorflow' backend with the shared tfjs-core.
  let ok = false;
  try {
    ok = await tf.setBackend('tensorflow');
  } catch (err) {
    throw new BackendError(`${pkg} loaded but its 'tensorflow' backend failed to start: ${describeError(err)}`, { cause: err, details: { backend: name, package: pkg } });
  }
  if (!ok) throw new BackendError(`${pkg} loaded but its 'tensorflow' backend failed to start`, { details: { backend: name, package: pkg } });
  await tf.ready();
  const version = mod.version?.['tfjs-node'] ?? mod.version?.['tfjs-core'] ?? tf.version_core;
  let device: string;
  if (name === 'tfjs-node-gpu') {
    const gpu = detectGpu();
    device = gpu.name ?? 'gpu';
  } else {
    device = cpuDevice(' (libtensorflow)');
  }
  return { name, version, device };
}

/** Directory holding the .wasm binaries, with the trailing separator setWasmPaths expects. */
export function wasmBinaryDir(): string {
  const main = nodeRequire.resolve('@tensorflow/tfjs-backend-wasm');
  return path.dirname(main) + path.sep;
}

async function useWasm(): Promise<BackendInfo> {
  registerWasmKernels();
  if (tf.getBackend() !== 'wasm') {
    // setWasmPaths throws once the backend initialised, and is only needed before.
    if (tf.engine().registry['wasm'] === undefined) tfwasm.setWasmPaths(wasmBinaryDir());
    let ok = false;
    try {
      ok = await tf.setBackend('wasm');
    } catch (err) {
      throw new BackendError(`the wasm backend failed to start: ${describeError(err)}`, { cause: err, details: { backend: 'wasm' } });
    }
    if (!ok) throw new BackendError('the wasm backend failed to start', { details: { backend: 'wasm', dir: wasmBinaryDir() } });
  }
  await tf.ready();
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = tfwasm.getThreadsCount();
  return { name: 'wasm', version: tfwasm.version_wasm, device: cpuDevice(` (wasm${simd === true ? ' simd' : ''}, ${threads} thread${threads === 1 ? '' : 's'})`) };
}

async function useCpu(): Promise<BackendInfo> {
  if (tf.getBackend() !== 'cpu') {
    const ok = await tf.setBackend('cpu');
    if (!ok) throw new BackendError('the cpu backend failed to start', { details: { backend: 'cpu' } });
    // The cpu backend prints an 'install tfjs-node' banner on first use; it was chosen
    // on purpose here, and the selection is logged below instead.
    const cpu = tf.backend() as unknown as { firstUse?: boolean };
    if (cpu.firstUse === true) cpu.firstUse = false;
  }
  await tf.ready();
  return { name: 'cpu', version: tf.version_core, device: cpuDevice(' (pure JS)') };
}

async function useConcrete(name: Concrete): Promise<BackendInfo> {
  switch (name) {
    case 'tfjs-node-gpu':
      return useNative('@tensorflow/tfjs-node-gpu', name);
    case 'tfjs-node':
      return useNative('@tensorflow/tfjs-node', name);
    case 'wasm':
      return useWasm();
    case 'cpu':
      return useCpu();
  }
}

/**
 * Makes the chosen backend current for this process's tfjs and returns what it
 * is. `auto` tries tfjs-node-gpu (only with a GPU present), tfjs-node, wasm, cpu,
 * and logs why each earlier one was skipped. Calling it again is harmless.
 */
export async function selectBackend(opts: SelectBackendOptions): Promise<BackendInfo> {
  const log = opts.log;
  if (!BACKEND_CHOICES.includes(opts.backend)) {
    throw new BackendError(`unknown backend '${String(opts.backend)}' (expected one of ${BACKEND_CHOICES.join(', ')})`);
  }
  let info: BackendInfo | undefined;
  if (opts.backend !== 'auto') {
    info = await useConcrete(opts.backend);
  } else {
    const order: Concrete[] = [];
    if (detectGpu().present) order.push('tfjs-node-gpu');
    else log?.debug({ backend: 'tfjs-node-gpu' }, 'no GPU found; skipping tfjs-node-gpu');
    order.push('tfjs-node', 'wasm', 'cpu');
    const failures: string[] = [];
    for (const name of order) {
      try {
        info = await useConcrete(name);
        break;
      } catch (err) {
        failures.push(`${name}: ${describeError(err)}`);
        log?.debug({ backend: name, reason: describeError(err) }, 'backend unavailable, trying the next');
      }
    }
    if (info === undefined) throw new BackendError(`no compute backend could start: ${failures.join('; ')}`);
  }
  log?.info({ backend: info.name, version: info.version, device: info.device }, 'compute backend selected');
  return info;
}
