// The image entrypoints, run for real with /bin/sh: a stub directory first on PATH holds a
// fake `node` that records its argv and environment (and plays "the GPU package loads / does
// not load"), and, where a GPU is simulated, a fake `nvidia-smi`. Also the container
// healthcheck against a real HTTP server, and the npm fallback of install-tfjs-native.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..', '..');
const DOCKER = join(ROOT, 'deploy', 'docker');

interface Sandbox {
  dir: string;
  app: string;
  bin: string;
  gpuBin: string;
  brokenGpuBin: string;
  log: string;
  probeLog: string;
}

function script(path: string, body: string): void {
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
}

function sandbox(): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-entry-'));
  const app = join(dir, 'app');
  const bin = join(dir, 'bin');
  const gpuBin = join(dir, 'gpu-bin');
  const brokenGpuBin = join(dir, 'broken-gpu-bin');
  for (const d of [app, bin, gpuBin, brokenGpuBin]) mkdirSync(d);
  const log = join(dir, 'node-argv.log');
  const probeLog = join(dir, 'probe.log');
  // Fake node: `node -e CODE PKG` is select-backend's load probe (outcome from FAKE_GPU_PACKAGE_LOADS);
  // anything else is the real launch: record cwd, argv (one per line) and the LOCKSTEP_ environment.
  script(
    join(bin, 'node'),
    `if [ "$1" = "-e" ]; then
  echo "probe cwd=$(pwd) pkg=$3" >> "${probeLog}"
  [ "\${FAKE_GPU_PACKAGE_LOADS:-1}" = "1" ]
  exit $?
fi
{
  echo "cwd=$(pwd)"
  for a in "$@"; do echo "arg=$a"; done
  env | grep '^LOCKSTEP_' | sort | sed 's/^/env=/'
} > "${log}"`,
  );
  script(join(gpuBin, 'nvidia-smi'), '[ "$1" = "-L" ] && echo "GPU 0: NVIDIA H200 (UUID: GPU-00000000-1111-2222-3333-444444444444)"; exit 0');
  script(join(brokenGpuBin, 'nvidia-smi'), "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\" >&2; exit 9");
  return { dir, app, bin, gpuBin, brokenGpuBin, log, probeLog };
}

interface Launch {
  status: number | null;
  stderr: string;
  cwd: string;
  args: string[];
  env: Map<string, string>;
  probes: string[];
}

function runEntrypoint(sb: Sandbox, entry: string, args: string[], opts: { gpu?: 'ok' | 'broken'; env?: Record<string, string> } = {}): Launch {
  rmSync(sb.log, { force: true });
  rmSync(sb.probeLog, { force: true });
  const path = [sb.bin, ...(opts.gpu === 'ok' ? [sb.gpuBin] : opts.gpu === 'broken' ? [sb.brokenGpuBin] : []), '/usr/bin', '/bin'].join(':');
  const res = spawnSync('/bin/sh', [join(DOCKER, entry), ...args], {
    encoding: 'utf8',
    env: { PATH: path, LOCKSTEP_APP_DIR: sb.app, ...opts.env },
    timeout: 30_000,
  });
  const lines = existsSync(sb.log) ? readFileSync(sb.log, 'utf8').split('\n').filter((l) => l !== '') : [];
  return {
    status: res.status,
    stderr: res.stderr,
    cwd: lines.find((l) => l.startsWith('cwd='))?.slice(4) ?? '',
    args: lines.filter((l) => l.startsWith('arg=')).map((l) => l.slice(4)),
    env: new Map(lines.filter((l) => l.startsWith('env=')).map((l) => [l.slice(4, l.indexOf('=', 4)), l.slice(l.indexOf('=', 4) + 1)])),
    probes: existsSync(sb.probeLog) ? readFileSync(sb.probeLog, 'utf8').split('\n').filter((l) => l !== '') : [],
  };
}

