// Terminal progress bar for interactive runs (cli-progress). When the stream is not
// a TTY this is inert and the run loop's pino lines are the output.
import { Writable } from 'node:stream';
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
  /** The step the run really starts from (known once a resumed coordinator has read its checkpoint): the ETA counts from here. */
  begin(step: number): void;
  /** Prints a line above the bar, or plainly once stopped (when disabled this drops it: pino lines are the output then). */
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
    return { enabled: false, update() {}, begin() {}, log() {}, stop() {} };
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
    begin(step) {
      if (stopped || !Number.isFinite(step) || step < 0) return;
      last = { ...last, step };
      bar.start(total, Math.min(step, total), payload(last));
    },
    log(line) {
      const text = line.endsWith('\n') ? line : `${line}\n`;
      // After the bar is gone (end of run) lines go straight to the terminal.
      if (stopped) stream.write(text);
      else multi.log(text);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      multi.stop();
    },
  };
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
// Fields every line of one process carries (or that the line already shows).
const ROUTINE_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'role', 'job', 'msg']);

const round = (v: number): number => (Number.isInteger(v) || !Number.isFinite(v) ? v : Number(v.toPrecision(4)));

function shortValue(v: unknown): string {
  if (typeof v === 'string') return /\s/.test(v) ? JSON.stringify(v) : v;
  if (typeof v === 'number') return String(round(v));
  if (v !== null && typeof v === 'object' && typeof (v as { message?: unknown }).message === 'string') return JSON.stringify((v as { message: string }).message);
  const text = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'number' ? round(x) : x)) ?? String(v);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

export interface LogLineOptions {
  /** Who writes (`coord`, a worker id), shown as `[w0]`; a `worker` field equal to it is left out. */
  actor?: string;
}

/**
 * One pino JSON line as a short human line (`12:00:01 WARN  [coord] worker lost worker=w1 why=...`),
 * for interactive runs where the log shares the terminal with the bar.
 */
export function formatLogLine(json: string, options: LogLineOptions = {}): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.trimEnd();
  }
  const time = typeof rec.time === 'number' ? new Date(rec.time).toTimeString().slice(0, 8) : '';
  const level = (LEVEL_NAMES[rec.level as number] ?? String(rec.level)).padEnd(5);
  const fields = Object.entries(rec)
    .filter(([k, v]) => !ROUTINE_FIELDS.has(k) && v !== null && v !== undefined && !(k === 'worker' && v === options.actor))
    .map(([k, v]) => `${k}=${shortValue(v)}`);
  return [time, level, options.actor === undefined ? '' : `[${options.actor}]`, String(rec.msg ?? ''), ...fields].filter((s) => s !== '').join(' ');
}

/**
 * A pino destination that prints each log line above the progress bar (as a short human
 * line), so logging does not tear the bar apart. Pass it to the logger of an interactive run.
 */
export function progressLogStream(progress: Progress, options: LogLineOptions = {}): NodeJS.WritableStream {
  return new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') progress.log(formatLogLine(line, options));
      done();
    },
  });
}

/**
 * A pino destination for a process whose stderr is a terminal it may share with another
 * process's progress bar (the workers under `lockstep train`): short human lines, each
 * starting with "clear this line", so a line replaces a half-drawn bar instead of running
 * into it, and the bar redraws below it on its next frame.
 */
export function terminalLogStream(stream: NodeJS.WritableStream = process.stderr, options: LogLineOptions = {}): NodeJS.WritableStream {
  return new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _enc, done) {
      let out = '';
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') out += `\r\x1b[2K${formatLogLine(line, options)}\n`;
      if (out === '') done();
      else stream.write(out, () => done());
    },
  });
}
