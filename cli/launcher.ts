// `lockstep train --workers N`: one machine, real processes. Starts a local
// nats-server (unless --nats is given), one coordinator and N workers, streams
// their logs, restarts the coordinator from its newest checkpoint if it dies,
// and shuts everything down on finish or Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Options } from '../shared/config/types.js';
import type { Logger } from '../shared/logger.js';
import { startEmbeddedNats, type EmbeddedNats } from './nats-server.js';

const ENTRY = require.resolve('../bin/lockstep.js');

/** Flags the worker shares with train; everything else reaches it through the join-ack. */
const WORKER_FLAGS = new Set(['job', 'data-dir', 'backend', 'log-level', 'heartbeat-timeout', 'nats-user', 'nats-pass', 'nats-token', 'nats-creds', 'nats-tls-ca', 'nats-tls-cert', 'nats-tls-key']);
const NOT_FOR_COORDINATOR = new Set(['workers']);

function toArgs(raw: Record<string, string | boolean>, keep: (flag: string) => boolean): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    if (!keep(k)) continue;
    if (v === true) out.push(`--${k}`);
    else if (v !== false) out.push(`--${k}`, String(v));
  }
  return out;
}

export interface LaunchDeps {
  log: Logger;
  /** The flags as given on the command line (forwarded to the children). */
  raw: Record<string, string | boolean>;
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WritableStream;
}

export async function launch(o: Options, deps: LaunchDeps): Promise<number> {
  const { log } = deps;
  let nats: EmbeddedNats | null = null;
  let url = o.nats;
  if (url === undefined) {
    nats = await startEmbeddedNats({ onLog: (l) => log.debug({ nats: l.trim() }, 'nats-server') });
    url = nats.url;
    log.info({ url }, 'started a local nats-server');
  }
  const children = new Set<ChildProcess>();
  let shuttingDown = false;
  const spawnChild = (args: string[], pipeStdout: boolean): ChildProcess => {
    const child = spawn(process.execPath, [ENTRY, ...args], { stdio: ['ignore', pipeStdout ? 'pipe' : 'inherit', 'inherit'], env: deps.env });
    children.add(child);
    child.on('exit', () => children.delete(child));
    return child;
  };
  const workerArgs = (i: number): string[] => ['worker', '--nats', url as string, '--worker-id', `w${i}`, ...toArgs(deps.raw, (k) => WORKER_FLAGS.has(k))];
  const workers: ChildProcess[] = [];
  for (let i = 0; i < o.workers; i++) workers.push(spawnChild(workerArgs(i), false));

  const coordArgs = ['coordinator', '--nats', url, '--wait-workers', String(o.workers), ...toArgs(deps.raw, (k) => !NOT_FOR_COORDINATOR.has(k) && k !== 'nats')];
  const onSignal = (sig: NodeJS.Signals): void => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal: sig }, 'stopping: the coordinator finishes its step and checkpoints');
    for (const c of children) c.kill('SIGTERM');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let restarts = 0;
  let code = 1;
  try {
    for (;;) {
      const resume = restarts > 0 && !coordArgs.includes('--resume') ? ['--resume', 'auto'] : [];
      const coord = spawnChild([...coordArgs, ...resume], true);
      coord.stdout?.pipe(deps.stdout, { end: false });
      const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => coord.on('exit', (c, s) => resolve({ code: c, signal: s })));
      if (exit.code === 0 || shuttingDown) {
        code = exit.code ?? 1;
        break;
      }
      // Supervision: a crashed coordinator comes back from its newest checkpoint with a new term; workers keep running.
      if (restarts >= 5) {
        log.error({ exit }, 'coordinator failed 6 times; giving up');
        code = exit.code ?? 1;
        break;
      }
      restarts += 1;
      log.warn({ exit, restart: restarts }, 'coordinator died; restarting it from its newest checkpoint');
    }
    // Workers leave on the coordinator's stop; make sure nobody lingers.
    await waitAll(workers, 10_000);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const c of children) c.kill('SIGKILL');
    await nats?.stop();
  }
  return code;
}

function waitAll(procs: ChildProcess[], ms: number): Promise<void> {
  const alive = procs.filter((p) => p.exitCode === null && p.signalCode === null);
  if (alive.length === 0) return Promise.resolve();
  return new Promise((resolve) => {
    let left = alive.length;
    const timer = setTimeout(() => {
      for (const p of alive) p.kill('SIGTERM');
      resolve();
    }, ms);
    for (const p of alive)
      p.on('exit', () => {
        left -= 1;
        if (left === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
  });
}
