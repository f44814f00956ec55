/**
 * Versions of the scan database schema (`PRAGMA user_version`) and the migrations between them.
 *
 * Contract:
 * - MIGRATIONS[i] takes a database from version i to version i + 1 (its `version`). ScanStore.open applies the
 *   missing ones in order, each in one IMMEDIATE transaction that also sets user_version: a migration that fails
 *   leaves the database at the previous version, and two processes opening the same file apply each at most once.
 * - A released migration is never edited: a schema change is a new migration appended to the list.
 * - Version 0 with tables: a database written before schema versions existed. Those releases created exactly the
 *   tables of migration 1 (a data directory from an early release may lack the later ones) with
 *   CREATE ... IF NOT EXISTS, and migration 1 does the same, so applying it adopts such a database: missing tables
 *   are created, present ones and their rows are kept. Before that, the columns of the tables present are compared
 *   with migration 1's; a database whose tables differ is refused (SCANLINE_ERR_STORAGE_SCHEMA), unchanged.
 * - A version above SCHEMA_VERSION (written by a newer Scanline) is refused (SCANLINE_ERR_STORAGE_SCHEMA), unchanged.
 *
 * Threads: gateway JS thread, once at startup (better-sqlite3 is synchronous).
 */
import Database from 'better-sqlite3';
import { ScanlineError } from '../errors/index.js';

export interface Migration {
  /** The user_version the database has once this migration is applied. */
  version: number;
  description: string;
  /** SQL run in the migration's transaction. */
  sql: string;
}

/** Version 1: the schema as every release before schema versions wrote it, statement for statement. */
const V1 = `
CREATE TABLE IF NOT EXISTS scans (
  scan_id      TEXT PRIMARY KEY,
  portal_id    TEXT NOT NULL,
  stream_id    INTEGER NOT NULL,
  state        TEXT NOT NULL CHECK (state IN ('receiving','completed','aborted','interrupted')),
  pixels       INTEGER NOT NULL,
  energies     INTEGER NOT NULL,
  pitch_mm     REAL NOT NULL,
  line_rate_hz REAL NOT NULL,
  lines        INTEGER NOT NULL DEFAULT 0,
  gaps         TEXT NOT NULL DEFAULT '[]',
  vehicle      TEXT,
  declaration  TEXT,
  started_at   TEXT NOT NULL,
  ended_at     TEXT,
  updated_at   TEXT NOT NULL,
  reason       TEXT
);
CREATE INDEX IF NOT EXISTS scans_started ON scans (started_at DESC);
CREATE INDEX IF NOT EXISTS scans_portal ON scans (portal_id, started_at DESC);
-- Machine results of a scan (a JSON report; src/results ScanResultsReport), written once scoring is final.
CREATE TABLE IF NOT EXISTS scan_results (
  scan_id    TEXT PRIMARY KEY REFERENCES scans (scan_id) ON DELETE CASCADE,
  decision   TEXT NOT NULL,
  report     TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
-- Goods-model embeddings of a scan's tiles (float32 rows, L2-normalised), for enrolling reference categories.
CREATE TABLE IF NOT EXISTS scan_embeddings (
  scan_id TEXT PRIMARY KEY REFERENCES scans (scan_id) ON DELETE CASCADE,
  model   TEXT NOT NULL,
  dim     INTEGER NOT NULL,
  tiles   TEXT NOT NULL,
  data    BLOB NOT NULL
);
-- Reference categories enrolled without retraining (src/results/reference-library.ts).
CREATE TABLE IF NOT EXISTS reference_categories (
  id             TEXT PRIMARY KEY,
  name           TEXT NOT NULL,
  hs_codes       TEXT NOT NULL,
  model          TEXT NOT NULL,
  min_similarity REAL NOT NULL,
  prototype      BLOB NOT NULL,
  samples        INTEGER NOT NULL,
  sources        TEXT NOT NULL,
  sample_similarity TEXT NOT NULL,
  created_at     TEXT NOT NULL
);
-- Officers' decisions on a scan (the operator report, kept apart from the machine report in scan_results, as DICOS
-- keeps operator and machine TDRs apart). Append-only: a later decision on the same scan is a new row.
CREATE TABLE IF NOT EXISTS scan_decisions (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  scan_id          TEXT NOT NULL REFERENCES scans (scan_id) ON DELETE CASCADE,
  operator_id      TEXT NOT NULL,
  verdict          TEXT NOT NULL CHECK (verdict IN ('clear','inspect')),
  comment          TEXT,
  suggestions      TEXT NOT NULL,
  machine_decision TEXT,
  scan_state       TEXT NOT NULL,
  decided_at       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS scan_decisions_scan ON scan_decisions (scan_id, id);
`;

