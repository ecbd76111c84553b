// The shipped NATS security (deploy/nats/auth.conf, included by every server config) on a
// REAL nats-server: anonymous clients are refused; a worker identity can publish only its own
// grad/hb subjects (plus its join/state requests) and subscribe only to what a worker needs;
// nobody can publish as the coordinator; what is refused never reaches a subscriber. Then the
// same on the TLS config (mutual TLS) and across the 3-server cluster configs.
// Permission violations are asynchronous: the server answers -ERR, nats.js reports it as a
// status event with the operation and subject; the tests wait for exactly that event.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect, createInbox, ErrorCode, Events, StringCodec, type ConnectionOptions, type NatsConnection, type NatsError, type Subscription } from 'nats';
import { freePort, startNatsServer, type NatsServerHandle } from '../helpers/nats-server.js';

const ROOT = resolve(__dirname, '..', '..', '..');
const NATS_DIR = join(ROOT, 'deploy', 'nats');
const AUTH = readFileSync(join(NATS_DIR, 'auth.conf'), 'utf8');
const JOB = 'sec';
const S = (suffix: string): string => `lockstep.${JOB}.${suffix}`;
const sc = StringCodec();

// Fresh passwords for this run, in the environment nats-server inherits (auth.conf reads them).
const PASS = new Map<string, string>();
for (const m of AUTH.matchAll(/user:\s*"([^"]+)",\s*password:\s*\$([A-Z0-9_]+)/g)) {
  const value = `p${randomBytes(12).toString('hex')}`;
  PASS.set(m[1] as string, value);
  process.env[m[2] as string] = value;
}

/** A shipped config, made runnable in a temp dir: auth.conf inlined, monitoring port dropped. */
function shippedConfig(rel: string, replace: [string | RegExp, string][] = []): string {
  let text = readFileSync(join(NATS_DIR, rel), 'utf8');
  text = text.replace(/^include \.{1,2}\/auth\.conf$/m, AUTH);
  text = text.replace(/^http: .*$/m, '');
  for (const [from, to] of replace) text = text.replace(from, to);
  return text;
}

interface Client {
  nc: NatsConnection;
  violations: { operation: string; subject: string }[];
  waitViolation(operation: 'publish' | 'subscription', subject: string): Promise<void>;
}

