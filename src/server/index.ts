/**
 * Server stage: one uWS app serving the portal WebSocket (/v1/portal), the scan API and health endpoints.
 * Transport only: protocol logic lives in the ingest stage, data in storage, identities in src/identity. Every
 * route is registered through Routes with the access it needs (guard.ts runs first); `routes` on the returned
 * server lists them for the access matrix test.
 */
import sharp from 'sharp';
import { type GatewayConfig, packageVersion } from '../config/index.js';
import { ScanlineError } from '../errors/index.js';
import type { IdentityService, OidcSignIn, ReadAudit } from '../identity/index.js';
import { CloseCode, type IngestService, type PortalConnection } from '../ingest/index.js';
import type { GatewayMessage } from '../protocol/index.js';
import type { Logger } from '../log/index.js';
import type { ScanStore } from '../storage/index.js';
import { handleAsync } from './http.js';
import type { ReferenceChanges, ResultsService } from '../results/index.js';
import type { OperatorHub } from '../operator/index.js';
import { registerDecisionRoutes } from './decisions-api.js';
import { operatorImageRenderer } from './operator-image.js';
import { registerOperatorFeed, registerOperatorUi, type OperatorFeed } from './operator-route.js';
import { registerReferenceRoutes } from './references-api.js';
import { registerImportRoutes } from './imports-api.js';
import { registerDicosRoutes } from './dicos-api.js';
import { hostname } from 'node:os';
import type { ImportService } from '../imports/index.js';
import { registerScanRoutes } from './scans-api.js';
import { clientAddress, readRequestFacts, RequestGuard, type RouteSpec } from './guard.js';
import { Routes } from './routes.js';
import { registerSessionRoutes } from './session-api.js';
import { RenderedImageCache } from './image-cache.js';
import { ByteRate, KeyedCounter, RateLimiter, RefusalPacer, RenderQueue } from './limits.js';
import { checkTlsFiles, type TlsCertificateInfo } from './tls.js';
import { DISABLED, closeListenSocket, createApp, localPort, type TemplatedApp, type WebSocket, type us_listen_socket } from './uws.js';

export { SESSION_COOKIE, CSRF_HEADER, type RouteSpec } from './guard.js';
export { CLOSE_SIGNED_OUT } from './operator-route.js';
export type { TlsCertificateInfo } from './tls.js';

interface PortalSocketData {
  conn: PortalConnection | null;
  closed: boolean;
  /** The client address its per-address slot is held for (released on close). */
  address: string;
}

/** Readiness checks the gateway composes; each returns null when ready or a reason when not. */
export { createGatewayMetrics, type GatewayMetrics, type GatewayMetricsOptions } from './gateway-metrics.js';

export type ReadinessCheck = () => string | null;

export interface HttpServerOptions {
  config: GatewayConfig;
  ingest: IngestService;
  store: ScanStore;
  log: Logger;
  /** Accounts, sessions, tokens and portal credentials; also the audit trail. */
  identity: IdentityService;
  /** Sign-in through the OpenID provider (auth.oidc); absent or disabled: password sign-in only. */
  oidc?: OidcSignIn;
  /** Who looked at what: reads of images and results (the same one the operator hub reports screens to). */
  reads: ReadAudit;
  readiness: Record<string, ReadinessCheck>;
  /** Extra facts /readyz reports whatever the verdict (e.g. which execution provider serves each model). */
  readinessDetails?: () => Record<string, unknown>;
  /** Machine results of scans and reference enrolment; absent when the gateway runs without inference. */
  results?: ResultsService;
  /** Prometheus exposition served on GET /metrics; absent (404) when metrics are disabled. */
  metrics?: MetricsEndpoint;
  /** Four eyes on reference categories; absent when the gateway runs without inference. */
  references?: ReferenceChanges;
  /** Operator screens: the feed (WS /v1/operator) and the web UI (GET /); absent: neither is served. */
  operator?: OperatorHub;
  /** Imports of DICOS images (POST /v1/imports); absent: the route answers 404. */
  imports?: ImportService;
  /** Told of every decision recorded over HTTP (the DICOS push queues its OPERATOR report). */
  onDecision?: (scanId: string, decisionId: number) => void;
}

/** What GET /metrics serves: the exposition text, rendered at each scrape. */
export interface MetricsEndpoint {
  readonly contentType: string;
  render(): Promise<string>;
}

