/**
 * The simulated portal against the real gateway (127.0.0.1, native stitcher, storage): what it sends, and how it
 * recovers when the network between them (PortalLink) loses a frame, holds acks back or drops the connection.
 * The stored raw lines prove what arrived: they must equal the rendered scene bit for bit.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { GatewayConfigInput } from '../../../src/config/index.js';
import { ScanlineError } from '../../../src/errors/index.js';
import type { GatewayMessage } from '../../../src/protocol/index.js';
import { SliceKind } from '../../../src/protocol/index.js';
import { createDetector } from '../../../tools/simulator/detector.js';
import { PortalClient, type PortalClientOptions } from '../../../tools/simulator/portal-client.js';
import { SceneBuilder } from '../../../tools/simulator/primitives.js';
import { renderLines } from '../../../tools/simulator/render.js';
import { generateTruck, sceneFromPrimitives, type Scene } from '../../../tools/simulator/scene.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { PortalLink, type LinkRules } from './portal-link.js';

const det = createDetector({ pixels: 64, lineRateHz: 2_000 });
const VALUES_PER_LINE = 2 * det.pixels;

/** A small scene: 64 air lines, a 300-line steel box, 16 air lines (380 lines = 24 slices of 16). */
function smallScene(seed = 1): Scene {
  const b = new SceneBuilder();
  b.box('steel', 0, 300 * det.mmPerLine, 1_000, 3_000, 50 + seed);
  b.zdisc('rubber', 600, 500, 500, 300, 600);
  return sceneFromPrimitives(det, b.primitives, { leadingAirLines: 64, trailingAirLines: 16, seed });
}

function rendered(scene: Scene): Uint16Array {
  const out = new Uint16Array(scene.totalLines * VALUES_PER_LINE);
  renderLines(scene, det, 0, scene.totalLines, out);
  return out;
}

/** True when the gateway stored exactly the rendered lines of `scene` for `scanId`. */
async function storedAsRendered(scanId: string, scene: Scene): Promise<boolean> {
  const stored = await gateway!.store.readRaw(scanId, scene.totalLines, VALUES_PER_LINE * 2);
  const expected = rendered(scene);
  return Buffer.from(stored.buffer).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength));
}

/** Frames the client sent again whose bytes differ from the first copy (go-back-N must replay them unchanged). */
function replayMismatches(link: PortalLink): number {
  const first = new Map<string, Uint8Array>();
  let mismatches = 0;
  for (const f of link.frames()) {
    const key = `${f.header.streamId}/${f.header.seq}`;
    const original = first.get(key);
    if (!original) first.set(key, f.bytes);
    else if (!Buffer.from(original).equals(Buffer.from(f.bytes))) mismatches++;
  }
  return mismatches;
}

let gateway: TestGateway | null = null;
let link: PortalLink | null = null;
let client: PortalClient | null = null;

async function setup(
  opts: Partial<PortalClientOptions> = {},
  rules: LinkRules = {},
  config: GatewayConfigInput = {},
): Promise<{ link: PortalLink; client: PortalClient }> {
  gateway = await startTestGateway(config);
  link = await PortalLink.open(gateway.portalUrl, rules);
  const portalId = opts.portalId ?? 'test-portal';
  client = new PortalClient({ url: link.url, portalId, token: gateway.portalCredential(portalId), detector: det, speed: 'max', ...opts });
  return { link, client };
}

/** A rule that loses the first copy of the frames with these seqs. */
function loseOnce(...seqs: number[]): LinkRules['up'] {
  const lost = new Set<number>();
  return (t) => ('header' in t && seqs.includes(t.header.seq) && !lost.has(t.header.seq) && lost.add(t.header.seq) ? 'drop' : 'forward');
}

afterEach(async () => {
  await client?.close();
  await link?.close();
  await gateway?.dispose();
  client = null;
  link = null;
  gateway = null;
});