void test('worker entrypoint: a working GPU and a loadable tfjs-node-gpu give --backend tfjs-node-gpu', () => {
  const sb = sandbox();
  try {
    const r = runEntrypoint(sb, 'worker-entrypoint.sh', [], { gpu: 'ok' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.args, ['dist/bin/lockstep.js', 'worker', '--backend', 'tfjs-node-gpu']);
    assert.equal(r.cwd, sb.app, 'runs from the app directory');
    assert.deepEqual(r.probes, [`probe cwd=${sb.app} pkg=@tensorflow/tfjs-node-gpu`], 'the package was loaded once, from the app');
    assert.match(r.stderr, /NVIDIA H200.*tfjs-node-gpu/);
    // Extra flags are passed through after the chosen backend.
    const more = runEntrypoint(sb, 'worker-entrypoint.sh', ['--job', 'j1', '--log-level', 'debug'], { gpu: 'ok' });
    assert.deepEqual(more.args, ['dist/bin/lockstep.js', 'worker', '--backend', 'tfjs-node-gpu', '--job', 'j1', '--log-level', 'debug']);
  } finally {
    rmSync(sb.dir, { recursive: true, force: true });
  }
});

void test('worker entrypoint: no GPU, a broken driver, or a package that does not load give --backend auto', () => {
  const sb = sandbox();
  try {
    const none = runEntrypoint(sb, 'worker-entrypoint.sh', []);
    assert.equal(none.status, 0, none.stderr);
    assert.deepEqual(none.args, ['dist/bin/lockstep.js', 'worker', '--backend', 'auto']);
    assert.deepEqual(none.probes, [], 'without a GPU the GPU package is not even loaded');
    assert.match(none.stderr, /no nvidia-smi/);

    const broken = runEntrypoint(sb, 'worker-entrypoint.sh', [], { gpu: 'broken' });
    assert.deepEqual(broken.args, ['dist/bin/lockstep.js', 'worker', '--backend', 'auto']);
    assert.deepEqual(broken.probes, []);
    assert.match(broken.stderr, /finds no usable GPU/);

    const noLoad = runEntrypoint(sb, 'worker-entrypoint.sh', [], { gpu: 'ok', env: { FAKE_GPU_PACKAGE_LOADS: '0' } });
    assert.deepEqual(noLoad.args, ['dist/bin/lockstep.js', 'worker', '--backend', 'auto']);
    assert.equal(noLoad.probes.length, 1, 'the package was tried');
    assert.match(noLoad.stderr, /does not load/);
  } finally {
    rmSync(sb.dir, { recursive: true, force: true });
  }
});

void test('worker entrypoint: an explicit --backend or LOCKSTEP_BACKEND wins, and no probe runs', () => {
  const sb = sandbox();
  try {
    for (const args of [['--backend', 'wasm'], ['--backend=wasm']]) {
      const r = runEntrypoint(sb, 'worker-entrypoint.sh', args, { gpu: 'ok' });
      assert.deepEqual(r.args, ['dist/bin/lockstep.js', 'worker', ...args]);
      assert.deepEqual(r.probes, []);
    }
    const env = runEntrypoint(sb, 'worker-entrypoint.sh', [], { gpu: 'ok', env: { LOCKSTEP_BACKEND: 'tfjs-node' } });
    assert.deepEqual(env.args, ['dist/bin/lockstep.js', 'worker']);
    assert.equal(env.env.get('LOCKSTEP_BACKEND'), 'tfjs-node');
    // Another subcommand replaces the default role (e.g. a benchmark in the GPU image).
    const bench = runEntrypoint(sb, 'worker-entrypoint.sh', ['bench', '--workers', '1'], { gpu: 'ok' });
    assert.deepEqual(bench.args, ['dist/bin/lockstep.js', 'bench', '--backend', 'tfjs-node-gpu', '--workers', '1']);
  } finally {
    rmSync(sb.dir, { recursive: true, force: true });
  }
});

void test('entrypoints: LOCKSTEP_NATS_PASS_FILE becomes LOCKSTEP_NATS_PASS and is removed; a missing file stops the start', () => {
  const sb = sandbox();
  try {
    const pass = join(sb.dir, 'password');
    writeFileSync(pass, 'pworker0secret\n');
    const r = runEntrypoint(sb, 'worker-entrypoint.sh', [], { env: { LOCKSTEP_NATS_PASS_FILE: pass, LOCKSTEP_NATS_USER: 'worker-0' } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.env.get('LOCKSTEP_NATS_PASS'), 'pworker0secret', 'content without the trailing newline');
    assert.equal(r.env.has('LOCKSTEP_NATS_PASS_FILE'), false, 'the _FILE variable does not reach lockstep');
    assert.equal(r.env.get('LOCKSTEP_NATS_USER'), 'worker-0');

    const tok = join(sb.dir, 'token');
    writeFileSync(tok, 'pdashtoken');
    const c = runEntrypoint(sb, 'entrypoint.sh', [], { env: { LOCKSTEP_DASHBOARD_TOKEN_FILE: tok } });
    assert.equal(c.status, 0, c.stderr);
    assert.deepEqual(c.args, ['dist/bin/lockstep.js', 'coordinator'], 'the coordinator image runs `lockstep coordinator`, no backend probe');
    assert.equal(c.env.get('LOCKSTEP_DASHBOARD_TOKEN'), 'pdashtoken');
    assert.equal(c.env.has('LOCKSTEP_DASHBOARD_TOKEN_FILE'), false);

    for (const missing of [join(sb.dir, 'nope'), sb.dir]) {
      const m = runEntrypoint(sb, 'worker-entrypoint.sh', [], { env: { LOCKSTEP_NATS_PASS_FILE: missing } });
      assert.equal(m.status, 64, `${missing}: exit 64`);
      assert.match(m.stderr, /LOCKSTEP_NATS_PASS_FILE/);
      assert.deepEqual(m.args, [], 'lockstep was not started');
    }
  } finally {
    rmSync(sb.dir, { recursive: true, force: true });
  }
});

void test('coordinator entrypoint passes its arguments through', () => {
  const sb = sandbox();
  try {
    const r = runEntrypoint(sb, 'entrypoint.sh', ['coordinator', '--model', 'vae', '--checkpoint-dir', '/data/checkpoints', '--resume']);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.args, ['dist/bin/lockstep.js', 'coordinator', '--model', 'vae', '--checkpoint-dir', '/data/checkpoints', '--resume']);
    const ev = runEntrypoint(sb, 'entrypoint.sh', ['eval', '--checkpoint', '/data/checkpoints']);
    assert.deepEqual(ev.args, ['dist/bin/lockstep.js', 'eval', '--checkpoint', '/data/checkpoints']);
  } finally {
    rmSync(sb.dir, { recursive: true, force: true });
  }
});

function runHealthcheck(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [join(DOCKER, 'healthcheck.js')], { env: { PATH: process.env.PATH ?? '', ...env } });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('close', (code) => resolvePromise({ code, stderr }));
  });
}

