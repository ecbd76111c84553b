// Real training through the shipped NATS security: a real nats-server with
// deploy/nats/nats-server.conf (users + per-role subject permissions) and with
// deploy/nats/nats-tls.conf (mutual TLS, certificates from gen-dev-certs.sh), a
// coordinator process with the coordinator identity and two worker processes with
// the worker-0 / worker-1 identities, all from dist/bin/lockstep.js. The secured runs
// must produce the loss sequence of the same run on an open server; anonymous or
// wrongly credentialed processes must fail fast with a message naming the problem; a
// process holding worker-0's credentials but claiming to be worker-1 gets nothing
// accepted (the broker refuses its grad/hb subjects) and the run finishes with the
// honest worker.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startNatsServer, type NatsServerHandle } from '../helpers/nats-server.js';

const ROOT = resolve(__dirname, '..', '..', '..');
const CLI = join(ROOT, 'dist', 'bin', 'lockstep.js');
const NATS_DIR = join(ROOT, 'deploy', 'nats');
const AUTH = readFileSync(join(NATS_DIR, 'auth.conf'), 'utf8');
const TRAIN = ['--filters', '4', '--train-limit', '256', '--steps', '5'];

// Fresh passwords per run, in the environment nats-server inherits (auth.conf reads them).
const PASS = new Map<string, string>();
for (const m of AUTH.matchAll(/user:\s*"([^"]+)",\s*password:\s*\$([A-Z0-9_]+)/g)) {
  const value = `p${randomBytes(12).toString('hex')}`;
  PASS.set(m[1] as string, value);
  process.env[m[2] as string] = value;
}
const pass = (user: string): string => {
  const p = PASS.get(user);
  assert.ok(p !== undefined, `auth.conf has no user ${user}`);
  return p;
};

/** A shipped config made runnable in a temp dir: auth.conf inlined, the monitoring port dropped (the helper sets -a/-p). */
function shippedConfig(rel: string, replace: [string | RegExp, string][] = []): string {
  let text = readFileSync(join(NATS_DIR, rel), 'utf8');
  text = text.replace(/^include \.{1,2}\/auth\.conf$/m, AUTH);
  text = text.replace(/^http: .*$/m, '');
  for (const [from, to] of replace) text = text.replace(from, to);
  return text;
}

// ---------------------------------------------------------------------------------------
// Processes

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

const children = new Set<ChildProcess>();

/** The environment of a lockstep child: ours without any LOCKSTEP_* (flags come from the test), plus `env`. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LOCKSTEP_')) out[k] = v;
  return { ...out, ...env };
}

function lockstep(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<Exit> {
  const t0 = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolveExit) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolveExit({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

function tail(s: string, n = 3000): string {
  return s.length > n ? `...${s.slice(-n)}` : s;
}

interface TrainResult {
  steps: number;
  workers: number;
  losses: number[];
  weightsSha256: string;
}

function resultOf(e: Exit, what: string): TrainResult {
  assert.equal(e.code, 0, `${what} exited with ${String(e.code ?? e.signal)}:\n${tail(e.stderr)}`);
  const line = e.stdout.trim().split('\n').pop() ?? '';
  const r = JSON.parse(line) as TrainResult;
  assert.equal(r.steps, 5, what);
  assert.equal(r.losses.length, 5, what);
  for (const l of r.losses) assert.ok(Number.isFinite(l), `${what}: loss ${l}`);
  return r;
}

interface Run {
  coordinator: Exit;
  workers: Exit[];
  result: TrainResult;
}

/**
 * One coordinator (waiting for two workers, so the batch is split the same way in
 * every run) plus the given workers, concurrently; resolves when all have exited.
 */