async function client(url: string, user: string | undefined, extra: Partial<ConnectionOptions> = {}): Promise<Client> {
  const nc = await connect({
    servers: url,
    ...(user === undefined ? {} : { user, pass: PASS.get(user) }),
    name: `test-${user ?? 'anonymous'}`,
    reconnect: false,
    timeout: 5000,
    ...extra,
  });
  const violations: { operation: string; subject: string }[] = [];
  const waiters: (() => void)[] = [];
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === Events.Error && s.data === ErrorCode.PermissionsViolation && s.permissionContext !== undefined) {
        violations.push({ operation: s.permissionContext.operation, subject: s.permissionContext.subject });
        for (const w of waiters.splice(0)) w();
      }
    }
  })();
  return {
    nc,
    violations,
    async waitViolation(operation, subject) {
      const deadline = Date.now() + 5000;
      while (!violations.some((v) => v.operation === operation && v.subject === subject)) {
        if (Date.now() > deadline) assert.fail(`no permission violation for ${operation} ${subject}; got ${JSON.stringify(violations)}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
  };
}

/** Subscribes and records every message (subject + data). */
function record(c: Client, subject: string): { got: { subject: string; data: string }[]; sub: Subscription } {
  const got: { subject: string; data: string }[] = [];
  const sub = c.nc.subscribe(subject, { callback: (err, msg) => {
    if (err === null) got.push({ subject: msg.subject, data: sc.decode(msg.data) });
  } });
  return { got, sub };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function refused(url: string, opts: Partial<ConnectionOptions>): Promise<NatsError> {
  try {
    const nc = await connect({ servers: url, reconnect: false, timeout: 5000, ...opts });
    await nc.close();
  } catch (err) {
    return err as NatsError;
  }
  return assert.fail('the connection was accepted');
}

// ---------------------------------------------------------------------------------------
// One server, deploy/nats/nats-server.conf

let server: NatsServerHandle;
const open: Client[] = [];
async function track(c: Promise<Client>): Promise<Client> {
  const x = await c;
  open.push(x);
  return x;
}

void before(async () => {
  server = await startNatsServer({ config: shippedConfig('nats-server.conf') });
});

void after(async () => {
  await Promise.all(open.map((c) => c.nc.close().catch(() => undefined)));
  await server?.stop();
});

void test('an anonymous client, a wrong password and an unknown user are refused', async () => {
  const anon = await refused(server.url, {});
  assert.equal(anon.code, ErrorCode.AuthorizationViolation);
  const wrong = await refused(server.url, { user: 'worker-0', pass: PASS.get('worker-1') });
  assert.equal(wrong.code, ErrorCode.AuthorizationViolation);
  const unknown = await refused(server.url, { user: 'worker-99', pass: PASS.get('worker-0') });
  assert.equal(unknown.code, ErrorCode.AuthorizationViolation);
  await until(() => /authentication error - User "worker-99"/.test(server.logs()), 'the server log of the refusals');
  assert.match(server.logs(), /authentication error - User ""/, 'the server logged the anonymous attempt');
});

void test('a worker publishes its own grad and hb, and they reach the coordinator', async () => {
  const coord = await track(client(server.url, 'coordinator'));
  const w0 = await track(client(server.url, 'worker-0'));
  const grads = record(coord, S('grad.*'));
  const hbs = record(coord, S('hb.*'));
  await coord.nc.flush();
  w0.nc.publish(S('grad.worker-0'), sc.encode('g0'));
  w0.nc.publish(S('hb.worker-0'), sc.encode('h0'));
  await w0.nc.flush();
  await until(() => grads.got.length === 1 && hbs.got.length === 1, 'grad and hb from worker-0');
  assert.deepEqual(grads.got, [{ subject: S('grad.worker-0'), data: 'g0' }]);
  assert.deepEqual(hbs.got, [{ subject: S('hb.worker-0'), data: 'h0' }]);
  assert.deepEqual(w0.violations, []);
  grads.sub.unsubscribe();
  hbs.sub.unsubscribe();
});

void test("a worker cannot publish another worker's grad or hb; the coordinator receives none of it", async () => {
  const coord = await track(client(server.url, 'coordinator'));
  const w0 = await track(client(server.url, 'worker-0'));
  const seen = record(coord, S('grad.*'));
  const hbs = record(coord, S('hb.*'));
  await coord.nc.flush();
  for (const subject of [S('grad.worker-1'), S('hb.worker-1'), S('grad.coord'), 'lockstep.otherjob.grad.worker-7']) {
    w0.nc.publish(subject, sc.encode('forged'));
    await w0.waitViolation('publish', subject);
  }
  // Sentinel: worker-0's own gradient, published after the forgeries on the same connection,
  // arrives after anything the server would have forwarded before it.
  w0.nc.publish(S('grad.worker-0'), sc.encode('sentinel'));
  await until(() => seen.got.some((m) => m.data === 'sentinel'), 'the sentinel');
  await coord.nc.flush();
  assert.deepEqual(seen.got, [{ subject: S('grad.worker-0'), data: 'sentinel' }], 'no forged gradient reached the coordinator');
  assert.deepEqual(hbs.got, [], 'no forged heartbeat reached the coordinator');
  assert.ok(!w0.nc.isClosed(), 'a violation does not disconnect the worker');
  seen.sub.unsubscribe();
  hbs.sub.unsubscribe();
});

void test("a worker cannot publish the coordinator's subjects (step, weights, ctl, hb.coord); other workers receive nothing", async () => {
  const coord = await track(client(server.url, 'coordinator'));
  const w0 = await track(client(server.url, 'worker-0'));
  const w1 = await track(client(server.url, 'worker-1'));
  const watched = ['step', 'weights', 'ctl', 'hb.coord'].map((s) => record(w1, S(s)));
  await w1.nc.flush();
  for (const s of ['step', 'weights', 'ctl', 'hb.coord']) {
    w0.nc.publish(S(s), sc.encode('forged'));
    await w0.waitViolation('publish', S(s));
  }
  // The server checked and dropped each forgery before answering -ERR; a PING/PONG on the
  // observer's connection then delivers anything that had been queued for it.
  await w1.nc.flush();
  for (const w of watched) assert.deepEqual(w.got, [], `worker-1 received a forged ${w.sub.getSubject()}`);
  // The observer is live: the real coordinator's step does arrive.
  coord.nc.publish(S('step'), sc.encode('real step'));
  await until(() => (watched[0]?.got.length ?? 0) === 1, 'the coordinator step');
  assert.deepEqual(watched[0]?.got, [{ subject: S('step'), data: 'real step' }]);
  // No leave subject: a worker leaves through its own heartbeat (auth.conf documents why).
  w0.nc.publish(S('leave'), sc.encode('worker-1 left'));
  await w0.waitViolation('publish', S('leave'));
  for (const w of watched) w.sub.unsubscribe();
});

void test('a worker subscribes to step, weights, ctl and hb.coord, but not to gradients, heartbeats or requests of others', async () => {
  const coord = await track(client(server.url, 'coordinator'));
  const w0 = await track(client(server.url, 'worker-0'));
  const allowed = ['step', 'weights', 'ctl', 'hb.coord'].map((s) => record(w0, S(s)));
  await w0.nc.flush();
  for (const s of ['step', 'weights', 'ctl', 'hb.coord']) coord.nc.publish(S(s), sc.encode(s));
  await until(() => allowed.every((a) => a.got.length === 1), 'the four broadcasts');
  assert.deepEqual(w0.violations, []);
  for (const subject of [S('grad.worker-1'), S('grad.*'), 'lockstep.>', S('hb.worker-1'), S('join'), S('state')]) {
    w0.nc.subscribe(subject, { callback: () => undefined });
    await w0.waitViolation('subscription', subject);
  }
  for (const a of allowed) a.sub.unsubscribe();
});

void test('the coordinator cannot impersonate a worker nor listen to the workers\' broadcasts', async () => {
  const coord = await track(client(server.url, 'coordinator'));
  for (const subject of [S('grad.worker-0'), S('hb.worker-0'), S('join')]) {
    coord.nc.publish(subject, sc.encode('forged'));
    await coord.waitViolation('publish', subject);
  }
  coord.nc.subscribe(S('step'), { callback: () => undefined });
  await coord.waitViolation('subscription', S('step'));
});

void test('join and state requests get their replies (_INBOX), including a chunked state reply', async () => {
  const coord = await track(client(server.url, 'coordinator'));
  const w0 = await track(client(server.url, 'worker-0'));
  coord.nc.subscribe(S('join'), { callback: (err, msg) => {
    if (err === null) msg.respond(sc.encode(`welcome ${sc.decode(msg.data)}`));
  } });
  coord.nc.subscribe(S('state'), { callback: (err, msg) => {
    if (err !== null || msg.reply === undefined) return;
    for (let i = 0; i < 3; i++) coord.nc.publish(msg.reply, sc.encode(`chunk ${i}`));
  } });
  await coord.nc.flush();
  const reply = await w0.nc.request(S('join'), sc.encode('worker-0'), { timeout: 3000 });
  assert.equal(sc.decode(reply.data), 'welcome worker-0');
  const inbox = createInbox();
  const chunks = record(w0, inbox);
  await w0.nc.flush();
  w0.nc.publish(S('state'), sc.encode('weights please'), { reply: inbox });
  await until(() => chunks.got.length === 3, 'three state chunks');
  assert.deepEqual(chunks.got.map((c) => c.data), ['chunk 0', 'chunk 1', 'chunk 2']);
  assert.deepEqual(w0.violations, []);
  assert.deepEqual(coord.violations, []);
  // A worker cannot answer requests itself (publishing to _INBOX is the coordinator's right).
  w0.nc.publish(inbox, sc.encode('spoofed reply'));
  await w0.waitViolation('publish', inbox);
});

// ---------------------------------------------------------------------------------------
// TLS: deploy/nats/nats-tls.conf with certificates from deploy/nats/gen-dev-certs.sh

void test('TLS config: mutual TLS plus credentials connects; no client certificate or no TLS is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-nats-tls-'));
  let tlsServer: NatsServerHandle | undefined;
  const clients: NatsConnection[] = [];
  try {
    const gen = spawnSync(join(NATS_DIR, 'gen-dev-certs.sh'), [dir], { encoding: 'utf8' });
    assert.equal(gen.status, 0, gen.stderr);
    tlsServer = await startNatsServer({ config: shippedConfig('nats-tls.conf', [[/\/etc\/nats\/certs/g, dir]]) });
    const tls = { caFile: join(dir, 'ca.pem'), certFile: join(dir, 'client-cert.pem'), keyFile: join(dir, 'client-key.pem') };
    const coord = await client(tlsServer.url, 'coordinator', { tls });
    const w0 = await client(tlsServer.url, 'worker-0', { tls });
    clients.push(coord.nc, w0.nc);
    assert.ok(coord.nc.info?.tls_required === true || coord.nc.info?.tls_verify === true, 'the server requires TLS');
    const grads = record(coord, S('grad.*'));
    await coord.nc.flush();
    w0.nc.publish(S('grad.worker-0'), sc.encode('over tls'));
    w0.nc.publish(S('grad.worker-1'), sc.encode('forged'));
    await w0.waitViolation('publish', S('grad.worker-1'));
    w0.nc.publish(S('grad.worker-0'), sc.encode('sentinel'));
    await until(() => grads.got.length === 2, 'two gradients over TLS');
    assert.deepEqual(grads.got.map((g) => g.data), ['over tls', 'sentinel'], 'permissions hold over TLS too');

    await refused(tlsServer.url, { user: 'worker-0', pass: PASS.get('worker-0'), tls: { caFile: tls.caFile } });
    await refused(tlsServer.url, { user: 'worker-0', pass: PASS.get('worker-0') });
    const anon = await refused(tlsServer.url, { tls });
    assert.equal(anon.code, ErrorCode.AuthorizationViolation, 'a valid client certificate alone is not an identity');
  } finally {
    await Promise.all(clients.map((nc) => nc.close().catch(() => undefined)));
    await tlsServer?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------
// Cluster: deploy/nats/cluster/nats-{a,b,c}.conf, route ports moved to free ones

void test('3-server cluster: messages cross the routes, permissions hold on every server', async () => {
  const names = ['a', 'b', 'c'] as const;
  const texts = names.map((n) => readFileSync(join(NATS_DIR, 'cluster', `nats-${n}.conf`), 'utf8'));
  const routePorts = texts.map((t) => Number(/cluster \{[\s\S]*?listen: 127\.0\.0\.1:(\d+)/.exec(t)?.[1]));
  const freshPorts = [await freePort(), await freePort(), await freePort()];
  const servers: NatsServerHandle[] = [];
  const clients: NatsConnection[] = [];
  try {
    for (const n of names) {
      const replacements: [RegExp, string][] = routePorts.map((p, i) => [new RegExp(`127\\.0\\.0\\.1:${p}\\b`, 'g'), `127.0.0.1:${String(freshPorts[i])}`]);
      servers.push(await startNatsServer({ config: shippedConfig(`cluster/nats-${n}.conf`, replacements) }));
    }
    const [sa, sb, scl] = servers as [NatsServerHandle, NatsServerHandle, NatsServerHandle];
    const coord = await client(scl.url, 'coordinator');
    const w0a = await client(sa.url, 'worker-0');
    const w0b = await client(sb.url, 'worker-0');
    clients.push(coord.nc, w0a.nc, w0b.nc);
    const grads = record(coord, S('grad.*'));
    await coord.nc.flush();
    // Routes and interest propagate asynchronously: publish until one arrives from each server.
    for (const [label, w] of [['a', w0a], ['b', w0b]] as const) {
      const deadline = Date.now() + 15_000;
      while (!grads.got.some((g) => g.data === `from ${label}`)) {
        if (Date.now() > deadline) assert.fail(`no route from server ${label} to c:\n${servers.map((s) => s.logs().slice(-1500)).join('\n---\n')}`);
        w.nc.publish(S('grad.worker-0'), sc.encode(`from ${label}`));
        await w.nc.flush();
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const before = grads.got.length;
    w0b.nc.publish(S('grad.worker-1'), sc.encode('forged'));
    await w0b.waitViolation('publish', S('grad.worker-1'));
    w0b.nc.publish(S('grad.worker-0'), sc.encode('sentinel'));
    await until(() => grads.got.some((g) => g.data === 'sentinel'), 'the sentinel across the route');
    assert.deepEqual(grads.got.slice(before).map((g) => g.subject), [S('grad.worker-0')], 'the forgery did not cross the route');
    assert.equal(await refused(sa.url, {}).then((e) => e.code), ErrorCode.AuthorizationViolation, 'anonymous refused on a cluster member');
  } finally {
    await Promise.all(clients.map((nc) => nc.close().catch(() => undefined)));
    await Promise.all(servers.map((s) => s.stop()));
  }
});
