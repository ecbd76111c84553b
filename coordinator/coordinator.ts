// The coordinator's run loop: owns the master weights and Adam, plans each
// step's global batch, splits it over the live workers, collects their gradient
// sums, applies the step and broadcasts the new weights. Recovery (lost
// workers, lost messages, stragglers) only ever changes WHO computes a part,
// never WHICH images it covers, so the math of step s is fixed.
import type { Msg, NatsConnection, Subscription } from 'nats';
import type { Options } from '../shared/config/types.js';
import { CodecError, ProtocolError, StoppedError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { ModelBundle } from '../shared/models/types.js';
import { BinaryReceiver, encodeBinaryMessage } from '../shared/protocol/binary-message.js';
import { MSG, createMessage, encodeMessage, makeErrorMessage, parseMessage, type GradMessage } from '../shared/protocol/messages.js';
import { RESERVED_WORKER_IDS, subjectsFor, workerFromSubject } from '../shared/protocol/subjects.js';
import { maxPayloadOf } from '../shared/nats/connect.js';
import { TrainingCore } from '../shared/train/core.js';
import { jobConfigOf, type JobConfig } from '../shared/train/job-config.js';
import { StepPlanner, splitBatch } from '../shared/train/plan.js';
import { finalLossOf, type TrainResult } from '../shared/train/result.js';
import { sha256Of } from '../shared/train/reference.js';
import type { FaultHook } from '../shared/checkpoint/store.js';
import { Membership, type Member } from './membership.js';
import type { CoordinatorObserver, PartReport } from './observer.js';
import { StepRound } from './round.js';
import { loadResumePoint, nextTerm, saveCheckpoint, wantsResume } from './checkpoints.js';

export interface CoordinatorDeps {
  nc: NatsConnection;
  log: Logger;
  bundle: ModelBundle;
  datasetSize: number;
  backendName: string;
  observer?: CoordinatorObserver;
  faultHook?: FaultHook;
}

const TICK_MS = 50;

export class Coordinator {
  readonly id = 'coord';
  private readonly subj;
  private readonly planner: StepPlanner;
  private readonly membership: Membership;
  private readonly obs: CoordinatorObserver;
  private core!: TrainingCore;
  private term = 0;
  private step = 0;
  private totalSteps = 0;
  private losses: number[] = [];
  private samples = 0;
  private gradBytesIn = 0;
  private round: StepRound | null = null;
  private stopping = false;
  private stopReason = '';
  private paused = false;
  private weightsChunks: { version: number; chunks: Uint8Array[] } | null = null;
  private broadcastVersion = -1;
  private gradRx: BinaryReceiver<typeof MSG.grad> | null = null;
  private peakWorkers = 0;
  private readonly subs: Subscription[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly rejectLogged = new Map<string, number>();
  private readonly hbIntervalMs: number;
  private jobConfig!: JobConfig;
  private lastCheckpoint: string | null = null;
  private checkpointedStep = -1;
  private readonly wake = new Set<() => void>();
  private readonly partMeta = new Map<number, { computeSeconds: number; encodeSeconds: number; worker: string; roundTrip: number }>();

  constructor(
    private readonly o: Options,
    private readonly deps: CoordinatorDeps,
  ) {
    this.subj = subjectsFor(o.job);
    this.planner = new StepPlanner({ seed: o.seed, datasetSize: deps.datasetSize, batchSize: o.batchSize });
    this.membership = new Membership({ heartbeatTimeoutMs: o.heartbeatTimeout * 1000 });
    this.obs = deps.observer ?? {};
    this.hbIntervalMs = Math.max(50, Math.min(1000, (o.heartbeatTimeout * 1000) / 5));
  }

  get currentTerm(): number {
    return this.term;
  }

  /** Stop after the current step (with a final checkpoint). */
  stop(reason: string): void {
    if (this.stopping) return;
    this.stopping = true;
    this.stopReason = reason;
    this.deps.log.info({ reason }, 'coordinator stopping after the current step');
    this.notify();
  }

  async run(): Promise<TrainResult> {
    const { log, bundle, nc } = this.deps;
    let startStep = 0;
    let weights = bundle.getFlatWeights();
    let adamState;
    let atLeastTerm = 0;
    if (wantsResume(this.o)) {
      const rp = loadResumePoint(this.o, bundle.numParams, this.deps.datasetSize, log);
      weights = rp.weights;
      adamState = rp.adam;
      startStep = rp.manifest.step;
      this.losses = rp.manifest.losses.map((l) => l ?? NaN);
      this.samples = rp.manifest.samples;
      atLeastTerm = rp.manifest.term;
      this.lastCheckpoint = rp.path;
    }
    this.term = nextTerm(this.o.checkpointDir, atLeastTerm);
    this.core = new TrainingCore(weights, { lr: this.o.lr }, adamState);
    this.step = startStep;
    this.totalSteps = this.planner.totalSteps(this.o);
    this.jobConfig = jobConfigOf(this.o, this.deps.datasetSize, bundle.numParams);
    log.info({ term: this.term, step: this.step, totalSteps: this.totalSteps, params: bundle.numParams, stepsPerEpoch: this.planner.stepsPerEpoch }, 'coordinator starts');
    this.obs.started?.({ term: this.term, step: this.step, totalSteps: this.totalSteps, numParams: bundle.numParams });

    this.subscribe(nc);
    this.timers.push(setInterval(() => this.heartbeat(), this.hbIntervalMs));
    this.timers.push(setInterval(() => this.tick(), TICK_MS));
    this.heartbeat();

    let t0 = performance.now();
    const firstStep = this.step;
    try {
      if (this.step < this.totalSteps) await this.waitForWorkers();
      t0 = performance.now();
      while (this.step < this.totalSteps && !this.stopping) {
        await this.runStep();
        if (this.o.checkpointEvery > 0 && this.step % this.o.checkpointEvery === 0 && this.step < this.totalSteps) await this.checkpoint();
      }
      if (this.step > firstStep || this.lastCheckpoint === null) await this.checkpoint();
    } catch (err) {
      if (!(err instanceof StoppedError)) throw err;
      // Stopped while paused or with nobody left mid-step: keep the finished steps.
      this.round = null;
      if (this.step > firstStep && this.checkpointedStep !== this.step) await this.checkpoint();
    } finally {
      await this.shutdown();
    }
    const wallSeconds = (performance.now() - t0) / 1000;
    const doneSamples = this.samplesSince(firstStep);
    const last = this.lastLoss;
    return {
      model: this.o.model,
      arch: this.o.arch,
      backend: this.deps.backendName,
      workers: this.peakWorkers,
      steps: this.step,
      epochs: this.step / this.planner.stepsPerEpoch,
      samples: this.samples,
      wallSeconds,
      samplesPerSecond: doneSamples / wallSeconds,
      finalLoss: finalLossOf(this.o.model, last),
      losses: this.losses,
      gradientBytes: this.gradBytesIn,
      checkpoint: this.lastCheckpoint,
      startStep: firstStep,
      weightsSha256: sha256Of(this.core.weights),
    };
  }

  private lastLoss = { total: NaN, reconstruction: NaN, kl: NaN };
  private samplesThisRun = 0;
  private samplesSince(_first: number): number {
    return this.samplesThisRun;
  }

  members(): Member[] {
    return this.membership.live();
  }

  /** Final weights (for tests and the equivalence suite). */
  get weights(): Float32Array {
    return this.core.weights;
  }

  private async checkpoint(): Promise<void> {
    const t0 = performance.now();
    try {
      const path = await saveCheckpoint({ o: this.o, term: this.term, step: this.step, planner: this.planner, core: this.core, bundle: this.deps.bundle, losses: this.losses, samples: this.samples, hook: this.deps.faultHook });
      this.lastCheckpoint = path;
      this.checkpointedStep = this.step;
      const seconds = (performance.now() - t0) / 1000;
      this.deps.log.info({ checkpoint: path, step: this.step, seconds }, 'checkpoint written');
      this.obs.checkpoint?.(seconds, true, path);
    } catch (err) {
      this.deps.log.error({ err, step: this.step }, 'checkpoint failed');
      this.obs.checkpoint?.((performance.now() - t0) / 1000, false, null);
    }
  }

  // ---- waiting -------------------------------------------------------------

  private notify(): void {
    for (const f of [...this.wake]) f();
  }

  private waitEvent(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.wake.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wake.add(done);
    });
  }

  private async waitForWorkers(): Promise<void> {
    const want = Math.max(this.o.waitWorkers, this.o.minWorkers);
    const deadline = Date.now() + 60_000;
    let logged = false;
    while (!this.stopping && this.membership.size < want && (this.membership.size < this.o.minWorkers || Date.now() < deadline)) {
      if (!logged) {
        this.deps.log.info({ want, live: this.membership.size }, 'waiting for workers to join');
        logged = true;
      }
      await this.waitEvent(200);
    }
    if (this.stopping) throw new StoppedError(this.stopReason);
  }

  private async ensureMinWorkers(): Promise<void> {
    if (this.membership.size >= this.o.minWorkers) return;
    const reason = `${this.membership.size} live workers, --min-workers is ${this.o.minWorkers}`;
    this.paused = true;
    this.deps.log.warn({ live: this.membership.size, minWorkers: this.o.minWorkers }, `run paused: ${reason}`);
    this.obs.paused?.(true, reason);
    while (!this.stopping && this.membership.size < this.o.minWorkers) await this.waitEvent(200);
    this.paused = false;
    this.obs.paused?.(false, 'enough workers');
    this.deps.log.info({ live: this.membership.size }, 'run resumed');
    if (this.stopping) throw new StoppedError(this.stopReason);
  }

  // ---- one step --------------------------------------------------------------

  private async runStep(): Promise<void> {
    await this.ensureMinWorkers();
    const started = Date.now();
    const t0 = performance.now();
    const slice = this.planner.slice(this.step);
    const members = this.membership.live();
    this.peakWorkers = Math.max(this.peakWorkers, members.length);
    const slices = splitBatch(slice.indices, members.length);
    const round = new StepRound(this.term, this.step, slice.epoch, slice.indices.length, slices, members.map((m) => m.id), Date.now());
    this.round = round;
    this.partMeta.clear();
    const tb = performance.now();
    this.broadcastWeights();
    let broadcastSeconds = (performance.now() - tb) / 1000;
    this.publishPlan();
    await this.waitRound(round);
    const waitSeconds = (performance.now() - t0) / 1000 - broadcastSeconds;
    // Re-derived from the planner, not taken from the round: what is applied must be exactly this step's batch.
    const coverage = round.coverage(this.planner.slice(round.step).indices);
    const outcome = this.core.apply(round.results());
    this.round = null;
    this.step += 1;
    this.samples += outcome.count;
    this.samplesThisRun += outcome.count;
    this.losses.push(outcome.loss.total);
    this.lastLoss = outcome.loss;
    // The next step's weights go out now so workers have them before the plan.
    const tb2 = performance.now();
    if (this.step < this.totalSteps && !this.stopping) this.broadcastWeights();
    broadcastSeconds += (performance.now() - tb2) / 1000;
    const parts: PartReport[] = round.parts.map((p) => {
      const meta = this.partMeta.get(p.part);
      return { part: p.part, worker: p.doneBy ?? '', count: p.indices.length, computeSeconds: meta?.computeSeconds ?? 0, encodeSeconds: meta?.encodeSeconds ?? 0, roundTripSeconds: p.seconds };
    });
    const seconds = (performance.now() - t0) / 1000;
    this.obs.stepCompleted?.({
      term: this.term,
      step: this.step - 1,
      epoch: slice.epoch,
      totalSteps: this.totalSteps,
      stepsPerEpoch: this.planner.stepsPerEpoch,
      count: outcome.count,
      loss: outcome.loss,
      seconds,
      startedAt: started,
      phases: { waitSeconds, aggregateSeconds: outcome.aggregateSeconds, optimizerSeconds: outcome.optimizerSeconds, broadcastSeconds, checkpointSeconds: 0 },
      parts,
      workers: this.membership.size,
      weights: this.core.weights,
    });
    this.deps.log.debug({ step: this.step - 1, loss: outcome.loss, seconds }, 'step done');
    // The per-step coverage record the fault suite reads (exactly-once per epoch across faults and restarts).
    this.deps.log.debug({ term: this.term, step: this.step - 1, epoch: slice.epoch, count: outcome.count, coverage }, 'step applied');
  }

  /** Until every part has a result. A stop finishes the step, unless nobody is left to finish it. */
  private async waitRound(round: StepRound): Promise<void> {
    while (!round.complete()) {
      if (this.stopping && this.membership.size === 0) throw new StoppedError(this.stopReason);
      await this.waitEvent(250);
    }
  }

  private broadcastWeights(): void {
    const version = this.step;
    if (this.weightsChunks?.version !== version) {
      const meta = createMessage(MSG.weights, this.env(), { version, epoch: Math.floor(this.step / this.planner.stepsPerEpoch), numel: this.core.weights.length });
      this.weightsChunks = { version, chunks: encodeBinaryMessage(meta, this.core.weights, { maxPayload: maxPayloadOf(this.deps.nc) }) };
    }
    // Sent once per version: receivers reject a repeated transfer as a duplicate (state replies cover losses).
    if (this.broadcastVersion === version) return;
    this.broadcastVersion = version;
    let bytes = 0;
    for (const c of this.weightsChunks.chunks) {
      this.deps.nc.publish(this.subj.weights, c);
      bytes += c.length;
    }
    this.obs.gradientBytes?.('out', bytes);
  }

  private publishPlan(): void {
    const round = this.round;
    if (round === null) return;
    const parts = round.pending().flatMap((p) => p.assigned.map((w) => ({ part: p.part, worker: w, attempt: p.attempt, indices: Array.from(p.indices) })));
    const m = createMessage(MSG.step, this.env(), { epoch: round.epoch, weightsVersion: round.step, globalCount: round.globalCount, parts, deadlineMs: Math.round(this.o.stepTimeout * 1000) });
    this.deps.nc.publish(this.subj.step, encodeMessage(m));
  }

  private env() {
    return { job: this.o.job, term: this.term, step: this.step, sender: this.id };
  }

  // ---- inbound ---------------------------------------------------------------

  private subscribe(nc: NatsConnection): void {
    const gradRx = new BinaryReceiver({
      accept: [MSG.grad],
      ttlMs: Math.max(5000, this.o.stepTimeout * 1000),
      // A transfer that never completes (lost chunks) is counted, not silently dropped; the part is re-requested.
      onEvict: (info) => this.reject(null, workerFromSubject(this.subj, info.source), 'incomplete'),
    });
    this.gradRx = gradRx;
    this.subs.push(
      nc.subscribe(this.subj.join, { callback: (err, msg) => (err ? undefined : this.onJoin(msg)) }),
      nc.subscribe(this.subj.state, { callback: (err, msg) => (err ? undefined : this.onState(msg)) }),
      nc.subscribe(this.subj.hbAll, { callback: (err, msg) => (err ? undefined : this.onWorkerHeartbeat(msg)) }),
      nc.subscribe(this.subj.gradAll, {
        callback: (err, msg) => {
          if (err) return;
          const from = workerFromSubject(this.subj, msg.subject);
          try {
            const got = gradRx.push(msg.data, msg.subject);
            if (got !== null) this.onGrad(got.meta, got.payload, got.frameBytes, from);
          } catch (e) {
            this.reject(e, from);
          }
        },
      }),
    );
  }

  /** Counts, logs (once per sender and reason per minute) and drops a bad message. */
  private reject(err: unknown, sender: string | undefined, reason?: string): void {
    const r = reason ?? (err instanceof CodecError || err instanceof ProtocolError ? err.reason : 'internal');
    this.obs.rejected?.(r, sender);
    const key = `${sender ?? '?'}:${r}`;
    const last = this.rejectLogged.get(key) ?? 0;
    if (Date.now() - last > 60_000) {
      this.rejectLogged.set(key, Date.now());
      this.deps.log.warn({ err, sender, reason: r }, 'rejected a message');
    }
  }

  private onJoin(msg: Msg): void {
    const reply = (data: Uint8Array): void => {
      if (msg.reply !== undefined && msg.reply !== '') this.deps.nc.publish(msg.reply, data);
    };
    try {
      const m = parseMessage(msg.data);
      if (m.type !== MSG.join) throw new ProtocolError('unexpected-type', `expected a join request on ${this.subj.join}, got ${m.type}`);
      if (m.job !== this.o.job) throw new ProtocolError('wrong-job', `join for job ${m.job} reached job ${this.o.job}`);
      if (RESERVED_WORKER_IDS.includes(m.sender)) throw new ProtocolError('reserved-id', `worker id '${m.sender}' is reserved`);
      const info = { host: m.host, pid: m.pid, backend: m.backend, backendVersion: m.backendVersion, device: m.device, ...(m.metricsPort === undefined ? {} : { metricsPort: m.metricsPort }) };
      const previousJoin = this.membership.get(m.sender)?.lastJoinAt;
      const { member, rejoined } = this.membership.join(m.sender, info);
      const ack = createMessage(MSG.joinAck, this.env(), { rank: member.rank, workerId: member.id, accepted: true, config: { ...this.jobConfig }, weightsVersion: this.step, maxPayload: maxPayloadOf(this.deps.nc) });
      reply(encodeMessage(ack));
      // Requests a worker retried while its link was down arrive together when it comes back:
      // each gets its ack (the worker waits on the newest), but a live member joining again
      // within a heartbeat timeout is retrying, not rejoining: no log line, no re-sent plan.
      if (rejoined && previousJoin !== undefined && Date.now() - previousJoin < this.o.heartbeatTimeout * 1000) {
        this.deps.log.debug({ worker: member.id }, 'repeated join request answered');
        return;
      }
      this.deps.log.info({ worker: member.id, rank: member.rank, host: member.host, backend: member.backend, rejoined }, rejoined ? 'worker rejoined' : 'worker joined');
      this.obs.workerJoined?.(member, rejoined);
      this.obs.membersChanged?.(this.membership.live());
      this.heartbeat();
      // A member joining again (a restarted process under the same id, a client that lost
      // its connection) may have lost the plan and its results: ask again now rather than
      // waiting for its idle heartbeat. Parts are idempotent, so a repeat costs nothing.
      const open = rejoined && this.round !== null ? this.round.openFor(member.id) : [];
      if (open.length > 0) {
        for (const p of open) {
          p.attempt += 1;
          p.sentAt = Date.now();
        }
        this.publishPlan();
      }
      this.notify();
    } catch (err) {
      this.reject(err, undefined);
      try {
        reply(encodeMessage(makeErrorMessage(this.env(), err)));
      } catch {
        // No reply subject, or the broker is away: the worker retries.
      }
    }
  }

  private onState(msg: Msg): void {
    try {
      const m = parseMessage(msg.data);
      if (m.type !== MSG.state) throw new ProtocolError('unexpected-type', `expected a state request, got ${m.type}`);
      if (m.job !== this.o.job) throw new ProtocolError('wrong-job', `state request for job ${m.job} reached job ${this.o.job}`);
      if (msg.reply === undefined || msg.reply === '') throw new ProtocolError('schema', 'state request without a reply subject');
      if (this.weightsChunks?.version !== this.step) {
        const meta = createMessage(MSG.weights, this.env(), { version: this.step, epoch: Math.floor(this.step / this.planner.stepsPerEpoch), numel: this.core.weights.length });
        this.weightsChunks = { version: this.step, chunks: encodeBinaryMessage(meta, this.core.weights, { maxPayload: maxPayloadOf(this.deps.nc) }) };
      }
      for (const c of this.weightsChunks.chunks) this.deps.nc.publish(msg.reply, c);
      this.membership.touch(m.sender);
    } catch (err) {
      this.reject(err, undefined);
    }
  }

  private onWorkerHeartbeat(msg: Msg): void {
    const from = workerFromSubject(this.subj, msg.subject);
    if (from === undefined) {
      // hb.coord is our own; anything else under hb.* carries an invalid worker token.
      if (msg.subject !== this.subj.hbCoord) this.reject(null, undefined, 'sender-mismatch');
      return;
    }
    try {
      const m = parseMessage(msg.data);
      if (m.sender !== from) throw new ProtocolError('sender-mismatch', `message on ${msg.subject} claims sender ${m.sender}`);
      if (m.job !== this.o.job) throw new ProtocolError('wrong-job', `message on ${msg.subject} is for job ${m.job}`);
      if (m.type === MSG.leave) {
        const gone = this.membership.remove(from, false);
        if (gone !== undefined) {
          this.deps.log.info({ worker: from, reason: m.reason }, 'worker left');
          this.obs.membersChanged?.(this.membership.live());
          this.reassignFrom(from);
        }
        return;
      }
      if (m.type !== MSG.hb) throw new ProtocolError('unexpected-type', `expected a heartbeat on ${msg.subject}, got ${m.type}`);
      if (m.term !== this.term) return; // a worker that has not rejoined yet; our heartbeat tells it to
      const status = m.status;
      this.membership.heartbeat(from, { status, partsDone: m.partsDone, lastPartSeconds: m.lastPartSeconds });
    } catch (err) {
      this.reject(err, from);
    }
  }

  private onGrad(meta: GradMessage, payload: Float32Array, frameBytes: number, from: string | undefined): void {
    const round = this.round;
    const sender = meta.sender;
    if (from !== sender) return this.reject(null, from, 'sender-mismatch');
    if (!this.membership.has(sender)) return this.reject(null, sender, 'unknown-worker');
    this.membership.touch(sender);
    if (meta.term !== this.term) return this.reject(null, sender, 'stale-term');
    if (round === null || meta.step !== round.step) return this.reject(null, sender, 'stale-step');
    const part = round.get(meta.part);
    if (part === undefined) return this.reject(null, sender, 'wrong-part');
    if (!part.assigned.includes(sender)) return this.reject(null, sender, 'unassigned');
    if (part.result !== null) return this.reject(null, sender, 'duplicate');
    if (meta.weightsVersion !== round.step) return this.reject(null, sender, 'stale-weights');
    if (meta.count !== part.indices.length) return this.reject(null, sender, 'wrong-count');
    if (meta.numel !== this.core.weights.length) return this.reject(null, sender, 'wrong-shape');
    part.result = { part: part.part, count: meta.count, grad: Float32Array.from(payload), loss: meta.lossSums };
    part.doneBy = sender;
    part.seconds = (Date.now() - part.startedAt) / 1000;
    this.partMeta.set(part.part, { computeSeconds: meta.computeSeconds, encodeSeconds: meta.encodeSeconds ?? 0, worker: sender, roundTrip: part.seconds });
    this.gradBytesIn += frameBytes;
    this.obs.gradientBytes?.('in', frameBytes);
    if (round.complete()) this.notify();
  }

  // ---- recovery ----------------------------------------------------------------

  /** Moves the open parts of a worker that is gone to live workers (least loaded first). */
  private reassignFrom(gone: string): void {
    const round = this.round;
    if (round === null) return;
    let changed = false;
    for (const p of round.pending()) {
      if (!p.assigned.includes(gone)) continue;
      p.assigned = p.assigned.filter((w) => w !== gone);
      if (p.assigned.length > 0) continue;
      const target = this.pickWorker(round, new Set());
      if (target === undefined) continue; // paused until someone joins; tick() retries
      p.assigned = [target];
      p.attempt += 1;
      p.sentAt = Date.now();
      p.startedAt = Date.now();
      changed = true;
      this.deps.log.info({ step: round.step, part: p.part, from: gone, to: target }, 'part reassigned');
    }
    if (changed) this.publishPlan();
  }

  private pickWorker(round: StepRound, exclude: Set<string>): string | undefined {
    const live = this.membership.live().filter((m) => !exclude.has(m.id));
    live.sort((a, b) => round.openFor(a.id).length - round.openFor(b.id).length || a.rank - b.rank);
    return live[0]?.id;
  }

  private tick(): void {
    this.gradRx?.sweep();
    for (const m of this.membership.sweep()) this.onLost(m, `no heartbeat for ${this.o.heartbeatTimeout}s`);
    const round = this.round;
    if (round === null) return;
    const now = Date.now();
    let changed = false;
    for (const p of round.pending()) {
      // Orphaned parts (their workers are gone) go to whoever is live.
      if (p.assigned.length === 0) {
        const target = this.pickWorker(round, new Set());
        if (target !== undefined) {
          p.assigned = [target];
          p.attempt += 1;
          p.sentAt = now;
          p.startedAt = now;
          changed = true;
        }
        continue;
      }
      // A worker that reports idle after we asked it never got the plan, or its result was lost: ask again.
      const grace = 2 * this.hbIntervalMs;
      const idleSinceAsked = p.assigned.some((w) => (this.membership.get(w)?.lastIdleAt ?? 0) > p.sentAt + grace);
      if (idleSinceAsked) {
        this.deps.log.debug({ step: round.step, part: p.part, workers: p.assigned }, 'assigned worker idle: plan re-sent');
        p.attempt += 1;
        p.sentAt = now;
        changed = true;
        continue;
      }
      // Missing the step deadline counts as lost.
      if (now - p.sentAt > this.o.stepTimeout * 1000) {
        for (const w of [...p.assigned]) {
          const m = this.membership.remove(w, true);
          if (m !== undefined) this.onLost(m, `missed the ${this.o.stepTimeout}s step deadline`);
        }
        continue;
      }
      // Straggler: a backup copy to a worker with nothing left to do; first valid result wins.
      const median = round.medianSeconds();
      const elapsed = (now - p.startedAt) / 1000;
      if (!p.backedUp && median !== undefined && elapsed > this.o.stragglerFactor * median && elapsed > 0.2) {
        const busy = new Set(p.assigned);
        const idle = this.membership.live().filter((m) => !busy.has(m.id) && round.openFor(m.id).length === 0);
        const backup = idle[0];
        if (backup !== undefined) {
          p.assigned.push(backup.id);
          p.backedUp = true;
          changed = true;
          this.obs.straggler?.(p.part, p.assigned[0] ?? '', backup.id);
          this.deps.log.info({ step: round.step, part: p.part, slow: p.assigned[0], backup: backup.id, elapsed, median }, 'straggler: backup copy sent');
        }
      }
    }
    if (changed) this.publishPlan();
  }

  private onLost(m: Member, why: string): void {
    this.deps.log.warn({ worker: m.id, rank: m.rank, why }, 'worker lost');
    this.obs.workerLost?.(m, why);
    this.obs.membersChanged?.(this.membership.live());
    this.reassignFrom(m.id);
    this.notify();
  }

  private heartbeat(): void {
    if (this.deps.nc.isClosed()) return;
    const status = this.stopping ? 'stopping' : this.paused ? 'paused' : this.round !== null ? 'busy' : 'idle';
    const m = createMessage(MSG.hb, this.env(), { status, members: this.membership.live().map((x) => x.id) });
    this.deps.nc.publish(this.subj.hbCoord, encodeMessage(m));
  }

  private async shutdown(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    const { nc } = this.deps;
    if (!nc.isClosed()) {
      const stop = encodeMessage(createMessage(MSG.ctl, this.env(), { action: 'stop', reason: this.stopping ? this.stopReason : 'training finished' }));
      // Core NATS may drop one copy; a stop is cheap to repeat.
      for (let i = 0; i < 3; i++) {
        nc.publish(this.subj.ctl, stop);
        await new Promise((r) => setTimeout(r, 50));
      }
      await nc.flush().catch(() => undefined);
    }
    for (const s of this.subs) s.unsubscribe();
    this.obs.finished?.();
  }
}
