// `lockstep coordinator`: wires NATS, the model, metrics, the dashboard, the
// timeline and the progress bar around the run loop.
import type { Options } from '../shared/config/types.js';
import { selectBackend } from '../shared/compute/backend.js';
import { loadMnist } from '../shared/data/mnist.js';
import type { Logger } from '../shared/logger.js';
import { createModel } from '../shared/models/factory.js';
import { connectNats } from '../shared/nats/connect.js';
import { createMetricsRegistry } from '../shared/metrics/registry.js';
import { startHttpServer, type HttpServerHandle } from '../shared/http/metrics-server.js';
import { createProgress } from '../shared/progress.js';
import { TimelineWriter } from '../shared/timeline.js';
import { renderImages } from '../shared/images/render.js';
import { modelOptionsOf } from '../shared/train/model-options.js';
import { StepPlanner } from '../shared/train/plan.js';
import type { TrainResult } from '../shared/train/result.js';
import { createCoordinatorMetrics } from './metrics.js';
import { DashboardHub } from './dashboard/hub.js';
import { startDashboard, type DashboardServer } from './dashboard/server.js';
import { Coordinator } from './coordinator.js';
import { combineObservers, type CoordinatorObserver, type StepReport } from './observer.js';
import { RateMeter, dashboardObserver, metricsObserver, progressObserver, timelineObserver } from './observers.js';

export interface CoordinatorMainDeps {
  log: Logger;
  env: Record<string, string | undefined>;
  /** Where `--json` goes. */
  stdout: NodeJS.WritableStream;
  isTTY: boolean;
}

/** LOCKSTEP_FAULT_CHECKPOINT=<file>|before-rename|after-rename: kill -9 self at that point (crash-safety tests). */
function faultHookFrom(env: Record<string, string | undefined>, log: Logger): ((point: string) => void) | undefined {
  const point = env.LOCKSTEP_FAULT_CHECKPOINT;
  if (point === undefined || point === '') return undefined;
  const afterStep = Number(env.LOCKSTEP_FAULT_CHECKPOINT_NTH ?? '1');
  let seen = 0;
  return (p) => {
    if (p !== point) return;
    seen += 1;
    if (seen < afterStep) return;
    log.warn({ point }, 'fault injection: SIGKILL during checkpoint write');
    process.kill(process.pid, 'SIGKILL');
  };
}

export async function runCoordinatorMain(o: Options, deps: CoordinatorMainDeps): Promise<TrainResult> {
  const { log } = deps;
  const backend = await selectBackend({ backend: o.backend, log });
  const data = loadMnist({ split: 'train', dataDir: o.dataDir, limit: o.trainLimit });
  const bundle = createModel(modelOptionsOf(o));
  const registry = createMetricsRegistry();
  const metrics = createCoordinatorMetrics(registry, { kl: o.model !== 'ae' });
  metrics.backendInfo({ backend: backend.name, version: backend.version, device: backend.device });
  const nc = await connectNats(o, 'lockstep-coordinator', log);
  let coordinator: Coordinator | null = null;
  let http: HttpServerHandle | null = null;
  let dash: DashboardServer | null = null;
  const hub = new DashboardHub();
  const timeline = o.timeline === undefined ? null : new TimelineWriter({ path: o.timeline, processName: `lockstep ${o.job}` });
  const totalSteps = new StepPlanner({ seed: o.seed, datasetSize: data.count, batchSize: o.batchSize }).totalSteps(o);
  const progress = createProgress({ total: totalSteps, enabled: o.progress ?? deps.isTTY });
  const onSignal = (sig: string): void => coordinator?.stop(`received ${sig}`);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    let ready = false;
    if (o.metricsPort > 0) {
      http = await startHttpServer({
        host: o.metricsHost,
        port: o.metricsPort,
        registry,
        health: () => ({ ok: !nc.isClosed(), detail: nc.isClosed() ? 'NATS connection closed' : 'ok' }),
        ready: () => ({ ok: ready, detail: ready ? 'training' : 'starting' }),
      });
      log.info({ url: `${http.url}/metrics` }, 'metrics server listening');
    }
    if (o.dashboardPort > 0) {
      dash = await startDashboard({ host: o.dashboardHost, port: o.dashboardPort, token: o.dashboardToken, hub, log });
      log.info({ url: dash.url }, 'dashboard listening');
    }
    hub.update({ job: o.job, model: o.model, arch: o.arch, backend: backend.name, device: backend.device, status: 'starting', batchSize: o.batchSize, workersWanted: Math.max(o.waitWorkers, o.minWorkers) });
    const preview = { images: data.images.subarray(0, 8 * 784), labels: data.labels.subarray(0, 8), n: Math.min(8, data.count) };
    let lastRender = 0;
    const render = (r: StepReport): void => {
      // Rendering costs a forward pass on the coordinator: a few per minute is plenty.
      if (Date.now() - lastRender < 3000 && r.step + 1 < r.totalSteps) return;
      lastRender = Date.now();
      try {
        bundle.setFlatWeights(r.weights);
        const img = renderImages(bundle, { ...preview, seed: o.seed });
        hub.images({ reconstructions: img.reconstructions, ...(img.samples === null ? {} : { samples: img.samples }), ...(img.manifold === null ? {} : { manifold: img.manifold }), step: r.step + 1, caption: img.caption });
      } catch (err) {
        log.warn({ err }, 'could not render dashboard images');
      }
    };
    const rate = new RateMeter();
    const observers: CoordinatorObserver[] = [metricsObserver(metrics, o.model), progressObserver(progress, log, rate)];
    if (dash !== null) observers.push(dashboardObserver(hub, new RateMeter(), render, () => coordinator?.members() ?? []));
    if (timeline !== null) observers.push(timelineObserver(timeline));
    observers.push({ stepCompleted: () => (ready = true) });
    coordinator = new Coordinator(o, { nc, log, bundle, datasetSize: data.count, backendName: backend.name, observer: combineObservers(observers), faultHook: faultHookFrom(deps.env, log) });
    const result = await coordinator.run();
    progress.stop();
    if (o.json === true) deps.stdout.write(`${JSON.stringify(result)}\n`);
    else log.info({ steps: result.steps, samplesPerSecond: Math.round(result.samplesPerSecond), finalLoss: result.finalLoss, checkpoint: result.checkpoint }, 'training finished');
    return result;
  } finally {
    progress.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (timeline !== null) {
      const path = await timeline.close();
      log.info({ path }, 'timeline written');
    }
    await dash?.close();
    await http?.close();
    await nc.drain().catch(() => undefined);
    bundle.dispose();
  }
}