describe('PortalClient', () => {
  it('sends hello, scan.start, calibration frames, slices with seq 0.. and scan.end in order; the gateway stores the rendered lines', async () => {
    const { link, client } = await setup();
    const welcome = await client.connect();
    expect(welcome.portalId).toBe('test-portal');
    const scene = smallScene();
    const result = await client.scan(scene);

    const up = link.traffic.filter((t) => t.dir === 'up').map((t) => t.type);
    expect(up[0]).toBe('hello');
    expect(up[1]).toBe('scan.start');
    expect(up[up.length - 1]).toBe('scan.end');
    expect(up.slice(2, -1).every((t) => t === 'binary')).toBe(true);
    expect(link.messages('up', 'hello')[0].message.detector).toEqual({ pixels: 64, energies: 2, bitDepth: 16, pitchMm: det.pitchMm, lineRateHz: 2_000 });
    const start = link.messages('up', 'scan.start')[0].message;
    expect(start.streamId).toBe(result.streamId);
    expect(start.scanId).toBeUndefined();
    expect(link.messages('up', 'scan.end')[0].message).toEqual({ type: 'scan.end', streamId: result.streamId, totalLines: scene.totalLines });

    const frames = link.frames().map((f) => f.header);
    expect(frames.map((f) => f.seq)).toEqual(frames.map((_, i) => i));
    expect(frames[0].kind).toBe(SliceKind.Dark);
    expect(frames[1].kind).toBe(SliceKind.Air);
    const slices = frames.slice(2);
    expect(slices.every((f) => f.kind === SliceKind.Image && f.streamId === result.streamId && f.pixels === 64 && f.energies === 2)).toBe(true);
    expect(slices.map((f) => f.firstLine)).toEqual(slices.map((_, i) => i * 16));
    expect(slices.reduce((s, f) => s + f.lineCount, 0)).toBe(scene.totalLines);
    for (let i = 1; i < slices.length; i++) {
      expect(slices[i].acquiredAtUs - slices[i - 1].acquiredAtUs).toBe(BigInt(Math.round((16 * 1e6) / 2_000)));
    }
    expect(result.scanId).toBe(link.messages('down', 'scan.accepted')[0].message.scanId);
    expect(result.completed).toMatchObject({ scanId: result.scanId, lines: scene.totalLines, gaps: [] });
    expect(result.slices).toBe(Math.ceil(scene.totalLines / 16));
    expect(result.framesResent).toBe(0);
    expect(await storedAsRendered(result.scanId, scene)).toBe(true);
    expect(client.stats.linesSent).toBe(scene.totalLines);
    expect(client.errorCounts).toEqual({});
  });

  it('numbers streams upward per scan, uses a requested scanId, and streams a generated truck', async () => {
    const { link, client } = await setup({ calibration: false, linesPerSlice: 64 });
    const a = await client.scan(smallScene(1), { scanId: 'lane1-0001' });
    const truck = generateTruck(3, det);
    const b = await client.scan(truck);
    expect(a.scanId).toBe('lane1-0001');
    expect(b.streamId).toBe(a.streamId + 1);
    expect(link.frames().filter((f) => f.header.streamId === b.streamId)[0].header).toMatchObject({ seq: 0, kind: SliceKind.Image, firstLine: 0 });
    expect(await storedAsRendered(b.scanId, truck)).toBe(true);
    const start = link.messages('up', 'scan.start')[1].message;
    expect(start.vehicle).toEqual({ plate: truck.vehicle!.plate, kind: truck.vehicle!.kind });
    expect(start.declaration).toEqual({ hsCodes: truck.declaration!.hsCodes, description: truck.declaration!.description });
  });

  it('never has more than maxInFlight frames un-acked', async () => {
    let holdAcks = true;
    const { link, client } = await setup({ maxInFlight: 8 }, { down: (t) => (holdAcks && t.type === 'ack' ? 'hold' : 'forward') });
    const scene = smallScene();
    const done = client.scan(scene);
    // Wait until the client stops sending with acks held back.
    let seen = -1;
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const now = link.frames().length;
      if (now === seen && now > 0) break;
      seen = now;
    }
    expect(link.frames().length).toBe(8);
    holdAcks = false;
    link.release();
    const result = await done;
    // Frames beyond the last ack passed on to the client, at each frame it sent.
    let lastAck = -1;
    let maxInFlight = 0;
    for (const t of link.traffic) {
      if ('message' in t && t.type === 'ack' && (t.action === 'forward' || t.action === 'released')) lastAck = t.message.seq as number;
      if ('header' in t) maxInFlight = Math.max(maxInFlight, t.header.seq - lastAck);
    }
    expect(maxInFlight).toBeLessThanOrEqual(8);
    expect(await storedAsRendered(result.scanId, scene)).toBe(true);
  });

  it('resends from nextSeq after SCANLINE_ERR_SLICE_SEQ_AHEAD', async () => {
    // A long ack timeout: recovery must come from the error's nextSeq, not from the timeout.
    const { link, client } = await setup({ ackTimeoutMs: 60_000 }, { up: loseOnce(5) }, { portal: { reorderWindowSlices: 4 } });
    const errors: GatewayMessage[] = [];
    client.on('gateway-error', (m: GatewayMessage) => errors.push(m));
    const scene = smallScene();
    const result = await client.scan(scene);
    // Recovery came from the gateway's nextSeq, not from the (60 s) ack timeout.
    expect(client.stats.ackTimeouts).toBe(0);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]).toMatchObject({ code: 'SCANLINE_ERR_SLICE_SEQ_AHEAD', nextSeq: 5 });
    expect(client.errorCounts).toEqual({ SCANLINE_ERR_SLICE_SEQ_AHEAD: errors.length });
    expect(result.framesResent).toBeGreaterThan(0);
    // After the error, seq 5 is sent again before anything later.
    const seqs = link.frames().map((f) => f.header.seq);
    const firstAfter = seqs.indexOf(5, seqs.indexOf(5) + 1);
    expect(firstAfter).toBeGreaterThan(0);
    expect(seqs.slice(firstAfter, firstAfter + 3)).toEqual([5, 6, 7]);
    expect(replayMismatches(link)).toBe(0);
    expect(await storedAsRendered(result.scanId, scene)).toBe(true);
  });

  it('resends from nextSeq after SCANLINE_ERR_SCAN_INCOMPLETE and sends scan.end again, even for frames that were acked', async () => {
    // A gateway that says it lost acknowledged frames (see portal-link.ts): the first scan.end is answered in its
    // place. The real gateway behind still has them: its acks of the first replays tell the client so.
    let answered = false;
    const { link, client } = await setup(
      { ackTimeoutMs: 60_000 },
      {
        up: (t) => {
          if (t.type !== 'scan.end' || !('message' in t) || answered) return 'forward';
          answered = true;
          const streamId = t.message.streamId;
          link!.answer(t.connection, { type: 'error', code: 'SCANLINE_ERR_SCAN_INCOMPLETE', message: 'frames missing', streamId, nextSeq: 10 });
          return 'drop';
        },
      },
    );
    const scene = smallScene();
    const result = await client.scan(scene);
    // Recovery came from the gateway's nextSeq, not from the (60 s) ack timeout.
    expect(client.stats.ackTimeouts).toBe(0);
    expect(client.errorCounts).toEqual({ SCANLINE_ERR_SCAN_INCOMPLETE: 1 });
    expect(link.messages('up', 'scan.end')).toHaveLength(2);
    // Between the two scan.end messages the client goes back to seq 10 and resends in order, until acks say the
    // gateway has every frame.
    const ends = link.traffic.flatMap((t, i) => (t.type === 'scan.end' ? [i] : []));
    const between = link.traffic.slice(ends[0], ends[1]).flatMap((t) => ('header' in t ? [t.header.seq] : []));
    expect(between.length).toBeGreaterThan(0);
    expect(between).toEqual(between.map((_, i) => 10 + i));
    expect(result.framesResent).toBe(between.length);
    expect(replayMismatches(link)).toBe(0);
    expect(await storedAsRendered(result.scanId, scene)).toBe(true);
  });

  it('resends the first un-acked frame when acks stop (a lost last frame)', async () => {
    const scene = smallScene();
    const frames = Math.ceil(scene.totalLines / 16) + 2;
    const { link, client } = await setup({ ackTimeoutMs: 150 }, { up: loseOnce(frames - 1) });
    const result = await client.scan(scene);
    expect(result.framesResent).toBe(1);
    expect(
      link
        .frames()
        .map((f) => f.header.seq)
        .slice(-2),
    ).toEqual([frames - 1, frames - 1]);
    expect(await storedAsRendered(result.scanId, scene)).toBe(true);
  });

  it('reconnects and resumes (scan.resume -> resume {nextSeq}) when the connection drops mid-scan', async () => {
    // The 11th frame never arrives: the connection drops under it, after the gateway received seq 0..9.
    const { link, client } = await setup(
      { reconnectDelayMs: 20, ackTimeoutMs: 60_000 },
      { up: (t) => ('header' in t && t.connection === 1 && t.header.seq === 10 ? 'cut' : 'forward') },
    );
    const reconnects: unknown[] = [];
    client.on('reconnect', (e) => reconnects.push(e));
    const scene = smallScene();
    const result = await client.scan(scene);
    expect(result.resumes).toBe(1);
    expect(reconnects.length).toBeGreaterThanOrEqual(1);
    expect(link.messages('up', 'hello').map((t) => t.connection)).toEqual([1, 2]);
    const resume = link.messages('up', 'scan.resume')[0];
    expect(resume.connection).toBe(2);
    expect(resume.message).toEqual({ type: 'scan.resume', streamId: result.streamId, scanId: result.scanId });
    expect(link.messages('down', 'resume')[0].message.nextSeq).toBe(10);
    // On the new connection the client continues exactly at nextSeq.
    const again = link.frames(2).map((f) => f.header.seq);
    expect(again).toEqual(again.map((_, i) => 10 + i));
    expect(replayMismatches(link)).toBe(0);
    expect(await storedAsRendered(result.scanId, scene)).toBe(true);
  });

  it('paces slices at the line rate in realtime mode', async () => {
    const { link, client } = await setup({ speed: 'realtime' });
    const scene = smallScene(); // 380 lines at 2000 lines/s = 190 ms
    const t0 = performance.now();
    await client.scan(scene);
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual((scene.totalLines / 2_000) * 1000 * 0.9);
    expect(link.frames().length).toBe(Math.ceil(scene.totalLines / 16) + 2);
  });

  it('surfaces gateway errors as events and rejects the scan with SCANLINE_ERR_SIM_REJECTED on an unexpected one', async () => {
    const { client } = await setup({ calibration: false });
    await client.scan(smallScene(1), { scanId: 'lane1-0001' });
    const seen: GatewayMessage[] = [];
    client.on('message', (m: GatewayMessage) => seen.push(m));
    const err = await client.scan(smallScene(2), { scanId: 'lane1-0001' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScanlineError);
    expect((err as ScanlineError).code).toBe('SCANLINE_ERR_SIM_REJECTED');
    expect((err as ScanlineError).message).toContain('SCANLINE_ERR_SCAN_ID_TAKEN');
    expect(client.errorCounts).toEqual({ SCANLINE_ERR_SCAN_ID_TAKEN: 1 });
    expect(seen.map((m) => m.type)).toEqual(['error']);
  });

  it('fails connect with SCANLINE_ERR_SIM_REJECTED when hello is refused, and SCANLINE_ERR_SIM_CONNECTION when nothing listens', async () => {
    gateway = await startTestGateway();
    const refused = new PortalClient({ url: gateway.portalUrl, portalId: 'p1', detector: det, token: gateway.portalCredential('p0') });
    await expect(refused.connect()).rejects.toMatchObject({ code: 'SCANLINE_ERR_SIM_REJECTED' });
    expect(refused.errorCounts).toEqual({ SCANLINE_ERR_AUTH_TOKEN: 1 });
    await refused.close();
    const url = gateway.portalUrl;
    await gateway.dispose();
    gateway = null;
    const lonely = new PortalClient({ url, portalId: 'p2', detector: det, connectTimeoutMs: 2_000 });
    await expect(lonely.connect()).rejects.toMatchObject({ code: 'SCANLINE_ERR_SIM_CONNECTION' });
    await lonely.close();
  });

  it('sends raw malformed input and lets tests observe every message', async () => {
    const observed: GatewayMessage[] = [];
    const { link, client } = await setup({ onMessage: (m) => observed.push(m) });
    await client.connect();
    client.sendRaw('{not json');
    client.sendRaw(new Uint8Array([1, 2, 3]));
    for (let i = 0; i < 50 && observed.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    expect(observed.map((m) => (m.type === 'error' ? m.code : m.type))).toEqual(['welcome', 'SCANLINE_ERR_PROTO_JSON', 'SCANLINE_ERR_SLICE_TRUNCATED']);
    expect(client.errorCounts).toEqual({ SCANLINE_ERR_PROTO_JSON: 1, SCANLINE_ERR_SLICE_TRUNCATED: 1 });
    expect(link.traffic.filter((t) => t.dir === 'up').map((t) => t.type)).toEqual(['hello', 'invalid-json', 'invalid-binary']);
  });

  it('sends scan.abort and stops when its signal aborts; the gateway aborts the scan', async () => {
    const controller = new AbortController();
    const { link, client } = await setup({ speed: 'realtime', signal: controller.signal });
    const done = client.scan(smallScene()).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    controller.abort(new Error('stop'));
    const err = await done;
    expect((err as Error).message).toBe('stop');
    for (let i = 0; i < 100 && gateway!.store.listScans({ state: 'aborted' }).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(link.messages('up', 'scan.abort')).toHaveLength(1);
    expect(gateway!.store.listScans({ state: 'aborted' })).toHaveLength(1);
  });

  it('aborts a scan it started and stops on its signal even before scan.accepted came back (no scan left open)', async () => {
    const controller = new AbortController();
    // scan.accepted is held by the network: the portal stops while the gateway has opened the scan.
    const { link, client } = await setup({ speed: 'realtime', signal: controller.signal }, { down: (t) => (t.type === 'scan.accepted' ? 'hold' : 'forward') });
    const done = client.scan(smallScene()).catch((e: unknown) => e);
    for (let i = 0; i < 100 && gateway!.ingest.liveScans().length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(gateway!.ingest.liveScans()).toHaveLength(1);
    controller.abort(new Error('stop'));
    expect(((await done) as Error).message).toBe('stop');
    for (let i = 0; i < 100 && gateway!.store.listScans({ state: 'aborted' }).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(link.messages('up', 'scan.abort')).toHaveLength(1);
    expect(gateway!.store.listScans({ state: 'aborted' })).toHaveLength(1);
    // The scan leaves the live set once its record is durable (a WAL sync after the record's commit).
    for (let i = 0; i < 100 && gateway!.ingest.liveScans().length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(gateway!.ingest.liveScans()).toEqual([]);
  });

  it('validates its options', () => {
    expect(() => new PortalClient({ url: 'http://x', portalId: 'p', detector: det })).toThrow(/Expected a ws:\/\/ or wss:\/\/ URL for url/);
    expect(() => new PortalClient({ url: 'ws://x', portalId: 'bad id', detector: det })).toThrow(ScanlineError);
    expect(() => new PortalClient({ url: 'ws://x', portalId: 'p', detector: det, maxInFlight: 0 })).toThrow(/maxInFlight/);
    expect(() => new PortalClient({ url: 'ws://x', portalId: 'p', detector: det, speed: 'fast' as 'max' })).toThrow(/speed/);
  });
});

describe('frames', () => {
  it('of any slice height are accepted and stored as sent', async () => {
    const { link, client } = await setup({ linesPerSlice: 7 });
    const scene = smallScene(2);
    const result = await client.scan(scene);
    const images = link.frames().filter((f) => f.header.kind === SliceKind.Image);
    expect(images.every((f) => f.header.lineCount <= 7)).toBe(true);
    expect(images.reduce((s, f) => s + f.header.lineCount, 0)).toBe(scene.totalLines);
    expect(client.errorCounts).toEqual({});
    expect(await storedAsRendered(result.scanId, scene)).toBe(true);
  });
});
