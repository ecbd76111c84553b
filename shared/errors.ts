// Typed errors with stable codes. Every error that can cross a process or NATS
// boundary serialises to { name, code, message, details, cause } and back.

export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'DATA_INVALID'
  | 'DATA_MISSING'
  | 'BACKEND_UNAVAILABLE'
  | 'PROTOCOL_INVALID'
  | 'CODEC_INVALID'
  | 'CHECKSUM_MISMATCH'
  | 'CHECKPOINT_INVALID'
  | 'CHECKPOINT_NOT_FOUND'
  | 'MODEL_INVALID'
  | 'DEPENDENCY_MISSING'
  | 'TIMEOUT'
  | 'STOPPED'
  | 'INTERNAL';

export interface SerializedError {
  name: string;
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
  cause?: SerializedError | { message: string };
}

export class LockstepError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details;
  }

  toJSON(): SerializedError {
    return serializeError(this);
  }
}

export class ConfigError extends LockstepError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('CONFIG_INVALID', message, options);
  }
}

export class DataError extends LockstepError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown>; missing?: boolean } = {}) {
    super(options.missing === true ? 'DATA_MISSING' : 'DATA_INVALID', message, options);
  }
}

export class BackendError extends LockstepError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('BACKEND_UNAVAILABLE', message, options);
  }
}

export class ProtocolError extends LockstepError {
  /** Why the message was rejected; used as the `reason` label of lockstep_rejected_messages_total. */
  readonly reason: string;
  constructor(reason: string, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('PROTOCOL_INVALID', message, { ...options, details: { reason, ...options.details } });
    this.reason = reason;
  }
}

export class CodecError extends LockstepError {
  readonly reason: string;
  constructor(reason: string, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(reason === 'crc' ? 'CHECKSUM_MISMATCH' : 'CODEC_INVALID', message, { ...options, details: { reason, ...options.details } });
    this.reason = reason;
  }
}

export class CheckpointError extends LockstepError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown>; notFound?: boolean } = {}) {
    super(options.notFound === true ? 'CHECKPOINT_NOT_FOUND' : 'CHECKPOINT_INVALID', message, options);
  }
}

export class ModelError extends LockstepError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('MODEL_INVALID', message, options);
  }
}

export class DependencyError extends LockstepError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('DEPENDENCY_MISSING', message, options);
  }
}

export class TimeoutError extends LockstepError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('TIMEOUT', message, options);
  }
}

export class StoppedError extends LockstepError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('STOPPED', message, options);
  }
}

export class InternalError extends LockstepError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('INTERNAL', message, options);
  }
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof LockstepError) {
    const out: SerializedError = { name: err.name, code: err.code, message: err.message };
    if (err.details !== undefined) out.details = err.details;
    if (err.cause !== undefined) out.cause = serializeError(err.cause);
    return out;
  }
  if (err instanceof Error) {
    return { name: err.name, code: 'INTERNAL', message: err.message };
  }
  return { name: 'Error', code: 'INTERNAL', message: String(err) };
}

/** Rebuilds an error received over NATS; the class is LockstepError with the original code and name. */
export function deserializeError(raw: SerializedError): LockstepError {
  const cause = raw.cause !== undefined && 'code' in raw.cause ? deserializeError(raw.cause) : raw.cause;
  const err = new LockstepError(raw.code, raw.message, { cause, details: raw.details });
  err.name = raw.name;
  return err;
}
