/**
 * The ingest stage: portal connections, the scans they stream, and the events handed to downstream stages.
 * Owns the live scans (by scanId) and the portal registry (by portalId: the newest connection of a portal wins,
 * so a portal whose old TCP connection went half-open can reconnect at once and resume its scans).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { ScanlineError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { BufferPool } from '../memory/index.js';
import { alignedBuffer } from '../addon/index.js';
import { createStitcher, nativeStitcher, type Stitcher, type StitcherFactory, validateStitcherOptions } from '../stitch/index.js';
import { DIRECT_IO_ALIGNMENT, GroupCommitter, type RawWriter, type ScanJournalWriter, type ScanRecord, type ScanStore, readJournal } from '../storage/index.js';
import { ActiveScan } from './active-scan.js';
import { ScanBufferBudget } from './scan-budget.js';
import type { IngestConfig } from './config.js';
import { IngestEventSink, type IngestListeners, type ScanView } from './events.js';
import type { ScanResumeMessage, ScanStartMessage } from '../protocol/index.js';
import { CloseCode, PortalConnection, type PortalChannel } from './portal-connection.js';
import { createIngestStats, portalStatsOf, type IngestStats } from './stats.js';

/**
 * Checks portal credentials (src/identity IdentityService in the gateway). Synchronous: hello is answered in the
 * tick it arrives, so pipelined scan.start messages find the connection authenticated.
 */
export interface PortalAuthenticator {
  /** A handle on the credential (its hash) when `credential` is `portalId`'s current credential, else null. */
  verifyPortal(portalId: string, credential: string | undefined): string | null;
  /** True while the credential `handle` still is `portalId`'s (not revoked nor replaced). */
  portalStillValid(portalId: string, handle: string): boolean;
}

export interface IngestServiceOptions {
  config: IngestConfig;
  store: ScanStore;
  log: Logger;
  /** Who may speak for which portal id. */
  portals: PortalAuthenticator;
  /** The native stitcher by default; benchmarks pass the TypeScript reference as their baseline. */
  stitcher?: StitcherFactory;
  gatewayName?: string;
  /** Why new scans cannot be stored now (the disk monitor: free space below storage.minFreeBytes), or null. */
  storageRefusal?: () => string | null;
}

/** Size of a file in bytes, 0 when it does not exist. */
function rawSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Tiles a single stitcher job may hand downstream at once. */
const TILE_CAPACITY = 64;

export class IngestService {
  readonly config: IngestConfig;
  readonly stats: IngestStats;
  readonly gatewayName: string;
  private readonly store: ScanStore;
  private readonly log: Logger;
  private readonly events: IngestEventSink;
  private readonly stitcher: StitcherFactory;
  readonly portalAuth: PortalAuthenticator;
  private readonly live = new Map<string, ActiveScan>();
  private readonly portals = new Map<string, PortalConnection>();
  private readonly connections = new Set<PortalConnection>();
  /** This gateway's stitcher output buffers of ended scans (see ActiveScanInit.outputBuffers), 64 MiB at most. */
  private readonly outputBuffers = new BufferPool(64 << 20);
  /** This gateway's O_DIRECT-aligned raw-archive buffers (null from the allocator without the addon), 32 MiB at most. */
  private readonly archiveBuffers = new BufferPool(32 << 20, (n) => alignedBuffer(n, DIRECT_IO_ALIGNMENT));
  private draining = false;
  private readonly storageRefusal: () => string | null;
  /** What the open scans' lines may cost together (portal.scanBufferBudgetBytes). */
  readonly scanBudget: ScanBufferBudget;
  /** Makes every open scan's journal and raw lines durable, many scans per cycle (storage.ackMaxDelayMs). */
  readonly committer: GroupCommitter;

  constructor(options: IngestServiceOptions) {
    this.config = options.config;
    this.stats = createIngestStats(options.config.metrics.portalLabelLimit);
    this.store = options.store;
    this.log = options.log;
    this.stitcher = options.stitcher ?? nativeStitcher;
    this.portalAuth = options.portals;
    this.scanBudget = new ScanBufferBudget(options.config.portal.scanBufferBudgetBytes);
    this.committer = new GroupCommitter(options.config.storage.ackMaxDelayMs, this.stats.commits, (err) =>
      this.log.error({ err }, 'a group commit participant failed'),
    );
    this.gatewayName = options.gatewayName ?? 'scanline';
    this.storageRefusal = options.storageRefusal ?? (() => null);
    this.events = new IngestEventSink((err, event) => this.log.error({ err, event }, 'ingest listener failed'));
  }

