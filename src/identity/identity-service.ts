/**
 * Who is who: accounts of people and programs, their sessions and API tokens, portal credentials, and the audit
 * trail every act of a person goes to. The policy lives here (hashing, expiry, lockout, what is audited); the rows
 * live in the database (src/storage IdentityStore). Used by the gateway (every request) and by the `scanline user |
 * token | portal` commands (another process on the same database: nothing is cached, so a revocation made there is
 * seen by the gateway's next lookup).
 *
 * Threads: gateway JS thread. Lookups (sessionOf, tokenOf, verifyPortal) are synchronous indexed reads; password
 * hashing is asynchronous (scrypt on the libuv thread pool).
 */
import { randomBytes } from 'node:crypto';
import { ScanlineError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { PortalIdSchema } from '../protocol/index.js';
import { SchemaValidator, Type } from '../schema/index.js';
import type { AuditEvent, IdentityStore, IntegrityReport, StoredAccount, StoredAuditEvent, StoredPortalIdentity, StoredToken } from '../storage/index.js';
import type { AuthConfig } from './config.js';
import { LoginThrottle } from './login-throttle.js';
import { decoyHash, hashPassword, verifyPassword } from './passwords.js';
import { isRole, type Role } from './roles.js';
import { csrfTokenOf, hashSecret, newSecret, sameSecret } from './secrets.js';

/** Account names: 1-64 of a-z 0-9 . _ @ - starting with a letter or digit (lower case: no look-alike accounts). */
export const AccountNameSchema = Type.String({
  pattern: '^[a-z0-9][a-z0-9._@-]{0,63}$',
  expected: 'an account name of 1-64 characters a-z 0-9 . _ @ - (lower case, starting with a letter or digit)',
});
const ACCOUNT_NAME = new SchemaValidator(AccountNameSchema);
const PORTAL_ID = new SchemaValidator(PortalIdSchema);

/** Prefixes of the secrets handed out, so that a leaked one says what it is. */
export const SECRET_PREFIX = { session: 'sls_', token: 'slt_', portal: 'slp_' } as const;

/** Who made a request: a person in a browser session, or a program with an API token. */
export interface Principal {
  /**
   * `portal`: a portal's (or a scanner's) own credential, taken only by routes that say so (POST /v1/imports), where
   * it acts as an officer importing its own images; `account` is then `portal:<id>` and `portalId` is set.
   */
  kind: 'session' | 'token' | 'portal';
  account: string;
  role: Role;
  /** For sessions: the token every state-changing request must carry in X-CSRF-Token. */
  csrfToken?: string;
  /** SHA-256 of the session's secret (sessions) or the token's public id (tokens). */
  credentialId: string;
  /** ISO time the session or token stops working (null: a token without expiry). */
  expiresAt: string | null;
  /** Kind 'portal': the portal whose credential it is. */
  portalId?: string;
}

/** Who acts, for the audit trail: a principal over the network, or the command line (`cli:<os user>`). */
export interface Actor {
  name: string;
  address: string | null;
}

export interface SignedIn {
  /** The cookie's value: shown once, never stored. */
  sessionSecret: string;
  principal: Principal;
}

export interface CreatedToken {
  token: string;
  record: Omit<StoredToken, 'secretHash'>;
}

/** The audit trail: one interface for every act of a person (the integrity issue makes it tamper-evident). */
export interface AuditTrail {
  record(event: AuditEvent): void;
}

export interface IdentityServiceOptions {
  store: IdentityStore;
  config: AuthConfig;
  log: Logger;
  now?: () => number;
}

const MINUTE = 60_000;
/** A session's last-seen time is written at most this often (each request reads; few write). */
const TOUCH_EVERY_MS = MINUTE;
/** Longest a token may live, days (`--expires`). */
export const MAX_TOKEN_DAYS = 3650;

export class IdentityService implements AuditTrail {
  private readonly store: IdentityStore;
  private readonly throttle: LoginThrottle;
  private readonly now: () => number;
  /** Counters for metrics. */
  /** When each once-a-minute log line was last written (onceAMinute). */
  private readonly loggedAt = new Map<'bookkeeping' | 'refusal-stack', number>();
  readonly stats = { signIns: 0, signInFailures: 0, signInsLocked: 0, refused: 0, refusalsUnrecorded: 0, bookkeepingFailures: 0 };

  constructor(private readonly o: IdentityServiceOptions) {
    this.store = o.store;
    this.now = o.now ?? Date.now;
    this.throttle = new LoginThrottle(o.config.loginMaxFailures, o.config.loginLockoutMaxSec * 1000, this.now);
  }

  record(event: AuditEvent): void {
    this.recordAll([event]);
  }

  /**
   * Records events in order in one write: one IMMEDIATE transaction (it holds the identity database's write lock for
   * one fsync), all entries with the same `at`, the time of the write. All of them, or none and a throw (logged here).
   * `useReserve` false: a full disk refuses them rather than give them the space reserve held for people's acts
   * (IdentityStore.appendAuditAll).
   */
  recordAll(events: readonly AuditEvent[], useReserve = true): void {
    if (events.length === 0) return;
    try {
      this.store.appendAuditAll(events, new Date(this.now()).toISOString(), useReserve);
    } catch (err) {
      // An act that cannot be audited must not look audited: the caller's act fails with it.
      this.o.log.error({ err, action: events[0].action, events: events.length }, 'audit trail write failed');
      throw err;
    }
  }

  /**
   * Records a refusal (outcome 'refused': a sign-in refused, an import refused). Never from the space reserve (a
   * stream of refused attempts on a full disk must not use up the room kept for officers' decisions) and never
   * throws: the act was refused whether or not its entry could be written. One that cannot be written goes to the
   * log whole (`event`), the only record left of it. True when it is in the audit trail.
   */
  recordRefusal(event: AuditEvent): boolean {
    try {
      this.store.appendAuditAll([event], new Date(this.now()).toISOString(), false);
      return true;
    } catch (err) {
      this.stats.refusalsUnrecorded++;
      // Every such event is logged (it is the only record of it), the error's stack once a minute: a stream of
      // refused sign-ins on a full disk must not flood the log with stacks.
      const withStack = this.onceAMinute('refusal-stack');
      this.o.log.error(
        withStack ? { err, event } : { event, reason: (err as Error).message },
        'a refusal could not be written to the audit trail; it is recorded in this log only',
      );
      return false;
    }
  }

  // -- people: accounts --------------------------------------------------------------------------------------

  private checkName(name: string): void {
    // Through `unknown`: a failed check must not narrow `name` to never.
    const candidate: unknown = name;
    if (!ACCOUNT_NAME.check(candidate)) {
      throw new ScanlineError('SCANLINE_ERR_ACCOUNT_INVALID', `Expected ${AccountNameSchema.expected} but received ${JSON.stringify(name.slice(0, 80))}`);
    }
  }

  private checkPassword(password: string): void {
    const length = [...password].length;
    if (length < this.o.config.minPasswordLength || length > 1024) {
      throw new ScanlineError(
        'SCANLINE_ERR_ACCOUNT_INVALID',
        `a password needs ${this.o.config.minPasswordLength} to 1024 characters (auth.minPasswordLength); this one has ${length}`,
      );
    }
  }

  private checkRole(role: string): asserts role is Role {
    if (!isRole(role))
      throw new ScanlineError(
        'SCANLINE_ERR_ACCOUNT_INVALID',
        `Expected a role (metrics, viewer, officer, supervisor or admin) but received ${JSON.stringify(role)}`,
      );
  }

  /** Adds a local account that signs in with `password`. */
  async addAccount(name: string, role: string, password: string, by: Actor): Promise<StoredAccount> {
    this.checkName(name);
    this.checkRole(role);
    this.checkPassword(password);
    return this.createAccount(name, role, await hashPassword(password), by);
  }

  /** Adds an account without a password: it acts only through API tokens (a metrics scraper, an integration). */
  addProgramAccount(name: string, role: string, by: Actor): StoredAccount {
    this.checkName(name);
    this.checkRole(role);
    return this.createAccount(name, role, null, by);
  }

  private createAccount(name: string, role: Role, passwordHash: string | null, by: Actor, source: 'local' | 'oidc' = 'local'): StoredAccount {
    const account = this.store.createAccount({ name, role, passwordHash, source }, this.iso());
    this.record({
      actor: by.name,
      action: 'account.create',
      target: name,
      outcome: 'ok',
      address: by.address,
      details: { role, password: passwordHash !== null, source },
    });
    return account;
  }

  /** Sets a new password; every session of the account ends. */
  async setPassword(name: string, password: string, by: Actor): Promise<void> {
    this.checkPassword(password);
    const hash = await hashPassword(password);
    this.store.updateAccount(name, { passwordHash: hash }, this.iso());
    const ended = this.store.deleteSessionsOf(name);
    this.record({ actor: by.name, action: 'account.password', target: name, outcome: 'ok', address: by.address, details: { sessionsEnded: ended } });
  }

  setRole(name: string, role: string, by: Actor): StoredAccount {
    this.checkRole(role);
    const before = this.requireAccount(name).role;
    const account = this.store.updateAccount(name, { role }, this.iso());
    const ended = this.store.deleteSessionsOf(name);
    this.record({
      actor: by.name,
      action: 'account.role',
      target: name,
      outcome: 'ok',
      address: by.address,
      details: { from: before, to: role, sessionsEnded: ended },
    });
    return account;
  }

  /** Disables (or enables) an account: its sessions end and its tokens stop working while disabled. */
  setDisabled(name: string, disabled: boolean, by: Actor): StoredAccount {
    const account = this.store.updateAccount(name, { disabled }, this.iso());
    const ended = disabled ? this.store.deleteSessionsOf(name) : 0;
    this.record({
      actor: by.name,
      action: disabled ? 'account.disable' : 'account.enable',
      target: name,
      outcome: 'ok',
      address: by.address,
      details: { sessionsEnded: ended },
    });
    return account;
  }

  listAccounts(): Array<Omit<StoredAccount, 'passwordHash'> & { password: boolean }> {
    return this.store.listAccounts().map(({ passwordHash, ...a }) => ({ ...a, password: passwordHash !== null }));
  }

  hasAccounts(): boolean {
    return this.store.countAccounts() > 0;
  }

  private requireAccount(name: string): StoredAccount {
    const a = this.store.getAccount(name);
    if (!a) throw new ScanlineError('SCANLINE_ERR_ACCOUNT_UNKNOWN', `no account named ${name}`, { account: name });
    return a;
  }

  /**
   * First start: with no account at all, creates `admin` with `password` (SCANLINE_BOOTSTRAP_ADMIN_PASSWORD) or a
   * random one, returned so that the caller shows it once. Null when accounts exist (nothing done).
   */
  async bootstrapAdmin(password: string | undefined): Promise<{ name: string; password: string; generated: boolean } | null> {
    if (this.hasAccounts()) return null;
    const generated = password === undefined || password === '';
    const chosen = generated ? randomBytes(15).toString('base64url') : password;
    await this.addAccount('admin', 'admin', chosen, { name: 'system:bootstrap', address: null });
    return { name: 'admin', password: chosen, generated };
  }

  // -- people: sessions --------------------------------------------------------------------------------------

  /**
   * Checks a password and opens a session. Throws SCANLINE_ERR_AUTH_LOCKED (with retryAfterSec) while the account
   * or the address is locked out, SCANLINE_ERR_AUTH_INVALID for a wrong name, password or a disabled account (one
   * message for all: no account enumeration). Every attempt is audited.
   */
  async signIn(name: string, password: string, address: string): Promise<SignedIn> {
    const wait = this.throttle.waitMs(name, address);
    if (wait > 0) {
      this.stats.signInsLocked++;
      this.recordRefusal({
        actor: 'anonymous',
        action: 'session.login',
        target: name.slice(0, 64),
        outcome: 'refused',
        address,
        details: { reason: 'locked' },
      });
      const retryAfterSec = Math.ceil(wait / 1000);
      throw new ScanlineError('SCANLINE_ERR_AUTH_LOCKED', `too many failed sign-ins; try again in ${retryAfterSec} s`, { retryAfterSec });
    }
    const account = ACCOUNT_NAME.check(name) ? this.store.getAccount(name) : undefined;
    // Counted as a failure before the (slow) hash is checked, and cleared if it succeeds: attempts sent in parallel
    // each count, so a burst cannot have more passwords checked than loginMaxFailures before the lockout applies.
    this.throttle.failed(name, address);
    // The hash is checked whether or not the account exists, so that both take as long.
    const ok = await verifyPassword(password, account?.passwordHash ?? (await decoyHash()));
    if (!account || account.passwordHash === null || account.disabled || !ok) {
      this.stats.signInFailures++;
      const reason = !account ? 'unknown account' : account.disabled ? 'account disabled' : account.passwordHash === null ? 'no password' : 'wrong password';
      this.recordRefusal({ actor: 'anonymous', action: 'session.login', target: name.slice(0, 64), outcome: 'refused', address, details: { reason } });
      throw new ScanlineError('SCANLINE_ERR_AUTH_INVALID', 'wrong account name or password');
    }
    this.throttle.succeeded(name, address);
    this.stats.signIns++;
    const signedIn = this.openSession(account, address);
    this.record({ actor: name, action: 'session.login', target: name, outcome: 'ok', address, details: { method: 'password' } });
    return signedIn;
  }

  /**
   * Opens a session for a user the OpenID provider vouched for (src/identity/oidc.ts): on first sign-in an `oidc`
   * account without a password is made; at each sign-in its role follows the provider's claims. A name that is a
   * local account, or a disabled account, is refused (SCANLINE_ERR_AUTH_FORBIDDEN): the provider cannot take over
   * an account it did not make, nor re-enable one an administrator disabled.
   */
  signInFromProvider(name: string, role: Role, address: string, issuer: string): SignedIn {
    const by = { name: `oidc:${issuer}`, address };
    const refuse = (reason: string): never => {
      this.stats.signInFailures++;
      this.recordRefusal({
        actor: 'anonymous',
        action: 'session.login',
        target: name.slice(0, 64) || null,
        outcome: 'refused',
        address,
        details: { method: 'oidc', reason },
      });
      throw new ScanlineError('SCANLINE_ERR_AUTH_FORBIDDEN', `${name || "the provider's user"}: ${reason}`);
    };
    const candidate: unknown = name;
    if (!ACCOUNT_NAME.check(candidate)) refuse(`the provider's user name is not an account name (${AccountNameSchema.expected})`);
    let account = this.store.getAccount(name);
    if (account && account.source !== 'oidc') refuse('a local account has this name; the provider may not sign in as it');
    if (account?.disabled) refuse('the account is disabled');
    if (!account) account = this.createAccount(name, role, null, by, 'oidc');
    else if (account.role !== role) account = this.setRole(name, role, by);
    this.stats.signIns++;
    const signedIn = this.openSession(account, address);
    this.record({ actor: name, action: 'session.login', target: name, outcome: 'ok', address, details: { method: 'oidc', issuer, role } });
    return signedIn;
  }

  /** Opens a session for an account already authenticated (a password here, or an OpenID provider). */
  openSession(account: StoredAccount, address: string | null): SignedIn {
    const secret = newSecret(SECRET_PREFIX.session);
    const now = this.now();
    const idHash = hashSecret(secret);
    const expiresAt = this.sessionExpiry(now, now);
    this.store.createSession({ idHash, account: account.name, address, createdAt: this.iso(now), lastSeenAt: this.iso(now), expiresAt });
    return {
      sessionSecret: secret,
      principal: { kind: 'session', account: account.name, role: account.role, csrfToken: csrfTokenOf(secret), credentialId: idHash, expiresAt },
    };
  }

  private sessionExpiry(createdMs: number, nowMs: number): string {
    const idle = nowMs + this.o.config.sessionIdleMinutes * MINUTE;
    const absolute = createdMs + this.o.config.sessionMaxHours * 60 * MINUTE;
    return this.iso(Math.min(idle, absolute));
  }

  /** The principal of a session cookie's value; null when it names no live session of an enabled account. */
  sessionOf(secret: string): Principal | null {
    if (!secret.startsWith(SECRET_PREFIX.session) || secret.length > 128) return null;
    const idHash = hashSecret(secret);
    const session = this.store.getSession(idHash);
    if (!session) return null;
    const now = this.now();
    if (Date.parse(session.expiresAt) <= now) {
      // Bookkeeping, not from the space reserve: on a full disk the row stays for the sweep (sweepSessions).
      this.bookkeeping('remove an expired session', () => this.store.deleteSession(idHash, false));
      return null;
    }
    const account = this.store.getAccount(session.account);
    if (!account || account.disabled) return null;
    let expiresAt = session.expiresAt;
    if (now - Date.parse(session.lastSeenAt) >= TOUCH_EVERY_MS) {
      // A full disk does not stop an officer's request: the session then keeps the expiry it had.
      const extended = this.sessionExpiry(Date.parse(session.createdAt), now);
      if (this.bookkeeping('refresh a session', () => this.store.touchSession(idHash, this.iso(now), extended))) expiresAt = extended;
    }
    return { kind: 'session', account: account.name, role: account.role, csrfToken: csrfTokenOf(secret), credentialId: idHash, expiresAt };
  }

  /** True at most once a minute per `what`: for log lines a stream of failures would repeat. */
  private onceAMinute(what: 'bookkeeping' | 'refusal-stack'): boolean {
    const now = this.now();
    if (now - (this.loggedAt.get(what) ?? Number.NEGATIVE_INFINITY) < MINUTE) return false;
    this.loggedAt.set(what, now);
    return true;
  }

  /**
   * Runs a bookkeeping write of a request (a session's or token's last use): on failure (a full disk, which it never
   * takes the space reserve for) it is logged and counted, and the request goes on. True when it was written.
   */
  private bookkeeping(what: string, write: () => unknown): boolean {
    try {
      write();
      return true;
    } catch (err) {
      this.stats.bookkeepingFailures++;
      // Each request of a session retries it while the disk is full: logged once a minute, with the count so far.
      if (this.onceAMinute('bookkeeping')) {
        this.o.log.warn({ err, failures: this.stats.bookkeepingFailures }, `could not ${what}; the request goes on`);
      }
      return false;
    }
  }

  signOut(principal: Principal, address: string | null): void {
    if (principal.kind !== 'session') return;
    this.store.deleteSession(principal.credentialId);
    this.record({ actor: principal.account, action: 'session.logout', target: principal.account, outcome: 'ok', address, details: {} });
  }

  // -- programs: API tokens ----------------------------------------------------------------------------------

  /** A new API token for `account`; the token is returned once and only its hash is kept. */
  createToken(account: string, o: { label?: string; expiresInDays?: number }, by: Actor): CreatedToken {
    const a = this.requireAccount(account);
    if (o.expiresInDays !== undefined && !(Number.isInteger(o.expiresInDays) && o.expiresInDays >= 1 && o.expiresInDays <= MAX_TOKEN_DAYS)) {
      throw new ScanlineError('SCANLINE_ERR_ACCOUNT_INVALID', `a token lives 1 to ${MAX_TOKEN_DAYS} days; received ${o.expiresInDays}`);
    }
    if (o.label !== undefined && o.label.length > 128) throw new ScanlineError('SCANLINE_ERR_ACCOUNT_INVALID', 'a token label has at most 128 characters');
    const token = newSecret(SECRET_PREFIX.token);
    const now = this.now();
    const record = {
      id: randomBytes(6).toString('hex'),
      account: a.name,
      label: o.label ?? null,
      createdAt: this.iso(now),
      expiresAt: o.expiresInDays === undefined ? null : this.iso(now + o.expiresInDays * 24 * 60 * MINUTE),
      revokedAt: null,
      lastUsedAt: null,
    };
    this.store.createToken({ ...record, secretHash: hashSecret(token) });
    this.record({
      actor: by.name,
      action: 'token.create',
      target: record.id,
      outcome: 'ok',
      address: by.address,
      details: { account: a.name, role: a.role, label: record.label, expiresAt: record.expiresAt },
    });
    return { token, record };
  }

  listTokens(account?: string): Array<Omit<StoredToken, 'secretHash'>> {
    return this.store.listTokens(account).map(({ secretHash, ...t }) => t);
  }

  revokeToken(id: string, by: Actor): Omit<StoredToken, 'secretHash'> {
    const { secretHash, ...t } = this.store.revokeToken(id, this.iso());
    this.record({ actor: by.name, action: 'token.revoke', target: id, outcome: 'ok', address: by.address, details: { account: t.account } });
    return t;
  }

  /** The principal of a bearer token; null when it is unknown, expired, revoked or its account is disabled. */
  tokenOf(token: string): Principal | null {
    if (!token.startsWith(SECRET_PREFIX.token) || token.length > 128) return null;
    const t = this.store.tokenBySecretHash(hashSecret(token));
    const now = this.now();
    if (!t || t.revokedAt !== null || (t.expiresAt !== null && Date.parse(t.expiresAt) <= now)) return null;
    const account = this.store.getAccount(t.account);
    if (!account || account.disabled) return null;
    if (t.lastUsedAt === null || now - Date.parse(t.lastUsedAt) >= TOUCH_EVERY_MS) {
      this.bookkeeping('note the use of a token', () => this.store.touchToken(t.id, this.iso(now)));
    }
    return { kind: 'token', account: account.name, role: account.role, credentialId: t.id, expiresAt: t.expiresAt };
  }

  // -- portals -----------------------------------------------------------------------------------------------

  /** Adds a portal identity, or replaces its credential (the old one stops working). The credential is returned once. */
  setPortalCredential(portalId: string, by: Actor): { credential: string; record: Omit<StoredPortalIdentity, 'credentialHash'> } {
    const candidate: unknown = portalId;
    if (!PORTAL_ID.check(candidate)) {
      throw new ScanlineError(
        'SCANLINE_ERR_PORTAL_INVALID',
        `Expected ${PortalIdSchema.expected} for the portal id but received ${JSON.stringify(portalId.slice(0, 80))}`,
      );
    }
    const existed = this.store.getPortal(portalId) !== undefined;
    const credential = newSecret(SECRET_PREFIX.portal);
    const { credentialHash, ...record } = this.store.setPortalCredential(portalId, hashSecret(credential), this.iso());
    this.record({ actor: by.name, action: existed ? 'portal.rotate' : 'portal.create', target: portalId, outcome: 'ok', address: by.address, details: {} });
    return { credential, record };
  }

  revokePortal(portalId: string, by: Actor): Omit<StoredPortalIdentity, 'credentialHash'> {
    const { credentialHash, ...p } = this.store.revokePortal(portalId, this.iso());
    this.record({ actor: by.name, action: 'portal.revoke', target: portalId, outcome: 'ok', address: by.address, details: {} });
    return p;
  }

  listPortals(): Array<Omit<StoredPortalIdentity, 'credentialHash'>> {
    return this.store.listPortals().map(({ credentialHash, ...p }) => p);
  }

  /**
   * True when `credential` is the current credential of `portalId` and not revoked (constant-time comparison of
   * the hashes). Returns the credential's hash, so a connection can later check that it still holds
   * (portalStillValid), or null.
   */
  verifyPortal(portalId: string, credential: string | undefined): string | null {
    const p = this.store.getPortal(portalId);
    // Hash even when there is nothing to compare with, so that an unknown portal id answers in the same time.
    const given = hashSecret(credential ?? '');
    if (!p || p.revokedAt !== null || credential === undefined) return null;
    return sameSecret(given, p.credentialHash) ? p.credentialHash : null;
  }

  /** The principal of a portal's own credential (Principal.kind 'portal'), or null when it is not that portal's. */
  portalPrincipal(portalId: string, credential: string): Principal | null {
    const hash = this.verifyPortal(portalId, credential);
    if (hash === null) return null;
    return { kind: 'portal', account: `portal:${portalId}`, role: 'officer', credentialId: hash, expiresAt: null, portalId };
  }

  /** True while `portalId` is a portal identity that is not revoked (a DICOS source is one: dicos.listener.sources). */
  portalActive(portalId: string): boolean {
    const p = this.store.getPortal(portalId);
    return p !== undefined && p.revokedAt === null;
  }

  /** True while `portalId` still has the credential whose hash is `credentialHash` (not revoked, not rotated). */
  portalStillValid(portalId: string, credentialHash: string): boolean {
    const p = this.store.getPortal(portalId);
    return p !== undefined && p.revokedAt === null && sameSecret(p.credentialHash, credentialHash);
  }

  /** The audit chain's newest entry (id and hash), to keep outside the gateway; null before any entry. */
  auditHead(): { id: number; hash: string } | null {
    return this.store.auditHead();
  }

  /** Checks the audit chain, every decision's seal and every sealed scan (`scanline audit verify`). */
  verify(scansDir: string): Promise<IntegrityReport> {
    return this.store.verify(scansDir);
  }

  /** Audit events, newest first (GET /v1/audit, `scanline audit`). */
  listAudit(q: { limit: number; action?: string; before?: number }): StoredAuditEvent[] {
    return this.store.listAudit(q);
  }

  /**
   * True while the credentials behind `p` still hold: the session is not signed out or expired (tokens: not
   * revoked or expired), the account is enabled and its role unchanged. Open WebSockets are checked with it now
   * and then and closed when it turns false.
   */
  stillValid(p: Principal): boolean {
    if (p.kind === 'portal') return p.portalId !== undefined && this.portalStillValid(p.portalId, p.credentialId);
    const account = this.store.getAccount(p.account);
    if (!account || account.disabled || account.role !== p.role) return false;
    const now = this.now();
    if (p.kind === 'session') {
      const s = this.store.getSession(p.credentialId);
      return s !== undefined && Date.parse(s.expiresAt) > now;
    }
    const t = this.store.getToken(p.credentialId);
    return t !== undefined && t.account === p.account && t.revokedAt === null && (t.expiresAt === null || Date.parse(t.expiresAt) > now);
  }

  /**
   * Removes sessions past their expiry (run now and then; a lookup also refuses them). Bookkeeping: on a full disk
   * they wait for the next sweep. Returns how many.
   */
  sweepSessions(): number {
    let deleted = 0;
    this.bookkeeping('delete expired sessions', () => {
      deleted = this.store.deleteExpiredSessions(this.iso());
    });
    return deleted;
  }

  private iso(ms = this.now()): string {
    return new Date(ms).toISOString();
  }
}
