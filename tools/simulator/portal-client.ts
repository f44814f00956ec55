/**
 * A simulated portal speaking portal protocol v1 (docs/protocol.md) over a WebSocket (`ws`).
 *
 * Flow per truck: scan.start -> scan.accepted {scanId}; binary frames with seq 0, 1, 2, ... (optional dark and
 * air calibration frames first, then image slices of `linesPerSlice` lines); scan.end {totalLines} ->
 * scan.completed. Every binary frame of a stream consumes a seq.
 *
 * Flow control: at most `maxInFlight` frames are un-acked (acks are cumulative); frames are kept in a resend
 * buffer until acked; `ws.bufferedAmount` above `maxBufferedBytes` pauses sending. Recovery: on
 * SCANLINE_ERR_SLICE_SEQ_AHEAD or SCANLINE_ERR_SCAN_INCOMPLETE with nextSeq the client goes back and resends from
 * nextSeq (go-back-N; the gateway treats replays as duplicates); when acks stop for `ackTimeoutMs` it resends from
 * the first un-acked frame; when the connection drops it reconnects, says hello again and sends
 * scan.resume {streamId, scanId}, then resends from the `resume {nextSeq}` it gets.
 *
 * Threads and lifetimes: everything runs on the caller's event loop. One scan at a time per client. Frames are
 * owned by the resend buffer from the moment they are built until they are acked.
 */
import type { ImageSliceTransform } from './foreign-scanner.js';
import { toWire } from './detector.js';
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { ScanlineError, invalidArgument } from '../../src/errors/index.js';
import type { ErrorMessage, GatewayMessage, ResumeMessage, ScanCompletedMessage, WelcomeMessage } from '../../src/protocol/index.js';
import { SliceKind, encodeSliceFrame } from '../../src/protocol/index.js';
import { detectorInfo, type Detector } from './detector.js';
import { renderAir, renderDark, renderLines } from './render.js';
import { declarationMessage, vehicleInfo, type Scene } from './scene.js';

export type SimLogLevel = 'debug' | 'info' | 'warn' | 'error';
/** Optional log sink of the simulator (library code never writes to stdout). */
export type SimLog = (level: SimLogLevel, message: string, fields?: Record<string, unknown>) => void;

export interface CalibrationFrames {
  /** Lines of the dark frame (kind 2) sent first; 0 = none. */
  darkLines: number;
  /** Lines of the air frame (kind 3) sent next; 0 = none. */
  airLines: number;
}

export interface PortalClientOptions {
  /** Gateway portal endpoint, e.g. ws://127.0.0.1:8080/v1/portal. */
  url: string;
  portalId: string;
  detector: Detector;
  token?: string;
  /** Lines per image slice. Default 16. */
  linesPerSlice?: number;
  /** Most un-acked binary frames. Default 64. */
  maxInFlight?: number;
  /** 'realtime' paces lines at the detector's line rate; 'max' sends as fast as acks allow. Default 'realtime'. */
  speed?: 'realtime' | 'max';
  /** Pause sending while the socket buffers more than this, bytes. Default 1 MiB. */
  maxBufferedBytes?: number;
  /**
   * Changes each image slice after rendering, as another scanner would deliver it (foreign-scanner.ts); calibration
   * frames are left alone. For testing out-of-distribution detection.
   */
  imageTransform?: ImageSliceTransform;
  /** Calibration frames sent before the slices of each scan; false sends none. Default 16 dark + 16 air lines. */
  calibration?: CalibrationFrames | false;
  /** Connect + hello/welcome limit, ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Wait for scan.accepted, resume and scan.completed, ms. Default 30000. */
  replyTimeoutMs?: number;
  /** No ack progress for this long while frames are outstanding: resend from the first un-acked. Default 5000. */
  ackTimeoutMs?: number;
  /** Reconnect attempts per loss of connection during a scan, and the base delay between them. Default 5, 200 ms. */
  reconnectAttempts?: number;
  reconnectDelayMs?: number;
  /** First streamId used by this client (then +1 per scan). Default 1. */
  firstStreamId?: number;
  /** Called with every control message received from the gateway. */
  onMessage?: (message: GatewayMessage) => void;
  log?: SimLog;
  /** Aborts the running scan (scan.abort is sent) and any wait. */
  signal?: AbortSignal;
}

