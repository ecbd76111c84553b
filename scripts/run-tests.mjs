#!/usr/bin/env node
// Runs the compiled test files with Node's built-in runner. Node 20's --test
// takes no globs, so the files are listed here. Suites run one file at a time:
// the machine has 2 cores and several suites start real servers and workers.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const suites = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['unit', 'integration', 'fault', 'browser'];

function walk(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = suites.flatMap((s) => walk(join(root, 'dist', 'test', s)));
if (files.length === 0) {
  console.error(`no compiled test files found for suites: ${suites.join(', ')} (run npm run build first)`);
  process.exit(1);
}
const concurrency = process.env.LOCKSTEP_TEST_CONCURRENCY ?? '1';
const res = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  cwd: root,
  env: { ...process.env, LOCKSTEP_LOG_LEVEL: process.env.LOCKSTEP_LOG_LEVEL ?? 'warn' },
});
process.exit(res.status ?? 1);