export interface HttpServer {
  readonly port: number;
  readonly host: string;
  /** True until stopListening() or closeAll(). */
  readonly listening: boolean;
  /** Stops accepting connections (listen socket closed); open sockets stay. */
  stopListening(): void;
  /** Closes every remaining socket. */
  closeAll(): void;
  /** Every route and WebSocket with the access it needs (the access matrix test reads it). */
  readonly routes: readonly RouteSpec[];
  /** Closes operator screens whose credentials stopped being valid; returns how many. */
  closeSignedOut(): number;
  /** True when every route is served over TLS (server.tls). */
  readonly tls: boolean;
  /** Requests and upgrades refused before their route ran, by error code (scanline_http_refusals_total). */
  refusals(): ReadonlyMap<string, number>;
  /** Image renders running and waiting. */
  readonly renders: RenderQueue;
  /** Limit refusals answered late. */
  readonly pacer: RefusalPacer;
  /** png16 images of ended scans, kept a while. */
  readonly imageCache: RenderedImageCache;
  /**
   * Reads server.tls's files again and serves new connections with them; open connections (scans in progress,
   * screens) keep the old certificate until they close. Throws SCANLINE_ERR_SERVER_TLS (the old one stays).
   */
  reloadTls(): Promise<TlsCertificateInfo>;
}

/** Extra room above the protocol limit so an oversize frame reaches the gateway and gets a coded error. */
const PAYLOAD_HEADROOM = 1024 * 1024;

