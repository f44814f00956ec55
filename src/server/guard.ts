/**
 * The door every HTTP request and WebSocket upgrade goes through before its route runs (threat model and controls:
 * docs/security.md):
 *   1. Host: the Host header must name this gateway (server.allowedHosts), or DNS rebinding would make the gateway
 *      same-origin with an attacker's page.
 *   2. Origin: a state-changing request, and every operator feed upgrade, that carries an Origin must come from the
 *      gateway's own origin or one in server.allowedOrigins (browsers send Origin on these; programs do not).
 *   3. Credentials: `Authorization: Bearer <API token>` (programs) or the `scanline_session` cookie (people);
 *      missing → 401 SCANLINE_ERR_AUTH_REQUIRED, wrong or expired → 401 SCANLINE_ERR_AUTH_INVALID.
 *   4. Role: the route's Access (src/identity roles.ts) → 403 SCANLINE_ERR_AUTH_FORBIDDEN.
 *   5. CSRF: a state-changing request authenticated by the cookie must carry the session's X-CSRF-Token.
 *   6. Content type: a JSON body must be sent as application/json (a form or text/plain post is refused: those
 *      are what a foreign page can send without a CORS preflight).
 * Public routes read credentials when they are valid (to show more to the signed-in) and never refuse for them.
 *
 * Threads: gateway JS thread, synchronously inside the uWS handler (the request is valid only then).
 */
import { networkInterfaces, hostname } from 'node:os';
import { ScanlineError } from '../errors/index.js';
import { type Access, type IdentityService, type Principal, roleAllows, sameSecret } from '../identity/index.js';
import type { HttpRequest, HttpResponse } from './uws.js';

export const SESSION_COOKIE = 'scanline_session';
export const CSRF_HEADER = 'x-csrf-token';

/** Headers on every response: no sniffing, no framing, no referrer leaking scan ids, no cross-origin embedding. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cross-Origin-Opener-Policy': 'same-origin',
  // Browsers heed HSTS only over TLS and ignore it on plain HTTP (RFC 6797 section 8.1), so it is sent on every
  // response: once a browser has reached the gateway over https, it never falls back to http.
  'Strict-Transport-Security': 'max-age=31536000',
});

/** The operator UI's policy: scripts and styles from the gateway only (no inline script), nothing may frame it. */
export const UI_CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; " +
  "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** What the guard reads of a request, copied while the uWS request is valid. */
export interface RequestFacts {
  method: string;
  url: string;
  host: string;
  origin: string;
  contentType: string;
  cookie: string;
  authorization: string;
  csrfToken: string;
  /** X-Scanline-Portal: with a portal's credential as the bearer token, on routes that take portal credentials. */
  portal: string;
  address: string;
}

export function readRequestFacts(res: HttpResponse, req: HttpRequest): RequestFacts {
  return {
    method: req.getMethod().toUpperCase(),
    url: req.getUrl(),
    host: req.getHeader('host'),
    origin: req.getHeader('origin'),
    contentType: req.getHeader('content-type'),
    cookie: req.getHeader('cookie'),
    authorization: req.getHeader('authorization'),
    csrfToken: req.getHeader(CSRF_HEADER),
    portal: req.getHeader('x-scanline-portal'),
    address: clientAddress(res),
  };
}

/** The client address of a request or socket as text (what per-address limits and the audit trail key on). */
export function clientAddress(res: Pick<HttpResponse, 'getRemoteAddressAsText'>): string {
  return Buffer.from(res.getRemoteAddressAsText()).toString();
}

/** What a route declares about itself; the access matrix test reads the list of them. */
export interface RouteSpec {
  method: 'GET' | 'POST' | 'DELETE' | 'WS';
  path: string;
  /** `portal`: a WebSocket whose peers authenticate in the protocol (hello carries the portal's credential). */
  access: Access | 'portal';
  /** The route reads a JSON body: Content-Type must be application/json. */
  json?: boolean;
  /**
   * The route also takes a portal's own credential (`scanline portal add`): `Authorization: Bearer <credential>` with
   * `X-Scanline-Portal: <portal id>` (POST /v1/imports, for a scanner's export program).
   */
  portalCredentials?: boolean;
}

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The host name of a Host header value (`example:8080` → `example`, `[::1]:8080` → `::1`), lower case. */
export function hostOf(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end > 0 ? h.slice(1, end) : h;
  }
  const colon = h.indexOf(':');
  return colon >= 0 && h.indexOf(':', colon + 1) < 0 ? h.slice(0, colon) : h;
}

