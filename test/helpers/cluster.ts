// Real processes for the fault suite and the faults benchmark: a nats-server
// (or several), a coordinator and workers started from dist/bin/lockstep.js
// with given flags. Collects their JSON logs and results; kills (-9), stops
// (SIGSTOP), continues and restarts them; reads the final weights from the
// final checkpoint; checks from the logs that every applied step covered its
// global batch exactly once and every epoch each image exactly once.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StepPlanner } from '../../shared/train/plan.js';
import type { TrainResult } from '../../shared/train/result.js';
import { freePort, startNatsServer, type NatsServerHandle } from './nats-server.js';
import { readCheckpointState } from '../../shared/checkpoint/store.js';

export const ENTRY = join(__dirname, '..', '..', 'bin', 'lockstep.js');

/** One pino JSON line of a lockstep process. */
export interface LogLine {
  level: number;
  time: number;
  pid: number;
  role?: string;
  worker?: string | null;
  msg?: string;
  [key: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

type Waiter = { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void };

/** A lockstep child process with its parsed log. */
export class Proc {
  readonly lines: LogLine[] = [];
  readonly exited: Promise<Exit>;
  exit: Exit | null = null;
  private out = '';
  private errTail = '';
  private partial = '';
  private readonly waiters = new Set<Waiter>();
  private readonly exitWaiters = new Set<() => void>();

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.out += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => this.onStderr(d));
    // A test runner that gives up on this process must not leave the child running.
    const onParentExit = (): void => {
      child.kill('SIGKILL');
    };
    process.once('exit', onParentExit);
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        process.removeListener('exit', onParentExit);
        this.exit = { code, signal };
        for (const f of this.exitWaiters) f();
        resolve(this.exit);
      }),
    );
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  alive(): boolean {
    return this.exit === null;
  }

  stdout(): string {
    return this.out;
  }

  /** The last characters of stderr (for assertion messages). */
  tail(chars = 4000): string {
    return this.errTail.slice(-chars);
  }

  private onStderr(d: string): void {
    this.errTail = (this.errTail + d).slice(-64 * 1024);
    const text = this.partial + d;
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const raw of parts) {
      if (!raw.startsWith('{')) continue;
      let line: LogLine;
      try {
        line = JSON.parse(raw) as LogLine;
      } catch {
        continue;
      }
      this.lines.push(line);
      for (const w of [...this.waiters]) {
        if (w.pred(line)) {
          this.waiters.delete(w);
          w.resolve(line);
        }
      }
    }
  }

  signal(sig: NodeJS.Signals): void {
    if (this.alive()) this.child.kill(sig);
  }

  /** SIGKILL and wait for the exit. */
  async kill(): Promise<Exit> {
    this.signal('SIGCONT');
    this.signal('SIGKILL');
    return this.exited;
  }

  /** The first log line (already seen or still to come) matching `pred`. Rejects on timeout or exit. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine> {
    const seen = this.lines.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        this.exitWaiters.delete(onExit);
      };
      const waiter: Waiter = {
        pred,
        resolve: (l) => {
          cleanup();
          resolve(l);
        },
      };
      const onExit = (): void => {
        cleanup();
        reject(new Error(`${this.name} exited (${JSON.stringify(this.exit)}) while waiting for ${what}\n${this.tail()}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} from ${this.name}\n${this.tail()}`));
      }, timeoutMs);
      this.waiters.add(waiter);
      if (this.exit !== null) onExit();
      else this.exitWaiters.add(onExit);
    });
  }
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** Run inside this network namespace (`ip netns exec`, which execs: the pid is node's). */
  netns?: string;
}

