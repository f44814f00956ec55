/**
 * The operator hub: fans what ingest and results produce out to the connected screens.
 *
 *   ingest scanStarted / preview / scanCompleted / scanAborted ─┐
 *   results suggestions / alert / declaration / final ──────────┼─► OperatorHub ─► every screen that watches the
 *   decisions (POST /v1/scans/:id/decision) ────────────────────┘    lane or scan (OperatorSession, its policy)
 *
 * Contracts:
 * - Each preview strip is PNG-encoded once (sharp, off the JS thread) and the same bytes go to every screen; strips
 *   of one scan are encoded and fanned out in order. No screen watching a scan: its strips are not encoded.
 * - A screen gets a live scan's snapshot (summary, machine results so far, decisions, image so far) before any of
 *   its increments; increments after it carry everything since. Once a scan has ended and its preview is stored,
 *   what still comes for it (late suggestions and alerts while its last tiles are scored, `results.final`,
 *   `decision`) is self-contained and goes to every screen that watches its lane or the scan.
 * - What the hub keeps per screen is bounded: the live scans it was introduced to, at most MAX_WATCHED_PORTALS lanes
 *   and MAX_WATCHED_SCANS single scans, and the scans waiting for a resync; uWS holds at most
 *   operator.maxBufferedBytes of its unsent messages.
 * - Control messages are never dropped for a connected screen (OperatorSession documents the policy); strips are
 *   coalesced for a slow one and counted.
 * - The material preview of every scan is stored as `preview.png` in its scan directory once the scan ends (the
 *   image endpoint and history read it).
 * - Listener callbacks run synchronously on the gateway thread and copy what they keep (the stitcher reuses its
 *   buffers after the call).
 */
import { performance } from 'node:perf_hooks';
import { ScanlineError, toScanlineErrorOrInternal } from '../errors/index.js';
import type { ScanView, IngestListeners } from '../ingest/index.js';
import type { Logger } from '../log/index.js';
import { BufferPool } from '../memory/index.js';
import type { ResultsListeners } from '../results/index.js';
import type { ScanResultsReport } from '../protocol/index.js';
import type { ScanRecord, ScanStore, StoredDecision } from '../storage/index.js';
import type { PreviewStrip } from '../stitch/index.js';
import type { OperatorConfig } from './config.js';
import { OperatorSession, type OperatorTransport } from './operator-session.js';
import { PreviewCanvas, encodeRgbPng, stripToRgb } from './preview-canvas.js';
import {
  ImageFormat,
  ImageFrameKind,
  MAX_WATCHED_PORTALS,
  MAX_WATCHED_SCANS,
  OPERATOR_PROTOCOL_VERSION,
  encodeImageFrame,
  parseClientMessage,
  type LaneStatus,
  type OperatorServerMessage,
  type ScanSummary,
} from '../protocol/index.js';

/** Where the hub reads machine reports (live or stored): the ResultsService. */
export interface ResultsReader {
  report(scanId: string): ScanResultsReport | undefined;
}

export interface OperatorHubOptions {
  store: ScanStore;
  /** null when the gateway runs without inference. */
  results: ResultsReader | null;
  config: OperatorConfig;
  /** stitch.previewDownsample: raw lines (and pixels) per preview sample. */
  previewDownsample: number;
  /** Product and version for `welcome`, e.g. "scanline 0.1.0". */
  gateway: string;
  log: Logger;
  /**
   * Called for every suggestion or alert update handed to a screen's socket: a tile's last line received → its
   * result sent to that screen, seconds, and the portal it came from. The hub keeps no histogram of its own: the
   * metrics stage owns scanline_line_to_screen_seconds{portal} (GET /metrics), which bench:fanout reads too.
   */
  observeLineToScreen?: (seconds: number, portalId: string) => void;
  /** Called when a scan is first shown on a screen (its first view, live or from history): who looked at what. */
  onScanShown?: (operatorId: string, scanId: string) => void;
}

