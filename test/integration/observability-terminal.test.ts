// What a person sees in the terminal, on real runs of `lockstep train --workers 2`
// (embedded nats-server, coordinator and worker processes): pino JSON lines carrying
// role, job and worker id when stderr is not a terminal; a progress bar with short
// human log lines above it when it is (a pseudo-terminal from util-linux `script`);
// and --log-level obeyed by every process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ENTRY, ROOT, TINY_MODEL, cleanEnv, parseLogLines, spawnLockstep, tempDir } from './observability-harness.js';

const JOB = 'obs-terminal';

function trainArgs(dir: string, level: string): string[] {
  return ['train', '--workers', '2', '--job', JOB, ...TINY_MODEL, '--steps', '6', '--checkpoint-dir', path.join(dir, 'checkpoints'), '--metrics-port', '0', '--dashboard-port', '0', '--log-level', level];
}

void test('not a terminal: every stderr line is pino JSON with role, job and worker id; --log-level debug reaches the coordinator', { timeout: 60_000 }, async () => {
  const dir = tempDir('terminal-json');
  try {
    const run = spawnLockstep('train', [...trainArgs(dir, 'debug'), '--json']);
    const exit = await run.exited;
    assert.equal(exit.code, 0, run.stderr().slice(-3000));
    assert.equal(JSON.parse(run.stdout().trim()).steps, 6, 'stdout holds only the --json result');
    const { lines, other } = parseLogLines(run.stderr());
    assert.deepEqual(other, [], 'every stderr line is a JSON object');
    const byRole = new Map<string, typeof lines>();
    for (const l of lines) {
      const { rec, raw } = l;
      assert.equal(typeof rec.level, 'number', raw);
      assert.equal(typeof rec.time, 'number', raw);
      assert.equal(typeof rec.msg, 'string', raw);
      assert.equal(typeof rec.pid, 'number', raw);
      assert.equal(rec.job, JOB, `job on every line: ${raw}`);
      assert.ok(Object.hasOwn(rec, 'worker'), `worker id key on every line: ${raw}`);
      assert.ok(!raw.includes('\u2588') && !raw.includes('\u2591'), 'no progress bar off a terminal');
      const role = String(rec.role);
      byRole.set(role, [...(byRole.get(role) ?? []), l]);
    }
    assert.deepEqual([...byRole.keys()].sort(), ['coordinator', 'launcher', 'worker']);
    // The coordinator's own id is bound on every one of its lines (a line about a worker may add that worker's id after it).
    for (const { raw } of byRole.get('coordinator') ?? []) assert.match(raw, new RegExp(`"role":"coordinator","job":"${JOB}","worker":"coord"`), raw);
    // Each worker's lines carry its id, once.
    const ids = new Set<string>();
    for (const { rec, raw } of byRole.get('worker') ?? []) {
      assert.match(String(rec.worker), /^w[01]$/, raw);
      assert.equal(raw.split('"worker":').length - 1, 1, `worker id bound once: ${raw}`);
      ids.add(String(rec.worker));
    }
    assert.deepEqual([...ids].sort(), ['w0', 'w1']);
    for (const { rec } of byRole.get('launcher') ?? []) assert.equal(rec.worker, null, 'the launcher is no worker');
    // --log-level debug: the coordinator's per-step debug lines are there.
    const coordDebug = (byRole.get('coordinator') ?? []).filter((l) => l.rec.level === 20 && l.rec.msg === 'step done');
    assert.equal(coordDebug.length, 6, 'one debug "step done" line per step');
    assert.ok((byRole.get('coordinator') ?? []).some((l) => l.rec.msg === 'progress'), 'info progress lines off a terminal');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

void test('--log-level warn silences info in the launcher, the coordinator and the workers', { timeout: 60_000 }, async () => {
  const dir = tempDir('terminal-warn');
  try {
    const quiet = spawnLockstep('train', [...trainArgs(dir, 'warn'), '--json']);
    const exit = await quiet.exited;
    assert.equal(exit.code, 0, quiet.stderr().slice(-3000));
    const { lines, other } = parseLogLines(quiet.stderr());
    assert.deepEqual(other, []);
    for (const l of lines) assert.ok((l.rec.level as number) >= 40, `a line below warn: ${l.raw}`);
    assert.equal(JSON.parse(quiet.stdout().trim()).steps, 6);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Runs a command with stdin, stdout and stderr on a pseudo-terminal (util-linux `script`); returns what the terminal showed. */
function inTerminal(argv: string[]): Promise<{ code: number | null; text: string }> {
  const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = argv.map(quote).join(' ');
  return new Promise((resolve) => {
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, env: cleanEnv({ COLUMNS: '160', LINES: '40', TERM: 'xterm-256color' }), stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (text += d.toString('utf8')));
    child.once('close', (code) => resolve({ code, text }));
  });
}

void test('on a terminal: a progress bar, with short human log lines of the coordinator and the workers above it', { timeout: 60_000, skip: fs.existsSync('/usr/bin/script') ? false : 'util-linux script not installed' }, async () => {
  const dir = tempDir('terminal-tty');
  try {
    const { code, text } = await inTerminal([process.execPath, ENTRY, ...trainArgs(dir, 'info')]);
    assert.equal(code, 0, text.slice(-3000));
    // Cursor movement and clearing codes aside, the lines as a person reads them.
    const plain = text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r(?!\n)/g, '\n').replace(/\r\n/g, '\n');
    // The bar: epoch, step/total, loss, samples/s, workers, ETA; the final frame at 6/6.
    assert.match(plain, /epoch \d+\/\d+ [\u2588\u2591]+ 6\/6 steps \| loss \d+(\.\d+)? \| \d+ samples\/s \| 2 workers \| ETA \S+/);
    const lines = plain.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    // Human lines (time, level, actor, message), not JSON, from the coordinator and both workers.
    const human = lines.filter((l) => /^\d\d:\d\d:\d\d (INFO|WARN|ERROR) +\[/.test(l));
    for (const actor of ['coord', 'w0', 'w1']) assert.ok(human.some((l) => l.includes(`[${actor}]`)), `human log lines of ${actor}:\n${plain}`);
    assert.ok(human.some((l) => /\[coord\] worker joined worker=w[01]/.test(l)));
    assert.ok(human.some((l) => /\[coord\] training finished steps=6/.test(l)));
    assert.ok(!human.some((l) => / progress /.test(l)), 'no per-step progress lines on a terminal: the bar shows it');
    // No JSON lines from the coordinator or the workers (the launcher's own lines are its business).
    for (const l of lines.filter((x) => x.startsWith('{'))) assert.equal((JSON.parse(l) as { role: string }).role, 'launcher', `a JSON line on the terminal: ${l}`);
    // A log line never runs into the bar on the same line.
    for (const l of lines) assert.ok(!/ETA \S+\s*\d\d:\d\d:\d\d/.test(l) && !/ETA \S+\s*\{/.test(l), `log line glued to the bar: ${l}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
