// Chunking of frames below the NATS server's max_payload (1 MiB by default;
// read it from `nc.info.max_payload`), and reassembly on the receiving side.
//
// Chunk layout, all integers little-endian:
//   off  size  field
//   0    4     magic "LSC1"
//   4    16    transferId: 16 random bytes per transfer (crypto.getRandomValues).
//              Random rather than sender+seq so that a restarted sender, whose
//              counter starts again, can never collide with its previous life
//              inside a receiver's duplicate window.
//   20   4     chunkIndex (0-based)
//   24   4     chunkCount (>= 1)
//   28   4     totalLength: bytes of the whole reassembled frame
//   32   4     CRC-32 (IEEE) of bytes [0, 32) followed by the data, i.e. the
//              whole chunk except this field, so a damaged header is caught too
//   36   n     data
//
// Every chunk but the last carries the same number of bytes S, and the last
// carries 0 < L <= S (L = totalLength for a single chunk). Each chunk therefore
// determines its own offset (index * S, or totalLength - L for the last), and
// chunks can arrive in any order.
import { CodecError, ConfigError } from '../errors.js';
import { crc32 } from './crc32.js';

export const CHUNK_MAGIC = 'LSC1';
export const CHUNK_HEADER_BYTES = 36;
export const TRANSFER_ID_BYTES = 16;
/** Bytes of max_payload left for NATS message headers the caller may add. */
export const CHUNK_HEADROOM_BYTES = 1024;
export const DEFAULT_MAX_TRANSFER_BYTES = 256 * 1024 * 1024;

/** Every `reason` Reassembler.push / parseChunk can throw. */
export const CHUNK_ERROR_REASONS = ['chunk-header', 'chunk-crc', 'chunk-mismatch', 'duplicate', 'oversize'] as const;
export type ChunkErrorReason = (typeof CHUNK_ERROR_REASONS)[number];

const MAGIC_BYTES = new TextEncoder().encode(CHUNK_MAGIC);
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function fail(reason: ChunkErrorReason, message: string, details?: Record<string, unknown>): never {
  throw new CodecError(reason, `chunk rejected (${reason}): ${message}`, details === undefined ? {} : { details });
}

/** Lower-case hex of a transfer id (for logs and map keys). */
export function transferIdHex(id: Uint8Array): string {
  let s = '';
  for (let i = 0; i < id.length; i++) s += HEX[id[i] as number];
  return s;
}

/** 16 fresh random bytes. */
export function newTransferId(): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(TRANSFER_ID_BYTES));
}

/** Data bytes per chunk for a server max_payload, after the chunk header and NATS-header headroom. */
export function maxChunkDataBytes(maxPayload: number): number {
  const data = maxPayload - CHUNK_HEADROOM_BYTES - CHUNK_HEADER_BYTES;
  if (!Number.isSafeInteger(maxPayload) || data < 1) {
    throw new ConfigError(`max_payload ${maxPayload} is too small for chunking (need more than ${CHUNK_HEADROOM_BYTES + CHUNK_HEADER_BYTES} bytes)`, { details: { maxPayload } });
  }
  return data;
}

/**
 * Splits a frame into chunks of at most `maxPayload - CHUNK_HEADROOM_BYTES` bytes each
 * (one chunk when it fits). Each chunk is a fresh buffer, ready for `nc.publish`.
 */
export function splitFrame(frame: Uint8Array, maxPayload: number, transferId: Uint8Array = newTransferId()): Uint8Array[] {
  if (transferId.length !== TRANSFER_ID_BYTES) {
    throw new ConfigError(`transferId must be ${TRANSFER_ID_BYTES} bytes, got ${transferId.length}`);
  }
  if (frame.length > 0xffffffff) fail('oversize', `frame of ${frame.length} bytes exceeds the 4 GiB format limit`);
  const size = maxChunkDataBytes(maxPayload);
  const count = Math.max(1, Math.ceil(frame.length / size));
  const chunks: Uint8Array[] = [];
  for (let index = 0; index < count; index++) {
    const start = index * size;
    const data = frame.subarray(start, Math.min(frame.length, start + size));
    const chunk = new Uint8Array(CHUNK_HEADER_BYTES + data.length);
    const view = new DataView(chunk.buffer);
    chunk.set(MAGIC_BYTES, 0);
    chunk.set(transferId, 4);
    view.setUint32(20, index, true);
    view.setUint32(24, count, true);
    view.setUint32(28, frame.length, true);
    chunk.set(data, CHUNK_HEADER_BYTES);
    view.setUint32(32, crc32(chunk, crc32(chunk, 0, 0, 32), CHUNK_HEADER_BYTES), true);
    chunks.push(chunk);
  }
  return chunks;
}

