/**
 * What makes the record of who did what tamper-evident (docs/security.md, "Audit trail"):
 * - The audit trail is a hash chain: entry n carries the hash of entry n-1 (`prev_hash`) and its own `hash` =
 *   SHA-256(prev_hash "\n" JSON [id, at, actor, action, target, outcome, address, details]), details as stored. The
 *   first entry follows GENESIS. Editing, removing or reordering entries breaks the chain at that entry; removing the
 *   newest ones shows in SQLite's id counter (ids are never reused).
 * - A decision is sealed in its `decision.record` entry (`details.sealed`: SHA-256 of the decision as stored).
 * - A completed scan is sealed with the SHA-256 of its raw lines, in its record (`raw_sha256`) and in a `scan.seal`
 *   entry.
 * verifyIntegrity() checks all three and names every entry, decision and scan that does not hold. The chain's head
 * (its newest hash) is what to keep outside the gateway (printed, exported in /metrics) to make removing the newest
 * entries evident too.
 *
 * Threads: gateway JS thread or the `scanline audit verify` command; raw files are read and hashed on a libuv pool
 * thread by the native addon, streamed through node:crypto only where the addon does not load. Sealing runs once per
 * completed scan, on files of tens of MB: hashed on the JS thread it put the event loop's delay p99 at 32 real-time
 * portals at 6.9-8.6 ms (1.9 ms with the digest skipped, 2.7-4.6 ms native; bench/RESULTS.md, 'Sealing scans off the
 * event loop').
 */
import type Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ScanlineError } from '../errors/index.js';
import { sha256FileNative } from '../addon/index.js';
import type { DecisionRecord } from '../protocol/index.js';
import { type DecisionRow, decisionOf } from './decision-rows.js';

/** The hash the first entry of the chain follows. */
export const GENESIS = '0'.repeat(64);

export interface AuditRow {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  outcome: string;
  address: string | null;
  /** The details as stored (JSON text). */
  details: string;
}

export function auditEntryHash(prevHash: string, row: AuditRow): string {
  return createHash('sha256')
    .update(prevHash)
    .update('\n')
    .update(JSON.stringify([row.id, row.at, row.actor, row.action, row.target, row.outcome, row.address, row.details]))
    .digest('hex');
}

/** The seal of a decision: SHA-256 of its fields in a fixed order (what `decision.record` carries as `sealed`). */
export function decisionSeal(d: DecisionRecord): string {
  return createHash('sha256')
    .update(JSON.stringify([d.id, d.scanId, d.operatorId, d.verdict, d.comment, d.suggestions, d.machineDecision, d.scanState, d.decidedAt]))
    .digest('hex');
}

/**
 * SHA-256 of a regular file (lowercase hex); null when it does not exist. Read and hashed off the JS thread by the
 * native addon (sha256FileNative); where the addon does not load, streamed through node:crypto here
 * (fileSha256Streamed, the same answers). Rejects with SCANLINE_ERR_STORAGE_READ when the file cannot be read or is
 * not a regular file. At most DIGESTS_AT_ONCE run at a time in a process; the others wait their turn.
 */
export async function fileSha256(path: string): Promise<string | null> {
  while (digestsRunning >= DIGESTS_AT_ONCE) await new Promise<void>((resolve) => digestsWaiting.push(resolve));
  digestsRunning++;
  try {
    const native = await sha256FileNative(path);
    return native !== 'unavailable' ? native : await fileSha256Streamed(path);
  } finally {
    digestsRunning--;
    digestsWaiting.shift()?.();
  }
}

/**
 * Digests running at once in a process. A native one holds a libuv pool thread while it reads (tens of ms for a scan's
 * raw file), and that pool (4 threads) also runs the stitcher's jobs and every fs call, the acks' fdatasyncs
 * included. With no limit, when the 32 portals of bench:infer completed their trucks together, their digests held the
 * whole pool and the stalled jobs came back as one burst: event-loop delay max 117-292 ms (p99 1.6-2.3 ms); one at a
 * time, max 27-99 ms and p99 2.7-4.6 ms, as the digests then run beside ingest for longer. Two at a time (half the
 * pool) measured the same as one within this VM's noise (bench/RESULTS.md, 'Sealing scans off the event loop').
 */