/** Plain counters for the metrics stage (read at scrape time). */
export interface OperatorHubStats {
  /** Screens connected now. */
  operators: number;
  /** Subscription entries (lanes and scans) over all screens now. */
  subscriptions: number;
  /**
   * Scan ids the hub holds for screens now, summed over screens: live scans each was introduced to, scans waiting
   * for a resync, single scans subscribed. Bounded: it drops a scan once it ended and its preview is stored.
   */
  trackedScans: number;
  /** Bytes queued in screens' sockets now. */
  bytesBuffered: number;
  stripsEncoded: number;
  /** Strip frames handed to sockets. */
  stripsSent: number;
  /**
   * Strip frames not sent to a screen that was behind (a snapshot of the scan replaced them, including the strip
   * that triggers a resync): the only messages ever dropped. Every strip offered to a screen that stays connected
   * is counted once, in stripsSent or here.
   */
  stripsCoalesced: number;
  /** Snapshots sent (first views and resyncs). */
  snapshotsSent: number;
  /** Snapshots sent to catch a screen up after coalescing or on request. */
  resyncs: number;
  /** JSON messages handed to sockets. */
  controlSent: number;
  /** Screens closed because even a control message could not be queued (SCANLINE_ERR_OPERATOR_TOO_SLOW). */
  disconnectedSlow: number;
  /** Screens refused at the connection limit. */
  refused: number;
  /** Messages from screens refused with an error. */
  badMessages: number;
  /** Preview encodes or writes that failed (logged). */
  imageFailures: number;
}

/** A live scan as the hub keeps it, until its preview is stored. */
interface LiveView {
  summary: ScanSummary;
  canvas: PreviewCanvas;
  /** Strips added so far (the seq of the last one). */
  stripSeq: number;
  /** Strip encodes and fan-outs of this scan run in order on this chain. */
  tail: Promise<void>;
  /** Encoded snapshot image, shared by screens asking at the same strip seq. */
  snapshot: { seq: number; png: Promise<Buffer | null> } | null;
}

function summaryOf(record: ScanRecord): ScanSummary {
  return {
    scanId: record.scanId,
    portalId: record.portalId,
    state: record.state,
    lines: record.lines,
    detector: { ...record.detector },
    vehicle: record.vehicle,
    declaration: record.declaration ? { hsCodes: [...record.declaration.hsCodes] } : null,
    startedAt: record.startedAt,
    endedAt: record.endedAt,
  };
}

export class OperatorHub {
  private readonly sessions = new Set<OperatorSession>();
  private readonly views = new Map<string, LiveView>();
  private readonly lanes = new Map<string, LaneStatus>();
  private nextSessionId = 1;
  private closed = false;
  private readonly counters = {
    stripsEncoded: 0,
    snapshotsSent: 0,
    resyncs: 0,
    disconnectedSlow: 0,
    refused: 0,
    badMessages: 0,
    imageFailures: 0,
    stripsSentClosed: 0,
    stripsCoalescedClosed: 0,
    controlSentClosed: 0,
  };
  /** Canvas memory of ended scans for the next scans (PreviewCanvas), bounded at about 8 trucks; JS thread only. */
  private readonly canvasMemory = new BufferPool(64 << 20);
  /** Preview files being written, so close() can wait for them. */
  private readonly writes = new Set<Promise<void>>();

  constructor(private readonly o: OperatorHubOptions) {
    this.loadLanes();
  }

  // ---- wiring ---------------------------------------------------------------------------------------------------

  ingestListener(): IngestListeners {
    return {
      scanStarted: (scan) => this.onScanStarted(scan),
      preview: (scan, strip, rgba) => this.onPreview(scan, strip, rgba),
      scanCompleted: (scan) => this.onScanEnded(scan),
      scanAborted: (scan) => this.onScanEnded(scan),
    };
  }

