// /metrics, /healthz and /readyz of a live run: nats-server + `lockstep coordinator`
// + two `lockstep worker --metrics-port`, each its own process. The real promtool
// checks both expositions; every DESIGN.md metric is there; labels stay bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DESIGN_COORDINATOR_METRICS, LOCKSTEP_LABELS, METRIC, WORKER_METRICS } from '../../shared/metrics/names.js';
import { httpGet, promtoolCheckMetrics, sampleValue, startCluster, waitFor } from './observability-harness.js';

/** Metric families declared in the exposition: name -> type. */
function families(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1] as string, m[2] as string);
  return out;
}

interface Series {
  name: string;
  labels: Record<string, string>;
}

/** Every lockstep_* sample line as name + labels. */
function lockstepSeries(text: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('lockstep_')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$/.exec(line);
    assert.ok(m, `unparsable sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    out.push({ name: m[1] as string, labels });
  }
  return out;
}

const key = (s: Series): string => `${s.name}{${Object.entries(s.labels).sort().map(([k, v]) => `${k}=${v}`).join(',')}}`;

function assertBoundedLabels(text: string, workerIds: string[], where: string): Series[] {
  const series = lockstepSeries(text);
  assert.ok(series.length > 0, `${where}: no lockstep_* series`);
  for (const s of series) {
    for (const [name, value] of Object.entries(s.labels)) {
      assert.ok((LOCKSTEP_LABELS as readonly string[]).includes(name), `${where}: ${s.name} has label ${name}; allowed: ${LOCKSTEP_LABELS.join(', ')}`);
      if (name === 'worker') assert.ok(workerIds.includes(value), `${where}: ${s.name}{worker="${value}"} is not one of the run's workers`);
    }
  }
  return series;
}

