import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import WebSocket from 'ws';
import { DashboardHub } from '../../coordinator/dashboard/hub.js';
import type { DashboardMessage } from '../../coordinator/dashboard/hub.js';
import { startDashboard } from '../../coordinator/dashboard/server.js';
import { gridPng } from '../../shared/images/png.js';

function get(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Opens a socket and collects its messages. */
function connect(url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; messages: DashboardMessage[]; next(type: string): Promise<DashboardMessage>; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const messages: DashboardMessage[] = [];
    const waiters: Array<{ type: string; resolve: (m: DashboardMessage) => void }> = [];
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    ws.on('message', (data: Buffer) => {
      const m = JSON.parse(data.toString()) as DashboardMessage;
      messages.push(m);
      for (const w of waiters.splice(0)) {
        if (w.type === m.type) w.resolve(m);
        else waiters.push(w);
      }
    });
    ws.once('open', () =>
      resolve({
        ws,
        messages,
        closed,
        next: (type) => {
          const seen = messages.find((m) => m.type === type);
          if (seen !== undefined) {
            messages.splice(messages.indexOf(seen), 1);
            return Promise.resolve(seen);
          }
          return new Promise((r) => waiters.push({ type, resolve: (m) => { messages.splice(messages.indexOf(m), 1); r(m); } }));
        },
      }),
    );
    ws.once('error', reject);
  });
}

