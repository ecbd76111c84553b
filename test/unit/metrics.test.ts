import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { register as globalRegistry } from 'prom-client';
import { createMetricsRegistry, PROMTOOL_FLAGGED_DEFAULT_METRICS } from '../../shared/metrics/registry.js';
import { DESIGN_COORDINATOR_METRICS, METRIC } from '../../shared/metrics/names.js';
import { createCoordinatorMetrics } from '../../coordinator/metrics.js';
import { createWorkerMetrics } from '../../worker/metrics.js';

const PROMTOOL = '/usr/bin/promtool';

function promtool(text: string): { status: number | null; output: string } {
  const res = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
  if (res.error) throw res.error;
  return { status: res.status, output: `${res.stdout}${res.stderr}`.trim() };
}

function typeOf(text: string, name: string): string | undefined {
  return new RegExp(`^# TYPE ${name} (\\w+)$`, 'm').exec(text)?.[1];
}

function sample(text: string, series: string): number | undefined {
  const escaped = series.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text);
  if (m === null) return undefined;
  // Prometheus text format spells infinities +Inf / -Inf.
  const raw = m[1] as string;
  return raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
}

function driveCoordinator(registry = createMetricsRegistry()) {
  const m = createCoordinatorMetrics(registry);
  m.setTerm(3);
  m.backendInfo({ backend: 'wasm', version: '4.22.0', device: 'cpu x2' });
  m.setWorkers(2);
  m.workerJoined('w-0');
  m.workerJoined('w-1');
  m.setPaused(false);
  for (let s = 1; s <= 3; s++) {
    m.workerCompute('w-0', 0.12 * s);
    m.workerCompute('w-1', 0.15 * s);
    m.gradientBytes('in', 2 * 4096);
    m.aggregation(0.004);
    m.gradientBytes('out', 4096);
    m.stepCompleted({ step: s, epoch: 0, seconds: 0.2 * s, samples: 64, loss: { total: 150 - s, reconstruction: 120 - s, kl: 30 } });
  }
  m.rejected('stale');
  m.rejected('crc_custom');
  m.workerFailure();
  m.straggler();
  m.checkpoint(0.35, true);
  m.checkpoint(0.1, false);
  return { registry, m };
}

void test('coordinator registry passes promtool check metrics and holds every DESIGN.md metric', async () => {
  const { registry } = driveCoordinator();
  const text = await registry.metrics();
  const res = promtool(text);
  assert.equal(res.output, '', `promtool reported:\n${res.output}`);
  assert.equal(res.status, 0);
  for (const name of DESIGN_COORDINATOR_METRICS) assert.ok(typeOf(text, name) !== undefined, `missing ${name}`);
  for (const name of [METRIC.checkpointFailures, METRIC.paused, METRIC.term, METRIC.lastStepTimestamp]) assert.ok(typeOf(text, name) !== undefined, `missing ${name}`);
  assert.equal(typeOf(text, METRIC.stepDuration), 'histogram');
  assert.equal(typeOf(text, METRIC.aggregationDuration), 'histogram');
  assert.equal(typeOf(text, METRIC.workerCompute), 'histogram');
  assert.equal(typeOf(text, METRIC.checkpointDuration), 'histogram');
  assert.equal(typeOf(text, METRIC.samples), 'counter');
  assert.equal(typeOf(text, METRIC.loss), 'gauge');
  // Default process metrics are there, minus the three that promtool flags.
  assert.ok(typeOf(text, 'process_cpu_seconds_total') !== undefined);
  assert.ok(typeOf(text, 'nodejs_active_handles') !== undefined);
  for (const name of PROMTOOL_FLAGGED_DEFAULT_METRICS) assert.equal(typeOf(text, name), undefined, `${name} should be dropped`);
});

