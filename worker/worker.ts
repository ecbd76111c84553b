// The worker's NATS loop: join (and rejoin on a new coordinator term), keep the
// current weights, compute the parts the step plans assign to it, publish
// gradient sums, heartbeat. It never decides anything about the math: parts
// are idempotent by (term, step, part), and a re-request is answered from a
// small cache of finished results instead of recomputing.
import { hostname } from 'node:os';
import { createInbox, type Msg, type NatsConnection, type Subscription } from 'nats';
import type { Options } from '../shared/config/types.js';
import { CodecError, LockstepError, ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { BinaryReceiver } from '../shared/protocol/binary-message.js';
import { encodeBinaryMessage } from '../shared/protocol/binary-message.js';
import { MSG, createMessage, encodeMessage, parseMessage, type HbMessage, type StepMessage } from '../shared/protocol/messages.js';
import { subjectsFor } from '../shared/protocol/subjects.js';
import { maxPayloadOf } from '../shared/nats/connect.js';
import { parseJobConfig, sameModel, type JobConfig } from '../shared/train/job-config.js';
import type { BackendInfo } from '../shared/compute/backend.js';
import { WorkerCompute } from './compute.js';

export interface WorkerObserver {
  partDone(seconds: number, gradBytes: number): void;
  rejected(reason: string): void;
  coordinatorLost(): void;
}

export interface WorkerDeps {
  nc: NatsConnection;
  log: Logger;
  backend: BackendInfo;
  observer?: WorkerObserver;
  signal?: AbortSignal;
}

interface Task {
  term: number;
  step: number;
  epoch: number;
  weightsVersion: number;
  part: number;
  attempt: number;
  indices: number[];
}

type Status = 'joining' | 'idle' | 'busy' | 'paused' | 'stopping';

export function defaultWorkerId(): string {
  return `${hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40)}-${process.pid}`;
}

export class Worker {
  readonly id: string;
  private readonly subj;
  private term = 0;
  private joined = false;
  private status: Status = 'joining';
  private compute: WorkerCompute | null = null;
  private config: JobConfig | null = null;
  private weights: { version: number; data: Float32Array } | null = null;
  private latestStep = -1;
  private lastCoordSeen = Date.now();
  private readonly queue: Task[] = [];
  private readonly cache = new Map<string, Uint8Array[]>();
  private pumping = false;
  private partsDone = 0;
  private lastPartSeconds = 0;
  private stopped = false;
  private stopResolve: (() => void) | null = null;
  private rejoinPromise: Promise<void> | null = null;
  /** Cuts the join loop's back-off short: set while it sleeps, called when a coordinator heartbeat shows one is there. */
  private joinWake: (() => void) | null = null;
  private deferredPlan: Uint8Array | null = null;
  private readonly subs: Subscription[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly rejectLogged = new Set<string>();
  private readonly hbIntervalMs: number;
  private readonly heartbeatTimeoutMs: number;

  constructor(
    private readonly opts: Options,
    private readonly deps: WorkerDeps,
  ) {
    this.id = opts.workerId ?? defaultWorkerId();
    this.subj = subjectsFor(opts.job);
    this.heartbeatTimeoutMs = opts.heartbeatTimeout * 1000;
    this.hbIntervalMs = Math.max(50, Math.min(1000, this.heartbeatTimeoutMs / 5));
  }

  private env(step = this.latestStep < 0 ? 0 : this.latestStep) {
    return { job: this.opts.job, term: this.term, step, sender: this.id };
  }

  /** Runs until told to stop (ctl stop, the signal, or stop()). */
  async run(): Promise<void> {
    const { nc } = this.deps;
    const done = new Promise<void>((resolve) => (this.stopResolve = resolve));
    this.deps.signal?.addEventListener('abort', () => this.stop('signal'), { once: true });
    this.subscribe(nc);
    this.timers.push(setInterval(() => this.heartbeat(), this.hbIntervalMs));
    this.timers.push(setInterval(() => this.watchdog(), Math.max(100, this.hbIntervalMs)));
    await this.rejoin('start');
    await done;
    await this.shutdown();
  }

  stop(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    this.status = 'stopping';
    this.deps.log.info({ reason }, 'worker stopping');
    this.stopResolve?.();
  }

  private subscribe(nc: NatsConnection): void {
    const weightsRx = new BinaryReceiver({ accept: [MSG.weights], ttlMs: 30_000 });
    this.subs.push(
      nc.subscribe(this.subj.step, { callback: (err, msg) => (err ? undefined : this.onStep(msg.data)) }),
      nc.subscribe(this.subj.weights, {
        callback: (err, msg) => {
          if (err) return;
          try {
            const got = weightsRx.push(msg.data, 'coord');
            if (got !== null) this.acceptWeights(got.meta.term, got.meta.version, got.payload);
          } catch (e) {
            this.reject(e, 'weights');
          }
        },
      }),
      nc.subscribe(this.subj.hbCoord, { callback: (err, msg) => (err ? undefined : this.onCoordHeartbeat(msg.data)) }),
      nc.subscribe(this.subj.ctl, { callback: (err, msg) => (err ? undefined : this.onCtl(msg.data)) }),
    );
  }

  private reject(err: unknown, where: string): void {
    if (err instanceof CodecError || err instanceof ProtocolError) {
      this.deps.observer?.rejected(err.reason);
      const key = `${where}:${err.reason}`;
      if (!this.rejectLogged.has(key)) {
        this.rejectLogged.add(key);
        this.deps.log.warn({ err, where, reason: err.reason }, 'rejected a message');
      }
      return;
    }
    this.deps.log.error({ err, where }, 'failed to handle a message');
  }

  private acceptWeights(term: number, version: number, payload: Float32Array): void {
    if (term !== this.term) return;
    if (this.weights !== null && this.weights.version >= version) return;
    this.weights = { version, data: Float32Array.from(payload) };
    this.kick();
  }

  private onStep(data: Uint8Array): void {
    let m: StepMessage;
    try {
      const parsed = parseMessage(data);
      if (parsed.type !== MSG.step) throw new ProtocolError('unexpected-type', `expected a step message on ${this.subj.step}, got ${parsed.type}`);
      m = parsed;
    } catch (e) {
      this.reject(e, 'step');
      return;
    }
    this.deps.log.debug({ term: m.term, step: m.step, joined: this.joined, myTerm: this.term, latest: this.latestStep, parts: m.parts.filter((p) => p.worker === this.id).map((p) => p.part) }, 'plan received');
    if (m.term < this.term) return; // an old coordinator's plan
    if (m.term > this.term || !this.joined) {
      // The join-ack can arrive in the same socket read as this plan, and the ack's
      // continuation runs after it: keep the newest plan for when the join completes.
      this.deferredPlan = data;
      void this.rejoin(`step plan of term ${m.term}`);
      return;
    }
    this.lastCoordSeen = Date.now();
    if (m.step > this.latestStep) {
      this.latestStep = m.step;
      // The coordinator moved on: queued work of older steps is moot.
      for (let i = this.queue.length - 1; i >= 0; i--) if ((this.queue[i] as Task).step < m.step) this.queue.splice(i, 1);
    }
    if (m.step < this.latestStep) return;
    for (const p of m.parts) {
      if (p.worker !== this.id) continue;
      const key = `${m.term}:${m.step}:${p.part}`;
      const cached = this.cache.get(key);
      if (cached !== undefined) {
        // A re-request: the first copy was lost or late. Same bytes again.
        this.publishChunks(cached);
        continue;
      }
      if (this.queue.some((t) => t.term === m.term && t.step === m.step && t.part === p.part)) continue;
      if (this.inFlight === key) continue;
      this.queue.push({ term: m.term, step: m.step, epoch: m.epoch, weightsVersion: m.weightsVersion, part: p.part, attempt: p.attempt, indices: p.indices });
    }
    this.kick();
  }

  private inFlight: string | null = null;

  private kick(): void {
    if (this.pumping || this.stopped) return;
    this.pumping = true;
    void this.pump().finally(() => {
      this.pumping = false;
      // nats.js delivers several messages in one synchronous batch: a plan that
      // arrived while this pump was finishing found `pumping` still set, so look again.
      if (this.runnable()) this.kick();
    });
  }

  private runnable(): boolean {
    return !this.stopped && this.queue.length > 0 && this.compute !== null && this.status !== 'paused';
  }

  private async pump(): Promise<void> {
    while (this.runnable()) {
      const compute = this.compute as WorkerCompute;
      const task = this.queue[0] as Task;
      if (task.term !== this.term || task.step < this.latestStep) {
        this.queue.shift();
        continue;
      }
      if (this.weights === null || this.weights.version !== task.weightsVersion) {
        this.deps.log.debug({ step: task.step, have: this.weights?.version ?? null, want: task.weightsVersion }, 'fetching weights');
        const ok = await this.fetchState(task.weightsVersion);
        if (!ok) {
          // The coordinator is elsewhere (newer weights, new term): the plan will be re-sent.
          this.queue.shift();
          continue;
        }
        continue;
      }
      this.queue.shift();
      const key = `${task.term}:${task.step}:${task.part}`;
      this.inFlight = key;
      this.status = 'busy';
      try {
        const out = compute.computePart(this.weights.data, task.indices, task.step);
        const t1 = performance.now();
        const meta = createMessage(MSG.grad, this.env(task.step), {
          part: task.part,
          attempt: task.attempt,
          weightsVersion: task.weightsVersion,
          count: out.count,
          numel: out.grad.length,
          lossSums: out.loss,
          computeSeconds: out.computeSeconds,
          encodeSeconds: 0,
        });
        const chunks = encodeBinaryMessage({ ...meta, encodeSeconds: (performance.now() - t1) / 1000 }, out.grad, { maxPayload: maxPayloadOf(this.deps.nc) });
        this.cache.set(key, chunks);
        while (this.cache.size > 4) this.cache.delete(this.cache.keys().next().value as string);
        // Logged before publishing so that a worker killed right after still leaves the record (fault suite).
        this.deps.log.debug({ term: task.term, step: task.step, part: task.part, attempt: task.attempt, count: out.count, indices: task.indices, computeSeconds: out.computeSeconds }, 'part published');
        this.publishChunks(chunks);
        this.partsDone += 1;
        this.lastPartSeconds = out.computeSeconds;
        this.deps.observer?.partDone(out.computeSeconds, chunks.reduce((a, c) => a + c.length, 0));
      } catch (err) {
        this.deps.log.error({ err, step: task.step, part: task.part }, 'part failed');
      } finally {
        this.inFlight = null;
        this.status = 'idle';
      }
      // Let heartbeats and incoming plans through between parts.
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  private publishChunks(chunks: Uint8Array[]): void {
    const subject = this.subj.grad(this.id);
    for (const c of chunks) this.deps.nc.publish(subject, c);
  }

  /** Requests the current weights; true once `version` is held. */
  private async fetchState(version: number): Promise<boolean> {
    const { nc } = this.deps;
    for (let attempt = 0; attempt < 3 && !this.stopped; attempt++) {
      const inbox = createInbox();
      const rx = new BinaryReceiver({ accept: [MSG.weights], ttlMs: 10_000 });
      const sub = nc.subscribe(inbox);
      const got = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 3000);
        void (async () => {
          for await (const msg of sub) {
            try {
              const r = rx.push(msg.data, 'coord');
              if (r !== null) {
                clearTimeout(timer);
                this.acceptWeights(r.meta.term, r.meta.version, r.payload);
                resolve(true);
                return;
              }
            } catch (e) {
              this.reject(e, 'state');
            }
          }
        })();
      });
      nc.publish(this.subj.state, encodeMessage(createMessage(MSG.state, this.env(), { wantVersion: version })), { reply: inbox });
      const ok = await got;
      sub.unsubscribe();
      if (ok && this.weights !== null) return this.weights.version === version;
    }
    return false;
  }

  private onCoordHeartbeat(data: Uint8Array): void {
    let m: HbMessage;
    try {
      const parsed = parseMessage(data);
      if (parsed.type !== MSG.hb) throw new ProtocolError('unexpected-type', `expected a heartbeat, got ${parsed.type}`);
      m = parsed;
    } catch (e) {
      this.reject(e, 'hb.coord');
      return;
    }
    if (m.term < this.term) return;
    // A coordinator is up (again): a join loop sleeping off a failed attempt retries now.
    if (!this.joined) this.joinWake?.();
    if (m.term > this.term) {
      void this.rejoin(`coordinator term ${m.term}`);
      return;
    }
    this.lastCoordSeen = Date.now();
    if (this.joined && m.members !== undefined && !m.members.includes(this.id)) {
      void this.rejoin('not a member any more');
    }
  }

  private onCtl(data: Uint8Array): void {
    try {
      const m = parseMessage(data);
      if (m.type !== MSG.ctl || m.term < this.term) return;
      if (m.action === 'stop') this.stop(`coordinator: ${m.reason ?? 'stop'}`);
      else if (m.action === 'pause') this.status = 'paused';
      else if (m.action === 'resume') {
        this.status = 'idle';
        this.kick();
      }
    } catch (e) {
      this.reject(e, 'ctl');
    }
  }

  private heartbeat(): void {
    if (this.stopped || !this.joined || this.deps.nc.isClosed()) return;
    const status = this.inFlight !== null ? 'busy' : this.status === 'busy' ? 'idle' : this.status;
    const m = createMessage(MSG.hb, this.env(), { status, partsDone: this.partsDone, lastPartSeconds: this.lastPartSeconds });
    this.deps.nc.publish(this.subj.hb(this.id), encodeMessage(m));
  }

  private watchdog(): void {
    if (this.stopped || !this.joined) return;
    if (Date.now() - this.lastCoordSeen > this.heartbeatTimeoutMs) {
      this.deps.observer?.coordinatorLost();
      void this.rejoin(`no coordinator heartbeat for ${this.opts.heartbeatTimeout}s`);
    }
  }

  /** Join (or rejoin) until accepted or stopped. Concurrent callers share one attempt. */
  private rejoin(reason: string): Promise<void> {
    if (this.rejoinPromise !== null) return this.rejoinPromise;
    this.rejoinPromise = this.joinLoop(reason).finally(() => {
      this.rejoinPromise = null;
      const plan = this.deferredPlan;
      this.deferredPlan = null;
      if (plan !== null && this.joined && !this.stopped) this.onStep(plan);
    });
    return this.rejoinPromise;
  }

  private async joinLoop(reason: string): Promise<void> {
    const { log, backend } = this.deps;
    this.joined = false;
    this.status = 'joining';
    log.info({ reason }, 'joining');
    let delay = 200;
    while (!this.stopped) {
      try {
        const req = createMessage(MSG.join, { job: this.opts.job, term: this.term, step: 0, sender: this.id }, {
          host: hostname(),
          pid: process.pid,
          backend: backend.name,
          backendVersion: backend.version,
          device: backend.device,
          ...(this.opts.metricsPort > 0 ? { metricsPort: this.opts.metricsPort } : {}),
        });
        const reply = await this.requestJoin(encodeMessage(req));
        const ack = parseMessage(reply.data);
        if (ack.type === MSG.error) throw new ProtocolError('refused', `join refused: ${ack.error.message}`);
        if (ack.type !== MSG.joinAck) throw new ProtocolError('unexpected-type', `expected join-ack, got ${ack.type}`);
        if (!ack.accepted) throw new ProtocolError('refused', `join refused: ${ack.reason ?? 'no reason given'}`);
        const config = parseJobConfig(ack.config);
        if (this.compute === null || this.config === null || !sameModel(this.config, config)) {
          this.compute?.dispose();
          this.compute = WorkerCompute.create(config, this.opts.dataDir);
        }
        this.config = config;
        if (ack.term !== this.term) {
          this.weights = null;
          this.queue.length = 0;
          this.cache.clear();
          this.latestStep = -1;
        }
        this.term = ack.term;
        this.joined = true;
        this.status = 'idle';
        this.lastCoordSeen = Date.now();
        log.info({ rank: ack.rank, term: ack.term, weightsVersion: ack.weightsVersion }, 'joined');
        this.heartbeat();
        return;
      } catch (err) {
        if (err instanceof ProtocolError && err.reason === 'superseded') continue;
        if (err instanceof ProtocolError && err.reason === 'refused') log.warn({ err }, 'join refused; retrying');
        else if (err instanceof LockstepError) log.warn({ err }, 'cannot join; retrying');
        else log.debug({ err }, 'join attempt failed; retrying');
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            if (this.joinWake === done) this.joinWake = null;
            resolve();
          };
          const timer = setTimeout(done, delay);
          this.joinWake = done;
        });
        delay = Math.min(2000, delay * 2);
      }
    }
  }

  /**
   * One join request. A request sent while the broker was away is lost without an
   * answer; when the coordinator's heartbeat shows it is reachable again and the
   * request has been out for two heartbeat intervals, it is superseded by a fresh one
   * instead of waiting out its timeout (a duplicate join is answered as a rejoin).
   */
  private requestJoin(data: Uint8Array): Promise<Msg> {
    // Short enough that a lost request is retried within about a heartbeat timeout.
    const pending = this.deps.nc.request(this.subj.join, data, { timeout: Math.min(2000, Math.max(500, this.heartbeatTimeoutMs)) });
    const sentAt = Date.now();
    return new Promise<Msg>((resolve, reject) => {
      const wake = (): void => {
        if (Date.now() - sentAt < 2 * this.hbIntervalMs) return;
        this.joinWake = null;
        reject(new ProtocolError('superseded', 'join request superseded: the coordinator is reachable again'));
      };
      this.joinWake = wake;
      pending.then(resolve, reject).finally(() => {
        if (this.joinWake === wake) this.joinWake = null;
      });
    });
  }

  private async shutdown(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    try {
      if (!this.deps.nc.isClosed()) {
        const m = createMessage(MSG.leave, this.env(), { reason: 'stopping' });
        this.deps.nc.publish(this.subj.hb(this.id), encodeMessage(m));
        await this.deps.nc.flush();
      }
    } catch {
      // The broker may be gone already; leaving is best effort.
    }
    for (const s of this.subs) s.unsubscribe();
    this.compute?.dispose();
  }
}
