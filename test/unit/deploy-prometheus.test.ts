// The shipped Prometheus configs and alert rules, checked by the real promtool (Debian
// package prometheus): check config, check rules, test rules. The rule tests are shown to
// bite: breaking any one alert's expression makes `promtool test rules` fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';

const ROOT = resolve(__dirname, '..', '..', '..');
const PROM = join(ROOT, 'deploy', 'prometheus');

function promtool(...args: string[]): { status: number | null; out: string } {
  const res = spawnSync('promtool', args, { encoding: 'utf8', timeout: 60_000 });
  if (res.error !== undefined) throw res.error;
  return { status: res.status, out: `${res.stdout}${res.stderr}` };
}

function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-prom-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

type Obj = Record<string, unknown>;
function get(v: unknown, ...path: (string | number)[]): unknown {
  let cur = v;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur;
}

void test('promtool is installed', (t) => {
  const v = promtool('--version');
  assert.equal(v.status, 0, v.out);
  t.diagnostic(v.out.split('\n')[0] ?? '');
});

void test('promtool check config: prometheus.yml (docker-compose)', () => {
  const res = promtool('check', 'config', join(PROM, 'prometheus.yml'));
  assert.equal(res.status, 0, res.out);
  assert.match(res.out, /SUCCESS: .*prometheus\.yml is valid prometheus config file syntax/);
  assert.match(res.out, /SUCCESS: 8 rules found/, 'the config loads the rule file');
  assert.doesNotMatch(res.out, /WARNING/);
});

void test('promtool check config: prometheus-k8s.yml (kubernetes_sd_configs)', (t) => {
  const file = join(PROM, 'prometheus-k8s.yml');
  const res = promtool('check', 'config', file);
  if (res.status === 0) {
    assert.match(res.out, /SUCCESS: 8 rules found/);
    return;
  }
  // Debian builds Prometheus without the Kubernetes service discovery (no client-go), so its
  // promtool rejects the kubernetes_sd_configs field itself. Check everything else with the
  // discovery block swapped for static targets, and the discovery block by structure.
  assert.match(res.out, /field kubernetes_sd_configs not found/, `promtool failed for another reason:\n${res.out}`);
  t.diagnostic('this promtool has no kubernetes_sd_configs (Debian build): the rest of the config is checked with static targets in its place');
  const cfg = parse(readFileSync(file, 'utf8')) as Obj;
  const jobs = get(cfg, 'scrape_configs') as Obj[];
  assert.deepEqual(jobs.map((j) => j.job_name), ['lockstep-coordinator', 'lockstep-workers'], 'the job names the alert rules and the compose config use');
  for (const job of jobs) {
    assert.deepEqual(job.kubernetes_sd_configs, [{ role: 'pod', namespaces: { names: ['lockstep'] } }], `${String(job.job_name)}: pod discovery in namespace lockstep`);
    const keep = (job.relabel_configs as Obj[]).filter((r) => r.action === 'keep').map((r) => [String((r.source_labels as string[])[0]), String(r.regex)]);
    const component = String(job.job_name) === 'lockstep-coordinator' ? 'coordinator' : 'worker';
    assert.deepEqual(keep, [
      ['__meta_kubernetes_pod_label_app_kubernetes_io_part_of', 'lockstep'],
      ['__meta_kubernetes_pod_label_app_kubernetes_io_component', component],
      ['__meta_kubernetes_pod_annotation_prometheus_io_scrape', 'true'],
    ]);
    delete job.kubernetes_sd_configs;
    job.static_configs = [{ targets: ['placeholder:9464'] }];
  }
  withTempDir((dir) => {
    mkdirSync(join(dir, 'rules'));
    cpSync(join(PROM, 'rules', 'lockstep.rules.yml'), join(dir, 'rules', 'lockstep.rules.yml'));
    writeFileSync(join(dir, 'prometheus-k8s.yml'), stringify(cfg));
    const again = promtool('check', 'config', join(dir, 'prometheus-k8s.yml'));
    assert.equal(again.status, 0, again.out);
    assert.match(again.out, /SUCCESS: 8 rules found/);
    assert.doesNotMatch(again.out, /WARNING/);
  });
});

void test('the kubernetes relabelling turns a pod annotation into the scrape address', () => {
  // The one regex that is easy to get wrong: pod IP (with or without a port) + annotated port.
  const cfg = parse(readFileSync(join(PROM, 'prometheus-k8s.yml'), 'utf8')) as Obj;
  for (const job of get(cfg, 'scrape_configs') as Obj[]) {
    const rule = (job.relabel_configs as Obj[]).find((r) => r.target_label === '__address__');
    assert.ok(rule);
    // Prometheus anchors relabel regexes (RE2) at both ends.
    const re = new RegExp(`^(?:${String(rule.regex)})$`);
    const apply = (s: string): string | undefined => (re.test(s) ? s.replace(re, String(rule.replacement)) : undefined);
    assert.equal(apply('10.1.2.3:8080;9464'), '10.1.2.3:9464');
    assert.equal(apply('10.1.2.3;9465'), '10.1.2.3:9465');
    assert.equal(apply('10.1.2.3:8080;'), undefined, 'no annotation: address unchanged');
  }
});

