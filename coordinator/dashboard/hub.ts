// The live dashboard's state: the run loop pushes into the hub, the hub keeps a
// bounded history and fans JSON messages out to connected pages. A page that
// (re)connects gets a snapshot (`hello`) with the curves so far.
import type { WebSocket } from 'ws';
import { DataError } from '../../shared/errors.js';
import { isPng, pngDataUrl } from '../../shared/images/png.js';

export type RunStatus = 'starting' | 'waiting' | 'training' | 'paused' | 'checkpointing' | 'done' | 'failed' | 'stopped';

export interface DashboardState {
  job: string;
  model: string;
  arch: string;
  backend: string;
  device: string;
  status: RunStatus;
  term: number;
  step: number;
  totalSteps: number;
  /** 0-based, like lockstep_epoch; the page shows epoch + 1. */
  epoch: number;
  totalEpochs: number;
  batchSize: number;
  workersLive: number;
  workersWanted: number;
  samplesPerSecond: number;
  /** Unix ms when the run (this coordinator term) started. */
  startedAt: number;
  /** Estimated seconds left, if the run loop knows. */
  etaSeconds: number;
  lastCheckpoint: string;
  /** Free text shown under the header (e.g. why paused). */
  message: string;
}

export interface StepPoint {
  /** Steps completed so far (1 after the first step); must increase within one hub. */
  step: number;
  /** 0-based. */
  epoch: number;
  loss: { total: number; reconstruction: number; kl?: number };
  samplesPerSecond?: number;
  stepSeconds?: number;
  workers?: number;
  /** Unix ms; defaults to now. */
  t?: number;
}

export interface WorkerRow {
  id: string;
  host?: string;
  backend?: string;
  device?: string;
  status: string;
  /** Seconds the last part took. */
  lastPartSeconds?: number;
  partsDone: number;
  failures: number;
  /** Unix ms of the last heartbeat or part. */
  lastSeen?: number;
}

/** PNG buffers (encoded here) or ready data URLs. */
export type ImageInput = Buffer | string;

export interface ImageSet {
  inputs?: ImageInput;
  reconstructions?: ImageInput;
  samples?: ImageInput;
  /** 2-D latent manifold grid, when the latent space is 2-D. */
  manifold?: ImageInput;
  step?: number;
  /** E.g. 'one row per digit 0-9' for cvae samples. */
  caption?: string;
}

export interface ImagesPayload {
  inputs?: string;
  reconstructions?: string;
  samples?: string;
  manifold?: string;
  step?: number;
  caption?: string;
  t: number;
}

export type DashboardMessage =
  | { type: 'hello'; state: Partial<DashboardState>; steps: StepPoint[]; workers: WorkerRow[]; images: ImagesPayload | null; serverTime: number }
  | { type: 'state'; state: Partial<DashboardState> }
  | { type: 'steps'; points: StepPoint[] }
  | { type: 'workers'; workers: WorkerRow[] }
  | { type: 'images'; images: ImagesPayload }
  | { type: 'ping'; t: number };

export interface DashboardHubOptions {
  /** Most step points kept for reconnecting pages; older ones are thinned by 2 when full. Default 4000. */
  maxPoints?: number;
  /** Batching window for broadcasts, ms (default 200): fast steps cost one message per window. */
  flushMs?: number;
  /** A client whose unsent backlog exceeds this (bytes) is dropped; it reconnects and gets a snapshot. Default 8 MiB. */
  maxBufferedBytes?: number;
  /** Largest single image accepted, bytes of data URL (default 4 MiB). */
  maxImageBytes?: number;
  /** Most workers listed (default 1024). */
  maxWorkers?: number;
}

const IMAGE_KEYS = ['inputs', 'reconstructions', 'samples', 'manifold'] as const;

