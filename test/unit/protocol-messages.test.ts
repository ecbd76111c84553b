import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CodecError, deserializeError, ProtocolError } from '../../shared/errors.js';
import {
  checkFinite,
  createMessage,
  encodeMessage,
  isMessageType,
  makeEnvelope,
  makeErrorMessage,
  MESSAGE_TYPES,
  MSG,
  parseMessage,
} from '../../shared/protocol/messages.js';
import type { EnvelopeInit, Message, MessageErrorReason } from '../../shared/protocol/messages.js';

const env: EnvelopeInit = { job: 'job-1', term: 2, step: 17, sender: 'w0' };

function samples(): Message[] {
  return [
    createMessage(MSG.join, env, { host: 'h1', pid: 1234, backend: 'wasm', backendVersion: '4.22.0', device: 'cpu', metricsPort: 9400 }),
    createMessage(MSG.joinAck, { ...env, sender: 'coord' }, { rank: 0, workerId: 'w0', accepted: true, config: { model: 'vae', lr: 0.001 }, weightsVersion: 5, maxPayload: 1048576 }),
    createMessage(MSG.joinAck, { ...env, sender: 'coord' }, { rank: -1, workerId: 'w9', accepted: false, reason: 'job full', config: {}, weightsVersion: 0 }),
    createMessage(MSG.step, { ...env, sender: 'coord' }, {
      epoch: 1,
      weightsVersion: 17,
      globalCount: 5,
      parts: [
        { part: 0, worker: 'w0', attempt: 0, indices: [4, 9, 1] },
        { part: 1, worker: 'w1', attempt: 1, indices: [0, 59999] },
      ],
      deadlineMs: 30000,
    }),
    createMessage(MSG.grad, env, { part: 0, attempt: 0, weightsVersion: 17, count: 3, numel: 1000, lossSums: { total: 12.5, reconstruction: 10, kl: 2.5 }, computeSeconds: 0.8, encodeSeconds: 0.001 }),
    createMessage(MSG.weights, { ...env, sender: 'coord' }, { version: 18, epoch: 1, numel: 1000 }),
    createMessage(MSG.state, env, { wantVersion: 18 }),
    createMessage(MSG.state, env, {}),
    createMessage(MSG.hb, env, { status: 'busy', partsDone: 3, lastPartSeconds: 0.9, members: ['w0', 'w1'] }),
    createMessage(MSG.ctl, { ...env, sender: 'coord' }, { action: 'pause', reason: 'min-workers' }),
    createMessage(MSG.leave, env, { reason: 'SIGTERM' }),
    makeErrorMessage({ ...env, sender: 'coord' }, new CodecError('crc', 'bad crc')),
  ];
}

function rejects(fn: () => unknown, reason: MessageErrorReason, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    assert.match(err.message, message);
    return true;
  });
}

const base = { protocol: 1, job: 'j', term: 0, step: 0, sender: 'w0' };

void test('messages: every type round-trips through bytes, strings and objects', () => {
  const all = samples();
  assert.deepEqual(new Set(all.map((m) => m.type)), new Set(MESSAGE_TYPES));
  for (const m of all) {
    assert.equal(m.protocol, 1);
    const bytes = encodeMessage(m);
    assert.ok(bytes instanceof Uint8Array);
    assert.deepEqual(parseMessage(bytes), m, m.type);
    assert.deepEqual(parseMessage(new TextDecoder().decode(bytes)), m, m.type);
    assert.deepEqual(parseMessage(JSON.parse(new TextDecoder().decode(bytes))), m, m.type);
  }
  const err = all.find((m) => m.type === MSG.error);
  assert.ok(err !== undefined && isMessageType(err, MSG.error));
  const back = deserializeError({ ...err.error, code: err.error.code as 'CHECKSUM_MISMATCH' });
  assert.equal(back.name, 'CodecError');
  assert.equal(back.code, 'CHECKSUM_MISMATCH');
  assert.equal(back.details?.reason, 'crc');
});

void test('messages: unknown fields from a newer v1 sender are accepted and dropped', () => {
  const m = parseMessage({ ...base, type: 'lockstep.v1.hb', status: 'idle', someFutureField: { x: 1 } });
  assert.ok(isMessageType(m, MSG.hb));
  assert.equal(m.status, 'idle');
  assert.equal('someFutureField' in m, false);
});

