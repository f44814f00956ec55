/**
 * Durable acknowledgement and crash recovery of the ingest stage (portal.ackDurability 'disk', the default): an ack
 * only once the frame's lines and the scan's journal are fsync'd (group commit), and a scan left open by a process
 * that died rebuilt from its journal by the next one (IngestService.recoverOpenScans), resumable at the first frame
 * not acknowledged as stored.
 *
 * A "crash" here is a service that is dropped without closing anything, its files as the kernel has them; the
 * separate process test (test/main/crash-recovery.test.ts) kills a real gateway with SIGKILL.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig, type GatewayConfigInput } from '../../src/config/index.js';
import { IngestService, type PortalChannel, type PortalConnection } from '../../src/ingest/index.js';
import { silentLogger } from '../../src/log/index.js';
import { type GatewayMessage, SliceKind, encodeSliceFrame } from '../../src/protocol/index.js';
import { ScanlineError } from '../../src/errors/index.js';
import { JOURNAL_HEADER_BYTES, JournalRecordType, parseJournal, ScanJournalWriter, ScanStore } from '../../src/storage/index.js';
import { openTestIdentity, type TestIdentity } from '../helpers/identity.js';

const PIXELS = 256;
const ENERGIES = 2;
const FRAME_LINES = 16;
const BYTES_PER_LINE = PIXELS * ENERGIES * 2;

class RecordingChannel implements PortalChannel {
  readonly remoteAddress = '127.0.0.1';
  readonly messages: GatewayMessage[] = [];
  send(message: GatewayMessage): void {
    this.messages.push(structuredClone(message));
  }
  close(): void {}
}

/** Deterministic, line-dependent content: line l, value index i. */
function lineValues(firstLine: number, lines: number): Uint16Array {
  const out = new Uint16Array(lines * ENERGIES * PIXELS);
  for (let l = 0; l < lines; l++) {
    for (let i = 0; i < ENERGIES * PIXELS; i++) out[l * ENERGIES * PIXELS + i] = (((firstLine + l) * 131 + i * 7) % 50_000) + 1000;
  }
  return out;
}

interface Rig {
  dir: string;
  store: ScanStore;
  service: IngestService;
  identity: TestIdentity;
  events: string[];
}

const rigs: Rig[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) {
    await r.service.close().catch(() => undefined);
    r.store.close();
    r.identity.close();
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function rig(dir: string, config: GatewayConfigInput = {}): Rig {
  const store = ScanStore.open(dir, silentLogger(), { directIo: false });
  const identity = openTestIdentity(dir);
  const service = new IngestService({
    portals: identity.identity,
    config: resolveConfig({ storage: { dataDir: dir }, portal: { stitchMaxDelayMs: 0, resumeGraceMs: 60_000 }, stitch: { maxLines: 4096 } }, config),
    store,
    log: silentLogger(),
  });
  const events: string[] = [];
  service.listen({
    scanStarted: (s) => events.push(`started ${s.scanId}${s.recovered ? ` recovered ${s.recovered.lines}` : ''}`),
    scanCompleted: (s) => events.push(`completed ${s.scanId} ${s.lines}`),
    scanAborted: (s, reason) => events.push(`aborted ${s.scanId}: ${reason}`),
  });
  const r = { dir, store, service, identity, events };
  rigs.push(r);
  return r;
}

function newDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'scanline-durable-'));
  dirs.push(d);
  return d;
}

/** Drops a rig as a crash would: nothing closed, nothing flushed beyond what the kernel already has. */
function crash(r: Rig): void {
  rigs.splice(rigs.indexOf(r), 1);
  r.store.close();
  r.identity.close();
}