export interface ParsedChunk {
  transferId: Uint8Array;
  index: number;
  count: number;
  totalLength: number;
  /** Uniform size S of every chunk but the last, implied by this chunk alone. */
  chunkSize: number;
  /** Byte offset of `data` in the reassembled frame. */
  offset: number;
  /** A view into the input chunk (no copy). */
  data: Uint8Array;
}

/**
 * Parses and verifies one chunk on its own (magic, CRC, self-consistent sizes).
 * Throws CodecError 'chunk-header', 'chunk-crc' or 'oversize'.
 */
export function parseChunk(chunk: Uint8Array, maxTransferBytes = DEFAULT_MAX_TRANSFER_BYTES): ParsedChunk {
  if (chunk.length < CHUNK_HEADER_BYTES) fail('chunk-header', `${chunk.length} bytes is shorter than the ${CHUNK_HEADER_BYTES}-byte header`);
  for (let i = 0; i < 4; i++) {
    if (chunk[i] !== MAGIC_BYTES[i]) fail('chunk-header', `bad magic (expected "${CHUNK_MAGIC}")`);
  }
  const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const stored = view.getUint32(32, true);
  const actual = crc32(chunk, crc32(chunk, 0, 0, 32), CHUNK_HEADER_BYTES);
  if (stored !== actual) fail('chunk-crc', `CRC-32 0x${actual.toString(16)} does not match stored 0x${stored.toString(16)}`);
  const index = view.getUint32(20, true);
  const count = view.getUint32(24, true);
  const totalLength = view.getUint32(28, true);
  const len = chunk.length - CHUNK_HEADER_BYTES;
  if (count === 0 || index >= count) fail('chunk-header', `chunk index ${index} of count ${count}`);
  if (totalLength > maxTransferBytes) fail('oversize', `transfer of ${totalLength} bytes exceeds the limit of ${maxTransferBytes}`, { bytes: totalLength, maxTransferBytes });
  let chunkSize: number;
  let offset: number;
  if (count === 1) {
    if (len !== totalLength) fail('chunk-header', `single chunk carries ${len} bytes of a ${totalLength}-byte transfer`);
    chunkSize = len;
    offset = 0;
  } else if (index < count - 1) {
    chunkSize = len;
    if (len === 0 || (count - 1) * len >= totalLength || count * len < totalLength) {
      fail('chunk-header', `chunk ${index}/${count} of ${len} bytes cannot be part of a ${totalLength}-byte transfer`);
    }
    offset = index * len;
  } else {
    const rest = totalLength - len;
    chunkSize = rest / (count - 1);
    if (len === 0 || rest < 0 || !Number.isInteger(chunkSize) || len > chunkSize) {
      fail('chunk-header', `last chunk of ${len} bytes cannot end a ${count}-chunk, ${totalLength}-byte transfer`);
    }
    offset = rest;
  }
  return { transferId: chunk.subarray(4, 4 + TRANSFER_ID_BYTES), index, count, totalLength, chunkSize, offset, data: chunk.subarray(CHUNK_HEADER_BYTES) };
}

export interface EvictedTransfer {
  source: string;
  transferId: string;
  reason: 'ttl' | 'capacity';
  receivedChunks: number;
  chunkCount: number;
  receivedBytes: number;
  totalLength: number;
  /** Milliseconds since the transfer's first chunk. */
  ageMs: number;
}

