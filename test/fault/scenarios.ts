// The fault scenarios, shared by the fault suite (one test file each) and the
// faults benchmark (one table row each). Every scenario drives real processes
// (nats-server, coordinator, workers from dist/bin/lockstep.js) with a seeded
// schedule, injects its faults when the logs say the run is where the schedule
// wants it, and returns what happened: the run's result, the coverage proof
// (each applied step exactly its global batch, each epoch every image once), the
// relative difference of the final weights to the uninterrupted in-process run
// with the same seed, and per fault the time until the run stepped again.
// Scenario-specific facts (who was lost, what was reassigned, what the metrics
// said) come back in `facts` for the tests to assert on.
import assert from 'node:assert/strict';
import { rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import { MSG, createMessage, encodeMessage } from '../../shared/protocol/messages.js';
import { subjectsFor } from '../../shared/protocol/subjects.js';
import { relativeDifference } from '../../shared/train/core.js';
import { Mulberry32 } from '../../shared/train/rng.js';
import type { TrainResult } from '../../shared/train/result.js';
import { stepDirName } from '../../shared/checkpoint/store.js';
import {
  Cluster,
  checkpointWeights,
  createNetnsLink,
  finalWeights,
  logIs,
  metricValue,
  netnsAvailable,
  referenceRun,
  sleep,
  spawnLockstep,
  until,
  verifyCoverage,
  type CoverageReport,
  type LogLine,
  type NetnsLink,
  type Proc,
  type ReferenceRun,
} from '../helpers/cluster.js';
import { freePort, startNatsServer, type NatsServerHandle } from '../helpers/nats-server.js';

/** Training images and global batch of every scenario: 8 full steps per epoch. */
export const IMAGES = 256;
export const BATCH = 32;

export function trainFlags(steps: number, seed: number): string[] {
  return ['--model', 'vae', '--arch', 'mlp', '--hidden-units', '32', '--train-limit', String(IMAGES), '--batch-size', String(BATCH), '--steps', String(steps), '--seed', String(seed)];
}

export interface FaultEvent {
  kind: string;
  target: string;
  /** Unix ms when it was injected. */
  at: number;
  /** Recovery is counted from the first step applied after this time (default: `at`). */
  progressAfter?: number;
}

export interface ScenarioContext {
  seed: number;
  quick: boolean;
  onProgress?: (s: string) => void;
}

export interface ScenarioResult {
  name: string;
  /** Set when the scenario could not run here (e.g. no network namespaces); nothing else is meaningful then. */
  skipped?: string;
  faults: FaultEvent[];
  /** Per fault: seconds from the fault to the next applied step; NaN if the run never stepped after it. */
  recoverSeconds: number[];
  result: TrainResult;
  reference: TrainResult;
  /** ||reference - final|| / ||reference|| over all weights. */
  relDiff: number;
  bitwise: boolean;
  coverage: CoverageReport;
  steps: number;
  wallSeconds: number;
  facts: Record<string, unknown>;
}

// One reference per flag set per process (the benchmark runs several scenarios with the same flags).
const references = new Map<string, Promise<ReferenceRun>>();
function reference(train: string[]): Promise<ReferenceRun> {
  const key = train.join(' ');
  let r = references.get(key);
  if (r === undefined) {
    r = referenceRun(train);
    references.set(key, r);
    r.catch(() => references.delete(key));
  }
  return r;
}

const stepApplied = (min: number) => (l: LogLine): boolean => l.msg === 'step applied' && (l.step as number) >= min;
const planFor = (min: number) => (l: LogLine): boolean => l.msg === 'plan received' && (l.step as number) >= min && Array.isArray(l.parts) && l.parts.length > 0;

function recoverSeconds(applied: LogLine[], faults: FaultEvent[]): number[] {
  return faults.map((f) => {
    const from = f.progressAfter ?? f.at;
    const next = applied.find((l) => l.time > from);
    return next === undefined ? NaN : (next.time - f.at) / 1000;
  });
}

interface FinishInput {
  name: string;
  steps: number;
  seed: number;
  faults: FaultEvent[];
  started: number;
  facts: Record<string, unknown>;
  ref: ReferenceRun;
  result: TrainResult;
  coverage: CoverageReport;
  applied: LogLine[];
}

function finish(f: FinishInput): ScenarioResult {
  const weights = finalWeights(f.result);
  assert.equal(weights.length, f.ref.weights.length, 'final weights and reference weights differ in size');
  let bitwise = true;
  for (let i = 0; i < weights.length && bitwise; i++) if (weights[i] !== f.ref.weights[i]) bitwise = false;
  return {
    name: f.name,
    faults: f.faults,
    recoverSeconds: recoverSeconds(f.applied, f.faults),
    result: f.result,
    reference: f.ref.result,
    relDiff: relativeDifference(f.ref.weights, weights),
    bitwise,
    coverage: f.coverage,
    steps: f.steps,
    wallSeconds: (Date.now() - f.started) / 1000,
    facts: f.facts,
  };
}

/** Runs `body` against a fresh cluster and turns the run into a ScenarioResult; everything is stopped afterwards. */
async function withCluster(
  name: string,
  ctx: ScenarioContext,
  opts: { steps: number; heartbeatTimeout: number; coordinatorFlags: string[]; checkpointEvery?: number; nats?: NatsServerHandle; natsArgs?: string[]; runTimeoutMs?: number },
  body: (c: Cluster, rng: Mulberry32, faults: FaultEvent[], facts: Record<string, unknown>) => Promise<void>,
  /** Runs after the result, before the cluster's files are removed. */
  after?: (c: Cluster, facts: Record<string, unknown>) => void,
): Promise<ScenarioResult> {
  const train = trainFlags(opts.steps, ctx.seed);
  ctx.onProgress?.(`${name}: reference run`);
  const ref = await reference(train);
  const started = Date.now();
  const c = await Cluster.start({ train, heartbeatTimeout: opts.heartbeatTimeout, coordinatorFlags: opts.coordinatorFlags, name, ...(opts.checkpointEvery !== undefined ? { checkpointEvery: opts.checkpointEvery } : {}), ...(opts.nats ? { nats: opts.nats } : {}), ...(opts.natsArgs ? { natsArgs: opts.natsArgs } : {}) });
  const faults: FaultEvent[] = [];
  const facts: Record<string, unknown> = {};
  try {
    ctx.onProgress?.(`${name}: running`);
    await body(c, new Mulberry32(ctx.seed ^ 0x5ca1ab1e), faults, facts);
    const result = await c.result(opts.runTimeoutMs ?? 90_000);
    const coverage = verifyCoverage(c, { seed: ctx.seed, datasetSize: IMAGES, batchSize: BATCH, totalSteps: opts.steps });
    facts.rejected = rejectionsBySender(c.coordinatorLines());
    facts.lost = c.coordinatorLines().filter((l) => l.msg === 'worker lost').map((l) => l.worker);
    // Joins per worker id over the whole run (all coordinator terms): a rejoin storm shows up here.
    const joins: Record<string, number> = {};
    for (const l of c.coordinatorLines()) if ((l.msg === 'worker joined' || l.msg === 'worker rejoined') && typeof l.worker === 'string') joins[l.worker] = (joins[l.worker] ?? 0) + 1;
    facts.joins = joins;
    facts.reassigned = c.coordinatorLines()
      .filter((l) => l.msg === 'part reassigned')
      .map((l) => ({ step: l.step, part: l.part, from: l.from, to: l.to, creditedTo: creditsOf(c.coordinatorLines(), l.step as number).get(l.part as number) }));
    after?.(c, facts);
    return finish({ name, steps: opts.steps, seed: ctx.seed, faults, started, facts, ref, result, coverage, applied: c.coordinatorLines().filter((l) => l.msg === 'step applied') });
  } finally {
    await c.stop();
  }
}

function rejectionsBySender(lines: LogLine[]): Array<{ sender: unknown; reason: unknown }> {
  return lines.filter((l) => l.msg === 'rejected a message').map((l) => ({ sender: l.sender, reason: l.reason }));
}

/** The worker credited with each part of step `step` in the final lineage. */
export function creditsOf(lines: LogLine[], step: number): Map<number, string> {
  const recs = lines.filter((l) => l.msg === 'step applied' && l.step === step).sort((a, b) => (a.term as number) - (b.term as number));
  const last = recs[recs.length - 1];
  const out = new Map<number, string>();
  for (const p of (last?.coverage as Array<{ part: number; worker: string }> | undefined) ?? []) out.set(p.part, p.worker);
  return out;
}

// ---- scenarios -----------------------------------------------------------------

/**
 * A clean distributed run (no faults) with checkpoints after every step; returns a reader of
 * its weights after a given step and the cleanup. The faulty run's weights after the step
 * whose part was recomputed must be bitwise these: same images, same parts, same order.
 */
async function cleanDistributedRun(ctx: ScenarioContext, steps: number, workers: string[], flags: string[]): Promise<{ weightsAfter(step: number): Float32Array; stop(): Promise<void> }> {
  const c = await Cluster.start({ train: trainFlags(steps, ctx.seed), heartbeatTimeout: 1, checkpointEvery: 1, coordinatorFlags: flags, name: 'clean' });
  try {
    for (const id of workers) c.startWorker(id);
    c.startCoordinator();
    await c.result(90_000);
  } catch (err) {
    await c.stop();
    throw err;
  }
  return { weightsAfter: (step) => checkpointWeights(join(c.checkpointDir, stepDirName(step))), stop: () => c.stop() };
}

/** kill -9 of workers while they hold a part: the step completes, the part is recomputed elsewhere. */
export async function workerKill(ctx: ScenarioContext): Promise<ScenarioResult> {
  const kills = ctx.quick ? 1 : 2;
  const steps = 24;
  const ids = ['w0', 'w1', 'w2'];
  const flags = ['--wait-workers', '3', '--keep-checkpoints', '1000'];
  ctx.onProgress?.('worker-kill: clean distributed run');
  const clean = await cleanDistributedRun(ctx, steps, ids, flags);
  const killedAt = new Map<string, number>();
  try {
    return await withCluster(
      'worker-kill',
      ctx,
      { steps, heartbeatTimeout: 1, checkpointEvery: 1, coordinatorFlags: flags },
      async (c, rng, faults, facts) => {
        for (const id of ids) c.startWorker(id);
        c.startCoordinator();
        const victims: string[] = [];
        for (let i = 0; i < kills; i++) {
          const k = 3 + i * 8 + rng.nextInt(5);
          const alive = ids.filter((id) => !victims.includes(id));
          const victim = alive[rng.nextInt(alive.length)] as string;
          const w = c.worker(victim);
          // Killed the moment it has received a plan that gives it a part: it dies holding it.
          const plan = await w.waitFor(planFor(k), 60_000, `a plan for ${victim} at step >= ${k}`);
          await w.kill();
          const at = Date.now();
          killedAt.set(victim, at);
          faults.push({ kind: 'worker kill -9', target: victim, at });
          victims.push(victim);
          const moved = await c.coordinator.waitFor((l) => l.msg === 'part reassigned' && l.from === victim, 30_000, `${victim}'s part reassigned`);
          ctx.onProgress?.(`worker-kill: killed ${victim} at step ${String(plan.step)}; part ${String(moved.part)} of step ${String(moved.step)} went to ${String(moved.to)}`);
        }
        facts.victims = victims;
      },
      (c, facts) => {
        // The first step after the first kill in which a part held by the dead worker was computed
        // by another (a straggler backup copy, or the reassignment after the heartbeat timeout).
        const [victim, at] = [...killedAt][0] as [string, number];
        const rescue = c.coordinatorLines().find((l) => l.time > at && ((l.msg === 'straggler: backup copy sent' && l.slow === victim) || (l.msg === 'part reassigned' && l.from === victim)));
        if (rescue === undefined) throw new Error(`no part of ${victim} was recomputed`);
        const step = rescue.step as number;
        const part = rescue.part as number;
        facts.recomputed = { step, part, by: creditsOf(c.coordinatorLines(), step).get(part) };
        const mine = checkpointWeights(join(c.checkpointDir, stepDirName(step + 1)));
        const theirs = clean.weightsAfter(step + 1);
        facts.recomputedStepBitwise = mine.length === theirs.length && mine.every((v, i) => v === theirs[i]);
        facts.recomputedStepRelDiff = relativeDifference(theirs, mine);
      },
    );
  } finally {
    await clean.stop();
  }
}

/** SIGSTOP of a worker mid-part, SIGCONT later: a backup copy of its part wins; the late result is discarded. */
export async function straggler(ctx: ScenarioContext): Promise<ScenarioResult> {
  const hb = 4;
  return withCluster('straggler', ctx, { steps: 24, heartbeatTimeout: hb, coordinatorFlags: ['--wait-workers', '2', '--straggler-factor', '3'] }, async (c, rng, faults, facts) => {
    c.startWorker('w0');
    const slow = c.startWorker('w1');
    c.startCoordinator();
    const k = 4 + rng.nextInt(8);
    const stopMs = 1500;
    await slow.waitFor(planFor(k), 60_000, `a plan for w1 at step >= ${k}`);
    slow.signal('SIGSTOP');
    const at = Date.now();
    faults.push({ kind: 'SIGSTOP straggler', target: 'w1', at });
    const backup = await c.coordinator.waitFor((l) => l.msg === 'straggler: backup copy sent' && l.slow === 'w1' && l.time >= at, 10_000, 'a backup copy of w1 part');
    const applied = await c.coordinator.waitFor((l) => l.msg === 'step applied' && l.step === backup.step, 10_000, `step ${String(backup.step)} applied`);
    facts.stragglerStep = backup.step;
    facts.stragglerPart = backup.part;
    facts.backupWorker = backup.backup;
    facts.stepSecondsAfterStop = (applied.time - at) / 1000;
    facts.stragglersMetric = metricValue(await c.metrics(), 'lockstep_stragglers_total');
    await sleep(Math.max(0, at + stopMs - Date.now()));
    slow.signal('SIGCONT');
    facts.stoppedSeconds = (Date.now() - at) / 1000;
    facts.heartbeatTimeout = hb;
    // After SIGCONT the slow worker carries on: it publishes its stale part and computes new ones.
    const resumedPart = await slow.waitFor((l) => l.msg === 'part published' && l.time > at + stopMs && (l.step as number) > (backup.step as number), 30_000, 'w1 computing again after SIGCONT').catch(() => null);
    facts.slowWorkerComputedAgain = resumedPart !== null;
    facts.slowWorkerPid = slow.pid;
  });
}

/** A worker joins mid-run: from the next step boundary the global batch is split over one more worker. */
export async function workerJoin(ctx: ScenarioContext): Promise<ScenarioResult> {
  return withCluster('worker-join', ctx, { steps: 24, heartbeatTimeout: 8, coordinatorFlags: ['--wait-workers', '1'] }, async (c, rng, faults, facts) => {
    const first = c.startWorker('w0');
    c.startCoordinator();
    const k = 4 + rng.nextInt(8);
    // Holding w0 mid-part keeps step k open while the newcomer starts (tfjs start-up takes seconds);
    // the heartbeat timeout (8 s) is longer than the hold, so w0 is never declared lost.
    await first.waitFor(planFor(k), 60_000, `a plan for w0 at step >= ${k}`);
    first.signal('SIGSTOP');
    const held = Date.now();
    const joiner = c.startWorker('w1');
    faults.push({ kind: 'worker joins', target: 'w1', at: Date.now() });
    const joined = await c.coordinator.waitFor(logIs('worker joined', { worker: 'w1' }), 60_000, 'w1 joined');
    first.signal('SIGCONT');
    facts.heldSeconds = (Date.now() - held) / 1000;
    facts.joinedAt = joined.time;
    facts.joinerPid = joiner.pid;
    const firstPart = await joiner.waitFor((l) => l.msg === 'part published', 30_000, 'w1 first part');
    facts.joinerFirstStep = firstPart.step;
  });
}

/** kill -9 of the coordinator; a new one resumes from the newest checkpoint with a new term; workers keep their processes. */
export async function coordinatorRestart(ctx: ScenarioContext): Promise<ScenarioResult> {
  return withCluster('coordinator-restart', ctx, { steps: 24, heartbeatTimeout: 1.5, coordinatorFlags: ['--wait-workers', '2'] }, async (c, rng, faults, facts) => {
    const workers = [c.startWorker('w0'), c.startWorker('w1')];
    const first = c.startCoordinator();
    const k = 5 + rng.nextInt(12);
    const pidsBefore = workers.map((w) => w.pid);
    const killedAfter = await first.waitFor(stepApplied(k), 60_000, `step ${k} applied`);
    await first.kill();
    const at = Date.now();
    faults.push({ kind: 'coordinator kill -9', target: 'coordinator', at });
    await sleep(rng.nextInt(500));
    const second = c.restartCoordinator();
    const starts = await second.waitFor(logIs('coordinator starts'), 60_000, 'the new coordinator starting');
    const resumed = second.lines.find((l) => l.msg === 'resuming from checkpoint');
    facts.killedAfterStep = killedAfter.step;
    facts.oldTerm = first.lines.find((l) => l.msg === 'coordinator starts')?.term;
    facts.newTerm = starts.term;
    facts.resumedFromStep = resumed?.step ?? 0;
    facts.pidsBefore = pidsBefore;
    // Every worker rejoins the new term in its original process.
    for (const w of workers) await w.waitFor((l) => l.msg === 'joined' && l.term === starts.term, 30_000, `${w.name} rejoining term ${String(starts.term)}`);
    // The old coordinator's messages, still in flight somewhere, must be ignored: a plan, a stop and a heartbeat of the old term.
    const injectedAt = Date.now();
    await injectStaleTerm(c.nats.url, facts.oldTerm as number);
    await second.waitFor((l) => l.msg === 'step applied' && l.time > injectedAt + 200, 30_000, 'a step after the stale-term messages');
    facts.staleTermComputed = workers.some((w) => w.lines.some((l) => l.msg === 'part published' && l.term === facts.oldTerm && l.time >= injectedAt));
    facts.staleTermObeyed = workers.some((w) => w.lines.some((l) => l.time >= injectedAt && (l.msg === 'worker stopping' ? String(l.reason).includes('stale') : l.msg === 'joining')));
    facts.pidsAfter = workers.map((w) => w.pid);
    facts.workersAlive = workers.every((w) => w.alive());
    facts.workerProcessesStarted = c.allWorkers.length;
    facts.workerLogPids = workers.map((w) => [...new Set(w.lines.map((l) => l.pid))]);
  });
}

/** Publishes a step plan, a stop and a heartbeat of an old coordinator term (what a dead coordinator may leave in flight). */
async function injectStaleTerm(url: string, term: number): Promise<void> {
  const nc = await connect({ servers: url, name: 'fault-stale-term' });
  try {
    const subj = subjectsFor('lockstep');
    const env = { job: 'lockstep', term, step: 0, sender: 'coord' };
    const indices = Array.from({ length: BATCH }, (_, i) => i);
    const parts = [
      { part: 0, worker: 'w0', attempt: 9, indices: indices.slice(0, BATCH / 2) },
      { part: 1, worker: 'w1', attempt: 9, indices: indices.slice(BATCH / 2) },
    ];
    nc.publish(subj.step, encodeMessage(createMessage(MSG.step, env, { epoch: 0, weightsVersion: 0, globalCount: BATCH, parts })));
    nc.publish(subj.hbCoord, encodeMessage(createMessage(MSG.hb, env, { status: 'busy', members: [] })));
    nc.publish(subj.ctl, encodeMessage(createMessage(MSG.ctl, env, { action: 'stop', reason: 'stale term' })));
    await nc.flush();
  } finally {
    await nc.close();
  }
}

/** nats-server killed mid-run and restarted on the same port: clients reconnect, lost messages are recovered. */
export async function natsRestart(ctx: ScenarioContext): Promise<ScenarioResult> {
  return withCluster('nats-restart', ctx, { steps: 24, heartbeatTimeout: 1, coordinatorFlags: ['--wait-workers', '2'] }, async (c, rng, faults, facts) => {
    const procs = [c.startWorker('w0'), c.startWorker('w1'), c.startCoordinator()];
    const k = 4 + rng.nextInt(10);
    const downMs = 300 + rng.nextInt(1200);
    const before = await c.coordinator.waitFor(stepApplied(k), 60_000, `step ${k} applied`);
    c.nats.kill('SIGKILL');
    const at = Date.now();
    faults.push({ kind: 'nats-server kill -9 + restart', target: 'nats-server', at });
    await sleep(downMs);
    await c.nats.restart();
    facts.killedAfterStep = before.step;
    facts.downSeconds = (Date.now() - at) / 1000;
    await c.coordinator.waitFor((l) => l.msg === 'step applied' && l.time > at, 60_000, 'a step after the broker restart');
    facts.processesAlive = procs.every((p) => p.alive());
    facts.pids = procs.map((p) => p.pid);
    facts.reconnected = procs.map((p) => p.lines.some((l) => l.msg === 'NATS connection status' && l.status === 'reconnect'));
  });
}

function clusterConfig(name: string, clusterPort: number, monitorPort: number, peers: number[]): string {
  return [`server_name: ${name}`, `http: 127.0.0.1:${monitorPort}`, 'cluster {', '  name: lockstep-fault', `  listen: 127.0.0.1:${clusterPort}`, `  routes: [${peers.map((p) => `nats-route://127.0.0.1:${p}`).join(', ')}]`, '}', ''].join('\n');
}

/** A 3-server NATS cluster with routes on loopback; the server one worker is attached to is killed. */
export async function natsCluster(ctx: ScenarioContext): Promise<ScenarioResult> {
  const clusterPorts = [await freePort(), await freePort(), await freePort()];
  const monitorPorts = [await freePort(), await freePort(), await freePort()];
  const servers: NatsServerHandle[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const peers = clusterPorts.filter((_, j) => j !== i);
      servers.push(await startNatsServer({ config: clusterConfig(`fault-${'abc'[i] as string}`, clusterPorts[i] as number, monitorPorts[i] as number, peers) }));
    }
    // Wait for the full mesh: every server routed to the two others.
    for (const port of monitorPorts) {
      await until(
        async () => {
          const r = (await fetch(`http://127.0.0.1:${port}/routez`).then((x) => x.json()).catch(() => ({}))) as { num_routes?: number };
          return (r.num_routes ?? 0) >= 2 ? true : undefined;
        },
        20_000,
        'the NATS route mesh',
        100,
      );
    }
    const [a, b, cc] = servers as [NatsServerHandle, NatsServerHandle, NatsServerHandle];
    // --min-workers 2: the run cannot finish unless the worker of the killed server fails over.
    return await withCluster('nats-cluster', ctx, { steps: 24, heartbeatTimeout: 1.5, coordinatorFlags: ['--wait-workers', '2', '--min-workers', '2'], nats: a }, async (c, rng, faults, facts) => {
      const moved = c.startWorker('w0', { url: b.url });
      c.startWorker('w1', { url: cc.url });
      c.startCoordinator();
      const k = 4 + rng.nextInt(8);
      await c.coordinator.waitFor(stepApplied(k), 60_000, `step ${k} applied`);
      b.kill('SIGKILL');
      const at = Date.now();
      faults.push({ kind: 'kill -9 of the NATS server a worker is attached to', target: 'nats-b (w0)', at });
      const re = await moved.waitFor((l) => l.msg === 'NATS connection status' && l.status === 'reconnect' && l.time > at, 30_000, 'w0 reconnecting to another server');
      facts.reconnectedTo = re.data;
      facts.reconnectSeconds = (re.time - at) / 1000;
      facts.killedServer = b.url;
      const part = await moved.waitFor((l) => l.msg === 'part published' && l.time > re.time, 30_000, 'w0 computing after failover');
      facts.firstStepAfterFailover = part.step;
      facts.workerAlive = moved.alive();
    });
  } finally {
    for (const s of servers) await s.stop();
  }
}

/** Workers in network namespaces (veth pairs); each one's link is cut and restored in turn. */
export async function netnsPartition(ctx: ScenarioContext): Promise<ScenarioResult | { name: string; skipped: string }> {
  const probe = netnsAvailable();
  if (!probe.ok) return { name: 'netns-partition', skipped: probe.why };
  const links: NetnsLink[] = [];
  try {
    links.push(createNetnsLink(0), createNetnsLink(1));
    const cuts = ctx.quick ? 1 : 2;
    // The broker listens on every address so the namespaces reach it over their veth.
    return await withCluster('netns-partition', ctx, { steps: 24, heartbeatTimeout: 1, coordinatorFlags: ['--wait-workers', '2', '--min-workers', '2'], natsArgs: ['-a', '0.0.0.0'] }, async (c, rng, faults, facts) => {
      const ws: Proc[] = links.map((l, i) => c.startWorker(`w${i}`, { url: `nats://${l.hostIp}:${c.nats.port}`, netns: l.ns }));
      c.startCoordinator();
      let k = 3 + rng.nextInt(5);
      const rejoinSeconds: number[] = [];
      for (let i = 0; i < cuts; i++) {
        const link = links[i] as NetnsLink;
        const w = ws[i] as Proc;
        await c.coordinator.waitFor(stepApplied(k), 60_000, `step ${k} applied`);
        link.cut();
        const at = Date.now();
        const cutMs = 1500 + rng.nextInt(1500);
        const fault: FaultEvent = { kind: 'veth link cut + restored', target: w.name, at };
        faults.push(fault);
        await c.coordinator.waitFor((l) => l.msg === 'worker lost' && l.worker === w.name && l.time > at, 30_000, `${w.name} declared lost`);
        await sleep(Math.max(0, at + cutMs - Date.now()));
        link.restore();
        const restoredAt = Date.now();
        const back = await c.coordinator.waitFor((l) => (l.msg === 'worker joined' || l.msg === 'worker rejoined') && l.worker === w.name && l.time > restoredAt, 60_000, `${w.name} rejoining after the link came back`);
        rejoinSeconds.push((back.time - restoredAt) / 1000);
        // With --min-workers 2 the run paused while the link was down; it resumes with the rejoin.
        fault.progressAfter = back.time;
        const last = c.coordinator.lines.filter((l) => l.msg === 'step applied').pop();
        k = ((last?.step as number | undefined) ?? k) + 2;
      }
      facts.rejoinSecondsAfterRestore = rejoinSeconds;
      facts.workersAlive = ws.every((w) => w.alive());
      facts.pausedWhileCut = c.coordinator.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('run paused'));
    });
  } finally {
    for (const l of links) l.remove();
  }
}