async function train(job: string, coordinator: { args: string[]; env?: Record<string, string> }, workers: { args: string[]; env?: Record<string, string> }[]): Promise<Run> {
  const ckpt = mkdtempSync(join(tmpdir(), `lockstep-sec-${job}-`));
  try {
    const before = new Set(children);
    const c = lockstep(['coordinator', '--job', job, ...TRAIN, '--json', '--wait-workers', '2', '--metrics-port', '0', '--dashboard-port', '0', '--checkpoint-dir', ckpt, ...coordinator.args], coordinator.env);
    const coordChild = [...children].find((x) => !before.has(x));
    // A worker that fails would leave the coordinator waiting for it: stop the run at once.
    const w = workers.map((x) =>
      lockstep(['worker', '--job', job, '--log-level', 'warn', ...x.args], x.env).then((e) => {
        if (e.code !== 0) coordChild?.kill('SIGKILL');
        return e;
      }),
    );
    const [ce, ...we] = await Promise.all([c, ...w]);
    const coord = ce as Exit;
    for (const [i, e] of we.entries()) assert.equal(e.code, 0, `worker ${i} exited with ${String(e.code ?? e.signal)}:\n${tail(e.stderr)}`);
    return { coordinator: coord, workers: we, result: resultOf(coord, `coordinator of job ${job}`) };
  } finally {
    rmSync(ckpt, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------

let open: NatsServerHandle;
let secured: NatsServerHandle;
let tls: NatsServerHandle;
let certDir: string;
let reference: TrainResult;

void before(async () => {
  assert.ok(existsSync(CLI), `${CLI} missing: build with npx tsc -p tsconfig.json && node scripts/copy-assets.mjs`);
  certDir = mkdtempSync(join(tmpdir(), 'lockstep-sec-certs-'));
  const gen = spawnSync('sh', [join(NATS_DIR, 'gen-dev-certs.sh'), certDir], { encoding: 'utf8' });
  assert.equal(gen.status, 0, gen.stderr);
  [open, secured, tls] = await Promise.all([
    startNatsServer(),
    startNatsServer({ config: shippedConfig('nats-server.conf') }),
    startNatsServer({ config: shippedConfig('nats-tls.conf', [[/\/etc\/nats\/certs/g, certDir]]) }),
  ]);
});

void after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await Promise.all([open?.stop(), secured?.stop(), tls?.stop()]);
  if (certDir !== undefined) rmSync(certDir, { recursive: true, force: true });
});

void test('reference: the run on an open nats-server', async () => {
  const run = await train('ref', { args: ['--nats', open.url, '--log-level', 'warn'] }, [
    { args: ['--nats', open.url, '--worker-id', 'worker-0'] },
    { args: ['--nats', open.url, '--worker-id', 'worker-1'] },
  ]);
  assert.equal(run.result.workers, 2);
  reference = run.result;
});

void test('shipped nats-server.conf: coordinator, worker-0 and worker-1 identities train to the same losses', async () => {
  assert.ok(reference !== undefined, 'the reference run failed');
  const run = await train(
    'auth',
    { args: ['--nats', secured.url, '--nats-user', 'coordinator', '--nats-pass', pass('coordinator'), '--log-level', 'warn'] },
    [
      { args: ['--nats', secured.url, '--worker-id', 'worker-0', '--nats-user', 'worker-0', '--nats-pass', pass('worker-0')] },
      // The same through the environment.
      { args: [], env: { LOCKSTEP_NATS: secured.url, LOCKSTEP_WORKER_ID: 'worker-1', LOCKSTEP_NATS_USER: 'worker-1', LOCKSTEP_NATS_PASS: pass('worker-1') } },
    ],
  );
  assert.equal(run.result.workers, 2);
  assert.deepEqual(run.result.losses, reference.losses, 'same loss sequence as on the open server');
  assert.equal(run.result.weightsSha256, reference.weightsSha256, 'same final weights');
  for (const e of [run.coordinator, ...run.workers]) assert.doesNotMatch(e.stderr, /permissions violation/i, 'the protocol needs nothing the config forbids');
  assert.doesNotMatch(secured.logs(), /Violation - User "(coordinator|worker-0|worker-1)"/, 'the server refused nothing');
});

void test('shipped nats-tls.conf: the same run over mutual TLS (flags and LOCKSTEP_* env)', async () => {
  assert.ok(reference !== undefined, 'the reference run failed');
  const url = `tls://127.0.0.1:${tls.port}`;
  const files = { ca: join(certDir, 'ca.pem'), cert: join(certDir, 'client-cert.pem'), key: join(certDir, 'client-key.pem') };
  const tlsEnv = (user: string, id: string): Record<string, string> => ({
    LOCKSTEP_NATS: url,
    LOCKSTEP_WORKER_ID: id,
    LOCKSTEP_NATS_USER: user,
    LOCKSTEP_NATS_PASS: pass(user),
    LOCKSTEP_NATS_TLS_CA: files.ca,
    LOCKSTEP_NATS_TLS_CERT: files.cert,
    LOCKSTEP_NATS_TLS_KEY: files.key,
  });
  const run = await train(
    'tls',
    {
      args: ['--nats', url, '--nats-user', 'coordinator', '--nats-pass', pass('coordinator'), '--nats-tls-ca', files.ca, '--nats-tls-cert', files.cert, '--nats-tls-key', files.key, '--log-level', 'info'],
    },
    [{ args: [], env: tlsEnv('worker-0', 'worker-0') }, { args: [], env: tlsEnv('worker-1', 'worker-1') }],
  );
  assert.match(run.coordinator.stderr, /"tls":true[^\n]*"msg":"connected to NATS"/, 'the coordinator connected over TLS');
  assert.deepEqual(run.result.losses, reference.losses, 'same loss sequence as on the open server');
  assert.equal(run.result.weightsSha256, reference.weightsSha256, 'same final weights');
});

void test('anonymous, wrongly credentialed or certificate-less processes fail fast, naming the problem', async () => {
  const tlsUrl = `tls://127.0.0.1:${tls.port}`;
  const cases: { what: string; args: string[]; message: RegExp; withinMs?: number }[] = [
    {
      what: 'anonymous coordinator',
      args: ['coordinator', '--nats', secured.url, ...TRAIN, '--metrics-port', '0', '--dashboard-port', '0', '--checkpoint-dir', join(certDir, 'never')],
      message: /^lockstep: NATS at nats:\/\/127\.0\.0\.1:\d+ refused the connection \(Authorization Violation\): no credentials were given; set --nats-user and --nats-pass/m,
    },
    {
      what: 'anonymous worker',
      args: ['worker', '--nats', secured.url, '--worker-id', 'worker-0'],
      message: /^lockstep: NATS at nats:\/\/127\.0\.0\.1:\d+ refused the connection \(Authorization Violation\): no credentials were given/m,
    },
    {
      what: "worker-0 with worker-1's password",
      args: ['worker', '--nats', secured.url, '--worker-id', 'worker-0', '--nats-user', 'worker-0', '--nats-pass', pass('worker-1')],
      message: /^lockstep: NATS at .* refused the connection \(Authorization Violation\): it did not accept user 'worker-0' with the given password \(--nats-user\/--nats-pass\)$/m,
    },
    {
      what: 'a worker without the CA on the TLS server',
      args: ['worker', '--nats', tlsUrl, '--worker-id', 'worker-0', '--nats-user', 'worker-0', '--nats-pass', pass('worker-0')],
      message: /^lockstep: TLS with NATS at tls:\/\/127\.0\.0\.1:\d+ failed \(UNABLE_TO_VERIFY_LEAF_SIGNATURE[^)]*\): the server's certificate is not signed by a trusted CA; give its CA with --nats-tls-ca$/m,
    },
    {
      // The server closes such a client after the handshake; nats.js sees only a timeout (10 s), the server's INFO says why.
      what: 'a worker without a client certificate on the mutual-TLS server',
      args: ['worker', '--nats', tlsUrl, '--worker-id', 'worker-0', '--nats-user', 'worker-0', '--nats-pass', pass('worker-0'), '--nats-tls-ca', join(certDir, 'ca.pem')],
      message: /^lockstep: NATS at tls:\/\/127\.0\.0\.1:\d+ requires a client certificate \(mutual TLS\): set --nats-tls-cert and --nats-tls-key/m,
      withinMs: 40_000,
    },
    {
      what: 'a missing certificate file',
      args: ['worker', '--nats', tlsUrl, '--worker-id', 'worker-0', '--nats-tls-ca', join(certDir, 'missing.pem')],
      message: /^lockstep: --nats-tls-ca: cannot read '.*missing\.pem': ENOENT$/m,
    },
  ];
  const exits = await Promise.all(cases.map((c) => lockstep(c.args, {}, 60_000)));
  for (const [i, c] of cases.entries()) {
    const e = exits[i] as Exit;
    assert.equal(e.code, 2, `${c.what}: exit code ${String(e.code ?? e.signal)} after ${e.ms} ms:\n${tail(e.stderr)}`);
    assert.match(e.stderr, c.message, `${c.what}:\n${tail(e.stderr)}`);
    assert.equal(e.stdout, '', c.what);
    assert.ok(e.ms < (c.withinMs ?? 20_000), `${c.what} took ${e.ms} ms`);
  }
  assert.match(secured.logs(), /authentication error - User ""/, 'the server saw the anonymous attempts');
});

