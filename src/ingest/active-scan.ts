/**
 * One scan being received: seq bookkeeping and acks, the scan's stitcher, the processing pump, progressive raw
 * archiving and the end of the scan (completed or aborted).
 *
 * Threads: everything here runs on the gateway's JS thread. Pixel work happens inside `stitcher.process()` off
 * that thread. Frame payloads are consumed synchronously (`stitcher.push` copies them) because the transport's
 * buffer dies when its message handler returns.
 */
import type { ScanBufferBudget } from './scan-budget.js';
import { performance } from 'node:perf_hooks';
import { ScanlineError, toScanlineError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { ProcessBuffers, ProcessResult, PushResult, Stitcher } from '../stitch/index.js';
import type { CommitParticipant, CommitWork, GroupCommitter, JournalContents, RawWriter, ScanJournalWriter, ScanStore } from '../storage/index.js';
import { crc32 } from 'node:zlib';
import type { Declaration, DetectorInfo, GatewayMessage, VehicleInfo } from '../protocol/index.js';
import { SliceKind, type SliceHeader } from '../protocol/index.js';
import type { ActiveScanState, IngestEventSink, ScanView } from './events.js';
import { observe } from '../metrics/index.js';
import { portalStatsOf, type IngestStats, type PortalIngestStats } from './stats.js';
import { RawArchiver } from './raw-archiver.js';
import type { BufferPool } from '../memory/index.js';

/** Where an active scan sends its messages: the portal connection it is attached to, if any. */
export interface ScanOwner {
  readonly portalId: string;
  send(message: GatewayMessage): void;
  /** Called once when the scan ends, so the owner forgets the stream. */
  release(streamId: number): void;
}

export interface ActiveScanInit {
  scanId: string;
  portalId: string;
  streamId: number;
  detector: DetectorInfo;
  vehicle: VehicleInfo | null;
  declaration: Declaration | null;
  startedAt: Date;
  stitcher: Stitcher;
  writer: RawWriter;
  store: ScanStore;
  events: IngestEventSink;
  stats: IngestStats;
  log: Logger;
  reorderWindowSlices: number;
  /** Longest a received line waits for its stitcher job, ms (config portal.stitchMaxDelayMs; 0 = a job per frame). */
  stitchMaxDelayMs: number;
  /** Tiles one process() job may write (sizes the tile buffer). */
  tileCapacity: number;
  /**
   * The gateway's pool of stitcher output buffers (tiles of one job, preview strip) of ended scans, for the next
   * scans; JS thread only. Fresh buffers (a tile buffer of 64 tiles is 2-3 MiB) are zero-filled page by page on the
   * event loop, in one block at every scan start that lands in the event-loop delay tail
   * (bench/RESULTS.md, 'Buffer pools'). The stitcher writes every tile and strip it reports, and listeners read only
   * those, so a reused buffer needs no clearing.
   */
  outputBuffers: BufferPool;
  /** The gateway's pool of O_DIRECT-aligned raw-archive buffers (RawArchiver). */
  archiveBuffers: BufferPool;
  /** Lines a frame may claim beyond those the scan received (portal.maxMissingLines). */
  maxMissingLines: number;
  /** What every open scan's lines may cost together; charged as the highest line grows, released at the end. */
  budget: ScanBufferBudget;
  /** The scan's journal (frames.log): what it accepted, for recovery after a crash. */
  journal: ScanJournalWriter;
  /** The gateway's group committer: makes journal and raw lines durable, many scans per sync. */
  committer: GroupCommitter;
  /** portal.ackDurability: 'disk' acks a frame once its lines are synced; 'memory' once they are in memory. */
  ackDurability: 'disk' | 'memory';
  /** Makes the new scan's directory entries durable, once before its first ack; null when they are (recovery). */
  syncDirectory: (() => Promise<void>) | null;
}

/** Lines pushed into a recovered scan's stitcher per call. */
const RESTORE_CHUNK_LINES = 1024;

/** Growable per-seq record of what each frame carried, to recognise replays. */
class SeqLedger {
  private kind = new Uint8Array(256);
  private firstLine = new Uint32Array(256);
  private lineCount = new Uint16Array(256);
  private seen = new Uint8Array(256);

  /** Distinct seqs recorded. */
  count = 0;

  has(seq: number): boolean {
    return seq < this.seen.length && this.seen[seq] === 1;
  }

  sameAs(seq: number, h: SliceHeader): boolean {
    return this.kind[seq] === h.kind && this.firstLine[seq] === h.firstLine && this.lineCount[seq] === h.lineCount;
  }

  record(seq: number, h: SliceHeader): void {
    if (seq >= this.seen.length) this.grow(seq + 1);
    if (this.seen[seq] === 0) this.count++;
    this.seen[seq] = 1;
    this.kind[seq] = h.kind;
    this.firstLine[seq] = h.firstLine;
    this.lineCount[seq] = h.lineCount;
  }

  private grow(min: number): void {
    let n = this.seen.length;
    while (n < min) n *= 2;
    const g = <T extends Uint8Array | Uint16Array | Uint32Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.kind = g(this.kind, (k) => new Uint8Array(k));
    this.firstLine = g(this.firstLine, (k) => new Uint32Array(k));
    this.lineCount = g(this.lineCount, (k) => new Uint16Array(k));
    this.seen = g(this.seen, (k) => new Uint8Array(k));
  }
}

export class ActiveScan implements ScanView, CommitParticipant {
  readonly scanId: string;
  readonly portalId: string;
  streamId: number;
  readonly detector: DetectorInfo;
  readonly vehicle: VehicleInfo | null;
  readonly declaration: Declaration | null;
  readonly startedAt: Date;
  state: ActiveScanState = 'receiving';
  owner: ScanOwner | null = null;
  /** Timer that aborts the scan when its connection dropped and no scan.resume came in time. */
  resumeTimer: NodeJS.Timeout | null = null;

  private readonly stitcher: Stitcher;
  private readonly writer: RawWriter;
  private readonly archiver: RawArchiver;
  private readonly store: ScanStore;
  private readonly events: IngestEventSink;
  private readonly stats: IngestStats;
  /** This scan's portal's counters, looked up once. */
  private readonly portalStats: PortalIngestStats;
  private readonly log: Logger;
  private readonly reorderWindowSlices: number;
  private readonly stitchMaxDelayMs: number;
  /** Raw lines one tile column spans (tile.size x tile.downsample); columns start every tile.strideLines. */
  private readonly tileSpanLines: number;
  private readonly outputBuffers: BufferPool;
  /** From outputBuffers; given back once the scan is closed out and no stitcher job can still write them. */
  private readonly buffers: ProcessBuffers;
  private buffersReturned = false;
  private closedOut = false;

  /** Every frame with seq < nextSeq has been stored. */
  private nextSeq = 0;
  /** Seqs >= nextSeq stored out of order. */
  private readonly ahead = new Set<number>();
  private readonly ledger = new SeqLedger();
  private imageSeen = false;
  private highestLine = 0;
  /** Distinct image lines stored (what was sent; highestLine is what was claimed). */
  private receivedLines = 0;
  private readonly maxMissingLines: number;
  private readonly budget: ScanBufferBudget;
  private readonly bytesPerLine: number;
  private charged = 0;
  private processing = false;
  /** Frames (or scan.end) arrived since the last job started. */
  private dirty = false;
  /** The last job left work ready (its job or tile limit was reached): the next job starts at once. */
  private moreReady = false;
  /** Started when a frame leaves lines waiting for a job: ends the wait after stitchMaxDelayMs. */
  private delayTimer: NodeJS.Timeout | null = null;
  private delayOver = false;
  private totalLines: number | null = null;
  private frontier = 0;
  /**
   * High-water marks of received lines: at time arrivalAt[i] (performance.now(), ms) lines below arrivalEnd[i] had
   * arrived. One entry per slice that raised the mark; read by lineReceivedAt for line-to-result latency.
   */
  private readonly arrivalEnd: number[] = [];
  private readonly arrivalAt: number[] = [];
  private ended: Promise<void> | null = null;
  private resolveEnded: (() => void) | null = null;
  recovered: { at: Date; lines: number } | null = null;
  /** Set for a completed scan scored again after a restart: its record (state, lines, end time) is left as it is. */
  keepRecord = false;

  // Durability (see beginCommit): frames wait in this queue for the write of their lines (ticket) and a sync.
  private readonly journal: ScanJournalWriter;
  private readonly committer: GroupCommitter;
  private readonly durableAcks: boolean;
  private syncDirectory: (() => Promise<void>) | null;
  private readonly ackTickets: number[] = [];
  private readonly ackSeqs: number[] = [];
  private readonly ackSince: number[] = [];
  private ackHead = 0;
  /** The archiver's last completed ticket. */
  private writtenTicket = 0;
  /** Raw lines written since the last sync began. */
  private rawDirty = false;
  /** The highest seq acknowledged as durable (cumulative); -1 before any. */
  private durableSeq = -1;
  /** The commit cycle of this scan in flight, if any; closeOut waits for it before closing the files. */
  private commitInFlight: Promise<void> | null = null;
  /** Set in closeOut: commit cycles leave the scan alone from then on. */
  private filesClosing = false;
  /** storageFailed told the owner already; closeOut does not repeat the error. */
  private storageErrorSent = false;

  constructor(init: ActiveScanInit) {
    this.scanId = init.scanId;
    this.portalId = init.portalId;
    this.streamId = init.streamId;
    this.detector = init.detector;
    this.vehicle = init.vehicle;
    this.declaration = init.declaration;
    this.stitcher = init.stitcher;
    this.writer = init.writer;
    this.archiver = new RawArchiver(
      init.stitcher,
      init.writer,
      init.stats,
      init.archiveBuffers,
      (first, count, crc, ticket) => this.onLinesWritten(first, count, crc, ticket),
      // A failed write (a full disk) is told at once: nothing after it is acknowledged, the scan is aborted.
      (err) => queueMicrotask(() => this.storageFailed(err)),
    );
    this.journal = init.journal;
    this.committer = init.committer;
    this.durableAcks = init.ackDurability === 'disk';
    this.syncDirectory = init.syncDirectory;
    this.outputBuffers = init.outputBuffers;
    this.store = init.store;
    this.events = init.events;
    this.stats = init.stats;
    this.portalStats = portalStatsOf(init.stats, init.portalId);
    this.log = init.log;
    this.reorderWindowSlices = init.reorderWindowSlices;
    this.stitchMaxDelayMs = init.stitchMaxDelayMs;
    this.tileSpanLines = init.stitcher.options.tile.size * init.stitcher.options.tile.downsample;
    this.startedAt = init.startedAt;
    this.buffers = {
      tiles: new Float32Array(this.outputBuffers.take(init.stitcher.tileFloats * init.tileCapacity * 4) as ArrayBuffer),
      preview: new Uint8Array(this.outputBuffers.take(init.stitcher.previewBytes) as ArrayBuffer),
    };
    this.maxMissingLines = init.maxMissingLines;
    this.budget = init.budget;
    this.bytesPerLine = init.detector.pixels * init.detector.energies * 2;
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  /** Distinct image lines received so far (a replayed or overlapping frame adds none). */
  get linesReceived(): number {
    return this.receivedLines;
  }

  /** Bytes this scan holds of the open-scan budget (its highest line's worth); given back once it has ended. */
  get chargedBytes(): number {
    return this.charged;
  }

  /**
   * Where a resuming portal continues: the first seq not yet acknowledged as stored. With disk durability frames
   * received but not yet synced are sent again (they are replays, answered as duplicates): the portal must not drop
   * what the gateway could still lose.
   */
  get resumeSeq(): number {
    return this.durableAcks ? this.durableSeq + 1 : this.nextSeq;
  }

  /** Lines received so far: 1 + the highest line stored. */
  get lines(): number {
    return this.totalLines ?? this.highestLine;
  }

  /**
   * When `line` arrived (performance.now(), ms): the time the received-line high-water mark first passed it, or NaN
   * before that. A line that arrived late, after a later line (reordering, a gap filled on resend), is dated by the
   * later line, so its latency reads a little short.
   */
  lineReceivedAt(line: number): number {
    const ends = this.arrivalEnd;
    let lo = 0;
    let hi = ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ends[mid] > line) hi = mid;
      else lo = mid + 1;
    }
    return lo < ends.length ? this.arrivalAt[lo] : Number.NaN;
  }

  /** Resolves once the scan is completed or aborted and its files are closed. */
  whenEnded(): Promise<void> {
    return this.ended ?? Promise.resolve();
  }

  /**
   * Stores one binary frame and returns the cumulative ack seq to send, or throws a ScanlineError for the portal.
   * `payload` is only valid during this call.
   */
  acceptFrame(header: SliceHeader, payload: Uint16Array): number {
    if (this.state !== 'receiving') {
      throw new ScanlineError('SCANLINE_ERR_STREAM_UNKNOWN', `stream ${header.streamId} is ${this.state}; no more frames are accepted`, {
        streamId: header.streamId,
        seq: header.seq,
      });
    }
    const seq = header.seq;
    const replay = seq < this.nextSeq || this.ahead.has(seq);
    if (replay) {
      if (!this.ledger.sameAs(seq, header)) {
        throw new ScanlineError('SCANLINE_ERR_SLICE_REPLAY_MISMATCH', `seq ${seq} was already received with different kind/firstLine/lineCount`, {
          streamId: header.streamId,
          seq,
        });
      }
    } else if (seq >= this.nextSeq + this.reorderWindowSlices) {
      throw new ScanlineError(
        'SCANLINE_ERR_SLICE_SEQ_AHEAD',
        `seq ${seq} is more than ${this.reorderWindowSlices} frames ahead of the first missing seq ${this.nextSeq}; resend from nextSeq`,
        { streamId: header.streamId, seq, nextSeq: this.nextSeq },
      );
    }
    if (header.kind === SliceKind.Image && header.firstLine + header.lineCount > this.stitcher.options.maxLines) {
      throw new ScanlineError(
        'SCANLINE_ERR_SLICE_LINE_RANGE',
        `lines ${header.firstLine}..${header.firstLine + header.lineCount - 1} exceed the scan limit of ${this.stitcher.options.maxLines} lines`,
        { streamId: header.streamId, seq },
      );
    }
    const end = header.firstLine + header.lineCount;
    if (header.kind === SliceKind.Image && !replay && end > this.highestLine) {
      // Lines claimed past what was received are charged before anything is stored: a sparse frame is refused long
      // before it costs memory or disk (docs/security.md, limits).
      const missing = end - (this.receivedLines + header.lineCount);
      if (missing > this.maxMissingLines) {
        throw new ScanlineError(
          'SCANLINE_ERR_LIMIT_SPARSE',
          `lines ${header.firstLine}..${end - 1} would leave ${missing} lines of the scan missing; at most ${this.maxMissingLines} may be (portal.maxMissingLines)`,
          { streamId: header.streamId, seq },
        );
      }
      const cost = (end - this.highestLine) * this.bytesPerLine;
      if (!this.budget.charge(cost)) {
        throw new ScanlineError(
          'SCANLINE_ERR_LIMIT_SCAN_MEMORY',
          `open scans hold ${this.budget.used} of ${this.budget.limitBytes} bytes (portal.scanBufferBudgetBytes); lines up to ${end - 1} need ${cost} more`,
          { streamId: header.streamId, seq },
        );
      }
      this.charged += cost;
    }
    if (header.kind !== SliceKind.Image && this.imageSeen && !replay) {
      throw new ScanlineError('SCANLINE_ERR_SLICE_CALIBRATION_LATE', 'dark and air frames must come before the first image slice of the scan', {
        streamId: header.streamId,
        seq,
      });
    }
    let result: PushResult | null;
    try {
      // A replayed calibration frame is not accumulated twice: its ledger entry already matched.
      result = header.kind !== SliceKind.Image && replay ? null : this.stitcher.push(header.kind, header.firstLine, header.lineCount, payload);
    } catch (err) {
      const e = toScanlineError(err, 'SCANLINE_ERR_STITCH_FAILED');
      e.details.streamId = header.streamId;
      e.details.seq = seq;
      throw e;
    }
    if (replay) {
      this.stats.duplicateFrames++;
      this.portalStats.duplicateFrames++;
      return this.durableAcks ? this.durableSeq : this.nextSeq - 1;
    }
    this.ledger.record(seq, header);
    // Lines go to the archive as they arrive (the journal says which are written), calibration frames into the journal.
    const ticket = header.kind === SliceKind.Image ? this.archiver.enqueue(header.firstLine, header.lineCount) : this.archiver.lastTicket;
    this.journal.appendFrame(seq, header.kind, header.firstLine, header.lineCount, header.kind === SliceKind.Image ? null : payload);
    if (header.kind === SliceKind.Image) {
      this.imageSeen = true;
      if (end > this.highestLine) {
        this.highestLine = end;
        this.arrivalEnd.push(end);
        this.arrivalAt.push(performance.now());
      }
      const newLines = result?.newLines ?? 0;
      this.receivedLines += newLines;
      this.stats.linesReceived += newLines;
      this.portalStats.linesReceived += newLines;
    }
    if (seq === this.nextSeq) {
      this.nextSeq++;
      while (this.ahead.delete(this.nextSeq)) this.nextSeq++;
    } else {
      this.ahead.add(seq);
    }
    this.dirty = true;
    this.pump();
    const ack = this.nextSeq - 1;
    if (!this.durableAcks) {
      this.committer.markDirty(this); // the journal is still written, without waiting for it
      return ack;
    }
    this.ackTickets.push(ticket);
    this.ackSeqs.push(ack);
    this.ackSince.push(performance.now());
    if (ticket <= this.writtenTicket) this.committer.markDirty(this);
    return -1; // acknowledged by the commit that makes it durable
  }

  /** The archiver finished a write: journal it; the frames it completes are acknowledged by the next commit. */
  private onLinesWritten(firstLine: number, lineCount: number, crc: number, ticket: number): void {
    if (this.filesClosing) return; // closeOut drained the archiver first: nothing is written after
    this.journal.appendLines(firstLine, lineCount, crc);
    this.writtenTicket = ticket;
    this.rawDirty = true;
    this.committer.markDirty(this);
  }

  /**
   * One group-commit cycle of this scan (GroupCommitter): takes the journal records appended so far and the frames
   * whose lines are written, syncs the journal and the raw file, then acknowledges those frames (cumulative ack).
   */
  beginCommit(): CommitWork | null {
    if (this.filesClosing) return null;
    let target = -1;
    const since: number[] = [];
    while (this.ackHead < this.ackTickets.length && this.ackTickets[this.ackHead] <= this.writtenTicket) {
      target = this.ackSeqs[this.ackHead];
      since.push(this.ackSince[this.ackHead]);
      this.ackHead++;
    }
    if (this.ackHead > 1024 && this.ackHead * 2 > this.ackTickets.length) {
      this.ackTickets.splice(0, this.ackHead);
      this.ackSeqs.splice(0, this.ackHead);
      this.ackSince.splice(0, this.ackHead);
      this.ackHead = 0;
    }
    if (this.journal.pendingBytes === 0 && target < 0 && !this.rawDirty) return null;
    const syncRaw = this.rawDirty && this.durableAcks;
    this.rawDirty = false;
    const syncDirectory = this.durableAcks ? this.syncDirectory : null;
    let finish: () => void = () => undefined;
    this.commitInFlight = new Promise((resolve) => (finish = resolve));
    return {
      run: async () => {
        const journalDone = this.journal.pendingBytes > 0 ? this.journal.commit(this.durableAcks) : Promise.resolve();
        await Promise.all([journalDone, syncRaw ? this.writer.sync() : undefined]);
        if (syncDirectory) await syncDirectory();
      },
      done: (err) => {
        this.commitInFlight = null;
        finish();
        if (err) {
          this.storageFailed(err);
          return;
        }
        if (syncDirectory) this.syncDirectory = null;
        if (target > this.durableSeq) {
          this.durableSeq = target;
          const now = performance.now();
          for (const t of since) observe(this.stats.ackDelay, (now - t) / 1000);
          this.owner?.send({ type: 'ack', streamId: this.streamId, seq: target });
        }
      },
    };
  }

  /** A write or sync of the scan's files failed: nothing more is acknowledged; the scan is aborted with the error. */
  private storageFailed(err: unknown): void {
    if (this.state === 'aborted' || this.state === 'completed') return;
    const e = toScanlineError(err, 'SCANLINE_ERR_STORAGE_WRITE');
    this.stats.storageFailures++;
    this.log.error({ err: e, scanId: this.scanId }, 'storing the scan failed; aborting it');
    this.owner?.send({ type: 'error', code: e.code, message: e.message, streamId: this.streamId });
    this.storageErrorSent = true;
    void this.abort(`storage failed: ${e.message}`);
  }

  /**
   * Rebuilds a scan interrupted by a crash from its journal and raw lines (read by the caller), before any portal
   * is attached: what the journal proves stored is pushed into the stitcher again (calibration first), the frames
   * whose lines all survived count as received and acknowledged, and stitching starts over so its tiles are scored
   * again. A journaled scan.end ends the scan. Returns what was recovered.
   */
  restore(journal: JournalContents, raw: Uint8Array): { lines: number; frames: number; nextSeq: number } {
    const bpl = this.bytesPerLine;
    const rawLines = Math.floor(raw.byteLength / bpl);
    const stored = new Uint8Array(Math.min(rawLines, this.stitcher.options.maxLines));
    for (const r of journal.lines) {
      const end = r.firstLine + r.lineCount;
      if (r.lineCount === 0 || end > stored.length) continue;
      if (crc32(raw.subarray(r.firstLine * bpl, end * bpl)) !== r.crc) continue; // the record reached the disk, its lines did not
      stored.fill(1, r.firstLine, end);
    }
    for (const f of journal.frames) {
      if (f.kind === SliceKind.Image || f.payload === null || this.ledger.has(f.seq)) continue;
      this.stitcher.push(f.kind as SliceKind, f.firstLine, f.lineCount, f.payload);
      this.ledger.record(f.seq, { kind: f.kind, firstLine: f.firstLine, lineCount: f.lineCount } as SliceHeader);
      this.ahead.add(f.seq);
    }
    const aligned = raw.byteOffset % 2 === 0 ? raw : new Uint8Array(raw);
    let lines = 0;
    for (let line = 0; line < stored.length; ) {
      if (!stored[line]) {
        line++;
        continue;
      }
      let end = line;
      while (end < stored.length && stored[end] && end - line < RESTORE_CHUNK_LINES) end++;
      const values = new Uint16Array(aligned.buffer, aligned.byteOffset + line * bpl, ((end - line) * bpl) / 2);
      lines += this.stitcher.push(SliceKind.Image, line, end - line, values).newLines;
      line = end;
    }
    for (const f of journal.frames) {
      if (f.kind !== SliceKind.Image || this.ledger.has(f.seq)) continue;
      const end = f.firstLine + f.lineCount;
      if (end > stored.length || stored.subarray(f.firstLine, end).indexOf(0) !== -1) continue; // not all its lines survived
      this.ledger.record(f.seq, { kind: f.kind, firstLine: f.firstLine, lineCount: f.lineCount } as SliceHeader);
      this.ahead.add(f.seq);
      this.imageSeen = true;
      if (end > this.highestLine) this.highestLine = end;
    }
    while (this.ahead.delete(this.nextSeq)) this.nextSeq++;
    this.durableSeq = this.nextSeq - 1;
    this.receivedLines = lines;
    this.charged = this.highestLine * bpl;
    this.budget.force(this.charged);
    if (this.highestLine > 0) {
      this.arrivalEnd.push(this.highestLine);
      this.arrivalAt.push(performance.now());
    }
    this.recovered = { at: new Date(), lines };
    this.dirty = true;
    this.pump();
    // The journaled scan.end ends the scan only when every frame it followed survived (the last frames' lines may
    // not have reached the disk although their records and the end did): else the portal resends them.
    if (
      journal.endLines !== null &&
      (journal.endFrames === null || journal.endFrames === this.nextSeq) &&
      this.ahead.size === 0 &&
      journal.endLines >= this.highestLine
    ) {
      try {
        this.end(journal.endLines);
      } catch (err) {
        this.log.warn({ err, scanId: this.scanId }, 'the journaled scan.end cannot end the recovered scan; it waits for its portal');
      }
    }
    return { lines, frames: this.ledger.count, nextSeq: this.nextSeq };
  }

  /**
   * Ends the scan at `totalLines`. Throws SCANLINE_ERR_SCAN_INCOMPLETE (with nextSeq) while frames are missing,
   * and SCANLINE_ERR_PROTO_INVALID when totalLines contradicts the lines received.
   */
  end(totalLines: number): void {
    if (this.state !== 'receiving') {
      if (this.state === 'finishing' && totalLines === this.totalLines) return; // repeated scan.end: idempotent
      throw new ScanlineError('SCANLINE_ERR_STREAM_UNKNOWN', `stream ${this.streamId} is ${this.state}`, { streamId: this.streamId });
    }
    if (this.ahead.size > 0) {
      throw new ScanlineError(
        'SCANLINE_ERR_SCAN_INCOMPLETE',
        `frames from seq ${this.nextSeq} are missing (${this.ahead.size} later frames arrived); resend from nextSeq, then scan.end again`,
        { streamId: this.streamId, nextSeq: this.nextSeq },
      );
    }
    if (totalLines < this.highestLine) {
      throw new ScanlineError('SCANLINE_ERR_PROTO_INVALID', `scan.end totalLines ${totalLines} is below the ${this.highestLine} lines already received`, {
        streamId: this.streamId,
      });
    }
    if (totalLines > this.stitcher.options.maxLines) {
      throw new ScanlineError('SCANLINE_ERR_SCAN_TOO_LONG', `scan.end totalLines ${totalLines} exceeds the limit of ${this.stitcher.options.maxLines}`, {
        streamId: this.streamId,
      });
    }
    if (totalLines === 0) {
      throw new ScanlineError('SCANLINE_ERR_PROTO_INVALID', 'scan.end totalLines is 0: abort an empty scan with scan.abort', { streamId: this.streamId });
    }
    this.state = 'finishing';
    this.totalLines = totalLines;
    this.journal.appendEnd(totalLines, this.nextSeq);
    this.committer.markDirty(this);
    this.stitcher.finish(totalLines);
    this.dirty = true;
    this.pump();
  }

  /** Aborts the scan: keeps what was received on disk, marks it aborted and tells the owner. */
  abort(reason: string): Promise<void> {
    if (this.state === 'completed' || this.state === 'aborted') return this.whenEnded();
    this.state = 'aborted';
    this.clearResumeTimer();
    this.clearDelayTimer();
    void this.closeOut('aborted', reason);
    return this.whenEnded();
  }

  clearResumeTimer(): void {
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.resumeTimer = null;
  }

  /** Copies raw lines for a live scan (see Stitcher.readRaw). */
  readRaw(firstLine: number, lineCount: number, out: Uint16Array): void {
    this.stitcher.readRaw(firstLine, lineCount, out);
  }

  /**
   * Starts the next stitcher job when one is due; one job at a time. A job is due at once when a received line
   * completes the next tile column (so tiles never wait), when the scan is finishing, when the last job left work
   * ready, or when maxLinesPerJob lines wait; otherwise lines wait up to stitchMaxDelayMs and are stitched together.
   */
  private pump(): void {
    if (this.processing || !(this.dirty || this.moreReady) || this.state === 'aborted' || this.state === 'completed') return;
    if (!this.jobDue()) {
      this.delayTimer ??= setTimeout(() => {
        this.delayTimer = null;
        this.delayOver = true;
        this.pump();
      }, this.stitchMaxDelayMs);
      return;
    }
    this.clearDelayTimer();
    this.dirty = false;
    this.moreReady = false;
    this.processing = true;
    const started = process.hrtime.bigint();
    this.stitcher.process(this.buffers).then(
      (result) => {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        this.stats.stitchJobs++;
        this.stats.stitchSeconds += seconds;
        observe(this.stats.stitchJobSeconds, seconds);
        this.processing = false;
        this.onProcessed(result);
        this.returnBuffers();
      },
      (err: unknown) => {
        this.processing = false;
        this.returnBuffers();
        const e = toScanlineError(err, 'SCANLINE_ERR_STITCH_FAILED');
        this.log.error({ err: e, scanId: this.scanId }, 'stitcher job failed; aborting the scan');
        this.owner?.send({ type: 'error', code: e.code, message: e.message, streamId: this.streamId });
        void this.abort(`stitcher failed: ${e.message}`);
      },
    );
  }

  private jobDue(): boolean {
    if (this.moreReady || this.delayOver || this.stitchMaxDelayMs === 0 || this.state !== 'receiving') return true;
    const frontier = this.frontier;
    if (this.highestLine - frontier >= this.stitcher.options.maxLinesPerJob) return true;
    // The end of the first tile column not yet cut: every column ending at or below the frontier has been.
    const span = this.tileSpanLines;
    const stride = this.stitcher.options.tile.strideLines;
    const nextColumn = frontier < span ? 0 : Math.floor((frontier - span) / stride) + 1;
    return this.highestLine >= nextColumn * stride + span;
  }

  private clearDelayTimer(): void {
    if (this.delayTimer) clearTimeout(this.delayTimer);
    this.delayTimer = null;
    this.delayOver = false;
  }

  private onProcessed(r: ProcessResult): void {
    if (this.state === 'aborted') return;
    if (r.tiles.length > 0) {
      this.stats.tilesProduced += r.tiles.length;
      this.portalStats.tilesProduced += r.tiles.length;
      this.events.emitTiles(this, r.tiles, this.buffers.tiles, this.stitcher.tileFloats);
    }
    if (r.preview) this.events.emitPreview(this, r.preview, this.buffers.preview);
    this.frontier = r.frontier;
    if (r.more) this.moreReady = true;
    if (this.state === 'finishing' && r.done) {
      this.state = 'completed';
      void this.closeOut('completed', null);
      return;
    }
    this.pump();
  }

  /** Gives the output buffers back to outputBuffers once the scan is closed out and no job is running. */
  private returnBuffers(): void {
    if (!this.closedOut || this.processing || this.buffersReturned) return;
    this.buffersReturned = true;
    this.outputBuffers.give(this.buffers.tiles.buffer as ArrayBuffer);
    this.outputBuffers.give(this.buffers.preview.buffer as ArrayBuffer);
  }

  /**
   * Final flush (the raw file and the journal synced and closed), record update, owner notification, stitcher
   * release. Every frame received is durable before the outcome is told.
   */
  private async closeOut(state: 'completed' | 'aborted', reason: string | null): Promise<void> {
    const end = state === 'completed' ? (this.totalLines as number) : this.highestLine;
    let failure: ScanlineError | null = null;
    try {
      await this.archiver.drain();
      this.filesClosing = true;
      await this.commitInFlight;
      await this.writer.close(true);
      await this.journal.commit(true);
      await this.journal.close();
      if (this.syncDirectory) await this.syncDirectory();
      this.syncDirectory = null;
      if (this.durableAcks && state === 'completed' && this.nextSeq - 1 > this.durableSeq) {
        this.durableSeq = this.nextSeq - 1;
        this.owner?.send({ type: 'ack', streamId: this.streamId, seq: this.durableSeq });
      }
    } catch (err) {
      failure = toScanlineError(err, 'SCANLINE_ERR_STORAGE_WRITE');
      this.stats.storageFailures++;
      this.log.error({ err: failure, scanId: this.scanId }, 'archiving the raw lines failed');
      this.filesClosing = true;
      // A commit may still have a write or sync queued on these descriptors: closing them first could let a reused
      // descriptor number take its bytes.
      await this.commitInFlight;
      await this.writer.close(false).catch(() => undefined);
      this.journal.closeNow();
    }
    this.archiver.release();
    // Lines never stored below the end (a late line that filled part of a declared gap is stored and not listed).
    const finalGaps = end > 0 ? this.stitcher.missingRanges(0, end) : [];
    let gapLines = 0;
    for (const [a, b] of finalGaps) gapLines += b - a;
    this.stats.gapLines += gapLines;
    this.portalStats.gapLines += gapLines;
    try {
      // A completed scan scored again after a restart keeps its record as it was. An end the store cannot write (a
      // full disk, a lock held too long) waits in it, shown by its reads and written later: the lines and journal
      // synced above prove it.
      if (!this.keepRecord) {
        const written = this.store.endScan(this.scanId, {
          state: failure && state === 'completed' ? 'aborted' : state,
          lines: end,
          gaps: finalGaps,
          endedAt: new Date().toISOString(),
          reason: failure ? `archive failed: ${failure.message}` : reason,
        });
        if (written === 'pending') this.stats.storageFailures++;
      }
    } catch (err) {
      this.stats.storageFailures++;
      this.log.error({ err, scanId: this.scanId }, 'updating the scan record failed');
    }
    const stitcherStats = this.stitcher.stats();
    this.stitcher.close();
    this.closedOut = true;
    this.returnBuffers();
    this.clearResumeTimer();
    this.clearDelayTimer();
    try {
      // The outcome is told once the record that says it is on stable storage (updateScan is a deferred commit).
      if (!this.keepRecord) await this.store.durable();
    } catch (err) {
      this.stats.storageFailures++;
      this.log.error({ err, scanId: this.scanId }, 'making the scan record durable failed');
    }
    if (state === 'completed' && !failure) {
      this.stats.scansCompleted++;
      this.portalStats.scansCompleted++;
      this.owner?.send({ type: 'scan.completed', streamId: this.streamId, scanId: this.scanId, lines: end, gaps: finalGaps });
      this.log.info({ scanId: this.scanId, portalId: this.portalId, lines: end, gaps: finalGaps.length, lateLines: stitcherStats.lateLines }, 'scan completed');
      this.events.emitCompleted(this);
    } else {
      this.state = 'aborted';
      this.stats.scansAborted++;
      this.portalStats.scansAborted++;
      const why = failure ? `archive failed: ${failure.message}` : (reason ?? 'aborted');
      if (failure && !this.storageErrorSent) this.owner?.send({ type: 'error', code: failure.code, message: failure.message, streamId: this.streamId });
      this.owner?.send({ type: 'scan.aborted', streamId: this.streamId, scanId: this.scanId, reason: why });
      this.log.info({ scanId: this.scanId, portalId: this.portalId, lines: end, reason: why }, 'scan aborted');
      this.events.emitAborted(this, why);
    }
    this.owner?.release(this.streamId);
    this.owner = null;
    this.resolveEnded?.();
  }
}