  resultsListener(): ResultsListeners {
    return {
      suggestions: (scanId, portalId, segments, lastLineAt) =>
        this.broadcast(portalId, scanId, { type: 'suggestions', scanId, portalId, segments }, lastLineAt),
      alert: (scanId, portalId, alert, lastLineAt) => this.broadcast(portalId, scanId, { type: 'alert', scanId, portalId, alert }, lastLineAt),
      distribution: (scanId, portalId, change) => this.broadcast(portalId, scanId, { type: 'distribution', scanId, portalId, ...change }),
      declaration: (scanId, portalId, check) => this.broadcast(portalId, scanId, { type: 'declaration', scanId, portalId, check }),
      final: (report) => {
        const lane = this.lanes.get(report.portalId);
        if (lane && lane.lastScanId === report.scanId) {
          lane.alarmDecision = report.alarmDecision;
          lane.updatedAt = new Date().toISOString();
          this.broadcastAll({ type: 'lane', lane });
        }
        this.broadcast(report.portalId, report.scanId, { type: 'results.final', scanId: report.scanId, portalId: report.portalId, report });
      },
    };
  }

  /** True while another screen may connect (operator.maxOperators); counts a refusal when not. */
  admit(): boolean {
    if (!this.closed && this.sessions.size < this.o.config.maxOperators) return true;
    this.counters.refused++;
    return false;
  }

  /** A screen connected (its operator id already validated). Sends `welcome`. */
  connect(operatorId: string, transport: OperatorTransport): OperatorSession {
    const session = new OperatorSession(this.nextSessionId++, operatorId, transport, this.o.config.stripBufferBytes, (s) => {
      this.counters.disconnectedSlow++;
      this.o.log.warn({ operatorId: s.operatorId, session: s.id }, 'operator screen too slow to take a control message; disconnected');
      this.forget(s);
    });
    this.sessions.add(session);
    session.sendControl({
      type: 'welcome',
      protocol: OPERATOR_PROTOCOL_VERSION,
      gateway: this.o.gateway,
      operatorId,
      lanes: this.laneList(),
      limits: { maxMessageBytes: this.o.config.maxMessageBytes },
    });
    this.o.log.info({ operatorId, session: session.id, operators: this.sessions.size }, 'operator screen connected');
    return session;
  }

  /** A text message from a screen (already copied out of the transport's buffer). */
  onMessage(session: OperatorSession, text: string): void {
    if (session.closed) return;
    try {
      const m = parseClientMessage(text);
      switch (m.type) {
        case 'hello':
          if (m.protocol !== OPERATOR_PROTOCOL_VERSION) {
            throw new ScanlineError(
              'SCANLINE_ERR_OPERATOR_VERSION',
              `operator feed protocol ${m.protocol} is not supported; this gateway speaks ${OPERATOR_PROTOCOL_VERSION}`,
            );
          }
          return;
        case 'subscribe':
          this.subscribe(session, m.portals, m.scans);
          return;
        case 'unsubscribe':
          for (const p of m.portals) session.portals.delete(p);
          for (const s of m.scans) session.scans.delete(s);
          for (const id of [...session.introduced, ...session.stale]) {
            const portalId = this.views.get(id)?.summary.portalId ?? this.o.store.getScan(id)?.portalId ?? '';
            if (!session.watches(portalId, id)) {
              session.introduced.delete(id);
              session.stale.delete(id);
            }
          }
          session.sendControl({ type: 'subscribed', ...session.subscription() });
          return;
        case 'resync': {
          const portalId = this.views.get(m.scanId)?.summary.portalId ?? this.o.store.getScan(m.scanId)?.portalId;
          if (portalId === undefined) throw new ScanlineError('SCANLINE_ERR_SCAN_UNKNOWN', `no scan ${m.scanId}`, { scanId: m.scanId });
          if (!session.watches(portalId, m.scanId)) {
            throw new ScanlineError(
              'SCANLINE_ERR_OPERATOR_MESSAGE',
              `resync of ${m.scanId}: this screen does not watch the scan or its lane; subscribe first`,
              { scanId: m.scanId },
            );
          }
          this.sendSnapshot(session, m.scanId, true);
          return;
        }
      }
    } catch (err) {
      // A coded refusal goes back as it is; anything else is a failure of ours: logged with its stack, answered as
      // SCANLINE_ERR_INTERNAL without its text.
      const e = toScanlineErrorOrInternal(err);
      if (e.code === 'SCANLINE_ERR_INTERNAL') this.o.log.error({ err, operatorId: session.operatorId }, 'operator message failed');
      this.refuse(session, e);
    }
  }

