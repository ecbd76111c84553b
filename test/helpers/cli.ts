// Runs the real CLI (dist/bin/lockstep.js) as a child process.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCheckpointState } from '../../shared/checkpoint/store.js';

export const ENTRY = join(__dirname, '..', '..', 'bin', 'lockstep.js');

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ENTRY, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`lockstep ${args.join(' ')} timed out after ${opts.timeoutMs ?? 120_000} ms\n${stderr.slice(-3000)}`));
    }, opts.timeoutMs ?? 120_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export interface TrainJson {
  model: string;
  workers: number;
  steps: number;
  samples: number;
  losses: number[];
  finalLoss: { total: number; reconstruction: number; kl?: number };
  checkpoint: string | null;
  weightsSha256: string;
  gradientBytes: number;
  startStep: number;
  samplesPerSecond: number;
}

/** Runs `lockstep train ... --json` and returns the parsed result; fails with the log tail otherwise. */
export async function trainJson(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<TrainJson> {
  const r = await runCli(['train', ...args, '--json'], opts);
  if (r.code !== 0) throw new Error(`lockstep train ${args.join(' ')} exited ${r.code}:\n${r.stderr.slice(-4000)}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  const result = JSON.parse(line) as TrainJson;
  Object.defineProperty(result, 'log', { value: r.stderr, enumerable: false });
  return result;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `lockstep-${prefix}-`));
}

/** The pino log of a run (stderr), attached by trainJson. */
export function logOf(r: TrainJson): string {
  return (r as TrainJson & { log?: string }).log ?? '';
}

/**
 * Image indices each applied step covered, from the coordinator's 'step applied'
 * debug lines (needs --log-level debug): epoch -> index -> times used.
 */
export function coverageByEpoch(log: string): Map<number, Map<number, number>> {
  const out = new Map<number, Map<number, number>>();
  for (const line of log.split('\n')) {
    if (!line.includes('"step applied"')) continue;
    const rec = JSON.parse(line) as { epoch: number; coverage: Array<{ indices: number[] }> };
    const m = out.get(rec.epoch) ?? new Map<number, number>();
    for (const c of rec.coverage) for (const i of c.indices) m.set(i, (m.get(i) ?? 0) + 1);
    out.set(rec.epoch, m);
  }
  return out;
}

/** The master weights saved in a checkpoint (little-endian float32). */
export function checkpointWeights(stepDir: string): Float32Array {
  return readCheckpointState(stepDir).weights;
}