/**
 * Version 2: identities (src/storage/identity-store.ts) and the audit trail of acts of people. Secrets are never
 * stored: passwords as scrypt hashes, session ids, API tokens and portal credentials as SHA-256 of 256-bit random
 * values (a hash of a value that cannot be guessed needs no salt nor stretching).
 */
const V2 = `
CREATE TABLE accounts (
  name          TEXT PRIMARY KEY,
  role          TEXT NOT NULL CHECK (role IN ('metrics','viewer','officer','supervisor','admin')),
  password_hash TEXT,
  source        TEXT NOT NULL CHECK (source IN ('local','oidc')),
  disabled      INTEGER NOT NULL DEFAULT 0,
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL
);
CREATE TABLE sessions (
  id_hash      TEXT PRIMARY KEY,
  account      TEXT NOT NULL,
  address      TEXT,
  created_at   TEXT NOT NULL,
  last_seen_at TEXT NOT NULL,
  expires_at   TEXT NOT NULL
);
CREATE INDEX sessions_account ON sessions (account);
CREATE TABLE api_tokens (
  id           TEXT PRIMARY KEY,
  account      TEXT NOT NULL,
  label        TEXT,
  secret_hash  TEXT NOT NULL UNIQUE,
  created_at   TEXT NOT NULL,
  expires_at   TEXT,
  revoked_at   TEXT,
  last_used_at TEXT
);
CREATE INDEX api_tokens_account ON api_tokens (account);
CREATE TABLE portal_identities (
  portal_id       TEXT PRIMARY KEY,
  credential_hash TEXT NOT NULL,
  created_at      TEXT NOT NULL,
  updated_at      TEXT NOT NULL,
  revoked_at      TEXT
);
-- Acts of people and of administrators, oldest first. Append-only: no statement of the gateway updates or deletes a row.
CREATE TABLE audit_events (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  at      TEXT NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  target  TEXT,
  outcome TEXT NOT NULL CHECK (outcome IN ('ok','refused')),
  address TEXT,
  details TEXT NOT NULL
);
CREATE INDEX audit_events_action ON audit_events (action, id);
`;

/**
 * Version 3: four eyes on reference categories. A change is proposed by one supervisor and takes effect when
 * another approves it (references.approvals); the category keeps who proposed and who approved it.
 */
const V3 = `
ALTER TABLE reference_categories ADD COLUMN proposed_by TEXT;
ALTER TABLE reference_categories ADD COLUMN approved_by TEXT;
CREATE TABLE reference_proposals (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  action       TEXT NOT NULL CHECK (action IN ('enrol','delete')),
  reference_id TEXT NOT NULL,
  request      TEXT,
  state        TEXT NOT NULL CHECK (state IN ('pending','approved','rejected')),
  proposed_by  TEXT NOT NULL,
  proposed_at  TEXT NOT NULL,
  decided_by   TEXT,
  decided_at   TEXT,
  reason       TEXT
);
CREATE INDEX reference_proposals_state ON reference_proposals (state, id);
`;

/**
 * Version 4: the audit trail becomes a hash chain (each entry's hash and the hash of the one before), and a
 * completed scan is sealed with the SHA-256 of its raw lines (src/storage/integrity.ts). The audit trail (version 2)
 * and its chain came in the same release, so `scanline audit verify` reports any entry without a hash.
 */
const V4 = `
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
ALTER TABLE scans ADD COLUMN raw_sha256 TEXT;
`;

/**
 * Version 5: retention. A scan under legal hold is never deleted by the retention policy (src/retention), whatever
 * its age; who put it on hold, when and why are kept with it.
 */
const V5 = `
ALTER TABLE scans ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0;
ALTER TABLE scans ADD COLUMN legal_hold_by TEXT;
ALTER TABLE scans ADD COLUMN legal_hold_at TEXT;
ALTER TABLE scans ADD COLUMN legal_hold_reason TEXT;
CREATE INDEX scans_ended ON scans (ended_at);
`;

/**
 * Version 6: where a scan came from. NULL for a scan a portal streamed; for an imported image (DICOS, a TIFF/PNG file)
 * the JSON of its ScanOrigin: source, sending station, who sent it, the original UIDs.
 */
const V6 = `
ALTER TABLE scans ADD COLUMN origin TEXT;
`;

