// Binary frame for one tensor plus its JSON metadata (a gradient part, a weights
// broadcast). Layout, all integers little-endian:
//
//   off  size  field
//   0    4     magic "LSF1"
//   4    1     format version (1)
//   5    1     dtype: 0 = float32, 1 = float16
//   6    2     reserved, written 0; non-zero is rejected as 'version' (a feature this reader lacks)
//   8    4     metaLength (bytes of UTF-8 JSON)
//   12   4     payloadLength (bytes; a multiple of the dtype's size)
//   16   m     meta: UTF-8 JSON object, right-padded with spaces to a multiple of 4 so the payload is 4-byte aligned
//   16+m p     payload: raw little-endian tensor elements
//   16+m+p 4   CRC-32 (IEEE) of bytes [0, 16+m+p)
//
// A frame is self-delimiting and checked as a whole; chunking (chunks.ts) is a separate layer.
import { CodecError } from '../errors.js';
import { crc32 } from './crc32.js';
import { float16ToFloat32, float32ToFloat16 } from './float16.js';
import { HOST_IS_LITTLE_ENDIAN, readFloat32LE, readUint16LE, writeFloat32LE, writeUint16LE } from './endian.js';

export const FRAME_MAGIC = 'LSF1';
export const FRAME_VERSION = 1;
export const FRAME_HEADER_BYTES = 16;
export const FRAME_TRAILER_BYTES = 4;
/** Header plus CRC: the least a decoder reads before it can check lengths. */
export const FRAME_MIN_BYTES = FRAME_HEADER_BYTES + FRAME_TRAILER_BYTES;
/** Default decode limit; a frame also cannot exceed 4 GiB because lengths are u32. */
export const DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024;

export type Dtype = 'float32' | 'float16';
const DTYPE_CODE: Record<Dtype, number> = { float32: 0, float16: 1 };
const DTYPE_BY_CODE: readonly Dtype[] = ['float32', 'float16'];
const DTYPE_SIZE: Record<Dtype, number> = { float32: 4, float16: 2 };

/** Every `reason` decodeFrame can throw, e.g. for pre-registering metric label values. */
export const FRAME_ERROR_REASONS = ['truncated', 'magic', 'version', 'dtype', 'length', 'crc', 'meta-json', 'oversize'] as const;
export type FrameErrorReason = (typeof FRAME_ERROR_REASONS)[number];

export interface EncodeFrameOptions {
  /** Wire element type; float16 halves the bytes (round-to-nearest-even, overflow -> Inf). Default float32. */
  dtype?: Dtype;
}

export interface DecodeFrameLimits {
  /** Largest frame accepted, in bytes (default DEFAULT_MAX_FRAME_BYTES). */
  maxBytes?: number;
}

export interface DecodedFrame {
  meta: unknown;
  /**
   * The tensor. For float32 frames on a little-endian host with 4-byte aligned
   * data this is a VIEW of the input buffer (zero-copy): treat it as read-only,
   * or copy it if the input buffer may be reused.
   */
  payload: Float32Array;
  dtype: Dtype;
}

const MAGIC_BYTES = new TextEncoder().encode(FRAME_MAGIC);
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function fail(reason: FrameErrorReason, message: string, details?: Record<string, unknown>): never {
  throw new CodecError(reason, `frame rejected (${reason}): ${message}`, details === undefined ? {} : { details });
}

/**
 * Encodes `meta` (a JSON-serialisable object) and a float32 tensor into one frame.
 * Throws CodecError 'meta-json' when meta does not serialise to a JSON object and
 * 'oversize' past the u32 length fields.
 */
export function encodeFrame(meta: object, payload: Float32Array, opts: EncodeFrameOptions = {}): Uint8Array {
  const dtype = opts.dtype ?? 'float32';
  if (!Object.hasOwn(DTYPE_CODE, dtype)) fail('dtype', `unknown dtype ${String(dtype)}`);
  let json: string | undefined;
  try {
    json = JSON.stringify(meta);
  } catch (err) {
    throw new CodecError('meta-json', `frame rejected (meta-json): meta does not serialise: ${(err as Error).message}`, { cause: err });
  }
  if (json === undefined || !json.startsWith('{')) fail('meta-json', 'meta must serialise to a JSON object');
  const metaBytes = utf8.encode(json);
  const metaLength = (metaBytes.length + 3) & ~3;
  const payloadLength = payload.length * DTYPE_SIZE[dtype];
  const total = FRAME_HEADER_BYTES + metaLength + payloadLength + FRAME_TRAILER_BYTES;
  if (total > 0xffffffff) fail('oversize', `frame of ${total} bytes exceeds the 4 GiB format limit`);

  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(MAGIC_BYTES, 0);
  view.setUint8(4, FRAME_VERSION);
  view.setUint8(5, DTYPE_CODE[dtype]);
  view.setUint16(6, 0, true);
  view.setUint32(8, metaLength, true);
  view.setUint32(12, payloadLength, true);
  out.set(metaBytes, FRAME_HEADER_BYTES);
  out.fill(0x20, FRAME_HEADER_BYTES + metaBytes.length, FRAME_HEADER_BYTES + metaLength);
  const payloadOffset = FRAME_HEADER_BYTES + metaLength;
  if (dtype === 'float32') {
    writeFloat32LE(out, payloadOffset, payload);
  } else if (HOST_IS_LITTLE_ENDIAN) {
    // Convert straight into the frame: payloadOffset is 4-aligned in a fresh buffer.
    float32ToFloat16(payload, new Uint16Array(out.buffer, payloadOffset, payload.length));
  } else {
    writeUint16LE(out, payloadOffset, float32ToFloat16(payload));
  }
  view.setUint32(total - FRAME_TRAILER_BYTES, crc32(out, 0, 0, total - FRAME_TRAILER_BYTES), true);
  return out;
}

