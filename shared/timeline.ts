// Chrome-trace timeline of step phases (--timeline FILE), viewable in chrome://tracing
// and Perfetto. One trace process for the job, one trace thread per actor
// (coordinator, each worker). Memory is bounded: past maxEvents the oldest spans go.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

export type CoordinatorPhase = 'wait' | 'aggregate' | 'optimizer' | 'broadcast' | 'checkpoint';
export type WorkerPhase = 'wait' | 'compute' | 'encode' | 'publish';

export interface TraceEvent {
  name: string;
  cat: string;
  ph: 'X' | 'M' | 'i';
  /** Microseconds. */
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  s?: 't' | 'p' | 'g';
  args?: Record<string, unknown>;
}

export interface TraceFile {
  traceEvents: TraceEvent[];
  displayTimeUnit: 'ms';
  otherData: Record<string, unknown>;
}

/**
 * A phase measured on a worker, in the worker's own clock, relative to an origin the
 * worker chose (when it received the step message). Travels inside grad messages;
 * all fields are small numbers so it encodes cheaply as JSON.
 */
export interface PhaseSpan {
  name: string;
  /** Microseconds after the worker's origin. */
  startUs: number;
  durUs: number;
}

/** Wall-clock microseconds with sub-millisecond resolution. */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/**
 * Collects a worker's phase spans for one part, relative to `begin()`. The worker
 * sends `spans()` with its gradient; the coordinator passes them to
 * TimelineWriter.addRemoteSpans. Clocks of different hosts are never compared.
 */
export class PhaseRecorder {
  private origin = 0;
  private list: PhaseSpan[] = [];
  private readonly clock: () => number;

  constructor(clock: () => number = nowUs) {
    this.clock = clock;
    this.origin = clock();
  }

  /** Starts a new part: clears spans and sets the origin (call when the step message arrives). */
  begin(): void {
    this.origin = this.clock();
    this.list = [];
  }

  /** Starts a phase; call the returned function when it ends. */
  start(name: string): () => void {
    const t0 = this.clock();
    return () => {
      this.list.push({ name, startUs: t0 - this.origin, durUs: Math.max(0, this.clock() - t0) });
    };
  }

  async time<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
    const end = this.start(name);
    try {
      return await fn();
    } finally {
      end();
    }
  }

  spans(): PhaseSpan[] {
    return this.list.slice();
  }
}

export interface TimelineOptions {
  /** Output file, written on close(). */
  path: string;
  /** Most span/instant events kept (default 200,000, about 40 MB of JSON). */
  maxEvents?: number;
  /** Name of the trace process, e.g. `lockstep <job>`. */
  processName?: string;
  /** Microsecond clock; tests pass a fake one. */
  clock?: () => number;
  /** Extra keys for the file's otherData (job, model, term...). */
  metadata?: Record<string, unknown>;
}

const PID = 1;
const MAX_REMOTE_SPANS = 64;

export class TimelineWriter {
  readonly path: string;
  private readonly maxEvents: number;
  private readonly clock: () => number;
  private readonly processName: string;
  private readonly metadata: Record<string, unknown>;
  // Ring buffer: `head` is the oldest event once the buffer has wrapped.
  private readonly ring: (TraceEvent | undefined)[];
  private head = 0;
  private count = 0;
  private droppedEvents = 0;
  private readonly tids = new Map<string, number>();
  private closed = false;

  constructor(options: TimelineOptions) {
    this.path = options.path;
    this.maxEvents = Math.max(1, Math.floor(options.maxEvents ?? 200_000));
    this.clock = options.clock ?? nowUs;
    this.processName = options.processName ?? 'lockstep';
    this.metadata = options.metadata ?? {};
    this.ring = new Array<TraceEvent | undefined>(Math.min(this.maxEvents, 4096));
  }

  nowUs(): number {
    return this.clock();
  }

  /** Trace thread id of an actor ('coordinator' or a worker id), created on first use. */
  actor(id: string): number {
    let tid = this.tids.get(id);
    if (tid === undefined) {
      tid = this.tids.size + 1;
      this.tids.set(id, tid);
    }
    return tid;
  }

  /** Records a complete phase [startUs, startUs + durUs) of an actor. */
  span(actor: string, name: string, startUs: number, durUs: number, args?: Record<string, unknown>): void {
    if (!Number.isFinite(startUs) || !Number.isFinite(durUs)) return;
    const ev: TraceEvent = { name, cat: actor === 'coordinator' ? 'coordinator' : 'worker', ph: 'X', ts: Math.round(startUs), dur: Math.max(0, Math.round(durUs)), pid: PID, tid: this.actor(actor) };
    if (args !== undefined) ev.args = args;
    this.push(ev);
  }