  /** Answers a message the screen sent that the feed refuses (bad JSON, schema, binary, oversize) with a coded error. */
  refuse(session: OperatorSession, err: ScanlineError): void {
    this.counters.badMessages++;
    session.sendControl({ type: 'error', ...err.toJSON() });
  }

  /** The screen's socket drained: resync the scans whose strips were coalesced. */
  onDrain(session: OperatorSession): void {
    for (const scanId of session.drainedStale()) this.sendSnapshot(session, scanId, true);
  }

  /** The screen's socket closed (by either side). */
  onClose(session: OperatorSession): void {
    if (!this.sessions.has(session)) return;
    session.closed = true;
    this.forget(session);
    this.o.log.info({ operatorId: session.operatorId, session: session.id, operators: this.sessions.size }, 'operator screen disconnected');
  }

  /** An officer recorded a decision: every screen watching the scan or its lane hears of it. */
  decisionRecorded(portalId: string, decision: StoredDecision): void {
    this.broadcast(portalId, decision.scanId, { type: 'decision', scanId: decision.scanId, portalId, decision });
  }

  stats(): OperatorHubStats {
    let subscriptions = 0;
    let trackedScans = 0;
    let bytesBuffered = 0;
    let stripsSent = this.counters.stripsSentClosed;
    let stripsCoalesced = this.counters.stripsCoalescedClosed;
    let controlSent = this.counters.controlSentClosed;
    for (const s of this.sessions) {
      subscriptions += s.portals.size + s.scans.size;
      trackedScans += s.introduced.size + s.stale.size + s.scans.size;
      bytesBuffered += s.bufferedAmount();
      stripsSent += s.stripsSent;
      stripsCoalesced += s.stripsCoalesced;
      controlSent += s.controlSent;
    }
    return {
      operators: this.sessions.size,
      subscriptions,
      trackedScans,
      bytesBuffered,
      stripsEncoded: this.counters.stripsEncoded,
      stripsSent,
      stripsCoalesced,
      snapshotsSent: this.counters.snapshotsSent,
      resyncs: this.counters.resyncs,
      controlSent,
      disconnectedSlow: this.counters.disconnectedSlow,
      refused: this.counters.refused,
      badMessages: this.counters.badMessages,
      imageFailures: this.counters.imageFailures,
    };
  }

  /**
   * PNG of a scan's material preview: the live image so far for a scan being received, else the stored preview.png;
   * null when the scan has neither (no line yet, or ended before previews were stored).
   */
  async previewPng(scanId: string): Promise<Buffer | null> {
    const view = this.views.get(scanId);
    if (view) return this.snapshotPng(view);
    return (await this.o.store.getScanImage(scanId, 'preview.png')) ?? null;
  }

  /** Lanes known to the hub (portals seen within operator.laneHistoryHours), by portal id. */
  laneList(): LaneStatus[] {
    return [...this.lanes.values()].sort((a, b) => a.portalId.localeCompare(b.portalId)).map((l) => ({ ...l }));
  }

