import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { startHttpServer } from '../../shared/http/metrics-server.js';
import type { ProbeResult } from '../../shared/http/metrics-server.js';
import { createMetricsRegistry } from '../../shared/metrics/registry.js';
import { createCoordinatorMetrics } from '../../coordinator/metrics.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(url: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer | string; chunks?: Buffer[] } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (options.chunks !== undefined) {
      // Chunked upload without a declared length: written piece by piece.
      for (const c of options.chunks) req.write(c);
      req.end();
    } else {
      req.end(options.body);
    }
  });
}

async function withServer(fn: (ctx: { url: string; setReady: (r: ProbeResult) => void }) => Promise<void>): Promise<void> {
  const registry = createMetricsRegistry();
  const metrics = createCoordinatorMetrics(registry);
  metrics.stepCompleted({ step: 7, epoch: 1, seconds: 0.5, samples: 64, loss: { total: 3, reconstruction: 2, kl: 1 } });
  let ready: ProbeResult = { ok: false, detail: 'waiting for workers' };
  const server = await startHttpServer({
    port: 0,
    registry,
    health: () => ({ ok: true, detail: { step: 7 } }),
    ready: () => ready,
    maxBodyBytes: 1024,
    maxHeaderBytes: 4096,
    routes: {
      '/echo': (req, res, ctx) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`${req.method} ${ctx.body.length}`);
      },
      '/boom': async () => {
        await Promise.resolve();
        throw new Error('handler failed');
      },
    },
  });
  try {
    assert.ok(server.port > 0);
    assert.equal(server.url, `http://127.0.0.1:${server.port}`);
    await fn({ url: server.url, setReady: (r) => (ready = r) });
  } finally {
    await server.close();
  }
}

void test('/metrics serves prom-client text that promtool accepts', async () => {
  await withServer(async ({ url }) => {
    const r = await request(`${url}/metrics`);
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(r.body, /^lockstep_step 7$/m);
    assert.match(r.body, /^process_cpu_seconds_total /m);
    const check = spawnSync('/usr/bin/promtool', ['check', 'metrics'], { input: r.body, encoding: 'utf8' });
    assert.equal(`${check.stdout}${check.stderr}`.trim(), '');
    assert.equal(check.status, 0);
    const head = await request(`${url}/metrics`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });
});

void test('/healthz and /readyz report the probes with 200 or 503', async () => {
  await withServer(async ({ url, setReady }) => {
    const h = await request(`${url}/healthz`);
    assert.equal(h.status, 200);
    assert.deepEqual(JSON.parse(h.body), { status: 'ok', detail: { step: 7 } });
    const r1 = await request(`${url}/readyz`);
    assert.equal(r1.status, 503);
    assert.deepEqual(JSON.parse(r1.body), { status: 'fail', detail: 'waiting for workers' });
    setReady({ ok: true });
    const r2 = await request(`${url}/readyz?verbose=1`);
    assert.equal(r2.status, 200);
    assert.equal(JSON.parse(r2.body).status, 'ok');
  });
});

void test('unknown paths get 404, wrong methods 405, failing handlers 500', async () => {
  await withServer(async ({ url }) => {
    assert.equal((await request(`${url}/`)).status, 404);
    assert.equal((await request(`${url}/metrics/../etc/passwd`)).status, 404);
    assert.equal((await request(`${url}/nope`)).status, 404);
    const post = await request(`${url}/metrics`, { method: 'POST', body: 'x=1' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    assert.equal((await request(`${url}/boom`)).status, 500);
    const echo = await request(`${url}/echo`, { method: 'POST', body: Buffer.alloc(1000, 1) });
    assert.equal(echo.status, 200);
    assert.equal(echo.body, 'POST 1000');
  });
});

void test('oversize requests are refused: declared body, chunked body, huge headers', async () => {
  await withServer(async ({ url }) => {
    const declared = await request(`${url}/echo`, { method: 'POST', body: Buffer.alloc(1025, 1) });
    assert.equal(declared.status, 413);
    assert.equal(JSON.parse(declared.body).limit, 1024);
    const chunked = await request(`${url}/echo`, { method: 'POST', chunks: [Buffer.alloc(600, 1), Buffer.alloc(600, 2)] }).catch((err: NodeJS.ErrnoException) => ({ status: -1, body: err.code ?? '' }));
    // Either the 413 arrives, or the server hung up mid-upload; both refuse it, never 200.
    assert.ok(chunked.status === 413 || chunked.status === -1, `got ${chunked.status}`);
    const headers = await request(`${url}/metrics`, { headers: { 'x-filler': 'a'.repeat(8000) } });
    assert.equal(headers.status, 431);
    // The server still serves normal requests afterwards.
    assert.equal((await request(`${url}/healthz`)).status, 200);
  });
});

void test('a declared oversize body is refused before it is sent', async () => {
  await withServer(async ({ url }) => {
    const { port } = new URL(url);
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(Number(port), '127.0.0.1', () => {
        sock.write(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n`);
      });
      let got = '';
      sock.on('data', (d) => (got += d.toString()));
      sock.on('close', () => resolve(got));
      sock.on('error', reject);
    });
    assert.match(reply, /^HTTP\/1\.1 413/);
  });
});

void test('close() returns promptly with keep-alive clients and frees the port', async () => {
  const registry = createMetricsRegistry({ defaultMetrics: false });
  const server = await startHttpServer({ port: 0, registry });
  const agent = new http.Agent({ keepAlive: true });
  await new Promise<void>((resolve, reject) => http.get(`${server.url}/metrics`, { agent }, (res) => res.resume().on('end', resolve)).on('error', reject));
  const t0 = Date.now();
  await server.close();
  assert.ok(Date.now() - t0 < 2000);
  await assert.rejects(request(`${server.url}/metrics`), /ECONNREFUSED/);
  agent.destroy();
  // Same port again works (what a restarting coordinator does).
  const again = await startHttpServer({ port: server.port, registry });
  assert.equal(again.port, server.port);
  await again.close();
});

void test('extra routes may not shadow the built-in endpoints', async () => {
  const registry = createMetricsRegistry({ defaultMetrics: false });
  await assert.rejects(startHttpServer({ port: 0, registry, routes: { '/metrics': () => {} } }), /shadow/);
});
