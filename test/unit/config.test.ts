import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileOptions } from '../../shared/config/compile.js';
import { parseArgv } from '../../shared/config/argv.js';
import { flagTableMarkdown } from '../../shared/config/flag-table.js';
import { ConfigError } from '../../shared/errors.js';

function compileArgv(argv: string[], env: Record<string, string> = {}) {
  const p = parseArgv(argv);
  return compileOptions(p.command, p.raw, env);
}

test('defaults are applied and the result is frozen', () => {
  const o = compileArgv(['train']);
  assert.equal(o.model, 'vae');
  assert.equal(o.batchSize, 64);
  assert.equal(o.latentDim, 16);
  assert.equal(o.epochs, 1);
  assert.equal(o.checkpointDir, 'runs/lockstep/checkpoints');
  assert.ok(Object.isFrozen(o));
  assert.equal(compileArgv(['train', '--arch', 'mlp']).latentDim, 20);
});

test('flags, --name=value and environment; flags win over env', () => {
  const o = compileArgv(['train', '--model', 'ae', '--batch-size=32', '--resume'], { LOCKSTEP_LR: '0.01', LOCKSTEP_MODEL: 'cvae' });
  assert.equal(o.model, 'ae');
  assert.equal(o.batchSize, 32);
  assert.equal(o.lr, 0.01);
  assert.equal(o.resume, true);
  assert.equal(compileArgv(['train', '--resume', '/tmp/x']).resume, '/tmp/x');
});

test('invalid values name the field and the allowed values', () => {
  const cases: Array<[string[], RegExp]> = [
    [['train', '--model', 'gan'], /^--model: must be one of ae, vae, cvae; got 'gan'$/],
    [['train', '--backend', 'cuda'], /^--backend: must be one of auto, tfjs-node-gpu, tfjs-node, wasm, cpu; got 'cuda'$/],
    [['train', '--batch-size', 'abc'], /^--batch-size: must be an integer between 1 and 60000; got 'abc'$/],
    [['train', '--batch-size', '0'], /^--batch-size: must be an integer between 1 and 60000; got 0$/],
    [['train', '--workers', '1.5'], /^--workers: must be an integer between 0 and 256; got 1\.5$/],
    [['train', '--lr', '-1'], /^--lr: must be a number between 0 and 10; got -1$/],
    [['train', '--log-level', 'loud'], /^--log-level: must be one of fatal, error, warn, info, debug, trace, silent; got 'loud'$/],
    [['train', '--batchsize', '3'], /^--batchsize: unknown option for 'train' \(did you mean --batch-size\?\)$/],
    [['train', '--job', 'a.b'], /^--job: must be 1-64 characters/],
    [['train', '--model', 'ae', '--arch', 'mlp'], /^--arch: mlp is available for vae and cvae/],
    [['worker'], /^--nats: required for 'worker'/],
    [['eval'], /^--checkpoint: required for 'eval'/],
    [['train', '--steps'], /^--steps: missing value$/],
    [['train', 'extra'], /^unexpected argument 'extra'/],
    [['fly'], /^unknown command 'fly': expected one of train, coordinator, worker, eval, sample, bench$/],
    [['worker', '--nats', 'nats://x', '--model', 'ae'], /^--model: not an option of 'worker'/],
    [['train', '--nats-pass', 'secret'], /^--nats-pass: needs --nats-user$/],
  ];
  for (const [argv, re] of cases) {
    assert.throws(() => compileArgv(argv), (e: unknown) => e instanceof ConfigError && re.test(e.message), argv.join(' '));
  }
  assert.throws(() => compileArgv(['train'], { LOCKSTEP_SEED: 'x' }), /^ConfigError: --seed: must be an integer/);
});

test('secrets are not echoed in errors', () => {
  assert.throws(() => compileArgv(['coordinator', '--nats', 'nats://x', '--dashboard-token', '']), (e: unknown) => e instanceof Error && !e.message.includes("''") && /<hidden>/.test(e.message));
});

test('the README flag table is generated from the schema and is in the README', async () => {
  const { readFileSync } = await import('node:fs');
  const table = flagTableMarkdown();
  assert.match(table, /\| `--batch-size` \| INT \| 64 \| `LOCKSTEP_BATCH_SIZE` \|/);
  const readme = readFileSync(new URL('../../../README.md', `file://${__filename}`), 'utf8');
  assert.ok(readme.includes(table), 'README.md flag table is stale: run `node dist/bin/lockstep.js --help --markdown` and paste it');
});