  /** Registers downstream listeners; returns a function that removes them. */
  listen(listeners: IngestListeners): () => void {
    return this.events.add(listeners);
  }

  /** Called by the transport for every new portal WebSocket. */
  openConnection(channel: PortalChannel): PortalConnection {
    const conn = new PortalConnection(this, channel, this.log);
    this.connections.add(conn);
    this.stats.connectionsOpened++;
    return conn;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** The live scan `scanId` as downstream stages see it (read-only), or undefined when it is not open. */
  getLiveScan(scanId: string): ScanView | undefined {
    return this.live.get(scanId);
  }

  /** Every open scan, read-only. */
  liveScans(): ScanView[] {
    return [...this.live.values()];
  }

  /**
   * `portalId` was disconnected for frames refused SCANLINE_ERR_LIMIT_SPARSE: its hello is refused for
   * portal.sparseCutOffSec (PortalConnection.sparseRefused). Portal ids here are authenticated, so this stays small.
   */
  cutOff(portalId: string): void {
    const ms = this.config.portal.sparseCutOffSec * 1000;
    if (ms > 0) this.cutOffUntil.set(portalId, performance.now() + ms);
  }

  /** How long `portalId` is still cut off, ms (0: not). */
  cutOffRemainingMs(portalId: string): number {
    const until = this.cutOffUntil.get(portalId);
    if (until === undefined) return 0;
    const left = until - performance.now();
    if (left <= 0) this.cutOffUntil.delete(portalId);
    return Math.max(0, left);
  }

  private readonly cutOffUntil = new Map<string, number>();

  /** Newest connection of a portal wins; the older one is closed and its scans wait for scan.resume. */
  registerPortal(conn: PortalConnection): void {
    const previous = this.portals.get(conn.portalId);
    this.portals.set(conn.portalId, conn);
    if (previous && previous !== conn && previous.isOpen) {
      this.log.warn({ portalId: conn.portalId }, 'portal reconnected; closing its previous connection');
      previous.close(CloseCode.Replaced, 'replaced by a newer connection of this portal');
    }
  }

  /**
   * Closes the connection of every portal whose credential was revoked or replaced since its hello (by `scanline
   * portal revoke|add`, perhaps in another process); its open scans wait for a resume as after any disconnect.
   * Returns how many were closed. The gateway runs this every few seconds.
   */
  closeRevokedPortals(): number {
    let closed = 0;
    for (const conn of this.connections) {
      if (!conn.isOpen || conn.credential === null || this.portalAuth.portalStillValid(conn.portalId, conn.credential)) continue;
      conn.revoked();
      closed++;
    }
    return closed;
  }

  startScan(conn: PortalConnection, m: ScanStartMessage): ActiveScan {
    if (this.draining) throw new ScanlineError('SCANLINE_ERR_GATEWAY_DRAINING', 'gateway is shutting down; no new scans', { streamId: m.streamId });
    const existing = conn.scans.get(m.streamId);
    if (existing) {
      if (m.scanId !== undefined && m.scanId === existing.scanId) return existing; // repeated scan.start: idempotent
      throw new ScanlineError('SCANLINE_ERR_STREAM_IN_USE', `stream ${m.streamId} is already scan ${existing.scanId}`, { streamId: m.streamId });
    }
    const orphan = m.scanId !== undefined ? this.live.get(m.scanId) : undefined;
    if (
      orphan &&
      orphan.portalId === conn.portalId &&
      orphan.owner === null &&
      orphan.state === 'receiving' &&
      conn.detector?.pixels === orphan.detector.pixels &&
      conn.detector?.energies === orphan.detector.energies
    ) {
      // The portal's scan.start was stored but its scan.accepted never reached it (the connection or the gateway went
      // down in between, e.g. a crash after which the scan was recovered): the repeated scan.start takes it over;
      // frames it sends again are replays.
      orphan.clearResumeTimer();
      orphan.owner = conn;
      orphan.streamId = m.streamId;
      this.stats.scansResumed++;
      this.log.info({ scanId: orphan.scanId, portalId: conn.portalId }, 'repeated scan.start took over the open scan');
      return orphan;
    }
    const full = this.storageRefusal();
    if (full !== null) throw new ScanlineError('SCANLINE_ERR_STORAGE_FULL', `new scans are refused: ${full}`, { streamId: m.streamId });
    if (this.live.size >= this.config.portal.maxOpenScansTotal) {
      throw new ScanlineError(
        'SCANLINE_ERR_LIMIT_SCANS',
        `${this.live.size} scans are open on the gateway; it accepts ${this.config.portal.maxOpenScansTotal} (portal.maxOpenScansTotal)`,
        { streamId: m.streamId },
      );
    }
    if (conn.scans.size >= this.config.portal.maxOpenScans) {
      throw new ScanlineError(
        'SCANLINE_ERR_SCAN_TOO_MANY',
        `${conn.scans.size} scans are open on this connection; the limit is ${this.config.portal.maxOpenScans}`,
        {
          streamId: m.streamId,
        },
      );
    }
    const scanId = m.scanId ?? this.newScanId(conn.portalId);
    if (this.live.has(scanId) || this.store.hasScan(scanId)) {
      throw new ScanlineError('SCANLINE_ERR_SCAN_ID_TAKEN', `scanId ${scanId} is already used; choose a new scanId or scan.resume it`, {
        streamId: m.streamId,
        scanId,
      });
    }
    const detector = conn.detector!;
    let stitcher: Stitcher;
    try {
      stitcher = createStitcher(validateStitcherOptions({ ...this.config.stitch, pixels: detector.pixels, energies: detector.energies }), this.stitcher);
    } catch (err) {
      throw err instanceof ScanlineError ? Object.assign(err, { details: { ...err.details, streamId: m.streamId } }) : err;
    }
    const startedAt = new Date();
    // The journal exists before the record does: a record 'receiving' always has one to be recovered from.
    let journal: ScanJournalWriter;
    try {
      journal = this.store.openJournal(scanId);
    } catch (err) {
      stitcher.close();
      throw err;
    }
    let writer: RawWriter;
    try {
      writer = this.store.createScan({
        scanId,
        portalId: conn.portalId,
        streamId: m.streamId,
        state: 'receiving',
        detector: { pixels: detector.pixels, energies: detector.energies, pitchMm: detector.pitchMm, lineRateHz: detector.lineRateHz },
        lines: 0,
        gaps: [],
        vehicle: m.vehicle ?? null,
        declaration: m.declaration ?? null,
        startedAt: startedAt.toISOString(),
        endedAt: null,
        updatedAt: startedAt.toISOString(),
        reason: null,
        origin: conn.origin,
      });
    } catch (err) {
      stitcher.close();
      journal.closeNow();
      throw err;
    }
    const scan = this.activeScan(
      {
        scanId,
        portalId: conn.portalId,
        streamId: m.streamId,
        detector,
        vehicle: m.vehicle ?? null,
        declaration: m.declaration ?? null,
        startedAt,
      },
      stitcher,
      writer,
      journal,
      // Before the first ack: the scan's record (a deferred commit, made above), then its directory entries. In that
      // order, as when the record was synced in its commit: a power cut never leaves files that no record names.
      async () => {
        await this.store.durable();
        await this.store.syncScanDirectory(scanId);
      },
    );
    scan.owner = conn;
    this.stats.scansStarted++;
    portalStatsOf(this.stats, conn.portalId).scansStarted++;
    this.log.info({ scanId, portalId: conn.portalId, streamId: m.streamId, declaration: m.declaration?.hsCodes }, 'scan started');
    this.events.emitStarted(scan);
    return scan;
  }

  /** An ActiveScan of this gateway, registered live until it ends. */
  private activeScan(
    facts: Pick<ActiveScan, 'scanId' | 'portalId' | 'streamId' | 'detector' | 'vehicle' | 'declaration' | 'startedAt'>,
    stitcher: Stitcher,
    writer: RawWriter,
    journal: ScanJournalWriter,
    syncDirectory: (() => Promise<void>) | null,
  ): ActiveScan {
    const scanId = facts.scanId;
    const scan = new ActiveScan({
      ...facts,
      stitcher,
      writer,
      journal,
      committer: this.committer,
      ackDurability: this.config.portal.ackDurability,
      syncDirectory,
      store: this.store,
      events: this.events,
      stats: this.stats,
      log: this.log,
      reorderWindowSlices: this.config.portal.reorderWindowSlices,
      stitchMaxDelayMs: this.config.portal.stitchMaxDelayMs,
      tileCapacity: TILE_CAPACITY,
      outputBuffers: this.outputBuffers,
      archiveBuffers: this.archiveBuffers,
      maxMissingLines: this.config.portal.maxMissingLines,
      budget: this.scanBudget,
    });
    this.live.set(scanId, scan);
    void scan.whenEnded().then(() => {
      this.live.delete(scanId);
      this.scanBudget.release(scan.chargedBytes);
    });
    return scan;
  }

  /**
   * Takes over the scans a previous run left open (ScanStore.openScans: it stopped without closing them, e.g. a
   * crash): each is rebuilt from its journal and raw file (ActiveScan.restore), scored again as its lines are
   * stitched again, and waits portal.resumeGraceMs for its portal to resume it, then ends as aborted with what it
   * has. A scan that cannot be rebuilt (no journal: written by a version without one; unreadable files) is marked
   * interrupted. With `rescoreCompleted` (the gateway scores scans), completed scans whose results were left
   * unfinished (ScanStore.completedScansWithUnfinishedResults) are rebuilt the same way and complete again, their
   * record kept. Call once, at start, before portals connect. Returns how many scans were recovered.
   */
  recoverOpenScans(options: { rescoreCompleted?: boolean } = {}): number {
    let recovered = 0;
    for (const record of this.store.openScans()) {
      try {
        if (this.recoverScan(record)) recovered++;
      } catch (err) {
        this.log.error({ err, scanId: record.scanId }, 'recovering the scan failed; it is marked interrupted');
        this.markInterrupted(record, `gateway stopped during the scan; recovery failed: ${(err as Error).message}`);
      }
    }
    if (!options.rescoreCompleted) return recovered;
    for (const record of this.store.completedScansWithUnfinishedResults()) {
      try {
        if (this.recoverScan(record)) recovered++;
      } catch (err) {
        this.log.error({ err, scanId: record.scanId }, 'scoring a completed scan again failed; its results stay in progress');
      }
    }
    return recovered;
  }

  private markInterrupted(record: ScanRecord, reason: string): void {
    const now = new Date().toISOString();
    try {
      this.store.updateScan(record.scanId, { state: 'interrupted', endedAt: now, reason });
    } catch (err) {
      this.log.error({ err, scanId: record.scanId }, 'marking the scan interrupted failed');
    }
  }

  private recoverScan(record: ScanRecord): boolean {
    let journal = readJournal(this.store.journalPath(record.scanId));
    const ended = record.state === 'completed';
    if (journal === null && !ended && rawSize(this.store.rawPath(record.scanId)) === 0) {
      // Written by a version that created the record first and stopped before the journal: nothing was accepted.
      journal = { frames: [], lines: [], endLines: null, endFrames: null, validBytes: 0, tornBytes: 0 };
    }
    if (journal === null && ended) {
      this.log.warn({ scanId: record.scanId }, 'completed scan with unfinished results has no journal (calibration) to score it again from');
      return false;
    }
    if (journal === null) {
      this.markInterrupted(record, 'gateway stopped during the scan; it has no journal to recover from');
      this.log.warn({ scanId: record.scanId }, 'open scan without a journal marked interrupted');
      return false;
    }
    const d = record.detector;
    const detector = { pixels: d.pixels, energies: d.energies, pitchMm: d.pitchMm, lineRateHz: d.lineRateHz };
    let raw: Buffer;
    try {
      raw = readFileSync(this.store.rawPath(record.scanId));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      raw = Buffer.alloc(0);
    }
    // What was read may be only in the page cache (a kill -9 keeps it, a power cut would not): it is made durable
    // before any of it is acknowledged again (resume nextSeq, replays).
    this.store.syncScanFilesSync(record.scanId);
    const stitcher = createStitcher(validateStitcherOptions({ ...this.config.stitch, pixels: d.pixels, energies: d.energies }), this.stitcher);
    let writer: RawWriter | null = null;
    let journalWriter: ScanJournalWriter | null = null;
    try {
      writer = this.store.reopenRaw(record.scanId, d.pixels * d.energies * 2);
      journalWriter = this.store.openJournal(record.scanId, journal.validBytes > 0 ? journal.validBytes : null);
    } catch (err) {
      stitcher.close();
      void writer?.close(false).catch(() => undefined);
      throw err;
    }
    const scan = this.activeScan(
      {
        scanId: record.scanId,
        portalId: record.portalId,
        streamId: record.streamId,
        detector: detector as ActiveScan['detector'],
        vehicle: (record.vehicle as ActiveScan['vehicle']) ?? null,
        declaration: (record.declaration as ActiveScan['declaration']) ?? null,
        startedAt: new Date(record.startedAt),
      },
      stitcher,
      writer,
      journalWriter,
      null,
    );
    if (ended) {
      scan.keepRecord = true;
      journal.endLines ??= record.lines;
      journal.endFrames = null; // completed: every line is in the raw file
    }
    // Restored before downstream stages hear of it (they read `recovered`); its stitching starts asynchronously.
    let outcome: ReturnType<ActiveScan['restore']>;
    try {
      outcome = scan.restore(journal, raw);
    } catch (err) {
      // The scan is live already (files open, budget charged): end it, its record saying why.
      void scan.abort(`gateway stopped during the scan; recovery failed: ${(err as Error).message}`);
      throw err;
    }
    this.events.emitStarted(scan);
    if (ended && scan.state === 'receiving') {
      void scan.abort('could not be scored again after the restart');
      return false;
    }
    this.stats.scansRecovered++;
    this.stats.linesRecovered += outcome.lines;
    this.log.warn(
      {
        scanId: record.scanId,
        portalId: record.portalId,
        lines: outcome.lines,
        frames: outcome.frames,
        nextSeq: outcome.nextSeq,
        tornBytes: journal.tornBytes,
      },
      'scan left open by the previous run recovered from its journal',
    );
    if (scan.state === 'receiving') {
      const grace = this.config.portal.resumeGraceMs;
      scan.resumeTimer = setTimeout(() => {
        void scan.abort(`gateway restarted during the scan; recovered ${outcome.lines} lines; its portal did not resume it within ${grace} ms`);
      }, grace);
      scan.resumeTimer.unref();
    }
    return true;
  }

  resumeScan(conn: PortalConnection, m: ScanResumeMessage): void {
    const scan = this.live.get(m.scanId);
    if (!scan) {
      const record = this.store.getScan(m.scanId);
      if (record && record.portalId !== conn.portalId) {
        // Another portal's scan: nothing about it (state, reason) is told.
        throw new ScanlineError('SCANLINE_ERR_SCAN_NOT_RESUMABLE', `scan ${m.scanId} belongs to another portal`, { streamId: m.streamId, scanId: m.scanId });
      }
      if (record?.state === 'completed') {
        // Completed while the portal was away: tell it so instead of resuming.
        conn.send({ type: 'scan.completed', streamId: m.streamId, scanId: m.scanId, lines: record.lines, gaps: record.gaps });
        return;
      }
      if (record) {
        throw new ScanlineError('SCANLINE_ERR_SCAN_NOT_RESUMABLE', `scan ${m.scanId} is ${record.state}${record.reason ? ` (${record.reason})` : ''}`, {
          streamId: m.streamId,
          scanId: m.scanId,
        });
      }
      throw new ScanlineError('SCANLINE_ERR_SCAN_UNKNOWN', `no scan ${m.scanId}`, { streamId: m.streamId, scanId: m.scanId });
    }
    if (scan.portalId !== conn.portalId) {
      throw new ScanlineError('SCANLINE_ERR_SCAN_NOT_RESUMABLE', `scan ${m.scanId} belongs to another portal`, { streamId: m.streamId, scanId: m.scanId });
    }
    const geometry = scan.detector;
    if (conn.detector && (conn.detector.pixels !== geometry.pixels || conn.detector.energies !== geometry.energies)) {
      throw new ScanlineError(
        'SCANLINE_ERR_SCAN_NOT_RESUMABLE',
        `scan ${m.scanId} was started with ${geometry.pixels} pixels x ${geometry.energies} energies; this connection's detector has ` +
          `${conn.detector.pixels} x ${conn.detector.energies}`,
        { streamId: m.streamId, scanId: m.scanId },
      );
    }
    if (scan.state !== 'receiving') {
      // scan.end came and the scan is finishing (or just ended): no dead end for a portal that reconnected meanwhile,
      // it is told the outcome on this connection as soon as there is one (its old connection would never hear it).
      void scan.whenEnded().then(() => {
        const record = this.store.getScan(m.scanId);
        if (record?.state === 'completed') {
          conn.send({ type: 'scan.completed', streamId: m.streamId, scanId: m.scanId, lines: record.lines, gaps: record.gaps });
        } else {
          conn.send({ type: 'scan.aborted', streamId: m.streamId, scanId: m.scanId, reason: record?.reason ?? 'aborted while finishing' });
        }
      });
      return;
    }
    const clash = conn.scans.get(m.streamId);
    if (clash && clash !== scan) {
      throw new ScanlineError('SCANLINE_ERR_STREAM_IN_USE', `stream ${m.streamId} is already scan ${clash.scanId}`, { streamId: m.streamId });
    }
    if (scan.owner && scan.owner !== conn) scan.owner.release(scan.streamId);
    scan.clearResumeTimer();
    scan.owner = conn;
    scan.streamId = m.streamId;
    conn.scans.set(m.streamId, scan);
    this.stats.scansResumed++;
    this.log.info({ scanId: scan.scanId, portalId: conn.portalId, nextSeq: scan.resumeSeq }, 'scan resumed');
    conn.send({ type: 'resume', streamId: m.streamId, scanId: scan.scanId, nextSeq: scan.resumeSeq });
  }

  /** The connection is gone: its open scans wait `resumeGraceMs` for a scan.resume, then are aborted. */
  connectionClosed(conn: PortalConnection): void {
    this.connections.delete(conn);
    if (this.portals.get(conn.portalId) === conn) this.portals.delete(conn.portalId);
    for (const scan of conn.scans.values()) {
      if (scan.owner !== conn) continue;
      scan.owner = null;
      if (scan.state !== 'receiving') continue; // finishing scans complete without their portal
      const grace = this.config.portal.resumeGraceMs;
      scan.resumeTimer = setTimeout(() => {
        void scan.abort(`portal connection lost and not resumed within ${grace} ms`);
      }, grace);
      scan.resumeTimer.unref();
    }
    conn.scans.clear();
  }

  /** Refuses new scans from now on and tells every portal how long open scans still have (graceful shutdown). */
  stopAccepting(deadlineMs: number): void {
    this.draining = true;
    for (const conn of this.connections) conn.send({ type: 'draining', deadlineMs });
  }

  /**
   * Waits up to `timeoutMs` for live scans to end on their own, then aborts the rest (their lines so far stay on
   * disk). Resolves when every scan is closed out.
   */
  /** Closes every portal connection with `code` (1001 when the gateway goes away), after its scans have ended. */
  closeConnections(code: number, reason: string): void {
    for (const conn of [...this.connections]) conn.close(code, reason);
  }

  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    const all = () => Promise.all([...this.live.values()].map((s) => s.whenEnded()));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const outcome = await Promise.race([all().then(() => 'done' as const), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      await Promise.all([...this.live.values()].map((s) => s.abort('gateway shut down before the scan ended')));
    }
  }

  /**
   * Last step of the gateway's close (after drain): aborts any scan still open, its lines kept (a start that failed
   * half-way, a test's teardown). Idempotent.
   */
  async close(): Promise<void> {
    this.draining = true;
    await Promise.all([...this.live.values()].map((s) => s.abort('gateway closed')));
    await this.committer.whenIdle();
    this.outputBuffers.clear();
    this.archiveBuffers.clear();
  }

  /**
   * A scanId for a scan.start without one: `<portalId>-<UTC second>-<6 hex digits>`, at most 64 characters (a long
   * portalId is shortened, never the time or the random part), and used by no live or stored scan: two scans of one
   * portal in the same second draw the same 24 random bits about once in 16 million, and then it is drawn again.
   */
  private newScanId(portalId: string): string {
    const t = new Date()
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z');
    for (;;) {
      const suffix = `-${t}-${randomBytes(3).toString('hex')}`;
      const scanId = `${portalId.slice(0, 64 - suffix.length)}${suffix}`;
      if (!this.live.has(scanId) && !this.store.hasScan(scanId)) return scanId;
    }
  }
}
