/**
 * The operator screen's doors: the feed WebSocket (WS /v1/operator, protocol in docs/protocol.md) and the web UI
 * (GET / and GET /ui/*, static files from the package's web/ folder, read once at start; nothing from a CDN).
 * Transport only: the feed's logic and its backpressure policy live in src/operator.
 *
 * The feed needs a signed-in viewer (session cookie, or a bearer token for programs) and, from a browser, the
 * gateway's own Origin (a page of another site must not read the live feed with the officer's cookie). The screen's
 * operator id is the account. Open feeds are checked again every few seconds (closeSignedOut): a screen whose
 * session was signed out, expired or whose account was disabled or changed role is closed with code 4001.
 * The UI files are public (the sign-in page must load) and hold no data; they are served with a Content-Security-
 * Policy that allows no inline script and no framing.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScanlineError, toScanlineErrorOrInternal } from '../errors/index.js';
import type { IdentityService, Principal } from '../identity/index.js';
import type { Logger } from '../log/index.js';
import type { OperatorConfig, OperatorHub, OperatorSession, SendStatus } from '../operator/index.js';
import { UI_CONTENT_SECURITY_POLICY, readRequestFacts } from './guard.js';
import { handleAsync, pathParameter } from './http.js';
import type { KeyedCounter } from './limits.js';
import type { Routes } from './routes.js';
import { DISABLED, type HttpResponse, type WebSocket } from './uws.js';

interface OperatorSocketData {
  principal: Principal;
  /** The client address its per-address slot is held for (released on close). */
  address: string;
  session: OperatorSession | null;
  closed: boolean;
}

export interface OperatorRouteOptions {
  hub: OperatorHub;
  config: OperatorConfig;
  log: Logger;
  /** WebSockets per client address (server.maxConnectionsPerAddress), shared with the portal endpoint. */
  sockets: KeyedCounter;
  /** Screens per account (operator.maxScreensPerUser). */
  screens: KeyedCounter;
}

/** WebSocket close code for a screen whose credentials stopped being valid while it was open. */
export const CLOSE_SIGNED_OUT = 4001;

/** The open feeds, for checking their credentials again. */
export interface OperatorFeed {
  /** Closes every screen whose principal is no longer valid (identity.stillValid); returns how many. */
  closeSignedOut(identity: IdentityService): number;
}

const SEND_STATUS: readonly SendStatus[] = ['backpressure', 'sent', 'dropped'];

/**
 * Room above operator.maxMessageBytes so an oversize message still reaches the handler and gets a coded error
 * (beyond it uWS drops the connection without a close frame: the screen sees 1006).
 */
const PAYLOAD_HEADROOM = 64 * 1024;