const DIGESTS_AT_ONCE = 1;
let digestsRunning = 0;
const digestsWaiting: Array<() => void> = [];

/**
 * SHA-256 of a regular file streamed through node:crypto on this thread (lowercase hex); null when it does not exist.
 * The same answers and errors as the native digest (SCANLINE_ERR_STORAGE_READ), for where the addon does not load.
 */
export async function fileSha256Streamed(path: string): Promise<string | null> {
  const refuse = (why: string, cause?: unknown): ScanlineError =>
    new ScanlineError('SCANLINE_ERR_STORAGE_READ', `cannot read ${path}: ${why}`, {}, cause === undefined ? undefined : { cause });
  if (path.length === 0 || path.includes('\0')) throw refuse('expected a non-empty path without NUL characters');
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw refuse((err as Error).message, err);
  }
  if (!info.isFile()) throw refuse('not a regular file');
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', (err) => reject(refuse(err.message, err)));
  });
}

export interface IntegrityReport {
  /** Entries of the chain checked, and the newest one's id and hash (the head to keep outside). */
  entries: number;
  head: { id: number; hash: string } | null;
  /** Entries without a hash (each also a problem). */
  unsealed: number;
  decisionsChecked: number;
  scansChecked: number;
  /** Every problem found, one line each, in the order found; empty when everything holds. */
  problems: string[];
}

interface ChainRow extends AuditRow {
  prev_hash: string | null;
  hash: string | null;
}

/**
 * Checks the audit chain, every decision against its seal and every sealed scan's raw lines. `db` is the gateway's
 * database, `scansDir` where raw lines are (`<dataDir>/scans`). Reads only.
 */