void test('serves the page, its assets and uPlot; refuses everything else', async () => {
  const server = await startDashboard({ port: 0, hub: new DashboardHub() });
  try {
    const page = await get(server.url);
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
    assert.equal(page.headers['referrer-policy'], 'no-referrer');
    assert.match(page.body, /<script src="vendor\/uPlot\.iife\.min\.js"><\/script>/);
    for (const [p, type] of [['/app.js', /javascript/], ['/style.css', /css/], ['/vendor/uPlot.iife.min.js', /javascript/], ['/vendor/uPlot.min.css', /css/]] as const) {
      const r = await get(`${server.url.replace(/\/$/, '')}${p}`);
      assert.equal(r.status, 200, p);
      assert.match(String(r.headers['content-type']), type);
      assert.ok(r.body.length > 500, p);
    }
    assert.match((await get(`${server.url}vendor/uPlot.iife.min.js`)).body, /uPlot/);
    const head = await get(server.url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal((await get(`${server.url}nope`)).status, 404);
    assert.equal((await get(`${server.url}..%2fserver.js`)).status, 404);
    assert.equal((await get(`${server.url}vendor/../../package.json`)).status, 404);
    assert.equal((await get(server.url, { method: 'POST', body: 'x' })).status, 405);
    assert.equal((await get(server.url, { method: 'POST', body: 'x'.repeat(5000) })).status, 413);
    assert.equal((await get(server.url, { headers: { 'x-big': 'y'.repeat(10_000) } })).status, 431);
    await assert.rejects(connect(`${server.url.replace('http', 'ws')}other`), /404/);
  } finally {
    await server.close();
  }
});

void test('token: required on the page and the socket, by query or bearer header', async () => {
  const server = await startDashboard({ port: 0, hub: new DashboardHub(), token: 's3cret' });
  try {
    const wsUrl = `ws://127.0.0.1:${server.port}/ws`;
    assert.equal((await get(server.url)).status, 401);
    assert.equal((await get(`${server.url}?token=nope`)).status, 401);
    assert.equal((await get(`${server.url}?token=s3cret`)).status, 200);
    assert.equal((await get(server.url, { headers: { authorization: 'Bearer s3cret' } })).status, 200);
    await assert.rejects(connect(wsUrl), /401/);
    await assert.rejects(connect(`${wsUrl}?token=s3cre`), /401/);
    const a = await connect(`${wsUrl}?token=s3cret`);
    assert.equal((await a.next('hello')).type, 'hello');
    a.ws.close();
    const b = await connect(wsUrl, { authorization: 'Bearer s3cret', origin: `http://127.0.0.1:${server.port}` });
    assert.equal((await b.next('hello')).type, 'hello');
    b.ws.close();
    await assert.rejects(connect(`${wsUrl}?token=s3cret`, { origin: 'https://evil.example' }), /403/);
  } finally {
    await server.close();
  }
});

void test('a page gets the snapshot on connect, then batched live updates', async () => {
  const hub = new DashboardHub({ flushMs: 20 });
  hub.update({ job: 'j', model: 'vae', status: 'training', totalSteps: 100 });
  for (let s = 1; s <= 5; s++) hub.step({ step: s, epoch: 0, loss: { total: 10 - s, reconstruction: 8 - s, kl: 2 }, samplesPerSecond: 100 });
  hub.workers([{ id: 'w0', status: 'busy', partsDone: 5, failures: 0 }]);
  const png = gridPng({ images: new Float32Array(784).fill(0.5), n: 1 });
  hub.images({ samples: png, step: 5 });
  const server = await startDashboard({ port: 0, hub, pingMs: 100 });
  try {
    const c = await connect(`ws://127.0.0.1:${server.port}/ws`);
    const hello = (await c.next('hello')) as Extract<DashboardMessage, { type: 'hello' }>;
    assert.deepEqual(hello.steps.map((p) => p.step), [1, 2, 3, 4, 5]);
    assert.equal(hello.state.step, 5);
    assert.equal(hello.state.totalSteps, 100);
    assert.equal(hello.workers[0]?.id, 'w0');
    assert.equal(hello.images?.samples, `data:image/png;base64,${png.toString('base64')}`);
    assert.equal(hub.clientCount, 1);

    for (let s = 6; s <= 9; s++) hub.step({ step: s, epoch: 0, loss: { total: 1, reconstruction: 1 } });
    const batch = (await c.next('steps')) as Extract<DashboardMessage, { type: 'steps' }>;
    assert.deepEqual(batch.points.map((p) => p.step), [6, 7, 8, 9], 'four steps, one message');
    assert.equal(((await c.next('state')) as Extract<DashboardMessage, { type: 'state' }>).state.step, 9);
    hub.workers([{ id: 'w0', status: 'lost', partsDone: 5, failures: 1 }]);
    assert.equal(((await c.next('workers')) as Extract<DashboardMessage, { type: 'workers' }>).workers[0]?.status, 'lost');
    assert.equal((await c.next('ping')).type, 'ping');

    // Inbound messages are ignored; an oversize one closes the socket (1009).
    c.ws.send('{"type":"hi"}');
    hub.update({ message: 'still here' });
    assert.equal(((await c.next('state')) as Extract<DashboardMessage, { type: 'state' }>).state.message, 'still here');
    c.ws.send('x'.repeat(5000));
    assert.equal(await c.closed, 1009);

    // Closing the server tells pages it is going away (1001), so they reconnect.
    const d = await connect(`ws://127.0.0.1:${server.port}/ws`);
    await d.next('hello');
    await server.close();
    assert.equal(await d.closed, 1001);
  } finally {
    await server.close();
    hub.close();
  }
});

void test('the number of pages is capped', async () => {
  const server = await startDashboard({ port: 0, hub: new DashboardHub(), maxClients: 1 });
  try {
    const a = await connect(`ws://127.0.0.1:${server.port}/ws`);
    await assert.rejects(connect(`ws://127.0.0.1:${server.port}/ws`), /503/);
    a.ws.close();
    await a.closed;
  } finally {
    await server.close();
  }
});

void test('history stays bounded and keeps the start, the end and the order', () => {
  const hub = new DashboardHub({ maxPoints: 100 });
  for (let s = 1; s <= 10_000; s++) hub.step({ step: s, epoch: 0, loss: { total: 1 / s, reconstruction: 1 / s } });
  const steps = hub.snapshot().steps.map((p) => p.step);
  assert.ok(steps.length <= 100 && steps.length >= 50, `${steps.length} points`);
  assert.equal(steps[0], 1);
  assert.equal(steps[steps.length - 1], 10_000);
  for (let i = 1; i < steps.length; i++) assert.ok((steps[i] as number) > (steps[i - 1] as number));
  // The recent stretch is at full resolution.
  assert.deepEqual(steps.slice(-10), Array.from({ length: 10 }, (_, i) => 9991 + i));
  hub.close();
});

void test('images must be PNGs or image data URLs of bounded size', () => {
  const hub = new DashboardHub({ maxImageBytes: 10_000 });
  assert.throws(() => hub.images({ samples: Buffer.from('not a png') }), { name: 'DataError' });
  assert.throws(() => hub.images({ samples: 'javascript:alert(1)' }), { name: 'DataError' });
  assert.throws(() => hub.images({ samples: 'data:image/png;base64,"><script>' }), { name: 'DataError' });
  const big = gridPng({ images: Float32Array.from({ length: 64 * 784 }, (_, i) => ((i * 7919) % 256) / 255), n: 64 });
  assert.throws(() => hub.images({ samples: big }), /over 10000/);
  hub.images({ samples: 'data:image/png;base64,iVBORw0KGgo=', caption: 'c' });
  hub.images({ manifold: gridPng({ images: new Float32Array(784), n: 1 }) });
  const img = hub.snapshot().images;
  assert.equal(img?.samples, 'data:image/png;base64,iVBORw0KGgo=', 'earlier keys are kept');
  assert.match(img?.manifold ?? '', /^data:image\/png;base64,/);
  assert.equal(img?.caption, 'c');
  hub.close();
});
