// One pino root logger per process; roles take child loggers bound to role, job and worker.
import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface LoggerOptions {
  level: LogLevel;
  /** Where JSON lines go; stderr by default so that `--json` keeps stdout for the result. */
  destination?: NodeJS.WritableStream;
}

export function createRootLogger(options: LoggerOptions): Logger {
  const dest = options.destination ?? process.stderr;
  return pino({ level: options.level, base: { pid: process.pid }, serializers: { err: pino.stdSerializers.err } }, dest as pino.DestinationStream);
}

export function roleLogger(root: Logger, bindings: { role: 'launcher' | 'coordinator' | 'worker' | 'trainer' | 'tool'; job: string; worker?: string }): Logger {
  return root.child({ role: bindings.role, job: bindings.job, worker: bindings.worker ?? null });
}
