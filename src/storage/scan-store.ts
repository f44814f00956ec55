/**
 * Scan records in an embedded SQLite database (`<dataDir>/scanline.db`, WAL; its schema and the migrations to it in
 * ./migrations.ts) and raw scan lines as files (`<dataDir>/scans/<scanId>/raw.u16`, line-major u16 little-endian,
 * exactly the wire payloads in line order).
 *
 * Threads: better-sqlite3 is synchronous; every statement here is a single-row read or write of a few hundred
 * bytes (well under a millisecond), issued per scan event, never per slice. Raw lines go through RawWriter,
 * which uses asynchronous positional writes.
 *
 * Durability: a write that returns is committed. Most are on stable storage when they return (synchronous = FULL);
 * the machine's own per-scan writes (createScan, updateScan, putResults, putEmbeddings, recordSeals) are on stable
 * storage once durable() resolves, and survive a crash of the process at once (./wal-sync.ts). Each says so.
 */
import Database from 'better-sqlite3';
import {
  close as closeFd,
  closeSync,
  constants as fsConstants,
  fdatasync,
  fdatasyncSync,
  fsync,
  fsyncSync,
  mkdirSync,
  openSync,
  write as writeFd,
} from 'node:fs';
import { type FileHandle, open as openHandle, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join, resolve } from 'node:path';
import { ScanlineError } from '../errors/index.js';
import type { DecisionRecord, ScanState } from '../protocol/index.js';
import type { Logger } from '../log/index.js';
import { type DecisionRow, decisionOf } from './decision-rows.js';
import { fileSha256 } from './integrity.js';
import { migrate, SCHEMA_VERSION, type MigrationOutcome } from './migrations.js';
import { JOURNAL_FILE, ScanJournalWriter } from './scan-journal.js';
import { isDiskFull, type SpaceReserve, withReserve } from './disk-space.js';
import { WalSync, type WalSyncStats } from './wal-sync.js';
import { WalCheckpointer, type WalCheckpointStats } from './wal-checkpointer.js';

export type { ScanState };
/** One officer's decision as stored (the wire's DecisionRecord, src/protocol). */
export type StoredDecision = DecisionRecord;
/** What ending a scan writes into its record (ScanStore.endScan). */
export type ScanEndPatch = Pick<ScanRecord, 'state' | 'lines' | 'gaps' | 'endedAt' | 'reason'>;

export interface DetectorGeometry {
  pixels: number;
  energies: 1 | 2;
  pitchMm: number;
  lineRateHz: number;
}

export interface ScanRecord {
  scanId: string;
  portalId: string;
  streamId: number;
  state: ScanState;
  detector: DetectorGeometry;
  /** Lines received so far (1 + highest line), or the final line count once completed. */
  lines: number;
  /** Line ranges [start, end) that never arrived (final once completed). */
  gaps: Array<[number, number]>;
  vehicle: Record<string, unknown> | null;
  declaration: { hsCodes: string[]; [k: string]: unknown } | null;
  /** ISO 8601 times. */
  startedAt: string;
  endedAt: string | null;
  updatedAt: string;
  reason: string | null;
  /** Where the lines came from: absent or null for a portal's stream; set for an imported image. */
  origin?: ScanOrigin | null;
}

/** Where an imported scan came from (docs/dicos.md, "Imports"); stored with the scan, shown with it, never changed. */
export interface ScanOrigin {
  source: 'dicos' | 'file';
  /** The sending station as the file names it (DICOS Station Name, the sidecar's station), or null. */
  station: string | null;
  /** Who sent it: the signed-in user or the owner of the token (`user:NAME`), or the DICOS peer (`dicos:AE_TITLE`). */
  receivedBy: string;
  /** When the last byte of the (last) file arrived, ISO 8601. */
  receivedAt: string;
  /** DICOS: Scan (Study) Instance UID and the SOP Instance UID of each image, high energy first. */
  studyInstanceUid: string | null;
  sopInstanceUids: string[];
  /** DICOS: SOP class and transfer syntax of the first image. */
  sopClassUid: string | null;
  transferSyntaxUid: string | null;
  /** The object of inspection's id as the file gives it (DICOS OOI ID), or null. */
  ooiId: string | null;
  /** The imported files' names (the watched folder). */
  files?: string[];
}

/** One set of DICOS objects queued for a destination (dicos_push_queue). */
export interface StoredPush {
  id: number;
  scanId: string;
  destination: string;
  /** `scan` (the DX images and the MACHINE report) or `decision:<id>` (that decision's OPERATOR report). */
  item: string;
  state: 'pending' | 'sent';
  attempts: number;
  nextAttemptAt: string;
  lastError: string | null;
  createdAt: string;
  sentAt: string | null;
}

interface PushRow {
  id: number;
  scan_id: string;
  destination: string;
  item: string;
  state: 'pending' | 'sent';
  attempts: number;
  next_attempt_at: string;
  last_error: string | null;
  created_at: string;
  sent_at: string | null;
}

function pushFromRow(r: PushRow): StoredPush {
  return {
    id: r.id,
    scanId: r.scan_id,
    destination: r.destination,
    item: r.item,
    state: r.state,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    lastError: r.last_error,
    createdAt: r.created_at,
    sentAt: r.sent_at,
  };
}

/** An ended scan as the retention policy sees it (ScanStore.retentionRows). */
export interface RetentionRow {
  scanId: string;
  portalId: string;
  state: ScanState;
  /** ISO time it ended (or was last updated). */
  endedAt: string;
  legalHold: boolean;
  rawSha256: string | null;
  /** The machine's final decision (ALARM, CLEAR, UNKNOWN), null without results. */
  machineDecision: string | null;
  /** Ids of the officers' decisions on it. */
  decisionIds: number[];
  /** Status of its stored results report: 'in-progress' while scored (or left unscored by a stop), 'final', or null. */
  resultsStatus: string | null;
}

export interface ListScansQuery {
  limit?: number;
  portalId?: string;
  state?: ScanState;
  /** Only scans started strictly before this ISO time (for paging back in history). */
  before?: string;
}

interface ScanRow {
  scan_id: string;
  portal_id: string;
  stream_id: number;
  state: ScanState;
  pixels: number;
  energies: number;
  pitch_mm: number;
  line_rate_hz: number;
  lines: number;
  gaps: string;
  vehicle: string | null;
  declaration: string | null;
  started_at: string;
  ended_at: string | null;
  updated_at: string;
  reason: string | null;
  origin: string | null;
}

/**
 * Tile embeddings of one scan: `tiles[i]` = [line, lines, pixel, pixels, goods probability x 1000] of row i of `data`
 * (tiles x dim floats).
 */
export interface ScanEmbeddings {
  model: string;
  dim: number;
  tiles: Array<[number, number, number, number, number]>;
  data: Float32Array;
}

/** A stored reference category (the shape of src/results ReferenceCategory). */
export interface StoredReference {
  id: string;
  name: string;
  hsCodes: string[];
  model: string;
  minSimilarity: number;
  prototype: Float32Array;
  samples: number;
  sources: Array<{ scanId: string; lineStart: number; lineEnd: number; pixelStart: number; pixelEnd: number; tiles: number }>;
  sampleSimilarity: { min: number; mean: number };
  createdAt: string;
  /** Who proposed the category and who approved it (the same person when references.approvals is 1); null before four eyes existed. */
  proposedBy: string | null;
  approvedBy: string | null;
}

