// Every bench part runs end to end on a tiny configuration (`--quick`: tiny
// models, a few steps, real child processes and a real nats-server), and its
// outputs have the structure BENCHMARKS.md and the issue notes are built from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { PNG } from 'pngjs';
import { PARTS, parseBenchArgs, runBench, updateBenchmarksDoc, type BenchReport } from '../bench/main.js';
import { pngSize } from '../bench/plots.js';
import type { ScalingResults } from '../bench/scaling.js';
import type { QualityResults } from '../bench/quality.js';
import type { CheckpointResults } from '../bench/checkpoint-cost.js';
import type { ComputeBenchResult } from '../bench/compute.js';

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let buf = '';
  stream.on('data', (d: Buffer) => (buf += d.toString('utf8')));
  return { stream, text: () => buf };
}

function assertPng(file: string): void {
  assert.ok(existsSync(file), `${file} exists`);
  const bytes = readFileSync(file);
  const size = pngSize(bytes);
  assert.ok(size !== null, `${file} starts like a PNG`);
  // A full decode (CRCs, zlib stream) by a well-kept library.
  const img = PNG.sync.read(bytes);
  assert.equal(img.width, size.width);
  assert.ok(img.width >= 50 && img.height >= 50, `${file} is ${img.width}x${img.height}`);
}

void test('bench arguments: parts, --quick, --out; bad input is refused', () => {
  assert.deepEqual(parseBenchArgs([]).parts, [...PARTS]);
  const a = parseBenchArgs(['scaling', 'quality', '--quick', '--out', '/tmp/x']);
  assert.deepEqual(a.parts, ['scaling', 'quality']);
  assert.equal(a.quick, true);
  assert.equal(a.out, '/tmp/x');
  assert.throws(() => parseBenchArgs(['scalling']), /unknown bench argument 'scalling'/);
  assert.throws(() => parseBenchArgs(['--out']), /--out: missing directory/);
  assert.throws(() => parseBenchArgs(['--quick', '--update-docs']), /full-size figures only/);
});

