/**
 * ScanStore directly, on a fresh data directory per test: every table (scans, scan_results, scan_embeddings,
 * reference_categories, scan_decisions) round trips through the store's API, the listing and paging queries, scan
 * images and raw lines, and the schema versions: a new directory, a database left by a release from before schema
 * versions (all of its tables, or the first ones only), a database written by a newer release, and one whose tables
 * are not Scanline's.
 */
import Database from 'better-sqlite3';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';
import type { Logger } from '../../src/log/index.js';
import { SCHEMA_VERSION, ScanStore, type ScanRecord, type StoredDecision, type StoredReference } from '../../src/storage/index.js';
import { scanRecord } from '../helpers/scan-record.js';

/** Today's schema as releases before schema versions wrote it (frozen copy). */
const UNVERSIONED_SCHEMA = readFileSync(new URL('./fixtures/unversioned-schema.sql', import.meta.url), 'utf8');
const V1_TABLES = ['reference_categories', 'scan_decisions', 'scan_embeddings', 'scan_results', 'scans'];
/** Objects later migrations add (identities, the audit trail, proposals, the retention index). */
const V2_OBJECTS = [
  'accounts',
  'api_tokens',
  'api_tokens_account',
  'audit_events',
  'audit_events_action',
  'portal_identities',
  'sessions',
  'sessions_account',
  'reference_proposals',
  'reference_proposals_state',
  'scans_ended',
  'dicos_push_queue',
  'dicos_push_due',
];
const TABLES = [...V1_TABLES, 'accounts', 'api_tokens', 'audit_events', 'dicos_push_queue', 'portal_identities', 'reference_proposals', 'sessions'].sort();

/**
 * An inspection with only what migration 1 made, to compare with a database from before schema versions: the
 * tables and indexes of later migrations left out, and the columns migrations 3, 4 and 5 add to reference_categories and
 * scans taken out of their SQL (SQLite appends them to the CREATE statement it keeps).
 */
function v1Only(i: ReturnType<typeof inspect>): ReturnType<typeof inspect> {
  return {
    ...i,
    tables: i.tables.filter((t) => !V2_OBJECTS.includes(t)),
    schema: i.schema
      .filter((o) => !V2_OBJECTS.includes(o.name))
      .map((o) =>
        o.name === 'reference_categories'
          ? { ...o, sql: o.sql.replace(/, proposed_by TEXT, approved_by TEXT/, '') }
          : o.name === 'scans'
            ? {
                ...o,
                sql: o.sql.replace(
                  /, raw_sha256 TEXT, legal_hold INTEGER NOT NULL DEFAULT 0, legal_hold_by TEXT, legal_hold_at TEXT, legal_hold_reason TEXT, origin TEXT/,
                  '',
                ),
              }
            : o,
      ),
  };
}

const dirs: string[] = [];
const stores: ScanStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'scanline-store-'));
  dirs.push(d);
  return d;
}

interface LogLine {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}

function recordingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: string) =>
    (obj: Record<string, unknown>, msg: string): void => {
      lines.push({ level, obj, msg });
    };
  const log = { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') } as unknown as Logger;
  return { log, lines };
}

function open(dir: string, log?: Logger): ScanStore {
  const s = ScanStore.open(dir, log, { directIo: false });
  stores.push(s);
  return s;
}

function record(scanId: string, patch: Partial<ScanRecord> = {}): ScanRecord {
  return scanRecord(scanId, '2026-11-25T10:00:00.000Z', {
    streamId: 3,
    vehicle: { kind: 'truck', plate: 'AB-123' },
    declaration: { hsCodes: ['2402', '8703'], manifest: 'M-1' },
    ...patch,
  });
}

/** Creates the scan's record and directory and closes its (empty) raw file. */
async function create(store: ScanStore, r: ScanRecord): Promise<void> {
  await store.createScan(r).close();
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ScanlineError);
    return (err as ScanlineError).code;
  }
  return 'ok';
}

/** The database file read directly (the store closed): version, tables and the schema text of every object. */
function inspect(dir: string): { version: number; tables: string[]; schema: Array<{ type: string; name: string; sql: string }> } {
  const db = new Database(join(dir, 'scanline.db'), { readonly: true });
  try {
    const schema = db.prepare(`SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name`).all() as Array<{
      type: string;
      name: string;
      sql: string;
    }>;
    return {
      version: db.pragma('user_version', { simple: true }) as number,
      tables: schema.filter((o) => o.type === 'table').map((o) => o.name),
      schema,
    };
  } finally {
    db.close();
  }
}

/** A database as a release before schema versions left it: `sql` run as it was, user_version never set. */
function unversionedDatabase(dir: string, sql: string, fill?: (db: Database.Database) => void): void {
  const db = new Database(join(dir, 'scanline.db'));
  db.pragma('journal_mode = WAL');
  db.exec(sql);
  fill?.(db);
  db.close();
}

