// Every message of protocol v1: runtime schemas (zod) and the TypeScript types
// inferred from them, so the wire check and the compile-time type cannot drift.
//
// Rules:
// - `type` is "lockstep.v<N>.<name>"; a different N, or an envelope `protocol`
//   other than 1, is rejected as 'protocol-version'.
// - Within v1 only OPTIONAL fields may be added. Receivers therefore accept
//   unknown fields and drop them (zod's default strip), so an older reader keeps
//   working with a newer sender. Anything that changes meaning needs v2.
// - JSON messages travel as UTF-8; tensors travel as binary frames whose meta
//   is a grad or weights message (binary-message.ts).
import { z } from 'zod';
import { ProtocolError, serializeError } from '../errors.js';

export { checkFinite } from './finite.js';

export const PROTOCOL_VERSION = 1;
/** Worker, coordinator and job ids: usable as one NATS subject token. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** Default limit for a JSON message (bytes; a string is measured in UTF-16 units). */
export const DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

/** Every `reason` parseMessage / encodeMessage / createMessage can throw. */
export const MESSAGE_ERROR_REASONS = ['json', 'schema', 'protocol-version', 'unknown-type', 'oversize'] as const;
export type MessageErrorReason = (typeof MESSAGE_ERROR_REASONS)[number];

export const MSG = {
  join: 'lockstep.v1.join',
  joinAck: 'lockstep.v1.join-ack',
  step: 'lockstep.v1.step',
  grad: 'lockstep.v1.grad',
  weights: 'lockstep.v1.weights',
  state: 'lockstep.v1.state',
  hb: 'lockstep.v1.hb',
  ctl: 'lockstep.v1.ctl',
  leave: 'lockstep.v1.leave',
  error: 'lockstep.v1.error',
} as const;

export const idSchema = z.string().regex(ID_PATTERN, 'must match /^[A-Za-z0-9_-]{1,64}$/');
const uint = z.number().int().nonnegative().safe();
const int = z.number().int().safe();
const finite = z.number().finite();
const seconds = z.number().finite().nonnegative();
const text = z.string().max(4096);

const envelopeShape = {
  protocol: z.literal(PROTOCOL_VERSION),
  job: idSchema,
  /** Bumped on every coordinator start; receivers ignore older terms. */
  term: uint,
  step: uint,
  sender: idSchema,
};
export const envelopeSchema = z.object(envelopeShape);
export type Envelope = z.infer<typeof envelopeSchema>;
/** What a sender supplies; `protocol` is filled in. */
export type EnvelopeInit = Omit<Envelope, 'protocol'>;

/** worker -> coordinator request on `join`. */
export const joinSchema = z.object({
  type: z.literal(MSG.join),
  ...envelopeShape,
  host: text,
  pid: uint,
  backend: text,
  backendVersion: text,
  device: text,
  metricsPort: z.number().int().min(0).max(65535).optional(),
});

/** Reply to join. `config` is the job's training options, opaque at this layer. */
export const joinAckSchema = z.object({
  type: z.literal(MSG.joinAck),
  ...envelopeShape,
  rank: int,
  workerId: idSchema,
  accepted: z.boolean(),
  reason: text.optional(),
  config: z.record(z.string(), z.unknown()),
  weightsVersion: uint,
  maxPayload: z.number().int().positive().safe().optional(),
});

export const stepPartSchema = z.object({
  part: uint,
  worker: idSchema,
  attempt: uint,
  /** Global image indices of this part, in order. */
  indices: z.array(uint),
});
export type StepPart = z.infer<typeof stepPartSchema>;

/** Coordinator broadcast on `step`: who computes which part of the global batch. */
export const stepSchema = z.object({
  type: z.literal(MSG.step),
  ...envelopeShape,
  epoch: uint,
  weightsVersion: uint,
  /** Global batch size: the divisor of the summed gradient. */
  globalCount: uint,
  parts: z.array(stepPartSchema),
  deadlineMs: uint.optional(),
});

export const lossSumsSchema = z.object({ total: finite, reconstruction: finite, kl: finite });
export type LossSums = z.infer<typeof lossSumsSchema>;