export interface ReassemblerOptions {
  /** Largest frame accepted (bytes); larger declared totals throw 'oversize'. Default 256 MiB. */
  maxTransferBytes?: number;
  /** Incomplete transfers held at once; a new one evicts the least recently active. Default 64. */
  maxOpenTransfers?: number;
  /** An incomplete transfer with no chunk for this long is evicted. Default 30 s. */
  ttlMs?: number;
  /** Bytes buffered over all incomplete transfers; default 2 x maxTransferBytes. Oldest evicted first. */
  maxBufferedBytes?: number;
  /** Completed transfer ids remembered (for ttlMs) to reject late duplicates. Default 1024. */
  rememberCompleted?: number;
  /** Clock in ms (injectable for tests). Default Date.now. */
  now?: () => number;
  /** Called once per evicted incomplete transfer (in addition to the `evicted` count). */
  onEvict?: (info: EvictedTransfer) => void;
}

interface Transfer {
  source: string;
  idHex: string;
  count: number;
  totalLength: number;
  chunkSize: number;
  received: Map<number, Uint8Array>;
  receivedBytes: number;
  firstAt: number;
  lastAt: number;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new ConfigError(`Reassembler option ${name} must be a positive integer, got ${v}`, { details: { [name]: v } });
  return v;
}

/**
 * Collects chunks into frames. One instance per subscription; keyed by
 * (source, transferId), so chunks from different sources never mix: pass the
 * NATS subject the chunk arrived on (authenticated by subject permissions), not
 * anything read from the payload. Memory is bounded by maxBufferedBytes and
 * maxOpenTransfers whatever is lost or forged.
 */
export class Reassembler {
  private readonly maxTransferBytes: number;
  private readonly maxOpenTransfers: number;
  private readonly ttlMs: number;
  private readonly maxBufferedBytes: number;
  private readonly rememberCompleted: number;
  private readonly now: () => number;
  private readonly onEvict: ((info: EvictedTransfer) => void) | undefined;
  /** Insertion order = least recently active first (entries are re-inserted on every chunk). */
  private readonly transfers = new Map<string, Transfer>();
  /** key -> expiry time, insertion order = completion order. */
  private readonly completedKeys = new Map<string, number>();
  private buffered = 0;
  private evictedCount = 0;
  private completedCount = 0;

  constructor(options: ReassemblerOptions = {}) {
    this.maxTransferBytes = positiveInt('maxTransferBytes', options.maxTransferBytes ?? DEFAULT_MAX_TRANSFER_BYTES);
    this.maxOpenTransfers = positiveInt('maxOpenTransfers', options.maxOpenTransfers ?? 64);
    this.ttlMs = positiveInt('ttlMs', options.ttlMs ?? 30_000);
    this.maxBufferedBytes = positiveInt('maxBufferedBytes', options.maxBufferedBytes ?? 2 * this.maxTransferBytes);
    if (this.maxBufferedBytes < this.maxTransferBytes) {
      throw new ConfigError(`Reassembler maxBufferedBytes (${this.maxBufferedBytes}) must be >= maxTransferBytes (${this.maxTransferBytes})`);
    }
    this.rememberCompleted = options.rememberCompleted ?? 1024;
    this.now = options.now ?? Date.now;
    this.onEvict = options.onEvict;
  }

  /** Incomplete transfers evicted so far (ttl or capacity): each is a lost message. */
  get evicted(): number {
    return this.evictedCount;
  }

  /** Transfers reassembled so far. */
  get completed(): number {
    return this.completedCount;
  }

  /** Incomplete transfers held now. */
  get openTransfers(): number {
    return this.transfers.size;
  }

  /** Bytes held in incomplete transfers now. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** The largest frame this reassembler accepts. */
  get maxFrameBytes(): number {
    return this.maxTransferBytes;
  }

