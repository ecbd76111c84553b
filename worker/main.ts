// `lockstep worker --nats URL`: joins the job, computes the parts it is given,
// until the coordinator says stop. Optional /metrics in cluster mode.
import type { Options } from '../shared/config/types.js';
import { selectBackend } from '../shared/compute/backend.js';
import type { Logger } from '../shared/logger.js';
import { connectNats } from '../shared/nats/connect.js';
import { createMetricsRegistry } from '../shared/metrics/registry.js';
import { startHttpServer, type HttpServerHandle } from '../shared/http/metrics-server.js';
import { createWorkerMetrics } from './metrics.js';
import { Worker, defaultWorkerId } from './worker.js';

export async function runWorkerMain(o: Options, deps: { log: Logger }): Promise<void> {
  const id = o.workerId ?? defaultWorkerId();
  const log = deps.log.child({ worker: id });
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