export class DashboardHub {
  private readonly maxPoints: number;
  private readonly flushMs: number;
  private readonly maxBuffered: number;
  private readonly maxImageBytes: number;
  private readonly maxWorkers: number;
  private state: Partial<DashboardState> = {};
  private history: StepPoint[] = [];
  private workerRows: WorkerRow[] = [];
  private latestImages: ImagesPayload | null = null;
  private readonly clients = new Set<WebSocket>();
  // Pending broadcast, coalesced until the next flush.
  private pendingSteps: StepPoint[] = [];
  private pendingState = false;
  private pendingWorkers = false;
  private pendingImages = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: DashboardHubOptions = {}) {
    this.maxPoints = Math.max(16, options.maxPoints ?? 4000);
    this.flushMs = Math.max(0, options.flushMs ?? 200);
    this.maxBuffered = options.maxBufferedBytes ?? 8 * 1024 * 1024;
    this.maxImageBytes = options.maxImageBytes ?? 4 * 1024 * 1024;
    this.maxWorkers = options.maxWorkers ?? 1024;
  }

  /** Merges run-level fields (status, step, totals, backend...). */
  update(state: Partial<DashboardState>): void {
    this.state = { ...this.state, ...state };
    this.pendingState = true;
    this.schedule();
  }

  /** One completed step: appended to the curves. */
  step(point: StepPoint): void {
    const p: StepPoint = { ...point, t: point.t ?? Date.now() };
    this.history.push(p);
    if (this.history.length > this.maxPoints) this.thin();
    this.pendingSteps.push(p);
    this.state = { ...this.state, step: p.step, epoch: p.epoch };
    if (p.samplesPerSecond !== undefined) this.state.samplesPerSecond = p.samplesPerSecond;
    if (p.workers !== undefined) this.state.workersLive = p.workers;
    this.pendingState = true;
    this.schedule();
  }

  /** Replaces the worker table. */
  workers(rows: readonly WorkerRow[]): void {
    this.workerRows = rows.slice(0, this.maxWorkers).map((r) => ({ ...r }));
    this.pendingWorkers = true;
    this.schedule();
  }

  /** Latest images; keys left out keep their previous image. */
  images(set: ImageSet): void {
    const next: ImagesPayload = { ...(this.latestImages ?? {}), t: Date.now() };
    for (const key of IMAGE_KEYS) {
      const v = set[key];
      if (v !== undefined) next[key] = this.toDataUrl(v, key);
    }
    if (set.step !== undefined) next.step = set.step;
    if (set.caption !== undefined) next.caption = set.caption;
    this.latestImages = next;
    this.pendingImages = true;
    this.schedule();
  }

  /** What a page gets on connect. */
  snapshot(): Extract<DashboardMessage, { type: 'hello' }> {
    return { type: 'hello', state: { ...this.state }, steps: this.history.slice(), workers: this.workerRows.slice(), images: this.latestImages, serverTime: Date.now() };
  }

  /** Points currently kept (after thinning). */
  get historyLength(): number {
    return this.history.length;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Takes over an accepted WebSocket: sends the snapshot, then live updates. Inbound messages are ignored. */
  attach(ws: WebSocket): void {
    // Pending updates go to the pages that have not seen them; the snapshot already holds them.
    this.flush();
    this.clients.add(ws);
    ws.on('close', () => this.clients.delete(ws));
    ws.on('error', () => this.clients.delete(ws));
    ws.on('message', () => {
      // The page has nothing to say; size is capped by the server's maxPayload.
    });
    this.sendTo(ws, JSON.stringify(this.snapshot()));
  }

  /** Sends buffered updates now (also called by the timer). */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const messages: DashboardMessage[] = [];
    if (this.pendingSteps.length > 0) messages.push({ type: 'steps', points: this.pendingSteps });
    if (this.pendingState) messages.push({ type: 'state', state: { ...this.state } });
    if (this.pendingWorkers) messages.push({ type: 'workers', workers: this.workerRows });
    if (this.pendingImages && this.latestImages !== null) messages.push({ type: 'images', images: this.latestImages });
    this.pendingSteps = [];
    this.pendingState = false;
    this.pendingWorkers = false;
    this.pendingImages = false;
    if (this.clients.size === 0) return;
    for (const m of messages) this.broadcast(JSON.stringify(m));
  }

  /** Keep-alive for pages behind proxies, and lets a page notice a silent coordinator. */
  ping(): void {
    this.broadcast(JSON.stringify({ type: 'ping', t: Date.now() } satisfies DashboardMessage));
  }

  /** Closes all pages (code 1001, so they reconnect) and stops the timer. The history stays. */
  disconnectAll(): void {
    this.flush();
    for (const ws of this.clients) ws.close(1001, 'server going away');
    this.clients.clear();
  }

  close(): void {
    this.disconnectAll();
  }

  private broadcast(text: string): void {
    for (const ws of this.clients) this.sendTo(ws, text);
  }

  private sendTo(ws: WebSocket, text: string): void {
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > this.maxBuffered) {
      // A page that cannot keep up is cut off rather than buffered without bound.
      this.clients.delete(ws);
      ws.terminate();
      return;
    }
    ws.send(text);
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => this.flush(), this.flushMs);
    this.timer.unref();
  }

  // Keeps every other point of the older half so the whole run stays visible.
  private thin(): void {
    const half = Math.floor(this.history.length / 2);
    const older = this.history.slice(0, half).filter((_, i) => i % 2 === 1 || i === 0);
    this.history = older.concat(this.history.slice(half));
  }

  private toDataUrl(v: ImageInput, key: string): string {
    let url: string;
    if (typeof v === 'string') {
      if (!/^data:image\/(png|jpeg|webp);base64,[A-Za-z0-9+/=]*$/.test(v)) throw new DataError(`dashboard image '${key}' is not a base64 image data URL`);
      url = v;
    } else {
      if (!isPng(v)) throw new DataError(`dashboard image '${key}' is not a PNG`);
      url = pngDataUrl(v);
    }
    if (url.length > this.maxImageBytes) throw new DataError(`dashboard image '${key}' is ${url.length} bytes, over ${this.maxImageBytes}`);
    return url;
  }
}