  /**
   * Adds one chunk. Returns the whole frame when this chunk completes it, else null.
   * A single-chunk transfer is returned as a view of `chunk` (no copy).
   * Throws CodecError: 'chunk-header', 'chunk-crc', 'oversize' (see parseChunk),
   * 'chunk-mismatch' (count, length or chunk size disagree with earlier chunks of
   * the same transfer), 'duplicate' (a chunk index already held, or a transfer
   * completed within ttlMs). A rejected chunk leaves the transfer as it was.
   */
  push(chunk: Uint8Array, source: string): Uint8Array | null {
    const now = this.now();
    this.sweep(now);
    const c = parseChunk(chunk, this.maxTransferBytes);
    const idHex = transferIdHex(c.transferId);
    const key = `${source}\u0000${idHex}`;
    if (this.completedKeys.has(key)) fail('duplicate', `transfer ${idHex} from ${source} was already completed`, { source, transferId: idHex });

    let t = this.transfers.get(key);
    if (t !== undefined) {
      if (c.count !== t.count || c.totalLength !== t.totalLength || c.chunkSize !== t.chunkSize) {
        fail('chunk-mismatch', `chunk ${c.index} says ${c.count} chunks of ${c.chunkSize} bytes, ${c.totalLength} in all; transfer ${idHex} from ${source} began with ${t.count} of ${t.chunkSize}, ${t.totalLength} in all`, {
          source,
          transferId: idHex,
        });
      }
      if (t.received.has(c.index)) fail('duplicate', `chunk ${c.index} of transfer ${idHex} from ${source} already received`, { source, transferId: idHex, index: c.index });
    }

    if (c.count === 1) {
      this.remember(key, now);
      return c.data;
    }

    if (t === undefined) {
      while (this.transfers.size >= this.maxOpenTransfers) this.evictOldest('capacity', now);
      t = { source, idHex, count: c.count, totalLength: c.totalLength, chunkSize: c.chunkSize, received: new Map(), receivedBytes: 0, firstAt: now, lastAt: now };
    }
    this.transfers.delete(key);
    while (this.buffered + c.data.length > this.maxBufferedBytes && this.transfers.size > 0) this.evictOldest('capacity', now);
    // A copy even for a Node Buffer (whose slice() is a view of the socket buffer).
    t.received.set(c.index, Uint8Array.prototype.slice.call(c.data));
    t.receivedBytes += c.data.length;
    t.lastAt = now;
    this.buffered += c.data.length;

    if (t.received.size < t.count) {
      this.transfers.set(key, t);
      return null;
    }
    this.buffered -= t.receivedBytes;
    const out = new Uint8Array(t.totalLength);
    for (const [index, data] of t.received) out.set(data, index === t.count - 1 ? t.totalLength - data.length : index * t.chunkSize);
    this.remember(key, now);
    return out;
  }

  /** Evicts incomplete transfers idle for ttlMs and forgets expired completions. Called by push; call it on a timer too. */
  sweep(now: number = this.now()): number {
    let n = 0;
    for (const t of this.transfers.values()) {
      if (now - t.lastAt < this.ttlMs) break;
      this.evict(t, 'ttl', now);
      n++;
    }
    for (const [key, expires] of this.completedKeys) {
      if (expires > now) break;
      this.completedKeys.delete(key);
    }
    return n;
  }

  /** Drops a source's incomplete transfers without counting them as evicted (e.g. a worker declared lost). */
  dropSource(source: string): number {
    let n = 0;
    for (const [key, t] of this.transfers) {
      if (t.source !== source) continue;
      this.transfers.delete(key);
      this.buffered -= t.receivedBytes;
      n++;
    }
    return n;
  }

  private remember(key: string, now: number): void {
    this.completedCount++;
    if (this.rememberCompleted <= 0) return;
    this.completedKeys.set(key, now + this.ttlMs);
    while (this.completedKeys.size > this.rememberCompleted) {
      const oldest = this.completedKeys.keys().next();
      if (oldest.done === true) break;
      this.completedKeys.delete(oldest.value);
    }
  }

  private evictOldest(reason: 'ttl' | 'capacity', now: number): void {
    const oldest = this.transfers.values().next();
    if (oldest.done !== true) this.evict(oldest.value, reason, now);
  }

  private evict(t: Transfer, reason: 'ttl' | 'capacity', now: number): void {
    this.transfers.delete(`${t.source}\u0000${t.idHex}`);
    this.buffered -= t.receivedBytes;
    this.evictedCount++;
    this.onEvict?.({
      source: t.source,
      transferId: t.idHex,
      reason,
      receivedChunks: t.received.size,
      chunkCount: t.count,
      receivedBytes: t.receivedBytes,
      totalLength: t.totalLength,
      ageMs: now - t.firstAt,
    });
  }
}