/** Meta of a gradient frame on `grad.<worker>`: the SUM over `count` images, `numel` floats. */
export const gradSchema = z.object({
  type: z.literal(MSG.grad),
  ...envelopeShape,
  part: uint,
  attempt: uint,
  weightsVersion: uint,
  count: uint,
  numel: uint,
  lossSums: lossSumsSchema,
  computeSeconds: seconds,
  encodeSeconds: seconds.optional(),
});

/** Meta of a weights frame on `weights` (broadcast) or in reply to `state`. */
export const weightsSchema = z.object({
  type: z.literal(MSG.weights),
  ...envelopeShape,
  version: uint,
  epoch: uint,
  numel: uint,
});

/** worker -> coordinator request for the current weights. */
export const stateSchema = z.object({
  type: z.literal(MSG.state),
  ...envelopeShape,
  wantVersion: uint.optional(),
});

export const HB_STATUSES = ['idle', 'busy', 'joining', 'paused', 'stopping'] as const;
/** Heartbeat on `hb.<worker>` and `hb.coord`. */
export const hbSchema = z.object({
  type: z.literal(MSG.hb),
  ...envelopeShape,
  status: z.enum(HB_STATUSES),
  partsDone: uint.optional(),
  lastPartSeconds: seconds.optional(),
  members: z.array(idSchema).optional(),
});

export const CTL_ACTIONS = ['stop', 'pause', 'resume'] as const;
/** Coordinator broadcast on `ctl`. */
export const ctlSchema = z.object({
  type: z.literal(MSG.ctl),
  ...envelopeShape,
  action: z.enum(CTL_ACTIONS),
  reason: text.optional(),
});

export const leaveSchema = z.object({
  type: z.literal(MSG.leave),
  ...envelopeShape,
  reason: text.optional(),
});

