/**
 * The states of a scan (src/ingest/active-scan.ts) and the transitions the ingest stage allows or refuses, driven
 * directly: an IngestService with a real store in a temporary directory and the real native stitcher, portal
 * connections fed through PortalConnection.onText/onBinary with a channel that records what the gateway answers
 * (no network server), and the ActiveScan itself where the transition is its own.
 *
 *   receiving ──scan.end──► finishing ──last job done──► completed
 *       │  ╲                    │
 *       │   ╲ connection lost   │ abort (portal, drain, resume grace over)
 *       │    ╰─► receiving, no owner: resumable until portal.resumeGraceMs, then aborted
 *       ╰──────── abort ────────┴──► aborted
 */
import { openTestIdentity, type TestIdentity } from '../helpers/identity.js';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig, type GatewayConfigInput } from '../../src/config/index.js';
import { ScanlineError } from '../../src/errors/index.js';
import type { ActiveScan } from '../../src/ingest/active-scan.js';
import { IngestService, type PortalChannel, type PortalConnection } from '../../src/ingest/index.js';
import { type GatewayMessage, SliceKind, encodeSliceFrame } from '../../src/protocol/index.js';
import { silentLogger } from '../../src/log/index.js';
import { ScanStore } from '../../src/storage/index.js';

const PIXELS = 256;
const ENERGIES = 2;
const FRAME_LINES = 16;
const BYTES_PER_LINE = PIXELS * ENERGIES * 2;
const WINDOW = 8;
const MAX_LINES = 2048;

/** What the gateway sent on one portal connection, and how it closed it. */
class RecordingChannel implements PortalChannel {
  readonly remoteAddress = '127.0.0.1';
  readonly messages: GatewayMessage[] = [];
  closedWith: { code: number; reason: string } | null = null;

  send(message: GatewayMessage): void {
    this.messages.push(structuredClone(message));
  }

  close(code: number, reason: string): void {
    this.closedWith = { code, reason };
  }
}

type Sent<T extends GatewayMessage['type']> = Extract<GatewayMessage, { type: T }>;

/** A portal on one connection: sends exactly what a test says, reads what the gateway answered. */
class Portal {
  readonly channel = new RecordingChannel();
  readonly conn: PortalConnection;
  private seen = 0;

  constructor(service: IngestService, portalId: string) {
    this.conn = service.openConnection(this.channel);
    const token = credentials.get(service)?.portalCredential(portalId);
    this.text({ type: 'hello', portalId, token, detector: { pixels: PIXELS, energies: ENERGIES, bitDepth: 16, pitchMm: 4.4, lineRateHz: 500 } });
    expect(this.take().type).toBe('welcome');
  }

  text(message: Record<string, unknown>): void {
    const text = JSON.stringify(message);
    this.conn.onText(text, Buffer.byteLength(text));
  }

  /** An image frame of `lines` lines from `firstLine`, every reading `value` (a flat, bright scene). */
  image(streamId: number, seq: number, firstLine: number, lines = FRAME_LINES, value = 30_000): void {
    this.conn.onBinary(
      encodeSliceFrame(
        { kind: SliceKind.Image, energies: ENERGIES, streamId, seq, firstLine, pixels: PIXELS, acquiredAtUs: 0n },
        new Uint16Array(lines * ENERGIES * PIXELS).fill(value),
      ),
    );
  }

  dark(streamId: number, seq: number): void {
    this.conn.onBinary(
      encodeSliceFrame(
        { kind: SliceKind.Dark, energies: ENERGIES, streamId, seq, firstLine: 0, pixels: PIXELS, acquiredAtUs: 0n },
        new Uint16Array(FRAME_LINES * ENERGIES * PIXELS).fill(200),
      ),
    );
  }

  /** Starts a scan on `streamId` and returns its id. */
  start(streamId: number, scanId?: string): string {
    this.text({ type: 'scan.start', streamId, ...(scanId ? { scanId } : {}) });
    const m = this.take();
    if (m.type !== 'scan.accepted') throw new Error(`scan.start answered ${JSON.stringify(m)}`);
    return m.scanId;
  }

