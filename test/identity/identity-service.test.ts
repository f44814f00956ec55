/**
 * IdentityService on a real IdentityStore (a fresh SQLite database in a temp directory per test) with the default
 * `auth` configuration and a clock the test moves: account checks, password sign-in and its lockout, session idle
 * and absolute expiry, what ends sessions and tokens (password, role, disable), API tokens (creation, expiry,
 * revocation), portal credentials (own credential only, rotation, revocation), the first-start admin, that secrets
 * are kept only as hashes, and the audit entry of every change and refused sign-in.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/index.js';
import { ScanlineError } from '../../src/errors/index.js';
import { type Actor, type AuthConfig, hashSecret, IdentityService } from '../../src/identity/index.js';
import { silentLogger } from '../../src/log/index.js';
import { IdentityStore } from '../../src/storage/index.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const START = Date.parse('2026-03-01T08:00:00.000Z');
const ADMIN: Actor = { name: 'cli:root', address: null };
const PASSWORD = 'alice-password-1';

const dirs: string[] = [];
const stores: IdentityStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Fixture {
  identity: IdentityService;
  store: IdentityStore;
  dir: string;
  config: AuthConfig;
  advance(ms: number): void;
  now(): number;
}

function fixture(auth: Partial<AuthConfig> = {}): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'scanline-identity-'));
  dirs.push(dir);
  const store = IdentityStore.open(dir);
  stores.push(store);
  let t = START;
  const now = (): number => t;
  const config = { ...resolveConfig({}).auth, ...auth };
  const identity = new IdentityService({ store, config, log: silentLogger(), now });
  return {
    identity,
    store,
    dir,
    config,
    now,
    advance(ms) {
      t += ms;
    },
  };
}

/** The ScanlineError `work` throws (fails the test when it throws none or something else). */
async function errorOf(work: () => unknown): Promise<ScanlineError> {
  try {
    await work();
  } catch (err) {
    expect(err).toBeInstanceOf(ScanlineError);
    return err as ScanlineError;
  }
  throw new Error('expected a ScanlineError, but nothing was thrown');
}

describe('IdentityService: accounts', () => {
  it('uses the defaults of the auth configuration the tests rely on', () => {
    const { config } = fixture();
    expect(config).toMatchObject({ sessionIdleMinutes: 60, sessionMaxHours: 12, loginMaxFailures: 5, loginLockoutMaxSec: 900, minPasswordLength: 12 });
  });

  it('adds an account with a valid name, role and password, listed without its hash', async () => {
    const { identity, store } = fixture();
    expect(identity.hasAccounts()).toBe(false);
    const account = await identity.addAccount('alice.smith@customs-1', 'officer', PASSWORD, ADMIN);
    expect(account).toMatchObject({
      name: 'alice.smith@customs-1',
      role: 'officer',
      source: 'local',
      disabled: false,
      createdAt: new Date(START).toISOString(),
    });
    expect(store.getAccount('alice.smith@customs-1')?.passwordHash).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(identity.hasAccounts()).toBe(true);
    expect(identity.listAccounts()).toEqual([
      {
        name: 'alice.smith@customs-1',
        role: 'officer',
        source: 'local',
        disabled: false,
        password: true,
        createdAt: new Date(START).toISOString(),
        updatedAt: new Date(START).toISOString(),
      },
    ]);
  });

  it('refuses bad names, unknown roles and short passwords with SCANLINE_ERR_ACCOUNT_INVALID, creating nothing', async () => {
    const { identity } = fixture();
    const badNames = ['', 'Alice', '-alice', '.alice', 'al ice', 'alice!', 'a'.repeat(65), 'élise', 'alice\n'];
    for (const name of badNames) {
      const err = await errorOf(() => identity.addAccount(name, 'officer', PASSWORD, ADMIN));
      expect(err.code, name).toBe('SCANLINE_ERR_ACCOUNT_INVALID');
      expect(err.message).toContain('Expected an account name of 1-64 characters');
    }
    for (const role of ['root', 'Admin', '', 'viewers']) {
      const err = await errorOf(() => identity.addAccount('alice', role, PASSWORD, ADMIN));
      expect(err.code, role).toBe('SCANLINE_ERR_ACCOUNT_INVALID');
      expect(err.message).toBe(`Expected a role (metrics, viewer, officer, supervisor or admin) but received ${JSON.stringify(role)}`);
    }
    const short = await errorOf(() => identity.addAccount('alice', 'officer', 'elevenchars', ADMIN));
    expect(short.code).toBe('SCANLINE_ERR_ACCOUNT_INVALID');
    expect(short.message).toBe('a password needs 12 to 1024 characters (auth.minPasswordLength); this one has 11');
    // counted in characters, not UTF-16 units: 11 emoji are 22 units but still too short
    const emoji = await errorOf(() => identity.addAccount('alice', 'officer', '🔑'.repeat(11), ADMIN));
    expect(emoji.message).toContain('this one has 11');
    const long = await errorOf(() => identity.addAccount('alice', 'officer', 'x'.repeat(1025), ADMIN));
    expect(long.code).toBe('SCANLINE_ERR_ACCOUNT_INVALID');
    expect((await errorOf(() => identity.addProgramAccount('Bad Name', 'metrics', ADMIN))).code).toBe('SCANLINE_ERR_ACCOUNT_INVALID');
    expect((await errorOf(() => identity.addProgramAccount('prom', 'scraper', ADMIN))).code).toBe('SCANLINE_ERR_ACCOUNT_INVALID');
    expect(identity.hasAccounts()).toBe(false);
    expect(identity.listAudit({ limit: 10 })).toEqual([]);
    // exactly the minimum is enough
    await identity.addAccount('alice', 'officer', 'twelve-chars', ADMIN);
    expect(identity.listAccounts().map((a) => a.name)).toEqual(['alice']);
  });

  it('refuses a name that is taken with SCANLINE_ERR_ACCOUNT_EXISTS, keeping the first account', async () => {
    const { identity } = fixture();
    await identity.addAccount('alice', 'officer', PASSWORD, ADMIN);
    const again = await errorOf(() => identity.addAccount('alice', 'admin', 'another-password-2', ADMIN));
    expect(again.code).toBe('SCANLINE_ERR_ACCOUNT_EXISTS');
    expect((await errorOf(() => identity.addProgramAccount('alice', 'metrics', ADMIN))).code).toBe('SCANLINE_ERR_ACCOUNT_EXISTS');
    expect(identity.listAccounts()).toMatchObject([{ name: 'alice', role: 'officer', password: true }]);
    await expect(identity.signIn('alice', PASSWORD, '10.0.0.1')).resolves.toBeDefined();
  });

  it('changes to an account that does not exist fail with SCANLINE_ERR_ACCOUNT_UNKNOWN', async () => {
    const { identity } = fixture();
    expect((await errorOf(() => identity.setRole('ghost', 'admin', ADMIN))).code).toBe('SCANLINE_ERR_ACCOUNT_UNKNOWN');
    expect((await errorOf(() => identity.setDisabled('ghost', true, ADMIN))).code).toBe('SCANLINE_ERR_ACCOUNT_UNKNOWN');
    expect((await errorOf(() => identity.setPassword('ghost', 'a-new-password-3', ADMIN))).code).toBe('SCANLINE_ERR_ACCOUNT_UNKNOWN');
    expect((await errorOf(() => identity.createToken('ghost', {}, ADMIN))).code).toBe('SCANLINE_ERR_ACCOUNT_UNKNOWN');
    expect(identity.listAudit({ limit: 10 })).toEqual([]);
  });
});