const PROTOTYPE = new Float32Array([0.6, 0.8, 0, -0.25]);

function reference(id: string, createdAt: string): StoredReference {
  return {
    id,
    name: `category ${id}`,
    hsCodes: ['0803'],
    model: 'goods-v1',
    minSimilarity: 0.72,
    prototype: PROTOTYPE,
    samples: 12,
    sources: [{ scanId: 's-1', lineStart: 100, lineEnd: 612, pixelStart: 0, pixelEnd: 512, tiles: 12 }],
    sampleSimilarity: { min: 0.8, mean: 0.9 },
    createdAt,
    proposedBy: 'supervisor-a',
    approvedBy: 'supervisor-b',
  };
}

function decision(scanId: string, verdict: 'clear' | 'inspect', decidedAt: string): Omit<StoredDecision, 'id'> {
  return {
    scanId,
    operatorId: 'officer-7',
    verdict,
    comment: verdict === 'inspect' ? 'dense block behind the cab' : null,
    suggestions: { 'seg-1': 'accept', 'obj-2': 'reject' },
    machineDecision: 'ALARM',
    scanState: 'completed',
    decidedAt,
  };
}

describe('ScanStore: scans', () => {
  it('creates a scan with its directory and raw file, and reads back every field', async () => {
    const store = open(dataDir());
    const r = record('s-1');
    const writer = store.createScan(r);
    expect(writer.path).toBe(store.rawPath('s-1'));
    expect(writer.bytesPerLine).toBe(64 * 2 * 2);
    await writer.close();
    expect(existsSync(store.scanDir('s-1'))).toBe(true);
    expect(existsSync(store.rawPath('s-1'))).toBe(true);
    expect(store.getScan('s-1')).toEqual(r);
    expect(store.hasScan('s-1')).toBe(true);
    expect(store.getScan('nope')).toBeUndefined();
    expect(store.hasScan('nope')).toBe(false);
  });

  it('keeps null vehicle and declaration as null', async () => {
    const store = open(dataDir());
    await create(store, record('s-1', { vehicle: null, declaration: null }));
    expect(store.getScan('s-1')).toMatchObject({ vehicle: null, declaration: null });
  });

  it('refuses a second scan with the same id, keeping the first', async () => {
    const store = open(dataDir());
    await create(store, record('s-1'));
    expect(codeOf(() => store.createScan(record('s-1', { portalId: 'lane-2' })))).toBe('SCANLINE_ERR_STORAGE_WRITE');
    expect(store.getScan('s-1')?.portalId).toBe('lane-1');
  });

  it('updates only the fields given, and always updatedAt', async () => {
    const store = open(dataDir());
    await create(store, record('s-1', { updatedAt: '2000-01-01T00:00:00.000Z' }));
    store.updateScan('s-1', { lines: 640 });
    const mid = store.getScan('s-1')!;
    expect(mid).toMatchObject({ state: 'receiving', lines: 640, gaps: [], endedAt: null, reason: null });
    expect(mid.updatedAt > '2000-01-01T00:00:00.000Z').toBe(true);
    store.updateScan('s-1', { state: 'aborted', gaps: [[16, 32]], endedAt: '2026-11-25T10:00:09.000Z', reason: 'portal: operator stop' });
    expect(store.getScan('s-1')).toMatchObject({
      state: 'aborted',
      lines: 640,
      gaps: [[16, 32]],
      endedAt: '2026-11-25T10:00:09.000Z',
      reason: 'portal: operator stop',
      startedAt: '2026-11-25T10:00:00.000Z',
    });
  });

  it('refuses a state outside the four it knows', async () => {
    const store = open(dataDir());
    await create(store, record('s-1'));
    expect(codeOf(() => store.updateScan('s-1', { state: 'lost' as never }))).toBe('SCANLINE_ERR_STORAGE_WRITE');
    expect(store.getScan('s-1')?.state).toBe('receiving');
  });

  it('leaves scans left receiving by a previous process as they are, and lists them for the gateway to recover', async () => {
    const dir = dataDir();
    const first = ScanStore.open(dir, undefined, { directIo: false });
    await create(first, record('s-open'));
    await create(first, record('s-done', { startedAt: '2026-11-25T09:00:00.000Z' }));
    first.updateScan('s-done', { state: 'completed', lines: 10, endedAt: '2026-11-25T09:00:05.000Z' });
    first.close();
    // Another process (the CLI) opening the store while a gateway runs must not touch that gateway's open scans.
    const store = open(dir);
    expect(store.getScan('s-open')).toMatchObject({ state: 'receiving', endedAt: null, reason: null });
    expect(store.getScan('s-done')).toMatchObject({ state: 'completed', endedAt: '2026-11-25T09:00:05.000Z', reason: null });
    expect(store.openScans().map((r) => r.scanId)).toEqual(['s-open']);
  });

  it('reads raw lines from line 0, zeros past the end of the file; a missing file is a read error', async () => {
    const store = open(dataDir());
    const r = record('s-1', { detector: { pixels: 2, energies: 1, pitchMm: 4.4, lineRateHz: 500 } });
    const writer = store.createScan(r);
    await writer.write(0, new Uint8Array(new Uint16Array([1, 2, 3, 4]).buffer));
    await writer.close();
    expect(Array.from(await store.readRaw('s-1', 3, 4))).toEqual([1, 2, 3, 4, 0, 0]);
    await expect(store.readRaw('nope', 1, 4)).rejects.toMatchObject({ code: 'SCANLINE_ERR_STORAGE_READ' });
  });

  it('writes and replaces scan images; an image never written is undefined', async () => {
    const store = open(dataDir());
    await create(store, record('s-1'));
    expect(await store.getScanImage('s-1', 'preview.png')).toBeUndefined();
    await store.putScanImage('s-1', 'preview.png', new Uint8Array([1, 2, 3]));
    await store.putScanImage('s-1', 'preview.png', new Uint8Array([4, 5]));
    expect(Array.from((await store.getScanImage('s-1', 'preview.png'))!)).toEqual([4, 5]);
    expect(existsSync(join(store.scanDir('s-1'), 'preview.png.tmp'))).toBe(false);
    await expect(store.putScanImage('no-dir', 'preview.png', new Uint8Array([1]))).rejects.toMatchObject({ code: 'SCANLINE_ERR_STORAGE_WRITE' });
  });
});