/** The value of cookie `name` in a Cookie header (the first, when sent twice), or null. */
export function cookieValue(header: string, name: string): string | null {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

export interface GuardOptions {
  identity: IdentityService;
  /** The address the server is bound to (server.host). */
  boundHost: string;
  allowedHosts: readonly string[];
  allowedOrigins: readonly string[];
  /** True when served over TLS: the own origin is https and cookies are Secure. */
  tls: boolean;
  /** Refusals by error code, shared by the server's apps (scanline_http_refusals_total). */
  refusals: Map<string, number>;
}

export class RequestGuard {
  private readonly hosts: Set<string>;
  private readonly origins: Set<string>;
  readonly tls: boolean;
  readonly identity: IdentityService;
  /** Refusals by code, for metrics (shared by the server's apps). */
  readonly refusals: Map<string, number>;

  constructor(o: GuardOptions) {
    this.identity = o.identity;
    this.tls = o.tls;
    this.refusals = o.refusals;
    const hosts = new Set(['localhost', '127.0.0.1', '::1', hostOf(o.boundHost)]);
    if (o.boundHost === '0.0.0.0' || o.boundHost === '::') {
      // Bound to every interface: the machine's own names and addresses are how people on the network reach it.
      hosts.add(hostname().toLowerCase());
      for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) hosts.add(a.address.toLowerCase());
    }
    for (const h of o.allowedHosts) hosts.add(hostOf(h));
    this.hosts = hosts;
    this.origins = new Set(o.allowedOrigins.map((x) => x.toLowerCase()));
  }

  allowsHost(hostHeader: string): boolean {
    return hostHeader !== '' && this.hosts.has(hostOf(hostHeader));
  }

  /** The Origin is absent, the gateway's own (scheme and the Host the request was sent to), or configured. */
  allowsOrigin(facts: Pick<RequestFacts, 'origin' | 'host'>): boolean {
    if (facts.origin === '') return true;
    const origin = facts.origin.toLowerCase();
    return origin === `${this.tls ? 'https' : 'http'}://${facts.host.toLowerCase()}` || this.origins.has(origin);
  }

  /**
   * The principal of the request's credentials: a bearer token first, else the session cookie. Null when it
   * carries none; throws SCANLINE_ERR_AUTH_INVALID when what it carries is not valid.
   */
  authenticate(facts: Pick<RequestFacts, 'authorization' | 'cookie'>): Principal | null {
    if (facts.authorization !== '') {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(facts.authorization);
      const principal = match ? this.identity.tokenOf(match[1]) : null;
      if (!principal) throw new ScanlineError('SCANLINE_ERR_AUTH_INVALID', 'the bearer token is unknown, expired or revoked, or its account is disabled');
      return principal;
    }
    const session = cookieValue(facts.cookie, SESSION_COOKIE);
    if (session === null || session === '') return null;
    const principal = this.identity.sessionOf(session);
    if (!principal) throw new ScanlineError('SCANLINE_ERR_AUTH_INVALID', 'the session has ended or was signed out; sign in again');
    return principal;
  }

  /** A portal's own credential (RouteSpec.portalCredentials): the bearer token checked against X-Scanline-Portal. */
  private authenticatePortal(facts: Pick<RequestFacts, 'authorization' | 'portal'>): Principal {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(facts.authorization);
    const principal = match ? this.identity.portalPrincipal(facts.portal, match[1]) : null;
    if (!principal)
      throw new ScanlineError(
        'SCANLINE_ERR_AUTH_INVALID',
        `the bearer token is not the credential of portal ${JSON.stringify(facts.portal.slice(0, 64))} (or it was revoked)`,
      );
    return principal;
  }

  /**
   * Runs the checks of the file comment for one route; returns the principal (null on a public route without valid
   * credentials) or throws the refusal.
   */
  check(route: RouteSpec, facts: RequestFacts): Principal | null {
    try {
      return this.checkUncounted(route, facts);
    } catch (err) {
      this.countRefusal((err as ScanlineError).code ?? 'unknown');
      throw err;
    }
  }

  countRefusal(code: string): void {
    this.refusals.set(code, (this.refusals.get(code) ?? 0) + 1);
  }

  private checkUncounted(route: RouteSpec, facts: RequestFacts): Principal | null {
    if (route.access === 'portal') {
      // Portals are programs, never browsers: a browser always sends Origin on a WebSocket, so a page of any site
      // (even this gateway's own) is refused here. The Host is not checked: rebinding needs a browser, and portals
      // may reach the gateway through NAT under any name. The portal's credential is checked in hello.
      if (facts.origin !== '') throw new ScanlineError('SCANLINE_ERR_AUTH_ORIGIN', 'portals are programs; a browser page may not open the portal endpoint');
      return null;
    }
    if (!this.allowsHost(facts.host)) {
      throw new ScanlineError(
        'SCANLINE_ERR_HTTP_HOST',
        `this gateway does not serve the host ${JSON.stringify(facts.host.slice(0, 100))} (server.allowedHosts)`,
      );
    }
    const stateChanging = STATE_CHANGING.has(facts.method) || route.method === 'WS';
    if (stateChanging && !this.allowsOrigin(facts)) {
      throw new ScanlineError(
        'SCANLINE_ERR_AUTH_ORIGIN',
        `requests from ${JSON.stringify(facts.origin.slice(0, 100))} are not accepted (server.allowedOrigins)`,
      );
    }
    if (route.access === 'public') {
      let principal: Principal | null = null;
      try {
        principal = this.authenticate(facts);
      } catch {
        principal = null; // a stale cookie does not stop a public route (e.g. signing in again)
      }
      if (route.json) this.checkJson(facts);
      return principal;
    }
    const principal = route.portalCredentials && facts.portal !== '' ? this.authenticatePortal(facts) : this.authenticate(facts);
    if (!principal) throw new ScanlineError('SCANLINE_ERR_AUTH_REQUIRED', 'sign in (POST /v1/session) or send Authorization: Bearer <API token>');
    if (!roleAllows(principal.role, route.access)) {
      throw new ScanlineError('SCANLINE_ERR_AUTH_FORBIDDEN', `role ${principal.role} may not use ${route.method} ${route.path} (needs ${route.access})`, {
        role: principal.role,
        needs: route.access,
      });
    }
    if (stateChanging && principal.kind === 'session' && route.method !== 'WS') {
      if (facts.csrfToken === '' || !sameSecret(facts.csrfToken, principal.csrfToken ?? '')) {
        throw new ScanlineError('SCANLINE_ERR_AUTH_CSRF', `send the session's csrfToken (from POST or GET /v1/session) in the X-CSRF-Token header`);
      }
    }
    if (route.json) this.checkJson(facts);
    return principal;
  }

  private checkJson(facts: RequestFacts): void {
    const type = facts.contentType.split(';')[0].trim().toLowerCase();
    if (type !== 'application/json') {
      throw new ScanlineError(
        'SCANLINE_ERR_HTTP_CONTENT_TYPE',
        `send the body as Content-Type: application/json (received ${JSON.stringify(facts.contentType.slice(0, 100) || 'none')})`,
      );
    }
  }

  /** Set-Cookie value that stores a new session in the browser (a session cookie: gone when the browser closes). */
  sessionCookie(secret: string): string {
    return `${SESSION_COOKIE}=${secret}; Path=/; HttpOnly; SameSite=Strict${this.tls ? '; Secure' : ''}`;
  }

  /** Set-Cookie value that removes the session cookie. */
  clearedSessionCookie(): string {
    return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${this.tls ? '; Secure' : ''}`;
  }
}