describe('IdentityService: signing in', () => {
  it('opens a session: an sls_ secret whose principal, with its CSRF token, sessionOf gives back', async () => {
    const { identity } = fixture();
    await identity.addAccount('alice', 'officer', PASSWORD, ADMIN);
    const signedIn = await identity.signIn('alice', PASSWORD, '10.0.0.1');
    expect(signedIn.sessionSecret).toMatch(/^sls_[A-Za-z0-9_-]{43}$/);
    expect(signedIn.principal).toEqual({
      kind: 'session',
      account: 'alice',
      role: 'officer',
      csrfToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      credentialId: hashSecret(signedIn.sessionSecret),
      expiresAt: new Date(START + HOUR).toISOString(),
    });
    expect(identity.sessionOf(signedIn.sessionSecret)).toEqual(signedIn.principal);
    expect(identity.stillValid(signedIn.principal)).toBe(true);
    // two sign-ins, two sessions with their own secrets and CSRF tokens
    const second = await identity.signIn('alice', PASSWORD, '10.0.0.2');
    expect(second.sessionSecret).not.toBe(signedIn.sessionSecret);
    expect(second.principal.csrfToken).not.toBe(signedIn.principal.csrfToken);
    expect(identity.stats.signIns).toBe(2);
    const [login] = identity.listAudit({ limit: 1, action: 'session.login' });
    expect(login).toMatchObject({ actor: 'alice', target: 'alice', outcome: 'ok', address: '10.0.0.2', details: { method: 'password' } });
  });

  it('sessionOf refuses anything that is not a live session secret', async () => {
    const { identity } = fixture();
    await identity.addAccount('alice', 'officer', PASSWORD, ADMIN);
    const { sessionSecret } = await identity.signIn('alice', PASSWORD, '10.0.0.1');
    expect(identity.sessionOf(`${sessionSecret.slice(0, -1)}${sessionSecret.endsWith('A') ? 'B' : 'A'}`)).toBeNull();
    expect(identity.sessionOf(sessionSecret.replace('sls_', 'slt_'))).toBeNull();
    expect(identity.sessionOf(hashSecret(sessionSecret))).toBeNull();
    expect(identity.sessionOf('')).toBeNull();
    expect(identity.sessionOf(`sls_${'A'.repeat(200)}`)).toBeNull();
    expect(identity.tokenOf(sessionSecret)).toBeNull();
  });

  it('signOut ends the session', async () => {
    const { identity } = fixture();
    await identity.addAccount('alice', 'officer', PASSWORD, ADMIN);
    const { sessionSecret, principal } = await identity.signIn('alice', PASSWORD, '10.0.0.1');
    identity.signOut(principal, '10.0.0.1');
    expect(identity.sessionOf(sessionSecret)).toBeNull();
    expect(identity.stillValid(principal)).toBe(false);
    expect(identity.listAudit({ limit: 1 })[0]).toMatchObject({ actor: 'alice', action: 'session.logout', target: 'alice', outcome: 'ok' });
  });

  it('answers a wrong password, an unknown account, a disabled account and a program account alike: SCANLINE_ERR_AUTH_INVALID', async () => {
    const { identity } = fixture();
    await identity.addAccount('alice', 'officer', PASSWORD, ADMIN);
    await identity.addAccount('bob', 'viewer', 'bob-password-22', ADMIN);
    identity.setDisabled('bob', true, ADMIN);
    identity.addProgramAccount('prom', 'metrics', ADMIN);
    const wrong = await errorOf(() => identity.signIn('alice', 'not-her-password', '10.0.0.1'));
    const unknown = await errorOf(() => identity.signIn('nobody', PASSWORD, '10.0.0.2'));
    const disabled = await errorOf(() => identity.signIn('bob', 'bob-password-22', '10.0.0.3'));
    const program = await errorOf(() => identity.signIn('prom', '', '10.0.0.4'));
    const badName = await errorOf(() => identity.signIn('Not A Name!', PASSWORD, '10.0.0.5'));
    for (const err of [wrong, unknown, disabled, program, badName]) {
      expect(err.code).toBe('SCANLINE_ERR_AUTH_INVALID');
      expect(err.message).toBe('wrong account name or password');
      expect(err.details).toEqual({});
    }
    expect(identity.stats.signInFailures).toBe(5);
    const refused = identity.listAudit({ limit: 10, action: 'session.login' });
    expect(refused.map((e) => [e.target, e.outcome, e.actor, e.address, e.details.reason])).toEqual([
      ['Not A Name!', 'refused', 'anonymous', '10.0.0.5', 'unknown account'],
      ['prom', 'refused', 'anonymous', '10.0.0.4', 'no password'],
      ['bob', 'refused', 'anonymous', '10.0.0.3', 'account disabled'],
      ['nobody', 'refused', 'anonymous', '10.0.0.2', 'unknown account'],
      ['alice', 'refused', 'anonymous', '10.0.0.1', 'wrong password'],
    ]);
    // a refused attempt never puts the password it was given into the trail
    expect(JSON.stringify(identity.listAudit({ limit: 100 }))).not.toContain('not-her-password');
  });

  it('locks out after loginMaxFailures failures (retryAfterSec 1, then 2), even for the right password, and audits each refusal', async () => {
    const f = fixture();
    const { identity } = f;
    await identity.addAccount('alice', 'officer', PASSWORD, ADMIN);
    for (let i = 0; i < 5; i++) expect((await errorOf(() => identity.signIn('alice', `wrong-${i}`, '10.0.0.1'))).code).toBe('SCANLINE_ERR_AUTH_INVALID');
    const locked = await errorOf(() => identity.signIn('alice', PASSWORD, '10.0.0.1'));
    expect(locked.code).toBe('SCANLINE_ERR_AUTH_LOCKED');
    expect(locked.details).toEqual({ retryAfterSec: 1 });
    expect(locked.message).toBe('too many failed sign-ins; try again in 1 s');
    // the account is locked from another address too
    expect((await errorOf(() => identity.signIn('alice', PASSWORD, '10.9.9.9'))).code).toBe('SCANLINE_ERR_AUTH_LOCKED');
    expect(identity.stats.signInsLocked).toBe(2);
    const [lastRefusal] = identity.listAudit({ limit: 1, action: 'session.login' });
    expect(lastRefusal).toMatchObject({ actor: 'anonymous', target: 'alice', outcome: 'refused', address: '10.9.9.9', details: { reason: 'locked' } });
    f.advance(1_000);
    expect((await errorOf(() => identity.signIn('alice', 'wrong-5', '10.0.0.1'))).code).toBe('SCANLINE_ERR_AUTH_INVALID');
    const longer = await errorOf(() => identity.signIn('alice', PASSWORD, '10.0.0.1'));
    expect(longer.code).toBe('SCANLINE_ERR_AUTH_LOCKED');
    expect(longer.details).toEqual({ retryAfterSec: 2 });
    f.advance(1_500);
    expect((await errorOf(() => identity.signIn('alice', PASSWORD, '10.0.0.1'))).details).toEqual({ retryAfterSec: 1 });
    f.advance(500);
    // the wait is over: the right password works and clears the count
    await expect(identity.signIn('alice', PASSWORD, '10.0.0.1')).resolves.toMatchObject({ principal: { account: 'alice' } });
    expect((await errorOf(() => identity.signIn('alice', 'wrong-again', '10.0.0.1'))).code).toBe('SCANLINE_ERR_AUTH_INVALID');
    const events = identity.listAudit({ limit: 100, action: 'session.login' });
    expect(events.filter((e) => e.outcome === 'refused' && e.details.reason === 'locked')).toHaveLength(4);
    expect(events.filter((e) => e.outcome === 'refused' && e.details.reason === 'wrong password')).toHaveLength(7);
    expect(events.filter((e) => e.outcome === 'ok')).toHaveLength(1);
  });

  it('locks out an address that guesses many accounts, for every account tried from it', async () => {
    const { identity } = fixture();
    await identity.addAccount('alice', 'officer', PASSWORD, ADMIN);
    for (const name of ['a1', 'a2', 'a3', 'a4', 'a5']) await errorOf(() => identity.signIn(name, 'guess-password', '203.0.113.7'));
    const locked = await errorOf(() => identity.signIn('alice', PASSWORD, '203.0.113.7'));
    expect(locked.code).toBe('SCANLINE_ERR_AUTH_LOCKED');
    // alice herself, from her own address, is not locked
    await expect(identity.signIn('alice', PASSWORD, '10.0.0.1')).resolves.toBeDefined();
  });
});