  /** Starts a phase now; the returned function ends it (extra args merge in). */
  begin(actor: string, name: string, args?: Record<string, unknown>): (more?: Record<string, unknown>) => void {
    const t0 = this.clock();
    return (more) => this.span(actor, name, t0, this.clock() - t0, more === undefined ? args : { ...args, ...more });
  }

  async measure<T>(actor: string, name: string, fn: () => T | Promise<T>, args?: Record<string, unknown>): Promise<T> {
    const end = this.begin(actor, name, args);
    try {
      return await fn();
    } finally {
      end();
    }
  }

  /** A point event (worker lost, straggler, checkpoint written...). */
  instant(actor: string, name: string, args?: Record<string, unknown>): void {
    const ev: TraceEvent = { name, cat: 'event', ph: 'i', s: 't', ts: this.clock(), pid: PID, tid: this.actor(actor) };
    if (args !== undefined) ev.args = args;
    this.push(ev);
  }

  /**
   * Places a worker's spans (relative to its own origin) on the coordinator's clock at
   * `anchorUs`, normally when the coordinator published the step. Network delay is not
   * corrected; ordering and durations are exact. Untrusted input: at most 64 spans,
   * non-finite or negative values dropped.
   */
  addRemoteSpans(workerId: string, spans: readonly PhaseSpan[], options: { anchorUs: number; args?: Record<string, unknown> }): void {
    let n = 0;
    for (const s of spans) {
      if (n >= MAX_REMOTE_SPANS) break;
      if (typeof s?.name !== 'string' || s.name.length === 0 || s.name.length > 64) continue;
      if (!Number.isFinite(s.startUs) || !Number.isFinite(s.durUs) || s.startUs < 0 || s.durUs < 0) continue;
      this.span(workerId, s.name, options.anchorUs + s.startUs, s.durUs, options.args);
      n++;
    }
  }

  get size(): number {
    return this.count;
  }

  get dropped(): number {
    return this.droppedEvents;
  }

  /** Events in time order of recording, metadata first. */
  events(): TraceEvent[] {
    const out: TraceEvent[] = [{ name: 'process_name', cat: '__metadata', ph: 'M', ts: 0, pid: PID, tid: 0, args: { name: this.processName } }];
    // Coordinator on top, then workers in order of appearance.
    for (const [id, tid] of this.tids) {
      out.push({ name: 'thread_name', cat: '__metadata', ph: 'M', ts: 0, pid: PID, tid, args: { name: id } });
      out.push({ name: 'thread_sort_index', cat: '__metadata', ph: 'M', ts: 0, pid: PID, tid, args: { sort_index: id === 'coordinator' ? 0 : tid } });
    }
    const start = this.count < this.ring.length ? 0 : this.head;
    for (let i = 0; i < this.count; i++) {
      const ev = this.ring[(start + i) % this.ring.length];
      if (ev !== undefined) out.push(ev);
    }
    return out;
  }

  toJSON(): TraceFile {
    return { traceEvents: this.events(), displayTimeUnit: 'ms', otherData: { ...this.metadata, droppedEvents: this.droppedEvents, maxEvents: this.maxEvents } };
  }

  /** Writes the file (temp name + rename, so readers never see half a file). Idempotent. */
  async close(): Promise<string> {
    if (this.closed) return this.path;
    this.closed = true;
    const tmp = this.tempPath();
    await fs.promises.mkdir(path.dirname(this.path), { recursive: true });
    await fs.promises.writeFile(tmp, this.serialize());
    await fs.promises.rename(tmp, this.path);
    return this.path;
  }

  /** Synchronous close for exit paths (signal handlers) that cannot await. */
  closeSync(): string {
    if (this.closed) return this.path;
    this.closed = true;
    const tmp = this.tempPath();
    fs.mkdirSync(path.dirname(this.path), { recursive: true });
    fs.writeFileSync(tmp, this.serialize());
    fs.renameSync(tmp, this.path);
    return this.path;
  }

  private tempPath(): string {
    return `${this.path}.${process.pid}.tmp`;
  }

  // One event per line keeps a large trace diffable and avoids one giant string.
  private serialize(): string {
    const file = this.toJSON();
    const lines = file.traceEvents.map((e) => JSON.stringify(e));
    return `{"traceEvents":[\n${lines.join(',\n')}\n],"displayTimeUnit":"ms","otherData":${JSON.stringify(file.otherData)}}\n`;
  }

  private push(ev: TraceEvent): void {
    if (this.closed) return;
    if (this.count < this.maxEvents) {
      if (this.count === this.ring.length) this.ring.length = Math.min(this.maxEvents, this.ring.length * 2);
      this.ring[this.count] = ev;
      this.count++;
      return;
    }
    // Full: overwrite the oldest.
    this.ring[this.head] = ev;
    this.head = (this.head + 1) % this.maxEvents;
    this.droppedEvents++;
  }
}
