// NATS subjects of one job, all under `lockstep.<job>.`. Ids are validated as
// single subject tokens so that no id can inject `.`, `*`, `>` or whitespace.
import { ConfigError } from '../errors.js';
import { ID_PATTERN } from './messages.js';

/** `hb.coord` is the coordinator's heartbeat, so no worker may be called this. */
export const RESERVED_WORKER_IDS: readonly string[] = ['coord'];

export interface JobSubjects {
  /** `lockstep.<job>.` */
  prefix: string;
  /** request/reply: worker -> coordinator join. */
  join: string;
  /** request: current weights (reply is chunked). */
  state: string;
  /** coordinator broadcast: the step plan. */
  step: string;
  /** coordinator broadcast: new weights (chunked frames). */
  weights: string;
  /** coordinator broadcast: stop, pause, resume. */
  ctl: string;
  /** coordinator heartbeat. */
  hbCoord: string;
  /** a worker's heartbeat. */
  hb(worker: string): string;
  /** `hb.*`: every heartbeat, the coordinator's included. */
  hbAll: string;
  /** a worker's gradient frames. */
  grad(worker: string): string;
  /** `grad.*` */
  gradAll: string;
}

/** Throws ConfigError unless `id` matches ID_PATTERN. */
export function assertSubjectToken(id: string, what: string): string {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
    throw new ConfigError(`${what} ${JSON.stringify(id)} is not a valid id: use 1-64 characters from A-Z a-z 0-9 _ -`, { details: { [what]: id } });
  }
  return id;
}

function workerToken(worker: string): string {
  assertSubjectToken(worker, 'worker id');
  if (RESERVED_WORKER_IDS.includes(worker)) throw new ConfigError(`worker id "${worker}" is reserved`, { details: { worker } });
  return worker;
}

export function subjectsFor(job: string): JobSubjects {
  const prefix = `lockstep.${assertSubjectToken(job, 'job id')}.`;
  return {
    prefix,
    join: `${prefix}join`,
    state: `${prefix}state`,
    step: `${prefix}step`,
    weights: `${prefix}weights`,
    ctl: `${prefix}ctl`,
    hbCoord: `${prefix}hb.coord`,
    hb: (worker: string) => `${prefix}hb.${workerToken(worker)}`,
    hbAll: `${prefix}hb.*`,
    grad: (worker: string) => `${prefix}grad.${workerToken(worker)}`,
    gradAll: `${prefix}grad.*`,
  };
}

/**
 * The worker id in a `grad.<worker>` or `hb.<worker>` subject of this job, or
 * undefined (for `hb.coord` and anything else). Use it as the trusted sender:
 * subject permissions bind it to the worker's credentials, the payload does not.
 */
export function workerFromSubject(subjects: JobSubjects, subject: string): string | undefined {
  if (!subject.startsWith(subjects.prefix)) return undefined;
  const rest = subject.slice(subjects.prefix.length);
  const dot = rest.indexOf('.');
  if (dot < 0) return undefined;
  const kind = rest.slice(0, dot);
  const id = rest.slice(dot + 1);
  if ((kind !== 'grad' && kind !== 'hb') || !ID_PATTERN.test(id) || RESERVED_WORKER_IDS.includes(id)) return undefined;
  return id;
}
