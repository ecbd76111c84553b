// Tensors with a typed header, end to end: a grad or weights message (the
// frame's meta) plus its float32 payload -> chunks ready to publish, and chunks
// -> a validated { meta, payload } that is safe to aggregate. This is the one
// path a tensor takes in and out of NATS.
import { CodecError, ProtocolError } from '../errors.js';
import { Reassembler } from './chunks.js';
import type { ReassemblerOptions } from './chunks.js';
import { checkFinite } from './finite.js';
import { decodeFrame, encodeFrame } from './frame.js';
import type { Dtype } from './frame.js';
import { MSG, parseMessage } from './messages.js';
import type { GradMessage, Message, MessageOf, WeightsMessage } from './messages.js';
import { splitFrame } from './chunks.js';

export const BINARY_MESSAGE_TYPES = [MSG.grad, MSG.weights] as const;
export type BinaryMessageType = (typeof BINARY_MESSAGE_TYPES)[number];
export type BinaryMessage = GradMessage | WeightsMessage;

/** Reasons added by this layer on top of the frame, chunk and message reasons. */
export const BINARY_ERROR_REASONS = ['numel', 'non-finite', 'unexpected-type'] as const;
export type BinaryErrorReason = (typeof BINARY_ERROR_REASONS)[number];

export interface EncodeBinaryOptions {
  /** The connection's `nc.info.max_payload`. */
  maxPayload: number;
  /** Wire dtype (default float32). float16 overflows to Inf beyond 65504, which receivers reject as 'non-finite'. */
  dtype?: Dtype;
  /** 16 bytes; random by default. */
  transferId?: Uint8Array;
}

function isBinaryType(t: Message['type']): t is BinaryMessageType {
  return (BINARY_MESSAGE_TYPES as readonly string[]).includes(t);
}

/**
 * Validates `meta` (ProtocolError 'schema' / 'unexpected-type'), checks that
 * `meta.numel === payload.length` (CodecError 'numel') and returns the chunks to
 * publish, in order, on one subject. NaN/Inf values are sent as they are: that
 * judgement is the receiver's.
 */
export function encodeBinaryMessage(meta: BinaryMessage, payload: Float32Array, opts: EncodeBinaryOptions): Uint8Array[] {
  const m = parseMessage(meta);
  if (!isBinaryType(m.type)) throw new ProtocolError('unexpected-type', `message rejected (unexpected-type): ${m.type} does not carry a tensor`);
  const numel = (m as BinaryMessage).numel;
  if (numel !== payload.length) throw new CodecError('numel', `tensor rejected (numel): meta says ${numel} elements, payload has ${payload.length}`);
  const frame = encodeFrame(m, payload, opts.dtype === undefined ? {} : { dtype: opts.dtype });
  return splitFrame(frame, opts.maxPayload, opts.transferId);
}

export interface ReceivedBinary<M extends BinaryMessage = BinaryMessage> {
  meta: M;
  /** numel finite floats. May be a view of receive buffers: read it, or copy it before keeping it past the handler. */
  payload: Float32Array;
  dtype: Dtype;
  /** Bytes of the reassembled frame (for gradient-bytes metrics). */
  frameBytes: number;
  /** The source the chunks were pushed with. */
  source: string;
}

/**
 * Checks a whole frame: decodeFrame, parseMessage on the meta, type in `accept`,
 * numel, finiteness. Throws CodecError (frame reasons, 'numel', 'non-finite') or
 * ProtocolError (message reasons, 'unexpected-type').
 */
export function decodeBinaryMessage<T extends BinaryMessageType = BinaryMessageType>(
  frame: Uint8Array,
  opts: { accept?: readonly T[]; maxFrameBytes?: number; source?: string } = {},
): ReceivedBinary<MessageOf<T>> {
  const accept: readonly string[] = opts.accept ?? BINARY_MESSAGE_TYPES;
  const decoded = decodeFrame(frame, opts.maxFrameBytes === undefined ? {} : { maxBytes: opts.maxFrameBytes });
  const meta = parseMessage(decoded.meta);
  const from = meta.sender;
  if (!accept.includes(meta.type)) {
    throw new ProtocolError('unexpected-type', `message rejected (unexpected-type): ${meta.type} from ${from} where ${accept.join(' or ')} was expected`, {
      details: { type: meta.type, sender: from },
    });
  }
  const numel = (meta as BinaryMessage).numel;
  if (numel !== decoded.payload.length) {
    throw new CodecError('numel', `tensor rejected (numel): ${meta.type} from ${from} says ${numel} elements, payload has ${decoded.payload.length}`, {
      details: { type: meta.type, sender: from, numel, got: decoded.payload.length },
    });
  }
  const bad = checkFinite(decoded.payload);
  if (bad >= 0) {
    throw new CodecError('non-finite', `tensor rejected (non-finite): ${meta.type} from ${from} has ${decoded.payload[bad]} at index ${bad}`, {
      details: { type: meta.type, sender: from, index: bad },
    });
  }
  return { meta: meta as MessageOf<T>, payload: decoded.payload, dtype: decoded.dtype, frameBytes: frame.length, source: opts.source ?? '' };
}

export interface BinaryReceiverOptions<T extends BinaryMessageType> extends ReassemblerOptions {
  /** Message types this subscription accepts; others throw 'unexpected-type'. Default: grad and weights. */
  accept?: readonly T[];
}

/**
 * One per subscription (e.g. the coordinator's `grad.*`, a worker's `weights`):
 *
 *   const rx = new BinaryReceiver({ accept: [MSG.grad], maxTransferBytes, ttlMs: 30_000 });
 *   for await (const msg of sub) {
 *     try { const got = rx.push(msg.data, msg.subject); if (got) handle(got.meta, got.payload); }
 *     catch (err) { if (err instanceof CodecError || err instanceof ProtocolError) countRejected(err.reason); else throw err; }
 *   }
 *
 * Nothing that push returns has failed a check; everything that failed threw.
 * Staleness (term, step, weightsVersion) and sender identity are the caller's checks.
 */
export class BinaryReceiver<T extends BinaryMessageType = BinaryMessageType> {
  readonly reassembler: Reassembler;
  private readonly accept: readonly T[];

  constructor(options: BinaryReceiverOptions<T> = {}) {
    const { accept, ...reassembler } = options;
    this.reassembler = new Reassembler(reassembler);
    this.accept = accept ?? (BINARY_MESSAGE_TYPES as readonly BinaryMessageType[] as readonly T[]);
  }

  /** Adds one chunk from `source` (use the NATS subject); returns the checked message when its last chunk arrives. */
  push(chunk: Uint8Array, source: string): ReceivedBinary<MessageOf<T>> | null {
    const frame = this.reassembler.push(chunk, source);
    if (frame === null) return null;
    return decodeBinaryMessage(frame, { accept: this.accept, maxFrameBytes: this.reassembler.maxFrameBytes, source });
  }

  /** Evicts stale incomplete transfers; returns how many. */
  sweep(now?: number): number {
    return this.reassembler.sweep(now);
  }
}
