// Every shipped NATS server config passes the real nats-server's `-t` (Debian's nats-server:
// only features that version has), the generated users file has not drifted from its
// generator, and the credential and certificate scripts produce what the configs expect.
// The permissions themselves are exercised against a running server in
// test/integration/nats-security.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..', '..');
const NATS_DIR = join(ROOT, 'deploy', 'nats');
const NATS_SERVER = existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server';

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd = ROOT): { status: number | null; out: string; stdout: string } {
  const res = spawnSync(cmd, args, { encoding: 'utf8', env, cwd, timeout: 60_000 });
  if (res.error !== undefined) throw res.error;
  return { status: res.status, out: `${res.stdout}${res.stderr}`, stdout: res.stdout };
}

function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-natscfg-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The password variables a config (and the files it includes) reads from the environment. */
function passwordVars(authConf: string): string[] {
  return [...authConf.matchAll(/password:\s*\$([A-Z0-9_]+)/g)].map((m) => m[1] as string);
}

function envWithPasswords(vars: string[], extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  for (const [i, v] of vars.entries()) env[v] = `ptest${i}secret`;
  return { ...env, ...extra };
}

function natsTest(conf: string, env: NodeJS.ProcessEnv): { status: number | null; out: string } {
  return run(NATS_SERVER, ['-t', '-c', conf], env);
}

const AUTH = readFileSync(join(NATS_DIR, 'auth.conf'), 'utf8');
const VARS = passwordVars(AUTH);

void test('nats-server is installed', (t) => {
  const v = run(NATS_SERVER, ['--version']);
  assert.equal(v.status, 0, v.out);
  t.diagnostic(v.out.trim());
});

void test('nats-server -t accepts every shipped config', () => {
  const env = envWithPasswords(VARS, { POD_NAME: 'nats-0' });
  const confs = ['nats-server.conf', 'cluster/nats-a.conf', 'cluster/nats-b.conf', 'cluster/nats-c.conf'].map((c) => join(NATS_DIR, c));
  confs.push(join(ROOT, 'deploy', 'k8s', 'base', 'nats', 'nats.conf'));
  for (const conf of confs) {
    const res = natsTest(conf, env);
    assert.equal(res.status, 0, `${conf}:\n${res.out}`);
    assert.match(res.out, /configuration file .* is valid/);
  }
});