/**
 * Decodes and verifies one frame. Throws CodecError with `reason` one of
 * FRAME_ERROR_REASONS. The meta is parsed JSON (an object) but NOT validated:
 * run it through parseMessage (messages.ts) or use BinaryReceiver.
 */
export function decodeFrame(buf: Uint8Array, limits: DecodeFrameLimits = {}): DecodedFrame {
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (buf.length > maxBytes) fail('oversize', `${buf.length} bytes exceeds the limit of ${maxBytes}`, { bytes: buf.length, maxBytes });
  if (buf.length < 4) fail('truncated', `${buf.length} bytes is shorter than the magic`);
  for (let i = 0; i < 4; i++) {
    if (buf[i] !== MAGIC_BYTES[i]) fail('magic', `bad magic (expected "${FRAME_MAGIC}")`);
  }
  if (buf.length < FRAME_MIN_BYTES) fail('truncated', `${buf.length} bytes is shorter than the ${FRAME_MIN_BYTES}-byte minimum`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const version = view.getUint8(4);
  if (version !== FRAME_VERSION) fail('version', `format version ${version}, this reader understands ${FRAME_VERSION}`, { version });
  const reserved = view.getUint16(6, true);
  if (reserved !== 0) fail('version', `reserved field is 0x${reserved.toString(16)}: a feature this reader does not understand`);
  const dtypeCode = view.getUint8(5);
  const dtype = DTYPE_BY_CODE[dtypeCode];
  if (dtype === undefined) fail('dtype', `unknown dtype code ${dtypeCode}`, { dtypeCode });
  const metaLength = view.getUint32(8, true);
  const payloadLength = view.getUint32(12, true);
  const elem = DTYPE_SIZE[dtype];
  if (payloadLength % elem !== 0) fail('length', `payload of ${payloadLength} bytes is not a whole number of ${dtype} elements`);
  const total = FRAME_HEADER_BYTES + metaLength + payloadLength + FRAME_TRAILER_BYTES;
  if (total > maxBytes) fail('oversize', `declared frame of ${total} bytes exceeds the limit of ${maxBytes}`, { bytes: total, maxBytes });
  if (total > buf.length) fail('truncated', `declared ${total} bytes, got ${buf.length}`, { expected: total, got: buf.length });
  if (total < buf.length) fail('length', `declared ${total} bytes, got ${buf.length} (trailing bytes)`, { expected: total, got: buf.length });
  const stored = view.getUint32(total - FRAME_TRAILER_BYTES, true);
  const actual = crc32(buf, 0, 0, total - FRAME_TRAILER_BYTES);
  if (stored !== actual) fail('crc', `CRC-32 0x${actual.toString(16)} does not match stored 0x${stored.toString(16)}`);

  let meta: unknown;
  try {
    meta = JSON.parse(utf8Strict.decode(buf.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + metaLength)));
  } catch (err) {
    throw new CodecError('meta-json', `frame rejected (meta-json): ${(err as Error).message}`, { cause: err });
  }
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) fail('meta-json', 'meta is not a JSON object');

  const payloadOffset = FRAME_HEADER_BYTES + metaLength;
  const count = payloadLength / elem;
  const payload = dtype === 'float32' ? readFloat32LE(buf, payloadOffset, count) : float16ToFloat32(readUint16LE(buf, payloadOffset, count));
  return { meta, payload, dtype };
}

/** Bytes a frame will take on the wire, before chunking. */
export function frameByteLength(metaJsonBytes: number, numel: number, dtype: Dtype = 'float32'): number {
  return FRAME_HEADER_BYTES + ((metaJsonBytes + 3) & ~3) + numel * DTYPE_SIZE[dtype] + FRAME_TRAILER_BYTES;
}