describe('IdentityService: session lifetime', () => {
  it('ends a session unused for sessionIdleMinutes; each use (at most once a minute) extends it', async () => {
    const f = fixture();
    await f.identity.addAccount('alice', 'officer', PASSWORD, ADMIN);
    const idle = await f.identity.signIn('alice', PASSWORD, '10.0.0.1');
    const used = await f.identity.signIn('alice', PASSWORD, '10.0.0.1');
    f.advance(59 * MINUTE);
    const p = f.identity.sessionOf(used.sessionSecret);
    expect(p?.expiresAt).toBe(new Date(START + 119 * MINUTE).toISOString());
    f.advance(MINUTE - 1);
    // stillValid only reads: it does not count as a use
    expect(f.identity.stillValid(idle.principal)).toBe(true);
    f.advance(1); // 60 minutes after sign-in
    expect(f.identity.sessionOf(idle.sessionSecret)).toBeNull();
    expect(f.identity.stillValid(idle.principal)).toBe(false);
    expect(f.identity.stillValid(used.principal)).toBe(true);
    // the used one ends 60 minutes after its last use
    f.advance(59 * MINUTE - 1);
    expect(f.identity.stillValid(used.principal)).toBe(true);
    f.advance(1);
    expect(f.identity.sessionOf(used.sessionSecret)).toBeNull();
    expect(f.identity.stillValid(used.principal)).toBe(false);
  });

  it('writes a use at most once a minute: a use 30 s after sign-in does not extend the session', async () => {
    const f = fixture();
    await f.identity.addAccount('alice', 'officer', PASSWORD, ADMIN);
    const s = await f.identity.signIn('alice', PASSWORD, '10.0.0.1');
    f.advance(30_000);
    expect(f.identity.sessionOf(s.sessionSecret)?.expiresAt).toBe(new Date(START + HOUR).toISOString());
    f.advance(HOUR - 30_000);
    expect(f.identity.sessionOf(s.sessionSecret)).toBeNull();
  });

  it('ends a session sessionMaxHours after sign-in however active it is', async () => {
    const f = fixture();
    await f.identity.addAccount('alice', 'officer', PASSWORD, ADMIN);
    const s = await f.identity.signIn('alice', PASSWORD, '10.0.0.1');
    let last = f.identity.sessionOf(s.sessionSecret);
    // used every 50 minutes: 14 uses take it to 11 h 40 min
    for (let i = 1; i <= 14; i++) {
      f.advance(50 * MINUTE);
      last = f.identity.sessionOf(s.sessionSecret);
      expect(last, `use ${i}`).not.toBeNull();
    }
    // the last extension is capped at the absolute end, not 60 minutes on
    expect(last?.expiresAt).toBe(new Date(START + 12 * HOUR).toISOString());
    f.advance(20 * MINUTE - 1);
    expect(f.identity.sessionOf(s.sessionSecret)).not.toBeNull();
    f.advance(1);
    expect(f.identity.sessionOf(s.sessionSecret)).toBeNull();
    expect(f.identity.stillValid(s.principal)).toBe(false);
  });

  it('sweepSessions removes expired sessions and keeps live ones', async () => {
    const f = fixture();
    await f.identity.addAccount('alice', 'officer', PASSWORD, ADMIN);
    await f.identity.signIn('alice', PASSWORD, '10.0.0.1');
    f.advance(30 * MINUTE);
    const live = await f.identity.signIn('alice', PASSWORD, '10.0.0.1');
    f.advance(30 * MINUTE);
    expect(f.identity.sweepSessions()).toBe(1);
    expect(f.identity.sweepSessions()).toBe(0);
    expect(f.identity.sessionOf(live.sessionSecret)).not.toBeNull();
  });
});

