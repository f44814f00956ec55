/**
 * A test double of the gateway's portal side, just enough to exercise the simulated portal's protocol logic
 * (acks, window, go-back on SEQ_AHEAD / SCAN_INCOMPLETE, resume) without the real server, which is being built
 * at the same time. End-to-end tests against the real gateway live with the server's tests.
 *
 * Behaviour knobs let a test drop a frame, hold acks, drop the connection mid-scan or refuse things.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { SLICE_HEADER_BYTES, decodeSliceHeader, type SliceHeader } from '../../../src/protocol/index.js';

export interface FakeGatewayOptions {
  /** Frames further than this beyond the first missing one get SEQ_AHEAD. Default 32. */
  reorderWindow?: number;
  /** Forget these seqs the first time they arrive (as if lost). */
  dropSeqsOnce?: number[];
  /** Close the connection (terminate) after this many binary frames of the first scan, once. */
  dropConnectionAfterFrames?: number;
  /** Answer the first scan.end with SCAN_INCOMPLETE and nextSeq = this, forgetting frames from there. */
  incompleteOnceFrom?: number;
  /** Do not send acks until releaseAcks(). */
  holdAcks?: boolean;
  /** Refuse hello with this error code. */
  refuseHello?: string;
  /** Answer scan.start with this error code. */
  refuseScanStart?: string;
}

export interface ReceivedFrame {
  header: SliceHeader;
  bytes: Uint8Array;
  connection: number;
}

export interface FakeScan {
  scanId: string;
  streamId: number;
  /** Every frame with seq < nextSeq is stored. */
  nextSeq: number;
  ahead: Set<number>;
  stored: Map<number, ReceivedFrame>;
  totalLines: number | null;
  completed: boolean;
  conn: Conn | null;
}

interface Conn {
  id: number;
  ws: WebSocket;
  portalId: string | null;
  scans: Map<number, FakeScan>;
}

export type LogEntry =
  | { dir: 'in'; connection: number; type: string; message: Record<string, unknown> }
  | { dir: 'in'; connection: number; type: 'binary'; header: SliceHeader }
  | { dir: 'out'; connection: number; type: string; message: Record<string, unknown> };

export class FakeGateway {
  readonly log: LogEntry[] = [];
  readonly scans = new Map<string, FakeScan>();
  /** Most frames a client had sent beyond the last ack this gateway sent (per stream), observed on arrival. */
  maxInFlightSeen = 0;
  /** Replayed frames whose bytes differed from the stored original (must stay 0). */
  replayMismatches = 0;
  duplicates = 0;
  url = '';
  private wss!: WebSocketServer;
  private conns = 0;
  private scanCount = 0;
  private binaryOfFirstScan = 0;
  private dropped = false;
  private incompleteDone = false;
  private readonly dropSeqs: Set<number>;
  private lastAckSent = new Map<FakeScan, number>();

  constructor(readonly options: FakeGatewayOptions = {}) {
    this.dropSeqs = new Set(options.dropSeqsOnce ?? []);
  }

  async start(): Promise<this> {
    this.wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/v1/portal' });
    await new Promise<void>((resolve) => this.wss.once('listening', () => resolve()));
    this.url = `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}/v1/portal`;
    this.wss.on('connection', (ws) => this.onConnection(ws));
    return this;
  }