/** A proposed change of the reference library, waiting for (or decided by) a second supervisor. */
export interface StoredReferenceProposal {
  id: number;
  action: 'enrol' | 'delete';
  referenceId: string;
  /** The enrolment request (action enrol), as it was proposed; null for a deletion. */
  request: Record<string, unknown> | null;
  state: 'pending' | 'approved' | 'rejected';
  proposedBy: string;
  proposedAt: string;
  decidedBy: string | null;
  decidedAt: string | null;
  reason: string | null;
}

interface ProposalRow {
  id: number;
  action: 'enrol' | 'delete';
  reference_id: string;
  request: string | null;
  state: 'pending' | 'approved' | 'rejected';
  proposed_by: string;
  proposed_at: string;
  decided_by: string | null;
  decided_at: string | null;
  reason: string | null;
}

const proposalOf = (r: ProposalRow): StoredReferenceProposal => ({
  id: r.id,
  action: r.action,
  referenceId: r.reference_id,
  request: r.request === null ? null : (JSON.parse(r.request) as Record<string, unknown>),
  state: r.state,
  proposedBy: r.proposed_by,
  proposedAt: r.proposed_at,
  decidedBy: r.decided_by,
  decidedAt: r.decided_at,
  reason: r.reason,
});

/** Names of image files a scan directory may hold besides raw.u16 (see putScanImage). */
export type ScanImageName = 'preview.png';

function floatsOf(blob: Buffer): Float32Array {
  // Copy: the Buffer may be a view into a pooled allocation with an unaligned offset.
  const out = new Float32Array(blob.byteLength / 4);
  new Uint8Array(out.buffer).set(blob);
  return out;
}

function fromRow(r: ScanRow): ScanRecord {
  return {
    scanId: r.scan_id,
    portalId: r.portal_id,
    streamId: r.stream_id,
    state: r.state,
    detector: { pixels: r.pixels, energies: r.energies as 1 | 2, pitchMm: r.pitch_mm, lineRateHz: r.line_rate_hz },
    lines: r.lines,
    gaps: JSON.parse(r.gaps) as Array<[number, number]>,
    vehicle: r.vehicle === null ? null : (JSON.parse(r.vehicle) as Record<string, unknown>),
    declaration: r.declaration === null ? null : (JSON.parse(r.declaration) as ScanRecord['declaration']),
    startedAt: r.started_at,
    endedAt: r.ended_at,
    updatedAt: r.updated_at,
    reason: r.reason,
    // A portal's scan has no origin field at all (as before migration 6); an import's has it.
    ...(r.origin ? { origin: JSON.parse(r.origin) as ScanOrigin } : {}),
  };
}

const writeAt = promisify(writeFd) as unknown as (fd: number, b: Uint8Array, off: number, len: number, pos: number) => Promise<number>;
const fsyncFd = promisify(fsync);
const fdatasyncFd = promisify(fdatasync);
const closeFdAsync = promisify(closeFd);

/**
 * Alignment of direct (O_DIRECT) writes, bytes: file offset, length and memory address must all be multiples of the
 * device's logical block size; 4096 covers 512-byte and 4 KiB sectors.
 */
export const DIRECT_IO_ALIGNMENT = 4096;

export interface RawWriterOptions {
  /**
   * Write with O_DIRECT (bypassing the page cache) when this OS has it, the line size is a multiple of
   * DIRECT_IO_ALIGNMENT and the filesystem accepts it; otherwise buffered. Falls back to buffered writes for good,
   * for this file, the first time the kernel refuses a direct write (EINVAL).
   */
  directIo: boolean;
}

/**
 * Writes raw lines of one scan at their line positions. Opening is synchronous (a scan is accepted in the same
 * tick as its scan.start, so pipelined slices find it); writes are asynchronous and queued, one in flight.
 *
 * Direct I/O: the gateway takes up to ~260 MB/s of raw lines (32 portals x 1000 lines/s x 2048 px x 2 energies),
 * written once and rarely read back soon. Through the page cache every MB costs CPU for fresh cache pages, which
 * O_DIRECT does not pay (bench/RESULTS.md, 'Raw archive with O_DIRECT'), and an hour of scans evicts the database
 * and model pages. While `direct` is true, callers must pass memory from an aligned allocation (src/addon
 * alignedBuffer) with a byte offset and length that are multiples of DIRECT_IO_ALIGNMENT; whole lines satisfy the
 * length and file offset because open() only goes direct when bytesPerLine is such a multiple.
 */
export class RawWriter {
  private tail: Promise<void> = Promise.resolve();
  private failed: ScanlineError | null = null;
  private closed = false;
  #direct: boolean;
  /** Direct writes the kernel refused (EINVAL) before this file switched to buffered writes: 0 or 1. */
  directFallbacks = 0;

  private constructor(
    private fd: number,
    readonly path: string,
    readonly bytesPerLine: number,
    direct: boolean,
  ) {
    this.#direct = direct;
  }

  /** True while writes bypass the page cache; see the class comment for what callers must then pass. */
  get direct(): boolean {
    return this.#direct;
  }

