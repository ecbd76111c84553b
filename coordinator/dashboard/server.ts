// HTTP + WebSocket server of the live dashboard (--dashboard-port): the page, its
// assets, uPlot from node_modules, and /ws fed by a DashboardHub.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { DependencyError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { DashboardHub } from './hub.js';
import { listen } from '../../shared/http/listen.js';

export interface DashboardServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /** When set, the page and /ws need it: `?token=` or `Authorization: Bearer`. */
  token?: string;
  hub: DashboardHub;
  log?: Logger;
  /** Largest request body accepted (the dashboard takes none), default 1 KiB. */
  maxBodyBytes?: number;
  /** Largest inbound WebSocket message; bigger ones close the socket (1009). Default 1 KiB. */
  maxMessageBytes?: number;
  /** Most simultaneous pages, default 64. */
  maxClients?: number;
  /** WebSocket ping period, ms (default 15 s): dead peers are dropped after two. */
  pingMs?: number;
  /** Override for the page's directory (default: `static` next to this file). */
  staticDir?: string;
  /**
   * Extra page origins allowed to open /ws (e.g. 'https://dash.example.org' behind a
   * proxy that rewrites Host). Same-origin pages and non-browser clients are always allowed.
   */
  allowedOrigins?: string[];
}

export interface DashboardServer {
  port: number;
  host: string;
  /** Base URL of the page (without token). */
  url: string;
  /** Pages connected right now. */
  readonly clients: number;
  close(): Promise<void>;
}

interface Asset {
  body: Buffer;
  type: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

const CSP = [
  "default-src 'self'",
  "img-src 'self' data:",
  "script-src 'self'",
  // uPlot sets element styles at runtime.
  "style-src 'self' 'unsafe-inline'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The page's directory. From dist/ in a checkout, the source tree's copy wins: the copy
 * under dist/ (scripts/copy-assets.mjs) is only refreshed by a rebuild and goes stale
 * while the page is edited. In a package without sources, the dist copy is used.
 */
export function resolveStaticDir(): string {
  const candidates = [path.resolve(__dirname, '../../../coordinator/dashboard/static'), path.join(__dirname, 'static')];
  for (const dir of candidates) if (fs.existsSync(path.join(dir, 'index.html'))) return dir;
  throw new DependencyError(`dashboard page not found (looked in ${candidates.join(', ')}); run scripts/copy-assets.mjs after tsc`);
}

function loadAssets(staticDir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of fs.readdirSync(staticDir)) {
    const type = TYPES[path.extname(name)];
    if (type === undefined) continue;
    assets.set(`/${name}`, { body: fs.readFileSync(path.join(staticDir, name)), type });
  }
  let uplotDist: string;
  try {
    uplotDist = path.join(path.dirname(require.resolve('uplot/package.json')), 'dist');
  } catch (err) {
    throw new DependencyError('package uplot is not installed', { cause: err });
  }
  assets.set('/vendor/uPlot.iife.min.js', { body: fs.readFileSync(path.join(uplotDist, 'uPlot.iife.min.js')), type: TYPES['.js'] as string });
  assets.set('/vendor/uPlot.min.css', { body: fs.readFileSync(path.join(uplotDist, 'uPlot.min.css')), type: TYPES['.css'] as string });
  return assets;
}

const digest = (s: string): Buffer => crypto.createHash('sha256').update(s).digest();

function presentedToken(req: IncomingMessage, url: URL): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && auth.toLowerCase().startsWith('bearer ')) return auth.slice(7).trim();
  return url.searchParams.get('token') ?? undefined;
}