/** One binary frame handed to the socket ('frame-sent' event). */
export interface FrameSent {
  streamId: number;
  seq: number;
  kind: SliceKind;
  firstLine: number;
  lineCount: number;
  /** True when the frame had been sent before (go-back, ack timeout, resume). */
  resent: boolean;
  /** performance.now() when it was sent. */
  at: number;
}

export interface ScanOptions {
  /** Ask for this scanId; absent: the gateway assigns one. */
  scanId?: string;
}

export interface ScanResult {
  streamId: number;
  scanId: string;
  totalLines: number;
  /** Unique image slices (kind 1) of the scan. */
  slices: number;
  /** Every binary frame sent, resends included. */
  framesSent: number;
  framesResent: number;
  bytesSent: number;
  /** Connections lost and resumed during the scan. */
  resumes: number;
  completed: ScanCompletedMessage;
}

export interface PortalClientStats {
  framesSent: number;
  framesResent: number;
  bytesSent: number;
  slicesSent: number;
  linesSent: number;
  scansCompleted: number;
  reconnects: number;
  /** Times acks stopped for ackTimeoutMs and the client resent from the first un-acked frame. */
  ackTimeouts: number;
}

export const DEFAULT_PORTAL_CLIENT_OPTIONS = Object.freeze({
  linesPerSlice: 16, // lines per image frame
  maxInFlight: 64, // frames
  speed: 'realtime' as const,
  maxBufferedBytes: 1 << 20, // bytes
  calibration: Object.freeze({ darkLines: 16, airLines: 16 }), // lines
  connectTimeoutMs: 10_000, // ms
  replyTimeoutMs: 30_000, // ms
  ackTimeoutMs: 5_000, // ms
  reconnectAttempts: 5,
  reconnectDelayMs: 200, // ms
  firstStreamId: 1,
});

/** Codes after which the client resends from `nextSeq` instead of failing the scan. */
const RESEND_CODES = new Set(['SCANLINE_ERR_SLICE_SEQ_AHEAD', 'SCANLINE_ERR_SCAN_INCOMPLETE']);
const CLOSE_AUTH_REJECTED = 4001;
const CLOSE_REPLACED = 4002;

/** Thrown inside the client when the socket goes away; turned into a reconnect or SIM_CONNECTION. */
class Disconnected extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(`connection closed (${code}${reason ? ` ${reason}` : ''})`);
  }
}

interface FramePlan {
  kind: SliceKind;
  firstLine: number;
  lineCount: number;
}

/** One scan's protocol state. */
class ScanRun {
  scanId: string | null;
  accepted = false;
  /** scan.start went out on the current connection (accepted or not yet). */
  startSent = false;
  /** Highest seq the gateway acknowledged (cumulative), -1 before any. */
  acked = -1;
  nextToSend = 0;
  /** Highest seq ever sent. */
  highestSent = -1;
  /** SEQ_AHEAD errors for frames sent before the last go-back (seq <= this) are stale and ignored. */
  goBackMark = -1;
  endSent = false;
  /** The gateway asked for frames again after scan.end (SCAN_INCOMPLETE): send scan.end once more. */
  endAgain = false;
  completed: ScanCompletedMessage | null = null;
  abortedByGateway = false;
  resumeReply: ResumeMessage | null = null;
  failure: Error | null = null;
  lastAckAt = 0;
  startedAt = 0;
  startUs = 0n;
  readonly buffer = new Map<number, Uint8Array>();
  framesSent = 0;
  framesResent = 0;
  bytesSent = 0;
  resumes = 0;

  constructor(
    readonly streamId: number,
    readonly scene: Scene,
    readonly frames: FramePlan[],
    requestedScanId: string | undefined,
  ) {
    this.scanId = requestedScanId ?? null;
  }

  get lastSeq(): number {
    return this.frames.length - 1;
  }

  /**
   * The gateway stored every frame below `nextSeq` and wants the rest again. It is the authority: if it asks for
   * frames it had acknowledged, they are rendered again (frames are deterministic, so the bytes are identical).
   */
  goBack(nextSeq: number): void {
    if (nextSeq - 1 > this.acked) this.ackUpTo(nextSeq - 1);
    else if (nextSeq - 1 < this.acked) this.acked = nextSeq - 1;
    if (nextSeq < this.nextToSend) {
      this.goBackMark = this.highestSent;
      this.nextToSend = nextSeq;
    }
    this.lastAckAt = performance.now();
  }

