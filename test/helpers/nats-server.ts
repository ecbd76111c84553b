// A real nats-server for tests, on a free loopback port, stopped by the test
// that started it. Fault tests use kill(signal) and restart() (same port, so
// clients reconnect to it).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NatsServerOptions {
  /** Extra command-line arguments (after `-a 127.0.0.1 -p <port>`). */
  args?: string[];
  /** Server config file contents; written to a temp file and passed with `-c`. Command-line -a/-p win over it. */
  config?: string;
  /** A fixed port instead of a free one. */
  port?: number;
  /** Default /usr/sbin/nats-server, else `nats-server` on PATH. */
  binary?: string;
  /** How long to wait for the port to accept connections (default 10 s). */
  readyTimeoutMs?: number;
}

export interface NatsServerHandle {
  /** nats://127.0.0.1:<port> */
  url: string;
  port: number;
  /** The config file written for `config`, if any. */
  configPath: string | undefined;
  /** Current process id (changes on restart); undefined while not running. */
  readonly pid: number | undefined;
  /** SIGTERM (SIGKILL after 5 s), wait for exit, remove temp files. Idempotent. */
  stop(): Promise<void>;
  /** Sends a signal without waiting (SIGKILL by default; SIGSTOP/SIGCONT for a frozen broker). */
  kill(signal?: NodeJS.Signals): void;
  /** Stops the server if it runs, then starts it again on the same port and waits until it is ready. */
  restart(): Promise<void>;
  /** The last 256 KiB of the server's stdout and stderr. */
  logs(): string;
}

const LOG_LIMIT = 256 * 1024;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

function defaultBinary(): string {
  return existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server';
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const binary = opts.binary ?? defaultBinary();
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  let dir: string | undefined;
  let configPath: string | undefined;
  if (opts.config !== undefined) {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-nats-'));
    configPath = join(dir, 'nats.conf');
    writeFileSync(configPath, opts.config);
  }
  let port = opts.port ?? (await freePort());
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = '';
  const onProcessExit = (): void => {
    child?.kill('SIGKILL');
  };
  process.once('exit', onProcessExit);

  let lastLaunchLog = '';
  const append = (b: Buffer): void => {
    const text = b.toString('utf8');
    log += text;
    if (log.length > LOG_LIMIT) log = log.slice(log.length - LOG_LIMIT);
    if (lastLaunchLog.length < 64 * 1024) lastLaunchLog += text;
  };
  const addressInUse = (): boolean => /address already in use/i.test(lastLaunchLog);

  const launch = async (): Promise<void> => {
    const args = ['-a', '127.0.0.1', '-p', String(port), ...(configPath === undefined ? [] : ['-c', configPath]), ...(opts.args ?? [])];
    lastLaunchLog = '';
    const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stdout?.on('data', append);
    proc.stderr?.on('data', append);
    let gone = false;
    let spawnError: Error | undefined;
    exited = new Promise<void>((resolve) => {
      proc.once('close', () => {
        gone = true;
        resolve();
      });
      proc.once('error', (err) => {
        spawnError = err;
        gone = true;
        resolve();
      });
    });
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      if (gone) {
        child = undefined;
        const why = spawnError !== undefined ? spawnError.message : `exited with code ${String(proc.exitCode)}`;
        throw new Error(`nats-server (${binary} ${args.join(' ')}) ${why} before it was ready:\n${log.slice(-4000)}`);
      }
      if (await canConnect(port)) return;
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        await exited;
        child = undefined;
        throw new Error(`nats-server on port ${port} not ready after ${readyTimeoutMs} ms:\n${log.slice(-4000)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const stopProcess = async (): Promise<void> => {
    const proc = child;
    if (proc === undefined) return;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGCONT'); // a SIGSTOPped server would not act on SIGTERM
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    } else {
      await exited;
    }
    child = undefined;
  };

  // A port taken between freePort() and the spawn: try another (only when we chose the port).
  for (let attempt = 0; ; attempt++) {
    try {
      await launch();
      break;
    } catch (err) {
      const inUse = addressInUse();
      if (!inUse || opts.port !== undefined || attempt >= 3) {
        process.removeListener('exit', onProcessExit);
        if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
        throw err;
      }
      port = await freePort();
    }
  }

  let stopped = false;
  return {
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    configPath,
    get pid() {
      return child?.pid;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopProcess();
      process.removeListener('exit', onProcessExit);
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    },
    kill(signal: NodeJS.Signals = 'SIGKILL') {
      child?.kill(signal);
    },
    async restart() {
      if (stopped) throw new Error('nats-server handle was stopped');
      await stopProcess();
      // The old listening socket can linger for a moment after a SIGKILL.
      const deadline = Date.now() + 5000;
      for (;;) {
        try {
          await launch();
          return;
        } catch (err) {
          if (!addressInUse() || Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    logs() {
      return log;
    },
  };
}