describe('ScanStore: an end that cannot be written (endScan)', () => {
  it('keeps the end of a scan whose record another process holds locked, shows it, and writes it later', async () => {
    const dir = dataDir();
    const store = open(dir);
    await create(store, record('s-locked'));
    await create(store, record('s-other', { startedAt: '2026-11-25T09:00:00.000Z' }));
    // Another process (a `scanline` command) holds the database's write lock past the busy timeout.
    const other = new Database(join(dir, 'scanline.db'));
    other.prepare('BEGIN IMMEDIATE').run();
    const end = { state: 'completed' as const, lines: 160, gaps: [], endedAt: '2026-11-25T10:00:09.000Z', reason: null };
    try {
      expect(store.endScan('s-locked', end)).toBe('pending');
      expect(store.pendingEndCount).toBe(1);
      // Every read shows it ended, also filtered by state (in SQL: the page stays whole).
      expect(store.getScan('s-locked')).toMatchObject(end);
      expect(store.listScans({ state: 'completed' }).map((r) => r.scanId)).toEqual(['s-locked']);
      expect(store.listScans({ state: 'receiving', limit: 1 }).map((r) => r.scanId)).toEqual(['s-other']);
    } finally {
      other.prepare('ROLLBACK').run();
      other.close();
    }
    expect(store.retryPendingEnds()).toEqual(['s-locked']);
    await store.durable();
    expect(store.pendingEndCount).toBe(0);
    const again = new Database(join(dir, 'scanline.db'), { readonly: true });
    try {
      expect(again.prepare('SELECT state, lines FROM scans WHERE scan_id = ?').get('s-locked')).toEqual({ state: 'completed', lines: 160 });
    } finally {
      again.close();
    }
  }, 20_000);
});