  ackUpTo(seq: number): void {
    if (seq <= this.acked) return;
    for (let s = this.acked + 1; s <= seq; s++) this.buffer.delete(s);
    this.acked = seq;
    this.lastAckAt = performance.now();
    if (this.nextToSend <= seq) this.nextToSend = seq + 1;
  }
}

function planFrames(scene: Scene, linesPerSlice: number, calibration: CalibrationFrames | false): FramePlan[] {
  const frames: FramePlan[] = [];
  if (calibration && calibration.darkLines > 0) frames.push({ kind: SliceKind.Dark, firstLine: 0, lineCount: calibration.darkLines });
  if (calibration && calibration.airLines > 0) frames.push({ kind: SliceKind.Air, firstLine: 0, lineCount: calibration.airLines });
  for (let line = 0; line < scene.totalLines; line += linesPerSlice) {
    frames.push({ kind: SliceKind.Image, firstLine: line, lineCount: Math.min(linesPerSlice, scene.totalLines - line) });
  }
  return frames;
}

function checkInt(name: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi)
    throw invalidArgument('SCANLINE_ERR_CLI_USAGE', `an integer in [${lo}, ${hi}]`, name, v);
  return v;
}

function toText(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}

/**
 * Events: 'message' (every GatewayMessage), 'gateway-error' (every error message), 'reconnect' ({ attempt }),
 * 'draining' (DrainingMessage), 'close' ({ code, reason }), 'frame-sent' (FrameSent, right after a binary frame
 * was handed to the socket; only emitted while someone listens).
 */
export class PortalClient extends EventEmitter {
  readonly options: Readonly<
    Required<Omit<PortalClientOptions, 'token' | 'onMessage' | 'log' | 'signal' | 'calibration' | 'imageTransform'>> & {
      calibration: CalibrationFrames | false;
      imageTransform?: ImageSliceTransform;
    }
  >;
  /** Gateway error frames received, by code. */
  readonly errorCounts: Record<string, number> = {};
  readonly stats: PortalClientStats = {
    framesSent: 0,
    framesResent: 0,
    bytesSent: 0,
    slicesSent: 0,
    linesSent: 0,
    scansCompleted: 0,
    reconnects: 0,
    ackTimeouts: 0,
  };
  /** The last welcome received, null before the first. */
  welcome: WelcomeMessage | null = null;
  /** True once the gateway said it is draining: finish the current scan, start no new one. */
  draining = false;

  private readonly token: string | undefined;
  private readonly onMessageHook: ((m: GatewayMessage) => void) | undefined;
  private readonly log: SimLog;
  private readonly signal: AbortSignal | undefined;
  private ws: WebSocket | null = null;
  /** True between welcome and close of the current socket. */
  private ready = false;
  private closed = false;
  private lastClose: Disconnected | null = null;
  private connectFailure: Error | null = null;
  private nextStreamId: number;
  private run: ScanRun | null = null;
  private readonly sleepers = new Set<() => void>();
  private scratch: Uint16Array;

