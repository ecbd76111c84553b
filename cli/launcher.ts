// `lockstep train --workers N`: one machine, real processes. Starts a local
// nats-server (unless --nats is given), one coordinator and N workers, streams
// their logs, and supervises them like a cluster scheduler would: a coordinator
// that dies is restarted from its newest checkpoint (--resume auto) while the
// workers keep their processes; a worker that dies is restarted under the same
// id (it rejoins at the next step boundary; its part was recomputed by the
// others meanwhile); a local broker that dies is restarted on the same port.
// Everything is shut down on finish or Ctrl-C, with a bound on how long that takes.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Options } from '../shared/config/types.js';
import type { Logger } from '../shared/logger.js';
import { startEmbeddedNats, type EmbeddedNats } from './nats-server.js';

const ENTRY = require.resolve('../bin/lockstep.js');

/** Flags the worker shares with train; everything else reaches it through the join-ack. */
const WORKER_FLAGS = new Set(['job', 'data-dir', 'backend', 'log-level', 'heartbeat-timeout', 'nats-user', 'nats-pass', 'nats-token', 'nats-creds', 'nats-tls-ca', 'nats-tls-cert', 'nats-tls-key']);
const NOT_FOR_COORDINATOR = new Set(['workers']);

/** Restarts of one role before the launcher gives up on the run. */
const MAX_COORDINATOR_RESTARTS = 5;
const MAX_WORKER_RESTARTS = 5;
const MAX_BROKER_RESTARTS = 5;
/** After a stop signal: how long the coordinator may take to finish its step and checkpoint before everything is killed. */
const SHUTDOWN_GRACE_MS = 20_000;
/** `lockstep` exits 2 on a configuration error (cli/main.ts): the same flags would fail again. */
const CONFIG_EXIT = 2;
/** After the coordinator finished: how long workers may take to leave before they are killed. */
const WORKER_EXIT_GRACE_MS = 10_000;

function toArgs(raw: Record<string, string | boolean>, keep: (flag: string) => boolean): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    if (!keep(k)) continue;
    if (v === true) out.push(`--${k}`);
    else if (v !== false) out.push(`--${k}`, String(v));
  }
  return out;
}