void test('coordinator metrics carry the values the run loop reported', async () => {
  const { registry } = driveCoordinator();
  const text = await registry.metrics();
  assert.equal(sample(text, 'lockstep_step'), 3);
  assert.equal(sample(text, 'lockstep_epoch'), 0);
  assert.equal(sample(text, 'lockstep_samples_total'), 192);
  assert.equal(sample(text, 'lockstep_workers'), 2);
  assert.equal(sample(text, 'lockstep_term'), 3);
  assert.equal(sample(text, 'lockstep_paused'), 0);
  assert.equal(sample(text, 'lockstep_loss{component="total"}'), 147);
  assert.equal(sample(text, 'lockstep_loss{component="reconstruction"}'), 117);
  assert.equal(sample(text, 'lockstep_loss{component="kl"}'), 30);
  assert.equal(sample(text, 'lockstep_gradient_bytes_total{direction="in"}'), 3 * 8192);
  assert.equal(sample(text, 'lockstep_gradient_bytes_total{direction="out"}'), 3 * 4096);
  assert.equal(sample(text, 'lockstep_step_duration_seconds_count'), 3);
  assert.ok(Math.abs((sample(text, 'lockstep_step_duration_seconds_sum') ?? 0) - 1.2) < 1e-9);
  assert.equal(sample(text, 'lockstep_aggregation_duration_seconds_count'), 3);
  assert.equal(sample(text, 'lockstep_worker_compute_seconds_count{worker="w-0"}'), 3);
  assert.equal(sample(text, 'lockstep_worker_compute_seconds_count{worker="w-1"}'), 3);
  assert.equal(sample(text, 'lockstep_rejected_messages_total{reason="stale"}'), 1);
  assert.equal(sample(text, 'lockstep_rejected_messages_total{reason="crc_custom"}'), 1);
  assert.equal(sample(text, 'lockstep_rejected_messages_total{reason="duplicate"}'), 0, 'known reasons exist at zero');
  assert.equal(sample(text, 'lockstep_worker_failures_total'), 1);
  assert.equal(sample(text, 'lockstep_stragglers_total'), 1);
  assert.equal(sample(text, 'lockstep_checkpoint_duration_seconds_count'), 1);
  assert.equal(sample(text, 'lockstep_checkpoint_failures_total'), 1);
  assert.equal(sample(text, 'lockstep_backend_info{backend="wasm",version="4.22.0",device="cpu x2"}'), 1);
  const ts = sample(text, 'lockstep_last_step_timestamp_seconds') ?? 0;
  assert.ok(Math.abs(ts - Date.now() / 1000) < 60);
  // Labels stay low-cardinality: no label ever carries a step number.
  assert.doesNotMatch(text, /step="/);
});

void test('a fresh coordinator registry already has the series alerts and panels query', async () => {
  const registry = createMetricsRegistry({ defaultMetrics: false });
  createCoordinatorMetrics(registry);
  const text = await registry.metrics();
  assert.equal(sample(text, 'lockstep_loss{component="kl"}'), 0);
  assert.equal(sample(text, 'lockstep_gradient_bytes_total{direction="in"}'), 0);
  assert.equal(sample(text, 'lockstep_rejected_messages_total{reason="stale-step"}'), 0);
  assert.equal(sample(text, 'lockstep_workers'), 0);
  assert.equal(sample(text, 'lockstep_paused'), 0);
  const res = promtool(text);
  assert.equal(res.output, '');
  // An autoencoder has no KL term: no kl series then.
  const ae = createMetricsRegistry({ defaultMetrics: false });
  createCoordinatorMetrics(ae, { kl: false });
  assert.equal(sample(await ae.metrics(), 'lockstep_loss{component="kl"}'), undefined);
});

void test('non-finite loss, backend change and worker removal', async () => {
  const { registry, m } = driveCoordinator();
  m.stepCompleted({ step: 4, epoch: 0, seconds: 0.3, samples: 64, loss: { total: NaN, reconstruction: Infinity, kl: 1 } });
  m.backendInfo({ backend: 'tfjs-node-gpu', version: '4.22.0', device: 'NVIDIA H200' });
  m.workerRemoved('w-1');
  m.setPaused(true);
  // Bad durations are dropped instead of throwing inside the run loop.
  m.aggregation(NaN);
  m.workerCompute('w-0', -1);
  m.gradientBytes('in', -5);
  const text = await registry.metrics();
  assert.equal(sample(text, 'lockstep_loss{component="total"}'), NaN);
  assert.equal(sample(text, 'lockstep_loss{component="reconstruction"}'), Infinity);
  assert.equal(sample(text, 'lockstep_paused'), 1);
  assert.equal(sample(text, 'lockstep_backend_info{backend="wasm",version="4.22.0",device="cpu x2"}'), undefined, 'old backend label set is gone');
  assert.equal(sample(text, 'lockstep_backend_info{backend="tfjs-node-gpu",version="4.22.0",device="NVIDIA H200"}'), 1);
  assert.equal(sample(text, 'lockstep_worker_compute_seconds_count{worker="w-1"}'), undefined);
  assert.equal(sample(text, 'lockstep_worker_compute_seconds_count{worker="w-0"}'), 3);
  assert.equal(sample(text, 'lockstep_aggregation_duration_seconds_count'), 3);
  assert.equal(sample(text, 'lockstep_gradient_bytes_total{direction="in"}'), 3 * 8192);
  const res = promtool(text);
  assert.equal(res.output, '', res.output);
});

void test('worker registry passes promtool check metrics', async () => {
  const registry = createMetricsRegistry();
  const m = createWorkerMetrics(registry, { workerId: 'worker-7' });
  m.backendInfo({ backend: 'tfjs-node-gpu', version: '4.22.0', device: 'NVIDIA H200' });
  m.partCompleted({ computeSeconds: 0.05, bytes: 1000 });
  m.partCompleted({ computeSeconds: 0.07 });
  m.gradientBytes('out', 1000);
  m.gradientBytes('in', 5000);
  m.rejected('shape');
  const text = await registry.metrics();
  const res = promtool(text);
  assert.equal(res.output, '', `promtool reported:\n${res.output}`);
  assert.equal(res.status, 0);
  assert.equal(typeOf(text, METRIC.partCompute), 'histogram');
  assert.equal(sample(text, 'lockstep_part_compute_seconds_count{worker="worker-7"}'), 2);
  // The coordinator exports lockstep_worker_compute_seconds for the same parts: one name in both would count them twice.
  assert.equal(typeOf(text, METRIC.workerCompute), undefined);
  assert.equal(sample(text, 'lockstep_worker_parts_total{worker="worker-7"}'), 2);
  assert.equal(sample(text, 'lockstep_gradient_bytes_total{direction="out"}'), 2000);
  assert.equal(sample(text, 'lockstep_gradient_bytes_total{direction="in"}'), 5000);
  assert.equal(sample(text, 'lockstep_rejected_messages_total{reason="shape"}'), 1);
  assert.equal(sample(text, 'lockstep_backend_info{backend="tfjs-node-gpu",version="4.22.0",device="NVIDIA H200"}'), 1);
  assert.ok((sample(text, 'lockstep_worker_last_part_timestamp_seconds{worker="worker-7"}') ?? 0) > 1e9);
  for (const name of PROMTOOL_FLAGGED_DEFAULT_METRICS) assert.equal(typeOf(text, name), undefined);
});

void test('registries are independent and the global default registry stays empty', async () => {
  const before = (await globalRegistry.getMetricsAsJSON()).length;
  const a = createMetricsRegistry();
  const b = createMetricsRegistry();
  const ma = createCoordinatorMetrics(a);
  createCoordinatorMetrics(b);
  ma.setWorkers(5);
  assert.equal(sample(await a.metrics(), 'lockstep_workers'), 5);
  assert.equal(sample(await b.metrics(), 'lockstep_workers'), 0);
  assert.equal((await globalRegistry.getMetricsAsJSON()).length, before);
  // A coordinator and a worker can share one registry only if names do not collide: they do, so keep them apart.
  assert.throws(() => createWorkerMetrics(a, { workerId: 'x' }));
});

void test('promtool is a real check: it flags what it should', () => {
  const res = promtool('# HELP bad_gauge_total x\n# TYPE bad_gauge_total gauge\nbad_gauge_total 1\n');
  assert.match(res.output, /non-counter metrics should not have "_total" suffix/);
});