  constructor(options: PortalClientOptions) {
    super();
    const d = DEFAULT_PORTAL_CLIENT_OPTIONS;
    if (typeof options.url !== 'string' || !/^wss?:\/\//.test(options.url)) {
      throw invalidArgument('SCANLINE_ERR_CLI_USAGE', 'a ws:// or wss:// URL', 'url', options.url);
    }
    if (typeof options.portalId !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/.test(options.portalId)) {
      throw invalidArgument('SCANLINE_ERR_CLI_USAGE', 'an id of 1-64 letters, digits, ".", "_", ":" or "-"', 'portalId', options.portalId);
    }
    const speed = options.speed ?? d.speed;
    if (speed !== 'realtime' && speed !== 'max') throw invalidArgument('SCANLINE_ERR_CLI_USAGE', "'realtime' or 'max'", 'speed', speed);
    const calibration = options.calibration === undefined ? { ...d.calibration } : options.calibration;
    if (calibration !== false) {
      checkInt('calibration.darkLines', calibration.darkLines, 0, 1024);
      checkInt('calibration.airLines', calibration.airLines, 0, 1024);
    }
    this.options = Object.freeze({
      url: options.url,
      portalId: options.portalId,
      detector: options.detector,
      linesPerSlice: checkInt('linesPerSlice', options.linesPerSlice ?? d.linesPerSlice, 1, 1024),
      maxInFlight: checkInt('maxInFlight', options.maxInFlight ?? d.maxInFlight, 1, 65_536),
      speed,
      maxBufferedBytes: checkInt('maxBufferedBytes', options.maxBufferedBytes ?? d.maxBufferedBytes, 1, 1 << 30),
      calibration,
      ...(options.imageTransform ? { imageTransform: options.imageTransform } : {}),
      connectTimeoutMs: checkInt('connectTimeoutMs', options.connectTimeoutMs ?? d.connectTimeoutMs, 1, 3_600_000),
      replyTimeoutMs: checkInt('replyTimeoutMs', options.replyTimeoutMs ?? d.replyTimeoutMs, 1, 3_600_000),
      ackTimeoutMs: checkInt('ackTimeoutMs', options.ackTimeoutMs ?? d.ackTimeoutMs, 1, 3_600_000),
      reconnectAttempts: checkInt('reconnectAttempts', options.reconnectAttempts ?? d.reconnectAttempts, 0, 1_000),
      reconnectDelayMs: checkInt('reconnectDelayMs', options.reconnectDelayMs ?? d.reconnectDelayMs, 0, 600_000),
      firstStreamId: checkInt('firstStreamId', options.firstStreamId ?? d.firstStreamId, 0, 0xffff_ffff),
    });
    this.token = options.token;
    this.onMessageHook = options.onMessage;
    this.log = options.log ?? (() => undefined);
    this.signal = options.signal;
    this.nextStreamId = this.options.firstStreamId;
    const maxLines = Math.max(this.options.linesPerSlice, calibration ? Math.max(calibration.darkLines, calibration.airLines) : 0);
    this.scratch = new Uint16Array(maxLines * 2 * options.detector.pixels);
    this.signal?.addEventListener('abort', () => this.wake(), { once: true });
  }

  /** True while a welcomed connection is open. */
  get connected(): boolean {
    return this.ready;
  }

  /** Opens the connection and completes hello/welcome. Resolves with the welcome. */
  async connect(): Promise<WelcomeMessage> {
    if (this.closed) throw new ScanlineError('SCANLINE_ERR_SIM_CONNECTION', 'portal client was closed');
    if (this.ready && this.welcome) return this.welcome;
    await this.open();
    return this.welcome as WelcomeMessage;
  }