describe('IdentityService: what ends sessions and tokens', () => {
  async function signedInAlice(f: Fixture) {
    await f.identity.addAccount('alice', 'officer', PASSWORD, ADMIN);
    const a = await f.identity.signIn('alice', PASSWORD, '10.0.0.1');
    const b = await f.identity.signIn('alice', PASSWORD, '10.0.0.2');
    await f.identity.addAccount('bob', 'officer', 'bob-password-22', ADMIN);
    const bob = await f.identity.signIn('bob', 'bob-password-22', '10.0.0.3');
    return { a, b, bob };
  }

  it('setPassword ends every session of the account (not of others); the new password works, the old does not', async () => {
    const f = fixture();
    const { a, b, bob } = await signedInAlice(f);
    await f.identity.setPassword('alice', 'a-new-password-3', { name: 'cli:ops', address: null });
    expect(f.identity.sessionOf(a.sessionSecret)).toBeNull();
    expect(f.identity.sessionOf(b.sessionSecret)).toBeNull();
    expect(f.identity.stillValid(a.principal)).toBe(false);
    expect(f.identity.sessionOf(bob.sessionSecret)).not.toBeNull();
    expect(f.identity.stillValid(bob.principal)).toBe(true);
    expect((await errorOf(() => f.identity.signIn('alice', PASSWORD, '10.0.0.1'))).code).toBe('SCANLINE_ERR_AUTH_INVALID');
    await expect(f.identity.signIn('alice', 'a-new-password-3', '10.0.0.1')).resolves.toBeDefined();
    expect((await errorOf(() => f.identity.setPassword('alice', 'short', ADMIN))).code).toBe('SCANLINE_ERR_ACCOUNT_INVALID');
    expect(f.identity.listAudit({ limit: 1, action: 'account.password' })[0]).toMatchObject({
      actor: 'cli:ops',
      target: 'alice',
      outcome: 'ok',
      details: { sessionsEnded: 2 },
    });
  });

  it('setRole ends the sessions; a principal with the old role is no longer valid, a new sign-in has the new role', async () => {
    const f = fixture();
    const { a, bob } = await signedInAlice(f);
    const account = f.identity.setRole('alice', 'supervisor', ADMIN);
    expect(account.role).toBe('supervisor');
    expect(f.identity.sessionOf(a.sessionSecret)).toBeNull();
    expect(f.identity.stillValid(a.principal)).toBe(false);
    expect(f.identity.stillValid(bob.principal)).toBe(true);
    const again = await f.identity.signIn('alice', PASSWORD, '10.0.0.1');
    expect(again.principal.role).toBe('supervisor');
    expect((await errorOf(() => f.identity.setRole('alice', 'overlord', ADMIN))).code).toBe('SCANLINE_ERR_ACCOUNT_INVALID');
    expect(f.identity.listAudit({ limit: 1, action: 'account.role' })[0]).toMatchObject({
      actor: 'cli:root',
      target: 'alice',
      details: { from: 'officer', to: 'supervisor', sessionsEnded: 2 },
    });
  });

  it('setDisabled ends the sessions and stops sign-in and tokens until enabled again', async () => {
    const f = fixture();
    const { a } = await signedInAlice(f);
    const { token } = f.identity.createToken('alice', { label: 'laptop' }, ADMIN);
    const tokenPrincipal = f.identity.tokenOf(token);
    expect(tokenPrincipal).toMatchObject({ kind: 'token', account: 'alice', role: 'officer' });
    expect(f.identity.setDisabled('alice', true, ADMIN).disabled).toBe(true);
    expect(f.identity.sessionOf(a.sessionSecret)).toBeNull();
    expect(f.identity.stillValid(a.principal)).toBe(false);
    expect(f.identity.tokenOf(token)).toBeNull();
    expect(f.identity.stillValid(tokenPrincipal!)).toBe(false);
    expect((await errorOf(() => f.identity.signIn('alice', PASSWORD, '10.0.0.1'))).code).toBe('SCANLINE_ERR_AUTH_INVALID');
    expect(f.identity.listAccounts().find((x) => x.name === 'alice')?.disabled).toBe(true);
    f.identity.setDisabled('alice', false, ADMIN);
    // the token was not revoked: it works again; the ended sessions stay ended
    expect(f.identity.tokenOf(token)).toMatchObject({ account: 'alice' });
    expect(f.identity.stillValid(tokenPrincipal!)).toBe(true);
    expect(f.identity.sessionOf(a.sessionSecret)).toBeNull();
    await expect(f.identity.signIn('alice', PASSWORD, '10.0.0.1')).resolves.toBeDefined();
    const changes = f.identity.listAudit({ limit: 10 }).filter((e) => e.action === 'account.disable' || e.action === 'account.enable');
    expect(changes.map((e) => [e.action, e.target, e.details.sessionsEnded])).toEqual([
      ['account.enable', 'alice', 0],
      ['account.disable', 'alice', 2],
    ]);
  });
});

