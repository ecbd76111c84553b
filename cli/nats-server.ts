// The launcher's embedded broker: the Debian package's nats-server on a free
// loopback port. Found on PATH (or /usr/sbin); a clear error says how to install it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { DependencyError, TimeoutError } from '../shared/errors.js';

export function findNatsServer(): string {
  for (const p of ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']) if (existsSync(p)) return p;
  const which = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  const found = which.stdout.trim();
  if (which.status === 0 && found !== '') return found;
  throw new DependencyError('nats-server not found on PATH: install it with `sudo apt-get install -y nats-server` (or pass --nats URL of a running server)');
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, host: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect({ port, host }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new TimeoutError(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface EmbeddedNats {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

export async function startEmbeddedNats(opts: { port?: number; args?: string[]; onLog?: (line: string) => void } = {}): Promise<EmbeddedNats> {
  const bin = findNatsServer();
  const port = opts.port ?? (await freePort());
  const child = spawn(bin, ['-a', '127.0.0.1', '-p', String(port), ...(opts.args ?? [])], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => opts.onLog?.(d));
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  await waitForPort(port, '127.0.0.1', 10_000);
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    process: child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (exited) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
}