void test('messages: json, schema, protocol-version, unknown-type and oversize rejections', () => {
  rejects(() => parseMessage('{"type": '), 'json', /message rejected \(json\)/);
  rejects(() => parseMessage(new Uint8Array([0x7b, 0xc3, 0x28, 0x7d])), 'json', /message rejected \(json\)/);
  rejects(() => parseMessage(new Uint8Array(0)), 'json', /json/);
  rejects(() => parseMessage('[1,2]'), 'schema', /expected a JSON object, got an array/);
  rejects(() => parseMessage('null'), 'schema', /got null/);
  rejects(() => parseMessage(42), 'schema', /got number/);
  rejects(() => parseMessage({ ...base }), 'schema', /type: missing or not a string/);
  rejects(() => parseMessage({ ...base, type: 'lockstep.v1.hb' }), 'schema', /lockstep\.v1\.hb from w0: status: Required/);
  rejects(() => parseMessage({ ...base, type: 'lockstep.v1.hb', status: 'dancing' }), 'schema', /status: Invalid enum value/);
  rejects(() => parseMessage({ ...base, sender: 'w0.evil', type: 'lockstep.v1.leave' }), 'schema', /sender: must match/);
  rejects(() => parseMessage({ ...base, job: 'a>', type: 'lockstep.v1.leave' }), 'schema', /job: must match/);
  rejects(() => parseMessage({ ...base, step: -1, type: 'lockstep.v1.leave' }), 'schema', /step: Number must be greater than or equal to 0/);
  rejects(() => parseMessage({ ...base, term: 1.5, type: 'lockstep.v1.leave' }), 'schema', /term: Expected integer/);
  rejects(() => parseMessage({ ...base, term: 2 ** 60, type: 'lockstep.v1.leave' }), 'schema', /term/);
  const grad = { ...base, type: 'lockstep.v1.grad', part: 0, attempt: 0, weightsVersion: 0, count: 1, numel: 1, computeSeconds: 0.1 };
  // NaN cannot be JSON: it arrives as null
  rejects(() => parseMessage(JSON.stringify({ ...grad, lossSums: { total: NaN, reconstruction: 0, kl: 0 } })), 'schema', /lossSums\.total: Expected number, received null/);
  rejects(() => parseMessage({ ...grad, lossSums: { total: Infinity, reconstruction: 0, kl: 0 } }), 'schema', /lossSums\.total: Number must be finite/);
  rejects(() => parseMessage({ ...base, type: 'lockstep.v1.step', epoch: 0, weightsVersion: 0, globalCount: 1, parts: [{ part: 0, worker: 'w0', attempt: 0, indices: [1, -2] }] }), 'schema', /parts\.0\.indices\.1/);
  rejects(() => parseMessage({ ...base, protocol: 1, type: 'lockstep.v1.ctl', action: 'stop', term: 'x' }), 'schema', /term: Expected number, received string/);

  rejects(() => parseMessage({ ...base, type: 'lockstep.v2.hb', status: 'idle' }), 'protocol-version', /lockstep\.v2\.hb is protocol v2, this peer speaks v1/);
  rejects(() => parseMessage({ ...base, protocol: 2, type: 'lockstep.v1.hb', status: 'idle' }), 'protocol-version', /envelope protocol 2, this peer speaks 1/);
  rejects(() => parseMessage({ ...base, protocol: '1', type: 'lockstep.v1.hb', status: 'idle' }), 'schema', /protocol: Invalid literal value/);

  rejects(() => parseMessage({ ...base, type: 'lockstep.v1.nope' }), 'unknown-type', /lockstep\.v1\.nope is not a v1 message type/);
  rejects(() => parseMessage({ ...base, type: 'hello' }), 'unknown-type', /"hello" is not a lockstep message type/);
  rejects(() => parseMessage({ ...base, type: '__proto__' }), 'unknown-type', /not a lockstep message type/);

  rejects(() => parseMessage(new Uint8Array(2000), { maxBytes: 1000 }), 'oversize', /2000 bytes exceeds the limit of 1000/);
  rejects(() => parseMessage('x'.repeat(2000), { maxBytes: 1000 }), 'oversize', /exceeds the limit/);
});

void test('messages: rejections carry the type and sender for logging', () => {
  try {
    parseMessage({ ...base, sender: 'w7', type: 'lockstep.v1.hb', status: 1 });
    assert.fail('should throw');
  } catch (err) {
    assert.ok(err instanceof ProtocolError);
    assert.deepEqual(err.details, { reason: 'schema', type: 'lockstep.v1.hb', sender: 'w7' });
  }
});

void test('messages: constructors validate, so a sender bug is caught before it is sent', () => {
  assert.deepEqual(makeEnvelope(env), { protocol: 1, ...env });
  rejects(() => makeEnvelope({ ...env, sender: 'has space' }), 'schema', /envelope rejected \(schema\): sender/);
  rejects(() => createMessage(MSG.hb, env, { status: 'idle', partsDone: -1 }), 'schema', /partsDone/);
  rejects(() => createMessage(MSG.grad, env, { part: 0, attempt: 0, weightsVersion: 0, count: 1, numel: 4, lossSums: { total: NaN, reconstruction: 0, kl: 0 }, computeSeconds: 0 }), 'schema', /lossSums\.total/);
  rejects(() => encodeMessage({ ...base, type: 'lockstep.v1.ctl', action: 'explode' } as unknown as Message), 'schema', /action/);
  // the object passed in is not mutated and extra keys are not sent
  const m = { ...createMessage(MSG.leave, env, {}), extra: 1 } as Message;
  assert.equal(JSON.parse(new TextDecoder().decode(encodeMessage(m))).extra, undefined);
});

void test('checkFinite finds the first NaN or Inf', () => {
  assert.equal(checkFinite(new Float32Array([0, 1, -3.4e38, 1e-45])), -1);
  assert.equal(checkFinite(new Float32Array(0)), -1);
  assert.equal(checkFinite(new Float32Array([0, NaN, Infinity])), 1);
  assert.equal(checkFinite(new Float32Array([0, 1, -Infinity])), 2);
  assert.equal(checkFinite(new Float32Array([Infinity])), 0);
  assert.equal(checkFinite(new Float64Array([1, 2, NaN])), 2);
});
