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
    [['train', '--batch-size', '0'], /^--batch-size: must be an integer between 1 and 60000; got '0'$/],
    [['train', '--workers', '1.5'], /^--workers: must be an integer between 0 and 256; got '1\.5'$/],
    [['train', '--lr', '-1'], /^--lr: must be a number between 0 and 10; got '-1'$/],
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
  assert.throws(() => compileArgv(['train'], { LOCKSTEP_SEED: 'x' }), /^ConfigError: --seed \(from LOCKSTEP_SEED\): must be an integer/);
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

test('invalid LOCKSTEP_* variables name the flag they stand for and the allowed values; secrets stay hidden', () => {
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['train'], { LOCKSTEP_MODEL: 'gan' }, /^--model \(from LOCKSTEP_MODEL\): must be one of ae, vae, cvae; got 'gan'$/],
    [['train'], { LOCKSTEP_BATCH_SIZE: '0' }, /^--batch-size \(from LOCKSTEP_BATCH_SIZE\): must be an integer between 1 and 60000; got '?0'?$/],
    [['train'], { LOCKSTEP_BATCH_SIZE: 'many' }, /^--batch-size \(from LOCKSTEP_BATCH_SIZE\): must be an integer between 1 and 60000; got 'many'$/],
    [['train'], { LOCKSTEP_BACKEND: 'cuda' }, /^--backend \(from LOCKSTEP_BACKEND\): must be one of auto, tfjs-node-gpu, tfjs-node, wasm, cpu; got 'cuda'$/],
    [['coordinator', '--nats', 'nats://x'], { LOCKSTEP_METRICS_PORT: '70000' }, /^--metrics-port \(from LOCKSTEP_METRICS_PORT\): must be an integer between 0 and 65535; got '?70000'?$/],
    [['worker', '--nats', 'nats://x'], { LOCKSTEP_HEARTBEAT_TIMEOUT: '0' }, /^--heartbeat-timeout \(from LOCKSTEP_HEARTBEAT_TIMEOUT\): must be a number between 0\.1 and 3600; got '?0'?$/],
    [['train'], { LOCKSTEP_JSON: 'maybe' }, /^--json \(from LOCKSTEP_JSON\): must be true or false; got 'maybe'$/],
    [['worker', '--nats', 'nats://x'], { LOCKSTEP_WORKER_ID: 'worker.0' }, /^--worker-id: must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-' \(a NATS subject token\); got 'worker\.0'$/],
    [['coordinator'], { LOCKSTEP_JOB: 'my job' }, /^--job: must be 1-64 characters/],
    [['worker'], { LOCKSTEP_NATS_USER: 'worker-0' }, /^--nats: required for 'worker' \(e\.g\. --nats nats:\/\/127\.0\.0\.1:4222 or LOCKSTEP_NATS\)$/],
    [['worker', '--nats', 'nats://x'], { LOCKSTEP_NATS_TLS_CERT: '/c.pem' }, /^--nats-tls-cert and --nats-tls-key: give both or neither$/],
    [['worker', '--nats', 'nats://x'], { LOCKSTEP_NATS_PASS: 'hunter2' }, /^--nats-pass: needs --nats-user$/],
  ];
  for (const [argv, env, re] of cases) {
    assert.throws(
      () => compileArgv(argv, env),
      (e: unknown) => e instanceof ConfigError && re.test(e.message) && !e.message.includes('hunter2'),
      `${argv.join(' ')} with ${JSON.stringify(env)}`,
    );
  }
  // A secret from the environment is not echoed either.
  assert.throws(() => compileArgv(['coordinator', '--nats', 'nats://x', '--dashboard-token', '']), /<hidden>/);
  // The flag wins over a bad variable; variables of options another command has are ignored
  // (one environment can serve every role of a deployment).
  assert.equal(compileArgv(['train', '--batch-size', '8'], { LOCKSTEP_BATCH_SIZE: '0' }).batchSize, 8);
  assert.equal(compileArgv(['worker', '--nats', 'nats://x'], { LOCKSTEP_WORKERS: 'lots', LOCKSTEP_MODEL: 'gan', LOCKSTEP_DASHBOARD_PORT: '-1' }).nats, 'nats://x');
});

test('the lockstep CLI exits 2 with the message on stderr for a bad flag, value or variable', async () => {
  const { spawn } = await import('node:child_process');
  const { join } = await import('node:path');
  const cli = join(__dirname, '..', '..', 'bin', 'lockstep.js');
  const run = (args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const base: NodeJS.ProcessEnv = {};
      for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LOCKSTEP_')) base[k] = v;
      const child = spawn(process.execPath, [cli, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  // (Whether a number read from a string is echoed quoted is compile.ts's choice: accept both.)
  const cases: Array<[string[], Record<string, string>, string | RegExp]> = [
    [['train', '--batch-size', '0'], {}, /^lockstep: --batch-size: must be an integer between 1 and 60000; got '?0'?\n$/],
    [['train', '--batchsize', '3'], {}, "lockstep: --batchsize: unknown option for 'train' (did you mean --batch-size?)\n"],
    [['train', '--model', 'gan'], {}, "lockstep: --model: must be one of ae, vae, cvae; got 'gan'\n"],
    [['fly'], {}, "lockstep: unknown command 'fly': expected one of train, coordinator, worker, eval, sample, bench\n"],
    [['train', '--steps'], {}, 'lockstep: --steps: missing value\n'],
    [['worker', '--nats', 'nats://127.0.0.1:1', '--model', 'ae'], {}, "lockstep: --model: not an option of 'worker' (it applies to: train, coordinator, bench)\n"],
    [['train'], { LOCKSTEP_LR: 'fast' }, "lockstep: --lr (from LOCKSTEP_LR): must be a number between 0 and 10; got 'fast'\n"],
    [['worker', '--nats', 'nats://127.0.0.1:1'], { LOCKSTEP_NATS_PASS: 'hunter2' }, 'lockstep: --nats-pass: needs --nats-user\n'],
  ];
  const results = await Promise.all(cases.map(([args, env]) => run(args, env)));
  for (const [i, [args, env, message]] of cases.entries()) {
    const r = results[i] as { code: number | null; stdout: string; stderr: string };
    const what = `lockstep ${args.join(' ')} ${JSON.stringify(env)}`;
    assert.equal(r.code, 2, `${what}: exit code; stderr: ${r.stderr}`);
    if (typeof message === 'string') assert.equal(r.stderr, message, what);
    else assert.match(r.stderr, message, what);
    assert.equal(r.stdout, '', what);
  }
});