describe('ScanStore: listing and paging', () => {
  async function fill(store: ScanStore): Promise<void> {
    // Two lanes, scans a minute apart; two scans share a start time (the id breaks the tie).
    const starts = ['10:00', '10:01', '10:02', '10:02', '10:03', '10:04', '10:05'];
    for (const [i, hm] of starts.entries()) {
      await create(store, record(`s-${i}`, { portalId: i % 2 === 0 ? 'lane-a' : 'lane-b', startedAt: `2026-11-25T${hm}:00.000Z` }));
    }
    store.updateScan('s-1', { state: 'completed' });
    store.updateScan('s-4', { state: 'completed' });
    store.updateScan('s-5', { state: 'aborted' });
  }
  const ids = (rs: ScanRecord[]): string[] => rs.map((r) => r.scanId);

  it('lists newest first, ties by scan id descending', async () => {
    const store = open(dataDir());
    await fill(store);
    expect(ids(store.listScans())).toEqual(['s-6', 's-5', 's-4', 's-3', 's-2', 's-1', 's-0']);
  });

  it('filters by portal and by state, together too', async () => {
    const store = open(dataDir());
    await fill(store);
    expect(ids(store.listScans({ portalId: 'lane-b' }))).toEqual(['s-5', 's-3', 's-1']);
    expect(ids(store.listScans({ state: 'completed' }))).toEqual(['s-4', 's-1']);
    expect(ids(store.listScans({ portalId: 'lane-a', state: 'completed' }))).toEqual(['s-4']);
    expect(ids(store.listScans({ state: 'interrupted' }))).toEqual([]);
  });

  it('pages back with `before` (strictly earlier starts) and `limit`', async () => {
    const store = open(dataDir());
    await fill(store);
    const page1 = store.listScans({ limit: 3 });
    expect(ids(page1)).toEqual(['s-6', 's-5', 's-4']);
    const page2 = store.listScans({ limit: 3, before: page1.at(-1)!.startedAt });
    expect(ids(page2)).toEqual(['s-3', 's-2', 's-1']);
    const page3 = store.listScans({ limit: 3, before: page2.at(-1)!.startedAt });
    expect(ids(page3)).toEqual(['s-0']);
    expect(store.listScans({ limit: 3, before: page3[0].startedAt })).toEqual([]);
    expect(ids(store.listScans({ portalId: 'lane-a', before: '2026-11-25T10:03:00.000Z' }))).toEqual(['s-2', 's-0']);
  });

  it('clamps limit to 1..1000 and defaults to 50', async () => {
    const store = open(dataDir());
    for (let i = 0; i < 60; i++) await create(store, record(`s-${String(i).padStart(2, '0')}`));
    expect(store.listScans()).toHaveLength(50);
    expect(store.listScans({ limit: 0 })).toHaveLength(1);
    expect(store.listScans({ limit: -5 })).toHaveLength(1);
    expect(store.listScans({ limit: 5000 })).toHaveLength(60);
  });
});

describe('ScanStore: results, embeddings, references, decisions', () => {
  it('stores, replaces and reads a results report; machine decisions of several scans', async () => {
    const store = open(dataDir());
    for (const id of ['s-1', 's-2', 's-3']) await create(store, record(id));
    expect(store.getResults('s-1')).toBeUndefined();
    store.putResults('s-1', 'UNKNOWN', { status: 'partial', threats: [] });
    store.putResults('s-1', 'ALARM', { status: 'final', threats: [{ id: 't-1', probability: 0.93 }] });
    store.putResults('s-2', 'CLEAR', { status: 'final', threats: [] });
    expect(store.getResults('s-1')).toEqual({ status: 'final', threats: [{ id: 't-1', probability: 0.93 }] });
    expect(store.machineDecisionsOf(['s-1', 's-2', 's-3', 'nope'])).toEqual(
      new Map([
        ['s-1', 'ALARM'],
        ['s-2', 'CLEAR'],
      ]),
    );
    expect(store.machineDecisionsOf([])).toEqual(new Map());
  });

  it('stores and replaces tile embeddings bit for bit', async () => {
    const store = open(dataDir());
    await create(store, record('s-1'));
    expect(store.getEmbeddings('s-1')).toBeUndefined();
    // A view at an odd offset into a larger buffer: only its floats are stored.
    const backing = new Float32Array([9, 0.1, -2.5, 1e-7, Math.PI, 9]);
    const data = backing.subarray(1, 5);
    store.putEmbeddings('s-1', { model: 'goods-v0', dim: 2, tiles: [[0, 256, 0, 64, 10]], data: new Float32Array([1, 2]) });
    store.putEmbeddings('s-1', {
      model: 'goods-v1',
      dim: 2,
      tiles: [
        [0, 256, 0, 64, 900],
        [128, 256, 0, 64, 40],
      ],
      data,
    });
    const e = store.getEmbeddings('s-1')!;
    expect(e.model).toBe('goods-v1');
    expect(e.dim).toBe(2);
    expect(e.tiles).toEqual([
      [0, 256, 0, 64, 900],
      [128, 256, 0, 64, 40],
    ]);
    expect(e.data).toBeInstanceOf(Float32Array);
    expect(Array.from(e.data)).toEqual(Array.from(data));
  });

  it('stores, lists (oldest first, then id), replaces and deletes reference categories', () => {
    const store = open(dataDir());
    expect(store.listReferences()).toEqual([]);
    store.putReference(reference('ref-b', '2026-11-25T10:00:00.000Z'));
    store.putReference(reference('ref-a', '2026-11-25T10:00:00.000Z'));
    store.putReference(reference('ref-0', '2026-11-25T11:00:00.000Z'));
    store.putReference({ ...reference('ref-b', '2026-11-25T10:00:00.000Z'), name: 'renamed', samples: 13 });
    const listed = store.listReferences();
    expect(listed.map((r) => r.id)).toEqual(['ref-a', 'ref-b', 'ref-0']);
    expect(listed[1]).toEqual({ ...reference('ref-b', '2026-11-25T10:00:00.000Z'), name: 'renamed', samples: 13 });
    expect(listed[1].prototype).toBeInstanceOf(Float32Array);
    expect(store.deleteReference('ref-a')).toBe(true);
    expect(store.deleteReference('ref-a')).toBe(false);
    expect(store.listReferences().map((r) => r.id)).toEqual(['ref-b', 'ref-0']);
  });

  it('appends decisions with increasing ids and lists them per scan, oldest first', async () => {
    const store = open(dataDir());
    for (const id of ['s-1', 's-2', 's-3']) await create(store, record(id));
    const d1 = store.putDecision(decision('s-1', 'inspect', '2026-11-25T10:01:00.000Z'));
    const d2 = store.putDecision(decision('s-2', 'clear', '2026-11-25T10:02:00.000Z'));
    const d3 = store.putDecision(decision('s-1', 'clear', '2026-11-25T10:03:00.000Z'));
    expect(d1).toEqual({ id: d1.id, ...decision('s-1', 'inspect', '2026-11-25T10:01:00.000Z') });
    expect(d2.id).toBeGreaterThan(d1.id);
    expect(d3.id).toBeGreaterThan(d2.id);
    expect(store.listDecisions('s-1')).toEqual([d1, d3]);
    expect(store.listDecisions('s-3')).toEqual([]);
    expect(store.listDecisionsOf(['s-1', 's-2', 's-3'])).toEqual(
      new Map([
        ['s-1', [d1, d3]],
        ['s-2', [d2]],
        ['s-3', []],
      ]),
    );
    expect(store.listDecisionsOf([])).toEqual(new Map());
  });

  it('refuses a decision whose verdict is neither clear nor inspect', async () => {
    const store = open(dataDir());
    await create(store, record('s-1'));
    expect(codeOf(() => store.putDecision({ ...decision('s-1', 'clear', '2026-11-25T10:00:00.000Z'), verdict: 'maybe' as never }))).toBe(
      'SCANLINE_ERR_STORAGE_WRITE',
    );
    expect(store.listDecisions('s-1')).toEqual([]);
  });

  it('deletes a scan with its results, embeddings, decisions and files; other scans keep theirs', async () => {
    const store = open(dataDir());
    for (const id of ['s-1', 's-2']) {
      await create(store, record(id));
      store.putResults(id, 'CLEAR', { status: 'final' });
      store.putEmbeddings(id, { model: 'goods-v1', dim: 1, tiles: [[0, 256, 0, 64, 1]], data: new Float32Array([1]) });
      store.putDecision(decision(id, 'clear', '2026-11-25T10:00:00.000Z'));
      await store.putScanImage(id, 'preview.png', new Uint8Array([1]));
    }
    await store.deleteScan('s-1');
    expect(store.getScan('s-1')).toBeUndefined();
    expect(store.getResults('s-1')).toBeUndefined();
    expect(store.getEmbeddings('s-1')).toBeUndefined();
    expect(store.listDecisions('s-1')).toEqual([]);
    expect(existsSync(store.scanDir('s-1'))).toBe(false);
    expect(store.getScan('s-2')).toBeDefined();
    expect(store.getResults('s-2')).toEqual({ status: 'final' });
    expect(store.getEmbeddings('s-2')).toBeDefined();
    expect(store.listDecisions('s-2')).toHaveLength(1);
  });
});