  async stop(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  /** Sends the held cumulative acks and stops holding. */
  releaseAcks(): void {
    this.options.holdAcks = false;
    for (const scan of this.scans.values()) if (scan.conn && scan.nextSeq > 0) this.ack(scan.conn, scan);
  }

  binaryFrames(connection?: number): SliceHeader[] {
    return this.log.flatMap((e) => (e.type === 'binary' && 'header' in e && (connection === undefined || e.connection === connection) ? [e.header] : []));
  }

  /** Lines of a scan reassembled from its stored image frames (line-major, as sent). */
  reassemble(scanId: string, valuesPerLine: number): Uint16Array {
    const scan = this.scans.get(scanId);
    if (!scan) throw new Error(`no scan ${scanId}`);
    const total = scan.totalLines ?? 0;
    const out = new Uint16Array(total * valuesPerLine);
    for (const f of scan.stored.values()) {
      if (f.header.kind !== 1) continue;
      const payload = new Uint16Array(f.bytes.slice(SLICE_HEADER_BYTES).buffer);
      out.set(payload, f.header.firstLine * valuesPerLine);
    }
    return out;
  }

  private send(conn: Conn, message: Record<string, unknown>): void {
    this.log.push({ dir: 'out', connection: conn.id, type: String(message.type), message });
    if (conn.ws.readyState === conn.ws.OPEN) conn.ws.send(JSON.stringify(message));
  }

  private ack(conn: Conn, scan: FakeScan): void {
    if (this.options.holdAcks) return;
    this.lastAckSent.set(scan, scan.nextSeq - 1);
    this.send(conn, { type: 'ack', streamId: scan.streamId, seq: scan.nextSeq - 1 });
  }

  private onConnection(ws: WebSocket): void {
    const conn: Conn = { id: ++this.conns, ws, portalId: null, scans: new Map() };
    ws.on('message', (data, isBinary) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (isBinary) this.onBinary(conn, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      else this.onText(conn, bytes.toString('utf8'));
    });
    ws.on('close', () => {
      for (const s of conn.scans.values()) if (s.conn === conn) s.conn = null;
    });
  }

  private onText(conn: Conn, text: string): void {
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(text) as Record<string, unknown>;
    } catch {
      this.log.push({ dir: 'in', connection: conn.id, type: 'invalid-json', message: { text } });
      this.send(conn, { type: 'error', code: 'SCANLINE_ERR_PROTO_JSON', message: 'control message is not valid JSON' });
      return;
    }
    const type = String(m.type);
    this.log.push({ dir: 'in', connection: conn.id, type, message: m });
    const streamId = m.streamId as number;
    switch (type) {
      case 'hello':
        if (this.options.refuseHello) {
          this.send(conn, { type: 'error', code: this.options.refuseHello, message: 'refused by the test' });
          return;
        }
        conn.portalId = String(m.portalId);
        this.send(conn, {
          type: 'welcome',
          protocol: 1,
          gateway: 'fake',
          portalId: conn.portalId,
          limits: { maxOpenScans: 4, maxLines: 65_536, reorderWindowSlices: this.options.reorderWindow ?? 32, maxMessageBytes: 1 << 24 },
        });
        return;
      case 'scan.start': {
        if (this.options.refuseScanStart) {
          this.send(conn, { type: 'error', code: this.options.refuseScanStart, message: 'refused by the test', streamId });
          return;
        }
        const scanId = typeof m.scanId === 'string' ? m.scanId : `fake-scan-${++this.scanCount}`;
        const scan: FakeScan = { scanId, streamId, nextSeq: 0, ahead: new Set(), stored: new Map(), totalLines: null, completed: false, conn };
        this.scans.set(scanId, scan);
        conn.scans.set(streamId, scan);
        this.send(conn, { type: 'scan.accepted', streamId, scanId });
        return;
      }
      case 'scan.resume': {
        const scan = this.scans.get(String(m.scanId));
        if (!scan) {
          this.send(conn, { type: 'error', code: 'SCANLINE_ERR_SCAN_UNKNOWN', message: 'no such scan', streamId });
          return;
        }
        if (scan.completed) {
          this.send(conn, { type: 'scan.completed', streamId, scanId: scan.scanId, lines: scan.totalLines, gaps: [] });
          return;
        }
        scan.conn = conn;
        scan.streamId = streamId;
        conn.scans.set(streamId, scan);
        this.send(conn, { type: 'resume', streamId, scanId: scan.scanId, nextSeq: scan.nextSeq });
        return;
      }
      case 'scan.end': {
        const scan = conn.scans.get(streamId);
        if (!scan) {
          this.send(conn, { type: 'error', code: 'SCANLINE_ERR_STREAM_UNKNOWN', message: 'unknown stream', streamId });
          return;
        }
        if (this.options.incompleteOnceFrom !== undefined && !this.incompleteDone) {
          this.incompleteDone = true;
          const from = this.options.incompleteOnceFrom;
          for (const seq of [...scan.stored.keys()]) if (seq >= from) scan.stored.delete(seq);
          scan.nextSeq = Math.min(scan.nextSeq, from);
          scan.ahead.clear();
          this.send(conn, { type: 'error', code: 'SCANLINE_ERR_SCAN_INCOMPLETE', message: 'frames missing', streamId, nextSeq: scan.nextSeq });
          return;
        }
        if (scan.ahead.size > 0) {
          this.send(conn, { type: 'error', code: 'SCANLINE_ERR_SCAN_INCOMPLETE', message: 'frames missing', streamId, nextSeq: scan.nextSeq });
          return;
        }
        scan.totalLines = m.totalLines as number;
        scan.completed = true;
        conn.scans.delete(streamId);
        this.send(conn, { type: 'scan.completed', streamId, scanId: scan.scanId, lines: scan.totalLines, gaps: [] });
        return;
      }
      case 'scan.abort': {
        const scan = conn.scans.get(streamId);
        if (scan) {
          conn.scans.delete(streamId);
          this.send(conn, { type: 'scan.aborted', streamId, scanId: scan.scanId, reason: String(m.reason) });
        }
        return;
      }
      default:
        this.send(conn, { type: 'error', code: 'SCANLINE_ERR_PROTO_UNKNOWN_TYPE', message: `unknown type ${type}` });
    }
  }

