// `lockstep bench [parts...] [--quick] [--out DIR] [--update-docs]`, also
// `node dist/test/bench/main.js ...` and `npm run bench [-- parts...]`.
// Runs the benchmark parts in one process, one after another (the machine is
// small: nothing else should run meanwhile), and writes
// runs/bench/<timestamp>/results.json, results.md and the plots.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LockstepError } from '../../shared/errors.js';
import { killAllChildren } from './child.js';
import { runCheckpointCost } from './checkpoint-cost.js';
import { runComputePart } from './compute-part.js';
import { createContext, type BenchContext, type PartOutput } from './context.js';
import { formatMachine, machineInfo, packageRoot, type MachineInfo } from './env.js';
import { PartUnavailableError, runFaultsPart } from './faults-part.js';
import { runQuality } from './quality.js';
import { runScaling } from './scaling.js';

export const PARTS = ['compute', 'scaling', 'faults', 'quality', 'checkpoint'] as const;
export type PartName = (typeof PARTS)[number];

const RUNNERS: Record<PartName, { title: string; run: (ctx: BenchContext) => Promise<PartOutput> }> = {
  compute: { title: 'Compute: one process on the wasm backend', run: runComputePart },
  scaling: { title: 'Scaling: in-process vs 1 and 2 workers over NATS', run: runScaling },
  faults: { title: 'Faults: recovery from failures', run: runFaultsPart },
  quality: { title: 'Quality: test-set figures of trained models', run: runQuality },
  checkpoint: { title: 'Checkpoints: write time and cost', run: runCheckpointCost },
};

export interface PartRecord {
  status: 'ok' | 'failed' | 'unavailable';
  seconds: number;
  /** 1-minute load average when the part started and ended: other work on the machine skews timings. */
  loadAverage: [number, number];
  results?: unknown;
  error?: string;
  plots?: string[];
}

export interface BenchReport {
  suite: 'lockstep bench';
  formatVersion: 1;
  quick: boolean;
  startedAt: string;
  finishedAt: string;
  machine: MachineInfo;
  parts: Partial<Record<PartName, PartRecord>>;
}

interface Args {
  parts: PartName[];
  quick: boolean;
  out: string | null;
  updateDocs: boolean;
  help: boolean;
  explicit: boolean;
}

const USAGE = `usage: lockstep bench [${PARTS.join('|')} ...] [--quick] [--out DIR] [--update-docs]

  no part named   run the whole suite (${PARTS.join(', ')})
  --quick         tiny models and few steps: checks the machinery in about a minute
  --out DIR       where to write results.json, results.md and the plots
                  (default runs/bench/<timestamp>)
  --update-docs   also refresh BENCHMARKS.md (the sections of the parts run) and docs/scaling.png
`;

export class UsageError extends LockstepError {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

export function parseBenchArgs(argv: readonly string[]): Args {
  const a: Args = { parts: [], quick: false, out: null, updateDocs: false, help: false, explicit: false };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i] as string;
    if (x === '--quick') a.quick = true;
    else if (x === '--update-docs') a.updateDocs = true;
    else if (x === '--help' || x === '-h') a.help = true;
    else if (x === '--out') {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) throw new UsageError('--out: missing directory');
      a.out = v;
      i++;
    } else if (x.startsWith('--out=')) a.out = x.slice(6);
    else if ((PARTS as readonly string[]).includes(x)) {
      if (!a.parts.includes(x as PartName)) a.parts.push(x as PartName);
    } else throw new UsageError(`unknown bench argument '${x}': parts are ${PARTS.join(', ')}; options --quick, --out DIR, --update-docs`);
  }
  a.explicit = a.parts.length > 0;
  if (!a.explicit) a.parts = [...PARTS];
  if (a.updateDocs && a.quick) throw new UsageError('--update-docs with --quick: the docs show full-size figures only');
  return a;
}

function timestamp(d: Date): string {
  return d.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
}

export function machineLine(m: MachineInfo): string {
  return `Measured ${m.date.slice(0, 16).replace('T', ' ')} UTC on ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB; backend ${m.backend.name} ${m.backend.version} (${m.backend.device}); node ${m.node}, tfjs ${m.versions['@tensorflow/tfjs'] ?? '?'}, ${m.natsServer}; commit ${m.gitCommit ?? 'unknown'}.`;
}

export function reportMarkdown(r: BenchReport, sections: Partial<Record<PartName, string>>): string {
  const out: string[] = [];
  out.push(`# lockstep benchmark results${r.quick ? ' (quick)' : ''}`);
  out.push('');
  out.push(machineLine(r.machine));
  out.push('');
  out.push('```');
  out.push(formatMachine(r.machine));
  out.push('```');
  for (const name of PARTS) {
    const p = r.parts[name];
    if (p === undefined) continue;
    out.push('');
    out.push(`## ${RUNNERS[name].title}`);
    out.push('');
    if (p.status === 'ok') out.push(sections[name] ?? '');
    else if (p.status === 'unavailable') out.push(`_Not measured: ${p.error ?? 'unavailable'}._`);
    else out.push(`**Failed** after ${p.seconds.toFixed(0)} s: \`${(p.error ?? '').split('\n')[0] ?? ''}\``);
    out.push('');
    out.push(`_(${p.seconds.toFixed(0)} s; 1-minute load average ${p.loadAverage[0].toFixed(2)} at the start, ${p.loadAverage[1].toFixed(2)} at the end, on ${r.machine.cores} cores)_`);
  }
  return `${out.join('\n')}\n`;
}