describe('ScanStore: lifecycle', () => {
  it('is writable while open; once closed every call is refused with a code and close is idempotent', () => {
    const store = ScanStore.open(dataDir(), undefined, { directIo: false });
    expect(store.isWritable()).toBe(true);
    store.close();
    store.close();
    expect(store.isWritable()).toBe(false);
    expect(codeOf(() => store.getScan('s-1'))).toBe('SCANLINE_ERR_STORAGE_WRITE');
    expect(codeOf(() => store.listScans())).toBe('SCANLINE_ERR_STORAGE_WRITE');
    expect(codeOf(() => store.putResults('s-1', 'CLEAR', {}))).toBe('SCANLINE_ERR_STORAGE_WRITE');
  });

  it('refuses a data directory it cannot create, with a code', () => {
    const dir = dataDir();
    writeFileSync(join(dir, 'file'), 'not a directory');
    expect(codeOf(() => ScanStore.open(join(dir, 'file', 'data')))).toBe('SCANLINE_ERR_STORAGE_WRITE');
  });
});

describe('ScanStore: schema versions', () => {
  it('creates the current version in an empty directory: migration 1 is the unversioned schema, object for object', () => {
    const fresh = dataDir();
    const { log, lines } = recordingLogger();
    ScanStore.open(fresh, log, { directIo: false }).close();
    const legacy = dataDir();
    unversionedDatabase(legacy, UNVERSIONED_SCHEMA);
    const now = inspect(fresh);
    expect(SCHEMA_VERSION).toBe(7);
    expect(now.version).toBe(SCHEMA_VERSION);
    expect(now.tables).toEqual(TABLES);
    expect(v1Only(now).schema).toEqual(inspect(legacy).schema);
    expect(existsSync(join(fresh, 'scans'))).toBe(true);
    expect(lines.filter((l) => l.level === 'info').map((l) => [l.obj, l.msg])).toEqual([[{ from: 0, to: 7, adopted: false }, 'scan database created']]);
  });

  it('opens the current version again without migrating or logging', () => {
    const dir = dataDir();
    ScanStore.open(dir, undefined, { directIo: false }).close();
    const { log, lines } = recordingLogger();
    ScanStore.open(dir, log, { directIo: false }).close();
    expect(lines).toEqual([]);
    expect(inspect(dir).version).toBe(SCHEMA_VERSION);
  });

  it('adopts a database from before schema versions and keeps every row of every table', async () => {
    const dir = dataDir();
    mkdirSync(join(dir, 'scans'));
    unversionedDatabase(dir, UNVERSIONED_SCHEMA, (db) => {
      db.prepare(
        `INSERT INTO scans (scan_id, portal_id, stream_id, state, pixels, energies, pitch_mm, line_rate_hz, lines, gaps, vehicle,
         declaration, started_at, ended_at, updated_at, reason) VALUES ('old-1', 'lane-1', 1, 'completed', 64, 2, 4.4, 500, 1200,
         '[[10,20]]', '{"kind":"truck"}', '{"hsCodes":["2402"]}', '2026-11-20T08:00:00.000Z', '2026-11-20T08:00:03.000Z',
         '2026-11-20T08:00:03.000Z', NULL)`,
      ).run();
      db.prepare(`INSERT INTO scan_results VALUES ('old-1', 'ALARM', '{"status":"final"}', '2026-11-20T08:00:05.000Z')`).run();
      db.prepare(`INSERT INTO scan_embeddings VALUES ('old-1', 'goods-v1', 2, '[[0,256,0,64,500]]', ?)`).run(Buffer.from(new Float32Array([0.5, -1]).buffer));
      db.prepare(
        `INSERT INTO scan_decisions (scan_id, operator_id, verdict, comment, suggestions, machine_decision, scan_state, decided_at)
         VALUES ('old-1', 'officer-1', 'inspect', NULL, '{}', 'ALARM', 'completed', '2026-11-20T08:01:00.000Z')`,
      ).run();
      db.prepare(
        `INSERT INTO reference_categories VALUES ('ref-1', 'bananas', '["0803"]', 'goods-v1', 0.7, ?, 3, '[]', '{"min":0.8,"mean":0.9}',
         '2026-11-20T07:00:00.000Z')`,
      ).run(Buffer.from(new Float32Array([1, 0]).buffer));
    });
    const { log, lines } = recordingLogger();
    const store = open(dir, log);
    expect(lines.filter((l) => l.level === 'info').map((l) => [l.obj, l.msg])).toEqual([
      [{ from: 0, to: 7, adopted: true }, 'scan database from before schema versions adopted and upgraded'],
    ]);
    expect(store.getScan('old-1')).toEqual({
      scanId: 'old-1',
      portalId: 'lane-1',
      streamId: 1,
      state: 'completed',
      detector: { pixels: 64, energies: 2, pitchMm: 4.4, lineRateHz: 500 },
      lines: 1200,
      gaps: [[10, 20]],
      vehicle: { kind: 'truck' },
      declaration: { hsCodes: ['2402'] },
      startedAt: '2026-11-20T08:00:00.000Z',
      endedAt: '2026-11-20T08:00:03.000Z',
      updatedAt: '2026-11-20T08:00:03.000Z',
      reason: null,
    });
    expect(store.getResults('old-1')).toEqual({ status: 'final' });
    expect(Array.from(store.getEmbeddings('old-1')!.data)).toEqual([0.5, -1]);
    expect(store.listDecisions('old-1')).toMatchObject([{ id: 1, verdict: 'inspect', operatorId: 'officer-1' }]);
    expect(store.listReferences().map((r) => [r.id, Array.from(r.prototype)])).toEqual([['ref-1', [1, 0]]]);
    // New rows go on as before: decision ids continue after the old ones.
    expect(store.putDecision(decision('old-1', 'clear', '2026-11-25T10:00:00.000Z')).id).toBe(2);
    store.close();
    stores.splice(stores.indexOf(store), 1);
    const reference = dataDir();
    unversionedDatabase(reference, UNVERSIONED_SCHEMA);
    expect(inspect(dir).tables).toEqual(TABLES);
    expect(v1Only(inspect(dir))).toEqual({ ...inspect(reference), version: SCHEMA_VERSION });
  });

  it('adopts a database of an early release that had only the first tables, and adds the others', async () => {
    const dir = dataDir();
    // Releases of that time wrote scans and scan_results only (embeddings, reference categories and decisions came
    // later).
    const early = UNVERSIONED_SCHEMA.slice(0, UNVERSIONED_SCHEMA.indexOf('-- Goods-model embeddings'));
    unversionedDatabase(dir, early, (db) => {
      db.prepare(
        `INSERT INTO scans (scan_id, portal_id, stream_id, state, pixels, energies, pitch_mm, line_rate_hz, started_at, updated_at)
         VALUES ('early-1', 'lane-1', 1, 'receiving', 64, 2, 4.4, 500, '2026-11-01T08:00:00.000Z', '2026-11-01T08:00:00.000Z')`,
      ).run();
    });
    expect(inspect(dir).tables).toEqual(['scan_results', 'scans']);
    const store = open(dir);
    // The row is kept (left receiving by the process that wrote it, for the gateway's recovery to take over).
    expect(store.getScan('early-1')).toMatchObject({ state: 'receiving', lines: 0, gaps: [] });
    expect(store.openScans().map((r) => r.scanId)).toEqual(['early-1']);
    expect(store.listReferences()).toEqual([]);
    await create(store, record('new-1'));
    expect(store.putDecision(decision('new-1', 'clear', '2026-11-25T10:00:00.000Z')).id).toBe(1);
    store.close();
    stores.splice(stores.indexOf(store), 1);
    expect(inspect(dir)).toMatchObject({ version: SCHEMA_VERSION, tables: TABLES });
  });

  it('refuses a database written by a newer release with a code, and leaves it unchanged', () => {
    const dir = dataDir();
    ScanStore.open(dir, undefined, { directIo: false }).close();
    const db = new Database(join(dir, 'scanline.db'));
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.exec('CREATE TABLE scan_tags (scan_id TEXT, tag TEXT)');
    db.close();
    const before = readFileSync(join(dir, 'scanline.db'));
    let err: unknown;
    try {
      ScanStore.open(dir, undefined, { directIo: false });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ScanlineError);
    expect(err).toMatchObject({ code: 'SCANLINE_ERR_STORAGE_SCHEMA', details: { version: SCHEMA_VERSION + 1, supported: SCHEMA_VERSION } });
    expect((err as Error).message).toContain(`schema version ${SCHEMA_VERSION + 1}`);
    expect(readFileSync(join(dir, 'scanline.db')).equals(before)).toBe(true);
    expect(inspect(dir).version).toBe(SCHEMA_VERSION + 1);
  });

  it('refuses an unversioned database whose tables are named like Scanline’s but differ, and leaves it unchanged', () => {
    const dir = dataDir();
    unversionedDatabase(dir, 'CREATE TABLE scans (id INTEGER PRIMARY KEY, payload TEXT)');
    let err: unknown;
    try {
      ScanStore.open(dir, undefined, { directIo: false });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'SCANLINE_ERR_STORAGE_SCHEMA', details: { version: 0, tables: ['scans'] } });
    expect(inspect(dir)).toMatchObject({ version: 0, tables: ['scans'] });
  });

  it('rolls a migration that fails back whole: the database stays at its version, nothing half created', () => {
    const dir = dataDir();
    // Not a Scanline table, but it takes the name of one of migration 1's indexes: CREATE INDEX fails after the
    // migration already created tables.
    unversionedDatabase(dir, 'CREATE TABLE scans_portal (x INTEGER)');
    expect(codeOf(() => ScanStore.open(dir, undefined, { directIo: false }))).toBe('SCANLINE_ERR_STORAGE_WRITE');
    expect(inspect(dir)).toMatchObject({ version: 0, tables: ['scans_portal'] });
  });
});