  /** The messages sent since the last take(), then marks them read. */
  all(): GatewayMessage[] {
    const out = this.channel.messages.slice(this.seen);
    this.seen = this.channel.messages.length;
    return out;
  }

  /** The one message sent since the last read. */
  take(): GatewayMessage {
    const out = this.all();
    expect(out, JSON.stringify(out)).toHaveLength(1);
    return out[0];
  }

  ack(): number {
    const m = this.take();
    if (m.type !== 'ack') throw new Error(`expected an ack, got ${JSON.stringify(m)}`);
    return m.seq;
  }

  /** The code of the one error sent since the last read. */
  error(): Sent<'error'> {
    const m = this.take();
    if (m.type !== 'error') throw new Error(`expected an error, got ${JSON.stringify(m)}`);
    return m;
  }

  close(): void {
    this.conn.onClose(1006);
  }
}

interface Harness {
  service: IngestService;
  store: ScanStore;
  events: string[];
  scan(scanId: string): ActiveScan;
}

const open: Array<{ service: IngestService; store: ScanStore; dir: string; identity: TestIdentity }> = [];
/** The portal credentials of each harness's service. */
const credentials = new WeakMap<IngestService, TestIdentity>();
afterEach(async () => {
  for (const h of open.splice(0)) {
    await h.service.close();
    h.store.close();
    h.identity.close();
    rmSync(h.dir, { recursive: true, force: true });
  }
});

