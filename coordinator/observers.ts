// Adapters from the run loop's reports to metrics, the dashboard, the timeline,
// the progress bar and the log.
import type { Logger } from '../shared/logger.js';
import type { Progress } from '../shared/progress.js';
import type { TimelineWriter } from '../shared/timeline.js';
import type { CoordinatorMetrics } from './metrics.js';
import type { DashboardHub, WorkerRow } from './dashboard/hub.js';
import type { Member } from './membership.js';
import type { CoordinatorObserver, StepReport } from './observer.js';

export function metricsObserver(m: CoordinatorMetrics, model: string): CoordinatorObserver {
  // Workers with per-worker series; a worker that leaves the membership loses them, so
  // the series count stays bounded by the live membership under pod churn.
  const known = new Set<string>();
  return {
    started: (i) => m.setTerm(i.term),
    stepCompleted: (r) => {
      m.stepCompleted({ step: r.step + 1, epoch: r.epoch, seconds: r.seconds, samples: r.count, loss: model === 'ae' ? { total: r.loss.total, reconstruction: r.loss.reconstruction } : r.loss });
      m.aggregation(r.phases.aggregateSeconds);
      for (const p of r.parts) {
        if (p.worker === '') continue;
        known.add(p.worker);
        m.workerCompute(p.worker, p.computeSeconds);
      }
    },
    rejected: (reason) => m.rejected(reason),
    workerJoined: (w) => {
      known.add(w.id);
      m.workerJoined(w.id);
    },
    workerLost: () => m.workerFailure(),
    membersChanged: (list) => {
      m.setWorkers(list.length);
      const live = new Set(list.map((w) => w.id));
      for (const id of known) {
        if (live.has(id)) continue;
        known.delete(id);
        m.workerRemoved(id);
      }
    },
    straggler: () => m.straggler(),
    paused: (p) => m.setPaused(p),
    checkpoint: (s, ok) => m.checkpoint(s, ok),
    gradientBytes: (d, n) => m.gradientBytes(d, n),
  };
}

/** Throughput over the last few steps, so one slow step does not swing the figure. */
export class RateMeter {
  private readonly window: Array<{ t: number; n: number }> = [];
  add(samples: number, t = performance.now()): number {
    this.window.push({ t, n: samples });
    while (this.window.length > 20) this.window.shift();
    const first = this.window[0] as { t: number; n: number };
    if (this.window.length < 2) return 0;
    const n = this.window.slice(1).reduce((a, b) => a + b.n, 0);
    return (n / (t - first.t)) * 1000;
  }
}

export function progressObserver(progress: Progress, log: Logger, rate: RateMeter): CoordinatorObserver {
  let lastLog = 0;
  return {
    started: (i) => progress.begin(i.step),
    stepCompleted: (r) => {
      const sps = rate.add(r.count);
      const epochs = r.totalSteps / r.stepsPerEpoch;
      progress.update({ step: r.step + 1, epoch: r.epoch + 1, epochs: Math.ceil(epochs), loss: r.loss.total, samplesPerSecond: sps, workers: r.workers });
      if (!progress.enabled && (Date.now() - lastLog > 2000 || r.step + 1 === r.totalSteps)) {
        lastLog = Date.now();
        log.info({ step: r.step + 1, totalSteps: r.totalSteps, epoch: r.epoch, loss: r.loss, samplesPerSecond: Math.round(sps), workers: r.workers }, 'progress');
      }
    },
    paused: (p, reason) => progress.update({ step: -1, status: p ? `paused: ${reason}` : 'running' }),
  };
}

export function workerRows(members: Member[], lost: Map<string, Member>): WorkerRow[] {
  const rows: WorkerRow[] = members.map((m) => ({ id: m.id, host: m.host, backend: m.backend, device: m.device, status: m.status, lastPartSeconds: m.lastPartSeconds, partsDone: m.partsDone, failures: m.failures, lastSeen: m.lastSeen }));
  for (const m of lost.values()) if (!members.some((x) => x.id === m.id)) rows.push({ id: m.id, host: m.host, backend: m.backend, device: m.device, status: 'lost', lastPartSeconds: m.lastPartSeconds, partsDone: m.partsDone, failures: m.failures, lastSeen: m.lastSeen });
  return rows.sort((a, b) => a.id.localeCompare(b.id));
}

export function dashboardObserver(hub: DashboardHub, rate: RateMeter, renderImages: (r: StepReport) => void, getMembers: () => Member[]): CoordinatorObserver {
  const lost = new Map<string, Member>();
  let lastRows = 0;
  const pushRows = (): void => hub.workers(workerRows(getMembers(), lost));
  return {
    started: (i) => hub.update({ status: 'waiting', term: i.term, step: i.step, totalSteps: i.totalSteps, startedAt: Date.now() }),
    stepCompleted: (r) => {
      hub.step({ step: r.step + 1, epoch: r.epoch, loss: r.loss, samplesPerSecond: rate.add(r.count), stepSeconds: r.seconds, workers: r.workers });
      hub.update({ status: 'training', totalSteps: r.totalSteps, workersLive: r.workers });
      if (Date.now() - lastRows > 500) {
        lastRows = Date.now();
        pushRows();
      }
      renderImages(r);
    },
    workerJoined: (m) => {
      lost.delete(m.id);
      pushRows();
    },
    workerLost: (m) => {
      lost.set(m.id, m);
      pushRows();
    },
    membersChanged: () => pushRows(),
    paused: (p, reason) => hub.update({ status: p ? 'paused' : 'training', message: p ? reason : '' }),
    checkpoint: (_s, ok, path) => hub.update(ok && path !== null ? { lastCheckpoint: path } : { message: 'checkpoint failed' }),
    finished: () => {
      pushRows();
      hub.update({ status: 'done' });
    },
  };
}

export function timelineObserver(t: TimelineWriter): CoordinatorObserver {
  return {
    stepCompleted: (r) => {
      // Phases are laid end to end backwards from now, the moment the step finished.
      const end = t.nowUs();
      const us = (s: number): number => Math.max(0, Math.round(s * 1e6));
      const start = end - us(r.seconds);
      const args = { step: r.step, term: r.term };
      let at = start;
      t.span('coordinator', 'wait', at, us(r.phases.waitSeconds), args);
      at += us(r.phases.waitSeconds);
      t.span('coordinator', 'aggregate', at, us(r.phases.aggregateSeconds), args);
      at += us(r.phases.aggregateSeconds);
      t.span('coordinator', 'optimizer', at, us(r.phases.optimizerSeconds), args);
      at += us(r.phases.optimizerSeconds);
      t.span('coordinator', 'broadcast', at, us(r.phases.broadcastSeconds), args);
      for (const p of r.parts) {
        if (p.worker === '') continue;
        const arrive = start + us(r.phases.broadcastSeconds) + us(p.roundTripSeconds);
        const encodeStart = arrive - us(p.encodeSeconds);
        const computeStart = encodeStart - us(p.computeSeconds);
        const pargs = { ...args, part: p.part, images: p.count };
        t.span(p.worker, 'wait', start, Math.max(0, computeStart - start), pargs);
        t.span(p.worker, 'compute', computeStart, us(p.computeSeconds), pargs);
        t.span(p.worker, 'encode', encodeStart, us(p.encodeSeconds), pargs);
        t.span(p.worker, 'publish', arrive, 0, pargs);
      }
    },
    checkpoint: (s) => {
      const end = t.nowUs();
      t.span('coordinator', 'checkpoint', end - Math.round(s * 1e6), Math.round(s * 1e6));
    },
  };
}