describe('IdentityService: API tokens', () => {
  it('creates an slt_ token shown once; tokenOf gives its principal and notes its use', async () => {
    const f = fixture();
    f.identity.addProgramAccount('prom', 'metrics', ADMIN);
    const { token, record } = f.identity.createToken('prom', { label: 'scrape' }, ADMIN);
    expect(token).toMatch(/^slt_[A-Za-z0-9_-]{43}$/);
    expect(record).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{12}$/),
      account: 'prom',
      label: 'scrape',
      createdAt: new Date(START).toISOString(),
      expiresAt: null,
      revokedAt: null,
      lastUsedAt: null,
    });
    expect(record).not.toHaveProperty('secretHash');
    f.advance(5 * MINUTE);
    const principal = f.identity.tokenOf(token);
    expect(principal).toEqual({ kind: 'token', account: 'prom', role: 'metrics', credentialId: record.id, expiresAt: null });
    expect(f.identity.listTokens('prom')).toEqual([{ ...record, lastUsedAt: new Date(START + 5 * MINUTE).toISOString() }]);
    expect(f.identity.listTokens()).toHaveLength(1);
    expect(f.identity.listTokens('nobody')).toEqual([]);
    expect(f.identity.stillValid(principal!)).toBe(true);
    expect(f.identity.tokenOf(`${token}x`)).toBeNull();
    expect(f.identity.tokenOf(token.replace('slt_', 'sls_'))).toBeNull();
    expect(f.identity.sessionOf(token)).toBeNull();
  });

  it('revokeToken stops the token at once, keeps the first revocation time, and fails for an unknown id', async () => {
    const f = fixture();
    f.identity.addProgramAccount('prom', 'metrics', ADMIN);
    const one = f.identity.createToken('prom', {}, ADMIN);
    const two = f.identity.createToken('prom', { label: 'second' }, ADMIN);
    const principal = f.identity.tokenOf(one.token)!;
    f.advance(MINUTE);
    const revoked = f.identity.revokeToken(one.record.id, { name: 'cli:ops', address: null });
    expect(revoked).toMatchObject({ id: one.record.id, revokedAt: new Date(START + MINUTE).toISOString() });
    expect(f.identity.tokenOf(one.token)).toBeNull();
    expect(f.identity.stillValid(principal)).toBe(false);
    expect(f.identity.tokenOf(two.token)).not.toBeNull();
    f.advance(MINUTE);
    expect(f.identity.revokeToken(one.record.id, ADMIN).revokedAt).toBe(new Date(START + MINUTE).toISOString());
    expect((await errorOf(() => f.identity.revokeToken('000000000000', ADMIN))).code).toBe('SCANLINE_ERR_TOKEN_UNKNOWN');
    expect(f.identity.listAudit({ limit: 10, action: 'token.revoke' })[1]).toMatchObject({
      actor: 'cli:ops',
      target: one.record.id,
      outcome: 'ok',
      details: { account: 'prom' },
    });
  });

  it('a token with expiresInDays works until then and not a millisecond after', async () => {
    const f = fixture();
    f.identity.addProgramAccount('prom', 'metrics', ADMIN);
    const { token, record } = f.identity.createToken('prom', { expiresInDays: 30 }, ADMIN);
    expect(record.expiresAt).toBe(new Date(START + 30 * DAY).toISOString());
    const principal = f.identity.tokenOf(token)!;
    expect(principal.expiresAt).toBe(record.expiresAt);
    f.advance(30 * DAY - 1);
    expect(f.identity.tokenOf(token)).not.toBeNull();
    expect(f.identity.stillValid(principal)).toBe(true);
    f.advance(1);
    expect(f.identity.tokenOf(token)).toBeNull();
    expect(f.identity.stillValid(principal)).toBe(false);
  });

  it('refuses a lifetime outside 1..3650 days or a label over 128 characters with SCANLINE_ERR_ACCOUNT_INVALID', async () => {
    const f = fixture();
    f.identity.addProgramAccount('prom', 'metrics', ADMIN);
    for (const days of [0, -1, 1.5, 3651, Number.NaN]) {
      expect((await errorOf(() => f.identity.createToken('prom', { expiresInDays: days }, ADMIN))).code, String(days)).toBe('SCANLINE_ERR_ACCOUNT_INVALID');
    }
    expect((await errorOf(() => f.identity.createToken('prom', { label: 'l'.repeat(129) }, ADMIN))).code).toBe('SCANLINE_ERR_ACCOUNT_INVALID');
    expect(f.identity.listTokens()).toEqual([]);
    expect(f.identity.createToken('prom', { expiresInDays: 3650, label: 'l'.repeat(128) }, ADMIN).record.expiresAt).toBe(
      new Date(START + 3650 * DAY).toISOString(),
    );
  });

  it('a token principal is no longer valid once its account changes role', async () => {
    const f = fixture();
    f.identity.addProgramAccount('bot', 'viewer', ADMIN);
    const { token } = f.identity.createToken('bot', {}, ADMIN);
    const before = f.identity.tokenOf(token)!;
    f.identity.setRole('bot', 'officer', ADMIN);
    expect(f.identity.stillValid(before)).toBe(false);
    expect(f.identity.tokenOf(token)?.role).toBe('officer');
  });
});