void test('promtool check rules: lockstep.rules.yml', () => {
  const res = promtool('check', 'rules', join(PROM, 'rules', 'lockstep.rules.yml'));
  assert.equal(res.status, 0, res.out);
  assert.match(res.out, /SUCCESS: 8 rules found/);
});

void test('promtool test rules: every alert fires on its symptom and stays silent otherwise', () => {
  const res = promtool('test', 'rules', join(PROM, 'rules', 'lockstep.rules.test.yml'));
  assert.equal(res.status, 0, res.out);
  assert.match(res.out, /SUCCESS/);

  const rules = parse(readFileSync(join(PROM, 'rules', 'lockstep.rules.yml'), 'utf8')) as Obj;
  const alerts = ((get(rules, 'groups', 0, 'rules') as Obj[]) ?? []).map((r) => String(r.alert));
  assert.deepEqual(alerts.sort(), [
    'LockstepCheckpointFailing',
    'LockstepCoordinatorDown',
    'LockstepLossNotFinite',
    'LockstepNoStepProgress',
    'LockstepNoWorkers',
    'LockstepStragglersRising',
    'LockstepWorkerLost',
    'LockstepWorkersBelowPeak',
  ]);
  const tests = parse(readFileSync(join(PROM, 'rules', 'lockstep.rules.test.yml'), 'utf8')) as Obj;
  const fired = new Set<string>();
  const silent = new Set<string>();
  for (const tc of get(tests, 'tests') as Obj[]) {
    for (const a of (tc.alert_rule_test as Obj[] | undefined) ?? []) {
      const exp = a.exp_alerts as unknown[];
      (exp.length > 0 ? fired : silent).add(String(a.alertname));
    }
  }
  for (const a of alerts) {
    assert.ok(fired.has(a), `${a}: a test where it fires`);
    assert.ok(silent.has(a), `${a}: a test where it does not fire`);
  }
});

void test('the rule tests bite: breaking any one alert makes promtool test rules fail', () => {
  const rulesText = readFileSync(join(PROM, 'rules', 'lockstep.rules.yml'), 'utf8');
  const testsText = readFileSync(join(PROM, 'rules', 'lockstep.rules.test.yml'), 'utf8');
  const rules = parse(rulesText) as Obj;
  const names = (get(rules, 'groups', 0, 'rules') as Obj[]).map((r) => String(r.alert));
  withTempDir((dir) => {
    writeFileSync(join(dir, 'lockstep.rules.test.yml'), testsText);
    for (const [i, name] of names.entries()) {
      // Two mutations: an alert that never fires, and one that always does.
      for (const expr of ['vector(1) == 0', 'vector(1)']) {
        const mutated = parse(rulesText) as Obj;
        const rule = get(mutated, 'groups', 0, 'rules', i) as Obj;
        rule.expr = expr;
        writeFileSync(join(dir, 'lockstep.rules.yml'), stringify(mutated));
        const res = promtool('test', 'rules', join(dir, 'lockstep.rules.test.yml'));
        assert.notEqual(res.status, 0, `${name} replaced by '${expr}' still passes the rule tests`);
        assert.match(res.out, new RegExp(`alertname: ${name}`), `the failure names ${name}`);
      }
    }
  });
});

void test('every Grafana panel expression is valid PromQL (parsed by promtool)', () => {
  const dash = JSON.parse(readFileSync(join(ROOT, 'deploy', 'grafana', 'dashboards', 'lockstep.json'), 'utf8')) as Obj;
  const exprs: string[] = [];
  for (const p of dash.panels as Obj[]) for (const tg of (p.targets as Obj[] | undefined) ?? []) exprs.push(String(tg.expr));
  assert.ok(exprs.length >= 20);
  withTempDir((dir) => {
    const file = join(dir, 'dashboard-exprs.yml');
    writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:expr_${i}`, expr })) }] }));
    const res = promtool('check', 'rules', file);
    assert.equal(res.status, 0, res.out);
    assert.match(res.out, new RegExp(`SUCCESS: ${exprs.length} rules found`));
    // And promtool does reject a broken one, so the check above means something.
    writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: [{ record: 'dashboard:bad', expr: 'sum(rate(lockstep_samples_total[1m])' }] }] }));
    assert.notEqual(promtool('check', 'rules', file).status, 0);
  });
});
