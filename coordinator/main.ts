// `lockstep coordinator`: wires NATS, the model, metrics, the dashboard, the
// timeline and the progress bar around the run loop.
import type { NatsConnection } from 'nats';
import type { Options } from '../shared/config/types.js';
import { selectBackend } from '../shared/compute/backend.js';
import { loadMnist } from '../shared/data/mnist.js';
import { createRootLogger, type Logger, type LogLevel } from '../shared/logger.js';
import { createModel } from '../shared/models/factory.js';
import { connectNats } from '../shared/nats/connect.js';
import { createMetricsRegistry } from '../shared/metrics/registry.js';
import { startHttpServer, type HttpServerHandle } from '../shared/http/metrics-server.js';
import { createProgress, progressLogStream } from '../shared/progress.js';
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

/** Rendering costs forward passes on the coordinator: one every few seconds is plenty... */
const RENDER_EVERY_MS = 3000;
/** ...except for the first few, a second apart, while the images change the most. */
const EARLY_RENDERS = 5;
const EARLY_RENDER_EVERY_MS = 1000;

export async function runCoordinatorMain(o: Options, deps: CoordinatorMainDeps): Promise<TrainResult> {
  const data = loadMnist({ split: 'train', dataDir: o.dataDir, limit: o.trainLimit });
  const planner = new StepPlanner({ seed: o.seed, datasetSize: data.count, batchSize: o.batchSize });
  const totalSteps = planner.totalSteps(o);
  const progress = createProgress({ total: totalSteps, enabled: o.progress ?? deps.isTTY });
  // Interactive: log lines print above the bar as short human lines instead of tearing it.
  const log = progress.enabled ? createRootLogger({ level: deps.log.level as LogLevel, destination: progressLogStream(progress, { actor: 'coord' }) }).child(deps.log.bindings()) : deps.log;
  const backend = await selectBackend({ backend: o.backend, log });
  const bundle = createModel(modelOptionsOf(o));
  const registry = createMetricsRegistry();
  const metrics = createCoordinatorMetrics(registry, { kl: o.model !== 'ae' });
  metrics.backendInfo({ backend: backend.name, version: backend.version, device: backend.device });
  let nc: NatsConnection;
  try {
    nc = await connectNats(o, 'lockstep-coordinator', log);
  } catch (err) {
    progress.stop();
    bundle.dispose();
    throw err;
  }
  let coordinator: Coordinator | null = null;
  let http: HttpServerHandle | null = null;
  let dash: DashboardServer | null = null;
  const hub = new DashboardHub();
  const timeline = o.timeline === undefined ? null : new TimelineWriter({ path: o.timeline, processName: `lockstep ${o.job}`, metadata: { job: o.job, model: o.model, arch: o.arch, backend: backend.name } });
  const onSignal = (sig: string): void => coordinator?.stop(`received ${sig}`);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The latest weights waiting to be drawn; drawn after the step's loop turn (see render).
  let pendingRender: { weights: Float32Array; step: number } | null = null;
  // Two rows of eight training images above their reconstructions.
  const previewCount = Math.min(16, data.count);
  const preview = { images: data.images.subarray(0, previewCount * 784), labels: data.labels.subarray(0, previewCount), n: previewCount };
  const drawPending = (): void => {
    const p = pendingRender;
    pendingRender = null;
    if (p === null) return;
    try {
      bundle.setFlatWeights(p.weights);
      const img = renderImages(bundle, { ...preview, seed: o.seed });
      hub.images({ reconstructions: img.reconstructions, ...(img.samples === null ? {} : { samples: img.samples }), ...(img.manifold === null ? {} : { manifold: img.manifold }), step: p.step, caption: img.caption });
    } catch (err) {
      log.warn({ err }, 'could not render dashboard images');
    }
  };
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
    hub.update({ job: o.job, model: o.model, arch: o.arch, backend: backend.name, device: backend.device, status: 'starting', batchSize: o.batchSize, totalSteps, totalEpochs: Math.ceil(totalSteps / planner.stepsPerEpoch), workersWanted: Math.max(o.waitWorkers, o.minWorkers) });
    let lastRender = 0;
    let renders = 0;
    const render = (r: StepReport): void => {
      const final = r.step + 1 >= r.totalSteps;
      if (!final && Date.now() - lastRender < (renders < EARLY_RENDERS ? EARLY_RENDER_EVERY_MS : RENDER_EVERY_MS)) return;
      lastRender = Date.now();
      renders += 1;
      const scheduled = pendingRender !== null;
      // A copy: the run loop owns r.weights and updates them in place.
      pendingRender = { weights: Float32Array.from(r.weights), step: r.step + 1 };
      // Drawn on the next loop turn, after the run loop has published the next plan, so the
      // forward passes overlap the workers' compute instead of delaying the step.
      if (!scheduled) setImmediate(drawPending);
    };
    const rate = new RateMeter();
    // The timeline goes first: it reads the clock as the step ends.
    const observers: CoordinatorObserver[] = [];
    if (timeline !== null) observers.push(timelineObserver(timeline));
    observers.push(metricsObserver(metrics, o.model), progressObserver(progress, log, rate));
    if (dash !== null) observers.push(dashboardObserver(hub, new RateMeter(), render, () => coordinator?.members() ?? []));
    observers.push({ stepCompleted: () => (ready = true) });
    coordinator = new Coordinator(o, { nc, log, bundle, datasetSize: data.count, backendName: backend.name, observer: combineObservers(observers), faultHook: faultHookFrom(deps.env, log) });
    const result = await coordinator.run();
    progress.stop();
    if (o.json === true) deps.stdout.write(`${JSON.stringify(result)}\n`);
    else log.info({ steps: result.steps, samplesPerSecond: Math.round(result.samplesPerSecond), finalLoss: result.finalLoss, checkpoint: result.checkpoint }, 'training finished');
    return result;
  } finally {
    drawPending();
    progress.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (timeline !== null) {
      const path = await timeline.close();
      log.info({ path, events: timeline.size }, 'timeline written');
    }
    await dash?.close();
    await http?.close();
    await nc.drain().catch(() => undefined);
    bundle.dispose();
  }
}