describe('IdentityService: portal credentials', () => {
  it("verifies a portal's own credential only; not another portal's, a wrong one, or none", async () => {
    const f = fixture();
    const one = f.identity.setPortalCredential('lane-1', ADMIN);
    const two = f.identity.setPortalCredential('lane-2', ADMIN);
    expect(one.credential).toMatch(/^slp_[A-Za-z0-9_-]{43}$/);
    expect(one.record).toEqual({
      portalId: 'lane-1',
      createdAt: new Date(START).toISOString(),
      updatedAt: new Date(START).toISOString(),
      revokedAt: null,
    });
    const handle = f.identity.verifyPortal('lane-1', one.credential);
    expect(handle).toBe(hashSecret(one.credential));
    expect(f.identity.portalStillValid('lane-1', handle!)).toBe(true);
    expect(f.identity.verifyPortal('lane-2', two.credential)).toBe(hashSecret(two.credential));
    expect(f.identity.verifyPortal('lane-2', one.credential)).toBeNull();
    expect(f.identity.verifyPortal('lane-1', two.credential)).toBeNull();
    expect(f.identity.verifyPortal('lane-1', `${one.credential}x`)).toBeNull();
    expect(f.identity.verifyPortal('lane-1', '')).toBeNull();
    expect(f.identity.verifyPortal('lane-1', undefined)).toBeNull();
    expect(f.identity.verifyPortal('lane-3', one.credential)).toBeNull();
    expect(f.identity.verifyPortal('lane-1', handle!)).toBeNull(); // the stored hash is not a credential
    expect(f.identity.portalStillValid('lane-2', handle!)).toBe(false);
    expect(f.identity.listPortals().map((p) => p.portalId)).toEqual(['lane-1', 'lane-2']);
    expect(f.identity.listPortals()[0]).not.toHaveProperty('credentialHash');
  });

  it('adding a portal again rotates its credential: the old one stops working and its handle is no longer valid', async () => {
    const f = fixture();
    const first = f.identity.setPortalCredential('lane-1', ADMIN);
    const oldHandle = f.identity.verifyPortal('lane-1', first.credential)!;
    f.advance(MINUTE);
    const second = f.identity.setPortalCredential('lane-1', { name: 'cli:ops', address: null });
    expect(second.credential).not.toBe(first.credential);
    expect(second.record).toMatchObject({ createdAt: new Date(START).toISOString(), updatedAt: new Date(START + MINUTE).toISOString() });
    expect(f.identity.verifyPortal('lane-1', first.credential)).toBeNull();
    expect(f.identity.portalStillValid('lane-1', oldHandle)).toBe(false);
    const newHandle = f.identity.verifyPortal('lane-1', second.credential);
    expect(newHandle).toBe(hashSecret(second.credential));
    expect(f.identity.portalStillValid('lane-1', newHandle!)).toBe(true);
    expect(f.identity.listAudit({ limit: 2 }).map((e) => [e.actor, e.action, e.target])).toEqual([
      ['cli:ops', 'portal.rotate', 'lane-1'],
      ['cli:root', 'portal.create', 'lane-1'],
    ]);
  });

  it('a revoked portal is refused; adding it again lifts the revocation with a new credential', async () => {
    const f = fixture();
    const first = f.identity.setPortalCredential('lane-1', ADMIN);
    const handle = f.identity.verifyPortal('lane-1', first.credential)!;
    f.advance(MINUTE);
    expect(f.identity.revokePortal('lane-1', ADMIN).revokedAt).toBe(new Date(START + MINUTE).toISOString());
    expect(f.identity.verifyPortal('lane-1', first.credential)).toBeNull();
    expect(f.identity.portalStillValid('lane-1', handle)).toBe(false);
    expect((await errorOf(() => f.identity.revokePortal('lane-9', ADMIN))).code).toBe('SCANLINE_ERR_PORTAL_UNKNOWN');
    const again = f.identity.setPortalCredential('lane-1', ADMIN);
    expect(again.record.revokedAt).toBeNull();
    expect(f.identity.verifyPortal('lane-1', first.credential)).toBeNull();
    expect(f.identity.verifyPortal('lane-1', again.credential)).not.toBeNull();
  });

  it('refuses a malformed portal id with SCANLINE_ERR_PORTAL_INVALID', async () => {
    const f = fixture();
    for (const id of ['', '-lane', 'lane 1', 'lane/1', 'x'.repeat(65)]) {
      expect((await errorOf(() => f.identity.setPortalCredential(id, ADMIN))).code, id).toBe('SCANLINE_ERR_PORTAL_INVALID');
    }
    expect(f.identity.listPortals()).toEqual([]);
  });
});