class Portal {
  readonly channel = new RecordingChannel();
  readonly conn: PortalConnection;
  constructor(
    r: Rig,
    readonly portalId = 'lane-1',
  ) {
    this.conn = r.service.openConnection(this.channel);
    this.text({
      type: 'hello',
      portalId,
      token: r.identity.portalCredential(portalId),
      detector: { pixels: PIXELS, energies: ENERGIES, bitDepth: 16, pitchMm: 4.4, lineRateHz: 500 },
    });
  }
  text(message: Record<string, unknown>): void {
    const text = JSON.stringify(message);
    this.conn.onText(text, Buffer.byteLength(text));
  }
  frame(kind: SliceKind, streamId: number, seq: number, firstLine: number, lines = FRAME_LINES): void {
    const values =
      kind === SliceKind.Image ? lineValues(firstLine, lines) : new Uint16Array(lines * ENERGIES * PIXELS).fill(kind === SliceKind.Dark ? 200 : 60_000);
    this.conn.onBinary(encodeSliceFrame({ kind, energies: ENERGIES, streamId, seq, firstLine, pixels: PIXELS, acquiredAtUs: 0n }, values));
  }
  start(streamId: number, scanId: string): void {
    this.text({ type: 'scan.start', streamId, scanId });
  }
  of<T extends GatewayMessage['type']>(type: T): Array<Extract<GatewayMessage, { type: T }>> {
    return this.channel.messages.filter((m) => m.type === type) as Array<Extract<GatewayMessage, { type: T }>>;
  }
  lastAck(streamId: number): number {
    const acks = this.of('ack').filter((a) => a.streamId === streamId);
    return acks.length > 0 ? acks[acks.length - 1].seq : -1;
  }
}

