/**
 * Signing in and out, and the audit trail over HTTP:
 *   POST   /v1/session   {"username", "password"} -> 201 {user, role, csrfToken, expiresAt}, Set-Cookie scanline_session
 *                        (HttpOnly, SameSite=Strict, Secure under TLS). 401 SCANLINE_ERR_AUTH_INVALID, 429
 *                        SCANLINE_ERR_AUTH_LOCKED with Retry-After.
 *   GET    /v1/session   who is signed in: {user, role, kind, csrfToken?, expiresAt}
 *   DELETE /v1/session   signs out (the session ends on the gateway, the cookie is removed) -> 204
 *   GET    /v1/audit?limit=&action=&before=   audit events, newest first (admin)
 *   GET    /v1/session/providers            how one may sign in: {password: true, oidc: {label, start} | null}
 *   GET    /v1/session/oidc                 starts the OpenID Connect sign-in: 302 to the provider, with a binding
 *                                            cookie (HttpOnly, SameSite=Lax: it must come back on the provider's
 *                                            cross-site redirect, on this path only, 10 minutes)
 *   GET    /v1/session/oidc/callback        where the provider sends the browser back: the session cookie and 302
 *                                            to the operator screen, or 302 to /?signInError=<code>
 */
import { ScanlineError, toScanlineErrorOrInternal } from '../errors/index.js';
import type { OidcSignIn, Principal } from '../identity/index.js';
import type { Logger } from '../log/index.js';
import { SchemaValidator, Type } from '../schema/index.js';
import { bodyValidator, parseBody, parseQuery } from './body.js';
import { cookieValue } from './guard.js';
import { handleAsync, readJsonBody } from './http.js';
import { principalOf, type Routes } from './routes.js';

/** Sign-in bodies are tiny. */
const MAX_SESSION_BODY_BYTES = 4 * 1024;

export const SignInRequestSchema = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 64, description: 'Account name.' }),
    password: Type.String({ minLength: 1, maxLength: 1024, secret: true, description: 'The account password.' }),
  },
  { additionalProperties: false },
);
const SIGN_IN_BODY = bodyValidator(SignInRequestSchema);

export const AuditQuerySchema = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'Most events listed, newest first.' }),
  action: Type.Optional(Type.String({ maxLength: 64, description: 'Only events of this action, e.g. decision.record.' })),
  before: Type.Optional(Type.Integer({ minimum: 1, description: 'Only events with a smaller id (paging back).' })),
});
const AUDIT_QUERY = new SchemaValidator(AuditQuerySchema);

function sessionView(p: Principal): Record<string, unknown> {
  return { user: p.account, role: p.role, kind: p.kind, ...(p.csrfToken ? { csrfToken: p.csrfToken } : {}), expiresAt: p.expiresAt };
}

const OIDC_BINDING_COOKIE = 'scanline_oidc';
const OIDC_PATH = '/v1/session/oidc';

export function registerSessionRoutes(routes: Routes, log: Logger, oidc: OidcSignIn | null): void {
  const { guard } = routes;
  const identity = guard.identity;
  const secure = guard.tls ? '; Secure' : '';
  const bindingCookie = (value: string, maxAge: number): string =>
    `${OIDC_BINDING_COOKIE}=${value}; Path=${OIDC_PATH}; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${secure}`;
  /** Back to the screen, which shows the code; the detail goes to the log (the browser's address bar is no place for it). */
  const failed = (err: unknown): string => {
    const e = toScanlineErrorOrInternal(err);
    if (e.code === 'SCANLINE_ERR_AUTH_OIDC' || e.status === 500) log.error({ err: e }, 'OpenID Connect sign-in failed');
    else log.warn({ code: e.code, msg: e.message }, 'OpenID Connect sign-in refused');
    return `/?signInError=${encodeURIComponent(e.code)}`;
  };

  routes.get('/v1/session/providers', 'public', (res, req) => {
    handleAsync(res, req, log, (out) => out.json(200, { password: true, oidc: oidc?.enabled ? { label: oidc.label, start: OIDC_PATH } : null }));
  });

  routes.get(OIDC_PATH, 'public', (res, req) => {
    handleAsync(res, req, log, async (out) => {
      if (!oidc?.enabled) throw new ScanlineError('SCANLINE_ERR_HTTP_NOT_FOUND', 'sign-in through an OpenID provider is not configured (auth.oidc.issuer)');
      try {
        const { url, binding } = await oidc.start();
        out.redirect(url.href, { 'Set-Cookie': bindingCookie(binding, 600) });
      } catch (err) {
        out.redirect(failed(err));
      }
    });
  });

  routes.get(`${OIDC_PATH}/callback`, 'public', (res, req, ctx) => {
    const query = req.getQuery() ?? '';
    handleAsync(res, req, log, async (out) => {
      if (!oidc?.enabled) throw new ScanlineError('SCANLINE_ERR_HTTP_NOT_FOUND', 'sign-in through an OpenID provider is not configured (auth.oidc.issuer)');
      const clear = bindingCookie('', 0);
      try {
        const signedIn = await oidc.finish(query, cookieValue(ctx.facts.cookie, OIDC_BINDING_COOKIE), ctx.facts.address);
        log.info({ user: signedIn.principal.account, role: signedIn.principal.role, address: ctx.facts.address }, 'signed in through the OpenID provider');
        out.redirect('/', { 'Set-Cookie': [guard.sessionCookie(signedIn.sessionSecret), clear] });
      } catch (err) {
        out.redirect(failed(err), { 'Set-Cookie': clear });
      }
    });
  });

  routes.post(
    '/v1/session',
    'public',
    (res, req, ctx) => {
      handleAsync(res, req, log, async (out) => {
        const { username, password } = parseBody(SIGN_IN_BODY, await readJsonBody(res, MAX_SESSION_BODY_BYTES), 'sign-in');
        const signedIn = await identity.signIn(username, password, ctx.facts.address);
        log.info({ user: username, address: ctx.facts.address }, 'signed in');
        out.send(201, 'application/json; charset=utf-8', JSON.stringify(sessionView(signedIn.principal)), {
          'Set-Cookie': guard.sessionCookie(signedIn.sessionSecret),
        });
      });
    },
    { json: true },
  );

  routes.get('/v1/session', 'signedIn', (res, req, ctx) => {
    handleAsync(res, req, log, (out) => out.json(200, sessionView(principalOf(ctx))));
  });

  routes.del('/v1/session', 'signedIn', (res, req, ctx) => {
    handleAsync(res, req, log, (out) => {
      identity.signOut(principalOf(ctx), ctx.facts.address);
      out.send(204, 'text/plain', '', { 'Set-Cookie': guard.clearedSessionCookie() });
    });
  });

  routes.get('/v1/audit', 'admin', (res, req) => {
    const q = new URLSearchParams(req.getQuery() ?? '');
    handleAsync(res, req, log, (out) => {
      const { limit, action, before } = parseQuery(AUDIT_QUERY, q);
      out.json(200, { events: identity.listAudit({ limit, ...(action !== undefined ? { action } : {}), ...(before !== undefined ? { before } : {}) }) });
    });
  });
}
