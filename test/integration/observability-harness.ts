// Shared by the observability tests: real lockstep processes from dist/bin/lockstep.js
// (a nats-server, a coordinator, workers, or the `train` launcher), their output, and
// clean shutdown. Not a test file itself (no `.test` suffix).
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, startNatsServer } from '../helpers/nats-server.js';
import type { NatsServerHandle } from '../helpers/nats-server.js';

export { freePort };

/** Repository root (this file runs from dist/test/integration). */
export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const ENTRY = path.join(ROOT, 'dist', 'bin', 'lockstep.js');

/** A model that trains in milliseconds per step on one core: the runs test plumbing, not learning. */
export const TINY_MODEL = ['--model', 'vae', '--arch', 'mlp', '--hidden-units', '32', '--train-limit', '256', '--batch-size', '32', '--backend', 'wasm'];

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LockstepProcess {
  name: string;
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<Exit>;
  /** Whether the process has exited. */
  readonly done: boolean;
  /** Sends `signal` (default SIGTERM), SIGKILL after graceMs; resolves on exit. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<Exit>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** The environment without LOCKSTEP_* settings, so each test's flags alone decide. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LOCKSTEP_')) env[k] = v;
  return { ...env, ...extra };
}

export function spawnLockstep(name: string, args: string[], options: { env?: Record<string, string> } = {}): LockstepProcess {
  const child = spawn(process.execPath, [ENTRY, ...args], { cwd: ROOT, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => (out += d));
  child.stderr?.on('data', (d: string) => (err += d));
  let done = false;
  const exited = new Promise<Exit>((resolve) => {
    child.once('close', (code, signal) => {
      done = true;
      live.delete(child);
      resolve({ code, signal });
    });
  });
  return {
    name,
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    get done() {
      return done;
    },
    async stop(signal = 'SIGTERM', graceMs = 10_000) {
      if (!done) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    },
  };
}

/** Waits up to ms for the process to exit by itself, then stops it. */
export async function exitWithin(p: LockstepProcess, ms: number): Promise<Exit> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
  const first = await Promise.race([p.exited, late]);
  clearTimeout(timer);
  return first === 'late' ? p.stop('SIGTERM', 5000) : first;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false> | T | undefined | null | false, options: { timeoutMs?: number; intervalMs?: number; alive?: LockstepProcess[] } = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    for (const p of options.alive ?? []) {
      if (p.done) throw new Error(`${p.name} exited while waiting for ${what}:\n${p.stderr().slice(-3000)}`);
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError === undefined ? '' : `: ${String(lastError)}`}`);
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 200));
  }
}

export async function httpGet(url: string): Promise<{ status: number; body: string; contentType: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.text(), contentType: res.headers.get('content-type') ?? '' };
}

/** The value of one sample line (`name{labels} value`) in Prometheus text, matched exactly up to the value. */
export function sampleValue(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1).split(' ')[0]);
  }
  return undefined;
}

/** `promtool check metrics` on the text; its whole output (empty when clean). */
export function promtoolCheckMetrics(text: string): { status: number | null; output: string } {
  const res = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  if (res.error !== undefined) throw res.error;
  return { status: res.status, output: `${res.stdout}${res.stderr}` };
}

export interface JsonLine {
  raw: string;
  rec: Record<string, unknown>;
}

/** Splits stderr into pino JSON records; lines that are not JSON objects come back in `other`. */
export function parseLogLines(text: string): { lines: JsonLine[]; other: string[] } {
  const lines: JsonLine[] = [];
  const other: string[] = [];
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    try {
      const rec = JSON.parse(raw) as unknown;
      if (rec !== null && typeof rec === 'object' && !Array.isArray(rec)) lines.push({ raw, rec: rec as Record<string, unknown> });
      else other.push(raw);
    } catch {
      other.push(raw);
    }
  }
  return { lines, other };
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `lockstep-${prefix}-`));
}

/** Where a test leaves files for people to look at (screenshots): LOCKSTEP_TEST_OUTPUT or a temp dir. */
export function outputDir(name: string): string {
  const base = process.env.LOCKSTEP_TEST_OUTPUT;
  if (base === undefined || base === '') return tempDir(name);
  const dir = path.join(base, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export interface ClusterOptions {
  workers: number;
  /** Extra coordinator flags (model, steps...); TINY_MODEL and a long run by default. */
  coordinatorArgs?: string[];
  /** Give every worker a /metrics port. */
  workerMetrics?: boolean;
  logLevel?: string;
  /** Start the workers only when startWorkers() is called (to see the coordinator wait for them). */
  deferWorkers?: boolean;
}

export interface Cluster {
  nats: NatsServerHandle;
  dir: string;
  coordinator: LockstepProcess;
  workers: LockstepProcess[];
  metricsUrl: string;
  dashboardUrl: string;
  workerMetricsUrls: string[];
  workerIds: string[];
  startWorkers(): void;
  /** SIGTERM to the coordinator (it finishes its step, checkpoints, stops the workers), then everything else. */
  stop(): Promise<Exit>;
}

/** nats-server + `lockstep coordinator` + N `lockstep worker`, each a separate process, as in a cluster. */
export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const nats = await startNatsServer();
  const dir = tempDir('obs-cluster');
  const metricsPort = await freePort();
  const dashboardPort = await freePort();
  const workerIds = Array.from({ length: o.workers }, (_, i) => `w${i}`);
  const workerPorts: number[] = [];
  if (o.workerMetrics === true) for (let i = 0; i < o.workers; i++) workerPorts.push(await freePort());
  const level = o.logLevel ?? 'warn';
  const coordinator = spawnLockstep('coordinator', [
    'coordinator',
    '--nats', nats.url,
    '--wait-workers', String(o.workers),
    '--metrics-port', String(metricsPort),
    '--dashboard-port', String(dashboardPort),
    '--checkpoint-dir', path.join(dir, 'checkpoints'),
    '--log-level', level,
    '--json',
    ...TINY_MODEL,
    ...(o.coordinatorArgs ?? ['--steps', '100000', '--checkpoint-every', '5']),
  ]);
  const workers: LockstepProcess[] = [];
  const startWorkers = (): void => {
    if (workers.length > 0) return;
    workerIds.forEach((id, i) => {
      const port = workerPorts[i];
      workers.push(spawnLockstep(id, ['worker', '--nats', nats.url, '--worker-id', id, '--backend', 'wasm', '--log-level', level, ...(port === undefined ? [] : ['--metrics-port', String(port)])]));
    });
  };
  if (o.deferWorkers !== true) startWorkers();
  return {
    nats,
    dir,
    coordinator,
    workers,
    metricsUrl: `http://127.0.0.1:${metricsPort}`,
    dashboardUrl: `http://127.0.0.1:${dashboardPort}`,
    workerMetricsUrls: workerPorts.map((p) => `http://127.0.0.1:${p}`),
    workerIds,
    startWorkers,
    async stop() {
      const exit = await coordinator.stop('SIGTERM', 15_000);
      // Told to stop by the coordinator; a worker that missed it gets a signal.
      await Promise.all(workers.map((w) => exitWithin(w, 5000)));
      await nats.stop();
      fs.rmSync(dir, { recursive: true, force: true });
      return exit;
    },
  };
}
