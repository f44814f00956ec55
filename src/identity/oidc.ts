/**
 * Signing in through the customs identity provider: OpenID Connect authorization code flow with PKCE (S256), state
 * and nonce, through openid-client (a certified relying-party library: discovery, the token request, ID token
 * signature, issuer, audience, expiry and nonce checks are its, not ours). What is ours is the policy: which claim
 * names the account (auth.oidc.usernameClaim, lower-cased, account name rules), which claim values give which role
 * (auth.oidc.roleMap, the highest wins; none mapped → refused), and that a provider's user never takes over a local
 * account of the same name.
 *
 * Pending sign-ins (state, nonce, PKCE verifier) are kept here for 10 minutes, keyed by a random id the browser holds
 * in an HttpOnly cookie, so the callback is accepted only in the browser that started it.
 *
 * Threads: gateway JS thread; discovery and the token request are network I/O (async).
 */
import { setRecent } from '../memory/index.js';
import { randomBytes } from 'node:crypto';
import * as client from 'openid-client';
import { ScanlineError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { OidcConfig } from './config.js';
import type { IdentityService, SignedIn } from './identity-service.js';
import { ROLES, type Role } from './roles.js';

/** How long a started sign-in may take at the provider, ms. */
const PENDING_TTL_MS = 10 * 60_000;
/** Most sign-ins pending at once; the oldest are forgotten first. */
const MAX_PENDING = 1000;

interface Pending {
  state: string;
  nonce: string;
  verifier: string;
  createdAt: number;
}

function oidcError(message: string, cause?: unknown): ScanlineError {
  return new ScanlineError('SCANLINE_ERR_AUTH_OIDC', message, {}, cause === undefined ? undefined : { cause });
}

export class OidcSignIn {
  private configuration: client.Configuration | null = null;
  private discovering: Promise<client.Configuration> | null = null;
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly config: OidcConfig,
    private readonly identity: IdentityService,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.config.issuer !== '';
  }

  /** Text of the sign-in button. */
  get label(): string {
    if (this.config.label !== '') return this.config.label;
    try {
      return `Sign in with ${new URL(this.config.issuer).host}`;
    } catch {
      return 'Sign in with your organisation';
    }
  }

  /**
   * The provider's metadata (/.well-known/openid-configuration), read on first use and kept; a failure is not kept,
   * so a provider that was down is tried again at the next sign-in. Plain http is allowed only for a provider on this
   * machine (loopback), e.g. a test; anywhere else it must be https.
   */
  private discover(): Promise<client.Configuration> {
    if (this.configuration) return Promise.resolve(this.configuration);
    this.discovering ??= (async () => {
      const issuer = new URL(this.config.issuer);
      const loopback = issuer.hostname === '127.0.0.1' || issuer.hostname === 'localhost' || issuer.hostname === '[::1]';
      if (issuer.protocol !== 'https:' && !(issuer.protocol === 'http:' && loopback)) {
        throw oidcError(`auth.oidc.issuer ${this.config.issuer} must be https (plain http only for a provider on this machine)`);
      }
      const options = issuer.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : undefined;
      const configuration = await client.discovery(
        issuer,
        this.config.clientId,
        this.config.clientSecret !== '' ? this.config.clientSecret : undefined,
        this.config.clientSecret !== '' ? undefined : client.None(),
        options,
      );
      this.configuration = configuration;
      this.log.info({ issuer: this.config.issuer }, 'OpenID provider discovered');
      return configuration;
    })().catch((err: unknown) => {
      this.discovering = null;
      throw err instanceof ScanlineError
        ? err
        : oidcError(`the OpenID provider ${this.config.issuer} cannot be reached or read: ${(err as Error).message}`, err);
    });
    return this.discovering;
  }

  /**
   * Starts a sign-in: returns where to send the browser and the id it must bring back (in the binding cookie).
   */
  async start(): Promise<{ url: URL; binding: string }> {
    const configuration = await this.discover();
    this.forgetExpired();
    const verifier = client.randomPKCECodeVerifier();
    const p: Pending = { state: client.randomState(), nonce: client.randomNonce(), verifier, createdAt: this.now() };
    const binding = randomBytes(32).toString('base64url');
    setRecent(this.pending, binding, p, MAX_PENDING);
    const url = client.buildAuthorizationUrl(configuration, {
      redirect_uri: this.config.redirectUri,
      scope: this.config.scopes,
      response_type: 'code',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: p.state,
      nonce: p.nonce,
    });
    return { url, binding };
  }

  /**
   * Finishes a sign-in at the callback: `query` is the callback's query string, `binding` the cookie of the browser.
   * Opens a session for the provider's user (made an `oidc` account on first sign-in, its role refreshed at each).
   * Throws SCANLINE_ERR_AUTH_INVALID (no pending sign-in for this browser, or the provider said no),
   * SCANLINE_ERR_AUTH_FORBIDDEN (no claim value maps to a role, or the name belongs to a local or disabled account)
   * or SCANLINE_ERR_AUTH_OIDC (the provider cannot be reached, or its answer does not verify).
   */
  async finish(query: string, binding: string | null, address: string): Promise<SignedIn> {
    const p = binding ? this.pending.get(binding) : undefined;
    if (binding) this.pending.delete(binding);
    if (!p || this.now() - p.createdAt > PENDING_TTL_MS) {
      throw new ScanlineError('SCANLINE_ERR_AUTH_INVALID', 'no sign-in was started in this browser, or it took longer than 10 minutes; start again');
    }
    const configuration = await this.discover();
    const callback = new URL(this.config.redirectUri);
    callback.search = query;
    let claims: Record<string, unknown>;
    try {
      const tokens = await client.authorizationCodeGrant(configuration, callback, {
        pkceCodeVerifier: p.verifier,
        expectedState: p.state,
        expectedNonce: p.nonce,
        idTokenExpected: true,
      });
      claims = (tokens.claims() ?? {}) as Record<string, unknown>;
    } catch (err) {
      if (err instanceof client.AuthorizationResponseError) {
        throw new ScanlineError(
          'SCANLINE_ERR_AUTH_INVALID',
          `the OpenID provider refused the sign-in: ${err.error}${err.error_description ? ` (${err.error_description})` : ''}`,
        );
      }
      throw oidcError(`the OpenID provider's answer could not be verified: ${(err as Error).message}`, err);
    }
    const rawName = claims[this.config.usernameClaim];
    // Only ASCII names are folded to lower case: Unicode case rules map other characters onto ASCII letters (the
    // Kelvin sign K lowers to k), which would let a different provider user land in an existing account.
    const name = typeof rawName === 'string' && /^[\x21-\x7e]+$/.test(rawName.trim()) ? rawName.trim().toLowerCase() : '';
    const role = this.roleOf(claims[this.config.roleClaim]);
    if (role === null) {
      this.identity.recordRefusal({
        actor: 'anonymous',
        action: 'session.login',
        target: name.slice(0, 64) || null,
        outcome: 'refused',
        address,
        details: { method: 'oidc', reason: `no value of claim ${this.config.roleClaim} maps to a role (auth.oidc.roleMap)` },
      });
      throw new ScanlineError(
        'SCANLINE_ERR_AUTH_FORBIDDEN',
        `the provider gives ${name || 'this user'} no role Scanline knows (claim ${this.config.roleClaim}, auth.oidc.roleMap)`,
      );
    }
    return this.identity.signInFromProvider(name, role, address, this.config.issuer);
  }

  /** The highest role any value of the claim maps to, or null. */
  private roleOf(claim: unknown): Role | null {
    const values = typeof claim === 'string' ? [claim] : Array.isArray(claim) ? claim.filter((v): v is string => typeof v === 'string') : [];
    let best: Role | null = null;
    for (const v of values) {
      const role = this.config.roleMap[v] as Role | undefined;
      if (role !== undefined && (best === null || rank(role) > rank(best))) best = role;
    }
    return best;
  }

  private forgetExpired(): void {
    const t = this.now();
    for (const [k, p] of this.pending) if (t - p.createdAt > PENDING_TTL_MS) this.pending.delete(k);
  }
}

/** People's roles in order; metrics lowest (a person mapped to it can only read metrics). */
function rank(role: Role): number {
  return role === 'metrics' ? -1 : ROLES.indexOf(role);
}
