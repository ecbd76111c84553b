#!/usr/bin/env node
// Set-up shared by `npm start`, `npm test` and `npm run bench` on a fresh machine:
// node modules when missing, the TypeScript build, and the Debian packages the
// run needs (nats-server always; prometheus and chromium for the test suite).
// As root with apt-get it installs them; otherwise it stops with the command to run.
import { existsSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const forTests = process.argv.includes('--for-tests');

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (res.status !== 0) {
    console.error(`setup: '${cmd} ${args.join(' ')}' failed with exit code ${res.status}`);
    process.exit(res.status ?? 1);
  }
}
function has(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

// 1. node modules
if (!existsSync(join(root, 'node_modules', '.package-lock.json'))) {
  console.error('setup: installing node modules');
  run('npm', [existsSync(join(root, 'package-lock.json')) ? 'ci' : 'install', '--no-audit', '--no-fund']);
}

// 2. system packages: binary -> Debian package
const needed = [['nats-server', 'nats-server']];
if (forTests) needed.push(['promtool', 'prometheus'], ['chromium', 'chromium'], ['ip', 'iproute2']);
const missing = needed.filter(([bin]) => !has(bin) && !existsSync(`/usr/sbin/${bin}`)).map(([, pkg]) => pkg);
if (missing.length > 0) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && has('apt-get')) {
    console.error(`setup: installing Debian packages: ${missing.join(' ')}`);
    run('apt-get', ['update', '-qq']);
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } else {
    console.error(`setup: missing system packages. Run:\n  sudo apt-get update && sudo apt-get install -y ${missing.join(' ')}`);
    process.exit(1);
  }
}

// 3. build when any source is newer than the last build
function newest(dir) {
  let t = 0;
  if (!existsSync(dir)) return t;
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const p = join(dir, name);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newest(p) : name.endsWith('.ts') || name.endsWith('.html') || name.endsWith('.json') ? s.mtimeMs : 0);
  }
  return t;
}
const stamp = join(root, 'dist', '.build-stamp');
const srcTime = Math.max(...['bin', 'shared', 'coordinator', 'worker', 'test'].map((d) => newest(join(root, d))), statSync(join(root, 'tsconfig.json')).mtimeMs);
if (!existsSync(stamp) || statSync(stamp).mtimeMs < srcTime) {
  console.error('setup: building (tsc)');
  run('npx', ['--no-install', 'tsc', '-p', 'tsconfig.json']);
  run('node', ['scripts/copy-assets.mjs']);
  run('sh', ['-c', `touch ${JSON.stringify(stamp)}`]);
}
