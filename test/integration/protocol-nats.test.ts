// The binary tensor path over a real nats-server with its default 1 MB
// max_payload: a 3 MB tensor goes out as chunks and comes back intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'nats';
import type { NatsConnection } from 'nats';
import { CodecError, ProtocolError } from '../../shared/errors.js';
import { BinaryReceiver, encodeBinaryMessage } from '../../shared/protocol/binary-message.js';
import type { ReceivedBinary } from '../../shared/protocol/binary-message.js';
import { createMessage, encodeMessage, MSG, parseMessage } from '../../shared/protocol/messages.js';
import type { WeightsMessage } from '../../shared/protocol/messages.js';
import { subjectsFor } from '../../shared/protocol/subjects.js';
import { startNatsServer } from '../helpers/nats-server.js';

function tensor(n: number): Float32Array {
  const a = new Float32Array(n);
  let s = 7;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]);
}

void test('protocol over nats-server: a 3 MB tensor crosses a 1 MB max_payload in chunks, intact', async (t) => {
  const server = await startNatsServer();
  const conns: NatsConnection[] = [];
  t.after(async () => {
    for (const nc of conns) await nc.close().catch(() => undefined);
    await server.stop();
  });
  const pub = await connect({ servers: server.url, name: 'test-pub' });
  const subConn = await connect({ servers: server.url, name: 'test-sub' });
  conns.push(pub, subConn);

  const maxPayload = pub.info?.max_payload;
  assert.equal(maxPayload, 1024 * 1024, 'the server default max_payload');
  const subjects = subjectsFor('itest');
  const numel = (3 * 1024 * 1024) / 4;
  const weights = tensor(numel);
  const meta: WeightsMessage = createMessage(MSG.weights, { job: 'itest', term: 1, step: 5, sender: 'coord' }, { version: 5, epoch: 0, numel });

  // The limit is real: one publish of the whole tensor is refused by the client.
  assert.throws(() => pub.publish(subjects.weights, new Uint8Array(numel * 4)), /MAX_PAYLOAD_EXCEEDED|max_payload|payload/i);

  const rx = new BinaryReceiver({ accept: [MSG.weights], maxTransferBytes: 8 * 1024 * 1024, ttlMs: 10_000 });
  const rejected: string[] = [];
  const received: ReceivedBinary<WeightsMessage>[] = [];
  const sub = subConn.subscribe(subjects.weights);
  let notify: (() => void) | undefined;
  const loop = (async () => {
    for await (const m of sub) {
      try {
        const got = rx.push(m.data, m.subject);
        if (got !== null) {
          received.push({ ...got, payload: got.payload.slice() });
          notify?.();
        }
      } catch (err) {
        if (err instanceof CodecError || err instanceof ProtocolError) rejected.push(err.reason);
        else throw err;
      }
    }
  })();
  await subConn.flush();

  const waitForReceived = (n: number): Promise<void> =>
    withTimeout(
      new Promise<void>((resolve) => {
        notify = () => {
          if (received.length >= n) resolve();
        };
        notify();
      }),
      15_000,
      `${n} reassembled tensors`,
    );

  const chunks = encodeBinaryMessage(meta, weights, { maxPayload: maxPayload as number });
  assert.ok(chunks.length >= 4, `${chunks.length} chunks`);
  for (const c of chunks) {
    assert.ok(c.length <= (maxPayload as number), `chunk of ${c.length} bytes`);
    pub.publish(subjects.weights, c);
  }
  await pub.flush();
  await waitForReceived(1);
  const first = received[0] as ReceivedBinary<WeightsMessage>;
  assert.deepEqual(first.meta, meta);
  assert.equal(first.source, subjects.weights);
  assert.ok(Buffer.from(first.payload.buffer, first.payload.byteOffset, first.payload.byteLength).equals(Buffer.from(weights.buffer)), 'payload bytes differ');

  // A chunk damaged in flight is rejected by reason; a clean resend still gets through.
  const resend = encodeBinaryMessage({ ...meta, version: 6 }, weights, { maxPayload: maxPayload as number });
  const damaged = (resend[1] as Uint8Array).slice();
  (damaged[5000] as number) ^= 0xff;
  pub.publish(subjects.weights, damaged);
  const again = encodeBinaryMessage({ ...meta, version: 7 }, weights, { maxPayload: maxPayload as number });
  for (const c of again) pub.publish(subjects.weights, c);
  await pub.flush();
  await waitForReceived(2);
  assert.deepEqual(rejected, ['chunk-crc']);
  assert.equal(received[1]?.meta.version, 7);

  // JSON messages take the same road.
  const hb = createMessage(MSG.hb, { job: 'itest', term: 1, step: 5, sender: 'w1' }, { status: 'idle' });
  const reply = withTimeout(
    (async () => {
      const s = subConn.subscribe(subjects.hb('w1'), { max: 1 });
      await subConn.flush();
      pub.publish(subjects.hb('w1'), encodeMessage(hb));
      for await (const m of s) return parseMessage(m.data);
      return undefined;
    })(),
    5000,
    'heartbeat',
  );
  assert.deepEqual(await reply, hb);

  sub.unsubscribe();
  await loop;
});

void test('nats-server helper: kill -9 and restart on the same port, then a client connects again', async (t) => {
  const server = await startNatsServer();
  t.after(() => server.stop());
  const port = server.port;
  const pid = server.pid;
  server.kill('SIGKILL');
  await server.restart();
  assert.equal(server.port, port);
  assert.notEqual(server.pid, pid);
  const nc = await connect({ servers: server.url });
  assert.equal(nc.info?.port, port);
  await nc.close();
  await server.stop();
  assert.equal(server.pid, undefined);
  await server.stop(); // idempotent
});

void test('nats-server helper: config file and extra arguments reach the server', async (t) => {
  const server = await startNatsServer({ config: 'max_payload: 2097152\n', args: ['--no_advertise'] });
  t.after(() => server.stop());
  const nc = await connect({ servers: server.url });
  t.after(() => nc.close());
  assert.equal(nc.info?.max_payload, 2 * 1024 * 1024);
});
