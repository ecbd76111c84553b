// Structural checks of everything under deploy/ that cannot run here (no Docker engine, no
// cluster): docker-compose, Dockerfiles, Kubernetes manifests (raw, and rendered by
// `kubectl kustomize` when kubectl is installed), Prometheus targets and the Grafana dashboard.
// Flags and environment variables are checked against the real CLI schema
// (shared/config): each container's argv + env must compile for its subcommand, and the
// ports, checkpoint path and NATS identity it compiles to must match the ports it exposes,
// the volume it mounts and the user NATS knows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { METRIC } from '../../shared/metrics/names.js';
import { OPTIONS, envName } from '../../shared/config/spec.js';
import { parseArgv } from '../../shared/config/argv.js';
import { compileOptions } from '../../shared/config/compile.js';

const ROOT = resolve(__dirname, '..', '..', '..');
const DEPLOY = join(ROOT, 'deploy');

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
function obj(v: unknown, what: string): Obj {
  assert.ok(isObj(v), `${what}: expected a mapping, got ${JSON.stringify(v)}`);
  return v;
}
function arr(v: unknown, what: string): unknown[] {
  assert.ok(Array.isArray(v), `${what}: expected a list, got ${JSON.stringify(v)}`);
  return v;
}
function str(v: unknown, what: string): string {
  assert.equal(typeof v, 'string', `${what}: expected a string, got ${JSON.stringify(v)}`);
  return v as string;
}
function get(v: unknown, ...path: (string | number)[]): unknown {
  let cur = v;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur;
}
function read(rel: string): string {
  return readFileSync(join(ROOT, rel), 'utf8');
}
function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Contracts

/** Environment names lockstep reads: LOCKSTEP_<FLAG> for every option of the CLI schema. */
const FLAG_ENV = new Set(OPTIONS.map((o) => envName(o.flag)));
/** Read by the image entrypoints (deploy/docker/entrypoint-lib.sh), turned into LOCKSTEP_<X>. */
const ENTRYPOINT_FILE_ENV = new Map([
  ['LOCKSTEP_NATS_PASS_FILE', 'LOCKSTEP_NATS_PASS'],
  ['LOCKSTEP_NATS_TOKEN_FILE', 'LOCKSTEP_NATS_TOKEN'],
  ['LOCKSTEP_DASHBOARD_TOKEN_FILE', 'LOCKSTEP_DASHBOARD_TOKEN'],
]);
const COORDINATOR_METRICS_PORT = 9464;
const WORKER_METRICS_PORT = 9465;
const DASHBOARD_PORT = 8080;
const NATS_PORT = 4222;

/** prom-client's default metrics (collectDefaultMetrics) that a dashboard may use. */
const PROM_CLIENT_DEFAULTS = new Set([
  'process_cpu_seconds_total',
  'process_cpu_user_seconds_total',
  'process_cpu_system_seconds_total',
  'process_start_time_seconds',
  'process_resident_memory_bytes',
  'process_virtual_memory_bytes',
  'process_heap_bytes',
  'process_open_fds',
  'process_max_fds',
  'nodejs_heap_size_total_bytes',
  'nodejs_heap_size_used_bytes',
  'nodejs_external_memory_bytes',
  'nodejs_eventloop_lag_seconds',
]);
const LOCKSTEP_METRICS = new Set<string>(Object.values(METRIC));

/** Users defined in deploy/nats/auth.conf and the environment variable holding each password. */
function natsUsers(): Map<string, string> {
  const text = read('deploy/nats/auth.conf');
  const users = new Map<string, string>();
  for (const m of text.matchAll(/user:\s*"([^"]+)",\s*password:\s*\$([A-Z0-9_]+)/g)) users.set(m[1] as string, m[2] as string);
  assert.ok(users.size >= 2, 'auth.conf defines users');
  return users;
}

function passwordVar(id: string): string {
  return `LOCKSTEP_NATS_PASS_${id.toUpperCase().replace(/-/g, '_')}`;
}

/** The metric names a PromQL expression reads (functions, keywords, labels, durations removed). */
export function promqlMetricNames(expr: string): Set<string> {
  let e = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
  e = e.replace(/\{[^}]*\}/g, ' ');
  e = e.replace(/\[[^\]]*\]/g, ' ');
  e = e.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const keywords = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);
  const out = new Set<string>();
  const re = /(\d+(?:\.\d+)?(?:e[+-]?\d+)?)|([a-zA-Z_:][a-zA-Z0-9_:]*)/gi;
  for (const m of e.matchAll(re)) {
    const name = m[2];
    if (name === undefined) continue;
    const after = e.slice((m.index ?? 0) + name.length).trimStart();
    if (after.startsWith('(')) continue; // a function or aggregation
    if (keywords.has(name.toLowerCase())) continue;
    out.add(name);
  }
  return out;
}

/** A metric name or one of the series of a histogram (_bucket, _sum, _count) of a known name. */
function knownMetric(name: string, extra: ReadonlySet<string> = new Set()): boolean {
  const known = (n: string): boolean => LOCKSTEP_METRICS.has(n) || PROM_CLIENT_DEFAULTS.has(n) || extra.has(n);
  if (known(name)) return true;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  return m !== null && known(m[1] as string);
}

void test('every YAML file under deploy/ parses (no duplicate keys, no syntax errors)', () => {
  const files = walk(DEPLOY).filter((f) => /\.ya?ml$/.test(f));
  assert.ok(files.length >= 20, `found ${files.length} YAML files`);
  for (const f of files) {
    for (const [i, d] of parseAllDocuments(readFileSync(f, 'utf8')).entries()) {
      assert.equal(d.errors.length, 0, `${f} document ${i}: ${d.errors.map((e) => e.message).join('; ')}`);
      assert.equal(d.warnings.length, 0, `${f} document ${i}: ${d.warnings.map((e) => e.message).join('; ')}`);
    }
  }
});

void test('generated credentials and certificates are git-ignored', (t) => {
  if (spawnSync('git', ['-C', ROOT, 'rev-parse', '--git-dir'], { stdio: 'ignore' }).status !== 0) {
    t.skip('not a git checkout');
    return;
  }
  const paths = ['deploy/.env', 'deploy/k8s/base/secrets/nats-server.env', 'deploy/k8s/base/secrets/nats-workers.env', 'deploy/k8s/base/secrets/dashboard.env', 'deploy/k8s/monitoring/secrets/grafana.env', 'deploy/nats/certs/server-key.pem'];
  for (const p of paths) {
    const res = spawnSync('git', ['-C', ROOT, 'check-ignore', '-q', p]);
    assert.equal(res.status, 0, `${p} is not git-ignored`);
  }
  assert.notEqual(spawnSync('git', ['-C', ROOT, 'check-ignore', '-q', 'deploy/k8s/base/secrets/README.md']).status, 0, 'the secrets folder itself is kept');
});

// ---------------------------------------------------------------------------------------
// Dockerfiles

interface Stage {
  name: string | undefined;
  from: string;
  instr: { op: string; args: string }[];
}

function parseDockerfile(rel: string): { globalArgs: Map<string, string>; stages: Stage[] } {
  const lines = read(rel).split('\n');
  const joined: string[] = [];
  let cur = '';
  for (const raw of lines) {
    const line = raw.trim();
    if (cur === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      cur += line.slice(0, -1) + ' ';
      continue;
    }
    joined.push(cur + line);
    cur = '';
  }
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const l of joined) {
    const m = /^(\S+)\s+(.*)$/.exec(l);
    if (m === null) continue;
    const op = (m[1] as string).toUpperCase();
    const args = (m[2] as string).trim();
    if (op === 'FROM') {
      const fm = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      assert.ok(fm, `${rel}: FROM ${args}`);
      const from = (fm[1] as string).replace(/\$\{(\w+)\}/g, (_, n: string) => globalArgs.get(n) ?? `\${${n}}`);
      stages.push({ name: fm[2], from, instr: [] });
      continue;
    }
    const stage = stages[stages.length - 1];
    if (stage === undefined) {
      if (op === 'ARG') {
        const [k, v] = args.split('=');
        globalArgs.set(k as string, v ?? '');
      }
      continue;
    }
    stage.instr.push({ op, args });
  }
  return { globalArgs, stages };
}