/** A reply carrying a serialised LockstepError (shared/errors.ts). */
export const errorSchema = z.object({
  type: z.literal(MSG.error),
  ...envelopeShape,
  error: z.object({
    name: z.string().max(256),
    code: z.string().max(64),
    message: z.string().max(65536),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});

export const messageSchema = z.discriminatedUnion('type', [
  joinSchema,
  joinAckSchema,
  stepSchema,
  gradSchema,
  weightsSchema,
  stateSchema,
  hbSchema,
  ctlSchema,
  leaveSchema,
  errorSchema,
]);

export type JoinMessage = z.infer<typeof joinSchema>;
export type JoinAckMessage = z.infer<typeof joinAckSchema>;
export type StepMessage = z.infer<typeof stepSchema>;
export type GradMessage = z.infer<typeof gradSchema>;
export type WeightsMessage = z.infer<typeof weightsSchema>;
export type StateMessage = z.infer<typeof stateSchema>;
export type HbMessage = z.infer<typeof hbSchema>;
export type CtlMessage = z.infer<typeof ctlSchema>;
export type LeaveMessage = z.infer<typeof leaveSchema>;
export type ErrorMessage = z.infer<typeof errorSchema>;
export type Message = z.infer<typeof messageSchema>;
export type MessageType = Message['type'];
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;
/** The fields of a message type beyond `type` and the envelope. */
export type MessageBody<T extends MessageType> = Omit<MessageOf<T>, 'type' | keyof Envelope>;

const SCHEMAS: ReadonlyMap<string, z.ZodTypeAny> = new Map<string, z.ZodTypeAny>(messageSchema.options.map((s) => [s.shape.type.value, s]));
export const MESSAGE_TYPES: readonly MessageType[] = Object.values(MSG);

const TYPE_PATTERN = /^lockstep\.v(\d{1,9})\.([a-z][a-z0-9-]{0,63})$/;
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function clip(v: unknown): string | undefined {
  return typeof v === 'string' ? v.slice(0, 80) : undefined;
}

function summarise(error: z.ZodError): string {
  const parts = error.issues.slice(0, 3).map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`);
  if (error.issues.length > 3) parts.push(`and ${error.issues.length - 3} more`);
  return parts.join('; ');
}

function validate(obj: Record<string, unknown>): Message {
  const type = obj.type;
  const sender = clip(obj.sender);
  const ctx = { type: clip(type), sender };
  if (typeof type !== 'string') throw new ProtocolError('schema', 'message rejected (schema): type: missing or not a string', { details: ctx });
  const m = TYPE_PATTERN.exec(type);
  if (m === null) throw new ProtocolError('unknown-type', `message rejected (unknown-type): "${clip(type)}" is not a lockstep message type`, { details: ctx });
  if (m[1] !== String(PROTOCOL_VERSION)) {
    throw new ProtocolError('protocol-version', `message rejected (protocol-version): ${type} is protocol v${m[1]}, this peer speaks v${PROTOCOL_VERSION}`, { details: ctx });
  }
  if (typeof obj.protocol === 'number' && obj.protocol !== PROTOCOL_VERSION) {
    throw new ProtocolError('protocol-version', `message rejected (protocol-version): envelope protocol ${obj.protocol}, this peer speaks ${PROTOCOL_VERSION}`, { details: ctx });
  }
  const schema = SCHEMAS.get(type);
  if (schema === undefined) throw new ProtocolError('unknown-type', `message rejected (unknown-type): ${type} is not a v${PROTOCOL_VERSION} message type`, { details: ctx });
  const res = schema.safeParse(obj);
  if (!res.success) throw new ProtocolError('schema', `message rejected (schema): ${type}${sender === undefined ? '' : ` from ${sender}`}: ${summarise(res.error)}`, { details: ctx });
  return res.data as Message;
}

export interface ParseMessageOptions {
  /** Largest encoded message accepted (default DEFAULT_MAX_MESSAGE_BYTES). */
  maxBytes?: number;
}

/**
 * Validates a message at the edge. `raw` is the NATS payload (UTF-8 JSON bytes), a
 * JSON string, or an already-decoded value (e.g. a frame's meta). Returns the typed
 * message with unknown fields dropped. Throws ProtocolError with reason in
 * MESSAGE_ERROR_REASONS; its `details` carry `type` and `sender` when readable.
 */
export function parseMessage(raw: Uint8Array | string | unknown, opts: ParseMessageOptions = {}): Message {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  let value: unknown = raw;
  if (raw instanceof Uint8Array || typeof raw === 'string') {
    if (raw.length > maxBytes) throw new ProtocolError('oversize', `message rejected (oversize): ${raw.length} bytes exceeds the limit of ${maxBytes}`);
    try {
      value = JSON.parse(typeof raw === 'string' ? raw : utf8Strict.decode(raw));
    } catch (err) {
      throw new ProtocolError('json', `message rejected (json): ${(err as Error).message}`, { cause: err });
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolError('schema', `message rejected (schema): (root): expected a JSON object, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
  }
  return validate(value as Record<string, unknown>);
}

/** Validates (a bug at the sender throws ProtocolError 'schema') and serialises a message to UTF-8 JSON. */
export function encodeMessage(m: Message): Uint8Array {
  return utf8.encode(JSON.stringify(validate(m as unknown as Record<string, unknown>)));
}

/** The envelope for a sender's message; validates the ids and counters. */
export function makeEnvelope(init: EnvelopeInit): Envelope {
  const res = envelopeSchema.safeParse({ protocol: PROTOCOL_VERSION, job: init.job, term: init.term, step: init.step, sender: init.sender });
  if (!res.success) throw new ProtocolError('schema', `envelope rejected (schema): ${summarise(res.error)}`);
  return res.data;
}

/**
 * Builds and validates a message: createMessage(MSG.hb, { job, term, step, sender }, { status: 'idle' }).
 * Throws ProtocolError 'schema' on a field of the wrong shape.
 */
export function createMessage<T extends MessageType>(type: T, envelope: EnvelopeInit | Envelope, body: MessageBody<T>): MessageOf<T> {
  const obj = { ...body, type, protocol: PROTOCOL_VERSION, job: envelope.job, term: envelope.term, step: envelope.step, sender: envelope.sender };
  return validate(obj as unknown as Record<string, unknown>) as MessageOf<T>;
}

/** Narrows a parsed message by type. */
export function isMessageType<T extends MessageType>(m: Message, type: T): m is MessageOf<T> {
  return m.type === type;
}

/** An error reply for `err` (any thrown value), e.g. to answer a bad join request. */
export function makeErrorMessage(envelope: EnvelopeInit | Envelope, err: unknown): ErrorMessage {
  const s = serializeError(err);
  const error: ErrorMessage['error'] = { name: s.name.slice(0, 256), code: s.code, message: s.message.slice(0, 65536) };
  if (s.details !== undefined) error.details = s.details;
  return createMessage(MSG.error, envelope, { error });
}
