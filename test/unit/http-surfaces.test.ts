// The HTTP surfaces of a REAL `lockstep coordinator` process (the libraries are covered
// by http-server.test.ts and dashboard.test.ts; this covers the wiring of the flags):
// --metrics-host / --dashboard-host (and their LOCKSTEP_* variables) decide the bound
// address, loopback by default; --dashboard-token / LOCKSTEP_DASHBOARD_TOKEN protects
// the page and the WebSocket and is never logged; request bodies are bounded on both
// ports; what a page sends on the WebSocket is ignored, and too much closes it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import WebSocket from 'ws';
import { freePort, startNatsServer, type NatsServerHandle } from '../helpers/nats-server.js';

const ROOT = resolve(__dirname, '..', '..', '..');
const CLI = join(ROOT, 'dist', 'bin', 'lockstep.js');

interface Coordinator {
  child: ChildProcess;
  stderr: () => string;
  metricsPort: number;
  dashboardPort: number;
  exit: Promise<number | null>;
}

let nats: NatsServerHandle;
let dir: string;
const running: Coordinator[] = [];

function httpRequest(url: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolveReq, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolveReq({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    // A server that refuses a big body may hang up while it is still being written.
    req.on('error', reject);
    req.end(options.body);
  });
}

/** True when something accepts TCP connections at host:port. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolveConn) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolveConn(true);
    });
    s.once('error', () => resolveConn(false));
  });
}

/** The IPv4 addresses listening on `port` according to the kernel (/proc/net/tcp, state 0A = LISTEN). */
function listeningAddresses(port: number): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const [addr, portHex] = (f[1] ?? '').split(':');
    if (f[3] !== '0A' || addr === undefined || portHex === undefined || parseInt(portHex, 16) !== port) continue;
    out.push([3, 2, 1, 0].map((i) => parseInt(addr.slice(i * 2, i * 2 + 2), 16)).join('.'));
  }
  return out;
}

async function startCoordinator(args: string[], env: Record<string, string>, reachAt: { metrics: string; dashboard: string }): Promise<Coordinator> {
  const metricsPort = await freePort();
  const dashboardPort = await freePort();
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LOCKSTEP_')) childEnv[k] = v;
  const ckpt = mkdtempSync(join(dir, 'ckpt-'));
  const child = spawn(
    process.execPath,
    [CLI, 'coordinator', '--nats', nats.url, '--filters', '4', '--train-limit', '256', '--steps', '5', '--min-workers', '2', '--checkpoint-dir', ckpt, '--metrics-port', String(metricsPort), '--dashboard-port', String(dashboardPort), '--log-level', 'info', ...args],
    { cwd: ROOT, env: { ...childEnv, ...env }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  const c: Coordinator = { child, stderr: () => stderr, metricsPort, dashboardPort, exit };
  running.push(c);
  const deadline = Date.now() + 30_000;
  while (!((await accepts(reachAt.metrics, metricsPort)) && (await accepts(reachAt.dashboard, dashboardPort)))) {
    if (child.exitCode !== null || Date.now() > deadline) assert.fail(`coordinator not serving (exit ${String(child.exitCode)}):\n${stderr.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return c;
}

async function stop(c: Coordinator): Promise<void> {
  if (c.child.exitCode === null) c.child.kill('SIGTERM');
  const t = setTimeout(() => c.child.kill('SIGKILL'), 10_000);
  await c.exit;
  clearTimeout(t);
}

function openSocket(url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; first: Promise<{ type: string; state?: { status?: string } }>; closed: Promise<number> }> {
  return new Promise((resolveWs, reject) => {
    const ws = new WebSocket(url, { headers });
    const first = new Promise<{ type: string }>((r) => ws.once('message', (d: Buffer) => r(JSON.parse(d.toString()) as { type: string })));
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.once('open', () => resolveWs({ ws, first, closed }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode ?? 0}`)));
    ws.once('error', reject);
  });
}

void before(async () => {
  assert.ok(existsSync(CLI), `${CLI} missing: build with npx tsc -p tsconfig.json && node scripts/copy-assets.mjs`);
  nats = await startNatsServer();
  dir = mkdtempSync(join(tmpdir(), 'lockstep-http-'));
});