function harness(config: GatewayConfigInput = {}): Harness {
  const dir = mkdtempSync(join(tmpdir(), 'scanline-active-scan-'));
  const store = ScanStore.open(dir, silentLogger(), { directIo: false });
  const identity = openTestIdentity(dir);
  const service = new IngestService({
    portals: identity.identity,
    config: resolveConfig(
      {
        storage: { dataDir: dir },
        // Acks in the tick of the frame, so the transitions read step by step; disk durability (acks after the
        // group commit) has its own tests (durable-ack.test.ts).
        portal: { reorderWindowSlices: WINDOW, stitchMaxDelayMs: 0, resumeGraceMs: 60_000, ackDurability: 'memory' },
        stitch: { maxLines: MAX_LINES },
      },
      config,
    ),
    store,
    log: silentLogger(),
  });
  open.push({ service, store, dir, identity });
  credentials.set(service, identity);
  const events: string[] = [];
  service.listen({
    scanStarted: (s) => events.push(`started ${s.scanId}`),
    scanCompleted: (s) => events.push(`completed ${s.scanId} ${s.lines}`),
    scanAborted: (s, reason) => events.push(`aborted ${s.scanId}: ${reason}`),
  });
  return {
    service,
    store,
    events,
    scan(scanId) {
      // The state machine itself, behind the read-only view the service gives downstream stages.
      const s = service.getLiveScan(scanId) as ActiveScan | undefined;
      if (!s) throw new Error(`no live scan ${scanId}`);
      return s;
    },
  };
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

/** Sends image frames seq from..to-1 (16 lines each, seq n at line 16 n) and returns the last ack. */
function frames(p: Portal, streamId: number, from: number, to: number): number {
  let ack = -1;
  for (let seq = from; seq < to; seq++) {
    p.image(streamId, seq, seq * FRAME_LINES);
    ack = p.ack();
  }
  return ack;
}

describe('receiving', () => {
  it('stores frames in any order within the reorder window, acks the cumulative seq, and acks an identical replay again', async () => {
    const h = harness();
    const p = new Portal(h.service, 'lane-1');
    const id = p.start(1);
    const scan = h.scan(id);
    expect(scan.state).toBe('receiving');
    expect(h.events).toEqual([`started ${id}`]);
    p.image(1, 0, 0);
    expect(p.ack()).toBe(0);
    p.image(1, 2, 32);
    expect(p.ack()).toBe(0); // seq 1 is missing
    expect(scan.resumeSeq).toBe(1);
    p.image(1, 1, 16);
    expect(p.ack()).toBe(2);
    p.image(1, 1, 16);
    expect(p.ack()).toBe(2);
    expect(h.service.stats.duplicateFrames).toBe(1);
    expect({ state: scan.state, lines: scan.lines, resumeSeq: scan.resumeSeq }).toEqual({ state: 'receiving', lines: 48, resumeSeq: 3 });
  });

  it('refuses, each with its code, the frames and ends that would break the scan, and stays receiving', () => {
    const h = harness();
    const p = new Portal(h.service, 'lane-1');
    const id = p.start(1);
    const scan = h.scan(id);
    frames(p, 1, 0, 2);
    // Beyond the reorder window from the first missing seq (2): not stored, nextSeq given.
    p.image(1, 2 + WINDOW, (2 + WINDOW) * FRAME_LINES);
    expect(p.error()).toMatchObject({ code: 'SCANLINE_ERR_SLICE_SEQ_AHEAD', streamId: 1, seq: 2 + WINDOW, nextSeq: 2 });
    // A stored seq again with another line range, or with other pixel values (the native stitcher compares them).
    p.image(1, 0, 160);
    expect(p.error()).toMatchObject({ code: 'SCANLINE_ERR_SLICE_REPLAY_MISMATCH', seq: 0 });
    p.image(1, 0, 0, FRAME_LINES, 12_345);
    expect(p.error()).toMatchObject({ code: 'SCANLINE_ERR_SLICE_REPLAY_MISMATCH', seq: 0 });
    // Calibration after the first image slice.
    p.dark(1, 2);
    expect(p.error()).toMatchObject({ code: 'SCANLINE_ERR_SLICE_CALIBRATION_LATE', seq: 2 });
    // Lines past stitch.maxLines.
    p.image(1, 2, MAX_LINES - 8);
    expect(p.error()).toMatchObject({ code: 'SCANLINE_ERR_SLICE_LINE_RANGE', seq: 2 });
    // A frame for a stream with no scan.
    p.image(9, 0, 0);
    expect(p.error()).toMatchObject({ code: 'SCANLINE_ERR_STREAM_UNKNOWN', streamId: 9 });

    // scan.end: while a frame is missing, below the lines received, beyond the limit, or empty.
    p.image(1, 3, 48);
    expect(p.ack()).toBe(1);
    p.text({ type: 'scan.end', streamId: 1, totalLines: 64 });
    expect(p.error()).toMatchObject({ code: 'SCANLINE_ERR_SCAN_INCOMPLETE', streamId: 1, nextSeq: 2 });
    expect(codeOf(() => scan.end(64))).toBe('SCANLINE_ERR_SCAN_INCOMPLETE');
    p.image(1, 2, 32);
    expect(p.ack()).toBe(3);
    expect(codeOf(() => scan.end(63))).toBe('SCANLINE_ERR_PROTO_INVALID');
    expect(codeOf(() => scan.end(MAX_LINES + 1))).toBe('SCANLINE_ERR_SCAN_TOO_LONG');
    expect(codeOf(() => scan.end(0))).toBe('SCANLINE_ERR_PROTO_INVALID');
    expect({ state: scan.state, lines: scan.lines, resumeSeq: scan.resumeSeq }).toEqual({ state: 'receiving', lines: 64, resumeSeq: 4 });
    expect(p.all()).toEqual([]);
  });
});

describe('receiving → finishing → completed', () => {
  it('scan.end moves to finishing at once; frames and another totalLines are refused, the same scan.end is not an error', async () => {
    const h = harness();
    const p = new Portal(h.service, 'lane-1');
    const id = p.start(1);
    const scan = h.scan(id);
    frames(p, 1, 0, 4);
    p.text({ type: 'scan.end', streamId: 1, totalLines: 64 });
    expect(scan.state).toBe('finishing');
    expect(p.all()).toEqual([]);
    // Still in the connection's streams until it completes: refused by the scan itself.
    p.image(1, 4, 64);
    expect(p.error()).toMatchObject({ code: 'SCANLINE_ERR_STREAM_UNKNOWN', streamId: 1, seq: 4 });
    p.text({ type: 'scan.end', streamId: 1, totalLines: 64 });
    expect(p.all()).toEqual([]);
    expect(codeOf(() => scan.end(80))).toBe('SCANLINE_ERR_STREAM_UNKNOWN');
    expect(scan.state).toBe('finishing');

    await scan.whenEnded();
    expect(scan.state).toBe('completed');
    expect(p.take()).toEqual({ type: 'scan.completed', streamId: 1, scanId: id, lines: 64, gaps: [] });
    expect(h.events).toEqual([`started ${id}`, `completed ${id} 64`]);
    expect(h.store.getScan(id)).toMatchObject({ state: 'completed', lines: 64, gaps: [], reason: null });
    expect(statSync(h.store.rawPath(id)).size).toBe(64 * BYTES_PER_LINE);
    expect(h.service.getLiveScan(id)).toBeUndefined();
    expect(h.service.stats.scansCompleted).toBe(1);
  });

  it('completed is final: the stream is released, and the scan refuses frames, ends and aborts', async () => {
    const h = harness();
    const p = new Portal(h.service, 'lane-1');
    const id = p.start(1);
    const scan = h.scan(id);
    frames(p, 1, 0, 2);
    p.text({ type: 'scan.end', streamId: 1, totalLines: 32 });
    await scan.whenEnded();
    p.all();
    p.image(1, 2, 32);
    expect(p.error()).toMatchObject({ code: 'SCANLINE_ERR_STREAM_UNKNOWN', streamId: 1 });
    p.text({ type: 'scan.end', streamId: 1, totalLines: 32 });
    expect(p.error()).toMatchObject({ code: 'SCANLINE_ERR_STREAM_UNKNOWN', streamId: 1 });
    expect(codeOf(() => scan.end(32))).toBe('SCANLINE_ERR_STREAM_UNKNOWN');
    await scan.abort('too late');
    expect(scan.state).toBe('completed');
    expect(h.store.getScan(id)).toMatchObject({ state: 'completed', reason: null });
    // The stream can carry a new scan.
    expect(p.start(1)).not.toBe(id);
  });
});

describe('→ aborted', () => {
  it('scan.abort while receiving: lines so far kept, scan.aborted sent, nothing more accepted', async () => {
    const h = harness();
    const p = new Portal(h.service, 'lane-1');
    const id = p.start(1);
    const scan = h.scan(id);
    frames(p, 1, 0, 2);
    p.text({ type: 'scan.abort', streamId: 1, reason: 'operator stop' });
    expect(scan.state).toBe('aborted');
    await scan.whenEnded();
    expect(p.take()).toEqual({ type: 'scan.aborted', streamId: 1, scanId: id, reason: 'portal: operator stop' });
    expect(h.events).toEqual([`started ${id}`, `aborted ${id}: portal: operator stop`]);
    expect(h.store.getScan(id)).toMatchObject({ state: 'aborted', lines: 32, reason: 'portal: operator stop' });
    expect(statSync(h.store.rawPath(id)).size).toBe(32 * BYTES_PER_LINE);
    expect(codeOf(() => scan.acceptFrame({ kind: SliceKind.Image } as never, new Uint16Array(0)))).toBe('SCANLINE_ERR_STREAM_UNKNOWN');
    expect(codeOf(() => scan.end(32))).toBe('SCANLINE_ERR_STREAM_UNKNOWN');
    await scan.abort('again');
    expect(h.store.getScan(id)?.reason).toBe('portal: operator stop');
    expect(h.service.stats.scansAborted).toBe(1);
    p.image(1, 2, 32);
    expect(p.error()).toMatchObject({ code: 'SCANLINE_ERR_STREAM_UNKNOWN' });
  });

  it('abort while finishing: the scan ends aborted, not completed', async () => {
    const h = harness();
    const p = new Portal(h.service, 'lane-1');
    const id = p.start(1);
    const scan = h.scan(id);
    frames(p, 1, 0, 4);
    scan.end(64);
    expect(scan.state).toBe('finishing');
    await scan.abort('gateway shut down before the scan ended');
    expect(scan.state).toBe('aborted');
    expect(p.take()).toEqual({ type: 'scan.aborted', streamId: 1, scanId: id, reason: 'gateway shut down before the scan ended' });
    expect(h.store.getScan(id)).toMatchObject({ state: 'aborted', reason: 'gateway shut down before the scan ended' });
    expect(h.events.filter((e) => e.startsWith('completed'))).toEqual([]);
  });

  it('drain: scans that do not end within the timeout are aborted, their lines kept', async () => {
    const h = harness();
    const p = new Portal(h.service, 'lane-1');
    const id = p.start(1);
    frames(p, 1, 0, 3);
    h.service.stopAccepting(10);
    expect(p.take()).toEqual({ type: 'draining', deadlineMs: 10 });
    p.text({ type: 'scan.start', streamId: 2 });
    expect(p.error()).toMatchObject({ code: 'SCANLINE_ERR_GATEWAY_DRAINING', streamId: 2 });
    await h.service.drain(10);
    expect(h.store.getScan(id)).toMatchObject({ state: 'aborted', lines: 48, reason: 'gateway shut down before the scan ended' });
  });
});

describe('connection lost: resumable', () => {
  it('a receiving scan waits for scan.resume; a new connection of the portal resumes it at nextSeq, on any stream, and completes it', async () => {
    const h = harness();
    const a = new Portal(h.service, 'lane-1');
    const id = a.start(1);
    const scan = h.scan(id);
    frames(a, 1, 0, 3);
    a.close();
    expect({ state: scan.state, owner: scan.owner, timer: scan.resumeTimer !== null }).toEqual({ state: 'receiving', owner: null, timer: true });

    const b = new Portal(h.service, 'lane-1');
    b.text({ type: 'scan.resume', streamId: 7, scanId: id });
    expect(b.take()).toEqual({ type: 'resume', streamId: 7, scanId: id, nextSeq: 3 });
    expect({ owner: scan.owner === b.conn, streamId: scan.streamId, timer: scan.resumeTimer }).toEqual({ owner: true, streamId: 7, timer: null });
    expect(h.service.stats.scansResumed).toBe(1);
    expect(frames(b, 7, 3, 5)).toBe(4);
    b.text({ type: 'scan.end', streamId: 7, totalLines: 80 });
    await scan.whenEnded();
    expect(b.take()).toEqual({ type: 'scan.completed', streamId: 7, scanId: id, lines: 80, gaps: [] });
    expect(a.all()).toEqual([]);
    expect(h.store.getScan(id)).toMatchObject({ state: 'completed', lines: 80 });
  });

  it('a new connection may take a scan over from a connection that is still open (half-open): the old one loses the stream', () => {
    const h = harness();
    const a = new Portal(h.service, 'lane-1');
    const id = a.start(1);
    frames(a, 1, 0, 1);
    const b = new Portal(h.service, 'lane-1'); // the newest connection of a portal wins: a is closed
    expect(a.channel.closedWith?.code).toBe(4002);
    b.text({ type: 'scan.resume', streamId: 1, scanId: id });
    expect(b.take()).toMatchObject({ type: 'resume', nextSeq: 1 });
    a.image(1, 1, 16);
    expect(a.error()).toMatchObject({ code: 'SCANLINE_ERR_STREAM_UNKNOWN' });
    expect(h.scan(id).owner).toBe(b.conn);
  });

  it('not resumed within portal.resumeGraceMs: aborted, and a late scan.resume is refused', async () => {
    const h = harness({ portal: { resumeGraceMs: 20 } });
    const a = new Portal(h.service, 'lane-1');
    const id = a.start(1);
    const scan = h.scan(id);
    frames(a, 1, 0, 2);
    a.close();
    await scan.whenEnded();
    expect(scan.state).toBe('aborted');
    expect(h.store.getScan(id)).toMatchObject({ state: 'aborted', lines: 32, reason: 'portal connection lost and not resumed within 20 ms' });
    const b = new Portal(h.service, 'lane-1');
    b.text({ type: 'scan.resume', streamId: 1, scanId: id });
    expect(b.error()).toMatchObject({ code: 'SCANLINE_ERR_SCAN_NOT_RESUMABLE', streamId: 1 });
  });

  it('a scan that was finishing when the connection dropped completes without its portal; a resume meanwhile hears the outcome', async () => {
    const h = harness();
    const a = new Portal(h.service, 'lane-1');
    const id = a.start(1);
    const scan = h.scan(id);
    frames(a, 1, 0, 2);
    a.text({ type: 'scan.end', streamId: 1, totalLines: 32 });
    a.close();
    expect({ state: scan.state, timer: scan.resumeTimer }).toEqual({ state: 'finishing', timer: null });
    const b = new Portal(h.service, 'lane-1');
    b.text({ type: 'scan.resume', streamId: 1, scanId: id });
    // No dead end (it used to be SCANLINE_ERR_SCAN_NOT_RESUMABLE): the new connection is told once the scan has ended.
    await scan.whenEnded();
    await new Promise((r) => setImmediate(r));
    expect(b.take()).toEqual({ type: 'scan.completed', streamId: 1, scanId: id, lines: 32, gaps: [] });
    expect(scan.state).toBe('completed');
    expect(h.store.getScan(id)?.state).toBe('completed');
    // Completed while the portal was away: scan.resume is answered with the result instead.
    b.text({ type: 'scan.resume', streamId: 1, scanId: id });
    expect(b.take()).toEqual({ type: 'scan.completed', streamId: 1, scanId: id, lines: 32, gaps: [] });
  });

  it('refuses to resume an unknown scan, another portal’s scan, or onto a stream already in use', () => {
    const h = harness();
    const a = new Portal(h.service, 'lane-1');
    const id = a.start(1);
    a.close();
    const other = new Portal(h.service, 'lane-2');
    other.text({ type: 'scan.resume', streamId: 1, scanId: id });
    expect(other.error()).toMatchObject({ code: 'SCANLINE_ERR_SCAN_NOT_RESUMABLE', streamId: 1 });
    other.text({ type: 'scan.resume', streamId: 1, scanId: 'no-such-scan' });
    expect(other.error()).toMatchObject({ code: 'SCANLINE_ERR_SCAN_UNKNOWN', streamId: 1 });
    const b = new Portal(h.service, 'lane-1');
    const busy = b.start(1);
    b.text({ type: 'scan.resume', streamId: 1, scanId: id });
    expect(b.error()).toMatchObject({ code: 'SCANLINE_ERR_STREAM_IN_USE', streamId: 1 });
    expect(h.scan(id).owner).toBeNull();
    expect(h.scan(busy).owner).toBe(b.conn);
  });
});

describe('scan.start', () => {
  it('is idempotent for the same scanId on the same stream, and refused for a busy stream, a taken id or too many scans', () => {
    const h = harness({ portal: { maxOpenScans: 2 } });
    const p = new Portal(h.service, 'lane-1');
    const id = p.start(1, 'truck-0001');
    expect(id).toBe('truck-0001');
    expect(p.start(1, 'truck-0001')).toBe('truck-0001');
    expect(h.events).toEqual(['started truck-0001']);
    p.text({ type: 'scan.start', streamId: 1, scanId: 'truck-0002' });
    expect(p.error()).toMatchObject({ code: 'SCANLINE_ERR_STREAM_IN_USE', streamId: 1 });
    p.text({ type: 'scan.start', streamId: 2, scanId: 'truck-0001' });
    expect(p.error()).toMatchObject({ code: 'SCANLINE_ERR_SCAN_ID_TAKEN', streamId: 2 });
    p.start(2);
    p.text({ type: 'scan.start', streamId: 3 });
    expect(p.error()).toMatchObject({ code: 'SCANLINE_ERR_SCAN_TOO_MANY', streamId: 3 });
    expect(existsSync(h.store.scanDir('truck-0001'))).toBe(true);
  });
});
