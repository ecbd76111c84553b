// Little-endian tensor copies. The wire is always little-endian; on a
// little-endian host (every platform Node ships for today) a typed-array view
// or one memcpy does the job, and the DataView loops below keep big-endian
// hosts correct. `forceDataView` exists so the tests exercise the portable path.

export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Writes `src` as little-endian float32 into `dst` at byte `offset`. */
export function writeFloat32LE(dst: Uint8Array, offset: number, src: Float32Array, forceDataView = false): void {
  if (HOST_IS_LITTLE_ENDIAN && !forceDataView) {
    dst.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), offset);
    return;
  }
  const view = new DataView(dst.buffer, dst.byteOffset + offset, src.length * 4);
  for (let i = 0; i < src.length; i++) view.setFloat32(i * 4, src[i] as number, true);
}

/**
 * Reads `count` little-endian float32 values at byte `offset` of `src`.
 * Zero-copy (a view sharing `src`'s memory) when the host is little-endian and
 * the data is 4-byte aligned; a copy otherwise.
 */
export function readFloat32LE(src: Uint8Array, offset: number, count: number, forceDataView = false): Float32Array {
  const start = src.byteOffset + offset;
  if (HOST_IS_LITTLE_ENDIAN && !forceDataView) {
    if (start % 4 === 0) return new Float32Array(src.buffer, start, count);
    // Uint8Array.prototype.slice copies even when src is a Node Buffer, whose own slice() is a view.
    return new Float32Array(Uint8Array.prototype.slice.call(src, offset, offset + count * 4).buffer);
  }
  const view = new DataView(src.buffer, start, count * 4);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** Writes uint16 values as little-endian at byte `offset` of `dst`. */
export function writeUint16LE(dst: Uint8Array, offset: number, src: Uint16Array, forceDataView = false): void {
  if (HOST_IS_LITTLE_ENDIAN && !forceDataView) {
    dst.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), offset);
    return;
  }
  const view = new DataView(dst.buffer, dst.byteOffset + offset, src.length * 2);
  for (let i = 0; i < src.length; i++) view.setUint16(i * 2, src[i] as number, true);
}

/** Reads `count` little-endian uint16 values at byte `offset`; a view when aligned on a little-endian host. */
export function readUint16LE(src: Uint8Array, offset: number, count: number, forceDataView = false): Uint16Array {
  const start = src.byteOffset + offset;
  if (HOST_IS_LITTLE_ENDIAN && !forceDataView) {
    if (start % 2 === 0) return new Uint16Array(src.buffer, start, count);
    return new Uint16Array(Uint8Array.prototype.slice.call(src, offset, offset + count * 2).buffer);
  }
  const view = new DataView(src.buffer, start, count * 2);
  const out = new Uint16Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getUint16(i * 2, true);
  return out;
}
