// The live dashboard during a REAL run: `lockstep train --workers 2` (embedded
// nats-server, coordinator and two worker processes from dist/bin/lockstep.js)
// serves the page; Debian's chromium (playwright-core) loads it mid-run, waits for
// the chart to hold points and the model's images to load, checks the worker table
// and saves a screenshot under the test's output folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';
import { exitWithin, freePort, httpGet, outputDir, spawnLockstep, tempDir, waitFor } from '../integration/observability-harness.js';

function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

void test('dashboard during a real run: chart points, model images, every worker listed, screenshot', { timeout: 120_000 }, async (t) => {
  const outDir = outputDir('dashboard-live');
  const dir = tempDir('dashboard-live');
  const port = await freePort();
  // A 2-d latent VAE: the page shows reconstructions, decoder samples and the manifold grid.
  const run = spawnLockstep('train', [
    'train', '--workers', '2', '--job', 'live-dashboard',
    '--model', 'vae', '--arch', 'mlp', '--hidden-units', '64', '--latent-dim', '2', '--lr', '0.003',
    '--train-limit', '256', '--batch-size', '32', '--steps', '2000', '--backend', 'wasm',
    '--dashboard-port', String(port), '--metrics-port', '0', '--checkpoint-every', '0',
    '--checkpoint-dir', path.join(dir, 'checkpoints'), '--log-level', 'warn', '--json',
  ]);
  let browser: Browser | undefined;
  const t0 = Date.now();
  const mark = (what: string): void => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  try {
    const url = `http://127.0.0.1:${port}/`;
    await waitFor('the dashboard to answer', async () => (await httpGet(url)).status === 200, { alive: [run], timeoutMs: 30_000 });
    mark('dashboard answers');
    browser = await launchChromium();
    mark('chromium started');
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });
    const res = await page.goto(url);
    assert.equal(res?.status(), 200);

    // The chart fills from the run's steps (at least two points), over the WebSocket.
    await page.waitForFunction(() => Number((document.querySelector('#loss-chart') as HTMLElement).dataset.points) >= 2, undefined, { timeout: 30_000 });
    assert.equal(await page.getAttribute('body', 'data-connection'), 'open');
    mark('chart has two points');
    // The model's images: rendered by the coordinator from the live weights.
    await page.waitForFunction(() => ['#img-reconstructions', '#img-samples', '#img-manifold'].every((sel) => {
      const img = document.querySelector(sel) as HTMLImageElement;
      return !img.hidden && img.complete && img.naturalWidth > 0;
    }), undefined, { timeout: 30_000 });
    mark('images loaded');
    const sizes = await page.$$eval('#img-reconstructions, #img-samples, #img-manifold', (imgs) => imgs.map((i) => [(i as HTMLImageElement).naturalWidth, (i as HTMLImageElement).naturalHeight]));
    // Two rows of 8 inputs above their reconstructions and 4x8 samples (28 px at scale 2, 1 px gaps); 15x15 manifold of 28 px digits.
    assert.deepEqual(sizes, [[1 + 8 * 57, 1 + 4 * 57], [1 + 8 * 57, 1 + 4 * 57], [15 * 28, 15 * 28]]);

    // Every worker of the run is in the table.
    await page.waitForFunction(() => document.querySelectorAll('#workers-body tr[data-worker-id]').length === 2, undefined, { timeout: 15_000 });
    const rows = await page.$$eval('#workers-body tr[data-worker-id]', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent ?? '')));
    assert.deepEqual(rows.map((r) => r[0]), ['w0', 'w1']);
    for (const r of rows) {
      assert.equal(r[2], 'wasm', 'backend column');
      assert.match(r[4] ?? '', /^(idle|busy)$/, 'status column');
    }
    // Let the run go on until the images come from a model that has learnt something (the
    // coordinator renders every 3 s), so the screenshot shows a trend and digits.
    await page.waitForFunction(() => Number(/at step (\d+)/.exec(document.querySelector('#images-hint')?.textContent ?? '')?.[1] ?? 0) >= 200, undefined, { timeout: 60_000 });
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#workers-body tr[data-worker-id] td:nth-child(7)')).every((td) => Number(td.textContent) > 0), undefined, { timeout: 15_000 });
    assert.equal(await page.textContent('#run-status'), 'training');
    assert.equal(await page.textContent('#chip-job'), 'job live-dashboard');
    assert.match((await page.textContent('#stat-workers')) ?? '', /^2 \/ 2$/);

    mark('images of step 200 or later, parts counted');
    const shot = path.join(outDir, 'dashboard-live.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(fs.statSync(shot).size > 20_000);
    t.diagnostic(`screenshot: ${shot}`);
    assert.deepEqual(pageErrors, []);
  } finally {
    await browser?.close();
    // SIGTERM to the launcher: the coordinator finishes its step and stops the workers.
    run.child.kill('SIGTERM');
    await exitWithin(run, 20_000);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const exit = await run.exited;
  assert.equal(exit.code, 0, run.stderr().slice(-3000));
});
