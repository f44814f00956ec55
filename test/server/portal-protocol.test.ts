/**
 * Portal protocol v1 against the real server (uWS + native stitcher + SQLite on 127.0.0.1): every malformed or
 * inconsistent input gets its code, while a good scan on the same connection and one on another connection
 * complete intact (their raw images bit-identical to what was sent).
 */
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SliceKind, encodeSliceFrame, type GatewayMessage } from '../../src/protocol/index.js';
import { startTestGateway, getJson, type TestGateway } from '../helpers/gateway.js';
import { RawPortal } from '../helpers/raw-portal.js';

const PIXELS = 64;
const ENERGIES = 2;
const LINES = 512;
const LINES_PER_SLICE = 16;

/** Deterministic dual-energy lines: 40 air lines, then a ramp object. Line-major, high energy first. */
function makeLines(seed: number, lines = LINES): Uint16Array {
  const out = new Uint16Array(lines * ENERGIES * PIXELS);
  let s = seed >>> 0;
  for (let l = 0; l < lines; l++) {
    for (let e = 0; e < ENERGIES; e++) {
      for (let p = 0; p < PIXELS; p++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        const air = e === 0 ? 50_000 : 40_000;
        const att = l < 40 ? 0 : ((p % 32) / 32) * (e === 0 ? 1.0 : 1.4) + (l % 7) * 0.05;
        out[(l * ENERGIES + e) * PIXELS + p] = Math.round(air * Math.exp(-att)) + (s % 50);
      }
    }
  }
  return out;
}

function slice(streamId: number, seq: number, firstLine: number, data: Uint16Array, kind: 1 | 2 | 3 = SliceKind.Image): Uint8Array {
  return encodeSliceFrame({ kind, energies: ENERGIES, streamId, seq, firstLine, pixels: PIXELS, acquiredAtUs: BigInt(Date.now()) * 1000n }, data);
}

function linesOf(data: Uint16Array, first: number, count: number): Uint16Array {
  return data.subarray(first * ENERGIES * PIXELS, (first + count) * ENERGIES * PIXELS);
}

/** A good scan driven by hand so bad frames can be interleaved between its slices. */
class GoodScan {
  readonly data: Uint16Array;
  nextSlice = 0;
  seq = 0;
  constructor(
    readonly portal: RawPortal,
    readonly streamId: number,
    readonly scanId: string,
    seed: number,
  ) {
    this.data = makeLines(seed);
  }
  async start(): Promise<void> {
    this.portal.json({ type: 'scan.start', streamId: this.streamId, scanId: this.scanId, declaration: { hsCodes: ['4407'] } });
    await this.portal.next((m) => m.type === 'scan.accepted' && m.streamId === this.streamId);
  }
  /** Sends the next slice and waits for its ack. */
  async step(): Promise<void> {
    const first = this.nextSlice * LINES_PER_SLICE;
    if (first >= LINES) return;
    const seq = this.seq++;
    this.portal.binary(slice(this.streamId, seq, first, linesOf(this.data, first, LINES_PER_SLICE)));
    this.nextSlice++;
    await this.portal.next((m) => m.type === 'ack' && m.streamId === this.streamId && m.seq >= seq);
  }
  async finish(): Promise<GatewayMessage> {
    while (this.nextSlice * LINES_PER_SLICE < LINES) await this.step();
    this.portal.json({ type: 'scan.end', streamId: this.streamId, totalLines: LINES });
    return this.portal.next((m) => (m.type === 'scan.completed' || m.type === 'scan.aborted') && m.streamId === this.streamId);
  }
}

async function rawImage(g: TestGateway, scanId: string, energy: 'high' | 'low'): Promise<{ width: number; height: number; values: Uint16Array }> {
  const res = await fetch(`${g.httpUrl}/v1/scans/${scanId}/image?energy=${energy}&format=png16`, { headers: g.authHeaders() });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('image/png');
  const png = Buffer.from(await res.arrayBuffer());
  const { data, info } = await sharp(png).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
  expect(info.channels).toBe(1);
  return { width: info.width, height: info.height, values: new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2) };
}

/** The sent lines of one energy in image layout (row = pixel, column = line). */
function expectedPlane(data: Uint16Array, lines: number, energy: number): Uint16Array {
  const out = new Uint16Array(lines * PIXELS);
  for (let l = 0; l < lines; l++) for (let p = 0; p < PIXELS; p++) out[p * lines + l] = data[(l * ENERGIES + energy) * PIXELS + p];
  return out;
}