export function registerOperatorFeed(routes: Routes, o: OperatorRouteOptions): OperatorFeed {
  const { hub, config, log, sockets, screens } = o;
  const spec = routes.ws('/v1/operator', 'viewer');
  const open = new Set<WebSocket<OperatorSocketData>>();
  routes.app.ws<OperatorSocketData>(spec.path, {
    compression: DISABLED,
    maxPayloadLength: config.maxMessageBytes + PAYLOAD_HEADROOM,
    idleTimeout: config.idleTimeoutSec,
    sendPingsAutomatically: true,
    // Above this, send() refuses (2 = dropped): the hub closes the screen rather than lose a control message.
    maxBackpressure: config.maxBufferedBytes,
    closeOnBackpressureLimit: 0,
    upgrade: (res, req, context) => {
      if (routes.refusedForRate(res)) return;
      const facts = readRequestFacts(res, req);
      let principal: Principal;
      // Slots taken so far, given back if a later check refuses.
      let held: Array<() => void> = [];
      try {
        principal = routes.guard.check(spec, facts) as Principal;
        if (!screens.acquire(principal.account)) {
          routes.guard.countRefusal('SCANLINE_ERR_LIMIT_SCREENS');
          throw new ScanlineError(
            'SCANLINE_ERR_LIMIT_SCREENS',
            `${principal.account} has ${screens.limit} screens open (operator.maxScreensPerUser); close one first`,
          );
        }
        const account = principal.account;
        held.push(() => screens.release(account));
        if (!sockets.acquire(facts.address)) {
          routes.guard.countRefusal('SCANLINE_ERR_LIMIT_CONNECTIONS');
          throw new ScanlineError(
            'SCANLINE_ERR_LIMIT_CONNECTIONS',
            `${sockets.limit} WebSockets from ${facts.address} are open (server.maxConnectionsPerAddress)`,
          );
        }
        held.push(() => sockets.release(facts.address));
        if (!hub.admit()) {
          throw new ScanlineError('SCANLINE_ERR_OPERATOR_TOO_MANY', `${config.maxOperators} operator screens are connected (operator.maxOperators)`);
        }
      } catch (err) {
        for (const release of held) release();
        held = [];
        const e = toScanlineErrorOrInternal(err);
        if (e.status === 500) log.error({ err: e }, 'operator feed upgrade failed');
        routes.refuseUpgrade(res, e);
        return;
      }
      res.upgrade<OperatorSocketData>(
        { principal, address: facts.address, session: null, closed: false },
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws: WebSocket<OperatorSocketData>) => {
      const data = ws.getUserData();
      open.add(ws);
      data.session = hub.connect(data.principal.account, {
        send(payload: string | Uint8Array, binary: boolean): SendStatus {
          if (data.closed) return 'dropped';
          return SEND_STATUS[ws.send(payload, binary)] ?? 'dropped';
        },
        bufferedAmount(): number {
          return data.closed ? 0 : ws.getBufferedAmount();
        },
        close(code: number, reason: string): void {
          if (data.closed) return;
          data.closed = true;
          ws.end(code, reason);
        },
      });
    },
    message: (ws: WebSocket<OperatorSocketData>, message: ArrayBuffer, isBinary: boolean) => {
      const session = ws.getUserData().session;
      if (!session) return;
      if (isBinary) {
        hub.refuse(session, new ScanlineError('SCANLINE_ERR_OPERATOR_MESSAGE', 'screens send JSON text messages only; a binary message was ignored'));
        return;
      }
      if (message.byteLength > config.maxMessageBytes) {
        hub.refuse(
          session,
          new ScanlineError(
            'SCANLINE_ERR_OPERATOR_MESSAGE',
            `operator message of ${message.byteLength} bytes exceeds operator.maxMessageBytes (${config.maxMessageBytes}); ignored`,
            {
              maxMessageBytes: config.maxMessageBytes,
            },
          ),
        );
        return;
      }
      // `message` is detached when this handler returns: the text is decoded (copied) here and the hub handles it
      // synchronously.
      hub.onMessage(session, Buffer.from(message).toString('utf8'));
    },
    drain: (ws: WebSocket<OperatorSocketData>) => {
      const session = ws.getUserData().session;
      if (session) hub.onDrain(session);
    },
    close: (ws: WebSocket<OperatorSocketData>) => {
      const data = ws.getUserData();
      data.closed = true;
      open.delete(ws);
      screens.release(data.principal.account);
      sockets.release(data.address);
      if (data.session) hub.onClose(data.session);
    },
  });
  log.debug({ maxOperators: config.maxOperators }, 'operator feed registered at /v1/operator');
  return {
    closeSignedOut(identity: IdentityService): number {
      let closed = 0;
      for (const ws of open) {
        const data = ws.getUserData();
        if (data.closed || identity.stillValid(data.principal)) continue;
        data.closed = true;
        closed++;
        log.info({ operatorId: data.principal.account }, 'operator screen closed: its session or token is no longer valid');
        ws.end(CLOSE_SIGNED_OUT, 'SCANLINE_ERR_AUTH_INVALID');
      }
      return closed;
    },
  };
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** `<package root>/web`, from src/server (vitest) or dist/src/server (compiled); null when the package has none. */
export function webRoot(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return existsSync(join(dir, 'web', 'index.html')) ? join(dir, 'web') : null;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/**
 * Serves the web UI: GET / is web/index.html, GET /ui/<file> the other files of web/ (flat folder). Files are read
 * once here; an edit needs a restart.
 */
export function registerOperatorUi(routes: Routes, log: Logger): void {
  const root = webRoot();
  const files = new Map<string, { type: string; body: Buffer }>();
  // A package without web/ still serves the feed and the API; the UI routes then answer 404 saying why.
  if (root === null) log.error('the web UI folder (web/index.html) is missing from the package; GET / answers 404');
  else {
    for (const name of readdirSync(root)) {
      const type = CONTENT_TYPES[extname(name)];
      if (type) files.set(name, { type, body: readFileSync(join(root, name)) });
    }
  }
  const serve = (res: HttpResponse, req: Parameters<typeof handleAsync>[1], name: string): void =>
    handleAsync(res, req, log, (out) => {
      const f = files.get(name);
      if (!f)
        throw new ScanlineError(
          'SCANLINE_ERR_HTTP_NOT_FOUND',
          root === null ? 'the web UI is not installed (no web/ folder in the package)' : `no UI file ${name}`,
        );
      out.send(200, f.type, f.body, f.type.startsWith('text/html') ? { 'Content-Security-Policy': UI_CONTENT_SECURITY_POLICY } : {});
    });
  routes.get('/', 'public', (res, req) => serve(res, req, 'index.html'));
  routes.get('/ui/:file', 'public', (res, req) => serve(res, req, pathParameter(req, 0)));
  log.debug({ root, files: files.size }, 'operator UI served at /');
}