describe('IdentityService: first start', () => {
  it('bootstrapAdmin makes admin with a generated 20-character password when no account exists, and nothing the second time', async () => {
    const f = fixture();
    const made = await f.identity.bootstrapAdmin(undefined);
    expect(made).toEqual({ name: 'admin', password: expect.stringMatching(/^[A-Za-z0-9_-]{20}$/), generated: true });
    expect(f.identity.listAccounts()).toMatchObject([{ name: 'admin', role: 'admin', password: true, disabled: false }]);
    await expect(f.identity.signIn('admin', made!.password, '127.0.0.1')).resolves.toMatchObject({ principal: { role: 'admin' } });
    expect(await f.identity.bootstrapAdmin(undefined)).toBeNull();
    expect(await f.identity.bootstrapAdmin('chosen-password-4')).toBeNull();
    expect(f.identity.listAccounts()).toHaveLength(1);
    expect(f.identity.listAudit({ limit: 10, action: 'account.create' })).toMatchObject([
      { actor: 'system:bootstrap', target: 'admin', details: { role: 'admin', password: true } },
    ]);
  });

  it('bootstrapAdmin uses the password given; an empty one means generate', async () => {
    const chosen = fixture();
    expect(await chosen.identity.bootstrapAdmin('chosen-password-4')).toEqual({ name: 'admin', password: 'chosen-password-4', generated: false });
    await expect(chosen.identity.signIn('admin', 'chosen-password-4', '127.0.0.1')).resolves.toBeDefined();
    const empty = fixture();
    expect((await empty.identity.bootstrapAdmin(''))?.generated).toBe(true);
  });

  it('bootstrapAdmin does nothing when any account exists, even one that is not an admin', async () => {
    const f = fixture();
    f.identity.addProgramAccount('prom', 'metrics', ADMIN);
    expect(await f.identity.bootstrapAdmin(undefined)).toBeNull();
    expect(f.identity.listAccounts().map((a) => a.name)).toEqual(['prom']);
  });
});