async function expectIntact(g: TestGateway, scan: GoodScan): Promise<void> {
  const { body } = await getJson(g, `/v1/scans/${scan.scanId}`);
  expect(body).toMatchObject({ scanId: scan.scanId, state: 'completed', lines: LINES, gaps: [] });
  for (const [name, e] of [
    ['high', 0],
    ['low', 1],
  ] as const) {
    const img = await rawImage(g, scan.scanId, name);
    expect([img.width, img.height]).toEqual([LINES, PIXELS]);
    expect(Buffer.from(img.values.buffer, img.values.byteOffset, img.values.byteLength).equals(Buffer.from(expectedPlane(scan.data, LINES, e).buffer))).toBe(
      true,
    );
  }
}

describe('portal protocol v1: malformed input', () => {
  let g: TestGateway;
  beforeAll(async () => {
    g = await startTestGateway({
      portal: { maxOpenScans: 3, reorderWindowSlices: 8, maxMessageBytes: 256 * 1024, maxControlBytes: 4096 },
    });
  });
  afterAll(async () => {
    await g?.dispose();
  });

  it('answers every malformed input with its code while good scans on the same and another connection complete intact', async () => {
    const a = await RawPortal.hello(g.portalUrl, 'lane-a', { pixels: PIXELS, energies: ENERGIES });
    const b = await RawPortal.hello(g.portalUrl, 'lane-b', { pixels: PIXELS, energies: ENERGIES });
    expect(a.messages[0]).toMatchObject({ type: 'welcome', protocol: 1, portalId: 'lane-a' });
    const goodA = new GoodScan(a, 1, 'good-a', 11);
    const goodB = new GoodScan(b, 1, 'good-b', 22);
    await goodA.start();
    await goodB.start();
    await goodA.step();
    await goodB.step();

    const codes: Record<string, string> = {};
    const bad = async (name: string, send: () => void): Promise<GatewayMessage & { type: 'error' }> => {
      const err = await a.expectError(send);
      codes[name] = err.code;
      // keep both good scans moving between bad inputs
      await goodA.step();
      await goodB.step();
      return err;
    };

    await bad('json', () => a.json('{"type": "scan.start", '));
    await bad('schema', () => a.json({ type: 'scan.start', streamId: 'seven' }));
    await bad('unknownType', () => a.json({ type: 'scan.teleport', streamId: 1 }));
    await bad('helloAgain', () =>
      a.json({ type: 'hello', portalId: 'lane-a', detector: { pixels: PIXELS, energies: 2, bitDepth: 16, pitchMm: 4, lineRateHz: 500 } }),
    );
    await bad('magic', () => {
      const f = slice(1, 999, 0, linesOf(goodA.data, 0, 1));
      f[0] = 0x58;
      f[3] = 0x00;
      a.binary(f);
    });
    await bad('truncated', () => a.binary(slice(1, 999, 0, linesOf(goodA.data, 0, 1)).subarray(0, 20)));
    await bad('size', () => {
      const f = slice(1, 999, 0, linesOf(goodA.data, 0, 2));
      a.binary(f.subarray(0, f.byteLength - PIXELS * 2));
    });
    await bad('geometry', () =>
      a.binary(encodeSliceFrame({ kind: 1, energies: 2, streamId: 1, seq: 999, firstLine: 0, pixels: 32, acquiredAtUs: 0n }, new Uint16Array(2 * 32))),
    );
    await bad('unknownStream', () => a.binary(slice(99, 0, 0, linesOf(goodA.data, 0, 1))));
    const mismatch = await bad('replayMismatch', () => {
      const altered = linesOf(goodA.data, 0, LINES_PER_SLICE).slice();
      altered[5] ^= 0x00ff;
      a.binary(slice(1, 0, 0, altered));
    });
    expect(mismatch).toMatchObject({ streamId: 1, seq: 0 });
    const nextBefore = goodA.seq;
    const ahead = await bad('seqAhead', () => a.binary(slice(1, nextBefore + 8, 5000, linesOf(goodA.data, 0, 1))));
    expect(ahead.nextSeq).toBe(nextBefore);
    await bad('lineRange', () => a.binary(slice(1, goodA.seq, 20_000, linesOf(goodA.data, 0, 1))));
    await bad('calibrationLate', () => a.binary(slice(1, goodA.seq, 0, linesOf(goodA.data, 0, 4), SliceKind.Air)));
    await bad('endUnknown', () => a.json({ type: 'scan.end', streamId: 42, totalLines: 10 }));
    await bad('endBelowReceived', () => a.json({ type: 'scan.end', streamId: 1, totalLines: 3 }));
    await bad('resumeUnknown', () => a.json({ type: 'scan.resume', streamId: 7, scanId: 'no-such-scan' }));
    await bad('scanIdTaken', () => a.json({ type: 'scan.start', streamId: 9, scanId: 'good-b' }));
    await bad('streamInUse', () => a.json({ type: 'scan.start', streamId: 1, scanId: 'another' }));

    // Too many open scans: good-a plus two more reach the limit of 3.
    a.json({ type: 'scan.start', streamId: 2 });
    a.json({ type: 'scan.start', streamId: 3 });
    await a.next((m) => m.type === 'scan.accepted' && m.streamId === 3);
    await bad('tooMany', () => a.json({ type: 'scan.start', streamId: 4 }));
    a.json({ type: 'scan.abort', streamId: 2, reason: 'test' });
    await a.next((m) => m.type === 'scan.aborted' && m.streamId === 2);

    // scan.end while a frame is missing: SCAN_INCOMPLETE with nextSeq; filling the hole lets it complete.
    const holeData = makeLines(33, 64);
    a.binary(slice(3, 0, 0, linesOf(holeData, 0, 32)));
    a.binary(slice(3, 2, 48, linesOf(holeData, 48, 16)));
    await a.next((m) => m.type === 'ack' && m.streamId === 3 && m.seq === 0);
    const incomplete = await bad('incomplete', () => a.json({ type: 'scan.end', streamId: 3, totalLines: 64 }));
    expect(incomplete.nextSeq).toBe(1);
    a.binary(slice(3, 1, 32, linesOf(holeData, 32, 16)));
    const ack = await a.next((m) => m.type === 'ack' && m.streamId === 3 && m.seq === 2);
    expect(ack).toMatchObject({ seq: 2 }); // cumulative: the out-of-order seq 2 is covered once seq 1 arrives
    a.json({ type: 'scan.end', streamId: 3, totalLines: 64 });
    const done3 = await a.next((m) => m.type === 'scan.completed' && m.streamId === 3);
    expect(done3).toMatchObject({ lines: 64, gaps: [] });

    // An identical replay is acknowledged again, not an error.
    const before = a.messages.length;
    a.binary(slice(1, 0, 0, linesOf(goodA.data, 0, LINES_PER_SLICE)));
    const reAck = await a.next((m) => m.type === 'ack' && m.streamId === 1, 10_000, before);
    expect(reAck.type).toBe('ack');

    expect(codes).toEqual({
      json: 'SCANLINE_ERR_PROTO_JSON',
      schema: 'SCANLINE_ERR_PROTO_INVALID',
      unknownType: 'SCANLINE_ERR_PROTO_UNKNOWN_TYPE',
      helloAgain: 'SCANLINE_ERR_PROTO_HELLO_REPEATED',
      magic: 'SCANLINE_ERR_SLICE_MAGIC',
      truncated: 'SCANLINE_ERR_SLICE_TRUNCATED',
      size: 'SCANLINE_ERR_SLICE_SIZE',
      geometry: 'SCANLINE_ERR_SLICE_GEOMETRY',
      unknownStream: 'SCANLINE_ERR_STREAM_UNKNOWN',
      replayMismatch: 'SCANLINE_ERR_SLICE_REPLAY_MISMATCH',
      seqAhead: 'SCANLINE_ERR_SLICE_SEQ_AHEAD',
      lineRange: 'SCANLINE_ERR_SLICE_LINE_RANGE',
      calibrationLate: 'SCANLINE_ERR_SLICE_CALIBRATION_LATE',
      endUnknown: 'SCANLINE_ERR_STREAM_UNKNOWN',
      endBelowReceived: 'SCANLINE_ERR_PROTO_INVALID',
      resumeUnknown: 'SCANLINE_ERR_SCAN_UNKNOWN',
      scanIdTaken: 'SCANLINE_ERR_SCAN_ID_TAKEN',
      streamInUse: 'SCANLINE_ERR_STREAM_IN_USE',
      tooMany: 'SCANLINE_ERR_SCAN_TOO_MANY',
      incomplete: 'SCANLINE_ERR_SCAN_INCOMPLETE',
    });

    expect(await goodA.finish()).toMatchObject({ type: 'scan.completed', scanId: 'good-a', lines: LINES, gaps: [] });
    expect(await goodB.finish()).toMatchObject({ type: 'scan.completed', scanId: 'good-b', lines: LINES, gaps: [] });
    await expectIntact(g, goodA);
    await expectIntact(g, goodB);
    expect(a.closeCode).toBeNull();
    expect(b.closeCode).toBeNull();
    // Every error reached the stats by code.
    expect(g.ingest.stats.errorsByCode.get('SCANLINE_ERR_SLICE_MAGIC')).toBe(1);
    a.close();
    b.close();
  });

  it('answers a message over the size limits with SCANLINE_ERR_PROTO_OVERSIZE and closes the connection with 1009', async () => {
    for (const [portalId, send] of [
      ['lane-big-binary', (p: RawPortal) => p.binary(new Uint8Array(300 * 1024))],
      ['lane-big-text', (p: RawPortal) => p.json({ type: 'scan.abort', streamId: 1, reason: 'x'.repeat(5000) })],
    ] as const) {
      const p = await RawPortal.hello(g.portalUrl, portalId, { pixels: PIXELS, energies: ENERGIES });
      const err = await p.expectError(() => send(p));
      expect(err.code).toBe('SCANLINE_ERR_PROTO_OVERSIZE');
      expect(await p.waitClose()).toBe(1009);
    }
  });

  it('refuses anything before hello, and unsupported protocol versions', async () => {
    const c = await RawPortal.connect(g.portalUrl);
    expect((await c.expectError(() => c.json({ type: 'scan.start', streamId: 1 }))).code).toBe('SCANLINE_ERR_PROTO_NOT_HELLO');
    expect((await c.expectError(() => c.binary(slice(1, 0, 0, makeLines(1, 1))))).code).toBe('SCANLINE_ERR_PROTO_NOT_HELLO');
    const v2 = await c.expectError(() =>
      c.json({ type: 'hello', portalId: 'lane-c', protocol: 2, detector: { pixels: PIXELS, energies: 2, bitDepth: 16, pitchMm: 4, lineRateHz: 500 } }),
    );
    expect(v2.code).toBe('SCANLINE_ERR_PROTO_VERSION');
    expect(c.closeCode).toBeNull();
    c.close();
  });

  it('resumes a scan on a new connection after the old one dropped, losing nothing, for its own portal and geometry only', async () => {
    const first = await RawPortal.hello(g.portalUrl, 'lane-r', { pixels: PIXELS, energies: ENERGIES });
    const scan = new GoodScan(first, 5, 'resumed-scan', 44);
    await scan.start();
    for (let i = 0; i < 4; i++) await scan.step();
    first.ws.terminate(); // abrupt drop, no close handshake
    await new Promise((r) => setTimeout(r, 100));

    // Another portal, with its own valid credential, may not take the scan over; nor may its owner with another
    // detector geometry.
    const other = await RawPortal.hello(g.portalUrl, 'lane-s', { pixels: PIXELS, energies: ENERGIES });
    const stolen = await other.expectError(() => other.json({ type: 'scan.resume', streamId: 1, scanId: 'resumed-scan' }));
    expect(stolen).toMatchObject({ code: 'SCANLINE_ERR_SCAN_NOT_RESUMABLE', message: expect.stringContaining('belongs to another portal') });
    other.close();
    const narrow = await RawPortal.hello(g.portalUrl, 'lane-r', { pixels: PIXELS / 2, energies: ENERGIES });
    const reshaped = await narrow.expectError(() => narrow.json({ type: 'scan.resume', streamId: 1, scanId: 'resumed-scan' }));
    expect(reshaped).toMatchObject({ code: 'SCANLINE_ERR_SCAN_NOT_RESUMABLE', message: expect.stringContaining(`${PIXELS} pixels`) });
    narrow.close();
    await new Promise((r) => setTimeout(r, 50));

    const second = await RawPortal.hello(g.portalUrl, 'lane-r', { pixels: PIXELS, energies: ENERGIES });
    second.json({ type: 'scan.resume', streamId: 6, scanId: 'resumed-scan' });
    const resume = await second.next((m) => m.type === 'resume');
    expect(resume).toMatchObject({ type: 'resume', streamId: 6, scanId: 'resumed-scan', nextSeq: 4 });
    const continued = Object.assign(new GoodScan(second, 6, 'resumed-scan', 44), { nextSlice: 4, seq: 4 });
    expect(await continued.finish()).toMatchObject({ type: 'scan.completed', lines: LINES, gaps: [] });
    await expectIntact(g, continued);
    second.close();
  });

  it('answers a resume that races with scan.end with scan.completed, never a dead end', async () => {
    for (let trial = 0; trial < 5; trial++) {
      const first = await RawPortal.hello(g.portalUrl, 'lane-race', { pixels: PIXELS, energies: ENERGIES });
      const scan = new GoodScan(first, 1, `race-${trial}`, 90 + trial);
      await scan.start();
      while (scan.nextSlice * LINES_PER_SLICE < LINES) await scan.step();
      // scan.end, and the connection drops before the portal hears scan.completed; it reconnects at once.
      first.json({ type: 'scan.end', streamId: 1, totalLines: LINES });
      first.ws.terminate();
      const second = await RawPortal.hello(g.portalUrl, 'lane-race', { pixels: PIXELS, energies: ENERGIES });
      second.json({ type: 'scan.resume', streamId: 3, scanId: scan.scanId });
      const answer = await second.next((m) => m.type === 'scan.completed' || m.type === 'resume' || m.type === 'error' || m.type === 'scan.aborted');
      expect(answer, `trial ${trial}`).toMatchObject({ type: 'scan.completed', streamId: 3, scanId: scan.scanId, lines: LINES, gaps: [] });
      second.close();
    }
  });

  it('completes a scan whose lines arrive out of order, and reports lines never sent as gaps', async () => {
    const p = await RawPortal.hello(g.portalUrl, 'lane-o', { pixels: PIXELS, energies: ENERGIES });
    p.json({ type: 'scan.start', streamId: 1, scanId: 'gappy' });
    await p.next((m) => m.type === 'scan.accepted');
    const total = 160;
    const data = makeLines(55, total);
    // seq 1 before seq 0; lines 96..111 are never sent
    p.binary(slice(1, 1, 48, linesOf(data, 48, 48)));
    p.binary(slice(1, 0, 0, linesOf(data, 0, 48)));
    p.binary(slice(1, 2, 112, linesOf(data, 112, 48)));
    await p.next((m) => m.type === 'ack' && m.seq === 2);
    p.json({ type: 'scan.end', streamId: 1, totalLines: total });
    expect(await p.next((m) => m.type === 'scan.completed')).toMatchObject({ lines: total, gaps: [[96, 112]] });
    const img = await rawImage(g, 'gappy', 'high');
    const expected = expectedPlane(data, total, 0);
    for (let px = 0; px < PIXELS; px++) for (let l = 96; l < 112; l++) expected[px * total + l] = 0;
    expect(Buffer.from(img.values.buffer, img.values.byteOffset, img.values.byteLength).equals(Buffer.from(expected.buffer))).toBe(true);
    p.close();
  });
});