describe('ScanStore: seals written in batches', () => {
  it('recordSeals writes a batch in one transaction, skips a scan whose record is gone, and writes nothing of a refused batch', async () => {
    const store = open(dataDir());
    try {
      await create(store, record('seal-a'));
      await create(store, record('seal-b'));
      const sha = (c: string) => c.repeat(64);
      store.recordSeals([
        { scanId: 'seal-a', sha256: sha('a') },
        { scanId: 'seal-gone', sha256: sha('c') },
        { scanId: 'seal-b', sha256: sha('b') },
      ]);
      expect([store.sealOf('seal-a'), store.sealOf('seal-b'), store.sealOf('seal-gone')]).toEqual([sha('a'), sha('b'), null]);
      expect(() => store.recordSeals([])).not.toThrow();
      await create(store, record('seal-c'));
      // A refused batch (a value SQLite cannot bind, standing in for a failed write) leaves every record of it unsealed.
      expect(
        codeOf(() =>
          store.recordSeals([
            { scanId: 'seal-c', sha256: sha('d') },
            { scanId: 'seal-a', sha256: {} as unknown as string },
          ]),
        ),
      ).toBe('SCANLINE_ERR_STORAGE_WRITE');
      expect([store.sealOf('seal-c'), store.sealOf('seal-a')]).toEqual([null, sha('a')]);
    } finally {
      await store.close();
    }
  });
});