  /**
   * Opens the raw file of a scan for writing: a new one (truncated), or with `existing` one whose lines are kept (a
   * scan recovered after a crash goes on writing into it).
   */
  static open(path: string, bytesPerLine: number, options: RawWriterOptions = { directIo: false }, existing = false): RawWriter {
    const O_DIRECT = (fsConstants as Record<string, number | undefined>).O_DIRECT;
    if (options.directIo && O_DIRECT !== undefined && bytesPerLine % DIRECT_IO_ALIGNMENT === 0) {
      try {
        const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | (existing ? 0 : fsConstants.O_TRUNC) | O_DIRECT;
        return new RawWriter(openSync(path, flags, 0o644), path, bytesPerLine, true);
      } catch (err) {
        // tmpfs and some network filesystems refuse O_DIRECT at open (EINVAL): buffered writes below.
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') {
          throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `cannot create ${path}: ${(err as Error).message}`, {}, { cause: err });
        }
      }
    }
    try {
      return new RawWriter(openSync(path, existing ? fsConstants.O_WRONLY | fsConstants.O_CREAT : 'w', 0o644), path, bytesPerLine, false);
    } catch (err) {
      throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `cannot create ${path}: ${(err as Error).message}`, {}, { cause: err });
    }
  }

  /**
   * Switches this file to buffered writes (reopening it without O_DIRECT, contents kept). For callers that cannot
   * provide aligned memory; a no-op when already buffered.
   */
  useBufferedWrites(): void {
    if (!this.#direct) return;
    const fd = openSync(this.path, 'r+');
    closeFd(this.fd, () => undefined);
    this.fd = fd;
    this.#direct = false;
  }

  /**
   * Writes `data` (whole lines) at line `firstLine`. The writer keeps a reference to `data` until the returned
   * promise settles: the caller must not reuse the buffer before then.
   */
  write(firstLine: number, data: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `${this.path} is closed`));
    const position = firstLine * this.bytesPerLine;
    const run = async (): Promise<void> => {
      if (this.failed) throw this.failed;
      try {
        let done = 0;
        while (done < data.byteLength) {
          try {
            done += await writeAt(this.fd, data, done, data.byteLength - done, position + done);
          } catch (err) {
            // A filesystem may accept O_DIRECT at open and refuse the writes, or the memory was not aligned:
            // carry on buffered rather than lose the archive.
            if (!this.#direct || (err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
            this.directFallbacks++;
            this.useBufferedWrites();
          }
        }
      } catch (err) {
        this.failed = new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `writing ${this.path} failed: ${(err as Error).message}`, {}, { cause: err });
        throw this.failed;
      }
    };
    this.tail = this.tail.then(run, run);
    return this.tail;
  }

  /**
   * Makes the writes that completed before this call durable (fdatasync; direct writes need it too, for the file
   * size and the device's write cache). Writes still in flight are not covered. Rejects with
   * SCANLINE_ERR_STORAGE_WRITE once a write or a sync failed.
   */
  async sync(): Promise<void> {
    if (this.failed) throw this.failed;
    if (this.closed) return;
    const fd = this.fd;
    try {
      await fdatasyncFd(fd);
    } catch (err) {
      // useBufferedWrites() swapped the descriptor meanwhile: the new one names the same file.
      if ((err as NodeJS.ErrnoException).code === 'EBADF' && this.fd !== fd && !this.closed) return this.sync();
      this.failed = new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `syncing ${this.path} failed: ${(err as Error).message}`, {}, { cause: err });
      throw this.failed;
    }
  }

  /**
   * Waits for queued writes, flushes them to disk (fsync unless `sync` is false; direct writes need it too, for the
   * file size and the device's write cache) and closes the file.
   */
  async close(sync = true): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.tail.catch(() => undefined);
      if (sync && !this.failed) await fsyncFd(this.fd);
    } finally {
      await closeFdAsync(this.fd);
    }
    if (this.failed) throw this.failed;
  }
}

export class ScanStore {
  readonly dataDir: string;
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly byId: Database.Statement;
  private readonly rawOptions: RawWriterOptions;
  private readonly walSync: WalSync;
  private closed = false;
  /**
   * Ends of scans whose record a full disk refused (endScan), by scan id, oldest first. Reads of a record (getScan,
   * hasScan, listScans) show them as written; retryPendingEnds writes them, close() tries once more. In memory only:
   * the scan's journal, synced before its end was told, lets the next start end it again if they are lost.
   */
  private readonly pendingEnds = new Map<string, ScanEndPatch>();
  /** Checkpoints off the JS thread, once started (startCheckpointer: the gateway; commands keep SQLite's own). */
  private checkpointer: WalCheckpointer | null = null;

  private constructor(
    dataDir: string,
    db: Database.Database,
    rawOptions: RawWriterOptions,
    private readonly log: Logger | null,
  ) {
    this.dataDir = dataDir;
    this.db = db;
    this.rawOptions = rawOptions;
    this.walSync = new WalSync(`${join(dataDir, 'scanline.db')}-wal`);
    this.insert = db.prepare(`INSERT INTO scans (scan_id, portal_id, stream_id, state, pixels, energies, pitch_mm,
      line_rate_hz, lines, gaps, vehicle, declaration, started_at, ended_at, updated_at, reason, origin)
      VALUES (@scan_id, @portal_id, @stream_id, @state, @pixels, @energies, @pitch_mm, @line_rate_hz, @lines, @gaps,
      @vehicle, @declaration, @started_at, @ended_at, @updated_at, @reason, @origin)`);
    this.byId = db.prepare('SELECT * FROM scans WHERE scan_id = ?');
  }

