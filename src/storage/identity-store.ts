/**
 * Identities and the audit trail in the gateway's database (`<dataDir>/scanline.db`, tables of migration 2):
 * accounts of people and programs, browser sessions, API tokens, portal credentials, and the append-only record of
 * acts of people. Only hashes of secrets are stored (the policy that makes and checks them is src/identity's).
 *
 * Its own SQLite connection, opened beside the ScanStore's (or alone, by the `scanline user|token|portal` commands
 * while a gateway runs: SQLite's WAL lets both write, one at a time, waiting up to `busy_timeout`). This connection
 * runs with synchronous=FULL: a sign-in, a revocation or an audit entry is on disk before it is answered. Nothing
 * is cached here: a revocation made by another process is seen by the next lookup.
 *
 * Threads: gateway JS thread; every statement is a single-row indexed read or write (microseconds).
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ScanlineError } from '../errors/index.js';
import { type SpaceReserve, withReserve } from './disk-space.js';
import { GENESIS, auditEntryHash, type IntegrityReport, verifyIntegrity } from './integrity.js';
import { migrate } from './migrations.js';

export type AccountRole = 'metrics' | 'viewer' | 'officer' | 'supervisor' | 'admin';

export interface StoredAccount {
  name: string;
  role: AccountRole;
  /** scrypt hash (src/identity/passwords.ts); null for accounts that sign in only through OIDC. */
  passwordHash: string | null;
  source: 'local' | 'oidc';
  disabled: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface StoredSession {
  idHash: string;
  account: string;
  address: string | null;
  createdAt: string;
  lastSeenAt: string;
  expiresAt: string;
}