void after(async () => {
  await Promise.all(running.map(stop));
  await nats?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

void test('by default both servers bind 127.0.0.1 only; --dashboard-token guards the page and the WebSocket', async () => {
  const token = randomBytes(16).toString('hex');
  const c = await startCoordinator(['--dashboard-token', token], {}, { metrics: '127.0.0.1', dashboard: '127.0.0.1' });
  assert.deepEqual(listeningAddresses(c.metricsPort), ['127.0.0.1']);
  assert.deepEqual(listeningAddresses(c.dashboardPort), ['127.0.0.1']);
  // 127.0.0.2 is loopback too, but not the bound address.
  assert.equal(await accepts('127.0.0.2', c.metricsPort), false);
  assert.equal(await accepts('127.0.0.2', c.dashboardPort), false);

  const page = `http://127.0.0.1:${c.dashboardPort}/`;
  const noToken = await httpRequest(page);
  assert.equal(noToken.status, 401);
  assert.match(String(noToken.headers['www-authenticate']), /^Bearer/);
  assert.doesNotMatch(noToken.body, /<html/i, 'no page without the token');
  assert.equal((await httpRequest(`${page}?token=${token.slice(0, -1)}`)).status, 401);
  assert.equal((await httpRequest(`${page}?token=${token}`)).status, 200);
  const bearer = await httpRequest(page, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(bearer.status, 200);
  assert.match(bearer.body, /<html/i);

  const ws = `ws://127.0.0.1:${c.dashboardPort}/ws`;
  await assert.rejects(openSocket(ws), /HTTP 401/);
  await assert.rejects(openSocket(ws, { authorization: 'Bearer wrong' }), /HTTP 401/);
  const s = await openSocket(`${ws}?token=${token}`);
  const hello = await s.first;
  assert.equal(hello.type, 'hello');
  s.ws.close();
  await s.closed;
  const b = await openSocket(ws, { authorization: `Bearer ${token}` });
  assert.equal((await b.first).type, 'hello');
  b.ws.close();
  await b.closed;

  // /metrics stays open to the scraper (it holds no run control and no images).
  const metrics = await httpRequest(`http://127.0.0.1:${c.metricsPort}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /^lockstep_rejected_messages_total/m);
  assert.ok(!c.stderr().includes(token), 'the token is never logged');
  assert.match(c.stderr(), /"token":true[^\n]*"msg":"dashboard listening"/);
});

void test('--metrics-host / --dashboard-host and their LOCKSTEP_* variables decide the bound address; the token may come from LOCKSTEP_DASHBOARD_TOKEN', async () => {
  const token = randomBytes(16).toString('hex');
  const c = await startCoordinator(['--dashboard-host', '127.0.0.2'], { LOCKSTEP_METRICS_HOST: '0.0.0.0', LOCKSTEP_DASHBOARD_TOKEN: token }, { metrics: '127.0.0.1', dashboard: '127.0.0.2' });
  assert.deepEqual(listeningAddresses(c.metricsPort), ['0.0.0.0']);
  assert.deepEqual(listeningAddresses(c.dashboardPort), ['127.0.0.2']);
  assert.equal(await accepts('127.0.0.2', c.metricsPort), true, 'all interfaces');
  assert.equal(await accepts('127.0.0.1', c.dashboardPort), false, 'only 127.0.0.2');
  assert.equal((await httpRequest(`http://127.0.0.2:${c.dashboardPort}/`)).status, 401);
  assert.equal((await httpRequest(`http://127.0.0.2:${c.dashboardPort}/?token=${token}`)).status, 200);
  assert.ok(!c.stderr().includes(token), 'the token is never logged');
  await stop(c);
});

void test('request bodies are bounded on both ports (413), and inbound WebSocket messages are ignored or close the socket', async () => {
  const c = await startCoordinator([], {}, { metrics: '127.0.0.1', dashboard: '127.0.0.1' });
  const metricsUrl = `http://127.0.0.1:${c.metricsPort}`;
  const dashUrl = `http://127.0.0.1:${c.dashboardPort}`;
  // Declared lengths over the limits (metrics 64 KiB, dashboard 1 KiB) are refused before the body is read.
  const big = await httpRequest(`${metricsUrl}/metrics`, { method: 'POST', body: Buffer.alloc(65 * 1024, 0x61) });
  assert.equal(big.status, 413, 'metrics port');
  assert.equal(JSON.parse(big.body).limit, 64 * 1024);
  assert.equal((await httpRequest(`${metricsUrl}/metrics`, { method: 'POST', body: Buffer.alloc(100, 0x61) })).status, 405, 'a small body is read, then refused by method');
  assert.equal((await httpRequest(`${dashUrl}/`, { method: 'POST', body: Buffer.alloc(4096, 0x61) })).status, 413, 'dashboard port');
  assert.equal((await httpRequest(`${dashUrl}/`, { headers: { 'x-filler': 'a'.repeat(10_000) } })).status, 431, 'oversize headers');
  assert.equal((await httpRequest(`${metricsUrl}/healthz`)).status, 200, 'still serving');

  // A page may send nothing that matters: commands are ignored, the socket stays open.
  const s = await openSocket(`ws://127.0.0.1:${c.dashboardPort}/ws`);
  assert.equal((await s.first).type, 'hello');
  for (const m of ['{"type":"ctl","action":"stop"}', 'garbage', '{"type":"hello"}', Buffer.from([0, 1, 2, 255]).toString('latin1')]) s.ws.send(m);
  await new Promise<void>((r) => {
    s.ws.once('pong', () => r());
    s.ws.ping();
  });
  assert.equal(s.ws.readyState, WebSocket.OPEN);
  const other = await openSocket(`ws://127.0.0.1:${c.dashboardPort}/ws`);
  const hello = await other.first;
  assert.equal(hello.type, 'hello');
  assert.notEqual(hello.state?.status, 'done', 'the run was not stopped by a page');
  other.ws.close();
  // Past the inbound limit (1 KiB) the server closes with 1009 (message too big).
  s.ws.send('x'.repeat(4096));
  assert.equal(await s.closed, 1009);
  assert.equal(c.child.exitCode, null, 'the coordinator is still running');
  assert.doesNotMatch(c.stderr(), /"level":(50|60)/, 'nothing logged as an error');
});
