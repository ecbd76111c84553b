// The small HTTP server both roles run on --metrics-port: /metrics, /healthz, /readyz
// and optional extra routes. Sizes and times are bounded because in a cluster this
// port listens on 0.0.0.0.
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { InternalError } from '../errors.js';
import { listen } from './listen.js';

export interface ProbeResult {
  ok: boolean;
  detail?: unknown;
}

export type Probe = () => ProbeResult | Promise<ProbeResult>;

export interface RouteContext {
  url: URL;
  /** Request body, already read and bounded by maxBodyBytes (empty for GET). */
  body: Buffer;
}

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, ctx: RouteContext) => void | Promise<void>;

export interface HttpServerOptions {
  /** Default 127.0.0.1; use 0.0.0.0 in containers. */
  host?: string;
  /** 0 picks a free port (read it back from the handle). */
  port: number;
  registry: Registry;
  health?: Probe;
  ready?: Probe;
  /** Extra handlers by exact path, e.g. { '/debug/state': handler }. They may not shadow the built-in paths. */
  routes?: Record<string, RouteHandler>;
  /** Largest request body accepted, in bytes (default 64 KiB); bigger ones get 413. */
  maxBodyBytes?: number;
  /** Largest request head accepted (default 16 KiB); bigger ones get 431. */
  maxHeaderBytes?: number;
  /** Called when a handler throws; the client gets 500 either way. */
  onError?: (err: unknown, req: IncomingMessage) => void;
}

export interface HttpServerHandle {
  port: number;
  host: string;
  /** Base URL, e.g. http://127.0.0.1:9464 */
  url: string;
  server: http.Server;
  close(): Promise<void>;
}

const BUILTIN = new Set(['/metrics', '/healthz', '/readyz']);

class BodyTooLarge extends InternalError {
  constructor(limit: number) {
    super(`request body over ${limit} bytes`);
  }
}

/** Reads a request body up to `limit` bytes; rejects (and stops reading) past it. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new BodyTooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.pause();
        reject(new BodyTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, contentType: string, body: string | Buffer, headOnly = false): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(headOnly ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, value: unknown, headOnly = false): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`, headOnly);
}

async function probe(p: Probe | undefined): Promise<ProbeResult> {
  if (p === undefined) return { ok: true };
  try {
    return await p();
  } catch (err) {
    return { ok: false, detail: err instanceof Error ? err.message : String(err) };
  }
}

export async function startHttpServer(options: HttpServerOptions): Promise<HttpServerHandle> {
  const host = options.host ?? '127.0.0.1';
  const maxBody = options.maxBodyBytes ?? 64 * 1024;
  const routes = options.routes ?? {};
  for (const path of Object.keys(routes)) {
    if (BUILTIN.has(path)) throw new InternalError(`route ${path} would shadow a built-in endpoint`);
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let body: Buffer;
    try {
      body = await readBody(req, maxBody);
    } catch (err) {
      if (err instanceof BodyTooLarge) {
        res.setHeader('connection', 'close');
        sendJson(res, 413, { error: 'request body too large', limit: maxBody });
        // Stop reading a client that keeps sending.
        req.socket.destroySoon();
        return;
      }
      throw err;
    }
    const custom = routes[url.pathname];
    if (custom !== undefined) {
      await custom(req, res, { url, body });
      return;
    }
    if (!BUILTIN.has(url.pathname)) {
      sendJson(res, 404, { error: 'not found' });
      return;
    }
    const headOnly = req.method === 'HEAD';
    if (req.method !== 'GET' && !headOnly) {
      res.setHeader('allow', 'GET, HEAD');
      sendJson(res, 405, { error: 'method not allowed' });
      return;
    }
    if (url.pathname === '/metrics') {
      const text = await options.registry.metrics();
      send(res, 200, options.registry.contentType, text, headOnly);
      return;
    }
    const result = await probe(url.pathname === '/healthz' ? options.health : options.ready);
    sendJson(res, result.ok ? 200 : 503, { status: result.ok ? 'ok' : 'fail', detail: result.detail ?? null }, headOnly);
  };

  const server = http.createServer({ maxHeaderSize: options.maxHeaderBytes ?? 16 * 1024, requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      options.onError?.(err, req);
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;

  const { port, urlHost } = await listen(server, options.port, host);
  let closed: Promise<void> | undefined;
  return {
    port,
    host,
    url: `http://${urlHost}:${port}`,
    server,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