export async function verifyIntegrity(db: Database.Database, scansDir: string): Promise<IntegrityReport> {
  const problems: string[] = [];
  const rows = db.prepare('SELECT * FROM audit_events ORDER BY id').all() as ChainRow[];
  let unsealed = 0;
  let prev: ChainRow | null = null;
  let chained = 0;
  const decisionSeals = new Map<number, { entry: number; sealed: string }>();
  // Seals of scans and decisions the retention policy recorded as deleted: checked still if they are there (the
  // deletion failed after its entry was written).
  const deletedScanSeals = new Map<string, { entry: number; sha256: string }>();
  const deletedDecisionSeals = new Map<number, { entry: number; sealed: string }>();
  const scanSeals = new Map<string, { entry: number; sha256: string }>();
  for (const row of rows) {
    if (row.hash === null) {
      // Every entry the gateway writes has a hash (the chain began with the audit trail itself, in the same release):
      // one without was written outside it, or had its hash removed (a whole chain 'downgraded' that way included).
      unsealed++;
      problems.push(`audit entry ${row.id} has no hash: it was written outside the gateway, or its hash was removed`);
      prev = row;
      continue;
    }
    const expectedPrev = prev?.hash ?? GENESIS;
    if (prev && prev.hash !== null && row.id !== prev.id + 1) {
      problems.push(`audit entries ${prev.id + 1}..${row.id - 1} were removed (entry ${row.id} follows entry ${prev.id})`);
    } else if (row.prev_hash !== expectedPrev) {
      problems.push(
        prev
          ? `audit entry ${row.id} does not follow entry ${prev.id}: entries were removed, inserted or reordered`
          : `audit entry ${row.id} does not start the chain`,
      );
    }
    if (auditEntryHash(row.prev_hash ?? '', row) !== row.hash) problems.push(`audit entry ${row.id} (${row.action}) was edited`);
    chained++;
    prev = row;
    let details: Record<string, unknown> = {};
    try {
      details = JSON.parse(row.details) as Record<string, unknown>;
    } catch {
      // an edited entry; reported above
    }
    if (row.action === 'decision.record' && typeof details.decisionId === 'number' && typeof details.sealed === 'string') {
      decisionSeals.set(details.decisionId, { entry: row.id, sealed: details.sealed });
    }
    if (row.action === 'scan.seal' && row.target !== null && typeof details.sha256 === 'string') {
      scanSeals.set(row.target, { entry: row.id, sha256: details.sha256 });
    }
    // A scan deleted by the retention policy, with its decisions: recorded in the chain before it went, so their
    // absence is not a removal.
    if (row.action === 'retention.delete' && row.target !== null) {
      const seal = scanSeals.get(row.target);
      if (seal) deletedScanSeals.set(row.target, seal);
      scanSeals.delete(row.target);
      if (Array.isArray(details.decisionIds)) {
        for (const id of details.decisionIds) {
          const d = typeof id === 'number' ? decisionSeals.get(id) : undefined;
          if (d) deletedDecisionSeals.set(id as number, d);
          decisionSeals.delete(id as number);
        }
      }
    }
  }
  const counter = db.prepare(`SELECT seq FROM sqlite_sequence WHERE name = 'audit_events'`).get() as { seq: number } | undefined;
  const last = rows.at(-1);
  if (counter && counter.seq > (last?.id ?? 0)) {
    problems.push(`audit entries ${(last?.id ?? 0) + 1}..${counter.seq} were removed (the newest entries)`);
  }

  // Decisions: each must match the seal its entry carries, and each must have one.
  const decisions = db.prepare('SELECT * FROM scan_decisions ORDER BY id').all() as DecisionRow[];
  // Decisions older than the audit trail (from a release before it) have no entry; later ones must.
  const trailStart = rows[0]?.at;
  const seen = new Set<number>();
  for (const d of decisions) {
    const kept = deletedDecisionSeals.get(d.id);
    if (kept && !decisionSeals.has(d.id)) decisionSeals.set(d.id, kept);
  }
  for (const d of decisions) {
    seen.add(d.id);
    const seal = decisionSeals.get(d.id);
    if (!seal) {
      if (trailStart !== undefined && d.decided_at >= trailStart) {
        problems.push(`decision ${d.id} on scan ${d.scan_id} has no audit entry: it was written outside the gateway`);
      }
      continue;
    }
    let sealed: string | null = null;
    try {
      sealed = decisionSeal(decisionOf(d));
    } catch {
      // suggestions that are not JSON any more: edited
    }
    if (sealed !== seal.sealed) problems.push(`decision ${d.id} on scan ${d.scan_id} was edited (sealed in audit entry ${seal.entry})`);
  }
  for (const [id, seal] of decisionSeals) if (!seen.has(id)) problems.push(`decision ${id} was removed (sealed in audit entry ${seal.entry})`);

  // Sealed scans: the raw lines, the record and the chain must agree.
  let scansChecked = 0;
  const sealedRows = db.prepare('SELECT scan_id, raw_sha256 FROM scans WHERE raw_sha256 IS NOT NULL').all() as Array<{ scan_id: string; raw_sha256: string }>;
  const recorded = new Map(sealedRows.map((r) => [r.scan_id, r.raw_sha256]));
  for (const [scanId, seal] of deletedScanSeals) if (recorded.has(scanId) && !scanSeals.has(scanId)) scanSeals.set(scanId, seal);
  for (const [scanId, seal] of scanSeals) {
    scansChecked++;
    if (!recorded.has(scanId)) {
      problems.push(`scan ${scanId} (sealed in audit entry ${seal.entry}) has no seal in its record, or its record was removed`);
      continue;
    }
    if (recorded.get(scanId) !== seal.sha256) problems.push(`the seal in the record of scan ${scanId} was edited (audit entry ${seal.entry} differs)`);
    let actual: string | null;
    try {
      actual = await fileSha256(join(scansDir, scanId, 'raw.u16'));
    } catch (err) {
      // Replaced by a directory, a FIFO or a device, or unreadable: named like any other tampering, and the check goes on.
      problems.push(`the raw lines of scan ${scanId} cannot be read (sealed in audit entry ${seal.entry}): ${(err as Error).message}`);
      continue;
    }
    if (actual === null) problems.push(`the raw lines of scan ${scanId} were removed (sealed in audit entry ${seal.entry})`);
    else if (actual !== seal.sha256) problems.push(`the raw lines of scan ${scanId} were edited (sealed in audit entry ${seal.entry})`);
  }
  for (const scanId of recorded.keys()) if (!scanSeals.has(scanId)) problems.push(`scan ${scanId} has a seal in its record but none in the audit trail`);

  const head = [...rows].reverse().find((r) => r.hash !== null);
  return {
    entries: chained,
    head: head ? { id: head.id, hash: head.hash as string } : null,
    unsealed,
    decisionsChecked: decisions.length,
    scansChecked,
    problems,
  };
}