async function until(what: string, ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('durable acknowledgement', () => {
  it('acks a frame only after its lines and the journal are synced; the journal names every accepted frame and the lines written', async () => {
    const r = rig(newDir());
    const p = new Portal(r);
    p.start(1, 'scan-a');
    p.frame(SliceKind.Dark, 1, 0, 0);
    p.frame(SliceKind.Air, 1, 1, 0);
    for (let seq = 2; seq < 10; seq++) p.frame(SliceKind.Image, 1, seq, (seq - 2) * FRAME_LINES);
    // Nothing is acknowledged in the tick the frames arrived: they are only in memory.
    expect(p.of('ack')).toEqual([]);
    await until('ack of seq 9', () => p.lastAck(1) === 9);
    // Acks never go past what is durable, and are cumulative and increasing.
    const seqs = p.of('ack').map((a) => a.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    const journal = parseJournal(readFileSync(r.store.journalPath('scan-a')));
    expect(journal.tornBytes).toBe(0);
    expect(journal.frames.map((f) => [f.seq, f.kind])).toEqual([
      [0, SliceKind.Dark],
      [1, SliceKind.Air],
      ...[2, 3, 4, 5, 6, 7, 8, 9].map((s) => [s, SliceKind.Image]),
    ]);
    expect(journal.frames[0].payload?.length).toBe(FRAME_LINES * ENERGIES * PIXELS);
    const covered = new Set<number>();
    for (const l of journal.lines) for (let i = l.firstLine; i < l.firstLine + l.lineCount; i++) covered.add(i);
    expect(covered.size).toBe(8 * FRAME_LINES);
    const raw = readFileSync(r.store.rawPath('scan-a'));
    expect(Buffer.compare(raw.subarray(0, 8 * FRAME_LINES * BYTES_PER_LINE), Buffer.from(lineValues(0, 8 * FRAME_LINES).buffer))).toBe(0);
    expect(r.service.stats.commits.cycles).toBeGreaterThan(0);
    expect(r.service.stats.ackDelay.count).toBe(10);
  });

  it('one commit cycle covers frames of many scans: far fewer cycles than frames', async () => {
    const r = rig(newDir(), { storage: { ackMaxDelayMs: 5 } });
    const portals = [0, 1, 2, 3].map((i) => new Portal(r, `lane-${i}`));
    for (const [i, p] of portals.entries()) p.start(1, `scan-${i}`);
    for (let seq = 0; seq < 16; seq++) for (const p of portals) p.frame(SliceKind.Image, 1, seq, seq * FRAME_LINES);
    await until('every ack', () => portals.every((p) => p.lastAck(1) === 15));
    expect(r.service.stats.commits.cycles).toBeLessThan(16);
  });

  it("'memory' acks at once, in the frame's tick (the documented opt-in)", () => {
    const r = rig(newDir(), { portal: { ackDurability: 'memory' } });
    const p = new Portal(r);
    p.start(1, 'scan-m');
    p.frame(SliceKind.Image, 1, 0, 0);
    expect(p.lastAck(1)).toBe(0);
  });

  it('completes only once everything is durable, with a final ack before scan.completed', async () => {
    const r = rig(newDir());
    const p = new Portal(r);
    p.start(1, 'scan-c');
    for (let seq = 0; seq < 4; seq++) p.frame(SliceKind.Image, 1, seq, seq * FRAME_LINES);
    p.text({ type: 'scan.end', streamId: 1, totalLines: 4 * FRAME_LINES });
    await until('scan.completed', () => p.of('scan.completed').length === 1);
    const types = p.channel.messages.map((m) => m.type);
    expect(types.lastIndexOf('ack')).toBeLessThan(types.indexOf('scan.completed'));
    expect(p.lastAck(1)).toBe(3);
    expect(r.store.getScan('scan-c')).toMatchObject({ state: 'completed', lines: 64 });
    expect(parseJournal(readFileSync(r.store.journalPath('scan-c'))).endLines).toBe(64);
  });
});

describe("the scan's record on stable storage before it is relied on (deferred commits, ScanStore.durable)", () => {
  /** Holds ScanStore.durable() until opened; counts the calls. */
  function holdDurable(store: ScanStore): { calls: () => number; open: () => void } {
    const real = store.durable.bind(store);
    let calls = 0;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    store.durable = () => {
      calls++;
      return gate.then(real);
    };
    return { calls: () => calls, open };
  }

  it('no ack before the record of the scan is durable', async () => {
    const r = rig(newDir());
    const held = holdDurable(r.store);
    const p = new Portal(r);
    p.start(1, 'scan-r');
    for (let seq = 0; seq < 4; seq++) p.frame(SliceKind.Image, 1, seq, seq * FRAME_LINES);
    await until('the first commit asks for the record', () => held.calls() > 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(p.of('ack')).toEqual([]);
    expect(r.store.walSyncStats.deferredCommits).toBeGreaterThan(0);
    held.open();
    await until('ack of seq 3', () => p.lastAck(1) === 3);
    expect(r.store.walSyncStats.syncs).toBeGreaterThan(0);
  });

  it('a record that cannot be made durable is a storage failure: no ack, the scan is aborted with the code', async () => {
    const r = rig(newDir());
    r.store.durable = () => Promise.reject(new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', 'fdatasync of the WAL failed: EIO'));
    const p = new Portal(r);
    p.start(1, 'scan-f');
    for (let seq = 0; seq < 4; seq++) p.frame(SliceKind.Image, 1, seq, seq * FRAME_LINES);
    await until('the error', () => p.of('error').length > 0);
    expect(p.of('error')[0]).toMatchObject({ code: 'SCANLINE_ERR_STORAGE_WRITE', streamId: 1 });
    expect(p.of('ack')).toEqual([]);
    await until('aborted', () => r.events.some((e) => e.startsWith('aborted scan-f')));
  });

  it('scan.completed only once the completed record is durable', async () => {
    const r = rig(newDir());
    const p = new Portal(r);
    p.start(1, 'scan-e');
    for (let seq = 0; seq < 4; seq++) p.frame(SliceKind.Image, 1, seq, seq * FRAME_LINES);
    await until('ack of seq 3', () => p.lastAck(1) === 3);
    const held = holdDurable(r.store);
    p.text({ type: 'scan.end', streamId: 1, totalLines: 4 * FRAME_LINES });
    await until('the close-out asks for the record', () => held.calls() > 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(r.store.getScan('scan-e')?.state).toBe('completed');
    expect(p.of('scan.completed')).toEqual([]);
    held.open();
    await until('scan.completed', () => p.of('scan.completed').length === 1);
  });
});

describe('crash recovery', () => {
  async function crashedScan(frames: number, end = false): Promise<{ dir: string; acked: number }> {
    const dir = newDir();
    const r = rig(dir);
    const p = new Portal(r);
    p.start(1, 'scan-x');
    p.frame(SliceKind.Dark, 1, 0, 0);
    p.frame(SliceKind.Air, 1, 1, 0);
    for (let seq = 2; seq < frames + 2; seq++) p.frame(SliceKind.Image, 1, seq, (seq - 2) * FRAME_LINES);
    if (end) p.text({ type: 'scan.end', streamId: 1, totalLines: frames * FRAME_LINES });
    await until('acks', () => p.lastAck(1) === frames + 1);
    await r.service.committer.whenIdle();
    const acked = p.lastAck(1);
    crash(r);
    return { dir, acked };
  }

  it('rebuilds an open scan from its journal: lines, calibration, seq; the portal resumes after the last acked frame and completes it bit-exact', async () => {
    const { dir, acked } = await crashedScan(10);
    const r = rig(dir);
    expect(r.service.recoverOpenScans()).toBe(1);
    expect(r.events).toEqual(['started scan-x recovered 160']);
    const view = r.service.getLiveScan('scan-x');
    expect(view?.lines).toBe(160);
    const p = new Portal(r);
    p.text({ type: 'scan.resume', streamId: 7, scanId: 'scan-x' });
    const resume = p.of('resume')[0];
    expect(resume.nextSeq).toBe(acked + 1);
    for (let seq = acked + 1; seq < 22; seq++) p.frame(SliceKind.Image, 7, seq, (seq - 2) * FRAME_LINES);
    p.text({ type: 'scan.end', streamId: 7, totalLines: 20 * FRAME_LINES });
    await until('scan.completed', () => p.of('scan.completed').length === 1);
    expect(p.of('error')).toEqual([]);
    expect(r.store.getScan('scan-x')).toMatchObject({ state: 'completed', lines: 320, gaps: [] });
    const raw = readFileSync(r.store.rawPath('scan-x'));
    expect(Buffer.compare(raw, Buffer.from(lineValues(0, 320).buffer))).toBe(0);
    expect(r.service.stats.scansRecovered).toBe(1);
  });

  it('a torn journal tail and lines that never reached the disk are not recovered: the portal resends them', async () => {
    const { dir } = await crashedScan(10);
    const store = ScanStore.open(dir, silentLogger(), { directIo: false });
    const journalPath = store.journalPath('scan-x');
    const rawPath = store.rawPath('scan-x');
    store.close();
    // The last written range's bytes differ from what its record says (the record reached the disk, the lines did not).
    const journal = parseJournal(readFileSync(journalPath));
    const last = journal.lines[journal.lines.length - 1];
    const raw = readFileSync(rawPath);
    raw.fill(0, last.firstLine * BYTES_PER_LINE, (last.firstLine + last.lineCount) * BYTES_PER_LINE);
    writeFileSync(rawPath, raw);
    // And half a record at the end (a crash during an append).
    appendFileSync(journalPath, Buffer.alloc(JOURNAL_HEADER_BYTES / 2, 0x53));
    const validBytes = parseJournal(readFileSync(journalPath)).validBytes;
    const r = rig(dir);
    expect(r.service.recoverOpenScans()).toBe(1);
    // The torn tail is cut off at once (and synced): no stale record can follow new ones after another crash.
    expect(readFileSync(journalPath).byteLength).toBe(validBytes);
    const p = new Portal(r);
    p.text({ type: 'scan.resume', streamId: 1, scanId: 'scan-x' });
    const nextSeq = p.of('resume')[0].nextSeq;
    expect(nextSeq).toBe(2 + last.firstLine / FRAME_LINES);
    for (let seq = nextSeq; seq < 12; seq++) p.frame(SliceKind.Image, 1, seq, (seq - 2) * FRAME_LINES);
    p.text({ type: 'scan.end', streamId: 1, totalLines: 160 });
    await until('scan.completed', () => p.of('scan.completed').length === 1);
    expect(Buffer.compare(readFileSync(rawPath), Buffer.from(lineValues(0, 160).buffer))).toBe(0);
    // The torn tail was overwritten by the records that came after.
    expect(parseJournal(readFileSync(journalPath)).tornBytes).toBe(0);
  });

  it('a scan whose scan.end was journaled completes without its portal', async () => {
    const { dir } = await crashedScan(6, true);
    // The crash came before the scan was recorded completed (it may have been after: then nothing is open).
    const store = ScanStore.open(dir, silentLogger(), { directIo: false });
    if (store.getScan('scan-x')?.state === 'completed') store.updateScan('scan-x', { state: 'receiving' });
    store.close();
    const r = rig(dir);
    expect(r.service.recoverOpenScans()).toBe(1);
    // The record says completed before the event: the outcome is told once that record is durable.
    await until('completed', () => r.events.includes('completed scan-x 96'));
    expect(r.store.getScan('scan-x')?.state).toBe('completed');
  });

  it('a journaled scan.end does not complete a scan whose last frames did not survive: it waits for its portal to resend them', async () => {
    const { dir } = await crashedScan(6, true);
    const store = ScanStore.open(dir, silentLogger(), { directIo: false });
    if (store.getScan('scan-x')?.state === 'completed') store.updateScan('scan-x', { state: 'receiving' });
    const rawPath = store.rawPath('scan-x');
    const journal = parseJournal(readFileSync(store.journalPath('scan-x')));
    store.close();
    const last = journal.lines[journal.lines.length - 1];
    const raw = readFileSync(rawPath);
    raw.fill(0, last.firstLine * BYTES_PER_LINE, (last.firstLine + last.lineCount) * BYTES_PER_LINE);
    writeFileSync(rawPath, raw);
    const r = rig(dir);
    expect(r.service.recoverOpenScans()).toBe(1);
    await new Promise((res) => setTimeout(res, 200));
    expect(r.store.getScan('scan-x')?.state).toBe('receiving');
    const p = new Portal(r);
    p.text({ type: 'scan.resume', streamId: 1, scanId: 'scan-x' });
    const nextSeq = p.of('resume')[0].nextSeq;
    expect(nextSeq).toBeLessThan(8);
    for (let seq = nextSeq; seq < 8; seq++) p.frame(SliceKind.Image, 1, seq, (seq - 2) * FRAME_LINES);
    p.text({ type: 'scan.end', streamId: 1, totalLines: 96 });
    await until('scan.completed', () => p.of('scan.completed').length === 1);
    expect(Buffer.compare(readFileSync(rawPath), Buffer.from(lineValues(0, 96).buffer))).toBe(0);
  });

  it('an open scan not resumed within portal.resumeGraceMs ends aborted with what was recovered, and the reason says so', async () => {
    const { dir } = await crashedScan(4);
    const r = rig(dir, { portal: { resumeGraceMs: 50 } });
    r.service.recoverOpenScans();
    await until('aborted', () => r.store.getScan('scan-x')?.state === 'aborted');
    expect(r.store.getScan('scan-x')).toMatchObject({ lines: 64 });
    expect(r.store.getScan('scan-x')?.reason).toMatch(/gateway restarted during the scan; recovered 64 lines/);
  });

  it('an open scan without a journal (an older version wrote it) is marked interrupted', async () => {
    const { dir } = await crashedScan(2);
    const store = ScanStore.open(dir, silentLogger(), { directIo: false });
    rmSync(store.journalPath('scan-x'));
    store.close();
    const r = rig(dir);
    expect(r.service.recoverOpenScans()).toBe(0);
    expect(r.store.getScan('scan-x')).toMatchObject({ state: 'interrupted' });
    expect(r.store.getScan('scan-x')?.reason).toMatch(/no journal/);
  });

  it('a journal ends at the first record whose header or calibration payload was altered', async () => {
    const path = join(newDir(), 'frames.log');
    const w = ScanJournalWriter.open(path);
    w.appendFrame(0, SliceKind.Dark, 0, 2, new Uint16Array(2 * ENERGIES * PIXELS).fill(200));
    w.appendFrame(1, SliceKind.Image, 0, 16, null);
    w.appendLines(0, 16, 1234);
    w.appendEnd(16, 2);
    await w.commit(true);
    await w.close();
    const whole = readFileSync(path);
    expect(parseJournal(whole)).toMatchObject({ endLines: 16, tornBytes: 0, lines: [{ firstLine: 0, lineCount: 16, crc: 1234 }] });
    expect(parseJournal(whole).frames.map((f) => f.seq)).toEqual([0, 1]);
    const darkRecord = JOURNAL_HEADER_BYTES + 2 * ENERGIES * PIXELS * 2;
    // A flipped bit in the second record's header: the journal ends after the first.
    const header = Buffer.from(whole);
    header[darkRecord + 12] ^= 1;
    expect(parseJournal(header)).toMatchObject({ validBytes: darkRecord, endLines: null, lines: [] });
    // A flipped bit in the dark frame's payload: nothing is read.
    const payload = Buffer.from(whole);
    payload[JOURNAL_HEADER_BYTES + 5] ^= 1;
    expect(parseJournal(payload)).toMatchObject({ validBytes: 0, frames: [] });
    expect(JournalRecordType.End).toBe(3);
  });
});
