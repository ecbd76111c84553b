// Metric names are a contract (DESIGN.md section 6): dashboards, alert rules and tests read them.
export const METRIC = {
  stepDuration: 'lockstep_step_duration_seconds',
  loss: 'lockstep_loss',
  samples: 'lockstep_samples_total',
  workers: 'lockstep_workers',
  step: 'lockstep_step',
  epoch: 'lockstep_epoch',
  gradientBytes: 'lockstep_gradient_bytes_total',
  aggregationDuration: 'lockstep_aggregation_duration_seconds',
  workerCompute: 'lockstep_worker_compute_seconds',
  rejectedMessages: 'lockstep_rejected_messages_total',
  workerFailures: 'lockstep_worker_failures_total',
  stragglers: 'lockstep_stragglers_total',
  checkpointDuration: 'lockstep_checkpoint_duration_seconds',
  checkpointFailures: 'lockstep_checkpoint_failures_total',
  backendInfo: 'lockstep_backend_info',
  paused: 'lockstep_paused',
  term: 'lockstep_term',
  lastStepTimestamp: 'lockstep_last_step_timestamp_seconds',
  /**
   * Worker process only: compute time of each part, measured on the worker. A name of its
   * own because the coordinator already exports lockstep_worker_compute_seconds{worker} for
   * the same parts: one name in both jobs would count every part twice in `sum by (worker)`.
   */
  partCompute: 'lockstep_part_compute_seconds',
  /** Worker process only: parts this worker computed and published. */
  workerParts: 'lockstep_worker_parts_total',
  /** Worker process only: wall time of the last part it published (for "worker silent" alerts). */
  workerLastPartTimestamp: 'lockstep_worker_last_part_timestamp_seconds',
} as const;

export type MetricName = (typeof METRIC)[keyof typeof METRIC];

/** The names DESIGN.md section 6 requires on the coordinator's /metrics. */
export const DESIGN_COORDINATOR_METRICS: readonly MetricName[] = [
  METRIC.stepDuration,
  METRIC.loss,
  METRIC.samples,
  METRIC.workers,
  METRIC.step,
  METRIC.epoch,
  METRIC.gradientBytes,
  METRIC.aggregationDuration,
  METRIC.workerCompute,
  METRIC.rejectedMessages,
  METRIC.workerFailures,
  METRIC.stragglers,
  METRIC.checkpointDuration,
  METRIC.backendInfo,
];

/** The names a worker's /metrics (`lockstep worker --metrics-port`) always carries. */
export const WORKER_METRICS: readonly MetricName[] = [METRIC.partCompute, METRIC.workerParts, METRIC.workerLastPartTimestamp, METRIC.gradientBytes, METRIC.rejectedMessages, METRIC.backendInfo];

/**
 * Every label name the lockstep_* series may carry. Each has a bounded set of values
 * (worker ids are bounded by the membership); nothing per step, epoch or part.
 */
export const LOCKSTEP_LABELS = ['component', 'direction', 'worker', 'reason', 'backend', 'version', 'device', 'le'] as const;

/** Label values of lockstep_loss{component}. */
export const LOSS_COMPONENTS = ['total', 'reconstruction', 'kl'] as const;
export type LossComponent = (typeof LOSS_COMPONENTS)[number];

/** Label values of lockstep_gradient_bytes_total{direction}. */
export const GRADIENT_DIRECTIONS = ['in', 'out'] as const;
export type GradientDirection = (typeof GRADIENT_DIRECTIONS)[number];

/**
 * Rejection reasons pre-created at zero so that rate() queries and alert rules have a
 * series before the first rejection: the coordinator's reasons for dropping a gradient
 * (coordinator.ts onGrad; stale and duplicate results are routine with stragglers and
 * retries) and the commonest codec ones. Other reasons (shared/protocol's *_ERROR_REASONS)
 * are counted too; the set is fixed by the code, never by message contents.
 */
export const REJECT_REASONS = ['stale-step', 'stale-term', 'stale-weights', 'duplicate', 'unassigned', 'unknown-worker', 'sender-mismatch', 'wrong-part', 'wrong-count', 'wrong-shape', 'schema', 'crc'] as const;
