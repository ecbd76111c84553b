// `bench faults --quick`: the fault benchmark (test/bench/faults.ts) runs every
// scenario once through the suite's runner and lands in results.json and
// results.md like the other parts. Its own file: the scenarios take about a minute.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { runBench, type BenchReport } from '../bench/main.js';

void test('bench faults --quick: one row per scenario, in results.json and as a markdown table', async (t) => {
  if (!existsSync(path.join(__dirname, '..', 'bench', 'faults.js'))) {
    t.skip('this build has no test/bench/faults.ts');
    return;
  }
  const out = mkdtempSync(path.join(os.tmpdir(), 'lockstep-bench-faults-'));
  try {
    const sink = new PassThrough();
    let err = '';
    sink.on('data', (d: Buffer) => (err += d.toString('utf8')));
    const code = await runBench(['faults', '--quick', '--out', out], { stdout: new PassThrough().resume(), stderr: sink });
    assert.equal(code, 0, err.slice(-3000));
    assert.match(err, /\[faults\] worker-kill/, 'progress per scenario on stderr');
    const report = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8')) as BenchReport;
    assert.deepEqual(Object.keys(report.parts), ['faults']);
    const part = report.parts.faults;
    assert.equal(part?.status, 'ok', part?.error);
    const rows = part?.results as Array<{ scenario: string; ok: boolean; note: string; imagesLost: number | null }>;
    assert.ok(Array.isArray(rows) && rows.length >= 5, 'one row per scenario');
    for (const r of rows) {
      assert.equal(typeof r.scenario, 'string');
      assert.ok(r.ok || r.note.startsWith('skipped'), `${r.scenario}: ${r.note}`);
      if (r.ok) assert.equal(r.imagesLost, 0, `${r.scenario}: every image used exactly once`);
    }
    const md = readFileSync(path.join(out, 'results.md'), 'utf8');
    assert.match(md, /## Faults/);
    assert.match(md, /scenarios recovered with every invariant held/);
    for (const r of rows) assert.ok(md.includes(`| ${r.scenario} |`), r.scenario);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