void test('a live run: coordinator and worker /metrics pass promtool, carry the DESIGN.md set, bounded labels, and the probes answer', { timeout: 120_000 }, async (t) => {
  const cluster = await startCluster({ workers: 2, workerMetrics: true, deferWorkers: true, coordinatorArgs: ['--steps', '100000', '--checkpoint-every', '4'] });
  try {
    // Before any worker: alive, not ready.
    await waitFor('the coordinator metrics server', async () => (await httpGet(`${cluster.metricsUrl}/healthz`)).status === 200, { alive: [cluster.coordinator] });
    const notReady = await httpGet(`${cluster.metricsUrl}/readyz`);
    assert.equal(notReady.status, 503, 'not ready before the first step');
    assert.deepEqual(JSON.parse(notReady.body), { status: 'fail', detail: 'starting' });
    assert.equal(sampleValue((await httpGet(`${cluster.metricsUrl}/metrics`)).body, 'lockstep_workers'), 0);

    cluster.startWorkers();
    const alive = [cluster.coordinator, ...cluster.workers];
    const first = await waitFor('step 6 and a checkpoint on /metrics', async () => {
      const r = await httpGet(`${cluster.metricsUrl}/metrics`);
      return (sampleValue(r.body, 'lockstep_step') ?? 0) >= 6 && (sampleValue(r.body, 'lockstep_checkpoint_duration_seconds_count') ?? 0) >= 1 ? r : undefined;
    }, { alive, timeoutMs: 60_000 });

    // The coordinator.
    assert.match(first.contentType, /^text\/plain; version=0\.0\.4/);
    const check = promtoolCheckMetrics(first.body);
    assert.equal(check.output, '', `promtool check metrics (coordinator) reported:\n${check.output}`);
    assert.equal(check.status, 0);
    const fam = families(first.body);
    // DESIGN.md section 6, spelled out here so that the test does not trust the code's own list.
    const design = ['lockstep_step_duration_seconds', 'lockstep_loss', 'lockstep_samples_total', 'lockstep_workers', 'lockstep_step', 'lockstep_epoch', 'lockstep_gradient_bytes_total', 'lockstep_aggregation_duration_seconds', 'lockstep_worker_compute_seconds', 'lockstep_rejected_messages_total', 'lockstep_worker_failures_total', 'lockstep_stragglers_total', 'lockstep_checkpoint_duration_seconds', 'lockstep_backend_info'];
    assert.deepEqual([...DESIGN_COORDINATOR_METRICS].sort(), [...design].sort());
    for (const name of design) assert.ok(fam.has(name), `coordinator /metrics lacks ${name}`);
    assert.equal(fam.get(METRIC.stepDuration), 'histogram');
    assert.equal(fam.get(METRIC.aggregationDuration), 'histogram');
    assert.equal(fam.get(METRIC.workerCompute), 'histogram');
    assert.equal(fam.get(METRIC.checkpointDuration), 'histogram');
    assert.equal(fam.get(METRIC.samples), 'counter');
    assert.equal(fam.get(METRIC.loss), 'gauge');
    // Default process metrics, minus the three gauges promtool flags.
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes']) assert.ok(fam.has(name), `lacks ${name}`);
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) assert.ok(!fam.has(name), `${name} should be dropped`);
    for (const c of ['total', 'reconstruction', 'kl']) assert.ok(Number.isFinite(sampleValue(first.body, `lockstep_loss{component="${c}"}`)), `loss ${c}`);
    for (const d of ['in', 'out']) assert.ok((sampleValue(first.body, `lockstep_gradient_bytes_total{direction="${d}"}`) ?? 0) > 0, `gradient bytes ${d}`);
    assert.equal(sampleValue(first.body, 'lockstep_workers'), 2);
    assert.ok((sampleValue(first.body, 'lockstep_samples_total') ?? 0) >= 6 * 32);
    for (const w of cluster.workerIds) assert.ok((sampleValue(first.body, `lockstep_worker_compute_seconds_count{worker="${w}"}`) ?? 0) >= 1, `compute time of ${w}`);
    assert.match(first.body, /^lockstep_backend_info\{backend="wasm",version="[^"]+",device="[^"]+"\} 1$/m);
    const before = assertBoundedLabels(first.body, cluster.workerIds, 'coordinator');

    const ready = await httpGet(`${cluster.metricsUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(JSON.parse(ready.body), { status: 'ok', detail: 'training' });
    const health = await httpGet(`${cluster.metricsUrl}/healthz`);
    assert.equal(health.status, 200);

    // The workers.
    for (const [i, url] of cluster.workerMetricsUrls.entries()) {
      const id = cluster.workerIds[i] as string;
      const r = await httpGet(`${url}/metrics`);
      assert.equal(r.status, 200);
      const wc = promtoolCheckMetrics(r.body);
      assert.equal(wc.output, '', `promtool check metrics (worker ${id}) reported:\n${wc.output}`);
      assert.equal(wc.status, 0);
      const wf = families(r.body);
      for (const name of WORKER_METRICS) assert.ok(wf.has(name), `worker ${id} /metrics lacks ${name}`);
      assert.ok(wf.has('process_cpu_seconds_total'), 'worker process metrics');
      // The coordinator counts the same parts under lockstep_worker_compute_seconds: the
      // worker must not export that name too, or a sum over both jobs counts each part twice.
      assert.ok(!wf.has(METRIC.workerCompute), `worker ${id} exports ${METRIC.workerCompute} as well as the coordinator`);
      assert.ok((sampleValue(r.body, `lockstep_part_compute_seconds_count{worker="${id}"}`) ?? 0) >= 1, `${id} computed parts`);
      assert.ok((sampleValue(r.body, `lockstep_worker_parts_total{worker="${id}"}`) ?? 0) >= 1);
      assert.ok((sampleValue(r.body, 'lockstep_gradient_bytes_total{direction="out"}') ?? 0) > 0);
      assertBoundedLabels(r.body, [id], `worker ${id}`);
      for (const probe of ['healthz', 'readyz']) {
        const p = await httpGet(`${url}/${probe}`);
        assert.equal(p.status, 200, `worker ${id} /${probe}`);
      }
    }

    // Cardinality does not grow with the run: more steps, the very same series.
    const firstStep = sampleValue(first.body, 'lockstep_step') ?? 0;
    const later = await waitFor('more steps', async () => {
      const r = await httpGet(`${cluster.metricsUrl}/metrics`);
      return (sampleValue(r.body, 'lockstep_step') ?? 0) >= firstStep + 8 ? r.body : undefined;
    }, { alive, timeoutMs: 30_000 });
    const after = assertBoundedLabels(later, cluster.workerIds, 'coordinator (later)');
    // A rejection reason seen for the first time adds a series (a fixed set in the code, e.g.
    // stale-step after a straggler's backup copy); nothing else may appear as steps go by.
    const rejected = (s: Series): boolean => s.name === METRIC.rejectedMessages;
    for (const s of after.filter(rejected)) assert.match(s.labels.reason ?? '', /^[a-z][a-z-]*$/, 'a reason is a word from the code, not data');
    assert.deepEqual(after.filter((s) => !rejected(s)).map(key).sort(), before.filter((s) => !rejected(s)).map(key).sort(), 'the set of lockstep_* series changed as steps went by');
    t.diagnostic(`coordinator: ${before.length} lockstep_* series at step ${firstStep}, same set at step ${sampleValue(later, 'lockstep_step')}`);

    const exit = await cluster.stop();
    assert.equal(exit.code, 0, cluster.coordinator.stderr().slice(-3000));
    const result = JSON.parse(cluster.coordinator.stdout().trim().split('\n').pop() as string) as { steps: number; workers: number };
    assert.ok(result.steps >= firstStep + 8);
    assert.equal(result.workers, 2);
  } finally {
    await cluster.stop();
  }
});