/** --min-workers: below it the run pauses (log line + lockstep_paused 1) instead of hanging; a joining worker resumes it. */
export async function minWorkers(ctx: ScenarioContext): Promise<ScenarioResult> {
  return withCluster('min-workers', ctx, { steps: 32, heartbeatTimeout: 1, coordinatorFlags: ['--wait-workers', '2', '--min-workers', '2'] }, async (c, rng, faults, facts) => {
    c.startWorker('w0');
    const victim = c.startWorker('w1');
    c.startCoordinator();
    const k = 4 + rng.nextInt(6);
    await c.coordinator.waitFor(stepApplied(k), 60_000, `step ${k} applied`);
    await victim.kill();
    const at = Date.now();
    const fault: FaultEvent = { kind: 'worker kill -9 below --min-workers', target: 'w1', at };
    faults.push(fault);
    const paused = await c.coordinator.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('run paused'), 30_000, 'the run pausing');
    facts.pausedLog = paused.msg;
    facts.pausedMetric = await until(async () => {
      const v = metricValue(await c.metrics(), 'lockstep_paused');
      return v === 1 ? v : undefined;
    }, 10_000, 'lockstep_paused 1');
    const whilePaused = await c.metrics();
    facts.workersMetricWhilePaused = metricValue(whilePaused, 'lockstep_workers');
    facts.failuresMetric = metricValue(whilePaused, 'lockstep_worker_failures_total');
    // Paused, not hung and not training: no step is applied while it waits.
    const stepsBefore = c.coordinator.lines.filter((l) => l.msg === 'step applied').length;
    await sleep(1000);
    facts.stepsWhilePaused = c.coordinator.lines.filter((l) => l.msg === 'step applied').length - stepsBefore;
    const joiner = c.startWorker('w2');
    const resumed = await c.coordinator.waitFor((l) => l.msg === 'run resumed', 60_000, 'the run resuming');
    fault.progressAfter = resumed.time;
    facts.resumedMetric = await until(async () => {
      const text = await c.metrics().catch(() => '');
      const v = metricValue(text, 'lockstep_paused');
      return v === 0 ? v : undefined;
    }, 10_000, 'lockstep_paused 0');
    facts.pausedSeconds = (resumed.time - paused.time) / 1000;
    facts.joinerPid = joiner.pid;
  });
}

