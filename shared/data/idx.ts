// IDX format (LeCun's MNIST files): magic = 0x00 0x00 <type> <ndims>, then ndims
// big-endian u32 dimensions, then the data. Every size is checked against the
// file length so a truncated file is an error, never a silent partial dataset.
import { DataError } from '../errors.js';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const UBYTE = 0x08;

export function parseIdx(buf: Uint8Array, file: string, expect: { ndims: number }): IdxArray {
  if (buf.length < 4) {
    throw new DataError(`${file}: truncated: ${buf.length} bytes, shorter than the 4-byte IDX magic number`, { details: { file } });
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const b0 = buf[0] ?? -1;
  const b1 = buf[1] ?? -1;
  const type = buf[2] ?? -1;
  const ndims = buf[3] ?? -1;
  if (b0 !== 0 || b1 !== 0) {
    throw new DataError(`${file}: wrong magic number 0x${hex(view.getUint32(0, false))}: not an IDX file (expected 0x0000${hex2(UBYTE)}${hex2(expect.ndims)})`, { details: { file } });
  }
  if (type !== UBYTE) {
    throw new DataError(`${file}: wrong magic number 0x${hex(view.getUint32(0, false))}: element type 0x${hex2(type)} is not unsigned byte (0x08)`, { details: { file } });
  }
  if (ndims !== expect.ndims) {
    throw new DataError(`${file}: wrong magic number 0x${hex(view.getUint32(0, false))}: ${ndims} dimensions, expected ${expect.ndims}`, { details: { file } });
  }
  const headerLen = 4 + 4 * ndims;
  if (buf.length < headerLen) {
    throw new DataError(`${file}: truncated header: ${buf.length} bytes, need ${headerLen} for ${ndims} dimensions`, { details: { file } });
  }
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const have = buf.length - headerLen;
  if (have < count) {
    throw new DataError(`${file}: truncated: header declares ${dims.join('x')} = ${count} bytes of data, file has ${have}`, { details: { file, dims } });
  }
  if (have > count) {
    throw new DataError(`${file}: corrupt: ${have - count} trailing bytes after the ${dims.join('x')} data the header declares`, { details: { file, dims } });
  }
  return { dims, data: buf.subarray(headerLen) };
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}
function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