/** Replaces each part's generated section of BENCHMARKS.md (between its markers) with this run's. */
export function updateBenchmarksDoc(doc: string, r: BenchReport, sections: Partial<Record<PartName, string>>): string {
  let text = doc;
  for (const name of PARTS) {
    const p = r.parts[name];
    const section = sections[name];
    if (p === undefined || p.status !== 'ok' || section === undefined) continue;
    const begin = `<!-- bench:${name}:begin -->`;
    const end = `<!-- bench:${name}:end -->`;
    const i = text.indexOf(begin);
    const j = text.indexOf(end);
    if (i < 0 || j < i) throw new UsageError(`BENCHMARKS.md has no ${begin} ... ${end} section`);
    // Plots of a run live under runs/ (not committed); the one copied to docs/ heads the page.
    const body = section
      .split('\n')
      .filter((l) => !l.startsWith('!['))
      .join('\n')
      .replace(/\n{3,}/g, '\n\n')
      .trimEnd();
    const load = `1-minute load average ${p.loadAverage[0].toFixed(2)} at the start of this part, ${p.loadAverage[1].toFixed(2)} at its end (${r.machine.cores} cores; other work on the machine slows every figure).`;
    text = `${text.slice(0, i + begin.length)}\n${machineLine(r.machine)} ${load}\n\n${body}\n${text.slice(j)}`;
  }
  return text;
}

export interface BenchIO {
  /** Machine info and the final tables (default process.stdout). */
  stdout?: NodeJS.WritableStream;
  /** Progress lines (default process.stderr). */
  stderr?: NodeJS.WritableStream;
}

export async function runBench(argv: string[], io: BenchIO = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  let args: Args;
  try {
    args = parseBenchArgs(argv);
  } catch (err) {
    stderr.write(`lockstep bench: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    stdout.write(USAGE);
    return 0;
  }
  const started = new Date();
  const t0 = performance.now();
  const say = (line: string): void => {
    stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${line}\n`);
  };
  const machine = await machineInfo();
  stdout.write(`${formatMachine(machine)}\n\n`);
  const outDir = path.resolve(args.out ?? path.join('runs', 'bench', timestamp(started)));
  mkdirSync(outDir, { recursive: true });
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-bench-'));
  const ctx = createContext({ quick: args.quick, outDir, workDir, say });
  const report: BenchReport = { suite: 'lockstep bench', formatVersion: 1, quick: args.quick, startedAt: started.toISOString(), finishedAt: '', machine, parts: {} };
  const sections: Partial<Record<PartName, string>> = {};
  let failed = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    say(`received ${sig}: stopping the children`);
    killAllChildren();
    rmSync(workDir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  say(`writing to ${outDir}; parts: ${args.parts.join(', ')}${args.quick ? ' (quick)' : ''}`);
  try {
    for (const name of args.parts) {
      const p0 = performance.now();
      const load0 = os.loadavg()[0] ?? NaN;
      say(`== ${name} == (load average ${load0.toFixed(2)})`);
      try {
        const out = await RUNNERS[name].run(ctx);
        report.parts[name] = { status: 'ok', seconds: (performance.now() - p0) / 1000, loadAverage: [load0, os.loadavg()[0] ?? NaN], results: out.results, plots: out.plots.map((f) => path.relative(outDir, f)) };
        sections[name] = out.markdown;
        say(`${name}: done in ${((performance.now() - p0) / 1000).toFixed(0)} s`);
      } catch (err) {
        const unavailable = err instanceof PartUnavailableError;
        const msg = err instanceof Error ? err.message : String(err);
        report.parts[name] = { status: unavailable ? 'unavailable' : 'failed', seconds: (performance.now() - p0) / 1000, loadAverage: [load0, os.loadavg()[0] ?? NaN], error: msg };
        if (!unavailable || args.explicit) failed = true;
        say(unavailable ? `${name}: not measured: ${msg}` : `${name}: FAILED: ${err instanceof Error ? (err.stack ?? msg) : msg}`);
      }
      // Results so far are on disk even if a later part hangs or the run is stopped.
      writeOutputs(outDir, report, sections);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    killAllChildren();
    await ctx.close();
    rmSync(workDir, { recursive: true, force: true });
  }
  report.finishedAt = new Date().toISOString();
  const md = writeOutputs(outDir, report, sections);
  if (args.updateDocs) {
    const root = packageRoot();
    const docFile = path.join(root, 'BENCHMARKS.md');
    writeFileSync(docFile, updateBenchmarksDoc(readFileSync(docFile, 'utf8'), report, sections));
    if (report.parts.scaling?.status === 'ok' && existsSync(path.join(outDir, 'scaling.png'))) {
      mkdirSync(path.join(root, 'docs'), { recursive: true });
      copyFileSync(path.join(outDir, 'scaling.png'), path.join(root, 'docs', 'scaling.png'));
    }
    say(`updated ${docFile}`);
  }
  stdout.write(md);
  say(`results: ${path.join(outDir, 'results.json')}, ${path.join(outDir, 'results.md')}`);
  return failed ? 1 : 0;
}

function writeOutputs(outDir: string, report: BenchReport, sections: Partial<Record<PartName, string>>): string {
  writeFileSync(path.join(outDir, 'results.json'), `${JSON.stringify(report, null, 2)}\n`);
  const md = reportMarkdown(report, sections);
  writeFileSync(path.join(outDir, 'results.md'), md);
  return md;
}

if (require.main === module) {
  runBench(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`lockstep bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      killAllChildren();
      process.exitCode = 1;
    },
  );
}
