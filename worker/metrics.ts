// A worker's own Prometheus metrics in cluster mode (`lockstep worker --metrics-port`).
// What the coordinator also counts (compute time of each part) has a name of its own
// here, so that a sum over all scrape jobs counts each part once; names shared with
// the coordinator (gradient bytes, rejections, backend) count different events.
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { METRIC, REJECT_REASONS } from '../shared/metrics/names.js';
import type { GradientDirection } from '../shared/metrics/names.js';

export interface WorkerBackendInfo {
  backend: string;
  version: string;
  device: string;
}

export interface PartCompleted {
  /** Seconds spent computing the gradient of the part (not waiting, not encoding). */
  computeSeconds: number;
  /** Encoded gradient payload bytes published for the part, if known here. */
  bytes?: number;
  /** Unix seconds when the part was published; defaults to now. */
  timestamp?: number;
}

export interface WorkerMetrics {
  partCompleted(p: PartCompleted): void;
  /** out = gradient bytes published; in = weight/state bytes received. */
  gradientBytes(direction: GradientDirection, bytes: number): void;
  rejected(reason: string): void;
  backendInfo(info: WorkerBackendInfo): void;
}

const nonNegative = (x: number): boolean => typeof x === 'number' && Number.isFinite(x) && x >= 0;

export interface WorkerMetricsOptions {
  workerId: string;
  rejectReasons?: readonly string[];
}

export function createWorkerMetrics(registry: Registry, options: WorkerMetricsOptions): WorkerMetrics {
  const registers = [registry];
  const worker = options.workerId;
  const compute = new Histogram({
    name: METRIC.partCompute,
    help: 'Compute time of one part, measured on this worker (the coordinator exports the same parts as lockstep_worker_compute_seconds).',
    labelNames: ['worker'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers,
  });
  const parts = new Counter({ name: METRIC.workerParts, help: 'Parts this worker computed and published.', labelNames: ['worker'], registers });
  const lastPart = new Gauge({ name: METRIC.workerLastPartTimestamp, help: 'Unix time when this worker last published a part.', labelNames: ['worker'], registers });
  const bytes = new Counter({ name: METRIC.gradientBytes, help: 'Tensor payload bytes: out = gradients published, in = weights received.', labelNames: ['direction'], registers });
  const rejected = new Counter({ name: METRIC.rejectedMessages, help: 'Messages this worker rejected, by reason.', labelNames: ['reason'], registers });
  const backend = new Gauge({ name: METRIC.backendInfo, help: 'Compute backend in use (value is always 1).', labelNames: ['backend', 'version', 'device'], registers });

  compute.zero({ worker });
  parts.inc({ worker }, 0);
  // Only `out` exists from the start: the worker loop reports no received bytes yet, and a
  // series stuck at zero would claim it received nothing.
  bytes.inc({ direction: 'out' }, 0);
  for (const r of options.rejectReasons ?? REJECT_REASONS) rejected.inc({ reason: r }, 0);

  return {
    partCompleted(p) {
      if (nonNegative(p.computeSeconds)) compute.observe({ worker }, p.computeSeconds);
      parts.inc({ worker });
      lastPart.set({ worker }, p.timestamp ?? Date.now() / 1000);
      if (p.bytes !== undefined && nonNegative(p.bytes)) bytes.inc({ direction: 'out' }, p.bytes);
    },
    gradientBytes(direction, n) {
      if (nonNegative(n)) bytes.inc({ direction }, n);
    },
    rejected(reason) {
      rejected.inc({ reason });
    },
    backendInfo(info) {
      backend.reset();
      backend.set({ backend: info.backend, version: info.version, device: info.device }, 1);
    },
  };
}