function stageEnv(stages: Stage[], name: string): Map<string, string> {
  // ENV of a stage, following FROM <earlier stage> chains.
  const byName = new Map(stages.filter((s) => s.name !== undefined).map((s) => [s.name as string, s]));
  const chain: Stage[] = [];
  let s = byName.get(name);
  while (s !== undefined) {
    chain.unshift(s);
    s = byName.get(s.from);
  }
  const env = new Map<string, string>();
  for (const st of chain) {
    for (const i of st.instr) {
      if (i.op !== 'ENV') continue;
      for (const pair of i.args.split(/\s+/)) {
        const eq = pair.indexOf('=');
        if (eq > 0) env.set(pair.slice(0, eq), pair.slice(eq + 1));
      }
    }
  }
  return env;
}

function lastInstr(stages: Stage[], name: string, op: string): string | undefined {
  const byName = new Map(stages.filter((s) => s.name !== undefined).map((s) => [s.name as string, s]));
  let s = byName.get(name);
  while (s !== undefined) {
    const found = [...s.instr].reverse().find((i) => i.op === op);
    if (found !== undefined) return found.args;
    s = byName.get(s.from);
  }
  return undefined;
}

/** Docker's .dockerignore semantics: last matching line wins; a match on a folder covers its contents. */
function dockerignoreAllows(rel: string): boolean {
  const lines = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const toRegex = (pat: string): RegExp => {
    let re = '';
    for (let i = 0; i < pat.length; i++) {
      const ch = pat[i] as string;
      if (pat.startsWith('**/', i)) {
        re += '(?:.*/)?';
        i += 2;
      } else if (pat.startsWith('**', i)) {
        re += '.*';
        i += 1;
      } else if (ch === '*') re += '[^/]*';
      else if (ch === '?') re += '[^/]';
      else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    return new RegExp(`^${re}(?:/.*)?$`);
  };
  let allowed = true;
  for (const l of lines) {
    const neg = l.startsWith('!');
    const pat = (neg ? l.slice(1) : l).replace(/\/$/, '');
    if (toRegex(pat).test(rel)) allowed = neg;
  }
  return allowed;
}

void test('Dockerfiles: bases, non-root user, healthcheck, entrypoint, ports, volume', () => {
  const worker = parseDockerfile('deploy/docker/worker.Dockerfile');
  const cuda = worker.globalArgs.get('CUDA_IMAGE') ?? '';
  assert.match(cuda, /^nvidia\/cuda:11\.\d+\.\d+-cudnn8-runtime-ubuntu\d+\.\d+$/, 'worker base: CUDA 11.x runtime with cuDNN 8 (libtensorflow 2.9)');
  assert.match(worker.globalArgs.get('NODE_IMAGE') ?? '', /^node:20[-.]/, 'Node 20');
  assert.equal(worker.globalArgs.get('TFJS_NODE_GPU_VERSION'), '4.22.0');
  const wText = read('deploy/docker/worker.Dockerfile');
  assert.match(wText, /npm install [^\n]*"@tensorflow\/tfjs-node-gpu@\$\{TFJS_NODE_GPU_VERSION\}"/);
  assert.match(wText, /install-tfjs-native\.sh @tensorflow\/tfjs-node-gpu/);
  const wFinal = worker.stages[worker.stages.length - 1] as Stage;
  assert.equal(wFinal.name, 'runtime');
  assert.equal(worker.stages.find((s) => s.name === 'base')?.from, cuda, 'runtime stage descends from the CUDA base');

  const cpu = parseDockerfile('deploy/docker/coordinator.Dockerfile');
  assert.match(cpu.globalArgs.get('NODE_IMAGE') ?? '', /^node:20-[a-z]+-slim$/, 'coordinator on a slim Node 20 base');
  assert.equal((cpu.stages[cpu.stages.length - 1] as Stage).name, 'coordinator', 'the default target is the coordinator');
  assert.match(read('deploy/docker/coordinator.Dockerfile'), /install-tfjs-native\.sh @tensorflow\/tfjs-node /);

  const images: [string, ReturnType<typeof parseDockerfile>, string, number[], string][] = [
    ['worker.Dockerfile', worker, 'runtime', [WORKER_METRICS_PORT], 'worker-entrypoint.sh'],
    ['coordinator.Dockerfile', cpu, 'worker-cpu', [WORKER_METRICS_PORT], 'worker-entrypoint.sh'],
    ['coordinator.Dockerfile', cpu, 'coordinator', [COORDINATOR_METRICS_PORT, DASHBOARD_PORT], 'entrypoint.sh'],
  ];
  for (const [file, df, stage, ports, entry] of images) {
    const what = `${file} --target ${stage}`;
    const user = lastInstr(df.stages, stage, 'USER');
    assert.ok(user !== undefined, `${what}: USER`);
    const uid = Number((user as string).split(':')[0]);
    assert.ok(Number.isInteger(uid) && uid > 0, `${what}: numeric non-root USER, got ${user}`);
    const hc = lastInstr(df.stages, stage, 'HEALTHCHECK') ?? '';
    assert.match(hc, /CMD \["node", "\/app\/deploy\/docker\/healthcheck\.js"\]/, `${what}: HEALTHCHECK`);
    assert.equal(lastInstr(df.stages, stage, 'ENTRYPOINT'), `["/app/deploy/docker/${entry}"]`, `${what}: ENTRYPOINT`);
    const expose = (lastInstr(df.stages, stage, 'EXPOSE') ?? '').split(/\s+/).map(Number);
    assert.deepEqual(expose, ports, `${what}: EXPOSE`);
    const env = stageEnv(df.stages, stage);
    assert.equal(Number(env.get('LOCKSTEP_METRICS_PORT')), ports[0], `${what}: LOCKSTEP_METRICS_PORT (the healthcheck's port)`);
    assert.equal(env.get('LOCKSTEP_METRICS_HOST'), '0.0.0.0', `${what}: metrics reachable from outside the container`);
    for (const k of env.keys()) if (k.startsWith('LOCKSTEP_')) assert.ok(FLAG_ENV.has(k), `${what}: ENV ${k} is not a lockstep option`);
  }
  const coordEnv = stageEnv(cpu.stages, 'coordinator');
  assert.equal(coordEnv.get('LOCKSTEP_DASHBOARD_HOST'), '0.0.0.0');
  assert.equal(coordEnv.get('LOCKSTEP_CHECKPOINT_DIR'), '/data/checkpoints');
  assert.equal(lastInstr(cpu.stages, 'coordinator', 'VOLUME'), '["/data/checkpoints"]');
  const wEnv = stageEnv(worker.stages, 'runtime');
  assert.equal(wEnv.get('TF_FORCE_GPU_ALLOW_GROWTH'), 'true');
});

void test('Dockerfiles: the build context holds every product source and nothing secret; scripts are executable', () => {
  for (const file of ['deploy/docker/worker.Dockerfile', 'deploy/docker/coordinator.Dockerfile']) {
    const df = parseDockerfile(file);
    for (const st of df.stages) {
      for (const i of st.instr) {
        if (i.op !== 'COPY' || /--from=/.test(i.args)) continue;
        const parts = i.args.split(/\s+/).filter((p) => !p.startsWith('--'));
        for (const src of parts.slice(0, -1)) {
          const rel = src.replace(/\/$/, '');
          if (rel === '.') continue;
          assert.ok(existsSync(join(ROOT, rel)), `${file}: COPY ${src}: missing`);
          assert.ok(dockerignoreAllows(rel), `${file}: COPY ${src} is excluded by .dockerignore`);
        }
      }
    }
  }
  // Every source folder the root build compiles (except tests) reaches the image and its build.
  const rootTs = JSON.parse(read('tsconfig.json')) as Obj;
  const imageTs = JSON.parse(read('deploy/docker/tsconfig.image.json')) as Obj;
  assert.equal(imageTs.extends, '../../tsconfig.json');
  assert.deepEqual(imageTs.include, ['../../**/*.ts']);
  const excluded = arr(imageTs.exclude, 'exclude').map((e) => str(e, 'exclude').replace(/^\.\.\/\.\.\//, ''));
  for (const inc of arr(rootTs.include, 'include')) {
    const dir = str(inc, 'include').split('/')[0] as string;
    if (dir === 'test') {
      assert.ok(excluded.includes('test'), 'the image build compiles no tests');
      assert.ok(!dockerignoreAllows('test/unit/x.test.ts'), 'tests stay out of the build context');
      continue;
    }
    assert.ok(dockerignoreAllows(`${dir}/main.ts`), `${dir}/ reaches the build context`);
    assert.ok(!excluded.includes(dir), `${dir}/ is compiled into the image`);
  }
  for (const f of ['package.json', 'package-lock.json', '.npmrc', 'tsconfig.json', 'scripts/copy-assets.mjs', 'deploy/docker/worker-entrypoint.sh', 'deploy/docker/healthcheck.js', 'deploy/docker/tsconfig.image.json']) {
    assert.ok(dockerignoreAllows(f), `${f} reaches the build context`);
  }
  for (const f of ['node_modules/x/index.js', 'dist/bin/lockstep.js', 'deploy/.env', 'deploy/nats/certs/server-key.pem', 'deploy/k8s/base/secrets/nats-server.env', 'deploy/nats/auth.conf', '.git/config', 'runs/j/checkpoints/x']) {
    assert.ok(!dockerignoreAllows(f), `${f} stays out of the build context`);
  }
  for (const script of ['worker-entrypoint.sh', 'entrypoint.sh', 'select-backend.sh', 'install-tfjs-native.sh']) {
    const mode = statSync(join(DEPLOY, 'docker', script)).mode;
    assert.ok((mode & 0o111) !== 0, `deploy/docker/${script} is executable`);
    const sh = spawnSync('sh', ['-n', join(DEPLOY, 'docker', script)], { encoding: 'utf8' });
    assert.equal(sh.status, 0, `sh -n ${script}: ${sh.stderr}`);
  }
});

// ---------------------------------------------------------------------------------------
// CLI consistency: a container's argv + env must compile, and compile to what it exposes.

interface Container {
  where: string;
  role: 'coordinator' | 'worker';
  args: string[];
  env: Record<string, string>;
}

/** What the image entrypoints do to argv and env before `node dist/bin/lockstep.js`. */
function entrypointArgv(c: Container): { argv: string[]; env: Record<string, string> } {
  const env = { ...c.env };
  for (const [fileVar, target] of ENTRYPOINT_FILE_ENV) {
    if (env[fileVar] !== undefined) {
      env[target] = 'p-secret-from-file';
      delete env[fileVar];
    }
  }
  const subcommands = ['train', 'coordinator', 'worker', 'eval', 'sample', 'bench'];
  const args = [...c.args];
  const cmd = args[0] !== undefined && subcommands.includes(args[0]) ? (args.shift() as string) : c.role;
  // worker-entrypoint.sh adds the backend select-backend.sh chose (tfjs-node-gpu on a GPU node).
  if (c.role === 'worker' && !args.some((a) => a === '--backend' || a.startsWith('--backend=')) && env.LOCKSTEP_BACKEND === undefined) {
    args.unshift('--backend', 'tfjs-node-gpu');
  }
  return { argv: [cmd, ...args], env };
}

function compileContainer(c: Container): Record<string, unknown> {
  for (const k of Object.keys(c.env)) {
    if (!k.startsWith('LOCKSTEP_')) continue;
    assert.ok(FLAG_ENV.has(k) || ENTRYPOINT_FILE_ENV.has(k), `${c.where}: env ${k} is not LOCKSTEP_<FLAG> of any lockstep option`);
  }
  const { argv, env } = entrypointArgv(c);
  const parsed = parseArgv(argv);
  assert.equal(parsed.command, c.role, `${c.where}: runs 'lockstep ${c.role}'`);
  let opts: Record<string, unknown>;
  try {
    opts = compileOptions(parsed.command, parsed.raw, env) as unknown as Record<string, unknown>;
  } catch (err) {
    assert.fail(`${c.where}: 'lockstep ${argv.join(' ')}' with its env does not compile: ${(err as Error).message}`);
  }
  return opts;
}

function checkCompiled(c: Container, opts: Record<string, unknown>, users: Map<string, string>): void {
  const nats = String(opts.nats);
  assert.match(nats, new RegExp(`^nats://nats:${NATS_PORT}$`), `${c.where}: --nats`);
  assert.equal(opts.metricsHost, '0.0.0.0', `${c.where}: metrics reachable by Prometheus`);
  assert.ok(typeof opts.natsPass === 'string' && opts.natsPass !== '', `${c.where}: has a NATS password`);
  if (c.role === 'coordinator') {
    assert.equal(opts.metricsPort, COORDINATOR_METRICS_PORT, `${c.where}: --metrics-port`);
    assert.equal(opts.dashboardPort, DASHBOARD_PORT, `${c.where}: --dashboard-port`);
    assert.equal(opts.dashboardHost, '0.0.0.0', `${c.where}: --dashboard-host`);
    assert.equal(opts.natsUser, 'coordinator', `${c.where}: NATS user`);
    assert.ok(typeof opts.dashboardToken === 'string' && opts.dashboardToken !== '', `${c.where}: dashboard token set`);
    assert.equal(opts.resume, 'auto', `${c.where}: --resume auto so a restarted coordinator continues (and a fresh volume starts fresh)`);
  } else {
    assert.equal(opts.metricsPort, WORKER_METRICS_PORT, `${c.where}: --metrics-port`);
    assert.equal(opts.workerId, opts.natsUser, `${c.where}: worker id == NATS user (permissions pin the id)`);
    assert.ok(users.has(String(opts.natsUser)), `${c.where}: NATS user ${String(opts.natsUser)} is defined in deploy/nats/auth.conf`);
  }
  assert.ok(users.has(String(opts.natsUser)), `${c.where}: NATS user exists`);
}

// ---------------------------------------------------------------------------------------
// docker-compose

/** Compose variable interpolation: ${X:-default} -> default, ${X:?err} -> a dummy secret. */
function interpolate(v: string): string {
  return v.replace(/\$\{(\w+)(?::?([-?])([^}]*))?\}/g, (_, _name: string, op: string | undefined, rest: string | undefined) => {
    if (op === '-') return rest ?? '';
    if (op === '?') return 'p0123456789abcdef';
    return '';
  });
}

function loadCompose(): Obj {
  return obj(parse(read('deploy/docker-compose.yml'), { merge: true }), 'docker-compose.yml');
}

function composeEnv(svc: Obj, what: string): Record<string, string> {
  const raw = svc.environment ?? {};
  const env: Record<string, string> = {};
  if (Array.isArray(raw)) {
    for (const e of raw) {
      const [k, ...v] = str(e, what).split('=');
      env[k as string] = v.join('=');
    }
  } else for (const [k, v] of Object.entries(obj(raw, what))) env[k] = String(v);
  return env;
}

void test('docker-compose: services, images, profiles, GPU reservations', () => {
  const compose = loadCompose();
  const services = obj(compose.services, 'services');
  for (const name of ['nats', 'coordinator', 'prometheus', 'grafana']) assert.ok(services[name], `service ${name}`);
  const nats = obj(services.nats, 'nats');
  assert.match(str(nats.image, 'nats image'), /^nats:2\.10(\b|-)/, 'official nats 2.10 image');
  assert.deepEqual(nats.command, ['-c', '/etc/nats/nats-server.conf']);
  assert.ok(arr(nats.volumes, 'nats volumes').includes('./nats:/etc/nats:ro'), 'deploy/nats mounted read-only');
  assert.equal(nats.ports, undefined, 'NATS is not published on the host');

  const workers = Object.entries(services).filter(([, s]) => isObj(s) && isObj(s.environment) && 'LOCKSTEP_WORKER_ID' in s.environment);
  const gpu = workers.filter(([, s]) => arr(get(s, 'profiles'), 'profiles').includes('gpu'));
  const cpuW = workers.filter(([, s]) => arr(get(s, 'profiles'), 'profiles').includes('cpu'));
  assert.ok(gpu.length >= 2 && cpuW.length >= 2, 'GPU and CPU workers');
  assert.equal(gpu.length + cpuW.length, workers.length, 'every worker belongs to the gpu or the cpu profile');
  const deviceIds = new Set<string>();
  for (const [name, s] of gpu) {
    assert.equal(get(s, 'image'), 'lockstep-worker-gpu:0.1.0', `${name}: image`);
    assert.equal(get(s, 'build', 'dockerfile'), 'deploy/docker/worker.Dockerfile');
    assert.equal(get(s, 'deploy', 'replicas'), 1, `${name}: deploy.replicas`);
    const devices = arr(get(s, 'deploy', 'resources', 'reservations', 'devices'), `${name}: GPU reservation`);
    assert.equal(devices.length, 1);
    assert.equal(get(devices[0], 'driver'), 'nvidia', `${name}: driver nvidia`);
    assert.deepEqual(get(devices[0], 'capabilities'), ['gpu'], `${name}: capabilities [gpu]`);
    const ids = arr(get(devices[0], 'device_ids'), `${name}: device_ids`).map(String);
    for (const id of ids) {
      assert.ok(!deviceIds.has(id), `${name}: GPU ${id} is reserved by another worker too`);
      deviceIds.add(id);
    }
  }
  for (const [name, s] of cpuW) {
    assert.equal(get(s, 'image'), 'lockstep-worker-cpu:0.1.0', `${name}: image`);
    assert.equal(get(s, 'build', 'dockerfile'), 'deploy/docker/coordinator.Dockerfile');
    assert.equal(get(s, 'build', 'target'), 'worker-cpu');
    assert.equal(get(s, 'deploy', 'resources', 'reservations'), undefined, `${name}: no GPU reservation`);
    assert.doesNotMatch(JSON.stringify(s), /nvidia/, `${name}: nothing NVIDIA`);
  }
  for (const name of ['nats', 'coordinator', 'prometheus', 'grafana']) assert.equal(get(services[name], 'profiles'), undefined, `${name} runs in every profile`);

  for (const [name, s] of [['coordinator', services.coordinator], ...workers] as [string, unknown][]) {
    assert.equal(get(s, 'read_only'), true, `${name}: read-only root filesystem`);
    assert.deepEqual(get(s, 'cap_drop'), ['ALL'], `${name}: no capabilities`);
    assert.ok(arr(get(s, 'security_opt'), 'security_opt').includes('no-new-privileges:true'), `${name}: no-new-privileges`);
    assert.equal(get(s, 'user'), undefined, `${name}: runs as the image's non-root user`);
  }
  // Published ports are loopback-only.
  for (const [name, s] of Object.entries(services)) {
    for (const p of (get(s, 'ports') as unknown[] | undefined) ?? []) assert.match(String(p), /^127\.0\.0\.1:/, `${name}: port ${String(p)} bound to loopback`);
  }
});

void test('docker-compose: every lockstep container compiles with the real CLI schema, to the ports it exposes', () => {
  const compose = loadCompose();
  const services = obj(compose.services, 'services');
  const users = natsUsers();
  const seenIds = new Set<string>();
  for (const [name, raw] of Object.entries(services)) {
    const s = obj(raw, name);
    const env = composeEnv(s, name);
    const isWorker = 'LOCKSTEP_WORKER_ID' in env;
    if (name !== 'coordinator' && !isWorker) continue;
    const role = isWorker ? 'worker' : 'coordinator';
    const args = ((s.command as unknown[] | undefined) ?? []).map((a) => interpolate(String(a)));
    const interpolated: Record<string, string> = {};
    for (const [k, v] of Object.entries(env)) interpolated[k] = interpolate(v);
    const c: Container = { where: `compose ${name}`, role, args, env: interpolated };
    const opts = compileContainer(c);
    checkCompiled(c, opts, users);
    if (role === 'worker') {
      const id = String(opts.workerId);
      assert.ok(!seenIds.has(id), `${name}: worker id ${id} used twice`);
      seenIds.add(id);
      // Its password is its own identity's, never another's.
      assert.equal(env.LOCKSTEP_NATS_PASS, `\${${passwordVar(id)}:?run deploy/gen-secrets.sh first}`, `${name}: password variable`);
      assert.ok(arr(s.expose, `${name} expose`).map(String).includes(String(WORKER_METRICS_PORT)), `${name}: exposes ${WORKER_METRICS_PORT}`);
    } else {
      const ports = arr(s.ports, 'coordinator ports').map(String);
      assert.ok(ports.includes(`127.0.0.1:${DASHBOARD_PORT}:${DASHBOARD_PORT}`), 'dashboard port published');
      assert.ok(ports.includes(`127.0.0.1:${COORDINATOR_METRICS_PORT}:${COORDINATOR_METRICS_PORT}`), 'metrics port published');
      const mounts = arr(s.volumes, 'coordinator volumes').map(String);
      assert.ok(mounts.includes(`checkpoints:${String(opts.checkpointDir)}`), `the checkpoint volume is mounted at --checkpoint-dir (${String(opts.checkpointDir)})`);
      assert.ok(isObj(get(compose, 'volumes', 'checkpoints')), 'named volume checkpoints');
      assert.equal(env.LOCKSTEP_NATS_PASS, '${LOCKSTEP_NATS_PASS_COORDINATOR:?run deploy/gen-secrets.sh first}');
    }
  }
  assert.ok(seenIds.size >= 4);

  // The NATS server gets every password auth.conf references, each required (no default).
  const natsEnv = composeEnv(obj(services.nats, 'nats'), 'nats');
  for (const v of users.values()) assert.equal(natsEnv[v], `\${${v}:?run deploy/gen-secrets.sh first}`, `nats: ${v}`);
  // No credential has a default value anywhere in the file.
  for (const [name, s] of Object.entries(services)) {
    for (const [k, v] of Object.entries(composeEnv(obj(s, name), name))) {
      if (/PASS|TOKEN|PASSWORD/.test(k)) assert.match(v, /^\$\{[A-Z0-9_]+:\?[^}]+\}$/, `${name}: ${k} must come from deploy/.env with no default`);
    }
  }
});

void test('docker-compose: Prometheus scrapes every lockstep service on its metrics port; Grafana mounts match provisioning', () => {
  const compose = loadCompose();
  const services = obj(compose.services, 'services');
  const prom = obj(parse(read('deploy/prometheus/prometheus.yml')), 'prometheus.yml');
  const targets = new Map<string, string>();
  for (const job of arr(prom.scrape_configs, 'scrape_configs')) {
    for (const sc of arr(get(job, 'static_configs'), 'static_configs')) {
      for (const t of arr(get(sc, 'targets'), 'targets')) targets.set(str(t, 'target'), str(get(job, 'job_name'), 'job_name'));
    }
  }
  for (const [name, raw] of Object.entries(services)) {
    const env = composeEnv(obj(raw, name), name);
    if ('LOCKSTEP_WORKER_ID' in env) assert.equal(targets.get(`${name}:${WORKER_METRICS_PORT}`), 'lockstep-workers', `${name} is scraped`);
  }
  assert.equal(targets.get(`coordinator:${COORDINATOR_METRICS_PORT}`), 'lockstep-coordinator');
  for (const t of targets.keys()) assert.ok(services[t.split(':')[0] as string], `scrape target ${t} is a compose service`);

  const promSvc = obj(services.prometheus, 'prometheus');
  assert.ok(arr(promSvc.volumes, 'prometheus volumes').includes('./prometheus:/etc/prometheus:ro'));
  assert.ok(arr(promSvc.command, 'prometheus command').includes('--config.file=/etc/prometheus/prometheus.yml'));

  const grafana = obj(services.grafana, 'grafana');
  const provider = obj(parse(read('deploy/grafana/provisioning/dashboards/lockstep.yml')), 'provider');
  const providerPath = str(get(provider, 'providers', 0, 'options', 'path'), 'provider path');
  const vols = arr(grafana.volumes, 'grafana volumes').map(String);
  assert.ok(vols.includes(`./grafana/dashboards:${providerPath}:ro`), 'dashboards mounted where the provider reads them');
  assert.ok(vols.includes('./grafana/provisioning:/etc/grafana/provisioning:ro'), 'provisioning mounted');
  const home = str(get(grafana, 'environment', 'GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH'), 'home dashboard');
  assert.equal(home, `${providerPath}/lockstep.json`, 'the lockstep dashboard is the home page');
  assert.ok(existsSync(join(DEPLOY, 'grafana', 'dashboards', 'lockstep.json')));
  assert.equal(get(grafana, 'environment', 'GF_AUTH_ANONYMOUS_ORG_ROLE'), 'Viewer', 'anonymous users may only view');
  const ds = obj(parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')), 'datasource');
  assert.equal(get(ds, 'datasources', 0, 'url'), 'http://prometheus:9090', 'datasource reaches the prometheus service');
});

// ---------------------------------------------------------------------------------------
// Kubernetes

function k8sDocs(rel: string): Obj[] {
  const docs = parseAllDocuments(read(rel));
  return docs.map((d, i) => {
    assert.equal(d.errors.length, 0, `${rel} document ${i}: ${d.errors.map((e) => e.message).join('; ')}`);
    return obj(d.toJS(), `${rel} document ${i}`);
  });
}

function podSpecs(docs: Obj[]): { kind: string; name: string; spec: Obj; meta: Obj; replicas: unknown; wl: Obj }[] {
  return docs
    .filter((d) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(String(d.kind)))
    .map((d) => ({
      kind: String(d.kind),
      name: String(get(d, 'metadata', 'name')),
      spec: obj(get(d, 'spec', 'template', 'spec'), 'pod spec'),
      meta: obj(get(d, 'spec', 'template', 'metadata'), 'pod metadata'),
      replicas: get(d, 'spec', 'replicas'),
      wl: d,
    }));
}

function containerEnv(c: Obj, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of (c.env as unknown[] | undefined) ?? []) {
    const name = str(get(e, 'name'), 'env name');
    if (get(e, 'value') !== undefined) env[name] = String(get(e, 'value'));
    else if (get(e, 'valueFrom', 'fieldRef', 'fieldPath') === 'metadata.name') env[name] = podName;
    else if (get(e, 'valueFrom', 'secretKeyRef') !== undefined) env[name] = 'p-secret-from-k8s';
    else assert.fail(`env ${name}: unsupported valueFrom`);
  }
  return env;
}

function checkPodSecurity(where: string, spec: Obj): void {
  const psc = obj(spec.securityContext, `${where}: pod securityContext`);
  assert.equal(psc.runAsNonRoot, true, `${where}: runAsNonRoot`);
  assert.ok(typeof psc.runAsUser === 'number' && psc.runAsUser > 0, `${where}: runAsUser non-zero`);
  assert.equal(get(psc, 'seccompProfile', 'type'), 'RuntimeDefault', `${where}: seccomp RuntimeDefault`);
  for (const c of arr(spec.containers, `${where}: containers`)) {
    const csc = obj(get(c, 'securityContext'), `${where}: container securityContext`);
    assert.equal(csc.allowPrivilegeEscalation, false, `${where}: allowPrivilegeEscalation false`);
    assert.equal(csc.readOnlyRootFilesystem, true, `${where}: readOnlyRootFilesystem`);
    assert.deepEqual(get(csc, 'capabilities', 'drop'), ['ALL'], `${where}: drop ALL capabilities`);
    assert.notEqual(csc.privileged, true);
  }
}

function checkHealthProbes(where: string, c: Obj, port: string): void {
  for (const probe of ['livenessProbe', 'startupProbe']) {
    assert.equal(get(c, probe, 'httpGet', 'path'), '/healthz', `${where}: ${probe} on /healthz`);
    assert.equal(get(c, probe, 'httpGet', 'port'), port, `${where}: ${probe} port`);
  }
  assert.match(String(get(c, 'readinessProbe', 'httpGet', 'path')), /^\/(healthz|readyz)$/, `${where}: readinessProbe`);
}

function containerPorts(c: Obj): Map<string, number> {
  return new Map(((c.ports as unknown[] | undefined) ?? []).map((p) => [String(get(p, 'name')), Number(get(p, 'containerPort'))]));
}

/** Checks shared by the raw base and the rendered overlays. */
function checkLockstepWorkloads(docs: Obj[], where: string): void {
  const users = natsUsers();
  const workloads = podSpecs(docs);
  const services = docs.filter((d) => d.kind === 'Service');
  const coord = workloads.find((w) => w.name === 'coordinator');
  const worker = workloads.find((w) => w.name === 'worker');
  assert.ok(coord && coord.kind === 'Deployment', `${where}: coordinator Deployment`);
  assert.ok(worker && worker.kind === 'StatefulSet', `${where}: worker StatefulSet`);
  for (const w of workloads) checkPodSecurity(`${where} ${w.kind}/${w.name}`, w.spec);

  // Coordinator: argv + env compile; PVC at --checkpoint-dir; ports, probes, Service, scrape annotations.
  assert.equal(coord.replicas, 1, 'one coordinator');
  assert.equal(get(coord.wl, 'spec', 'strategy', 'type'), 'Recreate', 'never two coordinators at once');
  const cc = obj(arr(coord.spec.containers, 'containers')[0], 'coordinator container');
  const cOpts = compileContainer({ where: `${where} coordinator`, role: 'coordinator', args: arr(cc.args, 'args').map(String), env: containerEnv(cc, 'coordinator-0') });
  checkCompiled({ where: `${where} coordinator`, role: 'coordinator', args: [], env: {} }, cOpts, users);
  const mount = arr(cc.volumeMounts, 'mounts').find((m) => get(m, 'mountPath') === cOpts.checkpointDir);
  assert.ok(mount, `${where}: a volume is mounted at --checkpoint-dir ${String(cOpts.checkpointDir)}`);
  const vol = arr(coord.spec.volumes, 'volumes').find((v) => get(v, 'name') === get(mount, 'name'));
  const claim = str(get(vol, 'persistentVolumeClaim', 'claimName'), 'checkpoint volume is a PVC');
  assert.ok(docs.some((d) => d.kind === 'PersistentVolumeClaim' && get(d, 'metadata', 'name') === claim), `${where}: PVC ${claim}`);
  assert.equal(coord.spec.securityContext && get(coord.spec.securityContext, 'fsGroup'), 10001, 'fsGroup makes the PVC writable for uid 10001');
  const cPorts = containerPorts(cc);
  assert.equal(cPorts.get('metrics'), cOpts.metricsPort);
  assert.equal(cPorts.get('dashboard'), cOpts.dashboardPort);
  checkHealthProbes(`${where} coordinator`, cc, 'metrics');
  assert.equal(get(coord.meta, 'annotations', 'prometheus.io/scrape'), 'true');
  assert.equal(Number(get(coord.meta, 'annotations', 'prometheus.io/port')), cOpts.metricsPort, 'scrape annotation = --metrics-port');
  const cSvc = services.find((s) => get(s, 'metadata', 'name') === 'coordinator');
  assert.ok(cSvc, 'coordinator Service');
  const svcPorts = arr(get(cSvc, 'spec', 'ports'), 'ports').map((p) => Number(get(p, 'port')));
  assert.deepEqual(svcPorts.sort(), [cOpts.dashboardPort, cOpts.metricsPort].map(Number).sort(), 'Service exposes metrics and dashboard');
  assert.equal(get(coord.spec, 'automountServiceAccountToken'), false);

  // Workers: id = pod name = NATS user; own password only; anti-affinity; ports and probes.
  const wc = obj(arr(worker.spec.containers, 'containers')[0], 'worker container');
  const replicas = Number(worker.replicas);
  assert.ok(replicas >= 1);
  for (let i = 0; i < replicas; i++) {
    const pod: string = `${worker.name}-${i}`;
    const wOpts = compileContainer({ where: `${where} ${pod}`, role: 'worker', args: arr(wc.args ?? [], 'args').map(String), env: containerEnv(wc, pod) });
    checkCompiled({ where: `${where} ${pod}`, role: 'worker', args: [], env: {} }, wOpts, users);
    assert.equal(wOpts.workerId, pod, 'worker id = pod name');
    assert.equal(containerPorts(wc).get('metrics'), wOpts.metricsPort);
    assert.equal(Number(get(worker.meta, 'annotations', 'prometheus.io/port')), wOpts.metricsPort, 'scrape annotation = --metrics-port');
  }
  const wEnv = containerEnv(wc, 'x');
  const passMount = arr(wc.volumeMounts, 'mounts').find((m) => get(m, 'mountPath') === wEnv.LOCKSTEP_NATS_PASS_FILE);
  assert.ok(passMount, 'the password file is mounted');
  assert.equal(get(passMount, 'subPathExpr'), '$(LOCKSTEP_WORKER_ID)', 'only the key named after this pod');
  const passVol = arr(worker.spec.volumes, 'volumes').find((v) => get(v, 'name') === get(passMount, 'name'));
  assert.match(str(get(passVol, 'secret', 'secretName'), 'password volume is a Secret'), /^lockstep-nats-workers/);
  checkHealthProbes(`${where} worker`, wc, 'metrics');
  const anti = arr(get(worker.spec, 'affinity', 'podAntiAffinity', 'preferredDuringSchedulingIgnoredDuringExecution'), 'podAntiAffinity');
  assert.equal(get(anti[0], 'podAffinityTerm', 'topologyKey'), 'kubernetes.io/hostname');
  assert.deepEqual(get(anti[0], 'podAffinityTerm', 'labelSelector', 'matchLabels'), get(worker.wl, 'spec', 'selector', 'matchLabels'), 'anti-affinity against the other workers');
  const headless = services.find((s) => get(s, 'metadata', 'name') === get(worker.wl, 'spec', 'serviceName'));
  assert.equal(get(headless, 'spec', 'clusterIP'), 'None', 'StatefulSet governed by a headless Service');

  // NATS: 3 servers, routes to each, config from the ConfigMap.
  const nats = workloads.find((w) => w.name === 'nats');
  assert.ok(nats && nats.kind === 'StatefulSet');
  assert.equal(nats.replicas, 3, '3 NATS servers');
  const nc = obj(arr(nats.spec.containers, 'containers')[0], 'nats container');
  assert.match(str(nc.image, 'nats image'), /^nats:2\.10/);
  assert.deepEqual(containerPorts(nc), new Map([['client', NATS_PORT], ['cluster', 6222], ['monitor', 8222]]));
  const natsSvc = services.find((s) => get(s, 'metadata', 'name') === 'nats');
  assert.equal(Number(get(natsSvc, 'spec', 'ports', 0, 'port')), NATS_PORT, 'Service nats on 4222 (--nats nats://nats:4222)');
  const conf = read('deploy/k8s/base/nats/nats.conf');
  const headlessName = String(get(nats.wl, 'spec', 'serviceName'));
  for (let i = 0; i < 3; i++) assert.match(conf, new RegExp(`nats-route://nats-${i}\\.${headlessName}:6222`), `route to nats-${i}`);
}

void test('kubernetes base: every file parses; workloads secure and consistent with the CLI', () => {
  const baseDir = join(DEPLOY, 'k8s');
  const files = walk(baseDir).filter((f) => /\.ya?ml$/.test(f));
  assert.ok(files.length >= 10);
  for (const f of files) k8sDocs(f.slice(ROOT.length + 1));
  const base = ['namespace.yaml', 'serviceaccounts.yaml', 'nats.yaml', 'coordinator.yaml', 'worker.yaml', 'networkpolicy.yaml'].flatMap((f) => k8sDocs(`deploy/k8s/base/${f}`));
  const kust = obj(parse(read('deploy/k8s/base/kustomization.yaml')), 'kustomization');
  assert.deepEqual(arr(kust.resources, 'resources').sort(), ['coordinator.yaml', 'namespace.yaml', 'nats.yaml', 'networkpolicy.yaml', 'serviceaccounts.yaml', 'worker.yaml']);
  assert.equal(kust.namespace, 'lockstep');
  // The raw base has no Secret names with hashes yet; check the workloads as written.
  checkLockstepWorkloads(base, 'base');
  const ns = base.find((d) => d.kind === 'Namespace');
  assert.equal(get(ns, 'metadata', 'labels', 'pod-security.kubernetes.io/enforce'), 'restricted');
  // The ConfigMap's auth.conf is the one the NATS tests run against.
  assert.equal(read('deploy/k8s/base/nats/auth.conf'), read('deploy/nats/auth.conf'), 'deploy/k8s/base/nats/auth.conf is a copy of deploy/nats/auth.conf');
  assert.match(read('deploy/k8s/base/nats/nats.conf'), /^include \.\/auth\.conf$/m);
});

void test('kubernetes NetworkPolicy: default deny, then only the ports lockstep needs', () => {
  const pols = k8sDocs('deploy/k8s/base/networkpolicy.yaml').concat(k8sDocs('deploy/k8s/monitoring/networkpolicy.yaml'));
  const deny = pols.find((p) => get(p, 'metadata', 'name') === 'default-deny');
  assert.deepEqual(get(deny, 'spec', 'podSelector'), {});
  assert.deepEqual(get(deny, 'spec', 'policyTypes'), ['Ingress', 'Egress']);
  assert.equal(get(deny, 'spec', 'ingress'), undefined);
  assert.equal(get(deny, 'spec', 'egress'), undefined);
  const allowedPorts = new Set([53, NATS_PORT, 6222, COORDINATOR_METRICS_PORT, WORKER_METRICS_PORT, DASHBOARD_PORT, 3000, 9090]);
  const ingressPorts = new Map<string, Set<number>>();
  for (const p of pols) {
    const name = String(get(p, 'metadata', 'name'));
    for (const dir of ['ingress', 'egress']) {
      for (const rule of (get(p, 'spec', dir) as unknown[] | undefined) ?? []) {
        const ports = (get(rule, 'ports') as unknown[] | undefined) ?? [];
        if (name === 'prometheus' && dir === 'egress') continue; // scrapes + API server, documented
        assert.ok(ports.length > 0, `${name} ${dir}: every rule names its ports`);
        for (const port of ports) {
          const n = Number(get(port, 'port'));
          assert.ok(allowedPorts.has(n), `${name} ${dir}: port ${n} is not one lockstep uses`);
          if (dir === 'ingress') ingressPorts.set(name, (ingressPorts.get(name) ?? new Set()).add(n));
        }
      }
    }
  }
  assert.deepEqual([...(ingressPorts.get('nats') ?? [])].sort(), [NATS_PORT, 6222]);
  assert.deepEqual([...(ingressPorts.get('coordinator') ?? [])].sort(), [DASHBOARD_PORT, COORDINATOR_METRICS_PORT]);
  assert.deepEqual([...(ingressPorts.get('worker') ?? [])], [WORKER_METRICS_PORT]);
  // The NATS client port admits the coordinator and workers only, the route port NATS only.
  const nats = pols.find((p) => get(p, 'metadata', 'name') === 'nats');
  const clientFrom = arr(get(nats, 'spec', 'ingress', 0, 'from'), 'from').map((f) => get(f, 'podSelector', 'matchLabels', 'app.kubernetes.io/component'));
  assert.deepEqual(clientFrom.sort(), ['coordinator', 'worker']);
  assert.equal(get(nats, 'spec', 'ingress', 1, 'from', 0, 'podSelector', 'matchLabels', 'app.kubernetes.io/name'), 'nats');
});

void test('kubernetes overlays: GPU requested in gpu, none in cpu (patches as written)', () => {
  const gpu = k8sDocs('deploy/k8s/overlays/gpu/worker-gpu.yaml')[0];
  const res = get(gpu, 'spec', 'template', 'spec', 'containers', 0, 'resources');
  assert.equal(Number(get(res, 'limits', 'nvidia.com/gpu')), 1);
  assert.equal(Number(get(res, 'requests', 'nvidia.com/gpu')), 1);
  assert.equal(get(gpu, 'spec', 'template', 'spec', 'tolerations', 0, 'key'), 'nvidia.com/gpu');
  const cpu = k8sDocs('deploy/k8s/overlays/cpu/worker-cpu.yaml')[0];
  assert.doesNotMatch(JSON.stringify(cpu), /nvidia/);
  for (const [overlay, image] of [['gpu', 'lockstep-worker-gpu'], ['cpu', 'lockstep-worker-cpu']]) {
    const k = obj(parse(read(`deploy/k8s/overlays/${overlay as string}/kustomization.yaml`)), 'kustomization');
    assert.deepEqual(k.resources, ['../../base']);
    assert.equal(get(k, 'images', 0, 'name'), 'lockstep-worker');
    assert.equal(get(k, 'images', 0, 'newName'), image);
  }
});

function kubectlAvailable(): boolean {
  return spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
}

function renderAll(): { dir: string; render: (rel: string, unrestricted?: boolean) => Obj[] } {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-k8s-'));
  cpSync(DEPLOY, join(dir, 'deploy'), { recursive: true });
  const gen = spawnSync(join(dir, 'deploy', 'gen-secrets.sh'), ['--force'], { encoding: 'utf8' });
  assert.equal(gen.status, 0, gen.stderr);
  const render = (rel: string, unrestricted = false): Obj[] => {
    const args = ['kustomize', ...(unrestricted ? ['--load-restrictor', 'LoadRestrictionsNone'] : []), join(dir, rel)];
    const res = spawnSync('kubectl', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    assert.equal(res.status, 0, `kubectl ${args.join(' ')}: ${res.stderr}`);
    return parseAllDocuments(res.stdout).map((d) => obj(d.toJS(), rel));
  };
  return { dir, render };
}

void test('kubernetes rendered with kustomize: overlays, monitoring, podmonitor component', (t) => {
  if (!kubectlAvailable()) {
    t.skip('kubectl is not installed: rendered kustomize output not checked (raw manifests are)');
    return;
  }
  const { dir, render } = renderAll();
  try {
    const rendered = new Map<string, Obj[]>();
    for (const overlay of ['gpu', 'cpu']) {
      const docs = render(`deploy/k8s/overlays/${overlay}`);
      rendered.set(overlay, docs);
      checkLockstepWorkloads(docs, `overlay ${overlay}`);
      for (const d of docs) {
        if (d.kind !== 'Namespace') assert.equal(get(d, 'metadata', 'namespace'), 'lockstep', `${String(d.kind)}/${String(get(d, 'metadata', 'name'))} in namespace lockstep`);
      }
      const worker = podSpecs(docs).find((w) => w.name === 'worker');
      const wc = get(worker?.spec, 'containers', 0);
      const coord = podSpecs(docs).find((w) => w.name === 'coordinator');
      assert.equal(get(coord?.spec, 'containers', 0, 'image'), 'lockstep-coordinator:0.1.0', 'coordinator image = compose image');
      if (overlay === 'gpu') {
        assert.equal(get(wc, 'image'), 'lockstep-worker-gpu:0.1.0', 'gpu worker image = compose image');
        assert.equal(Number(get(wc, 'resources', 'limits', 'nvidia.com/gpu')), 1, 'one GPU per worker');
        assert.equal(Number(get(wc, 'resources', 'requests', 'cpu')), 2, 'the patch merged into the base resources');
      } else {
        assert.equal(get(wc, 'image'), 'lockstep-worker-cpu:0.1.0', 'cpu worker image = compose image');
        assert.doesNotMatch(JSON.stringify(docs), /nvidia\.com\/gpu/, 'no GPU anywhere in the cpu overlay');
      }
      // Every Secret/ConfigMap a pod references exists in the output (kustomize rewrote the hashed names).
      const names = new Set(docs.filter((d) => d.kind === 'Secret' || d.kind === 'ConfigMap').map((d) => `${String(d.kind)}/${String(get(d, 'metadata', 'name'))}`));
      const refs = JSON.stringify(docs.filter((d) => d.kind !== 'Secret' && d.kind !== 'ConfigMap'));
      for (const m of refs.matchAll(/"(?:secretName|name)":"((?:lockstep-nats-server|lockstep-nats-workers|lockstep-dashboard|nats-config)[^"]*)"/g)) {
        const n = m[1] as string;
        assert.ok(names.has(`Secret/${n}`) || names.has(`ConfigMap/${n}`), `reference ${n} resolves`);
      }
      // Each worker pod of the StatefulSet has its password key; the server has every password.
      const workersSecret = docs.find((d) => d.kind === 'Secret' && String(get(d, 'metadata', 'name')).startsWith('lockstep-nats-workers'));
      const keys = Object.keys(obj(get(workersSecret, 'data'), 'worker secret data'));
      for (let i = 0; i < Number(worker?.replicas); i++) assert.ok(keys.includes(`worker-${i}`), `secret key worker-${i}`);
      const serverSecret = docs.find((d) => d.kind === 'Secret' && String(get(d, 'metadata', 'name')).startsWith('lockstep-nats-server'));
      const serverKeys = Object.keys(obj(get(serverSecret, 'data'), 'server secret data'));
      for (const v of natsUsers().values()) assert.ok(serverKeys.includes(v), `nats-server gets ${v}`);
    }

    const mon = render('deploy/k8s/monitoring', true);
    const prom = podSpecs(mon).find((w) => w.name === 'prometheus');
    const graf = podSpecs(mon).find((w) => w.name === 'grafana');
    assert.ok(prom && graf);
    for (const w of [prom, graf]) checkPodSecurity(`monitoring ${w.name}`, w.spec);
    const promCm = mon.find((d) => d.kind === 'ConfigMap' && String(get(d, 'metadata', 'name')).startsWith('prometheus-config'));
    assert.equal(get(promCm, 'data', 'prometheus.yml'), read('deploy/prometheus/prometheus-k8s.yml'), 'Prometheus runs the checked config');
    const dashCm = mon.find((d) => d.kind === 'ConfigMap' && String(get(d, 'metadata', 'name')).startsWith('grafana-dashboards'));
    assert.equal(get(dashCm, 'data', 'lockstep.json'), read('deploy/grafana/dashboards/lockstep.json'));
    const provider = obj(parse(read('deploy/grafana/provisioning/dashboards/lockstep.yml')), 'provider');
    const providerPath = get(provider, 'providers', 0, 'options', 'path');
    const gc = get(graf.spec, 'containers', 0);
    const dashMount = arr(get(gc, 'volumeMounts'), 'mounts').find((m) => get(m, 'mountPath') === providerPath);
    assert.ok(dashMount, 'dashboards mounted where the provider reads them');
    const promMounts = arr(get(prom.spec, 'volumes', 0, 'projected', 'sources'), 'projected').map((s) => get(s, 'configMap', 'items', 0, 'path'));
    assert.deepEqual(promMounts, ['prometheus.yml', 'rules/lockstep.rules.yml'], 'rules next to the config, as its rule_files path says');
    const sd = get(parse(read('deploy/prometheus/prometheus-k8s.yml')), 'scrape_configs', 0, 'kubernetes_sd_configs', 0, 'namespaces', 'names');
    assert.deepEqual(sd, ['lockstep'], 'Prometheus discovers pods in the namespace the base deploys to');
    const role = mon.find((d) => d.kind === 'Role');
    assert.deepEqual(get(role, 'rules', 0, 'resources'), ['pods']);
    assert.deepEqual(get(role, 'rules', 0, 'verbs'), ['get', 'list', 'watch'], 'read-only discovery');

    // The Prometheus Operator component, added to an overlay.
    const withPm = join(dir, 'deploy', 'k8s', 'with-podmonitor');
    mkdirSync(withPm);
    writeFileSync(join(withPm, 'kustomization.yaml'), 'resources:\n  - ../overlays/cpu\ncomponents:\n  - ../components/podmonitor\n');
    const pm = render('deploy/k8s/with-podmonitor').filter((d) => d.kind === 'PodMonitor');
    assert.deepEqual(pm.map((d) => get(d, 'spec', 'podMetricsEndpoints', 0, 'relabelings', 0, 'replacement')).sort(), ['lockstep-coordinator', 'lockstep-workers'], 'PodMonitor job labels = the alert rules\' jobs');
    for (const d of pm) assert.equal(get(d, 'spec', 'podMetricsEndpoints', 0, 'port'), 'metrics');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('kubernetes: without generated credentials kustomize refuses to build (no default passwords ship)', (t) => {
  if (!kubectlAvailable()) {
    t.skip('kubectl is not installed');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-k8s-nosecrets-'));
  try {
    cpSync(join(DEPLOY, 'k8s'), join(dir, 'k8s'), { recursive: true });
    for (const f of walk(join(dir, 'k8s'))) if (f.endsWith('.env')) rmSync(f);
    const res = spawnSync('kubectl', ['kustomize', join(dir, 'k8s', 'overlays', 'gpu')], { encoding: 'utf8' });
    assert.notEqual(res.status, 0);
    assert.match(res.stderr, /nats-server\.env/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------
// Grafana dashboard and metric names

void test('grafana: every panel queries Prometheus by the provisioned uid with an expression', () => {
  const ds = obj(parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')), 'datasource');
  const uid = str(get(ds, 'datasources', 0, 'uid'), 'datasource uid');
  assert.equal(get(ds, 'datasources', 0, 'type'), 'prometheus');
  const dash = obj(JSON.parse(read('deploy/grafana/dashboards/lockstep.json')), 'dashboard');
  assert.ok(typeof dash.uid === 'string' && dash.uid !== '');
  assert.deepEqual(get(dash, 'templating', 'list'), [], 'no template variables: every expr runs as-is');
  const panels = arr(dash.panels, 'panels').map((p, i) => obj(p, `panel ${i}`));
  const ids = new Set<number>();
  let exprs = 0;
  for (const p of panels) {
    const title = String(p.title);
    assert.ok(!ids.has(Number(p.id)), `panel id ${String(p.id)} unique`);
    ids.add(Number(p.id));
    assert.ok(isObj(p.gridPos), `${title}: gridPos`);
    if (p.type === 'row') continue;
    assert.deepEqual(p.datasource, { type: 'prometheus', uid }, `${title}: panel datasource`);
    const targets = arr(p.targets, `${title}: targets`);
    assert.ok(targets.length > 0, `${title}: has targets`);
    for (const tg of targets) {
      const expr = str(get(tg, 'expr'), `${title}: targets[].expr`);
      assert.ok(expr.trim() !== '', `${title}: empty expr`);
      assert.ok(!expr.includes('$'), `${title}: expr uses a Grafana variable: ${expr}`);
      assert.deepEqual(get(tg, 'datasource'), { type: 'prometheus', uid }, `${title}: target datasource`);
      exprs++;
    }
  }
  assert.ok(exprs >= 20);
  const titles = panels.map((p) => String(p.title).toLowerCase()).join('|');
  for (const must of ['throughput', 'step time', 'loss', 'live workers', 'compute time', 'gradient', 'rejected', 'checkpoint', 'cpu', 'memory']) {
    assert.ok(titles.includes(must), `a panel about ${must}`);
  }
});

void test('grafana + rules: every metric used is a lockstep metric (shared/metrics/names.ts) or a prom-client default', () => {
  // The extractor itself, on shapes the files use.
  assert.deepEqual([...promqlMetricNames('histogram_quantile(0.9, sum by (worker, le) (rate(a_b_bucket{x="y"}[1m])))')], ['a_b_bucket']);
  assert.deepEqual([...promqlMetricNames('(time() - m1) > 300 unless on (job, instance) (m2 == 1)')].sort(), ['m1', 'm2']);
  assert.deepEqual([...promqlMetricNames('(l != l) or (abs(l) == +Inf)')], ['l']);

  const dash = obj(JSON.parse(read('deploy/grafana/dashboards/lockstep.json')), 'dashboard');
  const used = new Set<string>();
  for (const p of arr(dash.panels, 'panels')) {
    for (const tg of (get(p, 'targets') as unknown[] | undefined) ?? []) {
      for (const n of promqlMetricNames(String(get(tg, 'expr')))) {
        assert.ok(knownMetric(n), `dashboard panel "${String(get(p, 'title'))}" uses ${n}, which no lockstep process exports`);
        used.add(n.replace(/_(bucket|sum|count)$/, ''));
      }
    }
  }
  for (const m of [METRIC.samples, METRIC.stepDuration, METRIC.loss, METRIC.workers, METRIC.workerCompute, METRIC.gradientBytes, METRIC.rejectedMessages, METRIC.checkpointDuration, METRIC.checkpointFailures]) {
    assert.ok(used.has(m), `the dashboard shows ${m}`);
  }
  for (const m of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes']) assert.ok(used.has(m), `the dashboard shows ${m}`);

  const rules = obj(parse(read('deploy/prometheus/rules/lockstep.rules.yml')), 'rules');
  const upOnly = new Set(['up']); // Prometheus' own per-target series
  for (const g of arr(rules.groups, 'groups')) {
    for (const r of arr(get(g, 'rules'), 'rules')) {
      for (const n of promqlMetricNames(String(get(r, 'expr')))) assert.ok(knownMetric(n, upOnly), `alert ${String(get(r, 'alert'))} uses ${n}`);
    }
  }
});

void test('every LOCKSTEP_* variable the deployment sets is a flag of the CLI schema', () => {
  const used = new Set<string>();
  const files = ['deploy/docker-compose.yml', ...walk(join(DEPLOY, 'k8s')).filter((f) => /\.ya?ml$/.test(f)).map((f) => f.slice(ROOT.length + 1)), 'deploy/docker/worker.Dockerfile', 'deploy/docker/coordinator.Dockerfile'];
  for (const f of files) for (const m of read(f).matchAll(/\bLOCKSTEP_([A-Z0-9_]*[A-Z0-9])\b/g)) used.add(m[1] as string);
  for (const u of used) {
    // nats-server's password variables and the entrypoint's *_FILE variables are not flags.
    if (/^NATS_PASS_(COORDINATOR|WORKER_\d+)$/.test(u) || /_FILE$/.test(u)) continue;
    const flag = u.toLowerCase().replace(/_/g, '-');
    assert.ok(OPTIONS.some((o) => o.flag === flag), `LOCKSTEP_${u}: --${flag} is not a flag of the CLI schema`);
  }
});
