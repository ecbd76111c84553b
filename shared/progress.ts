// Terminal progress bar for interactive runs (cli-progress). When the stream is not
// a TTY this is inert and the run loop's pino lines are the output.
import cliProgress from 'cli-progress';

/** Fields left out (or a negative step) keep their previous value, so `update({ status: 'paused' })` works. */
export interface ProgressFields {
  step?: number;
  epoch?: number;
  epochs?: number;
  /** Last step's total loss. */
  loss?: number;
  samplesPerSecond?: number;
  workers?: number;
  /** Short state word shown at the end (e.g. 'paused', 'resumed'). */
  status?: string;
}

export interface Progress {
  readonly enabled: boolean;
  update(fields: ProgressFields): void;
  /** Prints a line above the bar (a plain write when disabled is the caller's job: this drops it). */
  log(line: string): void;
  /** Removes the timer and restores the cursor; call it on every exit path. */
  stop(): void;
}

export interface ProgressOptions {
  /** Total steps of the run (the bar's 100%). */
  total: number;
  /** Default process.stderr, so stdout stays free for --json. */
  stream?: NodeJS.WriteStream | NodeJS.WritableStream;
  /** Default: stream is a TTY. */
  enabled?: boolean;
  /** Step the run starts from (a resumed run); the ETA is measured from here. */
  startStep?: number;
  /** Redraws per second, default 5. */
  fps?: number;
}

const fmt = (x: number | undefined, digits: number): string => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));

function formatLoss(x: number | undefined): string {
  if (x === undefined) return '-';
  if (!Number.isFinite(x)) return String(x);
  return Math.abs(x) >= 100 ? x.toFixed(1) : Math.abs(x) >= 1 ? x.toFixed(3) : x.toPrecision(4);
}

function payload(f: ProgressFields): Record<string, string> {
  return {
    epochText: f.epoch === undefined ? '-' : f.epochs === undefined ? String(f.epoch) : `${f.epoch}/${f.epochs}`,
    loss: formatLoss(f.loss),
    sps: fmt(f.samplesPerSecond, 0),
    workers: f.workers === undefined ? '-' : String(f.workers),
    status: f.status === undefined ? '' : ` | ${f.status}`,
  };
}

export const PROGRESS_FORMAT = 'epoch {epochText} {bar} {value}/{total} steps | loss {loss} | {sps} samples/s | {workers} workers | ETA {eta_formatted}{status}';

export function createProgress(options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr;
  const enabled = options.enabled ?? (stream as NodeJS.WriteStream).isTTY === true;
  if (!enabled) {
    return { enabled: false, update() {}, log() {}, stop() {} };
  }
  const multi = new cliProgress.MultiBar(
    {
      stream: stream as NodeJS.WritableStream,
      format: PROGRESS_FORMAT,
      barCompleteChar: '\u2588',
      barIncompleteChar: '\u2591',
      barsize: 24,
      hideCursor: true,
      fps: options.fps ?? 5,
      etaBuffer: 50,
      progressCalculationRelative: true,
      clearOnComplete: false,
      // A TTY was asked for explicitly (enabled: true on a non-TTY stream, e.g. in tests).
      noTTYOutput: (stream as NodeJS.WriteStream).isTTY !== true,
      notTTYSchedule: 1000,
    },
    cliProgress.Presets.shades_classic,
  );
  const total = Math.max(1, options.total);
  let last: ProgressFields = { step: options.startStep ?? 0 };
  const bar = multi.create(total, options.startStep ?? 0, payload(last));
  let stopped = false;
  return {
    enabled: true,
    update(fields) {
      if (stopped) return;
      const next: ProgressFields = { ...last };
      for (const [k, v] of Object.entries(fields) as Array<[keyof ProgressFields, unknown]>) {
        if (v === undefined || (k === 'step' && (typeof v !== 'number' || v < 0))) continue;
        (next as Record<string, unknown>)[k] = v;
      }
      last = next;
      bar.update(Math.min(next.step ?? 0, total), payload(next));
    },
    log(line) {
      if (stopped) return;
      multi.log(line.endsWith('\n') ? line : `${line}\n`);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      multi.stop();
    },
  };
}