  /**
   * Closes every screen (1001, going away) and waits for preview files still being written (and the strips of
   * scans that just ended). Call after ingest has drained.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const s of [...this.sessions]) s.close(1001, 'gateway shutting down');
    this.sessions.clear();
    await Promise.allSettled([...this.views.values()].map((v) => v.tail));
    await Promise.allSettled([...this.writes]);
    this.canvasMemory.clear();
  }

  // ---- ingest events --------------------------------------------------------------------------------------------

  private onScanStarted(scan: ScanView): void {
    if (this.views.has(scan.scanId)) return; // resumed after a reconnect: same view
    const record = this.o.store.getScan(scan.scanId);
    const summary: ScanSummary = {
      scanId: scan.scanId,
      portalId: scan.portalId,
      state: 'receiving',
      lines: scan.lines,
      detector: record
        ? { ...record.detector }
        : { pixels: scan.detector.pixels, energies: scan.detector.energies, pitchMm: scan.detector.pitchMm, lineRateHz: scan.detector.lineRateHz },
      vehicle: (scan.vehicle as Record<string, unknown> | null) ?? null,
      declaration: scan.declaration ? { hsCodes: [...scan.declaration.hsCodes] } : null,
      startedAt: scan.startedAt.toISOString(),
      endedAt: null,
    };
    const canvas = new PreviewCanvas(summary.detector.pixels, this.o.previewDownsample, this.canvasMemory);
    this.views.set(scan.scanId, { summary, canvas, stripSeq: 0, tail: Promise.resolve(), snapshot: null });
    this.setLane(scan.portalId, { liveScanId: scan.scanId, lastScanId: scan.scanId, lastState: 'receiving', lines: 0, alarmDecision: null });
    const message = JSON.stringify({
      type: 'scan.started',
      scan: summary,
      preview: { downsample: canvas.downsample, width: 0, height: canvas.height },
    } satisfies OperatorServerMessage);
    for (const s of this.sessions) {
      if (!s.watches(scan.portalId, scan.scanId)) continue;
      // A first view with nothing in it yet: increments follow.
      s.introduced.add(scan.scanId);
      s.sendControl(message);
      this.o.onScanShown?.(s.operatorId, scan.scanId);
    }
  }

  private onPreview(scan: ScanView, strip: PreviewStrip, rgba: Uint8Array): void {
    const view = this.views.get(scan.scanId);
    if (!view) return;
    view.canvas.add(strip, rgba);
    const seq = ++view.stripSeq;
    view.summary.lines = Math.max(view.summary.lines, strip.line + strip.lines);
    const lane = this.lanes.get(scan.portalId);
    if (lane && lane.liveScanId === scan.scanId) lane.lines = view.summary.lines;
    if (!this.anyWatcher(scan.portalId, scan.scanId)) return;
    // The stitcher reuses `rgba` after this call: the encoder gets an RGB copy.
    const rgb = stripToRgb(strip, rgba);
    view.tail = view.tail.then(async () => {
      let png: Buffer;
      try {
        png = await encodeRgbPng(rgb, strip.width, strip.height);
      } catch (err) {
        this.counters.imageFailures++;
        this.o.log.error({ err, scanId: scan.scanId }, 'encoding a preview strip failed; screens resync from the next snapshot');
        for (const s of this.sessions) if (s.introduced.has(scan.scanId)) s.stale.add(scan.scanId);
        return;
      }
      this.counters.stripsEncoded++;
      const frame = encodeImageFrame(
        {
          kind: ImageFrameKind.Strip,
          format: ImageFormat.Png,
          downsample: view.canvas.downsample,
          seq,
          line: strip.line,
          lines: strip.lines,
          width: strip.width,
          height: strip.height,
          scanId: scan.scanId,
        },
        png,
      );
      for (const s of this.sessions) {
        if (!s.introduced.has(scan.scanId)) continue;
        if (s.offerStrip(scan.scanId, frame) === 'resync') this.sendSnapshot(s, scan.scanId, true);
      }
    });
  }

  private onScanEnded(scan: ScanView): void {
    const view = this.views.get(scan.scanId);
    const record = this.o.store.getScan(scan.scanId);
    const state = record?.state ?? (scan.state === 'completed' ? 'completed' : 'aborted');
    this.setLane(scan.portalId, { liveScanId: null, lastScanId: scan.scanId, lastState: state, lines: record?.lines ?? scan.lines });
    if (!view) return;
    view.summary.state = state;
    view.summary.lines = record?.lines ?? scan.lines;
    view.summary.endedAt = record?.endedAt ?? new Date().toISOString();
    // After the scan's last strips went out, so a screen that reads `scan.completed` has the whole image.
    view.tail = view.tail.then(() => {
      this.broadcast(scan.portalId, scan.scanId, { type: 'scan.completed', scan: { ...view.summary } });
    });
    const write = view.tail
      .then(() => this.snapshotPng(view))
      .then(async (png) => {
        if (png) await this.o.store.putScanImage(scan.scanId, 'preview.png', png);
      })
      .catch((err: unknown) => {
        this.counters.imageFailures++;
        this.o.log.error({ err, scanId: scan.scanId }, 'storing the preview image failed');
      })
      .finally(() => {
        // From here on the scan is history: what still comes for it goes to every watcher (broadcast), so the
        // screens need not remember it (a stale entry stays until its resync).
        this.views.delete(scan.scanId);
        view.canvas.release();
        for (const s of this.sessions) s.introduced.delete(scan.scanId);
        this.writes.delete(write);
      });
    this.writes.add(write);
  }

  // ---- subscriptions and snapshots --------------------------------------------------------------------------------

  private subscribe(session: OperatorSession, portals: string[], scans: string[]): void {
    const unknown: string[] = [];
    const wanted: string[] = [];
    const refused: string[] = [];
    for (const scanId of scans) {
      if (!this.views.has(scanId) && !this.o.store.hasScan(scanId)) {
        unknown.push(scanId);
        continue;
      }
      if (!session.scans.has(scanId) && session.scans.size >= MAX_WATCHED_SCANS) {
        refused.push(scanId);
        continue;
      }
      session.scans.add(scanId);
      wanted.push(scanId);
    }
    for (const p of portals) {
      if (!session.portals.has(p) && session.portals.size >= MAX_WATCHED_PORTALS) refused.push(p);
      else session.portals.add(p);
    }
    session.sendControl({ type: 'subscribed', ...session.subscription() });
    // First views: the live scans of the lanes, and each named scan (live or from history).
    for (const view of this.views.values()) {
      const id = view.summary.scanId;
      if (session.watches(view.summary.portalId, id) && !session.introduced.has(id)) this.sendSnapshot(session, id, false);
    }
    for (const id of wanted) if (!session.introduced.has(id)) this.sendSnapshot(session, id, false);
    if (unknown.length > 0) {
      session.sendControl({
        type: 'error',
        ...new ScanlineError('SCANLINE_ERR_SCAN_UNKNOWN', `no scan ${unknown.join(', ')}`, { scanIds: unknown }).toJSON(),
      });
    }
    if (refused.length > 0) {
      this.refuse(
        session,
        new ScanlineError(
          'SCANLINE_ERR_OPERATOR_MESSAGE',
          `a screen watches at most ${MAX_WATCHED_PORTALS} lanes and ${MAX_WATCHED_SCANS} single scans; not added: ${refused.join(', ')} (unsubscribe some first)`,
          { refused },
        ),
      );
    }
  }

  /**
   * Sends the scan's snapshot: the JSON part now (so increments sent after it are consistent with it), then the
   * image frame once encoded (image frames are positional, so strips sent meanwhile do not conflict with it).
   */
  private sendSnapshot(session: OperatorSession, scanId: string, resync: boolean): void {
    const view = this.views.get(scanId);
    const record = view ? undefined : this.o.store.getScan(scanId);
    if (!view && !record) return;
    const summary = view ? { ...view.summary } : summaryOf(record as ScanRecord);
    const d = this.o.previewDownsample;
    const height = Math.ceil(summary.detector.pixels / d);
    const width = view ? view.canvas.width : Math.ceil(summary.lines / d);
    const seq = view ? view.stripSeq : 0;
    const coveredLines = view ? view.canvas.lines : summary.lines;
    session.stale.delete(scanId);
    if (!resync) this.o.onScanShown?.(session.operatorId, scanId);
    // Only live scans are remembered: increments of a live scan follow its snapshot; an ended scan has none.
    if (view) session.introduced.add(scanId);
    const sent = session.sendControl({
      type: 'scan.snapshot',
      scan: summary,
      preview: { downsample: d, width, height, seq },
      results: this.o.results?.report(scanId) ?? null,
      decisions: this.o.store.listDecisions(scanId),
      resync,
    });
    if (!sent) return;
    this.counters.snapshotsSent++;
    if (resync) this.counters.resyncs++;
    const png = view ? this.snapshotPng(view) : this.o.store.getScanImage(scanId, 'preview.png');
    png.then(
      (image) => {
        // Still wanted: the screen did not unsubscribe meanwhile (the view may have been dropped: the scan ended).
        if (!image || session.closed || !session.watches(summary.portalId, scanId)) return;
        session.sendImage(
          encodeImageFrame(
            { kind: ImageFrameKind.Snapshot, format: ImageFormat.Png, downsample: d, seq, line: 0, lines: coveredLines, width, height, scanId },
            image,
          ),
        );
      },
      (err: unknown) => {
        this.counters.imageFailures++;
        this.o.log.error({ err, scanId }, 'preparing a snapshot image failed');
      },
    );
  }

