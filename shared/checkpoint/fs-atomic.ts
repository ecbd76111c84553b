// Durable file writes: data is fsynced before the rename that publishes it, and
// the directory is fsynced after, so a crash leaves either the old or the new
// state on disk, never a torn one.
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';

export function writeFileSynced(path: string, data: Uint8Array | string): void {
  const fd = openSync(path, 'w', 0o644);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function fsyncDir(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