/**
 * Version 7: DICOS push queue. One row per object set to send to one destination (dicos.destinations): a scan's
 * images and MACHINE report, or one decision's OPERATOR report; kept until sent, retried with backoff, and still
 * there after a restart.
 */
const V7 = `
CREATE TABLE dicos_push_queue (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  scan_id         TEXT NOT NULL,
  destination     TEXT NOT NULL,
  item            TEXT NOT NULL,
  state           TEXT NOT NULL CHECK (state IN ('pending','sent')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT NOT NULL,
  last_error      TEXT,
  created_at      TEXT NOT NULL,
  sent_at         TEXT,
  UNIQUE (scan_id, destination, item)
);
CREATE INDEX dicos_push_due ON dicos_push_queue (state, next_attempt_at);
`;

export const MIGRATIONS: readonly Migration[] = Object.freeze([
  { version: 1, description: 'scans, scan_results, scan_embeddings, reference_categories, scan_decisions', sql: V1 },
  { version: 2, description: 'accounts, sessions, api_tokens, portal_identities, audit_events', sql: V2 },
  { version: 3, description: 'reference_proposals; who proposed and approved each reference category', sql: V3 },
  { version: 4, description: 'audit_events hash chain; scans sealed with the SHA-256 of their raw lines', sql: V4 },
  { version: 5, description: 'legal hold on scans (retention)', sql: V5 },
  { version: 6, description: 'origin of imported scans', sql: V6 },
  { version: 7, description: 'DICOS push queue', sql: V7 },
]);

/** The schema version this code writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS.length;

export interface MigrationOutcome {
  /** user_version found at open. */
  from: number;
  /** user_version now (SCHEMA_VERSION). */
  to: number;
  /** True when the database predates schema versions (version 0 with tables) and was adopted as version 1. */
  adopted: boolean;
}

function userVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

function tableNames(db: Database.Database): string[] {
  return (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).all() as Array<{ name: string }>).map(
    (r) => r.name,
  );
}

/** Columns of a table as one comparable string per column: name, declared type, NOT NULL, default, primary key. */
function columnsOf(db: Database.Database, table: string): string[] {
  return (db.pragma(`table_info(${JSON.stringify(table)})`) as Array<{ name: string; type: string; notnull: number; dflt_value: unknown; pk: number }>).map(
    (c) => `${c.name} ${c.type} notnull=${c.notnull} default=${String(c.dflt_value)} pk=${c.pk}`,
  );
}

/** Tables of migration 1 that the unversioned database has with other columns (empty: it can be adopted). */
function unrecognisedTables(db: Database.Database): string[] {
  const reference = new Database(':memory:');
  try {
    reference.exec(MIGRATIONS[0].sql);
    const present = new Set(tableNames(db));
    return tableNames(reference).filter((t) => present.has(t) && JSON.stringify(columnsOf(db, t)) !== JSON.stringify(columnsOf(reference, t)));
  } finally {
    reference.close();
  }
}

/**
 * Brings the database to SCHEMA_VERSION. Throws SCANLINE_ERR_STORAGE_SCHEMA (nothing changed) for a version newer than
 * this code or an unversioned database whose tables are not Scanline's; errors of a migration itself propagate
 * (its transaction rolled back).
 */
export function migrate(db: Database.Database, where: string): MigrationOutcome {
  const from = userVersion(db);
  if (from > SCHEMA_VERSION) {
    throw new ScanlineError(
      'SCANLINE_ERR_STORAGE_SCHEMA',
      `the scan database ${where} has schema version ${from}; this gateway knows versions up to ${SCHEMA_VERSION} (written by a newer Scanline?)`,
      { version: from, supported: SCHEMA_VERSION },
    );
  }
  const adopted = from === 0 && tableNames(db).length > 0;
  if (adopted) {
    const differ = unrecognisedTables(db);
    if (differ.length > 0) {
      throw new ScanlineError(
        'SCANLINE_ERR_STORAGE_SCHEMA',
        `the scan database ${where} has no schema version and its tables ${differ.join(', ')} differ from Scanline's; it was not changed`,
        { version: 0, supported: SCHEMA_VERSION, tables: differ },
      );
    }
  }
  for (const m of MIGRATIONS) {
    if (m.version <= from) continue; // no write lock when there is nothing to do
    db.transaction(() => {
      // Read again inside the write lock: another process may have applied it since.
      if (userVersion(db) >= m.version) return;
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
  return { from, to: userVersion(db), adopted };
}
