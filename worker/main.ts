// `lockstep worker --nats URL`: joins the job, computes the parts it is given,
// until the coordinator says stop. Optional /metrics in cluster mode.
import type { Options } from '../shared/config/types.js';
import { selectBackend } from '../shared/compute/backend.js';
import { createRootLogger, type Logger, type LogLevel } from '../shared/logger.js';
import { connectNats } from '../shared/nats/connect.js';
import { createMetricsRegistry } from '../shared/metrics/registry.js';
import { startHttpServer, type HttpServerHandle } from '../shared/http/metrics-server.js';
import { terminalLogStream } from '../shared/progress.js';
import { createWorkerMetrics } from './metrics.js';
import { Worker, defaultWorkerId } from './worker.js';

/**
 * The caller's logger with this worker's id bound. A pino child cannot replace a binding
 * (it would print `"worker":null,...,"worker":"w0"`), so when the caller bound another
 * value the logger is rebuilt on stderr with the same level and bindings. On a terminal
 * (a worker started by `lockstep train` shares the coordinator's progress bar) lines are
 * short human ones that do not tear the bar; elsewhere they stay pino JSON.
 */
export function workerLogger(log: Logger, id: string, options: { tty?: boolean } = {}): Logger {
  const bound = log.bindings();
  if (options.tty === true) return createRootLogger({ level: log.level as LogLevel, destination: terminalLogStream(process.stderr, { actor: id }) }).child({ ...bound, worker: id });
  if (bound.worker === id) return log;
  if (!('worker' in bound)) return log.child({ worker: id });
  return createRootLogger({ level: log.level as LogLevel }).child({ ...bound, worker: id });
}

export async function runWorkerMain(o: Options, deps: { log: Logger }): Promise<void> {
  const id = o.workerId ?? defaultWorkerId();
  const log = workerLogger(deps.log, id, { tty: process.stderr.isTTY === true });
  const backend = await selectBackend({ backend: o.backend, log });
  const registry = createMetricsRegistry();
  const metrics = createWorkerMetrics(registry, { workerId: id });
  metrics.backendInfo({ backend: backend.name, version: backend.version, device: backend.device });
  const nc = await connectNats(o, `lockstep-worker-${id}`, log);
  let http: HttpServerHandle | null = null;
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    if (o.metricsPort > 0) {
      http = await startHttpServer({
        host: o.metricsHost,
        port: o.metricsPort,
        registry,
        health: () => ({ ok: !nc.isClosed(), detail: nc.isClosed() ? 'NATS connection closed' : 'ok' }),
        ready: () => ({ ok: !nc.isClosed(), detail: 'ok' }),
      });
      log.info({ url: `${http.url}/metrics` }, 'metrics server listening');
    }
    const worker = new Worker({ ...o, workerId: id }, {
      nc,
      log,
      backend,
      signal: abort.signal,
      observer: {
        partDone: (seconds, bytes) => {
          metrics.partCompleted({ computeSeconds: seconds, bytes });
        },
        rejected: (reason) => metrics.rejected(reason),
        coordinatorLost: () => log.warn('coordinator heartbeat lost'),
      },
    });
    await worker.run();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await http?.close();
    await nc.drain().catch(() => undefined);
  }
}
