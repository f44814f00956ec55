/**
 * Signing in and out, and the audit trail over HTTP:
 *   POST   /v1/session   {"username", "password"} -> 201 {user, role, csrfToken, expiresAt}, Set-Cookie scanline_session
 *                        (HttpOnly, SameSite=Strict, Secure under TLS). 401 SCANLINE_ERR_AUTH_INVALID, 429
 *                        SCANLINE_ERR_AUTH_LOCKED with Retry-After.
 *   GET    /v1/session   who is signed in: {user, role, kind, csrfToken?, expiresAt}
 *   DELETE /v1/session   signs out (the session ends on the gateway, the cookie is removed) -> 204
 *   GET    /v1/audit?limit=&action=&before=   audit events, newest first (admin)
 */
import type { Principal } from '../identity/index.js';
import type { Logger } from '../log/index.js';
import { SchemaValidator, Type } from '../schema/index.js';
import { bodyValidator, parseBody, parseQuery } from './body.js';
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

export function registerSessionRoutes(routes: Routes, log: Logger): void {
  const { guard } = routes;
  const identity = guard.identity;

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