void test('nats-server -t accepts nats-tls.conf with certificates from gen-dev-certs.sh', () => {
  withTempDir((dir) => {
    const certs = join(dir, 'certs');
    const gen = run(join(NATS_DIR, 'gen-dev-certs.sh'), [certs, 'nats.example.test']);
    assert.equal(gen.status, 0, gen.out);
    const conf = readFileSync(join(NATS_DIR, 'nats-tls.conf'), 'utf8');
    assert.match(conf, /\/etc\/nats\/certs\//, 'the shipped config reads certs where compose/k8s mount them');
    writeFileSync(join(dir, 'nats-tls.conf'), conf.replaceAll('/etc/nats/certs', certs));
    copyFileSync(join(NATS_DIR, 'auth.conf'), join(dir, 'auth.conf'));
    const res = natsTest(join(dir, 'nats-tls.conf'), envWithPasswords(VARS));
    assert.equal(res.status, 0, res.out);
    // As shipped (no certificates at /etc/nats/certs here) the server refuses to start: -t reads the files.
    const shipped = natsTest(join(NATS_DIR, 'nats-tls.conf'), envWithPasswords(VARS));
    if (!existsSync('/etc/nats/certs/server-cert.pem')) {
      assert.notEqual(shipped.status, 0);
      assert.match(shipped.out, /server-cert\.pem/);
    }
  });
});

void test('a config whose passwords are not in the environment is refused (no default credentials)', () => {
  const res = natsTest(join(NATS_DIR, 'nats-server.conf'), { PATH: process.env.PATH ?? '' });
  assert.notEqual(res.status, 0);
  assert.match(res.out, /LOCKSTEP_NATS_PASS_COORDINATOR/);
  // A missing worker password alone is enough to refuse.
  const env = envWithPasswords(VARS);
  delete env.LOCKSTEP_NATS_PASS_WORKER_7;
  const one = natsTest(join(NATS_DIR, 'nats-server.conf'), env);
  assert.notEqual(one.status, 0);
  assert.match(one.out, /LOCKSTEP_NATS_PASS_WORKER_7/);
});

void test('nats-server -t rejects what 2.9 does not know, so -t passing means the features exist', () => {
  withTempDir((dir) => {
    writeFileSync(join(dir, 'bad.conf'), 'listen: 127.0.0.1:4222\nno_such_option: 1\n');
    const res = natsTest(join(dir, 'bad.conf'), envWithPasswords([]));
    assert.notEqual(res.status, 0);
    assert.match(res.out, /unknown field/);
  });
});

void test('auth.conf is what gen-users.sh generates; its k8s copy is identical', () => {
  const gen = run(join(NATS_DIR, 'gen-users.sh'), ['8']);
  assert.equal(gen.status, 0, gen.out);
  assert.equal(gen.stdout, AUTH, 'deploy/nats/auth.conf drifted from deploy/nats/gen-users.sh 8');
  assert.equal(readFileSync(join(ROOT, 'deploy', 'k8s', 'base', 'nats', 'auth.conf'), 'utf8'), AUTH);
  assert.deepEqual(VARS, ['LOCKSTEP_NATS_PASS_COORDINATOR', ...Array.from({ length: 8 }, (_, i) => `LOCKSTEP_NATS_PASS_WORKER_${i}`)]);
  // Each worker user may publish its own grad/hb subjects, and no other worker's.
  for (let i = 0; i < 8; i++) {
    const block = new RegExp(`user: "worker-${i}"[\\s\\S]*?publish: \\{ allow: \\[([^\\]]*)\\] \\}`).exec(AUTH);
    assert.ok(block, `worker-${i} user`);
    const subjects = (block[1] as string).split(',').map((s) => s.trim().replace(/"/g, ''));
    assert.deepEqual(subjects, [`lockstep.*.grad.worker-${i}`, `lockstep.*.hb.worker-${i}`, 'lockstep.*.join', 'lockstep.*.state']);
  }
  assert.doesNotMatch(AUTH, /no_auth_user/, 'no anonymous fallback user');
});

void test('gen-users.sh: other sizes and id prefixes give a valid config; bad input is refused', () => {
  withTempDir((dir) => {
    const gen = run(join(NATS_DIR, 'gen-users.sh'), ['3', 'gpu-node-']);
    assert.equal(gen.status, 0, gen.out);
    writeFileSync(join(dir, 'auth.conf'), gen.stdout);
    writeFileSync(join(dir, 'nats.conf'), 'listen: 127.0.0.1:4222\ninclude ./auth.conf\n');
    const vars = passwordVars(gen.stdout);
    assert.deepEqual(vars, ['LOCKSTEP_NATS_PASS_COORDINATOR', 'LOCKSTEP_NATS_PASS_GPU_NODE_0', 'LOCKSTEP_NATS_PASS_GPU_NODE_1', 'LOCKSTEP_NATS_PASS_GPU_NODE_2']);
    assert.match(gen.stdout, /"lockstep\.\*\.grad\.gpu-node-2"/);
    const res = natsTest(join(dir, 'nats.conf'), envWithPasswords(vars));
    assert.equal(res.status, 0, res.out);
  });
  assert.notEqual(run(join(NATS_DIR, 'gen-users.sh'), ['x']).status, 0, 'N must be a number');
  assert.notEqual(run(join(NATS_DIR, 'gen-users.sh'), ['2', 'a.b']).status, 0, 'a prefix with a dot would inject subject tokens');
  assert.notEqual(run(join(NATS_DIR, 'gen-users.sh'), ['2', 'a*']).status, 0, 'a prefix with a wildcard is refused');
});

void test('gen-dev-certs.sh: a CA, a server certificate for the NATS names, a client certificate; keys private', () => {
  withTempDir((dir) => {
    const res = run(join(NATS_DIR, 'gen-dev-certs.sh'), [dir]);
    assert.equal(res.status, 0, res.out);
    for (const f of ['ca.pem', 'ca-key.pem', 'server-cert.pem', 'server-key.pem', 'client-cert.pem', 'client-key.pem']) assert.ok(existsSync(join(dir, f)), f);
    for (const f of ['ca-key.pem', 'server-key.pem', 'client-key.pem']) assert.equal(statSync(join(dir, f)).mode & 0o077, 0, `${f} is private`);
    const verify = run('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), join(dir, 'server-cert.pem'), join(dir, 'client-cert.pem')]);
    assert.equal(verify.status, 0, verify.out);
    const text = run('openssl', ['x509', '-in', join(dir, 'server-cert.pem'), '-noout', '-text']).out;
    for (const san of ['DNS:localhost', 'IP Address:127.0.0.1', 'DNS:nats', 'DNS:nats.lockstep.svc.cluster.local', 'DNS:*.nats-headless']) assert.ok(text.includes(san), `server SAN ${san}`);
    assert.match(text, /TLS Web Server Authentication/);
    const client = run('openssl', ['x509', '-in', join(dir, 'client-cert.pem'), '-noout', '-text']).out;
    assert.match(client, /TLS Web Client Authentication/);
    assert.doesNotMatch(client, /TLS Web Server Authentication/);
  });
});

void test('gen-secrets.sh: fresh passwords for every identity in both deployments, never overwritten silently', () => {
  withTempDir((dir) => {
    const composeEnv = join(dir, 'compose.env');
    const k8s = join(dir, 'k8s');
    const mon = join(dir, 'mon');
    const args = ['--compose', composeEnv, '--k8s', k8s, '--monitoring', mon];
    const res = run(join(ROOT, 'deploy', 'gen-secrets.sh'), args);
    assert.equal(res.status, 0, res.out);
    const parseEnv = (f: string): Map<string, string> =>
      new Map(
        readFileSync(f, 'utf8')
          .split('\n')
          .filter((l) => l !== '' && !l.startsWith('#'))
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
    const compose = parseEnv(composeEnv);
    const server = parseEnv(join(k8s, 'nats-server.env'));
    const workers = parseEnv(join(k8s, 'nats-workers.env'));
    for (const v of VARS) {
      assert.match(compose.get(v) ?? '', /^p[0-9a-f]{48}$/, `${v}: a letter then hex (nats-server parses env values)`);
      assert.equal(server.get(v), compose.get(v), `${v}: same in compose and k8s`);
    }
    for (let i = 0; i < 8; i++) assert.equal(workers.get(`worker-${i}`), server.get(`LOCKSTEP_NATS_PASS_WORKER_${i}`), `worker-${i}'s own key`);
    const all = [...server.values()];
    assert.equal(new Set(all).size, all.length, 'every identity has a different password');
    assert.match(compose.get('LOCKSTEP_DASHBOARD_TOKEN') ?? '', /^p[0-9a-f]{48}$/);
    assert.match(parseEnv(join(k8s, 'dashboard.env')).get('token') ?? '', /^p[0-9a-f]{48}$/);
    assert.match(parseEnv(join(mon, 'grafana.env')).get('admin-password') ?? '', /^p[0-9a-f]{48}$/);
    assert.equal(statSync(composeEnv).mode & 0o077, 0, 'the compose .env is private');

    // The generated passwords start the shipped config.
    const t = natsTest(join(NATS_DIR, 'nats-server.conf'), { PATH: process.env.PATH ?? '', ...Object.fromEntries(server) });
    assert.equal(t.status, 0, t.out);

    const again = run(join(ROOT, 'deploy', 'gen-secrets.sh'), args);
    assert.notEqual(again.status, 0, 'refuses to replace existing credentials');
    assert.equal(parseEnv(composeEnv).get('LOCKSTEP_NATS_PASS_COORDINATOR'), compose.get('LOCKSTEP_NATS_PASS_COORDINATOR'));
    const forced = run(join(ROOT, 'deploy', 'gen-secrets.sh'), [...args, '--force']);
    assert.equal(forced.status, 0, forced.out);
    assert.notEqual(parseEnv(composeEnv).get('LOCKSTEP_NATS_PASS_COORDINATOR'), compose.get('LOCKSTEP_NATS_PASS_COORDINATOR'), '--force rotates');
  });
});

void test('the three cluster configs route to each other on distinct loopback ports', () => {
  const ports = new Map<string, { client: string; route: string; http: string; routes: string[] }>();
  for (const s of ['a', 'b', 'c']) {
    const text = readFileSync(join(NATS_DIR, 'cluster', `nats-${s}.conf`), 'utf8');
    const client = /^listen: (127\.0\.0\.1:\d+)$/m.exec(text)?.[1] ?? '';
    const http = /^http: (127\.0\.0\.1:\d+)$/m.exec(text)?.[1] ?? '';
    const route = /cluster \{[\s\S]*?listen: (127\.0\.0\.1:\d+)/.exec(text)?.[1] ?? '';
    const routes = [...text.matchAll(/nats-route:\/\/(127\.0\.0\.1:\d+)/g)].map((m) => m[1] as string);
    assert.ok(client && http && route, `nats-${s}: loopback listeners`);
    assert.match(text, /^include \.\.\/auth\.conf$/m, `nats-${s}: same users and permissions`);
    ports.set(s, { client, route, http, routes });
  }
  const all = [...ports.values()].flatMap((p) => [p.client, p.route, p.http]);
  assert.equal(new Set(all).size, all.length, 'no port used twice');
  for (const [s, p] of ports) {
    const others = [...ports.entries()].filter(([o]) => o !== s).map(([, q]) => q.route);
    assert.deepEqual(p.routes.sort(), others.sort(), `nats-${s} routes to the other two`);
  }
});