function registerPortalRoute(routes: Routes, o: HttpServerOptions, shared: ServerShared): void {
  const { ingest, log, config } = o;
  const spec = routes.ws('/v1/portal', 'portal');
  routes.app.ws<PortalSocketData>(spec.path, {
    compression: DISABLED,
    maxPayloadLength: config.portal.maxMessageBytes + PAYLOAD_HEADROOM,
    idleTimeout: config.portal.idleTimeoutSec,
    sendPingsAutomatically: true,
    maxBackpressure: config.portal.maxBackpressureBytes,
    // closeOnBackpressureLimit stays at its default (off): a stuck portal is closed by the send() check below.
    upgrade: (res, req, context) => {
      if (routes.refusedForRate(res)) return;
      const facts = readRequestFacts(res, req);
      try {
        routes.guard.check(spec, facts);
        if (ingest.connectionCount >= config.portal.maxConnections) {
          routes.guard.countRefusal('SCANLINE_ERR_LIMIT_CONNECTIONS');
          throw new ScanlineError(
            'SCANLINE_ERR_LIMIT_CONNECTIONS',
            `${ingest.connectionCount} portals are connected; the gateway accepts ${config.portal.maxConnections} (portal.maxConnections)`,
          );
        }
        if (!shared.sockets.acquire(facts.address)) {
          routes.guard.countRefusal('SCANLINE_ERR_LIMIT_CONNECTIONS');
          throw new ScanlineError(
            'SCANLINE_ERR_LIMIT_CONNECTIONS',
            `${shared.sockets.limit} WebSockets from ${facts.address} are open (server.maxConnectionsPerAddress)`,
          );
        }
      } catch (err) {
        routes.refuseUpgrade(res, err);
        return;
      }
      res.upgrade<PortalSocketData>(
        { conn: null, closed: false, address: facts.address },
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws: WebSocket<PortalSocketData>) => {
      const data = ws.getUserData();
      const remoteAddress = clientAddress(ws);
      data.conn = ingest.openConnection({
        remoteAddress,
        send(message: GatewayMessage) {
          if (data.closed) return;
          // 2 = dropped: the portal has not read maxBackpressureBytes of our messages; it is stuck.
          if (ws.send(JSON.stringify(message), false) === 2) {
            log.warn({ portalId: data.conn?.portalId, remoteAddress }, 'portal is not reading its acks; disconnecting');
            data.closed = true;
            ws.end(CloseCode.GoingAway, 'backpressure limit reached');
          }
        },
        close(code: number, reason: string) {
          if (data.closed) return;
          data.closed = true;
          ws.end(code, reason);
        },
      });
    },
    message: (ws: WebSocket<PortalSocketData>, message: ArrayBuffer, isBinary: boolean) => {
      const conn = ws.getUserData().conn;
      if (!conn) return;
      // `message` is detached when this handler returns; the ingest stage consumes it synchronously.
      if (isBinary) conn.onBinary(new Uint8Array(message));
      else conn.onText(Buffer.from(message).toString('utf8'), message.byteLength);
    },
    close: (ws: WebSocket<PortalSocketData>, code: number) => {
      const data = ws.getUserData();
      data.closed = true;
      shared.sockets.release(data.address);
      data.conn?.onClose(code);
    },
  });
}

/**
 * /livez and /readyz stay open (probes carry no credentials); what /readyz adds beyond the verdict and its checks
 * (model versions, providers) is shown only to a request with valid credentials.
 */
function registerHealthRoutes(routes: Routes, o: HttpServerOptions): void {
  routes.get('/livez', 'public', (res, req) => handleAsync(res, req, o.log, (out) => out.json(200, { status: 'alive' })));
  routes.get('/readyz', 'public', (res, req, ctx) =>
    handleAsync(res, req, o.log, (out) => {
      const notReady: Record<string, string> = {};
      for (const [name, check] of Object.entries(o.readiness)) {
        const reason = check();
        if (reason !== null) notReady[name] = reason;
      }
      const ready = Object.keys(notReady).length === 0;
      out.json(ready ? 200 : 503, {
        ready,
        checks: Object.fromEntries(Object.keys(o.readiness).map((k) => [k, notReady[k] ?? 'ok'])),
        ...(ctx.principal ? (o.readinessDetails?.() ?? {}) : {}),
      });
    }),
  );
}

/** GET /metrics: rendered after an await, so the response is guarded by onAborted (handleAsync). */
function registerMetricsRoute(routes: Routes, metrics: MetricsEndpoint, log: Logger): void {
  routes.get('/metrics', 'metrics', (res, req) =>
    handleAsync(res, req, log, async (out) => {
      let text: string;
      try {
        text = await metrics.render();
      } catch (err) {
        throw new ScanlineError('SCANLINE_ERR_METRICS_COLLECT', `collecting metrics failed: ${(err as Error).message}`, {}, { cause: err });
      }
      out.send(200, metrics.contentType, text);
    }),
  );
}

/** What the server's apps share (a TLS reload builds a second app beside the first): refusal counts and limits. */
export interface ServerShared {
  refusals: Map<string, number>;
  /** WebSockets per client address (server.maxConnectionsPerAddress). */
  sockets: KeyedCounter;
  /** HTTP requests in progress per client address (server.maxRequestsPerAddress). */
  requests: KeyedCounter;
  /** Operator screens per account (operator.maxScreensPerUser). */
  screens: KeyedCounter;
  renders: RenderQueue;
  /** Requests and upgrades per second per client address. */
  rate: RateLimiter;
  /** Answers limit refusals late (server.refusalDelayMs up to server.maxRefusalDelayMs, server.maxDelayedRefusals). */
  pacer: RefusalPacer;
  /** png16 images of ended scans (server.imageCacheBytes). */
  imageCache: RenderedImageCache;
  /** Bytes per second per client address for images and DICOS files (server.imageBytesPerSecondPerAddress). */
  imageRate: ByteRate;
}

/** One uWS app with every route registered; a TLS reload builds a second one beside the first. */
interface BuiltApp {
  app: TemplatedApp;
  routes: Routes;
  feed: OperatorFeed | null;
}

function buildApp(o: HttpServerOptions, tls: boolean, shared: ServerShared): BuiltApp {
  const t = o.config.server.tls;
  const app = createApp(tls ? { cert: t.cert, key: t.key, keyPassphrase: t.keyPassphrase } : undefined);
  const guard = new RequestGuard({
    identity: o.identity,
    boundHost: o.config.server.host,
    allowedHosts: o.config.server.allowedHosts,
    allowedOrigins: o.config.server.allowedOrigins,
    tls,
    refusals: shared.refusals,
  });
  const routes = new Routes(app, guard, o.log, shared.requests, shared.rate, shared.pacer);
  registerPortalRoute(routes, o, shared);
  registerSessionRoutes(routes, o.log, o.oidc ?? null);
  registerScanRoutes(
    routes,
    o.log,
    o.ingest,
    o.store,
    o.results,
    o.operator ? operatorImageRenderer(o.operator, o.results ?? null, o.config.stitch.previewDownsample) : undefined,
    shared.renders,
    o.reads,
    shared.imageCache,
    shared.imageRate,
  );
  registerReferenceRoutes(routes, o.log, o.results, o.references);
  if (o.imports) registerImportRoutes(routes, { imports: o.imports, maxBytes: o.config.import.maxBytes, log: o.log });
  registerDicosRoutes(routes, {
    ingest: o.ingest,
    store: o.store,
    results: o.results,
    renders: shared.renders,
    imageRate: shared.imageRate,
    reads: o.reads,
    machine: { machineId: o.config.results.machineId || hostname(), version: packageVersion() ?? '0.0.0' },
    institution: o.config.dicos.institution,
    airLines: o.config.stitch.airLines,
    material: o.config.stitch.material,
    log: o.log,
  });
  registerHealthRoutes(routes, o);
  if (o.metrics) registerMetricsRoute(routes, o.metrics, o.log);
  let feed: OperatorFeed | null = null;
  if (o.operator) {
    feed = registerOperatorFeed(routes, { hub: o.operator, config: o.config.operator, log: o.log, sockets: shared.sockets, screens: shared.screens });
    registerOperatorUi(routes, o.log);
  }
  registerDecisionRoutes(routes, {
    store: o.store,
    results: o.results ?? null,
    hub: o.operator ?? null,
    audit: o.identity,
    log: o.log,
    ...(o.onDecision ? { onDecision: o.onDecision } : {}),
  });
  app.any('/*', (res, req) => {
    const url = req.getUrl();
    handleAsync(res, req, o.log, () => {
      throw new ScanlineError('SCANLINE_ERR_HTTP_NOT_FOUND', `no route for ${url}`);
    });
  });
  return { app, routes, feed };
}

function listenOn(app: TemplatedApp, host: string, port: number): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (token: us_listen_socket | false) => {
      if (token) resolve(token);
      else reject(new ScanlineError('SCANLINE_ERR_SERVER_LISTEN', `cannot listen on ${host}:${port} (in use or not permitted)`));
    });
  });
}

