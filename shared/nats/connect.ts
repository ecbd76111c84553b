// One place that turns options into a nats.js connection: servers, credentials,
// TLS, and reconnect settings that never give up (a broker restart is a fault
// the protocol recovers from, not the end of the run).
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type ConnectionOptions, type NatsConnection } from 'nats';
import type { Options } from '../config/types.js';
import { ConfigError, DependencyError } from '../errors.js';
import type { Logger } from '../logger.js';

export type NatsOptions = Pick<Options, 'nats' | 'natsUser' | 'natsPass' | 'natsToken' | 'natsCreds' | 'natsTlsCa' | 'natsTlsCert' | 'natsTlsKey'>;

export function natsConnectionOptions(o: NatsOptions, name: string): ConnectionOptions {
  if (o.nats === undefined) throw new ConfigError('--nats: a server URL is required');
  const servers = o.nats.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const opts: ConnectionOptions = {
    servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 5000,
    maxPingOut: 3,
    waitOnFirstConnect: true,
    timeout: 10_000,
  };
  if (o.natsUser !== undefined) {
    opts.user = o.natsUser;
    opts.pass = o.natsPass;
  }
  if (o.natsToken !== undefined) opts.token = o.natsToken;
  if (o.natsCreds !== undefined) {
    let creds: Uint8Array;
    try {
      creds = readFileSync(o.natsCreds);
    } catch (err) {
      throw new ConfigError(`--nats-creds: cannot read '${o.natsCreds}'`, { cause: err });
    }
    opts.authenticator = credsAuthenticator(creds);
  }
  if (o.natsTlsCa !== undefined || o.natsTlsCert !== undefined) {
    opts.tls = {};
    if (o.natsTlsCa !== undefined) opts.tls.caFile = o.natsTlsCa;
    if (o.natsTlsCert !== undefined) opts.tls.certFile = o.natsTlsCert;
    if (o.natsTlsKey !== undefined) opts.tls.keyFile = o.natsTlsKey;
  }
  return opts;
}

export async function connectNats(o: NatsOptions, name: string, log: Logger): Promise<NatsConnection> {
  const nc = await connect(natsConnectionOptions(o, name)).catch((err: unknown) => {
    throw new DependencyError(`cannot connect to NATS at ${o.nats ?? '?'}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  });
  log.info({ server: nc.getServer(), maxPayload: nc.info?.max_payload }, 'connected to NATS');
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') log.warn({ status: s.type, data: String(s.data) }, 'NATS connection status');
    }
  })();
  return nc;
}

/** The payload limit of the current server (INFO max_payload), with the server default as fallback. */
export function maxPayloadOf(nc: NatsConnection): number {
  return nc.info?.max_payload ?? 1024 * 1024;
}
