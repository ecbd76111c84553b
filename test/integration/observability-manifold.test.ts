// A 2-d latent run renders the classic manifold grid (Kingma & Welling 2014, fig. 4):
// the live dashboard sends it during a real `lockstep train --workers 2 --latent-dim 2`
// run, and `lockstep sample --manifold` writes it from the run's checkpoint, through the
// one image path (shared/images, PNG via pngjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';
import WebSocket from 'ws';
import { exitWithin, freePort, httpGet, parseLogLines, spawnLockstep, tempDir, waitFor } from './observability-harness.js';

const K = 15;
const SIDE = 28;

/** Mean brightness of each 28x28 tile of a k x k grid without gaps. */
function tileMeans(png: PNG): number[] {
  const means: number[] = [];
  for (let ty = 0; ty < K; ty++) {
    for (let tx = 0; tx < K; tx++) {
      let s = 0;
      for (let y = 0; y < SIDE; y++) for (let x = 0; x < SIDE; x++) s += png.data[((ty * SIDE + y) * png.width + tx * SIDE + x) * 4] as number;
      means.push(s / (SIDE * SIDE));
    }
  }
  return means;
}

function assertManifold(png: PNG, where: string): void {
  assert.equal(png.width, K * SIDE, `${where}: width`);
  assert.equal(png.height, K * SIDE, `${where}: height`);
  // Decoded digits, not a blank or uniform image: the tiles differ across the latent plane.
  const means = tileMeans(png);
  const spread = Math.max(...means) - Math.min(...means);
  assert.ok(spread > 5, `${where}: tiles look alike (brightness spread ${spread.toFixed(1)} of 255)`);
}

async function manifoldFromDashboard(port: number, alive: Parameters<typeof waitFor>[2]): Promise<{ png: PNG; step: number }> {
  return waitFor('a manifold image on the dashboard socket', () => new Promise<{ png: PNG; step: number } | undefined>((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const timer = setTimeout(() => {
      ws.terminate();
      resolve(undefined);
    }, 5000);
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { type: string; images?: { manifold?: string; step?: number } | null };
      const url = msg.type === 'hello' || msg.type === 'images' ? msg.images?.manifold : undefined;
      if (url === undefined) return;
      clearTimeout(timer);
      ws.close();
      const m = /^data:image\/png;base64,(.+)$/.exec(url);
      resolve(m === null ? undefined : { png: PNG.sync.read(Buffer.from(m[1] as string, 'base64')), step: msg.images?.step ?? 0 });
    });
    ws.on('error', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
  }), { timeoutMs: 30_000, ...alive });
}

void test('--latent-dim 2: the dashboard and `lockstep sample --manifold` render the 15x15 manifold grid', { timeout: 90_000 }, async (t) => {
  const dir = tempDir('manifold');
  const port = await freePort();
  const ckpt = path.join(dir, 'checkpoints');
  const run = spawnLockstep('train', [
    'train', '--workers', '2', '--model', 'vae', '--arch', 'mlp', '--hidden-units', '64', '--latent-dim', '2', '--lr', '0.003',
    '--train-limit', '256', '--batch-size', '32', '--steps', '100000', '--backend', 'wasm', '--checkpoint-every', '0', '--checkpoint-dir', ckpt,
    '--dashboard-port', String(port), '--metrics-port', '0', '--log-level', 'warn', '--json',
  ]);
  try {
    await waitFor('the dashboard', async () => (await httpGet(`http://127.0.0.1:${port}/`)).status === 200, { alive: [run], timeoutMs: 30_000 });
    // A render after some training (the coordinator draws every second at first, then every 3 s).
    let live = await manifoldFromDashboard(port, { alive: [run] });
    while (live.step < 40) {
      await new Promise((r) => setTimeout(r, 500));
      live = await manifoldFromDashboard(port, { alive: [run] });
    }
    assertManifold(live.png, `dashboard manifold at step ${live.step}`);
    t.diagnostic(`dashboard manifold ${live.png.width}x${live.png.height} at step ${live.step}`);
  } finally {
    run.child.kill('SIGTERM');
    await exitWithin(run, 20_000);
  }
  try {
    const exit = await run.exited;
    assert.equal(exit.code, 0, run.stderr().slice(-3000));
    const result = JSON.parse(run.stdout().trim()) as { checkpoint: string; steps: number };
    assert.ok(result.checkpoint.startsWith(ckpt), 'the stopped run wrote a checkpoint');

    // `lockstep sample --manifold`: the grid is the output file.
    const out = path.join(dir, 'manifold.png');
    const s1 = spawnLockstep('sample', ['sample', '--checkpoint', ckpt, '--manifold', '--out', out, '--json', '--log-level', 'warn']);
    assert.equal((await s1.exited).code, 0, s1.stderr());
    assert.deepEqual(parseLogLines(s1.stderr()).lines, [], '--log-level warn: nothing to say');
    assert.equal((JSON.parse(s1.stdout()) as { out: string }).out, out);
    assertManifold(PNG.sync.read(fs.readFileSync(out)), 'sample --manifold');

    // Without --manifold: samples, reconstructions, and the grid beside them.
    const base = path.join(dir, 'samples.png');
    const s2 = spawnLockstep('sample', ['sample', '--checkpoint', ckpt, '--out', base, '--count', '32', '--json', '--log-level', 'info']);
    assert.equal((await s2.exited).code, 0, s2.stderr());
    const toolLines = parseLogLines(s2.stderr()).lines;
    assert.ok(toolLines.length > 0 && toolLines.every((l) => l.rec.role === 'tool' && l.rec.job === 'sample'), 'sample logs as role tool at info');
    const files = (JSON.parse(s2.stdout()) as { files: string[] }).files;
    assert.deepEqual(files.map((f) => path.basename(f)).sort(), ['samples-manifold.png', 'samples-reconstructions.png', 'samples.png']);
    assertManifold(PNG.sync.read(fs.readFileSync(path.join(dir, 'samples-manifold.png'))), 'samples-manifold.png');
    const samples = PNG.sync.read(fs.readFileSync(base));
    assert.deepEqual([samples.width, samples.height], [1 + 8 * 57, 1 + 4 * 57], '32 samples, 8 per row, 28 px at scale 2 with 1 px gaps');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