  /** Sends a text or binary message as is (tests of malformed input). Throws when not connected. */
  sendRaw(data: string | Uint8Array): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) throw new ScanlineError('SCANLINE_ERR_SIM_CONNECTION', 'not connected');
    ws.send(data, { binary: typeof data !== 'string' });
  }

  /** Drops the connection abruptly, as a network failure would (tests of resume). */
  dropConnection(): void {
    this.ws?.terminate();
  }

  /** Closes the connection (normal closure) and stops reconnecting. */
  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        ws.terminate();
        resolve();
      }, 2_000);
      ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      ws.close(1000, 'portal done');
    });
  }

  /**
   * Streams one truck: scan.start, frames, scan.end, and resolves on scan.completed. Rejects with ScanlineError
   * SCANLINE_ERR_SIM_REJECTED when the gateway refuses the scan or answers it with an unexpected error,
   * SCANLINE_ERR_SIM_CONNECTION when the connection cannot be kept or restored, or the signal's reason on abort.
   */
  async scan(scene: Scene, options: ScanOptions = {}): Promise<ScanResult> {
    if (this.run) throw new ScanlineError('SCANLINE_ERR_SIM_REJECTED', 'a scan is already running on this portal client');
    if (scene.totalLines < 1) throw invalidArgument('SCANLINE_ERR_CLI_USAGE', 'a scene with at least one line', 'scene.totalLines', scene.totalLines);
    const streamId = this.nextStreamId;
    this.nextStreamId = (this.nextStreamId + 1) >>> 0;
    const run = new ScanRun(streamId, scene, planFrames(scene, this.options.linesPerSlice, this.options.calibration), options.scanId);
    this.run = run;
    try {
      await this.connect();
      await this.withReconnect(run, () => this.start(run));
      for (;;) {
        const done = await this.withReconnect(run, async () => {
          await this.stream(run);
          return this.finish(run);
        });
        if (done) break;
      }
      const completed = run.completed as ScanCompletedMessage;
      this.stats.scansCompleted++;
      const slices = run.frames.filter((f) => f.kind === SliceKind.Image).length;
      this.log('info', 'scan completed', { portalId: this.options.portalId, scanId: completed.scanId, lines: completed.lines, gaps: completed.gaps.length });
      return {
        streamId,
        scanId: completed.scanId,
        totalLines: scene.totalLines,
        slices,
        framesSent: run.framesSent,
        framesResent: run.framesResent,
        bytesSent: run.bytesSent,
        resumes: run.resumes,
        completed,
      };
    } catch (err) {
      // Leave no scan open on the gateway: abort what it accepted, or was sent and may accept (messages are handled in
      // order, so a scan.abort right behind a scan.start ends that scan), and did not end itself.
      if ((run.accepted || run.startSent) && !run.completed && !run.abortedByGateway && this.ready) {
        const reason = this.signal?.aborted ? 'simulated portal stopped' : `simulated portal gave up: ${(err as Error).message}`;
        this.sendJson({ type: 'scan.abort', streamId, reason: reason.slice(0, 500) });
      }
      throw err;
    } finally {
      run.buffer.clear();
      this.run = null;
    }
  }

  // --- connection ---

  private async open(): Promise<void> {
    this.ready = false;
    this.welcome = null;
    this.connectFailure = null;
    const ws = new WebSocket(this.options.url, { perMessageDeflate: false, handshakeTimeout: this.options.connectTimeoutMs });
    this.ws = ws;
    ws.on('message', (data, isBinary) => this.onRaw(ws, data, isBinary));
    ws.on('close', (code, reason) => this.onClose(ws, code, reason.toString('utf8')));
    ws.on('error', (err) => {
      if (ws === this.ws && !this.ready) this.connectFailure = err;
      this.log('debug', 'portal socket error', { portalId: this.options.portalId, err: err.message });
      this.wake();
    });
    ws.on('open', () => {
      this.sendJson({
        type: 'hello',
        portalId: this.options.portalId,
        ...(this.token !== undefined ? { token: this.token } : {}),
        protocol: 1,
        detector: detectorInfo(this.options.detector),
      });
    });
    const deadline = performance.now() + this.options.connectTimeoutMs;
    for (;;) {
      this.throwIfAborted();
      if (this.ready) return;
      // Set by the socket's event handlers while this loop sleeps.
      const failure = this.connectFailure as Error | null;
      if (failure instanceof ScanlineError) {
        ws.terminate();
        throw failure;
      }
      if (failure || ws.readyState === WebSocket.CLOSED || ws.readyState === WebSocket.CLOSING) {
        const why = failure?.message ?? this.lastClose?.message ?? 'connection closed';
        ws.terminate();
        throw new ScanlineError(
          'SCANLINE_ERR_SIM_CONNECTION',
          `portal ${this.options.portalId} could not connect to ${this.options.url}: ${why}`,
          {},
          { cause: failure ?? undefined },
        );
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        ws.terminate();
        throw new ScanlineError(
          'SCANLINE_ERR_SIM_CONNECTION',
          `portal ${this.options.portalId}: no welcome from ${this.options.url} within ${this.options.connectTimeoutMs} ms`,
        );
      }
      await this.sleep(left);
    }
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.ready = false;
    this.lastClose = new Disconnected(code, reason);
    this.emit('close', { code, reason });
    this.log('debug', 'portal connection closed', { portalId: this.options.portalId, code, reason });
    this.wake();
  }

  private onRaw(ws: WebSocket, data: WebSocket.RawData, isBinary: boolean): void {
    if (ws !== this.ws) return;
    if (isBinary) {
      this.log('warn', 'gateway sent a binary frame to a portal; ignored', { portalId: this.options.portalId });
      return;
    }
    let m: GatewayMessage;
    try {
      m = JSON.parse(toText(data)) as GatewayMessage;
    } catch {
      this.log('warn', 'gateway sent a text frame that is not JSON; ignored', { portalId: this.options.portalId });
      return;
    }
    if (typeof m !== 'object' || m === null || typeof (m as { type?: unknown }).type !== 'string') return;
    this.onMessage(m);
  }

  private onMessage(m: GatewayMessage): void {
    this.onMessageHook?.(m);
    this.emit('message', m);
    const run = this.run;
    switch (m.type) {
      case 'welcome':
        this.welcome = m;
        this.ready = true;
        break;
      case 'scan.accepted':
        if (run && m.streamId === run.streamId) {
          run.accepted = true;
          run.scanId = m.scanId;
        }
        break;
      case 'ack':
        if (run && m.streamId === run.streamId && Number.isInteger(m.seq)) run.ackUpTo(Math.min(m.seq, run.highestSent));
        break;
      case 'resume':
        if (run && m.streamId === run.streamId) run.resumeReply = m;
        break;
      case 'scan.completed':
        if (run && m.streamId === run.streamId) run.completed = m;
        break;
      case 'scan.aborted':
        if (run && m.streamId === run.streamId) {
          run.abortedByGateway = true;
          run.failure = new ScanlineError('SCANLINE_ERR_SIM_REJECTED', `gateway aborted scan ${m.scanId}: ${m.reason}`, {
            streamId: m.streamId,
            scanId: m.scanId,
          });
        }
        break;
      case 'draining':
        this.draining = true;
        this.emit('draining', m);
        this.log('info', 'gateway is draining', { portalId: this.options.portalId, deadlineMs: m.deadlineMs });
        break;
      case 'error':
        this.onGatewayError(m, run);
        break;
    }
    this.wake();
  }

  private onGatewayError(m: ErrorMessage, run: ScanRun | null): void {
    this.errorCounts[m.code] = (this.errorCounts[m.code] ?? 0) + 1;
    this.emit('gateway-error', m);
    this.log('debug', 'gateway error', { portalId: this.options.portalId, code: m.code, message: m.message, streamId: m.streamId, seq: m.seq });
    if (!this.ready && !this.welcome) {
      // Refused hello (token, version, portal id): fail the connect.
      this.connectFailure = new ScanlineError('SCANLINE_ERR_SIM_REJECTED', `gateway refused hello: ${m.code}: ${m.message}`, { code: m.code });
      return;
    }
    if (!run || m.streamId !== run.streamId) return;
    if (RESEND_CODES.has(m.code) && typeof m.nextSeq === 'number' && Number.isInteger(m.nextSeq) && m.nextSeq >= 0) {
      if (m.code === 'SCANLINE_ERR_SCAN_INCOMPLETE') {
        run.endAgain = true;
        run.goBack(Math.min(m.nextSeq, run.lastSeq + 1));
      } else if (m.seq === undefined || m.seq > run.goBackMark) {
        run.goBack(Math.min(m.nextSeq, run.lastSeq + 1));
      }
      return;
    }
    run.failure = new ScanlineError('SCANLINE_ERR_SIM_REJECTED', `gateway rejected scan ${run.scanId ?? `stream ${run.streamId}`}: ${m.code}: ${m.message}`, {
      streamId: run.streamId,
      ...(run.scanId ? { scanId: run.scanId } : {}),
      ...(m.seq !== undefined ? { seq: m.seq } : {}),
      code: m.code,
    });
  }

  private sendJson(message: Record<string, unknown>): void {
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  // --- waiting ---

  private wake(): void {
    const sleepers = [...this.sleepers];
    this.sleepers.clear();
    for (const s of sleepers) s();
  }

  /** Resolves after `ms` or at the next event (message, close, abort), whichever is first. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.sleepers.add(done);
    });
  }

  private throwIfAborted(): void {
    if (this.signal?.aborted) {
      const reason: unknown = this.signal.reason;
      throw reason instanceof Error ? reason : new Error('aborted');
    }
    if (this.closed) throw new ScanlineError('SCANLINE_ERR_SIM_CONNECTION', 'portal client was closed');
  }

  /** Throws the scan's failure, an abort, or Disconnected when the socket is gone. */
  private check(run: ScanRun): void {
    this.throwIfAborted();
    if (run.failure) throw run.failure;
    if (!this.ready) throw this.lastClose ?? new Disconnected(1006, 'not connected');
  }

  /** Waits until `done()` (checked after every event) or the reply timeout. */
  private async until(run: ScanRun, what: string, done: () => boolean): Promise<void> {
    const deadline = performance.now() + this.options.replyTimeoutMs;
    for (;;) {
      this.check(run);
      if (done()) return;
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new ScanlineError(
          'SCANLINE_ERR_SIM_REJECTED',
          `portal ${this.options.portalId}: no ${what} from the gateway within ${this.options.replyTimeoutMs} ms`,
          {
            streamId: run.streamId,
          },
        );
      }
      await this.sleep(left);
    }
  }

  // --- scan phases ---

  /** Runs `phase`; on a lost connection reconnects, resumes the scan and runs it again. */
  private async withReconnect<T>(run: ScanRun, phase: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await phase();
      } catch (err) {
        if (!(err instanceof Disconnected)) throw err;
        if (err.code === CLOSE_AUTH_REJECTED) throw new ScanlineError('SCANLINE_ERR_SIM_REJECTED', `gateway rejected the portal token (${err.reason})`);
        if (err.code === CLOSE_REPLACED)
          throw new ScanlineError('SCANLINE_ERR_SIM_CONNECTION', `another connection of portal ${this.options.portalId} replaced this one`);
        await this.reconnect(run, err);
      }
    }
  }

  /** Reconnects and, once the scan was accepted, resumes it from the gateway's nextSeq. */
  private async reconnect(run: ScanRun, cause: Disconnected): Promise<void> {
    const attempts = this.options.reconnectAttempts;
    let last: unknown = cause;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      this.throwIfAborted();
      await this.sleep(this.options.reconnectDelayMs * attempt);
      this.throwIfAborted();
      if (!this.ready) {
        this.stats.reconnects++;
        this.emit('reconnect', { attempt });
        this.log('info', 'reconnecting', { portalId: this.options.portalId, attempt, streamId: run.streamId });
        try {
          await this.open();
        } catch (err) {
          last = err;
          if (err instanceof ScanlineError && err.code === 'SCANLINE_ERR_SIM_REJECTED') throw err;
          continue;
        }
      }
      if (!run.accepted || !run.scanId) return; // the start phase sends scan.start again
      try {
        run.resumeReply = null;
        this.sendJson({ type: 'scan.resume', streamId: run.streamId, scanId: run.scanId });
        await this.until(run, 'resume', () => run.resumeReply !== null || run.completed !== null);
      } catch (err) {
        if (err instanceof Disconnected) {
          last = err;
          continue;
        }
        if (run.endSent && err instanceof ScanlineError && err.details.code === 'SCANLINE_ERR_SCAN_NOT_RESUMABLE') {
          // scan.end reached the gateway before the drop and it is still finishing: ask again until it reports
          // the scan completed (its answer to scan.resume for a completed scan).
          run.failure = null;
          last = err;
          continue;
        }
        throw err;
      }
      run.resumes++;
      const reply = run.resumeReply as ResumeMessage | null; // set by onMessage while until() waited
      if (reply) {
        const nextSeq = Math.min(reply.nextSeq, run.lastSeq + 1);
        run.goBack(nextSeq);
        run.nextToSend = nextSeq;
        if (run.endSent) run.endAgain = true;
        this.log('info', 'scan resumed', { portalId: this.options.portalId, scanId: run.scanId, nextSeq });
      }
      return;
    }
    throw new ScanlineError(
      'SCANLINE_ERR_SIM_CONNECTION',
      `portal ${this.options.portalId} lost its connection during scan ${run.scanId ?? run.streamId} and could not restore it after ${attempts} attempts: ${(last as Error)?.message}`,
      { streamId: run.streamId, ...(run.scanId ? { scanId: run.scanId } : {}) },
    );
  }

  private async start(run: ScanRun): Promise<void> {
    if (run.accepted) return;
    const scene = run.scene;
    const vehicle = vehicleInfo(scene);
    const declaration = declarationMessage(scene);
    this.check(run);
    this.sendJson({
      type: 'scan.start',
      streamId: run.streamId,
      ...(run.scanId ? { scanId: run.scanId } : {}),
      ...(vehicle ? { vehicle } : {}),
      ...(declaration ? { declaration } : {}),
    });
    run.startSent = true;
    await this.until(run, 'scan.accepted', () => run.accepted);
    run.startedAt = performance.now();
    run.startUs = BigInt(Date.now()) * 1000n;
    run.lastAckAt = performance.now();
    this.log('debug', 'scan accepted', { portalId: this.options.portalId, streamId: run.streamId, scanId: run.scanId, lines: scene.totalLines });
  }

  /** Builds the bytes of frame `seq` (owned by the resend buffer until acked). */
  private frame(run: ScanRun, seq: number): Uint8Array {
    const cached = run.buffer.get(seq);
    if (cached) return cached;
    const f = run.frames[seq];
    const det = this.options.detector;
    const rendered = this.scratch.subarray(0, f.lineCount * 2 * det.pixels);
    const values = rendered;
    let acquiredAtUs = run.startUs;
    if (f.kind === SliceKind.Image) {
      renderLines(run.scene, det, f.firstLine, f.lineCount, values);
      this.options.imageTransform?.(values, f.firstLine, f.lineCount);
      acquiredAtUs += BigInt(Math.round((f.firstLine * 1e6) / det.lineRateHz));
    } else if (f.kind === SliceKind.Dark) {
      renderDark(det, f.lineCount, values, run.scene.noiseSeed);
    } else {
      renderAir(det, f.lineCount, values, run.scene.noiseSeed);
    }
    const bytes = encodeSliceFrame(
      { kind: f.kind, energies: det.energies, streamId: run.streamId, seq, firstLine: f.firstLine, lineCount: f.lineCount, pixels: det.pixels, acquiredAtUs },
      toWire(det, rendered, f.lineCount),
    );
    run.buffer.set(seq, bytes);
    return bytes;
  }

  /** Wall-clock time (performance.now) at which frame `seq` has been acquired, in realtime mode. */
  private dueAt(run: ScanRun, seq: number): number {
    const f = run.frames[seq];
    if (this.options.speed === 'max' || f.kind !== SliceKind.Image) return 0;
    return run.startedAt + ((f.firstLine + f.lineCount) * 1000) / this.options.detector.lineRateHz;
  }

  /** Sends every frame and waits until all are acked. */
  private async stream(run: ScanRun): Promise<void> {
    const o = this.options;
    for (;;) {
      this.check(run);
      if (run.completed) return;
      const seq = run.nextToSend;
      const now = performance.now();
      const outstanding = run.highestSent - run.acked;
      if (outstanding > 0 && now - run.lastAckAt > o.ackTimeoutMs) {
        // Acks stopped: resend from the first un-acked frame.
        this.log('debug', 'ack timeout; resending', { portalId: o.portalId, streamId: run.streamId, from: run.acked + 1 });
        this.stats.ackTimeouts++;
        run.goBackMark = run.highestSent;
        run.nextToSend = run.acked + 1;
        run.lastAckAt = now;
        continue;
      }
      if (seq > run.lastSeq) {
        if (run.acked >= run.lastSeq) return;
        await this.sleep(o.ackTimeoutMs - (now - run.lastAckAt));
        continue;
      }
      if (seq - run.acked > o.maxInFlight) {
        await this.sleep(o.ackTimeoutMs - (now - run.lastAckAt));
        continue;
      }
      const ws = this.ws as WebSocket;
      if (ws.bufferedAmount > o.maxBufferedBytes) {
        await this.sleep(2);
        continue;
      }
      const due = this.dueAt(run, seq);
      if (due > now) {
        await this.sleep(due - now);
        continue;
      }
      const bytes = this.frame(run, seq);
      ws.send(bytes, { binary: true });
      run.framesSent++;
      run.bytesSent += bytes.byteLength;
      this.stats.framesSent++;
      this.stats.bytesSent += bytes.byteLength;
      const resent = seq <= run.highestSent;
      if (resent) {
        run.framesResent++;
        this.stats.framesResent++;
      } else {
        run.highestSent = seq;
        const f = run.frames[seq];
        if (f.kind === SliceKind.Image) {
          this.stats.slicesSent++;
          this.stats.linesSent += f.lineCount;
        }
      }
      if (this.listenerCount('frame-sent') > 0) {
        const f = run.frames[seq];
        const sent: FrameSent = { streamId: run.streamId, seq, kind: f.kind, firstLine: f.firstLine, lineCount: f.lineCount, resent, at: performance.now() };
        this.emit('frame-sent', sent);
      }
      if (outstanding <= 0) run.lastAckAt = now; // the ack clock starts with the first outstanding frame
      run.nextToSend = seq + 1;
      // Let acks and other events in between frames when sending flat out.
      if (run.framesSent % 8 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Sends scan.end and waits for scan.completed; false when frames must be resent first. */
  private async finish(run: ScanRun): Promise<boolean> {
    if (run.completed) return true;
    run.endAgain = false;
    this.sendJson({ type: 'scan.end', streamId: run.streamId, totalLines: run.scene.totalLines });
    run.endSent = true;
    await this.until(run, 'scan.completed', () => run.completed !== null || run.endAgain);
    return run.completed !== null;
  }
}