void test('every bench part but faults runs on a tiny configuration and writes results.json, results.md and valid PNGs', async () => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'lockstep-bench-test-'));
  try {
    const stdout = collect();
    const stderr = collect();
    // faults has its own file (bench-faults.test.ts): its nine scenarios take about a minute by themselves.
    const parts = PARTS.filter((p) => p !== 'faults');
    const code = await runBench([...parts, '--quick', '--out', out], { stdout: stdout.stream, stderr: stderr.stream });
    assert.equal(code, 0, stderr.text().slice(-3000));
    assert.match(stdout.text(), /machine\s+.+\d+ cores/);
    assert.match(stdout.text(), /backend\s+\S+/);
    assert.match(stderr.text(), /\[scaling\] 1 worker/, 'long parts show progress on stderr');

    const report = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8')) as BenchReport;
    assert.equal(report.suite, 'lockstep bench');
    assert.equal(report.quick, true);
    assert.ok(report.machine.cores >= 1 && report.machine.cpuModel.length > 0 && report.machine.backend.name.length > 0);
    assert.deepEqual(Object.keys(report.parts).sort(), [...parts].sort());
    for (const name of parts) {
      const p = report.parts[name];
      assert.ok(p !== undefined);
      assert.equal(p.status, 'ok', `${name}: ${p.error ?? ''}`);
      assert.ok(p.seconds > 0 && p.loadAverage.length === 2);
    }

    const compute = report.parts.compute?.results as ComputeBenchResult;
    assert.deepEqual(compute.steps.map((s) => s.model), ['conv-ae', 'conv-vae', 'conv-cvae', 'mlp-vae']);

    const scaling = report.parts.scaling?.results as ScalingResults;
    assert.deepEqual(scaling.runs.map((r) => r.workers), [0, 1, 2]);
    for (const r of scaling.runs) assert.ok(r.samplesPerSecond > 0 && Number.isFinite(r.samplesPerSecond), r.label);
    for (const r of scaling.runs.slice(1)) {
      const b = r.breakdown;
      assert.ok(b !== null && b.computeSeconds > 0 && b.stepSeconds >= b.computeSeconds && b.outsideComputeShare >= 0 && b.outsideComputeShare < 1, r.label);
    }
    assert.ok(scaling.maxRelativeLossDifference <= 1e-5, `in-process, 1 and 2 workers did the same math (${scaling.maxRelativeLossDifference})`);
    assert.ok(scaling.nats.mbPerSecond > 0 && scaling.nats.payloadBytes === scaling.modelBytes);
    assert.ok(scaling.costs.decodeSecondsPerMB > 0 && scaling.costs.sumSecondsPerMB > 0 && scaling.costs.adamSecondsPerMB > 0);
    assert.deepEqual([...new Set(scaling.simulation.rows.map((r) => r.workers))], [8, 32, 128]);
    const one = scaling.simulation.rows.find((r) => r.workers === 128 && r.aggregators === 1);
    const eight = scaling.simulation.rows.find((r) => r.workers === 128 && r.aggregators === 8);
    assert.ok(one !== undefined && eight !== undefined && eight.aggregatorSeconds < one.aggregatorSeconds, 'sharding the aggregator cuts its time');
    assert.equal(scaling.targets.length, 3);

    const quality = report.parts.quality?.results as QualityResults;
    assert.deepEqual(quality.runs.map((r) => `${r.spec.name}/${r.spec.workers}`), ['mlp-vae/2', 'mlp-vae/1', 'conv-vae/1', 'conv-cvae/1', 'conv-ae/1']);
    for (const r of quality.runs) {
      assert.equal(r.eval.images, 200);
      assert.ok(Number.isFinite(r.eval.reconstruction));
      assert.equal(r.eval.negElbo === undefined, r.spec.model === 'ae');
      assert.ok(r.samples.length >= 1);
      assert.ok(r.steady.samplesPerSecond > 0 && r.steady.breakdown.computeSeconds > 0, `${r.spec.name}: steady-state figures from its timeline`);
      for (const f of r.samples) assertPng(f);
    }
    assert.ok(quality.equivalence.within1e5, JSON.stringify(quality.equivalence));
    assert.ok(quality.intensityEntropyFloorNats > 0);

    const ckpt = report.parts.checkpoint?.results as CheckpointResults;
    assert.equal(ckpt.runs[1].checkpointSeconds.length, 3, 'checkpoints at steps 2 and 4, and the end of the run');
    assert.equal(ckpt.runs[0].checkpointSeconds.length, 1, 'only the end-of-run checkpoint');
    assert.ok(ckpt.writeSeconds.mean > 0 && Number.isFinite(ckpt.scheduleCost) && ckpt.checkpointBytes > ckpt.modelParams * 4);
    assert.ok(Number.isFinite(ckpt.abCost) && Number.isFinite(ckpt.abCostControlled));

    const md = readFileSync(path.join(out, 'results.md'), 'utf8');
    for (const h of ['## Compute', '## Scaling', '## Quality', '## Checkpoints']) assert.ok(md.includes(h), h);
    assert.ok(!md.includes('## Faults'), 'only the parts asked for');
    assert.match(md, /^\| run \| samples\/s \(steady\) \|/m);
    assert.match(md, /^\| --- \|/m);
    assert.match(md, /!\[scaling\.png\]\(scaling\.png\)/);
    for (const f of ['scaling.png', 'aggregation-sim.png', 'loss-curves.png']) assertPng(path.join(out, f));
    for (const name of parts) for (const f of report.parts[name]?.plots ?? []) assertPng(path.join(out, f));

    // BENCHMARKS.md sections are replaced from the same report, one per part.
    const doc = '# B\n<!-- bench:scaling:begin -->\nold\n<!-- bench:scaling:end -->\ntail\n';
    const fresh = updateBenchmarksDoc(doc, report, { scaling: 'NEW TABLE\n![scaling.png](scaling.png)\n![aggregation-sim.png](aggregation-sim.png)' });
    assert.match(fresh, /NEW TABLE/);
    assert.doesNotMatch(fresh, /old|aggregation-sim|scaling\.png/, 'run plots are not committed: no links to them');
    assert.match(fresh, /Measured .* cores/);
    assert.ok(fresh.endsWith('<!-- bench:scaling:end -->\ntail\n'));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