  /** The PNG of a view's image at its current strip seq, encoded once per seq whoever asks. */
  private snapshotPng(view: LiveView): Promise<Buffer | null> {
    if (!view.snapshot || view.snapshot.seq !== view.stripSeq) {
      view.snapshot = { seq: view.stripSeq, png: view.canvas.encodePng() };
    }
    return view.snapshot.png;
  }

  // ---- fan-out ----------------------------------------------------------------------------------------------------

  /**
   * Sends a control message to every screen that watches the scan: for a live scan, those that have had its
   * snapshot; for an ended one (its view dropped), every watcher (the message is self-contained).
   */
  private broadcast(portalId: string, scanId: string, message: OperatorServerMessage, lastLineAt = Number.NaN): void {
    let text: string | null = null;
    const live = this.views.has(scanId);
    for (const s of this.sessions) {
      if ((live && !s.introduced.has(scanId)) || !s.watches(portalId, scanId)) continue;
      text ??= JSON.stringify(message);
      if (s.sendControl(text) && Number.isFinite(lastLineAt)) this.o.observeLineToScreen?.((performance.now() - lastLineAt) / 1000, portalId);
    }
  }

  private broadcastAll(message: OperatorServerMessage): void {
    const text = JSON.stringify(message);
    for (const s of this.sessions) s.sendControl(text);
  }