  /**
   * Opens (creating if needed) the store in `dataDir` and brings its database to SCHEMA_VERSION (./migrations.ts).
   * Scans left `receiving` by a previous process stay so (openScans() lists them for recovery). `options.directIo` (default true) is how raw files are opened (RawWriterOptions).
   * Throws SCANLINE_ERR_STORAGE_SCHEMA for a database this code does not know (left unchanged) and
   * SCANLINE_ERR_STORAGE_WRITE when the directory or the database cannot be opened or migrated.
   */
  static open(dataDir: string, log?: Logger, options: Partial<RawWriterOptions> = {}): ScanStore {
    const dir = resolve(dataDir);
    const path = join(dir, 'scanline.db');
    let db: Database.Database;
    try {
      mkdirSync(join(dir, 'scans'), { recursive: true });
      db = new Database(path);
    } catch (err) {
      throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `cannot open the scan database in ${dir}: ${(err as Error).message}`, {}, { cause: err });
    }
    let schema: MigrationOutcome;
    try {
      // Before anything writes to the file: a database this code does not know is refused unchanged.
      schema = migrate(db, path);
      db.pragma('journal_mode = WAL');
      // Every commit is on stable storage before it is answered. By default in the commit itself (FULL: in WAL mode
      // NORMAL would lose the last commits on a power cut); the machine's own per-scan writes (a scan's record at
      // its start and end, its results, embeddings and seal) commit without a sync and are made durable off the JS
      // thread by durable(), which whoever answers after them awaits (deferredCommit, ./wal-sync.ts).
      db.pragma('synchronous = FULL');
      // Rows deleted by retention are overwritten, not just unlinked from the b-tree: a deleted scan's results and
      // decisions cannot be read back from the database file.
      db.pragma('secure_delete = ON');
    } catch (err) {
      db.close();
      if (err instanceof ScanlineError) throw err;
      throw new ScanlineError(
        'SCANLINE_ERR_STORAGE_WRITE',
        `cannot bring the scan database ${path} to schema version ${SCHEMA_VERSION}: ${(err as Error).message}`,
        {},
        { cause: err },
      );
    }
    if (schema.from !== schema.to) {
      const what = schema.adopted
        ? 'scan database from before schema versions adopted and upgraded'
        : schema.from === 0
          ? 'scan database created'
          : 'scan database schema upgraded';
      log?.info({ from: schema.from, to: schema.to, adopted: schema.adopted }, what);
    }
    return new ScanStore(dir, db, { directIo: options.directIo ?? true }, log ?? null);
  }

  /**
   * Completed scans whose stored results report is still in progress: the gateway stopped after the scan ended and
   * before its tiles were all scored (the results stage stores an in-progress report at every scan's start and the
   * final one at its end). Their lines are all on disk; the gateway scores them again at start.
   */
  completedScansWithUnfinishedResults(): ScanRecord[] {
    this.assertOpen();
    return (
      this.db
        .prepare(
          `SELECT s.* FROM scans s JOIN scan_results r ON r.scan_id = s.scan_id
           WHERE s.state = 'completed' AND json_extract(r.report, '$.status') = 'in-progress' ORDER BY s.started_at`,
        )
        .all() as ScanRow[]
    ).map(fromRow);
  }

  /** Completed scans with lines but without a seal (a gateway stopped between a scan's end and its seal), oldest first. */
  unsealedCompletedScans(limit: number): ScanRecord[] {
    this.assertOpen();
    return (
      this.db.prepare(`SELECT * FROM scans WHERE state = 'completed' AND raw_sha256 IS NULL AND lines > 0 ORDER BY started_at LIMIT ?`).all(limit) as ScanRow[]
    ).map(fromRow);
  }

  /** The SHA-256 a completed scan was sealed with (recordSeals), or null when it was not sealed. */
  sealOf(scanId: string): string | null {
    this.assertOpen();
    const row = this.db.prepare('SELECT raw_sha256 FROM scans WHERE scan_id = ?').get(scanId) as { raw_sha256: string | null } | undefined;
    return row?.raw_sha256 ?? null;
  }

  /**
   * Scans still `receiving` in the record: left open by a gateway that stopped without closing them (a crash, a
   * kill -9, a power cut). Only the gateway's ingest stage, at start, may take them over (it recovers them from their
   * journals); other processes opening the store (the CLI) must leave them be, as that gateway may be running.
   */
  openScans(): ScanRecord[] {
    this.assertOpen();
    return (this.db.prepare(`SELECT * FROM scans WHERE state = 'receiving' ORDER BY started_at`).all() as ScanRow[]).map(fromRow);
  }

  scanDir(scanId: string): string {
    return join(this.dataDir, 'scans', scanId);
  }

  rawPath(scanId: string): string {
    return join(this.scanDir(scanId), 'raw.u16');
  }

  journalPath(scanId: string): string {
    return join(this.scanDir(scanId), JOURNAL_FILE);
  }

  /**
   * Opens a scan's journal: a new one (creating the scan's directory), or (`continueAfter`: its valid bytes) an
   * existing one to append to. Throws SCANLINE_ERR_STORAGE_WRITE.
   */
  openJournal(scanId: string, continueAfter: number | null = null): ScanJournalWriter {
    if (continueAfter === null) {
      try {
        mkdirSync(this.scanDir(scanId), { recursive: true });
      } catch (err) {
        throw new ScanlineError(
          'SCANLINE_ERR_STORAGE_WRITE',
          `cannot create the directory of scan ${scanId}: ${(err as Error).message}`,
          { scanId },
          { cause: err },
        );
      }
    }
    return ScanJournalWriter.open(this.journalPath(scanId), continueAfter);
  }

  /** Reopens the raw file of a recovered scan for writing, its lines kept. */
  reopenRaw(scanId: string, bytesPerLine: number): RawWriter {
    return RawWriter.open(this.rawPath(scanId), bytesPerLine, this.rawOptions, true);
  }

  /**
   * Makes a new scan's directory entries (its directory, raw file and journal) durable: fsync of the scan directory
   * and of `scans/`. Once per scan, before its first acknowledgement. Rejects with SCANLINE_ERR_STORAGE_WRITE.
   */
  async syncScanDirectory(scanId: string): Promise<void> {
    for (const dir of [this.scanDir(scanId), join(this.dataDir, 'scans')]) {
      let handle: FileHandle | null = null;
      try {
        handle = await openHandle(dir, 'r');
        await handle.sync();
      } catch (err) {
        throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `cannot sync the directory ${dir}: ${(err as Error).message}`, { scanId }, { cause: err });
      } finally {
        await handle?.close().catch(() => undefined);
      }
    }
  }

  /**
   * fsyncs a scan's raw file, journal and directory and the scans/ directory, as they are now (recovery, before what
   * was read from them is acknowledged). Missing files are skipped. Throws SCANLINE_ERR_STORAGE_WRITE.
   */
  syncScanFilesSync(scanId: string): void {
    for (const path of [this.rawPath(scanId), this.journalPath(scanId), this.scanDir(scanId), join(this.dataDir, 'scans')]) {
      let fd: number | null = null;
      try {
        fd = openSync(path, 'r');
        fsyncSync(fd);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `cannot sync ${path}: ${(err as Error).message}`, { scanId }, { cause: err });
      } finally {
        if (fd !== null) closeSync(fd);
      }
    }
  }

  /**
   * Creates the record and the scan's directory, and opens its raw file for writing (synchronously). The record is a
   * deferred commit: on stable storage once durable() resolves (ingest awaits it before the scan's first ack).
   */
  createScan(record: ScanRecord): RawWriter {
    this.assertOpen();
    try {
      mkdirSync(this.scanDir(record.scanId), { recursive: true });
      this.deferredCommit(() => this.insert.run(this.toRow(record)));
    } catch (err) {
      throw new ScanlineError(
        'SCANLINE_ERR_STORAGE_WRITE',
        `cannot record scan ${record.scanId}: ${(err as Error).message}`,
        { scanId: record.scanId },
        { cause: err },
      );
    }
    return RawWriter.open(this.rawPath(record.scanId), record.detector.pixels * record.detector.energies * 2, this.rawOptions);
  }

  /** Changes a scan's record: a deferred commit (durable() before telling anyone of the change). */
  updateScan(scanId: string, patch: Partial<Pick<ScanRecord, 'state' | 'lines' | 'gaps' | 'endedAt' | 'reason'>>): void {
    this.assertOpen();
    const sets: string[] = ['updated_at = @updated_at'];
    const params: Record<string, unknown> = { scan_id: scanId, updated_at: new Date().toISOString() };
    if (patch.state !== undefined) {
      sets.push('state = @state');
      params.state = patch.state;
    }
    if (patch.lines !== undefined) {
      sets.push('lines = @lines');
      params.lines = patch.lines;
    }
    if (patch.gaps !== undefined) {
      sets.push('gaps = @gaps');
      params.gaps = JSON.stringify(patch.gaps);
    }
    if (patch.endedAt !== undefined) {
      sets.push('ended_at = @ended_at');
      params.ended_at = patch.endedAt;
    }
    if (patch.reason !== undefined) {
      sets.push('reason = @reason');
      params.reason = patch.reason;
    }
    try {
      const update = this.db.prepare(`UPDATE scans SET ${sets.join(', ')} WHERE scan_id = @scan_id`);
      this.deferredCommit(() => update.run(params));
    } catch (err) {
      throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `cannot update scan ${scanId}: ${(err as Error).message}`, { scanId }, { cause: err });
    }
  }

  /**
   * Ends a scan in its record (state, lines, gaps, end time, reason): a deferred commit, as updateScan. When the write
   * fails (a full disk, the database locked by another process past the busy timeout, an I/O error) the end is kept
   * in memory instead ('pending': reads show it, retryPendingEnds writes it later), since the scan's lines and
   * journal are already durable and the journal proves its end to the next start. Throws only when the store is
   * closed (SCANLINE_ERR_STORAGE_WRITE).
   */
  endScan(scanId: string, patch: ScanEndPatch): 'written' | 'pending' {
    this.assertOpen();
    try {
      this.updateScan(scanId, patch);
      return 'written';
    } catch (err) {
      this.pendingEnds.set(scanId, patch);
      this.log?.error({ err, scanId }, 'the end of a scan could not be written; it is kept and written again later');
      return 'pending';
    }
  }

  /** Scans whose end waits for room on the disk (endScan). */
  get pendingEndCount(): number {
    return this.pendingEnds.size;
  }

  /**
   * Writes the ends a full disk refused (endScan), oldest first, each a deferred commit: call durable() after. Stops
   * at the first the disk refuses again; one refused for another reason is logged and tried again next time. Returns
   * the scan ids written. JS thread.
   */
  retryPendingEnds(): string[] {
    const written: string[] = [];
    for (const [scanId, patch] of this.pendingEnds) {
      try {
        this.updateScan(scanId, patch);
      } catch (err) {
        if (isDiskFull(err)) break;
        this.log?.error({ err, scanId }, 'writing the end of a scan failed; it is tried again later');
        continue;
      }
      this.pendingEnds.delete(scanId);
      written.push(scanId);
    }
    return written;
  }

  /** A record as stored, with its end if that waits for room on the disk (endScan). */
  private recordOf(row: ScanRow): ScanRecord {
    const record = fromRow(row);
    const end = this.pendingEnds.get(record.scanId);
    return end ? { ...record, ...end } : record;
  }

  getScan(scanId: string): ScanRecord | undefined {
    this.assertOpen();
    const row = this.byId.get(scanId) as ScanRow | undefined;
    return row ? this.recordOf(row) : undefined;
  }

  hasScan(scanId: string): boolean {
    return this.getScan(scanId) !== undefined;
  }

  listScans(query: ListScansQuery = {}): ScanRecord[] {
    this.assertOpen();
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: Math.min(Math.max(query.limit ?? 50, 1), 1000) };
    if (query.portalId !== undefined) {
      where.push('portal_id = @portal_id');
      params.portal_id = query.portalId;
    }
    if (query.state !== undefined) {
      if (this.pendingEnds.size === 0) where.push('state = @state');
      else {
        // A scan whose end waits for room (endScan) is stored as receiving: filtered by the state it ended in.
        where.push(
          '((state = @state AND scan_id NOT IN (SELECT value FROM json_each(@pending))) OR scan_id IN (SELECT value FROM json_each(@pendingInState)))',
        );
        params.pending = JSON.stringify([...this.pendingEnds.keys()]);
        params.pendingInState = JSON.stringify([...this.pendingEnds].filter(([, end]) => end.state === query.state).map(([id]) => id));
      }
      params.state = query.state;
    }
    if (query.before !== undefined) {
      where.push('started_at < @before');
      params.before = query.before;
    }
    const sql = `SELECT * FROM scans ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY started_at DESC, scan_id DESC LIMIT @limit`;
    return (this.db.prepare(sql).all(params) as ScanRow[]).map((r) => this.recordOf(r));
  }

  /**
   * Seals a completed scan: digestRaw, then recordSeals for it alone (a deferred commit, durable once durable()
   * resolves). Returns the SHA-256 for the audit trail's `scan.seal` entry (src/storage/integrity.ts). Throws
   * SCANLINE_ERR_STORAGE_READ or _WRITE.
   */
  async sealScan(scanId: string): Promise<string> {
    const sha256 = await this.digestRaw(scanId);
    this.recordSeals([{ scanId, sha256 }]);
    return sha256;
  }

  /**
   * The SHA-256 of a completed scan's raw file, read and hashed off the JS thread (integrity.ts fileSha256). Throws
   * SCANLINE_ERR_STORAGE_READ when the file is missing or cannot be read.
   */
  async digestRaw(scanId: string): Promise<string> {
    let sha: string | null;
    try {
      sha = await fileSha256(this.rawPath(scanId));
    } catch (err) {
      throw new ScanlineError(
        'SCANLINE_ERR_STORAGE_READ',
        `cannot read the raw lines of scan ${scanId} to seal them: ${(err as Error).message}`,
        { scanId },
        { cause: err },
      );
    }
    if (sha === null) throw new ScanlineError('SCANLINE_ERR_STORAGE_READ', `scan ${scanId} has no raw lines to seal`, { scanId });
    return sha;
  }

  /**
   * Writes seals (digestRaw's) into their records (`raw_sha256`), all in one transaction, a deferred commit (on
   * stable storage once durable() resolves): one fsync per scan under synchronous = FULL held the JS thread, under
   * bench:ingest's raw writes p90 31 ms, max 52 ms (bench/RESULTS.md, after the ingest run). A scan whose record is
   * gone (retention) is skipped by its UPDATE. Throws SCANLINE_ERR_STORAGE_WRITE, and then none of the batch is
   * written.
   */
  recordSeals(seals: ReadonlyArray<{ scanId: string; sha256: string }>): void {
    if (seals.length === 0) return;
    this.assertOpen();
    try {
      const update = this.db.prepare('UPDATE scans SET raw_sha256 = ? WHERE scan_id = ?');
      this.deferredCommit(() =>
        this.db.transaction(() => {
          for (const s of seals) update.run(s.sha256, s.scanId);
        })(),
      );
    } catch (err) {
      const ids = seals.map((s) => s.scanId);
      throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `cannot seal scans ${ids.join(', ')}: ${(err as Error).message}`, { scanIds: ids }, { cause: err });
    }
  }

  /**
   * The raw file of a scan as it is on disk (read on the thread pool; no copy on the JS thread). It may be shorter
   * than lines x bytesPerLine when the last lines never arrived (readRaw pads those with zeros).
   */
  async readRawFile(scanId: string): Promise<Buffer> {
    try {
      return await readFile(this.rawPath(scanId));
    } catch (err) {
      throw new ScanlineError(
        'SCANLINE_ERR_STORAGE_READ',
        `cannot read the raw lines of scan ${scanId}: ${(err as Error).message}`,
        { scanId },
        { cause: err },
      );
    }
  }

  /** Reads `lines` whole lines of a stored scan from line 0 (zeros where the file is shorter). */
  async readRaw(scanId: string, lines: number, bytesPerLine: number): Promise<Uint16Array> {
    const bytes = await this.readRawFile(scanId);
    const out = new Uint16Array((lines * bytesPerLine) / 2);
    const n = Math.min(bytes.byteLength, out.byteLength) & ~1;
    new Uint8Array(out.buffer).set(bytes.subarray(0, n));
    return out;
  }

  /**
   * Stores (replacing) the machine results report of a scan. `decision` is kept in its own column for listing.
   * A deferred commit (on stable storage once durable() resolves). Throws SCANLINE_ERR_STORAGE_WRITE.
   */
  putResults(scanId: string, decision: string, report: unknown): void {
    this.assertOpen();
    try {
      const put = this.db.prepare('INSERT OR REPLACE INTO scan_results (scan_id, decision, report, updated_at) VALUES (?, ?, ?, ?)');
      const text = JSON.stringify(report);
      this.deferredCommit(() => put.run(scanId, decision, text, new Date().toISOString()));
    } catch (err) {
      throw new ScanlineError(
        'SCANLINE_ERR_STORAGE_WRITE',
        `cannot store the results of scan ${scanId}: ${(err as Error).message}`,
        { scanId },
        { cause: err },
      );
    }
  }

  /** The stored results report of a scan, or undefined when none was stored. */
  getResults(scanId: string): unknown {
    this.assertOpen();
    const row = this.db.prepare('SELECT report FROM scan_results WHERE scan_id = ?').get(scanId) as { report: string } | undefined;
    return row === undefined ? undefined : (JSON.parse(row.report) as unknown);
  }

  /**
   * Stores (replacing) the goods-model tile embeddings of a scan. A deferred commit (on stable storage once durable()
   * resolves). Throws SCANLINE_ERR_STORAGE_WRITE.
   */
  putEmbeddings(scanId: string, e: ScanEmbeddings): void {
    this.assertOpen();
    try {
      const put = this.db.prepare('INSERT OR REPLACE INTO scan_embeddings (scan_id, model, dim, tiles, data) VALUES (?, ?, ?, ?, ?)');
      const tiles = JSON.stringify(e.tiles);
      const data = Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength);
      this.deferredCommit(() => put.run(scanId, e.model, e.dim, tiles, data));
    } catch (err) {
      throw new ScanlineError(
        'SCANLINE_ERR_STORAGE_WRITE',
        `cannot store the embeddings of scan ${scanId}: ${(err as Error).message}`,
        { scanId },
        { cause: err },
      );
    }
  }

  getEmbeddings(scanId: string): ScanEmbeddings | undefined {
    this.assertOpen();
    const row = this.db.prepare('SELECT model, dim, tiles, data FROM scan_embeddings WHERE scan_id = ?').get(scanId) as
      | { model: string; dim: number; tiles: string; data: Buffer }
      | undefined;
    if (!row) return undefined;
    return { model: row.model, dim: row.dim, tiles: JSON.parse(row.tiles) as ScanEmbeddings['tiles'], data: floatsOf(row.data) };
  }

  /** Inserts or replaces a reference category. Throws SCANLINE_ERR_STORAGE_WRITE. */
  putReference(r: StoredReference): void {
    this.assertOpen();
    try {
      this.db
        .prepare(
          `INSERT OR REPLACE INTO reference_categories (id, name, hs_codes, model, min_similarity, prototype, samples, sources,
           sample_similarity, created_at, proposed_by, approved_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          r.id,
          r.name,
          JSON.stringify(r.hsCodes),
          r.model,
          r.minSimilarity,
          Buffer.from(r.prototype.buffer, r.prototype.byteOffset, r.prototype.byteLength),
          r.samples,
          JSON.stringify(r.sources),
          JSON.stringify(r.sampleSimilarity),
          r.createdAt,
          r.proposedBy,
          r.approvedBy,
        );
    } catch (err) {
      throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `cannot store reference ${r.id}: ${(err as Error).message}`, { id: r.id }, { cause: err });
    }
  }

  listReferences(): StoredReference[] {
    this.assertOpen();
    const rows = this.db.prepare('SELECT * FROM reference_categories ORDER BY created_at, id').all() as Array<{
      id: string;
      name: string;
      hs_codes: string;
      model: string;
      min_similarity: number;
      prototype: Buffer;
      samples: number;
      sources: string;
      sample_similarity: string;
      created_at: string;
      proposed_by: string | null;
      approved_by: string | null;
    }>;
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      hsCodes: JSON.parse(r.hs_codes) as string[],
      model: r.model,
      minSimilarity: r.min_similarity,
      prototype: floatsOf(r.prototype),
      samples: r.samples,
      sources: JSON.parse(r.sources) as StoredReference['sources'],
      sampleSimilarity: JSON.parse(r.sample_similarity) as StoredReference['sampleSimilarity'],
      createdAt: r.created_at,
      proposedBy: r.proposed_by,
      approvedBy: r.approved_by,
    }));
  }

  /** Records a proposed change of the reference library (pending). Throws SCANLINE_ERR_STORAGE_WRITE. */
  createReferenceProposal(p: Pick<StoredReferenceProposal, 'action' | 'referenceId' | 'request' | 'proposedBy' | 'proposedAt'>): StoredReferenceProposal {
    this.assertOpen();
    try {
      const info = this.db
        .prepare(`INSERT INTO reference_proposals (action, reference_id, request, state, proposed_by, proposed_at) VALUES (?, ?, ?, 'pending', ?, ?)`)
        .run(p.action, p.referenceId, p.request === null ? null : JSON.stringify(p.request), p.proposedBy, p.proposedAt);
      return this.getReferenceProposal(Number(info.lastInsertRowid)) as StoredReferenceProposal;
    } catch (err) {
      throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `cannot store a reference proposal: ${(err as Error).message}`, {}, { cause: err });
    }
  }

  getReferenceProposal(id: number): StoredReferenceProposal | undefined {
    this.assertOpen();
    const row = this.db.prepare('SELECT * FROM reference_proposals WHERE id = ?').get(id) as ProposalRow | undefined;
    return row ? proposalOf(row) : undefined;
  }

  /** Proposals, newest first; only those in `state` when given. */
  listReferenceProposals(state?: StoredReferenceProposal['state'], limit = 100): StoredReferenceProposal[] {
    this.assertOpen();
    const rows = (
      state === undefined
        ? this.db.prepare('SELECT * FROM reference_proposals ORDER BY id DESC LIMIT ?').all(limit)
        : this.db.prepare('SELECT * FROM reference_proposals WHERE state = ? ORDER BY id DESC LIMIT ?').all(state, limit)
    ) as ProposalRow[];
    return rows.map(proposalOf);
  }

  /**
   * Decides a pending proposal; false when it was no longer pending (decided meanwhile: nothing changed).
   * Throws SCANLINE_ERR_STORAGE_WRITE.
   */
  decideReferenceProposal(id: number, state: 'approved' | 'rejected', by: string, at: string, reason: string | null): boolean {
    this.assertOpen();
    try {
      return (
        this.db
          .prepare(`UPDATE reference_proposals SET state = ?, decided_by = ?, decided_at = ?, reason = ? WHERE id = ? AND state = 'pending'`)
          .run(state, by, at, reason, id).changes === 1
      );
    } catch (err) {
      throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `cannot decide reference proposal ${id}: ${(err as Error).message}`, {}, { cause: err });
    }
  }

  /** Appends an officer's decision and returns it with its id. Throws SCANLINE_ERR_STORAGE_WRITE. */
  /** The gateway's disk space reserve (SpaceReserve): released to store a decision when the disk is full. */
  spaceReserve: SpaceReserve | null = null;

  /** Stores an officer's decision; a full disk releases the space reserve first (decisions never fail for want of space). */
  putDecision(d: Omit<StoredDecision, 'id'>): StoredDecision {
    this.assertOpen();
    try {
      const info = withReserve(
        this.spaceReserve,
        () =>
          this.db
            .prepare(
              `INSERT INTO scan_decisions (scan_id, operator_id, verdict, comment, suggestions, machine_decision, scan_state, decided_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
            )
            .run(d.scanId, d.operatorId, d.verdict, d.comment, JSON.stringify(d.suggestions), d.machineDecision, d.scanState, d.decidedAt),
        `the decision of ${d.operatorId} on scan ${d.scanId}`,
      );
      return { id: Number(info.lastInsertRowid), ...d };
    } catch (err) {
      throw new ScanlineError(
        'SCANLINE_ERR_STORAGE_WRITE',
        `cannot store the decision on scan ${d.scanId}: ${(err as Error).message}`,
        { scanId: d.scanId },
        { cause: err },
      );
    }
  }

  /** Queues `item` of a scan for a DICOS destination (once: queuing it again changes nothing). */
  enqueuePush(scanId: string, destination: string, item: string, at: string): void {
    this.assertOpen();
    this.db
      .prepare(
        `INSERT OR IGNORE INTO dicos_push_queue (scan_id, destination, item, state, attempts, next_attempt_at, created_at)
         VALUES (?, ?, ?, 'pending', 0, ?, ?)`,
      )
      .run(scanId, destination, item, at, at);
  }

  /**
   * Ended scans since `since` (ISO) whose results are final (or that have none: inference off) and that have no push
   * item `scan` for `destination`: what a crash between the final report and its queueing would have left out.
   */
  scansNotQueuedFor(destination: string, since: string, withResults: boolean): string[] {
    this.assertOpen();
    const finalOnly = withResults
      ? `AND EXISTS (SELECT 1 FROM scan_results r WHERE r.scan_id = s.scan_id AND json_extract(r.report, '$.status') = 'final')`
      : `AND s.state = 'completed'`;
    return (
      this.db
        .prepare(
          `SELECT s.scan_id FROM scans s WHERE s.ended_at >= ? ${finalOnly}
           AND NOT EXISTS (SELECT 1 FROM dicos_push_queue q WHERE q.scan_id = s.scan_id AND q.destination = ? AND q.item = 'scan')
           ORDER BY s.ended_at`,
        )
        .all(since, destination) as Array<{ scan_id: string }>
    ).map((r) => r.scan_id);
  }

  /** Pending pushes due at `now`, oldest due first. */
  duePushes(now: string, limit: number): StoredPush[] {
    this.assertOpen();
    return (
      this.db
        .prepare(`SELECT * FROM dicos_push_queue WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?`)
        .all(now, limit) as PushRow[]
    ).map(pushFromRow);
  }

  pushSent(id: number, at: string): void {
    this.db.prepare(`UPDATE dicos_push_queue SET state = 'sent', sent_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?`).run(at, id);
  }

  pushFailed(id: number, nextAttemptAt: string, error: string): void {
    this.db
      .prepare('UPDATE dicos_push_queue SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?')
      .run(nextAttemptAt, error.slice(0, 500), id);
  }

  /** Pending pushes per destination, and the oldest one's creation time (for the metrics). */
  pendingPushes(): Array<{ destination: string; pending: number; oldest: string | null }> {
    this.assertOpen();
    return this.db
      .prepare(`SELECT destination, COUNT(*) AS pending, MIN(created_at) AS oldest FROM dicos_push_queue WHERE state = 'pending' GROUP BY destination`)
      .all() as Array<{ destination: string; pending: number; oldest: string | null }>;
  }

  /** The decisions on one scan, oldest first. */
  listDecisions(scanId: string): StoredDecision[] {
    this.assertOpen();
    return (this.db.prepare('SELECT * FROM scan_decisions WHERE scan_id = ? ORDER BY id').all(scanId) as DecisionRow[]).map(decisionOf);
  }

  /** The decisions on several scans (at most 1000 ids), oldest first per scan. */
  listDecisionsOf(scanIds: string[]): Map<string, StoredDecision[]> {
    this.assertOpen();
    const out = new Map<string, StoredDecision[]>(scanIds.map((id) => [id, []]));
    if (scanIds.length === 0) return out;
    const ids = scanIds.slice(0, 1000);
    const rows = this.db.prepare(`SELECT * FROM scan_decisions WHERE scan_id IN (${ids.map(() => '?').join(',')}) ORDER BY id`).all(...ids) as DecisionRow[];
    for (const r of rows) out.get(r.scan_id)?.push(decisionOf(r));
    return out;
  }

  /** The stored machine decision (ALARM / CLEAR / UNKNOWN) of several scans that have final results. */
  machineDecisionsOf(scanIds: string[]): Map<string, string> {
    this.assertOpen();
    const ids = scanIds.slice(0, 1000);
    if (ids.length === 0) return new Map();
    const rows = this.db.prepare(`SELECT scan_id, decision FROM scan_results WHERE scan_id IN (${ids.map(() => '?').join(',')})`).all(...ids) as Array<{
      scan_id: string;
      decision: string;
    }>;
    return new Map(rows.map((r) => [r.scan_id, r.decision]));
  }

  /**
   * Writes an image file of a scan into its directory (e.g. the material preview at the end of the scan), replacing
   * it. Throws SCANLINE_ERR_STORAGE_WRITE.
   */
  async putScanImage(scanId: string, name: ScanImageName, bytes: Uint8Array): Promise<void> {
    const path = join(this.scanDir(scanId), name);
    try {
      await writeFile(`${path}.tmp`, bytes);
      await rename(`${path}.tmp`, path);
    } catch (err) {
      throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `cannot write ${path}: ${(err as Error).message}`, { scanId }, { cause: err });
    }
  }

  /** An image file of a scan, or undefined when it was never written. Throws SCANLINE_ERR_STORAGE_READ. */
  async getScanImage(scanId: string, name: ScanImageName): Promise<Buffer | undefined> {
    const path = join(this.scanDir(scanId), name);
    try {
      return await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new ScanlineError('SCANLINE_ERR_STORAGE_READ', `cannot read ${path}: ${(err as Error).message}`, { scanId }, { cause: err });
    }
  }

  /** Deletes a reference category; false when there was none. */
  deleteReference(id: string): boolean {
    this.assertOpen();
    return this.db.prepare('DELETE FROM reference_categories WHERE id = ?').run(id).changes > 0;
  }

  /**
   * Removes a scan's record, results, embeddings and decisions (one transaction) and its files. The directory is
   * renamed aside first, so a scan started meanwhile under the same id (its record gone) never loses its files to
   * this deletion.
   */
  async deleteScan(scanId: string): Promise<void> {
    this.assertOpen();
    const tombstone = join(this.dataDir, 'scans', `.deleted-${scanId}-${process.pid}-${Date.now()}`);
    try {
      await rename(this.scanDir(scanId), tombstone);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new ScanlineError(
          'SCANLINE_ERR_STORAGE_WRITE',
          `cannot delete the files of scan ${scanId}: ${(err as Error).message}`,
          { scanId },
          { cause: err },
        );
      }
    }
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM scan_results WHERE scan_id = ?').run(scanId);
      this.db.prepare('DELETE FROM scan_embeddings WHERE scan_id = ?').run(scanId);
      this.db.prepare('DELETE FROM scan_decisions WHERE scan_id = ?').run(scanId);
      this.db.prepare('DELETE FROM dicos_push_queue WHERE scan_id = ?').run(scanId);
      this.db.prepare('DELETE FROM scans WHERE scan_id = ?').run(scanId);
    })();
    await rm(tombstone, { recursive: true, force: true });
  }

  /**
   * Ended scans with what the retention policy needs: when they ended, the machine's decision and its report's
   * status, the officers' decisions and the legal hold. Oldest first; `scanId`: that scan only.
   */
  retentionRows(scanId?: string): RetentionRow[] {
    this.assertOpen();
    return this.db
      .prepare(
        `SELECT s.scan_id AS scanId, s.portal_id AS portalId, s.state AS state, COALESCE(s.ended_at, s.updated_at) AS endedAt,
                s.legal_hold AS legalHold, s.raw_sha256 AS rawSha256, r.decision AS machineDecision,
                json_extract(r.report, '$.status') AS resultsStatus,
                (SELECT group_concat(d.id) FROM scan_decisions d WHERE d.scan_id = s.scan_id) AS decisionIds
         FROM scans s LEFT JOIN scan_results r ON r.scan_id = s.scan_id
         WHERE s.state != 'receiving' ${scanId !== undefined ? 'AND s.scan_id = @scanId' : ''} ORDER BY COALESCE(s.ended_at, s.updated_at), s.scan_id`,
      )
      .all(scanId !== undefined ? { scanId } : {})
      .map((row) => {
        const r = row as Omit<RetentionRow, 'legalHold' | 'decisionIds'> & { legalHold: number; decisionIds: string | null };
        return { ...r, legalHold: r.legalHold === 1, decisionIds: r.decisionIds ? r.decisionIds.split(',').map(Number) : [] };
      });
  }

  /** Puts a scan on legal hold (or takes it off): retention never deletes a held scan. False when there is no such scan. */
  setLegalHold(scanId: string, hold: { by: string; reason: string } | null): boolean {
    this.assertOpen();
    const at = new Date().toISOString();
    const info = this.db
      .prepare('UPDATE scans SET legal_hold = ?, legal_hold_by = ?, legal_hold_at = ?, legal_hold_reason = ?, updated_at = ? WHERE scan_id = ?')
      .run(hold ? 1 : 0, hold?.by ?? null, hold ? at : null, hold?.reason ?? null, at, scanId);
    return info.changes > 0;
  }

  /** The legal hold of a scan, or null when it is not held (or unknown). */
  legalHoldOf(scanId: string): { by: string | null; at: string | null; reason: string | null } | null {
    this.assertOpen();
    const row = this.db.prepare('SELECT legal_hold, legal_hold_by, legal_hold_at, legal_hold_reason FROM scans WHERE scan_id = ?').get(scanId) as
      | { legal_hold: number; legal_hold_by: string | null; legal_hold_at: string | null; legal_hold_reason: string | null }
      | undefined;
    return row && row.legal_hold === 1 ? { by: row.legal_hold_by, at: row.legal_hold_at, reason: row.legal_hold_reason } : null;
  }

  /** Bytes of a scan's files (raw lines, journal, images). */
  async scanBytes(scanId: string): Promise<number> {
    let total = 0;
    try {
      for (const name of await readdir(this.scanDir(scanId))) total += (await stat(join(this.scanDir(scanId), name)).catch(() => ({ size: 0 }))).size;
    } catch {
      // no directory
    }
    return total;
  }

  /** True when the database answers and the data directory accepts writes. */
  isWritable(): boolean {
    if (this.closed || this.walSync.failure) return false;
    try {
      this.db.prepare('SELECT 1').get();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Resolves once every deferred commit made before this call (createScan, updateScan, putResults, putEmbeddings,
   * recordSeals) is on stable storage: one fdatasync of the WAL on the thread pool, shared by every caller waiting
   * meanwhile. Rejects with SCANLINE_ERR_STORAGE_WRITE when the sync fails or the store closes first; after a failed
   * sync every later call with commits pending does, and isWritable() is false (./wal-sync.ts, `failure`).
   */
  durable(): Promise<void> {
    return this.walSync.durable();
  }

  /** Deferred commits and the WAL syncs made for them (metrics). */
  /**
   * Moves the WAL's checkpoints off the JS thread (./wal-checkpointer.ts): a worker checkpoints every `intervalMs`,
   * and this connection's automatic checkpoint is off while it runs. For the gateway: short-lived commands keep
   * SQLite's own.
   */
  startCheckpointer(intervalMs: number): void {
    this.assertOpen();
    this.checkpointer ??= new WalCheckpointer(this.db, join(this.dataDir, 'scanline.db'), intervalMs, this.log ?? undefined);
  }

  /** Checkpoints made off the JS thread; null when not started. `running` false: the worker failed. */
  get checkpointStats(): (Readonly<WalCheckpointStats> & { running: boolean }) | null {
    return this.checkpointer ? { ...this.checkpointer.stats, running: this.checkpointer.running } : null;
  }

  get walSyncStats(): Readonly<WalSyncStats> {
    return this.walSync.stats;
  }

  close(): void {
    if (this.closed) return;
    // Ends a full disk refused get one more try (what is still refused is ended again by the next start, from journals).
    if (this.pendingEnds.size > 0 && !this.walSync.failure) {
      this.retryPendingEnds();
      if (this.pendingEnds.size > 0) {
        this.log?.warn({ scanIds: [...this.pendingEnds.keys()] }, 'the ends of these scans could not be written; the next start ends them from their journals');
      }
    }
    this.closed = true;
    // Deferred commits not yet synced are synced here: closing checkpoints (and syncs) only when no other process has
    // the database open.
    if (this.walSync.pending > 0 && !this.walSync.failure) {
      let fd: number | null = null;
      try {
        fd = openSync(this.walSync.walPath, 'r');
        fdatasyncSync(fd);
        this.walSync.markAllDurable();
      } catch (err) {
        // Counted (scanline_storage_wal_sync_failures_total); the callers still waiting are told.
        this.walSync.fail(err);
      } finally {
        if (fd !== null) closeSync(fd);
      }
    }
    this.walSync.close();
    // The worker's connection first: the last connection to close checkpoints and removes the WAL.
    this.checkpointer?.close();
    this.db.close();
  }

  /**
   * Runs `write` (one statement or one transaction) with synchronous = NORMAL: committed when it returns, in the WAL
   * and safe from a crash of this process, on stable storage once durable() resolves. Every other write of this
   * connection stays FULL. Not inside an open transaction (SQLite refuses to change the setting there).
   * Threads: JS thread. The PRAGMA is prepared each time (db.pragma): SQLite applies `synchronous` when the statement
   * is compiled, so a statement prepared once and run again would not reliably switch it.
   */
  private deferredCommit<T>(write: () => T): T {
    this.db.pragma('synchronous = NORMAL');
    try {
      return write();
    } finally {
      // Noted even when the write threw: a sync too many, never one too few.
      this.walSync.committed();
      this.db.pragma('synchronous = FULL');
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', 'scan store is closed');
  }

  private toRow(r: ScanRecord): ScanRow {
    return {
      scan_id: r.scanId,
      portal_id: r.portalId,
      stream_id: r.streamId,
      state: r.state,
      pixels: r.detector.pixels,
      energies: r.detector.energies,
      pitch_mm: r.detector.pitchMm,
      line_rate_hz: r.detector.lineRateHz,
      lines: r.lines,
      gaps: JSON.stringify(r.gaps),
      vehicle: r.vehicle === null ? null : JSON.stringify(r.vehicle),
      declaration: r.declaration === null ? null : JSON.stringify(r.declaration),
      started_at: r.startedAt,
      ended_at: r.endedAt,
      updated_at: r.updatedAt,
      reason: r.reason,
      origin: r.origin ? JSON.stringify(r.origin) : null,
    };
  }
}