function alive(p: ChildProcess): boolean {
  return p.exitCode === null && p.signalCode === null;
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
  // Set once the run is over (finished, stopped by a signal, or given up): no more restarts.
  let ending = false;
  let failure: string | null = null;
  const children = new Set<ChildProcess>();
  let coord: ChildProcess | null = null;

  const superviseBroker = (broker: EmbeddedNats, restarts: number): void => {
    broker.process.once('exit', (code, signal) => {
      if (ending) return;
      if (restarts >= MAX_BROKER_RESTARTS) {
        giveUp(`the local nats-server died ${restarts + 1} times`);
        return;
      }
      log.warn({ exit: { code, signal }, restart: restarts + 1 }, 'local nats-server died; restarting it on the same port (clients reconnect)');
      setTimeout(() => {
        if (ending) return;
        startEmbeddedNats({ port: broker.port, onLog: (l) => log.debug({ nats: l.trim() }, 'nats-server') })
          .then((b) => {
            nats = b;
            if (ending) void b.stop();
            else superviseBroker(b, restarts + 1);
          })
          .catch((err: unknown) => giveUp(`could not restart the local nats-server: ${err instanceof Error ? err.message : String(err)}`));
      }, 200);
    });
  };

  if (url === undefined) {
    nats = await startEmbeddedNats({ onLog: (l) => log.debug({ nats: l.trim() }, 'nats-server') });
    url = nats.url;
    log.info({ url }, 'started a local nats-server');
    superviseBroker(nats, 0);
  }
  const natsUrl = url;

  const spawnChild = (args: string[], pipeStdout: boolean): ChildProcess => {
    const child = spawn(process.execPath, [ENTRY, ...args], { stdio: ['ignore', pipeStdout ? 'pipe' : 'inherit', 'inherit'], env: deps.env });
    children.add(child);
    child.on('exit', () => children.delete(child));
    return child;
  };

  /** Ends the run with an error: the coordinator is asked to stop (it checkpoints), the rest follows. */
  function giveUp(why: string): void {
    if (ending) return;
    failure = why;
    log.error({ why }, 'giving up on the run');
    ending = true;
    if (coord !== null && alive(coord)) coord.kill('SIGTERM');
    armKillTimer();
  }

  let killTimer: NodeJS.Timeout | null = null;
  function armKillTimer(): void {
    if (killTimer !== null) return;
    killTimer = setTimeout(() => {
      for (const c of children) c.kill('SIGKILL');
    }, SHUTDOWN_GRACE_MS);
    killTimer.unref();
  }

  const workers = new Map<number, ChildProcess>();
  const workerRestarts = new Map<number, number>();
  const startWorker = (i: number): void => {
    const child = spawnChild(['worker', '--nats', natsUrl, '--worker-id', `w${i}`, ...toArgs(deps.raw, (k) => WORKER_FLAGS.has(k))], false);
    workers.set(i, child);
    child.on('exit', (code, signal) => {
      // Exit 0 is a worker told to stop; anything else while the run goes on is a crash.
      if (ending || code === 0) return;
      if (code === CONFIG_EXIT) {
        giveUp(`worker w${i} rejected its configuration (exit ${CONFIG_EXIT}); restarting it cannot help`);
        return;
      }
      const n = (workerRestarts.get(i) ?? 0) + 1;
      workerRestarts.set(i, n);
      if (n > MAX_WORKER_RESTARTS) {
        giveUp(`worker w${i} died ${n} times (last: ${JSON.stringify({ code, signal })})`);
        return;
      }
      const delay = Math.min(5000, 250 * 2 ** (n - 1));
      log.warn({ worker: `w${i}`, exit: { code, signal }, restart: n, inMs: delay }, 'worker died; restarting it under the same id');
      setTimeout(() => {
        if (!ending) startWorker(i);
      }, delay).unref();
    });
  };
  for (let i = 0; i < o.workers; i++) startWorker(i);

  const coordArgs = ['coordinator', '--nats', natsUrl, '--wait-workers', String(o.workers), ...toArgs(deps.raw, (k) => !NOT_FOR_COORDINATOR.has(k) && k !== 'nats')];
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signalled) {
      // A second Ctrl-C: no more waiting.
      log.warn({ signal: sig }, 'stopping now');
      for (const c of children) c.kill('SIGKILL');
      return;
    }
    signalled = true;
    ending = true;
    log.info({ signal: sig }, 'stopping: the coordinator finishes its step and checkpoints');
    for (const c of children) c.kill('SIGTERM');
    armKillTimer();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let restarts = 0;
  let code = 1;
  try {
    for (;;) {
      const resume = restarts > 0 && !coordArgs.includes('--resume') ? ['--resume', 'auto'] : [];
      const c = spawnChild([...coordArgs, ...resume], true);
      coord = c;
      c.stdout?.pipe(deps.stdout, { end: false });
      const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => c.on('exit', (cd, s) => resolve({ code: cd, signal: s })));
      if (exit.code === 0 || ending) {
        code = exit.code ?? 1;
        break;
      }
      // A crashed coordinator comes back from its newest checkpoint with a new term; workers keep running.
      if (exit.code === CONFIG_EXIT) {
        log.error({ exit }, 'the coordinator rejected its configuration; not restarting it');
        code = exit.code;
        break;
      }
      if (restarts >= MAX_COORDINATOR_RESTARTS) {
        log.error({ exit }, `coordinator failed ${restarts + 1} times; giving up`);
        code = exit.code ?? 1;
        break;
      }
      restarts += 1;
      log.warn({ exit, restart: restarts }, 'coordinator died; restarting it from its newest checkpoint');
    }
    ending = true;
    // Workers leave on the coordinator's stop broadcast; make sure nobody lingers.
    await waitAll([...workers.values()], WORKER_EXIT_GRACE_MS);
  } finally {
    ending = true;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (killTimer !== null) clearTimeout(killTimer);
    for (const c of children) c.kill('SIGKILL');
    await (nats as EmbeddedNats | null)?.stop();
  }
  return failure !== null ? 1 : code;
}

function waitAll(procs: ChildProcess[], ms: number): Promise<void> {
  const running = procs.filter(alive);
  if (running.length === 0) return Promise.resolve();
  return new Promise((resolve) => {
    let left = running.length;
    const timer = setTimeout(() => {
      for (const p of running) p.kill('SIGTERM');
      resolve();
    }, ms);
    for (const p of running)
      p.on('exit', () => {
        left -= 1;
        if (left === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
  });
}