void test("worker-0's credentials claiming --worker-id worker-1: nothing it sends is accepted, the honest worker finishes the run", async () => {
  assert.ok(reference !== undefined, 'the reference run failed');
  const timeline = join(certDir, 'impostor-timeline.json');
  const creds = ['--nats', secured.url, '--nats-user', 'worker-0', '--nats-pass', pass('worker-0')];
  const run = await train(
    'imp',
    { args: ['--nats', secured.url, '--nats-user', 'coordinator', '--nats-pass', pass('coordinator'), '--heartbeat-timeout', '3', '--timeline', timeline, '--log-level', 'info'] },
    [
      { args: [...creds, '--worker-id', 'worker-0', '--heartbeat-timeout', '3'] },
      { args: [...creds, '--worker-id', 'worker-1'] },
    ],
  );
  // The broker refused the impostor's gradients (and heartbeats): they never reached the coordinator.
  assert.match(secured.logs(), /Publish Violation - User "worker-0", Subject "lockstep\.imp\.grad\.worker-1"/);
  const impostor = run.workers[1] as Exit;
  assert.match(impostor.stderr, /NATS permissions violation: user 'worker-0' with the given password \(--nats-user\/--nats-pass\) may not publish to lockstep\.imp\.grad\.worker-1/);
  assert.doesNotMatch((run.workers[0] as Exit).stderr, /permissions violation/i, 'the honest worker needs nothing it may not do');
  // It joined (join is open to every worker identity), so it was given parts: the coordinator recovered them.
  assert.match(run.coordinator.stderr, /"worker":"worker-1"[^\n]*"msg":"worker joined"/);
  assert.match(run.coordinator.stderr, /"msg":"(straggler: backup copy sent|part reassigned|worker lost)"/);
  // Every part of every step was computed by worker-0 (the timeline names who delivered each part).
  const trace = JSON.parse(readFileSync(timeline, 'utf8')) as { traceEvents: { name: string; ph: string; tid: number; args?: { name?: string; step?: number } }[] };
  const names = new Map(trace.traceEvents.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => [e.tid, e.args?.name]));
  const computed = trace.traceEvents.filter((e) => e.ph === 'X' && e.name === 'compute');
  assert.deepEqual([...new Set(computed.map((e) => names.get(e.tid)))], ['worker-0']);
  assert.deepEqual([...new Set(computed.map((e) => e.args?.step))].sort(), [0, 1, 2, 3, 4]);
  // Same math (the global batch is the unit), within the design's 1e-5 relative.
  for (const [i, l] of run.result.losses.entries()) {
    const ref = reference.losses[i] as number;
    assert.ok(Math.abs(l - ref) <= 1e-5 * Math.abs(ref), `step ${i}: loss ${l} vs ${ref}`);
  }
});
