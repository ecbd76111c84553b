import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../shared/errors.js';
import { subjectsFor, workerFromSubject } from '../../shared/protocol/subjects.js';

void test('subjects: every subject of a job lives under lockstep.<job>.', () => {
  const s = subjectsFor('mnist-vae_1');
  assert.equal(s.prefix, 'lockstep.mnist-vae_1.');
  assert.equal(s.join, 'lockstep.mnist-vae_1.join');
  assert.equal(s.state, 'lockstep.mnist-vae_1.state');
  assert.equal(s.step, 'lockstep.mnist-vae_1.step');
  assert.equal(s.weights, 'lockstep.mnist-vae_1.weights');
  assert.equal(s.ctl, 'lockstep.mnist-vae_1.ctl');
  assert.equal(s.hbCoord, 'lockstep.mnist-vae_1.hb.coord');
  assert.equal(s.hb('w3'), 'lockstep.mnist-vae_1.hb.w3');
  assert.equal(s.hbAll, 'lockstep.mnist-vae_1.hb.*');
  assert.equal(s.grad('w3'), 'lockstep.mnist-vae_1.grad.w3');
  assert.equal(s.gradAll, 'lockstep.mnist-vae_1.grad.*');
});

void test('subjects: ids that are not a single subject token are ConfigErrors', () => {
  for (const bad of ['', 'a.b', 'a*', '>', 'a b', 'tab\t', 'x'.repeat(65), 'ünï', 'a/b']) {
    assert.throws(() => subjectsFor(bad), (e: unknown) => e instanceof ConfigError && /job id .* is not a valid id/.test(e.message), JSON.stringify(bad));
  }
  assert.doesNotThrow(() => subjectsFor('x'.repeat(64)));
  const s = subjectsFor('j');
  assert.throws(() => s.grad('w.1'), (e: unknown) => e instanceof ConfigError && /worker id "w.1" is not a valid id/.test(e.message));
  assert.throws(() => s.hb('*'), ConfigError);
  assert.throws(() => s.hb('coord'), (e: unknown) => e instanceof ConfigError && /reserved/.test(e.message));
});

void test('subjects: workerFromSubject reads the worker id back', () => {
  const s = subjectsFor('j');
  assert.equal(workerFromSubject(s, s.grad('w1')), 'w1');
  assert.equal(workerFromSubject(s, s.hb('w-2')), 'w-2');
  assert.equal(workerFromSubject(s, s.hbCoord), undefined);
  assert.equal(workerFromSubject(s, s.step), undefined);
  assert.equal(workerFromSubject(s, 'lockstep.other.grad.w1'), undefined);
  assert.equal(workerFromSubject(s, 'lockstep.j.grad.w1.extra'), undefined);
  assert.equal(workerFromSubject(s, 'lockstep.j.weights.w1'), undefined);
});