void test('healthcheck.js: 200 on /healthz is healthy; an error status, silence or a closed port is not', async () => {
  let status = 200;
  let hang = false;
  const paths: string[] = [];
  const server = createServer((req, res) => {
    paths.push(req.url ?? '');
    if (hang) return; // never answers
    res.writeHead(status);
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = String((server.address() as AddressInfo).port);
  try {
    assert.equal((await runHealthcheck({ LOCKSTEP_METRICS_PORT: port })).code, 0);
    assert.deepEqual(paths, ['/healthz']);
    status = 503;
    const bad = await runHealthcheck({ LOCKSTEP_METRICS_PORT: port });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /503/);
    hang = true;
    const slow = await runHealthcheck({ LOCKSTEP_METRICS_PORT: port, LOCKSTEP_HEALTHCHECK_TIMEOUT_MS: '300' });
    assert.equal(slow.code, 1);
    assert.match(slow.stderr, /no answer/);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
  const closed = await runHealthcheck({ LOCKSTEP_METRICS_PORT: port });
  assert.equal(closed.code, 1, 'nothing listening');
  assert.equal((await runHealthcheck({ LOCKSTEP_METRICS_PORT: '0' })).code, 0, 'metrics off: nothing to ask');
  assert.equal((await runHealthcheck({ LOCKSTEP_METRICS_PORT: 'x' })).code, 1);
  assert.equal((await runHealthcheck({})).code, 1, 'no port configured');
});

void test('install-tfjs-native.sh: uses npm rebuild, falls back to the package install script, fails when neither installs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-tfjsnative-'));
  try {
    const app = join(dir, 'app');
    const pkg = join(app, 'node_modules', '@tensorflow', 'tfjs-node-gpu');
    mkdirSync(join(pkg, 'lib'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@tensorflow/tfjs-node-gpu', version: '4.22.0' }));
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const npmLog = join(dir, 'npm.log');
    // Fake npm: FAKE_NPM_MODE says which command actually installs (rebuild | run | none);
    // installing = writing the binding and libtensorflow where the real install script puts them.
    script(
      join(bin, 'npm'),
      `echo "$* (cwd=$(pwd))" >> "${npmLog}"
install() { mkdir -p "${pkg}/lib/napi-v8" "${pkg}/deps/lib"; : > "${pkg}/lib/napi-v8/tfjs_binding.node"; : > "${pkg}/deps/lib/libtensorflow.so.2"; }
case "$1:$FAKE_NPM_MODE" in
  rebuild:rebuild) install ;;
  rebuild:*) echo "npm warn install scripts of @tensorflow/tfjs-node-gpu were not run (allowScripts)" >&2; exit 1 ;;
  run:run) install ;;
esac
exit 0`,
    );
    const runIt = (mode: string): { status: number | null; stderr: string; npm: string[] } => {
      rmSync(join(pkg, 'lib', 'napi-v8'), { recursive: true, force: true });
      rmSync(join(pkg, 'deps'), { recursive: true, force: true });
      rmSync(npmLog, { force: true });
      const res = spawnSync('/bin/sh', [join(DOCKER, 'install-tfjs-native.sh'), '@tensorflow/tfjs-node-gpu', app], {
        encoding: 'utf8',
        env: { PATH: `${bin}:${process.env.PATH ?? ''}`, FAKE_NPM_MODE: mode },
      });
      return { status: res.status, stderr: res.stderr, npm: existsSync(npmLog) ? readFileSync(npmLog, 'utf8').trim().split('\n') : [] };
    };
    const viaRebuild = runIt('rebuild');
    assert.equal(viaRebuild.status, 0, viaRebuild.stderr);
    assert.deepEqual(viaRebuild.npm, [`rebuild @tensorflow/tfjs-node-gpu --foreground-scripts (cwd=${app})`]);
    assert.match(viaRebuild.stderr, /@tensorflow\/tfjs-node-gpu 4\.22\.0/);

    const viaRun = runIt('run');
    assert.equal(viaRun.status, 0, viaRun.stderr);
    assert.deepEqual(viaRun.npm, [`rebuild @tensorflow/tfjs-node-gpu --foreground-scripts (cwd=${app})`, `run install --foreground-scripts (cwd=${pkg})`]);

    const neither = runIt('none');
    assert.notEqual(neither.status, 0, 'the image build fails rather than ship without the binding');
    assert.match(neither.stderr, /no tfjs_binding\.node or libtensorflow/);

    const missing = spawnSync('/bin/sh', [join(DOCKER, 'install-tfjs-native.sh'), '@tensorflow/tfjs-node', app], { encoding: 'utf8', env: { PATH: `${bin}:${process.env.PATH ?? ''}` } });
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /is missing/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