describe('portal protocol v1: portal credentials', () => {
  let g: TestGateway;
  beforeAll(async () => {
    g = await startTestGateway();
  });
  afterAll(async () => {
    await g?.dispose();
  });

  const detector = { pixels: PIXELS, energies: 2, bitDepth: 16, pitchMm: 4, lineRateHz: 500 };

  it("closes the connection on a missing, wrong or other portal's credential and accepts the portal's own", async () => {
    const own = g.portalCredential('lane-t');
    const other = g.portalCredential('lane-u');
    for (const token of [undefined, 'slp_guess-guess', other, `${own}x`]) {
      const wrong = await RawPortal.connect(g.portalUrl);
      const err = await wrong.expectError(() => wrong.json({ type: 'hello', portalId: 'lane-t', ...(token !== undefined ? { token } : {}), detector }));
      expect(err.code).toBe('SCANLINE_ERR_AUTH_TOKEN');
      expect(err.message).not.toContain(own);
      expect(await wrong.waitClose()).toBe(4001);
    }
    const right = await RawPortal.hello(g.portalUrl, 'lane-t', { pixels: PIXELS, energies: ENERGIES }, { token: own });
    expect(right.messages[0]?.type).toBe('welcome');
    right.close();
  });

  it("keeps the real portal streaming bit-exact while impostors claim its id with no, a guessed or another lane's credential", async () => {
    const real = await RawPortal.hello(g.portalUrl, 'lane-real', { pixels: PIXELS, energies: ENERGIES });
    expect(real.messages[0]?.type).toBe('welcome');
    const scan = new GoodScan(real, 1, 'impersonated-scan', 71);
    await scan.start();
    const impostorTokens = [undefined, 'slp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', g.portalCredential('lane-other')];
    let step = 0;
    for (const token of impostorTokens) {
      for (let i = 0; i < 3; i++, step++) await scan.step();
      const impostor = await RawPortal.connect(g.portalUrl);
      const refused = await impostor.expectError(() => impostor.json({ type: 'hello', portalId: 'lane-real', ...(token ? { token } : {}), detector }));
      expect(refused.code).toBe('SCANLINE_ERR_AUTH_TOKEN');
      expect(await impostor.waitClose()).toBe(4001);
      // Nor can it resume the real portal's scan: it never got past hello.
    }
    expect(real.closeCode).toBeNull();
    expect(await scan.finish()).toMatchObject({ type: 'scan.completed', lines: LINES, gaps: [] });
    await expectIntact(g, scan);
    expect(step).toBe(9);
    real.close();
  });

  it('refuses a portal id that has no identity, and one whose credential was revoked', async () => {
    const none = await RawPortal.connect(g.portalUrl);
    expect((await none.expectError(() => none.json({ type: 'hello', portalId: 'lane-nobody', token: 'slp_x', detector }))).code).toBe(
      'SCANLINE_ERR_AUTH_TOKEN',
    );
    const token = g.portalCredential('lane-r');
    g.identity.revokePortal('lane-r', { name: 'test', address: null });
    const revoked = await RawPortal.connect(g.portalUrl);
    expect((await revoked.expectError(() => revoked.json({ type: 'hello', portalId: 'lane-r', token, detector }))).code).toBe('SCANLINE_ERR_AUTH_TOKEN');
  });

  it('closes a connected portal when its credential is revoked (4003), within the credential check interval', async () => {
    const token = g.identity.setPortalCredential('lane-v', { name: 'test', address: null }).credential;
    const p = await RawPortal.hello(g.portalUrl, 'lane-v', { pixels: PIXELS, energies: ENERGIES }, { token });
    expect(p.messages[0]?.type).toBe('welcome');
    g.identity.revokePortal('lane-v', { name: 'test', address: null });
    expect(g.ingest.closeRevokedPortals()).toBe(1);
    expect(await p.waitClose()).toBe(4003);
    expect(p.messages.some((m) => m.type === 'error' && m.code === 'SCANLINE_ERR_AUTH_REVOKED')).toBe(true);
  });

  it('refuses a browser page: an upgrade carrying an Origin header', async () => {
    const res = await new Promise<number>((resolve) => {
      const ws = new WebSocket(g.portalUrl, { origin: `http://127.0.0.1:${g.port}` });
      ws.on('unexpected-response', (_req, r) => resolve(r.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => undefined);
    });
    expect(res).toBe(403);
  });
});

describe('portal protocol v1: close codes', () => {
  it('closes a connection that says no accepted hello within portal.helloTimeoutMs (1008), so it holds no slot', async () => {
    const g = await startTestGateway({ portal: { helloTimeoutMs: 1000 } });
    try {
      const silent = await RawPortal.connect(g.portalUrl);
      const started = Date.now();
      expect(await silent.waitClose()).toBe(1008);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      expect(silent.messages).toMatchObject([{ type: 'error', code: 'SCANLINE_ERR_PROTO_NOT_HELLO' }]);
      expect(g.ingest.connectionCount).toBe(0);
      // A portal that says hello in time stays.
      const talker = await RawPortal.hello(g.portalUrl, 'lane-talk', { pixels: PIXELS, energies: ENERGIES });
      await new Promise((r) => setTimeout(r, 1300));
      expect(talker.closeCode).toBeNull();
      talker.close();
    } finally {
      await g.dispose();
    }
  });

  it('closes portals with 1001 after draining when the gateway shuts down', async () => {
    const g = await startTestGateway();
    const p = await RawPortal.hello(g.portalUrl, 'lane-bye', { pixels: PIXELS, energies: ENERGIES });
    await g.dispose();
    expect(await p.waitClose()).toBe(1001);
    expect(p.messages.map((m) => m.type)).toEqual(['welcome', 'draining']);
  });
});