export function spawnLockstep(name: string, args: string[], opts: SpawnOptions = {}): Proc {
  const env = { ...process.env, ...opts.env };
  delete env.LOCKSTEP_LOG_LEVEL; // the test decides per process, with --log-level
  const child =
    opts.netns === undefined
      ? spawn(process.execPath, [ENTRY, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('ip', ['netns', 'exec', opts.netns, process.execPath, ENTRY, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Proc(name, child);
}

export interface ClusterOptions {
  /** Model and run flags shared by the coordinator and the reference run (--model ... --steps ... --seed ...). */
  train: string[];
  /** --heartbeat-timeout for every process (seconds). */
  heartbeatTimeout: number;
  /** Extra coordinator flags (e.g. --min-workers, --straggler-factor). */
  coordinatorFlags?: string[];
  /** --checkpoint-every (default 4). */
  checkpointEvery?: number;
  /** Default wasm: the same for every process and the reference, so their math agrees. */
  backend?: string;
  /** Use this broker instead of starting one (not stopped by the cluster). */
  nats?: NatsServerHandle;
  /** Extra nats-server arguments when the cluster starts its own. */
  natsArgs?: string[];
  /** Directory prefix for temp dirs. */
  name?: string;
}

/** The processes of one training run and what they wrote. */
export class Cluster {
  readonly dir: string;
  readonly checkpointDir: string;
  readonly coordinators: Proc[] = [];
  readonly workers = new Map<string, Proc>();
  /** Every worker process ever started (a restarted id appears twice). */
  readonly allWorkers: Proc[] = [];
  metricsPort = 0;
  private readonly ownNats: boolean;

  private constructor(
    readonly o: ClusterOptions,
    readonly nats: NatsServerHandle,
  ) {
    this.ownNats = o.nats === undefined;
    this.dir = mkdtempSync(join(tmpdir(), `lockstep-${o.name ?? 'fault'}-`));
    this.checkpointDir = join(this.dir, 'checkpoints');
  }

  static async start(o: ClusterOptions): Promise<Cluster> {
    const nats = o.nats ?? (await startNatsServer({ args: o.natsArgs ?? [] }));
    const c = new Cluster(o, nats);
    c.metricsPort = await freePort();
    return c;
  }

  get backend(): string {
    return this.o.backend ?? 'wasm';
  }

  /** The coordinator started last. */
  get coordinator(): Proc {
    const c = this.coordinators[this.coordinators.length - 1];
    if (c === undefined) throw new Error('no coordinator started');
    return c;
  }

  coordinatorArgs(extra: string[] = []): string[] {
    return [
      'coordinator',
      '--nats',
      this.nats.url,
      ...this.o.train,
      '--checkpoint-dir',
      this.checkpointDir,
      '--checkpoint-every',
      String(this.o.checkpointEvery ?? 4),
      '--heartbeat-timeout',
      String(this.o.heartbeatTimeout),
      '--metrics-port',
      String(this.metricsPort),
      '--dashboard-port',
      '0',
      '--backend',
      this.backend,
      '--json',
      '--log-level',
      'debug',
      ...(this.o.coordinatorFlags ?? []),
      ...extra,
    ];
  }

  startCoordinator(extra: string[] = []): Proc {
    const p = spawnLockstep(`coordinator#${this.coordinators.length + 1}`, this.coordinatorArgs(extra));
    this.coordinators.push(p);
    return p;
  }

  /** A new coordinator process that resumes from the newest checkpoint (as the launcher or Kubernetes would). */
  restartCoordinator(extra: string[] = []): Proc {
    return this.startCoordinator(['--resume', 'auto', ...extra]);
  }

  startWorker(id: string, opts: { url?: string; netns?: string; extra?: string[] } = {}): Proc {
    const args = ['worker', '--nats', opts.url ?? this.nats.url, '--worker-id', id, '--heartbeat-timeout', String(this.o.heartbeatTimeout), '--backend', this.backend, '--log-level', 'debug', ...(opts.extra ?? [])];
    const p = spawnLockstep(id, args, opts.netns === undefined ? {} : { netns: opts.netns });
    this.workers.set(id, p);
    this.allWorkers.push(p);
    return p;
  }

  worker(id: string): Proc {
    const w = this.workers.get(id);
    if (w === undefined) throw new Error(`no worker ${id}`);
    return w;
  }

  /** Waits for the last coordinator to exit 0 and returns its --json result. */
  async result(timeoutMs: number): Promise<TrainResult> {
    const c = this.coordinator;
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([
      c.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the run did not finish within ${timeoutMs} ms\n${c.tail()}`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    if (exit.code !== 0) throw new Error(`${c.name} exited ${JSON.stringify(exit)}\n${c.tail()}`);
    const line = c.stdout().trim().split('\n').pop() ?? '';
    return JSON.parse(line) as TrainResult;
  }

  /** The coordinator's /metrics text. */
  async metrics(): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`);
    return res.text();
  }

  /** Every log line of every process, in time order. */
  lines(): LogLine[] {
    return [...this.coordinators, ...this.allWorkers].flatMap((p) => p.lines).sort((a, b) => a.time - b.time);
  }

  coordinatorLines(): LogLine[] {
    return this.coordinators.flatMap((p) => p.lines);
  }

  /** Kills everything still running, stops an owned broker, removes the temp dir. */
  async stop(): Promise<void> {
    await Promise.all([...this.coordinators, ...this.allWorkers].map((p) => p.kill()));
    if (this.ownNats) await this.nats.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---- reading results ---------------------------------------------------------

/** The master weights of a checkpoint directory (state/weights.f32, little-endian float32). */
export function checkpointWeights(stepDir: string): Float32Array {
  return readCheckpointState(stepDir).weights;
}

export function finalWeights(result: TrainResult): Float32Array {
  if (result.checkpoint === null) throw new Error('the run wrote no final checkpoint');
  return checkpointWeights(result.checkpoint);
}

/** A value of the /metrics text: `name{labels}` summed over series whose labels include `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const kv of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have.set(kv[1] as string, kv[2] as string);
    if (!Object.entries(labels).every(([k, v]) => have.get(k) === v)) continue;
    sum += Number(m[4]);
    found = true;
  }
  return found ? sum : NaN;
}

export interface ReferenceRun {
  result: TrainResult;
  weights: Float32Array;
}

/** The uninterrupted in-process run (`train --workers 0`) with the same flags: the math every faulty run must equal. */
export async function referenceRun(train: string[], backend = 'wasm', timeoutMs = 120_000): Promise<ReferenceRun> {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-ref-'));
  try {
    const p = spawnLockstep('reference', ['train', '--workers', '0', ...train, '--checkpoint-dir', dir, '--checkpoint-every', '0', '--backend', backend, '--json', '--log-level', 'warn']);
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([
      p.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          p.signal('SIGKILL');
          reject(new Error(`reference run timed out\n${p.tail()}`));
        }, timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    if (exit.code !== 0) throw new Error(`reference run exited ${JSON.stringify(exit)}\n${p.tail()}`);
    const result = JSON.parse(p.stdout().trim().split('\n').pop() ?? '') as TrainResult;
    return { result, weights: finalWeights(result) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- coverage: every image exactly once per epoch ------------------------------

interface CoverageRecord {
  term: number;
  step: number;
  epoch: number;
  count: number;
  coverage: Array<{ part: number; worker: string; count: number; indices: number[] }>;
}

export interface CoverageReport {
  /** Steps of the final lineage (0 .. totalSteps-1). */
  steps: number;
  /** Complete epochs checked image by image. */
  epochs: number;
  /** Steps applied by more than one term (redone after a coordinator restart from an older checkpoint). */
  redone: number;
  /** Parts computed by a worker other than the first one planned for it (recomputed or backed up). */
  partsByWorker: Map<string, number>;
  /** Images missing from or repeated in an epoch: must be 0. */
  imagesLost: number;
}

export interface CoverageOptions {
  seed: number;
  datasetSize: number;
  batchSize: number;
  totalSteps: number;
}

/**
 * Checks, from the coordinators' `step applied` records and the workers' `part published`
 * records, that the run's final lineage (for each step, the application by the latest
 * term) applied every step 0..totalSteps-1 once per term; that each applied step's
 * parts were exactly the planned global batch of that step; that the worker credited
 * with each part logged computing exactly those images; and that each complete epoch
 * used every image exactly once. Throws with a description of the first violation.
 */
export function verifyCoverage(source: Cluster | { coordinator: LogLine[]; workers: LogLine[] }, o: CoverageOptions): CoverageReport {
  const planner = new StepPlanner({ seed: o.seed, datasetSize: o.datasetSize, batchSize: o.batchSize });
  const coordinatorLines = source instanceof Cluster ? source.coordinatorLines() : source.coordinator;
  const workerLines = source instanceof Cluster ? source.allWorkers.flatMap((w) => w.lines) : source.workers;
  const records = coordinatorLines.filter((l) => l.msg === 'step applied') as unknown as CoverageRecord[];
  const byStep = new Map<number, CoverageRecord[]>();
  for (const r of records) {
    const list = byStep.get(r.step) ?? [];
    if (list.some((x) => x.term === r.term)) throw new Error(`step ${r.step} was applied twice in term ${r.term}`);
    list.push(r);
    byStep.set(r.step, list);
  }
  // What each worker process says it computed: (term, step, part) -> indices.
  const published = new Map<string, number[][]>();
  for (const l of workerLines) {
    if (l.msg !== 'part published') continue;
    const key = `${String(l.worker)}:${String(l.term)}:${String(l.step)}:${String(l.part)}`;
    const list = published.get(key) ?? [];
    list.push(l.indices as number[]);
    published.set(key, list);
  }
  const sortNum = (a: ArrayLike<number>): number[] => Array.from(a).sort((x, y) => x - y);
  const same = (a: number[], b: number[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);
  let redone = 0;
  const partsByWorker = new Map<string, number>();
  const lineage: CoverageRecord[] = [];
  for (let s = 0; s < o.totalSteps; s++) {
    const list = byStep.get(s);
    if (list === undefined || list.length === 0) throw new Error(`step ${s} was never applied`);
    list.sort((a, b) => a.term - b.term);
    if (list.length > 1) redone += 1;
    const planned = sortNum(planner.slice(s).indices);
    for (const r of list) {
      const covered = sortNum(r.coverage.flatMap((p) => p.indices));
      if (!same(covered, planned)) throw new Error(`step ${s} (term ${r.term}) applied images ${JSON.stringify(covered)}, the planned global batch is ${JSON.stringify(planned)}`);
      if (r.count !== planned.length) throw new Error(`step ${s} (term ${r.term}) counted ${r.count} images, the batch has ${planned.length}`);
      for (const p of r.coverage) {
        const got = published.get(`${p.worker}:${r.term}:${s}:${p.part}`);
        if (got === undefined || !got.some((ix) => same(ix, p.indices))) {
          throw new Error(`step ${s} (term ${r.term}) part ${p.part} is credited to ${p.worker}, which never logged computing images ${JSON.stringify(p.indices)}`);
        }
      }
    }
    const last = list[list.length - 1] as CoverageRecord;
    for (const p of last.coverage) partsByWorker.set(p.worker, (partsByWorker.get(p.worker) ?? 0) + 1);
    lineage.push(last);
  }
  for (const s of byStep.keys()) if (s >= o.totalSteps) throw new Error(`step ${s} applied beyond the run's ${o.totalSteps} steps`);
  let imagesLost = 0;
  let epochs = 0;
  for (let start = 0; start + planner.stepsPerEpoch <= o.totalSteps; start += planner.stepsPerEpoch) {
    const uses = new Uint32Array(o.datasetSize);
    for (let s = start; s < start + planner.stepsPerEpoch; s++) for (const p of (lineage[s] as CoverageRecord).coverage) for (const i of p.indices) uses[i] = (uses[i] as number) + 1;
    for (let i = 0; i < uses.length; i++) if (uses[i] !== 1) imagesLost += 1;
    epochs += 1;
  }
  if (imagesLost > 0) throw new Error(`${imagesLost} images were not used exactly once in their epoch`);
  return { steps: lineage.length, epochs, redone, partsByWorker, imagesLost };
}

// ---- small utilities -------------------------------------------------------------

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns a non-undefined value. */
export async function until<T>(fn: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: string, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A log-line predicate: message and fields equal. */
export function logIs(msg: string, fields: Record<string, unknown> = {}): (l: LogLine) => boolean {
  return (l) => l.msg === msg && Object.entries(fields).every(([k, v]) => l[k] === v);
}

/** True when this process may create network namespaces (root with CAP_SYS_ADMIN, iproute2 present). */
export function netnsAvailable(): { ok: boolean; why: string } {
  const name = `lockstep-probe-${process.pid}`;
  const add = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (add.error !== undefined) return { ok: false, why: `ip (iproute2) not runnable: ${add.error.message}` };
  if (add.status !== 0) return { ok: false, why: `ip netns add is not permitted here: ${add.stderr.trim()}` };
  spawnSync('ip', ['netns', 'del', name]);
  return { ok: true, why: '' };
}

/** Runs `ip ...args`; throws with stderr on failure. */
export function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr.trim()}`);
}

/** A network namespace joined to the host by a veth pair with a /30 subnet; remove() deletes both. */
export interface NetnsLink {
  ns: string;
  hostIf: string;
  hostIp: string;
  nsIp: string;
  cut(): void;
  restore(): void;
  remove(): void;
}

export function createNetnsLink(index: number): NetnsLink {
  const tag = `${process.pid % 100000}${index}`;
  const ns = `lockstep-${tag}`;
  const hostIf = `lsh${tag}`;
  const nsIf = `lsn${tag}`;
  // 10.<200-249>.<0-255>.<4*index>/30, derived from the pid so parallel runs rarely collide.
  const b = 200 + (Math.floor(process.pid / 256) % 50);
  const c = process.pid % 256;
  const d = (index % 60) * 4;
  const hostIp = `10.${b}.${c}.${d + 1}`;
  const nsIp = `10.${b}.${c}.${d + 2}`;
  const remove = (): void => {
    spawnSync('ip', ['link', 'del', hostIf]);
    spawnSync('ip', ['netns', 'del', ns]);
    process.removeListener('exit', remove);
  };
  remove();
  process.once('exit', remove);
  try {
    ip('netns', 'add', ns);
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
    ip('link', 'set', nsIf, 'netns', ns);
    ip('addr', 'add', `${hostIp}/30`, 'dev', hostIf);
    ip('link', 'set', hostIf, 'up');
    ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${nsIp}/30`, 'dev', nsIf);
    ip('netns', 'exec', ns, 'ip', 'link', 'set', nsIf, 'up');
    ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
  } catch (err) {
    remove();
    throw err;
  }
  return {
    ns,
    hostIf,
    hostIp,
    nsIp,
    cut: () => ip('link', 'set', hostIf, 'down'),
    restore: () => ip('link', 'set', hostIf, 'up'),
    remove,
  };
}