  private onBinary(conn: Conn, bytes: Uint8Array): void {
    let header: SliceHeader;
    try {
      header = decodeSliceHeader(bytes);
    } catch (err) {
      this.send(conn, { type: 'error', code: (err as { code: string }).code, message: (err as Error).message });
      return;
    }
    this.log.push({ dir: 'in', connection: conn.id, type: 'binary', header });
    const scan = conn.scans.get(header.streamId);
    if (!scan) {
      this.send(conn, { type: 'error', code: 'SCANLINE_ERR_STREAM_UNKNOWN', message: 'unknown stream', streamId: header.streamId, seq: header.seq });
      return;
    }
    const inFlight = header.seq - (this.lastAckSent.get(scan) ?? -1);
    if (inFlight > this.maxInFlightSeen) this.maxInFlightSeen = inFlight;
    if (scan === [...this.scans.values()][0]) {
      this.binaryOfFirstScan++;
      if (this.options.dropConnectionAfterFrames !== undefined && !this.dropped && this.binaryOfFirstScan > this.options.dropConnectionAfterFrames) {
        this.dropped = true;
        conn.ws.terminate();
        return;
      }
    }
    if (this.dropSeqs.delete(header.seq)) return;
    const seq = header.seq;
    const window = this.options.reorderWindow ?? 32;
    if (seq >= scan.nextSeq && !scan.ahead.has(seq) && seq >= scan.nextSeq + window) {
      this.send(conn, { type: 'error', code: 'SCANLINE_ERR_SLICE_SEQ_AHEAD', message: 'too far ahead', streamId: header.streamId, seq, nextSeq: scan.nextSeq });
      return;
    }
    const original = scan.stored.get(seq);
    if (original) {
      this.duplicates++;
      if (Buffer.compare(Buffer.from(original.bytes), Buffer.from(bytes)) !== 0) this.replayMismatches++;
    }
    if (seq >= scan.nextSeq && !scan.ahead.has(seq)) {
      scan.stored.set(seq, { header, bytes: bytes.slice(), connection: conn.id });
      if (seq === scan.nextSeq) {
        scan.nextSeq++;
        while (scan.ahead.delete(scan.nextSeq)) scan.nextSeq++;
      } else {
        scan.ahead.add(seq);
      }
    }
    this.ack(conn, scan);
  }
}