describe('IdentityService: what is stored', () => {
  it('keeps session ids, tokens, portal credentials and passwords only as hashes', async () => {
    const f = fixture();
    await f.identity.addAccount('alice', 'officer', PASSWORD, ADMIN);
    const { sessionSecret, principal } = await f.identity.signIn('alice', PASSWORD, '10.0.0.1');
    f.identity.addProgramAccount('prom', 'metrics', ADMIN);
    const { token } = f.identity.createToken('prom', { label: 'scrape' }, ADMIN);
    f.identity.tokenOf(token);
    const { credential } = f.identity.setPortalCredential('lane-1', ADMIN);
    f.identity.verifyPortal('lane-1', credential);
    const db = new Database(f.store.path, { readonly: true, fileMustExist: true });
    try {
      const dump = (table: string): string => JSON.stringify(db.prepare(`SELECT * FROM ${table}`).all());
      const tables = ['sessions', 'api_tokens', 'portal_identities', 'accounts', 'audit_events'];
      const everything = tables.map(dump).join('\n');
      for (const secret of [sessionSecret, token, credential, PASSWORD, principal.csrfToken!]) {
        expect(everything).not.toContain(secret);
        // nor a part long enough to matter (the random part without its prefix)
        expect(everything).not.toContain(secret.slice(4, 24));
      }
      expect(db.prepare('SELECT id_hash FROM sessions').all()).toEqual([{ id_hash: hashSecret(sessionSecret) }]);
      expect(db.prepare('SELECT secret_hash FROM api_tokens').all()).toEqual([{ secret_hash: hashSecret(token) }]);
      expect(db.prepare('SELECT credential_hash FROM portal_identities').all()).toEqual([{ credential_hash: hashSecret(credential) }]);
    } finally {
      db.close();
    }
  });

  it('a second service on the same database (another process, as the CLI) sees changes at once: nothing is cached', async () => {
    const f = fixture();
    f.identity.addProgramAccount('prom', 'metrics', ADMIN);
    const { token, record } = f.identity.createToken('prom', {}, ADMIN);
    expect(f.identity.tokenOf(token)).not.toBeNull();
    const otherStore = IdentityStore.open(f.dir);
    stores.push(otherStore);
    const other = new IdentityService({ store: otherStore, config: f.config, log: silentLogger() });
    other.revokeToken(record.id, { name: 'cli:ops', address: null });
    expect(f.identity.tokenOf(token)).toBeNull();
  });
});

describe('IdentityService: audit trail', () => {
  it('records every change with the actor given, newest first, and filters by action', async () => {
    const f = fixture();
    const ops: Actor = { name: 'cli:ops', address: null };
    const web: Actor = { name: 'root-admin', address: '10.1.2.3' };
    await f.identity.addAccount('alice', 'officer', PASSWORD, ops);
    f.advance(1_000);
    f.identity.addProgramAccount('prom', 'metrics', web);
    await f.identity.setPassword('alice', 'a-new-password-3', ops);
    f.identity.setRole('alice', 'supervisor', web);
    f.identity.setDisabled('alice', true, ops);
    f.identity.setDisabled('alice', false, ops);
    const { record } = f.identity.createToken('prom', { label: 'scrape', expiresInDays: 7 }, web);
    f.identity.revokeToken(record.id, web);
    f.identity.setPortalCredential('lane-1', ops);
    f.identity.setPortalCredential('lane-1', ops);
    f.identity.revokePortal('lane-1', web);
    const events = f.identity.listAudit({ limit: 100 });
    expect(events.map((e) => [e.action, e.actor, e.target, e.outcome, e.address])).toEqual([
      ['portal.revoke', 'root-admin', 'lane-1', 'ok', '10.1.2.3'],
      ['portal.rotate', 'cli:ops', 'lane-1', 'ok', null],
      ['portal.create', 'cli:ops', 'lane-1', 'ok', null],
      ['token.revoke', 'root-admin', record.id, 'ok', '10.1.2.3'],
      ['token.create', 'root-admin', record.id, 'ok', '10.1.2.3'],
      ['account.enable', 'cli:ops', 'alice', 'ok', null],
      ['account.disable', 'cli:ops', 'alice', 'ok', null],
      ['account.role', 'root-admin', 'alice', 'ok', '10.1.2.3'],
      ['account.password', 'cli:ops', 'alice', 'ok', null],
      ['account.create', 'root-admin', 'prom', 'ok', '10.1.2.3'],
      ['account.create', 'cli:ops', 'alice', 'ok', null],
    ]);
    expect(events.map((e) => e.id)).toEqual([...events.map((e) => e.id)].sort((a, b) => b - a));
    expect(events.at(-1)?.at).toBe(new Date(START).toISOString());
    expect(events[0].at).toBe(new Date(START + 1_000).toISOString());
    expect(events.find((e) => e.action === 'token.create')?.details).toEqual({
      account: 'prom',
      role: 'metrics',
      label: 'scrape',
      expiresAt: new Date(START + 1_000 + 7 * DAY).toISOString(),
    });
    expect(events.filter((e) => e.action === 'account.create').map((e) => e.details)).toEqual([
      { role: 'metrics', password: false, source: 'local' },
      { role: 'officer', password: true, source: 'local' },
    ]);
    expect(f.identity.listAudit({ limit: 100, action: 'account.create' }).map((e) => e.target)).toEqual(['prom', 'alice']);
    expect(f.identity.listAudit({ limit: 2 }).map((e) => e.action)).toEqual(['portal.revoke', 'portal.rotate']);
    expect(f.identity.listAudit({ limit: 100, before: events[8].id }).map((e) => e.action)).toEqual(['account.create', 'account.create']);
    // no secret or hash goes to the trail
    expect(JSON.stringify(events)).not.toMatch(/sl[stp]_|scrypt\$|a-new-password-3/);
  });

  it('an act whose audit entry cannot be written fails with it', async () => {
    const f = fixture();
    f.store.close();
    const err = await errorOf(() => f.identity.record({ actor: 'x', action: 'test.act', target: null, outcome: 'ok', address: null, details: {} }));
    expect(err.code).toBe('SCANLINE_ERR_STORAGE_WRITE');
  });
});