function refuseUpgrade(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

export async function startDashboard(options: DashboardServerOptions): Promise<DashboardServer> {
  const host = options.host ?? '127.0.0.1';
  const hub = options.hub;
  const log = options.log;
  const maxBody = options.maxBodyBytes ?? 1024;
  const maxClients = options.maxClients ?? 64;
  const assets = loadAssets(options.staticDir ?? resolveStaticDir());
  const index = assets.get('/index.html');
  if (index === undefined) throw new DependencyError('dashboard index.html missing');
  const tokenDigest = options.token !== undefined && options.token.length > 0 ? digest(options.token) : undefined;

  const authorized = (req: IncomingMessage, url: URL): boolean => {
    if (tokenDigest === undefined) return true;
    const given = presentedToken(req, url);
    return given !== undefined && crypto.timingSafeEqual(digest(given), tokenDigest);
  };

  const send = (res: ServerResponse, status: number, asset: Asset, headOnly: boolean, extra: Record<string, string> = {}): void => {
    res.writeHead(status, {
      'content-type': asset.type,
      'content-length': asset.body.length,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      ...extra,
    });
    res.end(headOnly ? undefined : asset.body);
  };
  const text = (res: ServerResponse, status: number, body: string, extra: Record<string, string> = {}): void => {
    send(res, status, { body: Buffer.from(`${body}\n`), type: 'text/plain; charset=utf-8' }, false, { 'cache-control': 'no-store', ...extra });
  };

  const server = http.createServer({ maxHeaderSize: 8 * 1024, requestTimeout: 15_000, headersTimeout: 10_000 }, (req, res) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (!(declared <= maxBody) || (req.headers['transfer-encoding'] !== undefined && maxBody === 0)) {
      text(res, 413, 'request body too large', { connection: 'close' });
      req.socket.destroySoon();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      text(res, 405, 'method not allowed', { allow: 'GET, HEAD' });
      return;
    }
    const headOnly = req.method === 'HEAD';
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/' || url.pathname === '/index.html') {
      if (!authorized(req, url)) {
        text(res, 401, 'dashboard token required: open /?token=<token>', { 'www-authenticate': 'Bearer realm="lockstep"' });
        return;
      }
      send(res, 200, index, headOnly, { 'cache-control': 'no-store', 'content-security-policy': CSP });
      return;
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204, { 'cache-control': 'max-age=86400' });
      res.end();
      return;
    }
    // Assets are public: they are the same code for every run and hold no run data.
    const asset = assets.get(url.pathname);
    if (asset === undefined || url.pathname === '/index.html') {
      text(res, 404, 'not found');
      return;
    }
    send(res, 200, asset, headOnly, { 'cache-control': 'no-cache' });
  });
  server.keepAliveTimeout = 5_000;

  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes ?? 1024, perMessageDeflate: false });
  const alive = new WeakMap<WebSocket, boolean>();

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws') return refuseUpgrade(socket, 404, 'Not Found');
    if (!authorized(req, url)) return refuseUpgrade(socket, 401, 'Unauthorized');
    // Browsers always send Origin: refuse other sites' pages (cross-site WebSocket hijacking).
    const origin = req.headers.origin;
    if (origin !== undefined) {
      let originHost: string | undefined;
      try {
        originHost = new URL(origin).host;
      } catch {
        originHost = undefined;
      }
      const allowed = (originHost !== undefined && originHost === req.headers.host) || (options.allowedOrigins ?? []).includes(origin);
      if (!allowed) return refuseUpgrade(socket, 403, 'Forbidden');
    }
    if (wss.clients.size >= maxClients) return refuseUpgrade(socket, 503, 'Service Unavailable');
    wss.handleUpgrade(req, socket, head, (ws) => {
      alive.set(ws, true);
      ws.on('pong', () => alive.set(ws, true));
      ws.on('error', (err) => log?.debug({ err }, 'dashboard socket error'));
      log?.debug({ clients: wss.clients.size }, 'dashboard page connected');
      hub.attach(ws);
    });
  });

  const pinger = setInterval(() => {
    for (const ws of wss.clients) {
      if (alive.get(ws) === false) {
        ws.terminate();
        continue;
      }
      alive.set(ws, false);
      ws.ping();
    }
    hub.ping();
  }, options.pingMs ?? 15_000);
  pinger.unref();

  const { port, urlHost } = await listen(server, options.port, host);
  log?.info({ url: `http://${urlHost}:${port}/`, token: tokenDigest !== undefined }, 'dashboard listening');

  let closing: Promise<void> | undefined;
  return {
    port,
    host,
    url: `http://${urlHost}:${port}/`,
    get clients() {
      return wss.clients.size;
    },
    close() {
      closing ??= (async () => {
        clearInterval(pinger);
        const sockets = [...wss.clients];
        // 1001: the page treats it as "server restarting" and reconnects.
        for (const ws of sockets) ws.close(1001, 'server going away');
        await Promise.race([
          Promise.all(sockets.map((ws) => new Promise<void>((r) => (ws.readyState === ws.CLOSED ? r() : ws.once('close', () => r()))))),
          new Promise<void>((r) => setTimeout(r, 500).unref()),
        ]);
        for (const ws of sockets) ws.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      })();
      return closing;
    },
  };
}
