// Raw NATS throughput for one payload size, through a given server: one
// publishing and one subscribing connection (as a worker and the coordinator
// are), the payload split below the server's max_payload like the protocol
// splits a tensor. Windows of `depth` payloads are published and awaited, so
// the subscriber is never pushed into slow-consumer territory and every byte
// counted has arrived.
import { connect, type NatsConnection } from 'nats';
import { TimeoutError } from '../../shared/errors.js';

export interface NatsThroughput {
  payloadBytes: number;
  chunkBytes: number;
  chunksPerPayload: number;
  maxPayload: number;
  depth: number;
  payloads: number;
  seconds: number;
  /** 1 MB = 1e6 bytes. */
  mbPerSecond: number;
  payloadsPerSecond: number;
  /** One payload alone, publish to last chunk received (median). */
  latencyMsMedian: number;
  latencyMsMin: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export async function measureNatsThroughput(url: string, payloadBytes: number, opts: { seconds: number; depth?: number; latencyRounds?: number }): Promise<NatsThroughput> {
  const depth = opts.depth ?? 8;
  const pub: NatsConnection = await connect({ servers: url, name: 'bench-pub' });
  const sub: NatsConnection = await connect({ servers: url, name: 'bench-sub' });
  try {
    const maxPayload = pub.info?.max_payload ?? 1024 * 1024;
    // Leave room for headers as the protocol does.
    const chunkBytes = Math.min(payloadBytes, maxPayload - 4096);
    const chunksPerPayload = Math.ceil(payloadBytes / chunkBytes);
    const payload = new Uint8Array(payloadBytes);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 2654435761) >>> 24;
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < payloadBytes; at += chunkBytes) chunks.push(payload.subarray(at, Math.min(payloadBytes, at + chunkBytes)));
    const subject = `lockstep-bench.tp.${process.pid}.${Date.now()}`;
    let received = 0;
    let waiter: { want: number; resolve: () => void } | null = null;
    sub.subscribe(subject, {
      callback: (_err, msg) => {
        received += msg.data.length;
        if (waiter !== null && received >= waiter.want) {
          const w = waiter;
          waiter = null;
          w.resolve();
        }
      },
    });
    await sub.flush();
    let sent = 0;
    const sendAndWait = async (n: number): Promise<void> => {
      const want = sent + n * payloadBytes;
      const done = new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new TimeoutError(`NATS throughput: ${n} payloads of ${payloadBytes} bytes did not arrive within 30 s`)), 30_000);
        waiter = {
          want,
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
        };
      });
      for (let i = 0; i < n; i++) for (const c of chunks) pub.publish(subject, c);
      sent = want;
      await done;
    };
    // Warm up the connections and the server's buffers.
    await sendAndWait(Math.min(depth, 4));
    const lat: number[] = [];
    for (let i = 0; i < (opts.latencyRounds ?? 20); i++) {
      const t0 = performance.now();
      await sendAndWait(1);
      lat.push(performance.now() - t0);
    }
    let payloads = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < opts.seconds * 1000 || payloads < depth) {
      await sendAndWait(depth);
      payloads += depth;
    }
    const seconds = (performance.now() - t0) / 1000;
    return {
      payloadBytes,
      chunkBytes,
      chunksPerPayload,
      maxPayload,
      depth,
      payloads,
      seconds,
      mbPerSecond: (payloads * payloadBytes) / seconds / 1e6,
      payloadsPerSecond: payloads / seconds,
      latencyMsMedian: median(lat),
      latencyMsMin: Math.min(...lat),
    };
  } finally {
    await pub.close();
    await sub.close();
  }
}
