// The coordinator's Prometheus metrics (DESIGN.md section 6). The run loop calls
// these methods; tests pass their own Registry and read it back.
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { GRADIENT_DIRECTIONS, LOSS_COMPONENTS, METRIC, REJECT_REASONS } from '../shared/metrics/names.js';
import type { GradientDirection } from '../shared/metrics/names.js';

export interface StepLoss {
  total: number;
  reconstruction: number;
  /** vae/cvae only; left out for the plain autoencoder. */
  kl?: number;
}

export interface StepCompleted {
  step: number;
  epoch: number;
  /** Wall time of the whole step (plan -> weights broadcast). */
  seconds: number;
  /** Images in the global batch. */
  samples: number;
  loss: StepLoss;
  /** Unix seconds when the step ended; defaults to now. */
  timestamp?: number;
}

export interface BackendInfo {
  backend: string;
  version: string;
  device: string;
}

export interface CoordinatorMetrics {
  stepCompleted(s: StepCompleted): void;
  aggregation(seconds: number): void;
  /** Compute time a worker reported for its part (or measured round trip if it reports none). */
  workerCompute(workerId: string, seconds: number): void;
  gradientBytes(direction: GradientDirection, bytes: number): void;
  rejected(reason: string): void;
  workerFailure(): void;
  straggler(): void;
  checkpoint(seconds: number, ok: boolean): void;
  setWorkers(n: number): void;
  setPaused(paused: boolean): void;
  setTerm(term: number): void;
  backendInfo(info: BackendInfo): void;
  /** Creates a worker's series at zero so per-worker panels show it before its first part. */
  workerJoined(workerId: string): void;
  /** Drops a worker's series for good (keeps cardinality bounded under pod churn). */
  workerRemoved(workerId: string): void;
}

// Steps run from ~10 ms (mlp, GPU) to tens of seconds (conv on CPU).
export const STEP_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
export const AGGREGATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
export const CHECKPOINT_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const finite = (x: number): boolean => typeof x === 'number' && Number.isFinite(x);
const nonNegative = (x: number): boolean => finite(x) && x >= 0;

export interface CoordinatorMetricsOptions {
  /** Rejection reasons created at zero up front; any other reason is still counted. */
  rejectReasons?: readonly string[];
  /** Whether the model reports a KL term; decides whether lockstep_loss{component="kl"} exists. Default true. */
  kl?: boolean;
}

export function createCoordinatorMetrics(registry: Registry, options: CoordinatorMetricsOptions = {}): CoordinatorMetrics {
  const registers = [registry];
  const stepDuration = new Histogram({ name: METRIC.stepDuration, help: 'Wall time of one synchronous training step, from plan to weights broadcast.', buckets: STEP_BUCKETS, registers });
  const loss = new Gauge({ name: METRIC.loss, help: 'Loss of the last step: global-batch mean per image, by component.', labelNames: ['component'], registers });
  const samples = new Counter({ name: METRIC.samples, help: 'Training images consumed by completed steps.', registers });
  const workers = new Gauge({ name: METRIC.workers, help: 'Live workers in the membership.', registers });
  const step = new Gauge({ name: METRIC.step, help: 'Last completed global step.', registers });
  const epoch = new Gauge({ name: METRIC.epoch, help: 'Epoch of the last completed step.', registers });
  const gradBytes = new Counter({ name: METRIC.gradientBytes, help: 'Tensor payload bytes: in = gradients received from workers, out = weights broadcast.', labelNames: ['direction'], registers });
  const aggregation = new Histogram({ name: METRIC.aggregationDuration, help: 'Time to sum the parts, average and apply the optimizer.', buckets: AGGREGATION_BUCKETS, registers });
  const workerCompute = new Histogram({ name: METRIC.workerCompute, help: 'Per-worker compute time of one part.', labelNames: ['worker'], buckets: STEP_BUCKETS, registers });
  const rejected = new Counter({ name: METRIC.rejectedMessages, help: 'Messages rejected before reaching the weights, by reason.', labelNames: ['reason'], registers });
  const failures = new Counter({ name: METRIC.workerFailures, help: 'Workers declared dead (missed heartbeats or deadline).', registers });
  const stragglers = new Counter({ name: METRIC.stragglers, help: 'Parts reassigned because their worker exceeded the straggler deadline.', registers });
  const checkpointDuration = new Histogram({ name: METRIC.checkpointDuration, help: 'Time to write one checkpoint (successful writes).', buckets: CHECKPOINT_BUCKETS, registers });
  const checkpointFailures = new Counter({ name: METRIC.checkpointFailures, help: 'Checkpoint writes that failed.', registers });
  const backend = new Gauge({ name: METRIC.backendInfo, help: 'Compute backend in use (value is always 1).', labelNames: ['backend', 'version', 'device'], registers });
  const paused = new Gauge({ name: METRIC.paused, help: '1 while training is paused (ctl pause or too few workers).', registers });
  const term = new Gauge({ name: METRIC.term, help: 'Coordinator term, bumped on every coordinator start.', registers });
  const lastStep = new Gauge({ name: METRIC.lastStepTimestamp, help: 'Unix time when the last step completed.', registers });

  // Series that exist from the start, so queries and alerts see 0 rather than nothing.
  const components = options.kl === false ? LOSS_COMPONENTS.filter((c) => c !== 'kl') : LOSS_COMPONENTS;
  for (const c of components) loss.set({ component: c }, 0);
  for (const d of GRADIENT_DIRECTIONS) gradBytes.inc({ direction: d }, 0);
  for (const r of options.rejectReasons ?? REJECT_REASONS) rejected.inc({ reason: r }, 0);
  paused.set(0);
  workers.set(0);

  return {
    stepCompleted(s) {
      if (nonNegative(s.seconds)) stepDuration.observe(s.seconds);
      if (nonNegative(s.samples)) samples.inc(s.samples);
      step.set(s.step);
      epoch.set(s.epoch);
      // Non-finite losses are exported as they are: the "loss not finite" alert needs to see them.
      loss.set({ component: 'total' }, s.loss.total);
      loss.set({ component: 'reconstruction' }, s.loss.reconstruction);
      if (s.loss.kl !== undefined) loss.set({ component: 'kl' }, s.loss.kl);
      lastStep.set(s.timestamp ?? Date.now() / 1000);
    },
    aggregation(seconds) {
      if (nonNegative(seconds)) aggregation.observe(seconds);
    },
    workerCompute(workerId, seconds) {
      if (nonNegative(seconds)) workerCompute.observe({ worker: workerId }, seconds);
    },
    gradientBytes(direction, bytes) {
      if (nonNegative(bytes)) gradBytes.inc({ direction }, bytes);
    },
    rejected(reason) {
      rejected.inc({ reason });
    },
    workerFailure() {
      failures.inc();
    },
    straggler() {
      stragglers.inc();
    },
    checkpoint(seconds, ok) {
      if (!ok) checkpointFailures.inc();
      else if (nonNegative(seconds)) checkpointDuration.observe(seconds);
    },
    setWorkers(n) {
      workers.set(n);
    },
    setPaused(p) {
      paused.set(p ? 1 : 0);
    },
    setTerm(n) {
      term.set(n);
    },
    backendInfo(info) {
      backend.reset();
      backend.set({ backend: info.backend, version: info.version, device: info.device }, 1);
    },
    workerJoined(workerId) {
      workerCompute.zero({ worker: workerId });
    },
    workerRemoved(workerId) {
      workerCompute.remove({ worker: workerId });
    },
  };
}
