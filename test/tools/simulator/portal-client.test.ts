import { afterEach, describe, expect, it } from 'vitest';
import { ScanlineError } from '../../../src/errors/index.js';
import type { GatewayMessage } from '../../../src/protocol/index.js';
import { SliceKind, decodeSliceHeader } from '../../../src/protocol/index.js';
import { createDetector } from '../../../tools/simulator/detector.js';
import { PortalClient, type PortalClientOptions } from '../../../tools/simulator/portal-client.js';
import { SceneBuilder } from '../../../tools/simulator/primitives.js';
import { renderLines } from '../../../tools/simulator/render.js';
import { generateTruck, sceneFromPrimitives, type Scene } from '../../../tools/simulator/scene.js';
import { FakeGateway, type FakeGatewayOptions } from './fake-gateway.js';

const det = createDetector({ pixels: 64, lineRateHz: 2_000 });

/** A small scene: 64 air lines, a 300-line steel box, 16 air lines (380 lines = 24 slices of 16). */
function smallScene(seed = 1): Scene {
  const b = new SceneBuilder();
  b.box('steel', 0, 300 * det.mmPerLine, 1_000, 3_000, 50 + seed);
  b.zdisc('rubber', 600, 500, 500, 300, 600);
  return sceneFromPrimitives(det, b.primitives, { leadingAirLines: 64, trailingAirLines: 16, seed });
}

function rendered(scene: Scene): Uint16Array {
  const out = new Uint16Array(scene.totalLines * 2 * det.pixels);
  renderLines(scene, det, 0, scene.totalLines, out);
  return out;
}