export interface StoredToken {
  /** Public id (shown by `scanline token list`, used to revoke); not a secret. */
  id: string;
  account: string;
  label: string | null;
  secretHash: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

export interface StoredPortalIdentity {
  portalId: string;
  credentialHash: string;
  createdAt: string;
  updatedAt: string;
  revokedAt: string | null;
}

/** One act of a person (or of an administrator through the CLI), as appended to the audit trail. */
export interface AuditEvent {
  /** Who acted: an account name, `cli:<os user>` for the command line, `portal:<id>`, or `anonymous`. */
  actor: string;
  /** What was done, dotted: `session.login`, `decision.record`, `token.create`, ... (docs/security.md lists them). */
  action: string;
  /** What it was done to: a scan id, an account, a token id, a portal id; null when nothing in particular. */
  target: string | null;
  outcome: 'ok' | 'refused';
  /** The client's address, when the act came over the network. */
  address: string | null;
  /** Facts of the act (never a secret). */
  details: Record<string, unknown>;
}

export interface StoredAuditEvent extends AuditEvent {
  id: number;
  at: string;
}

interface AccountRow {
  name: string;
  role: AccountRole;
  password_hash: string | null;
  source: 'local' | 'oidc';
  disabled: number;
  created_at: string;
  updated_at: string;
}

const accountOf = (r: AccountRow): StoredAccount => ({
  name: r.name,
  role: r.role,
  passwordHash: r.password_hash,
  source: r.source,
  disabled: r.disabled !== 0,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

interface TokenRow {
  id: string;
  account: string;
  label: string | null;
  secret_hash: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

const tokenOf = (r: TokenRow): StoredToken => ({
  id: r.id,
  account: r.account,
  label: r.label,
  secretHash: r.secret_hash,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
  lastUsedAt: r.last_used_at,
});

interface PortalRow {
  portal_id: string;
  credential_hash: string;
  created_at: string;
  updated_at: string;
  revoked_at: string | null;
}

const portalOf = (r: PortalRow): StoredPortalIdentity => ({
  portalId: r.portal_id,
  credentialHash: r.credential_hash,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  revokedAt: r.revoked_at,
});

export class IdentityStore {
  private closed = false;
  private readonly statements: {
    account: Database.Statement;
    session: Database.Statement;
    tokenBySecret: Database.Statement;
    portal: Database.Statement;
    audit: Database.Statement;
  };

  private constructor(
    readonly path: string,
    private readonly db: Database.Database,
  ) {
    this.statements = {
      account: db.prepare('SELECT * FROM accounts WHERE name = ?'),
      session: db.prepare('SELECT * FROM sessions WHERE id_hash = ?'),
      tokenBySecret: db.prepare('SELECT * FROM api_tokens WHERE secret_hash = ?'),
      portal: db.prepare('SELECT * FROM portal_identities WHERE portal_id = ?'),
      audit: db.prepare(
        'INSERT INTO audit_events (id, at, actor, action, target, outcome, address, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
    };
  }

  /**
   * Opens the database of `dataDir` (creating it if needed) and brings it to the current schema (the same
   * migrations as ScanStore.open; each applied once whoever opens first). Throws SCANLINE_ERR_STORAGE_SCHEMA for a
   * database this code does not know and SCANLINE_ERR_STORAGE_WRITE when it cannot be opened.
   */
  static open(dataDir: string): IdentityStore {
    const dir = resolve(dataDir);
    const path = join(dir, 'scanline.db');
    let db: Database.Database;
    try {
      mkdirSync(dir, { recursive: true });
      db = new Database(path, { timeout: 10_000 });
    } catch (err) {
      throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `cannot open the gateway database in ${dir}: ${(err as Error).message}`, {}, { cause: err });
    }
    try {
      migrate(db, path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      return new IdentityStore(path, db);
    } catch (err) {
      db.close();
      if (err instanceof ScanlineError) throw err;
      throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `cannot open the gateway database ${path}: ${(err as Error).message}`, {}, { cause: err });
    }
  }

  /**
   * Leaves the checkpoints of the shared database (scanline.db, also the ScanStore's) to the gateway's checkpoint
   * worker (ScanStore.startCheckpointer): this connection's commits never run SQLite's automatic checkpoint on the JS
   * thread. Should the worker fail, the ScanStore's connection checkpoints again, which bounds the WAL for both.
   */
  leaveCheckpointsToWorker(): void {
    this.assertOpen();
    this.db.pragma('wal_autocheckpoint = 0');
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  /**
   * The gateway's disk space reserve (SpaceReserve): released to store a write when the disk is full. Not for the
   * store's own bookkeeping (a session's or token's last use, expired sessions) nor for writes called with
   * `useReserve` false (machine entries that can wait: seals, refusals): on a full disk those fail, so that the reserve
   * is left to the people's acts it is kept for.
   */
  spaceReserve: SpaceReserve | null = null;

  private write<T>(what: string, run: () => T, useReserve = true): T {
    this.assertOpen();
    try {
      return useReserve ? withReserve(this.spaceReserve, run, what) : run();
    } catch (err) {
      if (err instanceof ScanlineError) throw err;
      throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `cannot ${what}: ${(err as Error).message}`, {}, { cause: err });
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', 'the identity store is closed');
  }

  // -- accounts ------------------------------------------------------------------------------------------------

  countAccounts(): number {
    this.assertOpen();
    return (this.db.prepare('SELECT count(*) AS n FROM accounts').get() as { n: number }).n;
  }

  getAccount(name: string): StoredAccount | undefined {
    this.assertOpen();
    const row = this.statements.account.get(name) as AccountRow | undefined;
    return row ? accountOf(row) : undefined;
  }

  listAccounts(): StoredAccount[] {
    this.assertOpen();
    return (this.db.prepare('SELECT * FROM accounts ORDER BY name').all() as AccountRow[]).map(accountOf);
  }

  /** Throws SCANLINE_ERR_ACCOUNT_EXISTS when the name is taken. */
  createAccount(a: Omit<StoredAccount, 'createdAt' | 'updatedAt' | 'disabled'>, now = new Date().toISOString()): StoredAccount {
    return this.write(`create account ${a.name}`, () => {
      const r = this.db
        .prepare(
          `INSERT INTO accounts (name, role, password_hash, source, disabled, created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT (name) DO NOTHING`,
        )
        .run(a.name, a.role, a.passwordHash, a.source, now, now);
      if (r.changes === 0) throw new ScanlineError('SCANLINE_ERR_ACCOUNT_EXISTS', `an account named ${a.name} already exists`, { account: a.name });
      return { ...a, disabled: false, createdAt: now, updatedAt: now };
    });
  }

  /** Changes an account; throws SCANLINE_ERR_ACCOUNT_UNKNOWN when there is none of that name. */
  updateAccount(name: string, patch: Partial<Pick<StoredAccount, 'role' | 'passwordHash' | 'disabled'>>, now = new Date().toISOString()): StoredAccount {
    return this.write(`update account ${name}`, () => {
      const current = this.getAccount(name);
      if (!current) throw new ScanlineError('SCANLINE_ERR_ACCOUNT_UNKNOWN', `no account named ${name}`, { account: name });
      const next = { ...current, ...patch, updatedAt: now };
      this.db
        .prepare('UPDATE accounts SET role = ?, password_hash = ?, disabled = ?, updated_at = ? WHERE name = ?')
        .run(next.role, next.passwordHash, next.disabled ? 1 : 0, now, name);
      return next;
    });
  }

  // -- sessions ------------------------------------------------------------------------------------------------

  createSession(s: StoredSession): void {
    this.write('store a session', () =>
      this.db
        .prepare('INSERT INTO sessions (id_hash, account, address, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(s.idHash, s.account, s.address, s.createdAt, s.lastSeenAt, s.expiresAt),
    );
  }

  getSession(idHash: string): StoredSession | undefined {
    this.assertOpen();
    const r = this.statements.session.get(idHash) as
      | { id_hash: string; account: string; address: string | null; created_at: string; last_seen_at: string; expires_at: string }
      | undefined;
    return r
      ? { idHash: r.id_hash, account: r.account, address: r.address, createdAt: r.created_at, lastSeenAt: r.last_seen_at, expiresAt: r.expires_at }
      : undefined;
  }

  /** Bookkeeping: never from the space reserve (throws SCANLINE_ERR_STORAGE_WRITE on a full disk). */
  touchSession(idHash: string, lastSeenAt: string, expiresAt: string): void {
    this.write(
      'refresh a session',
      () => this.db.prepare('UPDATE sessions SET last_seen_at = ?, expires_at = ? WHERE id_hash = ?').run(lastSeenAt, expiresAt, idHash),
      false,
    );
  }

  /** `useReserve` false for the removal of an expired session (bookkeeping); a sign-out is a person's act. */
  deleteSession(idHash: string, useReserve = true): boolean {
    return this.write('end a session', () => this.db.prepare('DELETE FROM sessions WHERE id_hash = ?').run(idHash).changes > 0, useReserve);
  }

  /** Ends every session of an account (password changed, account disabled or its role changed); returns how many. */
  deleteSessionsOf(account: string): number {
    return this.write(`end the sessions of ${account}`, () => this.db.prepare('DELETE FROM sessions WHERE account = ?').run(account).changes);
  }

  /** Bookkeeping: never from the space reserve. */
  deleteExpiredSessions(now: string): number {
    return this.write('delete expired sessions', () => this.db.prepare('DELETE FROM sessions WHERE expires_at <= ?').run(now).changes, false);
  }

  // -- API tokens ----------------------------------------------------------------------------------------------

  createToken(t: StoredToken): void {
    this.write('store an API token', () =>
      this.db
        .prepare(
          'INSERT INTO api_tokens (id, account, label, secret_hash, created_at, expires_at, revoked_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)',
        )
        .run(t.id, t.account, t.label, t.secretHash, t.createdAt, t.expiresAt),
    );
  }

  tokenBySecretHash(secretHash: string): StoredToken | undefined {
    this.assertOpen();
    const r = this.statements.tokenBySecret.get(secretHash) as TokenRow | undefined;
    return r ? tokenOf(r) : undefined;
  }

  getToken(id: string): StoredToken | undefined {
    this.assertOpen();
    const r = this.db.prepare('SELECT * FROM api_tokens WHERE id = ?').get(id) as TokenRow | undefined;
    return r ? tokenOf(r) : undefined;
  }

  listTokens(account?: string): StoredToken[] {
    this.assertOpen();
    const rows = (
      account === undefined
        ? this.db.prepare('SELECT * FROM api_tokens ORDER BY created_at, id').all()
        : this.db.prepare('SELECT * FROM api_tokens WHERE account = ? ORDER BY created_at, id').all(account)
    ) as TokenRow[];
    return rows.map(tokenOf);
  }

  /** Marks a token revoked; throws SCANLINE_ERR_TOKEN_UNKNOWN when no token has this id. Revoking twice keeps the first time. */
  revokeToken(id: string, now = new Date().toISOString()): StoredToken {
    return this.write(`revoke token ${id}`, () => {
      this.db.prepare('UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?').run(now, id);
      const t = this.getToken(id);
      if (!t) throw new ScanlineError('SCANLINE_ERR_TOKEN_UNKNOWN', `no API token with id ${id}`, { tokenId: id });
      return t;
    });
  }

  /** Bookkeeping: never from the space reserve (throws SCANLINE_ERR_STORAGE_WRITE on a full disk). */
  touchToken(id: string, now: string): void {
    this.write('note the use of a token', () => this.db.prepare('UPDATE api_tokens SET last_used_at = ? WHERE id = ?').run(now, id), false);
  }

  // -- portal identities ---------------------------------------------------------------------------------------

  getPortal(portalId: string): StoredPortalIdentity | undefined {
    this.assertOpen();
    const r = this.statements.portal.get(portalId) as PortalRow | undefined;
    return r ? portalOf(r) : undefined;
  }

  listPortals(): StoredPortalIdentity[] {
    this.assertOpen();
    return (this.db.prepare('SELECT * FROM portal_identities ORDER BY portal_id').all() as PortalRow[]).map(portalOf);
  }

  /** Adds a portal identity or gives an existing one a new credential (the old one stops working; revocation lifted). */
  setPortalCredential(portalId: string, credentialHash: string, now = new Date().toISOString()): StoredPortalIdentity {
    return this.write(`store the credential of portal ${portalId}`, () => {
      this.db
        .prepare(
          `INSERT INTO portal_identities (portal_id, credential_hash, created_at, updated_at, revoked_at) VALUES (?, ?, ?, ?, NULL)
           ON CONFLICT (portal_id) DO UPDATE SET credential_hash = excluded.credential_hash, updated_at = excluded.updated_at, revoked_at = NULL`,
        )
        .run(portalId, credentialHash, now, now);
      return this.getPortal(portalId) as StoredPortalIdentity;
    });
  }

  /** Throws SCANLINE_ERR_PORTAL_UNKNOWN when the portal has no identity. */
  revokePortal(portalId: string, now = new Date().toISOString()): StoredPortalIdentity {
    return this.write(`revoke portal ${portalId}`, () => {
      this.db.prepare('UPDATE portal_identities SET revoked_at = coalesce(revoked_at, ?), updated_at = ? WHERE portal_id = ?').run(now, now, portalId);
      const p = this.getPortal(portalId);
      if (!p) throw new ScanlineError('SCANLINE_ERR_PORTAL_UNKNOWN', `no portal identity ${portalId}`, { portalId });
      return p;
    });
  }

  // -- audit trail ---------------------------------------------------------------------------------------------

  /**
   * Appends one event to the hash chain (src/storage/integrity.ts): in one IMMEDIATE transaction the newest entry's
   * hash and the next id are read and the entry is written with both, so that the gateway and a `scanline` command
   * appending at once still make one chain. The row is on disk (synchronous=FULL) when this returns.
   */
  appendAudit(e: AuditEvent, at = new Date().toISOString()): StoredAuditEvent {
    return this.appendAuditAll([e], at)[0];
  }

  /**
   * Appends events to the hash chain in order, all in one IMMEDIATE transaction (one fsync for the batch, as for
   * the seals of completed scans: src/main.ts), each linked to the one before as appendAudit links one, all with the
   * same `at`. Either all are on disk when this returns, or none (SCANLINE_ERR_STORAGE_WRITE).
   * `useReserve` false: on a full disk the write fails rather than take the space reserve (kept for people's acts);
   * for entries that can be written later, such as the seals of completed scans (made again once there is room), or
   * that record a refusal (an anonymous sign-in, an import refused): a stream of those must not use up the reserve.
   */
  appendAuditAll(events: readonly AuditEvent[], at = new Date().toISOString(), useReserve = true): StoredAuditEvent[] {
    return this.write(
      'append to the audit trail',
      () =>
        this.db
          .transaction(() => {
            const last = this.db.prepare('SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1').get() as { id: number; hash: string | null } | undefined;
            const counter = this.db.prepare(`SELECT seq FROM sqlite_sequence WHERE name = 'audit_events'`).get() as { seq: number } | undefined;
            let id = Math.max(counter?.seq ?? 0, last?.id ?? 0);
            let prevHash = last?.hash ?? GENESIS;
            return events.map((e) => {
              id += 1;
              const row = {
                id,
                at,
                actor: e.actor,
                action: e.action,
                target: e.target,
                outcome: e.outcome,
                address: e.address,
                details: JSON.stringify(e.details),
              };
              const hash = auditEntryHash(prevHash, row);
              this.statements.audit.run(id, at, e.actor, e.action, e.target, e.outcome, e.address, row.details, prevHash, hash);
              prevHash = hash;
              return { ...e, id, at };
            });
          })
          .immediate(),
      useReserve,
    );
  }

  /** The newest entry of the chain (its id and hash: the head to keep outside the gateway), or null. */
  auditHead(): { id: number; hash: string } | null {
    this.assertOpen();
    const r = this.db.prepare('SELECT id, hash FROM audit_events WHERE hash IS NOT NULL ORDER BY id DESC LIMIT 1').get() as
      | { id: number; hash: string }
      | undefined;
    return r ?? null;
  }

  /** Checks the audit chain, decisions and sealed scans (src/storage/integrity.ts); reads only. */
  verify(scansDir: string): Promise<IntegrityReport> {
    this.assertOpen();
    return verifyIntegrity(this.db, scansDir);
  }

  /** Audit events, newest first: at most `limit`, optionally of one action and with ids below `before`. */
  listAudit(q: { limit: number; action?: string; before?: number }): StoredAuditEvent[] {
    this.assertOpen();
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.action !== undefined) {
      where.push('action = ?');
      params.push(q.action);
    }
    if (q.before !== undefined) {
      where.push('id < ?');
      params.push(q.before);
    }
    const rows = this.db
      .prepare(`SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`)
      .all(...params, q.limit) as Array<{
      id: number;
      at: string;
      actor: string;
      action: string;
      target: string | null;
      outcome: 'ok' | 'refused';
      address: string | null;
      details: string;
    }>;
    return rows.map((r) => ({ ...r, details: JSON.parse(r.details) as Record<string, unknown> }));
  }
}
