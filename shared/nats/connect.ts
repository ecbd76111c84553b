// One place that turns options into a nats.js connection: servers, credentials,
// TLS, and reconnect settings that never give up once connected (a broker restart
// is a fault the protocol recovers from, not the end of the run).
//
// The first connection is different: a broker that is not up yet is waited for,
// but a broker that REFUSES us (credentials, TLS) is a configuration mistake that
// retrying cannot fix, so it fails at once with a message naming the flags to check.
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { connect, credsAuthenticator, ErrorCode, type ConnectionOptions, type NatsConnection, type TlsOptions } from 'nats';
import type { Options } from '../config/types.js';
import { ConfigError } from '../errors.js';
import type { Logger } from '../logger.js';

export type NatsOptions = Pick<Options, 'nats' | 'natsUser' | 'natsPass' | 'natsToken' | 'natsCreds' | 'natsTlsCa' | 'natsTlsCert' | 'natsTlsKey'>;

function readFlagFile(flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`--${flag}: cannot read '${path}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err, details: { field: flag } });
  }
}

export function natsServers(o: NatsOptions): string[] {
  if (o.nats === undefined) throw new ConfigError('--nats: a server URL is required', { details: { field: 'nats' } });
  const servers = o.nats.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (servers.length === 0) throw new ConfigError(`--nats: no server URL in '${o.nats}'`, { details: { field: 'nats' } });
  return servers;
}

/** True when the client will speak TLS: TLS files given or a tls:// URL. */
function wantsTls(o: NatsOptions): boolean {
  return o.natsTlsCa !== undefined || o.natsTlsCert !== undefined || natsServers(o).some((s) => s.toLowerCase().startsWith('tls://'));
}

/**
 * nats.js options for `o`. Certificate, key and credentials files are read here, so a
 * missing or unreadable file is a ConfigError naming its flag before any connection.
 */
export function natsConnectionOptions(o: NatsOptions, name: string): ConnectionOptions {
  const opts: ConnectionOptions = {
    servers: natsServers(o),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 5000,
    maxPingOut: 3,
    // connectNats runs its own first-connect loop (see there).
    waitOnFirstConnect: false,
    timeout: 10_000,
  };
  if (o.natsUser !== undefined) {
    opts.user = o.natsUser;
    if (o.natsPass !== undefined) opts.pass = o.natsPass;
  }
  if (o.natsToken !== undefined) opts.token = o.natsToken;
  if (o.natsCreds !== undefined) {
    const creds = readFlagFile('nats-creds', o.natsCreds);
    opts.authenticator = credsAuthenticator(new TextEncoder().encode(creds));
  }
  if (o.natsTlsCa !== undefined || o.natsTlsCert !== undefined || o.natsTlsKey !== undefined) {
    const tls: TlsOptions = {};
    if (o.natsTlsCa !== undefined) tls.ca = readFlagFile('nats-tls-ca', o.natsTlsCa);
    if (o.natsTlsCert !== undefined) tls.cert = readFlagFile('nats-tls-cert', o.natsTlsCert);
    if (o.natsTlsKey !== undefined) tls.key = readFlagFile('nats-tls-key', o.natsTlsKey);
    opts.tls = tls;
  }
  return opts;
}

/** Which identity we presented, in words, for error messages (never the secret itself). */
function identityOf(o: NatsOptions): string {
  if (o.natsCreds !== undefined) return `the credentials file '${o.natsCreds}' (--nats-creds)`;
  if (o.natsUser !== undefined) return `user '${o.natsUser}' ${o.natsPass === undefined ? 'without a password' : 'with the given password'} (--nats-user/--nats-pass)`;
  if (o.natsToken !== undefined) return 'the given token (--nats-token)';
  return 'no credentials';
}

// Not AuthenticationTimeout: that is a slow client (a loaded node missing the server's
// authorization timeout), which the next attempt may well beat.
const AUTH_CODES: readonly string[] = [ErrorCode.AuthorizationViolation, ErrorCode.AuthenticationExpired, ErrorCode.AccountExpired];
/** Node's certificate verification failures (tls.TLSSocket authorizationError codes) and TLS protocol errors. */
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|HOSTNAME_MISMATCH)/;

function codeOf(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * A first-connect failure that retrying cannot fix, as a ConfigError that says what to
 * change; undefined for transient failures (refused, unreachable, timed out).
 */
export function explainConnectError(o: NatsOptions, err: unknown): ConfigError | undefined {
  const url = o.nats ?? '?';
  const code = codeOf(err);
  const detail = messageOf(err).replace(/^'|'$/g, '');
  if (AUTH_CODES.includes(code)) {
    const fix =
      identityOf(o) === 'no credentials'
        ? 'no credentials were given; set --nats-user and --nats-pass (LOCKSTEP_NATS_USER, LOCKSTEP_NATS_PASS), --nats-token or --nats-creds'
        : `it did not accept ${identityOf(o)}`;
    return new ConfigError(`NATS at ${url} refused the connection (${detail}): ${fix}`, { cause: err, details: { field: 'nats-user', natsCode: code } });
  }
  if (code === ErrorCode.ServerOptionNotAvailable && /tls/i.test(detail)) {
    return new ConfigError(
      wantsTls(o)
        ? `NATS at ${url} does not offer TLS, but TLS was asked for (--nats-tls-ca/--nats-tls-cert or a tls:// URL)`
        : `NATS at ${url} requires TLS: give its CA with --nats-tls-ca (and --nats-tls-cert/--nats-tls-key if it asks for client certificates)`,
      { cause: err, details: { field: 'nats-tls-ca', natsCode: code } },
    );
  }
  const cause = (err as { chainedError?: unknown }).chainedError;
  const tlsCode = TLS_CODE.test(code) ? code : TLS_CODE.test(codeOf(cause)) ? codeOf(cause) : code === ErrorCode.Tls ? 'TLS' : '';
  if (tlsCode !== '') {
    const hint = /ALTNAME|HOSTNAME/.test(tlsCode)
      ? `the server's certificate is not valid for the host in --nats`
      : /VERIFY|SELF_SIGNED|DEPTH_ZERO|ISSUER|UNABLE_TO_GET/.test(tlsCode)
        ? `the server's certificate is not signed by a trusted CA${o.natsTlsCa === undefined ? '; give its CA with --nats-tls-ca' : ` (--nats-tls-ca '${o.natsTlsCa}')`}`
        : 'check --nats-tls-ca, --nats-tls-cert and --nats-tls-key';
    return new ConfigError(`TLS with NATS at ${url} failed (${tlsCode}: ${detail}): ${hint}`, { cause: err, details: { field: 'nats-tls-ca', natsCode: tlsCode } });
  }
  return undefined;
}