  private anyWatcher(portalId: string, scanId: string): boolean {
    for (const s of this.sessions) if (s.introduced.has(scanId) && s.watches(portalId, scanId)) return true;
    return false;
  }

  private forget(session: OperatorSession): void {
    if (!this.sessions.delete(session)) return;
    this.counters.stripsSentClosed += session.stripsSent;
    this.counters.stripsCoalescedClosed += session.stripsCoalesced;
    this.counters.controlSentClosed += session.controlSent;
  }

  // ---- lanes ------------------------------------------------------------------------------------------------------

  private setLane(portalId: string, patch: Partial<LaneStatus>): void {
    const lane: LaneStatus = this.lanes.get(portalId) ?? {
      portalId,
      liveScanId: null,
      lastScanId: null,
      lastState: null,
      lines: 0,
      alarmDecision: null,
      updatedAt: '',
    };
    Object.assign(lane, patch, { updatedAt: new Date().toISOString() });
    this.lanes.set(portalId, lane);
    this.broadcastAll({ type: 'lane', lane });
  }

  /** Lanes after a restart: the portals of the scans started within operator.laneHistoryHours, latest scan each. */
  private loadLanes(): void {
    const since = new Date(Date.now() - this.o.config.laneHistoryHours * 3_600_000).toISOString();
    const recent = this.o.store.listScans({ limit: 1000 }).filter((r) => r.startedAt >= since);
    const decisions = this.o.store.machineDecisionsOf(recent.map((r) => r.scanId));
    for (const r of recent) {
      if (this.lanes.has(r.portalId)) continue;
      this.lanes.set(r.portalId, {
        portalId: r.portalId,
        liveScanId: null,
        lastScanId: r.scanId,
        lastState: r.state,
        lines: r.lines,
        alarmDecision: decisions.get(r.scanId) ?? null,
        updatedAt: r.updatedAt,
      });
    }
  }
}
