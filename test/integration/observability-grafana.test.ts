// The shipped Grafana dashboard against a real Prometheus (Debian package) scraping a
// real run: nats-server + `lockstep coordinator` + two `lockstep worker --metrics-port`.
// Every panel's PromQL must return data (a series with a finite value) while the run
// trains; a query that returns nothing or only NaN is a broken panel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, freePort, httpGet, startCluster, tempDir, waitFor } from './observability-harness.js';

interface Target {
  expr: string;
  refId?: string;
  hide?: boolean;
}

interface Panel {
  id?: number;
  title?: string;
  type?: string;
  targets?: Target[];
  panels?: Panel[];
}

interface PanelQuery {
  panel: string;
  refId: string;
  expr: string;
}

function panelQueries(): PanelQuery[] {
  const dash = JSON.parse(fs.readFileSync(path.join(ROOT, 'deploy', 'grafana', 'dashboards', 'lockstep.json'), 'utf8')) as { panels: Panel[] };
  const out: PanelQuery[] = [];
  const walk = (panels: Panel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? []) {
        if (t.hide === true) continue;
        // Grafana's own variables, as Grafana would fill them in for a 1 s scrape interval.
        const expr = t.expr.replace(/\$__rate_interval/g, '1m').replace(/\$__interval/g, '15s').replace(/\$__range/g, '1h');
        out.push({ panel: `${p.id ?? '?'} ${p.title ?? ''}`, refId: t.refId ?? '?', expr });
      }
      walk(p.panels ?? []);
    }
  };
  walk(dash.panels);
  return out;
}

interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(base: string, expr: string): Promise<VectorSample[]> {
  const r = await httpGet(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = JSON.parse(r.body) as { status: string; error?: string; data?: { resultType: string; result: VectorSample[] } };
  if (body.status !== 'success') throw new Error(`query failed: ${expr}: ${body.error ?? r.body}`);
  assert.equal(body.data?.resultType, 'vector', expr);
  return body.data?.result ?? [];
}

const finite = (s: VectorSample): boolean => Number.isFinite(Number(s.value[1]));

void test('every panel of deploy/grafana/dashboards/lockstep.json returns data from a real Prometheus scraping a real run', { timeout: 150_000 }, async (t) => {
  const queries = panelQueries();
  assert.ok(queries.length >= 20, `only ${queries.length} panel queries found`);
  const cluster = await startCluster({ workers: 2, workerMetrics: true, coordinatorArgs: ['--steps', '100000', '--checkpoint-every', '10'] });
  const dir = tempDir('prometheus');
  const promPort = await freePort();
  const host = (url: string): string => new URL(url).host;
  fs.writeFileSync(
    path.join(dir, 'prometheus.yml'),
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 900ms',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      // The job names of deploy/prometheus/prometheus.yml, which the dashboard and alerts use.
      '  - job_name: lockstep-coordinator',
      '    static_configs:',
      `      - targets: ["${host(cluster.metricsUrl)}"]`,
      '        labels: { role: coordinator }',
      '  - job_name: lockstep-workers',
      '    static_configs:',
      `      - targets: [${cluster.workerMetricsUrls.map((u) => `"${host(u)}"`).join(', ')}]`,
      '        labels: { role: worker }',
      '',
    ].join('\n'),
  );
  let promLog = '';
  const prom = spawn('/usr/bin/prometheus', [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  prom.stdout.on('data', (d: Buffer) => (promLog += d.toString()));
  prom.stderr.on('data', (d: Buffer) => (promLog += d.toString()));
  const promExited = new Promise<void>((resolve) => prom.once('close', () => resolve()));
  const base = `http://127.0.0.1:${promPort}`;
  try {
    const alive = [cluster.coordinator, ...cluster.workers];
    await waitFor('prometheus ready', async () => (await httpGet(`${base}/-/ready`)).status === 200, { timeoutMs: 30_000, alive });
    // All three targets up, i.e. Prometheus really scrapes the run.
    await waitFor('three targets up', async () => {
      const up = await query(base, 'up == 1');
      return up.length === 3;
    }, { timeoutMs: 30_000, alive });

    // Poll until every panel has data (rate() needs two scrapes, quantiles need observations in the window).
    const missing = new Map<string, string>();
    const t0 = Date.now();
    try {
      await waitFor('every panel query to return data', async () => {
        missing.clear();
        for (const q of queries) {
          const res = await query(base, q.expr);
          if (!res.some(finite)) missing.set(`${q.panel} [${q.refId}] ${q.expr}`, res.length === 0 ? 'empty result' : `only non-finite values: ${JSON.stringify(res.map((r) => r.value[1]))}`);
        }
        return missing.size === 0;
      }, { timeoutMs: 60_000, intervalMs: 1000, alive });
    } catch (err) {
      assert.fail(`${String(err)}\npanels without data:\n${[...missing].map(([k, v]) => `  ${k}: ${v}`).join('\n')}\nprometheus log:\n${promLog.slice(-2000)}`);
    }
    t.diagnostic(`${queries.length} panel queries all returned data ${((Date.now() - t0) / 1000).toFixed(1)} s after all targets were up`);

    // The per-worker panel counts each part once: only the coordinator exports the
    // per-worker compute histogram, and it lists exactly the run's workers.
    const jobs = await query(base, 'count by (job) (lockstep_worker_compute_seconds_count)');
    assert.deepEqual(jobs.map((s) => s.metric.job), ['lockstep-coordinator']);
    const perWorker = await query(base, 'sum by (worker) (rate(lockstep_worker_compute_seconds_count[1m]))');
    assert.deepEqual(perWorker.map((s) => s.metric.worker).sort(), cluster.workerIds);
    const exit = await cluster.stop();
    assert.equal(exit.code, 0, cluster.coordinator.stderr().slice(-3000));
  } finally {
    prom.kill('SIGTERM');
    const timer = setTimeout(() => prom.kill('SIGKILL'), 5000);
    await promExited;
    clearTimeout(timer);
    await cluster.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