/** The server's INFO line (read in plain text before any TLS), or undefined. Used to explain timeouts. */
export function probeServerInfo(url: string, timeoutMs = 2000): Promise<Record<string, unknown> | undefined> {
  const m = /^(?:[a-z]+:\/\/)?(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?/i.exec(url.trim());
  if (m === null) return Promise.resolve(undefined);
  const host = (m[1] as string).replace(/^\[|\]$/g, '');
  const port = Number(m[2] ?? 4222);
  return new Promise((resolve) => {
    let buf = '';
    const sock = tcpConnect({ host, port });
    const done = (v: Record<string, unknown> | undefined): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    sock.on('error', () => done(undefined));
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n');
      if (end < 0) {
        if (buf.length > 64 * 1024) done(undefined);
        return;
      }
      try {
        const line = buf.slice(0, end);
        done(line.startsWith('INFO ') ? (JSON.parse(line.slice(5)) as Record<string, unknown>) : undefined);
      } catch {
        done(undefined);
      }
    });
  });
}

/**
 * Connects, waiting (with a warning every 10 s) for a broker that is not reachable yet;
 * a broker that refuses the credentials or the TLS setup is a ConfigError at once.
 */
export async function connectNats(o: NatsOptions, name: string, log: Logger): Promise<NatsConnection> {
  const opts = natsConnectionOptions(o, name);
  let delay = 250;
  let lastWarn = 0;
  let nc: NatsConnection | undefined;
  for (let attempt = 1; nc === undefined; attempt++) {
    try {
      nc = await connect(opts);
    } catch (err) {
      const fatal = explainConnectError(o, err);
      if (fatal !== undefined) throw fatal;
      let hint = '';
      if (codeOf(err) === ErrorCode.Timeout) {
        // A TLS server that rejects our client certificate (or wants one) closes the
        // connection after the handshake; nats.js only sees a timeout. INFO says why.
        const info = await probeServerInfo(natsServers(o)[0] as string);
        if (info?.tls_verify === true && o.natsTlsCert === undefined) {
          throw new ConfigError(`NATS at ${o.nats ?? '?'} requires a client certificate (mutual TLS): set --nats-tls-cert and --nats-tls-key (and --nats-tls-ca)`, {
            cause: err,
            details: { field: 'nats-tls-cert' },
          });
        }
        if (info?.tls_verify === true) hint = '; the server verifies client certificates: check that --nats-tls-cert/--nats-tls-key are signed by its CA';
      }
      if (attempt === 1 || Date.now() - lastWarn > 10_000) {
        lastWarn = Date.now();
        log.warn({ server: o.nats, attempt, code: codeOf(err), err: messageOf(err) }, `NATS not reachable yet; retrying${hint}`);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(1000, delay * 2);
    }
  }
  const conn = nc;
  log.info({ server: conn.getServer(), maxPayload: conn.info?.max_payload, tls: conn.info?.tls_required === true, user: o.natsUser }, 'connected to NATS');
  // A refused publish or subscribe is silent on the wire (the server answers -ERR and
  // drops it): say which subject, once a minute per subject, so a mis-scoped identity shows.
  const violationLogged = new Map<string, number>();
  void (async () => {
    for await (const s of conn.status()) {
      if (s.type === 'error' && s.data === ErrorCode.PermissionsViolation) {
        const ctx = s.permissionContext;
        const key = `${ctx?.operation ?? '?'} ${ctx?.subject ?? '?'}`;
        if (Date.now() - (violationLogged.get(key) ?? 0) < 60_000) continue;
        violationLogged.set(key, Date.now());
        log.error({ operation: ctx?.operation, subject: ctx?.subject, identity: identityOf(o) }, `NATS permissions violation: ${identityOf(o)} may not ${ctx?.operation === 'subscription' ? 'subscribe to' : 'publish to'} ${ctx?.subject ?? '?'}`);
      } else if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') {
        log.warn({ status: s.type, data: String(s.data) }, 'NATS connection status');
      }
    }
  })();
  void conn.closed().then((err) => {
    if (err !== undefined) log.error({ err: explainConnectError(o, err) ?? err }, 'NATS connection closed with an error');
  });
  return conn;
}

/** The payload limit of the current server (INFO max_payload), with the server default as fallback. */
export function maxPayloadOf(nc: NatsConnection): number {
  return nc.info?.max_payload ?? 1024 * 1024;
}