/**
 * Builds the app, registers every route and listens. Resolves once listening (port 0 → the chosen port). With
 * server.tls the files are checked first (SCANLINE_ERR_SERVER_TLS) and every route is served over TLS.
 */
export async function startHttpServer(o: HttpServerOptions): Promise<HttpServer> {
  // One libvips thread per image operation: a scan image render (tens of MB) must not take every core from the
  // portals' stitching and acks (bench:security, 'Under attack'). Images come out the same, only later.
  sharp.concurrency(1);
  const t = o.config.server.tls;
  const tls = t.cert !== '';
  if (tls) {
    const info = checkTlsFiles(t);
    o.log.info({ certificate: info }, 'serving over TLS');
  }
  const { host } = o.config.server;
  // Apps built so far, newest last: a TLS reload listens with a new app and lets the older ones serve the
  // connections they hold until they close (uWS has no way to swap the certificate of a running app).
  const refusals = new Map<string, number>();
  const pacer = new RefusalPacer(o.config.server.refusalDelayMs, o.config.server.maxDelayedRefusals, o.config.server.maxRefusalDelayMs);
  const imageCache = new RenderedImageCache(o.config.server.imageCacheBytes);
  const shared: ServerShared = {
    pacer,
    imageCache,
    imageRate: new ByteRate(o.config.server.imageBytesPerSecondPerAddress, o.config.server.imageBytesPerSecondPerAddress),
    refusals,
    sockets: new KeyedCounter(o.config.server.maxConnectionsPerAddress),
    requests: new KeyedCounter(o.config.server.maxRequestsPerAddress),
    screens: new KeyedCounter(o.config.operator.maxScreensPerUser),
    rate: new RateLimiter(o.config.server.requestsPerSecondPerAddress, 2 * o.config.server.requestsPerSecondPerAddress),
    renders: new RenderQueue(
      o.config.server.maxConcurrentImages,
      o.config.server.maxQueuedImages,
      (code) => refusals.set(code, (refusals.get(code) ?? 0) + 1),
      pacer,
    ),
  };
  const apps: BuiltApp[] = [buildApp(o, tls, shared)];
  let listening: us_listen_socket | null = await listenOn(apps[0].app, host, o.config.server.port);
  const port = localPort(listening);
  const closeListening = (): void => {
    if (listening) closeListenSocket(listening);
    listening = null;
  };
  return {
    port,
    host,
    tls,
    get listening() {
      return listening !== null;
    },
    stopListening: closeListening,
    closeAll() {
      closeListening();
      pacer.flush();
      for (const a of apps) a.app.close();
    },
    routes: apps[0].routes.specs,
    refusals: () => refusals,
    renders: shared.renders,
    pacer,
    imageCache,
    closeSignedOut: () => apps.reduce((n, a) => n + (a.feed?.closeSignedOut(o.identity) ?? 0), 0),
    async reloadTls() {
      if (!tls) throw new ScanlineError('SCANLINE_ERR_SERVER_TLS', 'the gateway does not serve TLS (server.tls.cert is empty): nothing to reload');
      if (!listening) throw new ScanlineError('SCANLINE_ERR_SERVER_TLS', 'the gateway no longer listens (shutting down): nothing to reload');
      const info = checkTlsFiles(t);
      const next = buildApp(o, true, shared);
      // uWS listens with SO_REUSEPORT on Linux when the port is fixed: the new app binds beside the old one, then
      // the old one stops accepting, and no connection attempt is refused in between; open connections stay on the
      // old app. A port the OS chose (server.port 0) is not shared, and cannot be bound again while connections
      // use it: such a gateway keeps its certificate until restarted.
      const token = await listenOn(next.app, host, port).catch(() => null);
      if (token === null) {
        next.app.close();
        throw new ScanlineError(
          'SCANLINE_ERR_SERVER_TLS',
          `cannot listen on ${host}:${port} beside the running listener (a port the OS chose with server.port 0 cannot be shared); the old certificate stays in use until a restart`,
        );
      }
      closeListening();
      listening = token;
      apps.push(next);
      o.log.info({ certificate: info, apps: apps.length }, 'TLS certificate reloaded; new connections use it, open ones keep theirs');
      return info;
    },
  };
}