/**
 * The launcher's supervision: `train --workers 2 --min-workers 2`; its coordinator is killed -9
 * and restarted with --resume auto while the workers keep their processes; later a worker is
 * killed -9 and restarted under the same id (the run pauses below --min-workers until it is back).
 */
export async function launcherRestart(ctx: ScenarioContext): Promise<ScenarioResult> {
  const steps = 32;
  const train = trainFlags(steps, ctx.seed);
  ctx.onProgress?.('launcher-restart: reference run');
  const ref = await reference(train);
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-launcher-'));
  const started = Date.now();
  const launcher = spawnLockstep('launcher', ['train', '--workers', '2', '--min-workers', '2', ...train, '--checkpoint-dir', join(dir, 'ck'), '--checkpoint-every', '4', '--heartbeat-timeout', '1.5', '--metrics-port', '0', '--dashboard-port', '0', '--backend', 'wasm', '--json', '--log-level', 'debug']);
  const rng = new Mulberry32(ctx.seed ^ 0x1a0c4e5);
  const faults: FaultEvent[] = [];
  const facts: Record<string, unknown> = {};
  const role = (r: string) => (l: LogLine): boolean => l.role === r;
  try {
    ctx.onProgress?.('launcher-restart: running');
    const k = 5 + rng.nextInt(10);
    const applied = await launcher.waitFor((l) => role('coordinator')(l) && l.msg === 'step applied' && (l.step as number) >= k, 60_000, `step ${k} applied`);
    const workerPidsBefore = new Map<string, number>();
    for (const l of launcher.lines) if (role('worker')(l) && typeof l.worker === 'string') workerPidsBefore.set(l.worker, l.pid);
    process.kill(applied.pid, 'SIGKILL');
    faults.push({ kind: 'coordinator kill -9 (launcher restarts it)', target: `coordinator pid ${applied.pid}`, at: Date.now() });
    facts.killedCoordinatorPid = applied.pid;
    facts.killedAfterStep = applied.step;
    facts.workerPidsBefore = Object.fromEntries(workerPidsBefore);
    const second = await launcher.waitFor((l) => role('coordinator')(l) && l.msg === 'coordinator starts' && l.pid !== applied.pid, 60_000, 'the restarted coordinator');
    // Both workers rejoin the new term from the processes they had before.
    for (const [id, pid] of workerPidsBefore) await launcher.waitFor((l) => l.msg === 'joined' && l.worker === id && l.term === second.term, 30_000, `${id} rejoining term ${String(second.term)}`).then((l) => assert.equal(l.pid, pid, `${id} rejoined from its original process`));
    facts.rejoinedFromSamePids = true;
    // Then a worker crash: the launcher restarts it under the same id.
    const resumedAt = await launcher.waitFor((l) => role('coordinator')(l) && l.pid === second.pid && l.msg === 'step applied', 60_000, 'a step of the new coordinator');
    const victimPid = workerPidsBefore.get('w1') as number;
    await launcher.waitFor((l) => l.pid === victimPid && l.msg === 'plan received' && (l.step as number) > (resumedAt.step as number), 60_000, 'w1 receiving a plan');
    process.kill(victimPid, 'SIGKILL');
    const killedWorkerAt = Date.now();
    const workerFault: FaultEvent = { kind: 'worker kill -9 (launcher restarts it)', target: `w1 pid ${victimPid}`, at: killedWorkerAt };
    faults.push(workerFault);
    const rejoined = await launcher.waitFor((l) => role('worker')(l) && l.msg === 'joined' && l.worker === 'w1' && l.pid !== victimPid, 60_000, 'w1 restarted and joined');
    facts.restartedWorkerPid = rejoined.pid;
    workerFault.progressAfter = rejoined.time;
    facts.workerRestartSeconds = (rejoined.time - killedWorkerAt) / 1000;
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([launcher.exited, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`launcher did not finish\n${launcher.tail()}`)), 90_000)))]).finally(() => clearTimeout(timer));
    assert.equal(exit.code, 0, `launcher exited ${JSON.stringify(exit)}\n${launcher.tail()}`);
    const result = JSON.parse(launcher.stdout().trim().split('\n').pop() ?? '') as TrainResult;
    const coordinator = launcher.lines.filter(role('coordinator'));
    const workers = launcher.lines.filter(role('worker'));
    const coverage = verifyCoverage({ coordinator, workers }, { seed: ctx.seed, datasetSize: IMAGES, batchSize: BATCH, totalSteps: steps });
    facts.coordinatorRestartLogged = launcher.lines.some((l) => role('launcher')(l) && typeof l.msg === 'string' && l.msg.startsWith('coordinator died'));
    facts.workerRestartLogged = launcher.lines.some((l) => role('launcher')(l) && typeof l.msg === 'string' && l.msg.startsWith('worker died'));
    facts.coordinatorPids = [...new Set(coordinator.map((l) => l.pid))];
    const pidsById = new Map<string, Set<number>>();
    for (const l of workers) if (typeof l.worker === 'string') pidsById.set(l.worker, (pidsById.get(l.worker) ?? new Set()).add(l.pid));
    facts.workerPids = Object.fromEntries([...pidsById].map(([id, set]) => [id, [...set]]));
    facts.terms = [...new Set(coordinator.filter((l) => l.msg === 'coordinator starts').map((l) => l.term))];
    facts.lost = coordinator.filter((l) => l.msg === 'worker lost').map((l) => l.worker);
    const joins: Record<string, number> = {};
    for (const l of coordinator) if ((l.msg === 'worker joined' || l.msg === 'worker rejoined') && typeof l.worker === 'string') joins[l.worker] = (joins[l.worker] ?? 0) + 1;
    facts.joins = joins;
    return finish({ name: 'launcher-restart', steps, seed: ctx.seed, faults, started, facts, ref, result, coverage, applied: coordinator.filter((l) => l.msg === 'step applied') });
  } finally {
    await launcher.kill();
    // SIGKILL of the launcher leaves its children: kill every process that logged.
    for (const pid of new Set(launcher.lines.map((l) => l.pid))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

export const SCENARIOS: ReadonlyArray<{ name: string; run: (ctx: ScenarioContext) => Promise<ScenarioResult | { name: string; skipped: string }> }> = [
  { name: 'worker-kill', run: workerKill },
  { name: 'straggler', run: straggler },
  { name: 'worker-join', run: workerJoin },
  { name: 'coordinator-restart', run: coordinatorRestart },
  { name: 'launcher-restart', run: launcherRestart },
  { name: 'nats-restart', run: natsRestart },
  { name: 'nats-cluster', run: natsCluster },
  { name: 'netns-partition', run: netnsPartition },
  { name: 'min-workers', run: minWorkers },
];

/** The assertions every scenario must pass (DESIGN.md section 2 and issue 5). */
export function assertInvariants(r: ScenarioResult, o: { maxWallSeconds: number; maxJoinsPerWorker?: number }): void {
  assert.equal(r.result.steps, r.steps, 'the run completed all its steps');
  assert.equal(r.result.samples, r.steps * BATCH, 'samples counted once per step, never twice (no double counting across faults)');
  assert.equal(r.coverage.imagesLost, 0, 'every image exactly once per epoch');
  assert.equal(r.coverage.steps, r.steps);
  assert.ok(r.coverage.epochs >= 3, `checked ${r.coverage.epochs} complete epochs`);
  assert.ok(r.relDiff <= 1e-5, `final weights within 1e-5 of the uninterrupted run: relative difference ${r.relDiff}`);
  assert.ok(r.faults.length > 0, 'faults were injected');
  for (const [i, s] of r.recoverSeconds.entries()) assert.ok(Number.isFinite(s), `fault ${i} (${r.faults[i]?.kind}) was followed by progress`);
  assert.ok(r.wallSeconds <= o.maxWallSeconds, `finished in ${r.wallSeconds.toFixed(1)} s, bound ${o.maxWallSeconds} s`);
  if (o.maxJoinsPerWorker !== undefined) {
    // No rejoin storm: every (re)join the coordinator counted, per worker id, over the whole run.
    for (const [id, n] of Object.entries(r.facts.joins as Record<string, number>)) assert.ok(n <= o.maxJoinsPerWorker, `${id} joined ${n} times (at most ${o.maxJoinsPerWorker})`);
  }
}