describe('ScanStore: deferred commits (the per-scan writes, synced off the JS thread)', () => {
  /** The connection's synchronous setting as SQLite has it now (2 = FULL). */
  function synchronousOf(store: ScanStore): number {
    return ((store as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true }) as number) ?? -1;
  }

  it('commits at once, visible to another connection; durable() syncs the WAL once for every caller; other writes stay FULL', async () => {
    const dir = dataDir();
    const store = open(dir);
    expect(synchronousOf(store)).toBe(2);
    await create(store, record('d-1'));
    store.updateScan('d-1', { state: 'completed', lines: 64 });
    store.putResults('d-1', 'CLEAR', { status: 'final' });
    store.putEmbeddings('d-1', { model: 'goods-v1', dim: 2, tiles: [[0, 0, 64, 0, 64]], data: new Float32Array([0.5, -1]) });
    store.recordSeals([{ scanId: 'd-1', sha256: 'e'.repeat(64) }]);
    expect(store.walSyncStats.deferredCommits).toBe(5);
    // The connection is back at FULL after each of them.
    expect(synchronousOf(store)).toBe(2);
    // Committed: another connection (a process reading the same file) sees every row before any sync.
    const reader = new Database(join(dir, 'scanline.db'), { readonly: true });
    try {
      expect(reader.prepare('SELECT state, lines, raw_sha256 FROM scans WHERE scan_id = ?').get('d-1')).toEqual({
        state: 'completed',
        lines: 64,
        raw_sha256: 'e'.repeat(64),
      });
      expect(reader.prepare('SELECT decision FROM scan_results WHERE scan_id = ?').get('d-1')).toEqual({ decision: 'CLEAR' });
    } finally {
      reader.close();
    }
    expect(store.walSyncStats.syncs).toBe(0);
    await Promise.all([store.durable(), store.durable(), store.durable()]);
    expect(store.walSyncStats.syncs).toBe(1);
    expect(store.walSyncStats.syncSeconds.count).toBe(1);
    // Nothing new: no sync at all.
    await store.durable();
    expect(store.walSyncStats.syncs).toBe(1);
    // A person's act is not deferred: on disk when putDecision returns.
    store.putDecision(decision('d-1', 'clear', '2026-12-08T10:00:00.000Z'));
    expect(store.walSyncStats.deferredCommits).toBe(5);
    await store.durable();
    expect(store.walSyncStats.syncs).toBe(1);
  });

  it('each deferred write runs at NORMAL (no fsync in its commit), however many came before', async () => {
    const store = open(dataDir());
    const db = (store as unknown as { db: Database.Database }).db;
    const insert = (store as unknown as { insert: Database.Statement }).insert;
    const seen: number[] = [];
    const run = insert.run.bind(insert);
    insert.run = ((...args: unknown[]) => {
      seen.push(db.pragma('synchronous', { simple: true }) as number);
      return run(...(args as [never]));
    }) as typeof insert.run;
    for (const id of ['n-1', 'n-2', 'n-3']) await create(store, record(id));
    // 1 = NORMAL; the first one too (a PRAGMA prepared once would have left it at FULL).
    expect(seen).toEqual([1, 1, 1]);
    expect(synchronousOf(store)).toBe(2);
  });

  it('after a failed WAL sync the store is not writable and nothing more is called durable', async () => {
    const store = open(dataDir());
    await create(store, record('f-1'));
    (store as unknown as { walSync: { fail(e: unknown): unknown } }).walSync.fail(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    expect(store.isWritable()).toBe(false);
    await expect(store.durable()).rejects.toMatchObject({ code: 'SCANLINE_ERR_STORAGE_WRITE' });
    expect(store.walSyncStats.failures).toBe(1);
  });

  it('a write that fails is not left at NORMAL: the connection is FULL again and the refusal has its code', async () => {
    const store = open(dataDir());
    await create(store, record('d-2'));
    expect(codeOf(() => store.createScan(record('d-2')))).toBe('SCANLINE_ERR_STORAGE_WRITE');
    expect(synchronousOf(store)).toBe(2);
    await store.durable();
  });

  it('close() syncs the deferred commits a caller still waits for, and they are there after a new open', async () => {
    const dir = dataDir();
    const store = ScanStore.open(dir, undefined, { directIo: false });
    await create(store, record('d-3'));
    store.putResults('d-3', 'UNKNOWN', { status: 'in-progress' });
    const waiting = store.durable();
    store.close();
    await expect(waiting).resolves.toBeUndefined();
    await expect(store.durable()).resolves.toBeUndefined();
    const again = open(dir);
    expect(again.getResults('d-3')).toEqual({ status: 'in-progress' });
  });
});