function sameBytes(a: Uint16Array, b: Uint16Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

let gateway: FakeGateway | null = null;
let client: PortalClient | null = null;

async function setup(gw: FakeGatewayOptions = {}, opts: Partial<PortalClientOptions> = {}): Promise<{ gw: FakeGateway; client: PortalClient }> {
  gateway = await new FakeGateway(gw).start();
  client = new PortalClient({ url: gateway.url, portalId: 'test-portal', detector: det, speed: 'max', ...opts });
  return { gw: gateway, client };
}

afterEach(async () => {
  await client?.close();
  await gateway?.stop();
  client = null;
  gateway = null;
});

describe('PortalClient', () => {
  it('sends hello, scan.start, calibration frames, slices with seq 0.. and scan.end in order; the frames reassemble the rendered lines', async () => {
    const { gw, client } = await setup();
    const welcome = await client.connect();
    expect(welcome.portalId).toBe('test-portal');
    const scene = smallScene();
    const result = await client.scan(scene);

    const textIn = gw.log.filter((e) => e.dir === 'in').map((e) => e.type);
    expect(textIn[0]).toBe('hello');
    expect(textIn[1]).toBe('scan.start');
    expect(textIn[textIn.length - 1]).toBe('scan.end');
    expect(textIn.slice(2, -1).every((t) => t === 'binary')).toBe(true);
    const hello = gw.log.find((e) => e.type === 'hello') as { message: Record<string, unknown> };
    expect(hello.message.detector).toEqual({ pixels: 64, energies: 2, bitDepth: 16, pitchMm: det.pitchMm, lineRateHz: 2_000 });
    const start = gw.log.find((e) => e.type === 'scan.start') as { message: Record<string, unknown> };
    expect(start.message.streamId).toBe(result.streamId);
    expect(start.message.scanId).toBeUndefined();
    const end = gw.log.find((e) => e.type === 'scan.end') as { message: Record<string, unknown> };
    expect(end.message).toEqual({ type: 'scan.end', streamId: result.streamId, totalLines: scene.totalLines });

    const frames = gw.binaryFrames();
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
    expect(result.scanId).toBe('fake-scan-1');
    expect(result.slices).toBe(Math.ceil(scene.totalLines / 16));
    expect(result.framesResent).toBe(0);
    expect(sameBytes(gw.reassemble(result.scanId, 128), rendered(scene))).toBe(true);
    expect(client.stats.linesSent).toBe(scene.totalLines);
    expect(client.errorCounts).toEqual({});
  });

  it('numbers streams upward per scan, uses a requested scanId, and streams a generated truck', async () => {
    const { gw, client } = await setup({}, { calibration: false, linesPerSlice: 64 });
    const a = await client.scan(smallScene(1), { scanId: 'lane1-0001' });
    const truck = generateTruck(3, det);
    const b = await client.scan(truck);
    expect(a.scanId).toBe('lane1-0001');
    expect(b.streamId).toBe(a.streamId + 1);
    expect(gw.binaryFrames().filter((f) => f.streamId === b.streamId)[0]).toMatchObject({ seq: 0, kind: SliceKind.Image, firstLine: 0 });
    expect(sameBytes(gw.reassemble(b.scanId, 128), rendered(truck))).toBe(true);
    const start = gw.log.filter((e) => e.type === 'scan.start')[1] as { message: Record<string, unknown> };
    expect(start.message.vehicle).toEqual({ plate: truck.vehicle!.plate, kind: truck.vehicle!.kind });
    expect(start.message.declaration).toEqual({ hsCodes: truck.declaration!.hsCodes, description: truck.declaration!.description });
  });

  it('never has more than maxInFlight frames un-acked', async () => {
    const { gw, client } = await setup({ holdAcks: true }, { maxInFlight: 8 });
    const scene = smallScene();
    const done = client.scan(scene);
    // Wait until the client stops sending with acks held back.
    let seen = -1;
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const now = gw.binaryFrames().length;
      if (now === seen && now > 0) break;
      seen = now;
    }
    expect(gw.binaryFrames().length).toBe(8);
    gw.releaseAcks();
    const result = await done;
    expect(gw.maxInFlightSeen).toBeLessThanOrEqual(8);
    expect(sameBytes(gw.reassemble(result.scanId, 128), rendered(scene))).toBe(true);
  });

  it('resends from nextSeq after SCANLINE_ERR_SLICE_SEQ_AHEAD', async () => {
    // A long ack timeout: recovery must come from the error's nextSeq, not from the timeout.
    const { gw, client } = await setup({ dropSeqsOnce: [5], reorderWindow: 4 }, { ackTimeoutMs: 60_000 });
    const errors: GatewayMessage[] = [];
    client.on('gateway-error', (m: GatewayMessage) => errors.push(m));
    const scene = smallScene();
    const t0 = performance.now();
    const result = await client.scan(scene);
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]).toMatchObject({ code: 'SCANLINE_ERR_SLICE_SEQ_AHEAD', nextSeq: 5 });
    expect(client.errorCounts.SCANLINE_ERR_SLICE_SEQ_AHEAD).toBe(errors.length);
    expect(result.framesResent).toBeGreaterThan(0);
    // After the error, seq 5 is sent again before anything later.
    const seqs = gw.binaryFrames().map((f) => f.seq);
    const firstAfter = seqs.indexOf(5, seqs.indexOf(5) + 1);
    expect(firstAfter).toBeGreaterThan(0);
    expect(seqs.slice(firstAfter, firstAfter + 3)).toEqual([5, 6, 7]);
    expect(gw.replayMismatches).toBe(0);
    expect(sameBytes(gw.reassemble(result.scanId, 128), rendered(scene))).toBe(true);
  });

  it('resends from nextSeq after SCANLINE_ERR_SCAN_INCOMPLETE and sends scan.end again', async () => {
    const { gw, client } = await setup({ incompleteOnceFrom: 10 }, { ackTimeoutMs: 60_000 });
    const scene = smallScene();
    const t0 = performance.now();
    const result = await client.scan(scene);
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(client.errorCounts.SCANLINE_ERR_SCAN_INCOMPLETE).toBe(1);
    expect(gw.log.filter((e) => e.type === 'scan.end')).toHaveLength(2);
    // Between the two scan.end messages the client resends exactly seq 10 to the last frame.
    const ends = gw.log.flatMap((e, i) => (e.type === 'scan.end' ? [i] : []));
    const between = gw.log.slice(ends[0], ends[1]).flatMap((e) => (e.type === 'binary' && 'header' in e ? [e.header.seq] : []));
    const lastSeq = result.slices + 2 - 1;
    expect(between).toEqual(Array.from({ length: lastSeq - 10 + 1 }, (_, i) => 10 + i));
    expect(result.framesResent).toBe(lastSeq - 10 + 1);
    expect(sameBytes(gw.reassemble(result.scanId, 128), rendered(scene))).toBe(true);
  });

  it('resends the first un-acked frame when acks stop (a lost last frame)', async () => {
    const scene = smallScene();
    const frames = Math.ceil(scene.totalLines / 16) + 2;
    const { gw, client } = await setup({ dropSeqsOnce: [frames - 1] }, { ackTimeoutMs: 150 });
    const result = await client.scan(scene);
    expect(result.framesResent).toBe(1);
    expect(
      gw
        .binaryFrames()
        .map((f) => f.seq)
        .slice(-2),
    ).toEqual([frames - 1, frames - 1]);
    expect(sameBytes(gw.reassemble(result.scanId, 128), rendered(scene))).toBe(true);
  });

  it('reconnects and resumes (scan.resume -> resume {nextSeq}) when the gateway drops the connection mid-scan', async () => {
    const { gw, client } = await setup({ dropConnectionAfterFrames: 10 }, { reconnectDelayMs: 20, ackTimeoutMs: 60_000 });
    const reconnects: unknown[] = [];
    client.on('reconnect', (e) => reconnects.push(e));
    const scene = smallScene();
    const result = await client.scan(scene);
    expect(result.resumes).toBe(1);
    expect(reconnects.length).toBeGreaterThanOrEqual(1);
    const hellos = gw.log.filter((e) => e.type === 'hello');
    expect(hellos.map((e) => e.connection)).toEqual([1, 2]);
    const resume = gw.log.find((e) => e.type === 'scan.resume') as { message: Record<string, unknown>; connection: number };
    expect(resume.connection).toBe(2);
    expect(resume.message).toEqual({ type: 'scan.resume', streamId: result.streamId, scanId: result.scanId });
    const answer = gw.log.find((e) => e.dir === 'out' && e.type === 'resume') as { message: Record<string, unknown> };
    expect(answer.message.nextSeq).toBe(10);
    // On the new connection the client continues exactly at nextSeq.
    expect(gw.binaryFrames(2)[0].seq).toBe(10);
    expect(gw.binaryFrames(2).map((f) => f.seq)).toEqual(gw.binaryFrames(2).map((_, i) => 10 + i));
    expect(gw.replayMismatches).toBe(0);
    expect(sameBytes(gw.reassemble(result.scanId, 128), rendered(scene))).toBe(true);
  });

  it('paces slices at the line rate in realtime mode', async () => {
    const { gw, client } = await setup({}, { speed: 'realtime' });
    const scene = smallScene(); // 380 lines at 2000 lines/s = 190 ms
    const t0 = performance.now();
    await client.scan(scene);
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual((scene.totalLines / 2_000) * 1000 * 0.9);
    expect(gw.binaryFrames().length).toBe(Math.ceil(scene.totalLines / 16) + 2);
  });

  it('surfaces gateway errors as events and rejects the scan with SCANLINE_ERR_SIM_REJECTED on an unexpected one', async () => {
    const { client } = await setup({ refuseScanStart: 'SCANLINE_ERR_SCAN_TOO_MANY' });
    const seen: GatewayMessage[] = [];
    client.on('message', (m: GatewayMessage) => seen.push(m));
    const err = await client.scan(smallScene()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScanlineError);
    expect((err as ScanlineError).code).toBe('SCANLINE_ERR_SIM_REJECTED');
    expect((err as ScanlineError).message).toContain('SCANLINE_ERR_SCAN_TOO_MANY');
    expect(client.errorCounts).toEqual({ SCANLINE_ERR_SCAN_TOO_MANY: 1 });
    expect(seen.map((m) => m.type)).toEqual(['welcome', 'error']);
  });

  it('fails connect with SCANLINE_ERR_SIM_REJECTED when hello is refused, and SCANLINE_ERR_SIM_CONNECTION when nothing listens', async () => {
    const { client } = await setup({ refuseHello: 'SCANLINE_ERR_AUTH_TOKEN' });
    await expect(client.connect()).rejects.toMatchObject({ code: 'SCANLINE_ERR_SIM_REJECTED' });
    const url = gateway!.url;
    await gateway!.stop();
    gateway = null;
    const lonely = new PortalClient({ url, portalId: 'p2', detector: det, connectTimeoutMs: 2_000 });
    await expect(lonely.connect()).rejects.toMatchObject({ code: 'SCANLINE_ERR_SIM_CONNECTION' });
    await lonely.close();
  });

  it('sends raw malformed input and lets tests observe every message', async () => {
    const observed: GatewayMessage[] = [];
    const { gw, client } = await setup({}, { onMessage: (m) => observed.push(m) });
    await client.connect();
    client.sendRaw('{not json');
    client.sendRaw(new Uint8Array([1, 2, 3]));
    for (let i = 0; i < 50 && observed.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    expect(observed.map((m) => (m.type === 'error' ? m.code : m.type))).toEqual(['welcome', 'SCANLINE_ERR_PROTO_JSON', 'SCANLINE_ERR_SLICE_TRUNCATED']);
    expect(client.errorCounts).toEqual({ SCANLINE_ERR_PROTO_JSON: 1, SCANLINE_ERR_SLICE_TRUNCATED: 1 });
    expect(gw.log.some((e) => e.type === 'invalid-json')).toBe(true);
  });

  it('sends scan.abort and stops when its signal aborts', async () => {
    const controller = new AbortController();
    const { gw, client } = await setup({}, { speed: 'realtime', signal: controller.signal });
    const done = client.scan(smallScene()).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    controller.abort(new Error('stop'));
    const err = await done;
    expect((err as Error).message).toBe('stop');
    for (let i = 0; i < 50 && !gw.log.some((e) => e.type === 'scan.abort'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(gw.log.find((e) => e.type === 'scan.abort')).toBeDefined();
  });

  it('validates its options', () => {
    expect(() => new PortalClient({ url: 'http://x', portalId: 'p', detector: det })).toThrow(/Expected a ws:\/\/ or wss:\/\/ URL for url/);
    expect(() => new PortalClient({ url: 'ws://x', portalId: 'bad id', detector: det })).toThrow(ScanlineError);
    expect(() => new PortalClient({ url: 'ws://x', portalId: 'p', detector: det, maxInFlight: 0 })).toThrow(/maxInFlight/);
    expect(() => new PortalClient({ url: 'ws://x', portalId: 'p', detector: det, speed: 'fast' as 'max' })).toThrow(/speed/);
  });
});

describe('decoded frames', () => {
  it('carry headers that decodeSliceHeader accepts', async () => {
    const { gw, client } = await setup({}, { linesPerSlice: 7 });
    const result = await client.scan(smallScene(2));
    const stored = gw.scans.get(result.scanId)!;
    for (const f of stored.stored.values()) expect(decodeSliceHeader(f.bytes)).toEqual(f.header);
    expect([...stored.stored.values()].filter((f) => f.header.kind === SliceKind.Image).every((f) => f.header.lineCount <= 7)).toBe(true);
  });
});
