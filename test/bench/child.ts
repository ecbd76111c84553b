// Runs `lockstep <command> ...` as a child process, the way a user would, and
// returns its --json result. Each child gets its own process group so that a
// timeout or Ctrl-C also ends the coordinator and workers the launcher started.
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { InternalError, TimeoutError } from '../../shared/errors.js';

const ENTRY = path.resolve(__dirname, '..', '..', 'bin', 'lockstep.js');

export interface ChildResult<T> {
  code: number;
  seconds: number;
  json: T;
  /** pino lines from stderr, parsed (non-JSON lines are dropped). */
  logs: Array<Record<string, unknown>>;
}

export interface RunOptions {
  /** Shown in progress lines. */
  label: string;
  timeoutMs: number;
  /** Progress lines (throttled). */
  onProgress?: (line: string) => void;
  /** How often a child's own progress may be shown (default 15 s). */
  progressEveryMs?: number;
}

const live = new Set<ChildProcess>();

/** Ends every child this process started and that still runs (process groups). */
export function killAllChildren(): void {
  for (const c of live) {
    try {
      if (c.pid !== undefined) process.kill(-c.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

function cleanEnv(): NodeJS.ProcessEnv {
  // Inherited LOCKSTEP_* settings (a test runner's log level, a fault hook) would change what is measured.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LOCKSTEP_')) env[k] = v;
  return env;
}

export function runLockstep<T>(args: string[], opts: RunOptions): Promise<ChildResult<T>> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [ENTRY, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv(), detached: true });
  live.add(child);
  let stdout = '';
  let errTail = '';
  let partial = '';
  const logs: Array<Record<string, unknown>> = [];
  let lastShown = 0;
  const every = opts.progressEveryMs ?? 15_000;
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    errTail = (errTail + d).slice(-8000);
    partial += d;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      logs.push(rec);
      if (rec.msg === 'progress' && opts.onProgress !== undefined && Date.now() - lastShown > every) {
        lastShown = Date.now();
        const loss = rec.loss as { total?: number } | undefined;
        const sps = typeof rec.samplesPerSecond === 'number' ? `, ${rec.samplesPerSecond} samples/s` : '';
        opts.onProgress(`${opts.label}: step ${String(rec.step)}/${String(rec.totalSteps)}, loss ${loss?.total?.toFixed(3) ?? '?'}${sps}`);
      }
    }
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      live.delete(child);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      // The launcher's own children are in the same group: make sure none outlives it.
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // group already empty
      }
      const seconds = (performance.now() - t0) / 1000;
      if (signal === 'SIGKILL' && seconds * 1000 >= opts.timeoutMs) {
        reject(new TimeoutError(`${opts.label}: 'lockstep ${args.join(' ')}' ran past ${Math.round(opts.timeoutMs / 1000)} s`));
        return;
      }
      if (code !== 0) {
        reject(new InternalError(`${opts.label}: 'lockstep ${args.join(' ')}' exited with ${code ?? signal}:\n${errTail.slice(-3000)}`));
        return;
      }
      const last = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (last === undefined) {
        reject(new InternalError(`${opts.label}: no JSON result on stdout:\n${stdout.slice(-2000)}\n${errTail.slice(-2000)}`));
        return;
      }
      try {
        resolve({ code: 0, seconds, json: JSON.parse(last) as T, logs });
      } catch (err) {
        reject(new InternalError(`${opts.label}: unparseable JSON result (${String(err)}): ${last.slice(0, 500)}`));
      }
    });
  });
}
