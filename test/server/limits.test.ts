/**
 * The limits that keep one client from starving the others, each against a real gateway: sparse frames and the
 * open-scan memory budget (refused before they cost memory, other scans carry on bit-exact), open scans and portal
 * connections in total, WebSockets per address, screens per account, HTTP requests per address and the image render
 * queue. Each refusal has its code and is counted in scanline_http_refusals_total or scanline_protocol_errors_total.
 */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { GatewayConfigInput } from '../../src/config/index.js';
import { SliceKind, encodeSliceFrame, type GatewayMessage } from '../../src/protocol/index.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { RawPortal } from '../helpers/raw-portal.js';

const PIXELS = 1024;
const BYTES_PER_LINE = PIXELS * 2 * 2;
const FRAME_LINES = 16;

let gw: TestGateway | null = null;
const open: Array<{ close(): void }> = [];
afterEach(async () => {
  for (const o of open.splice(0)) o.close();
  await gw?.dispose();
  gw = null;
});

async function gateway(config: GatewayConfigInput): Promise<TestGateway> {
  gw = await startTestGateway(config);
  return gw;
}

function frame(streamId: number, seq: number, firstLine: number, lines = FRAME_LINES, value = 30_000, noise = false): Uint8Array {
  const data = new Uint16Array(lines * 2 * PIXELS).fill(value + (seq % 100));
  // Noise makes the png16 image incompressible (about 2 MB for 1024 x 1024): large enough to be streamed.
  if (noise) for (let i = 0; i < data.length; i++) data[i] = (value + Math.imul(i + 1, 2654435761) + seq * 7919) & 0xffff;
  return encodeSliceFrame({ kind: SliceKind.Image, energies: 2, streamId, seq, firstLine, pixels: PIXELS, acquiredAtUs: 0n }, data);
}

/** A connected portal with one scan started on stream 1. */
async function portalWithScan(g: TestGateway, portalId: string, scanId: string): Promise<RawPortal> {
  const p = await RawPortal.hello(g.portalUrl, portalId, { pixels: PIXELS, energies: 2 });
  open.push(p);
  p.json({ type: 'scan.start', streamId: 1, scanId });
  const accepted = await p.next((m) => m.type === 'scan.accepted' || m.type === 'error');
  expect(accepted.type).toBe('scan.accepted');
  return p;
}

/** Sends a frame and waits for its ack or an error about it. */
async function send(p: RawPortal, bytes: Uint8Array, seq: number): Promise<GatewayMessage> {
  const from = p.messages.length;
  p.binary(bytes);
  return p.next((m) => (m.type === 'ack' && m.seq >= seq) || (m.type === 'error' && m.seq === seq), 10_000, from);
}

function upgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; code?: string; ws?: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    ws.on('open', () => resolve({ status: 101, ws }));
    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: JSON.parse(Buffer.concat(chunks).toString()).error?.code }));
    });
    ws.on('error', () => undefined);
  });
}

async function refusals(g: TestGateway): Promise<Record<string, number>> {
  const text = await (await fetch(`${g.httpUrl}/metrics`, { headers: g.authHeaders('metrics') })).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^scanline_(?:http_refusals|protocol_errors)_total\{code="([A-Z_]+)"\} (\d+)$/gm)) out[m[1]] = (out[m[1]] ?? 0) + Number(m[2]);
  return out;
}

describe('limits on portals and scans', () => {
  it('refuses sparse frames before they cost memory; the scan and a neighbour carry on', async () => {
    const g = await gateway({ portal: { maxMissingLines: 256 } });
    const attacker = await portalWithScan(g, 'lane-x', 'sparse-1');
    const good = await portalWithScan(g, 'lane-g', 'good-1');
    expect(await send(attacker, frame(1, 0, 0), 0)).toMatchObject({ type: 'ack', seq: 0 });
    // A frame ending at line 16 + 16 + 257 would leave 257 lines missing: refused (256 may be).
    for (const [seq, first] of [
      [1, 10_000],
      [2, 16 + 257],
      [3, 16_000],
    ] as const) {
      expect(await send(attacker, frame(1, seq, first), seq)).toMatchObject({ type: 'error', code: 'SCANLINE_ERR_LIMIT_SPARSE', seq });
    }
    expect(g.ingest.scanBudget.used).toBe(2 * FRAME_LINES * BYTES_PER_LINE - FRAME_LINES * BYTES_PER_LINE);
    // A lost frame's worth of missing lines is fine: the portal resends it later.
    expect(await send(attacker, frame(1, 1, 32), 1)).toMatchObject({ type: 'ack' });
    expect(await send(attacker, frame(1, 2, 16), 2)).toMatchObject({ type: 'ack', seq: 2 });
    for (let seq = 0; seq < 8; seq++) expect(await send(good, frame(1, seq, seq * FRAME_LINES), seq)).toMatchObject({ type: 'ack', seq });
    good.json({ type: 'scan.end', streamId: 1, totalLines: 8 * FRAME_LINES });
    expect(await good.next((m) => m.type === 'scan.completed')).toMatchObject({ lines: 8 * FRAME_LINES, gaps: [] });
    attacker.json({ type: 'scan.end', streamId: 1, totalLines: 48 });
    expect(await attacker.next((m) => m.type === 'scan.completed')).toMatchObject({ lines: 48, gaps: [] });
    expect((await refusals(g)).SCANLINE_ERR_LIMIT_SPARSE).toBe(3);
    // Ended scans give their charge back.
    expect(g.ingest.scanBudget.used).toBe(0);
  });

  it('closes a portal that keeps sending sparse frames, and refuses its hello for portal.sparseCutOffSec', async () => {
    const g = await gateway({ portal: { maxMissingLines: 256, maxSparseRefusals: 4, sparseCutOffSec: 1 } });
    const attacker = await portalWithScan(g, 'lane-x', 'sparse-cut');
    const good = await portalWithScan(g, 'lane-g', 'good-cut');
    // An accepted frame starts the count again: three refusals, an ack, three more, and the connection stays.
    for (let seq = 1; seq <= 3; seq++) expect(await send(attacker, frame(1, seq, 10_000), seq)).toMatchObject({ code: 'SCANLINE_ERR_LIMIT_SPARSE' });
    expect(await send(attacker, frame(1, 0, 0), 0)).toMatchObject({ type: 'ack', seq: 0 });
    for (let seq = 1; seq <= 3; seq++) expect(await send(attacker, frame(1, seq, 10_000), seq)).toMatchObject({ code: 'SCANLINE_ERR_LIMIT_SPARSE' });
    expect(attacker.closeCode).toBeNull();
    // A replay is acked but brings no new line: it does not start the count again, and the fourth closes it (1008).
    expect(await send(attacker, frame(1, 0, 0), 0)).toMatchObject({ type: 'ack', seq: 0 });
    attacker.binary(frame(1, 4, 10_000));
    expect(await attacker.waitClose()).toBe(1008);
    // Its hello is refused while it is cut off, with the time left; the other portal streams on.
    const again = await RawPortal.hello(g.portalUrl, 'lane-x', { pixels: PIXELS, energies: 2 });
    open.push(again);
    expect(again.messages.find((m) => m.type === 'error')).toMatchObject({ code: 'SCANLINE_ERR_LIMIT_SPARSE' });
    expect(await again.waitClose()).toBe(1008);
    for (let seq = 0; seq < 4; seq++) expect(await send(good, frame(1, seq, seq * FRAME_LINES), seq)).toMatchObject({ type: 'ack', seq });
    // Once the cut-off is over it may connect and resume its scan.
    await new Promise((r) => setTimeout(r, 1_100));
    const back = await RawPortal.hello(g.portalUrl, 'lane-x', { pixels: PIXELS, energies: 2 });
    open.push(back);
    expect(back.messages.find((m) => m.type === 'welcome')).toBeDefined();
    const metrics = await (await fetch(`${g.httpUrl}/metrics`, { headers: g.authHeaders('metrics') })).text();
    expect(metrics).toMatch(/^scanline_portal_connections_cut_total 1$/m);
  });

  it('holds open scans to portal.scanBufferBudgetBytes, and gives the memory back when a scan ends', async () => {
    const budget = 16 * 1024 * 1024; // 4096 lines of 1024 px x 2 energies
    const g = await gateway({ portal: { scanBufferBudgetBytes: budget } });
    const a = await portalWithScan(g, 'lane-a', 'budget-a');
    const b = await portalWithScan(g, 'lane-b', 'budget-b');
    const framesA = 3000 / FRAME_LINES; // 187.5: 187 frames, 2992 lines
    for (let seq = 0; seq < Math.floor(framesA); seq++) a.binary(frame(1, seq, seq * FRAME_LINES));
    await a.next((m) => m.type === 'ack' && m.seq === Math.floor(framesA) - 1);
    let refusedAt = -1;
    for (let seq = 0; seq < 100; seq++) {
      const m = await send(b, frame(1, seq, seq * FRAME_LINES), seq);
      if (m.type === 'error') {
        expect(m).toMatchObject({ code: 'SCANLINE_ERR_LIMIT_SCAN_MEMORY', seq });
        refusedAt = seq;
        break;
      }
    }
    // 4096 - 2992 = 1104 lines fit: 69 frames of 16.
    expect(refusedAt).toBe(69);
    expect(g.ingest.scanBudget.used).toBeLessThanOrEqual(budget);
    a.json({ type: 'scan.end', streamId: 1, totalLines: Math.floor(framesA) * FRAME_LINES });
    await a.next((m) => m.type === 'scan.completed');
    await new Promise((r) => setTimeout(r, 50));
    // The refused frame is resent and taken now.
    expect(await send(b, frame(1, refusedAt, refusedAt * FRAME_LINES), refusedAt)).toMatchObject({ type: 'ack', seq: refusedAt });
  });

  it('refuses scans beyond portal.maxOpenScansTotal and portals beyond portal.maxConnections', async () => {
    const g = await gateway({ portal: { maxOpenScansTotal: 2, maxConnections: 2 } });
    const a = await portalWithScan(g, 'lane-a', 'total-a');
    const b = await RawPortal.hello(g.portalUrl, 'lane-b', { pixels: PIXELS, energies: 2 });
    open.push(b);
    b.json({ type: 'scan.start', streamId: 1, scanId: 'total-b' });
    expect(await b.next((m) => m.type === 'scan.accepted')).toMatchObject({ scanId: 'total-b' });
    b.json({ type: 'scan.start', streamId: 2, scanId: 'total-c' });
    expect(await b.next((m) => m.type === 'error')).toMatchObject({ code: 'SCANLINE_ERR_LIMIT_SCANS', streamId: 2 });
    const third = await upgrade(g.portalUrl);
    expect(third).toMatchObject({ status: 429, code: 'SCANLINE_ERR_LIMIT_CONNECTIONS' });
    a.json({ type: 'scan.abort', streamId: 1, reason: 'test' });
    await a.next((m) => m.type === 'scan.aborted');
    await new Promise((r) => setTimeout(r, 50));
    b.json({ type: 'scan.start', streamId: 2, scanId: 'total-c' });
    expect(await b.next((m) => m.type === 'scan.accepted' && m.streamId === 2)).toMatchObject({ scanId: 'total-c' });
  });
});

describe('limits on browsers and programs', () => {
  it('refuses requests and upgrades beyond server.requestsPerSecondPerAddress before authenticating them', async () => {
    // Answered at once here (refusalDelayMs 0): the bucket is what this test counts; the next test holds them.
    const g = await gateway({ server: { requestsPerSecondPerAddress: 5, refusalDelayMs: 0 } });
    // A burst of twice the rate passes; the rest of a quick run is refused, with or without credentials.
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await fetch(`${g.httpUrl}/v1/scans`, { headers: i % 2 ? g.authHeaders() : {} })).status);
    const limited = statuses.filter((s) => s === 429).length;
    expect(limited).toBeGreaterThanOrEqual(15);
    expect(statuses.slice(0, 10).filter((s) => s === 429)).toEqual([]);
    expect(await upgrade(`ws://127.0.0.1:${g.port}/v1/operator`, g.authHeaders())).toMatchObject({ status: 429, code: 'SCANLINE_ERR_LIMIT_RATE' });
    expect(await upgrade(g.portalUrl)).toMatchObject({ status: 429, code: 'SCANLINE_ERR_LIMIT_RATE' });
    // The bucket refills at the rate.
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await fetch(`${g.httpUrl}/v1/scans`, { headers: g.authHeaders() })).status).toBe(200);
    const res = await fetch(`${g.httpUrl}/livez`);
    expect([200, 429]).toContain(res.status);
    expect((await refusals(g)).SCANLINE_ERR_LIMIT_RATE).toBeGreaterThanOrEqual(limited + 2);
  });

  it('holds WebSockets per address and screens per account', async () => {
    const g = await gateway({ server: { maxConnectionsPerAddress: 3 }, operator: { maxScreensPerUser: 2 } });
    const url = `ws://127.0.0.1:${g.port}/v1/operator`;
    const as = (account: string) => ({ authorization: `Bearer ${g.accountToken(account, 'viewer')}` });
    const s1 = await upgrade(url, as('desk-1'));
    const s2 = await upgrade(url, as('desk-1'));
    expect([s1.status, s2.status]).toEqual([101, 101]);
    expect(await upgrade(url, as('desk-1'))).toMatchObject({ status: 429, code: 'SCANLINE_ERR_LIMIT_SCREENS' });
    const s3 = await upgrade(url, as('desk-2'));
    expect(s3.status).toBe(101);
    // The address has 3 sockets: a fourth, screen or portal, is refused.
    expect(await upgrade(url, as('desk-3'))).toMatchObject({ status: 429, code: 'SCANLINE_ERR_LIMIT_CONNECTIONS' });
    expect(await upgrade(g.portalUrl)).toMatchObject({ status: 429, code: 'SCANLINE_ERR_LIMIT_CONNECTIONS' });
    // Closing one frees its slots.
    await new Promise<void>((resolve) => {
      s1.ws?.once('close', () => resolve());
      s1.ws?.close();
    });
    await new Promise((r) => setTimeout(r, 50));
    const again = await upgrade(url, as('desk-1'));
    expect(again.status).toBe(101);
    for (const s of [s2, s3, again]) s.ws?.close();
    expect(await refusals(g)).toMatchObject({ SCANLINE_ERR_LIMIT_SCREENS: 1, SCANLINE_ERR_LIMIT_CONNECTIONS: 2 });
  });

  it('answers refusals for limits server.refusalDelayMs late, so that a client retrying on each answer slows down', async () => {
    const g = await gateway({ server: { requestsPerSecondPerAddress: 1, refusalDelayMs: 400 } });
    const timed = async (): Promise<[number, number]> => {
      const t0 = performance.now();
      const res = await fetch(`${g.httpUrl}/v1/scans`, { headers: g.authHeaders() });
      await res.arrayBuffer();
      return [res.status, performance.now() - t0];
    };
    // The burst (2) passes at once; the third is refused after the delay, with its code.
    expect((await timed())[0]).toBe(200);
    expect((await timed())[0]).toBe(200);
    const [status, ms] = await timed();
    expect(status).toBe(429);
    expect(ms).toBeGreaterThanOrEqual(350);
    // A client that gives up while held costs nothing more; the gateway answers the next one as usual.
    const gaveUp = new AbortController();
    const abandoned = fetch(`${g.httpUrl}/v1/scans`, { headers: g.authHeaders(), signal: gaveUp.signal }).catch((err: Error) => err.name);
    await new Promise((r) => setTimeout(r, 50));
    gaveUp.abort();
    expect(await abandoned).toBe('AbortError');
    // Upgrades refused for a limit are held too.
    const t0 = performance.now();
    expect(await upgrade(`ws://127.0.0.1:${g.port}/v1/operator`, g.authHeaders())).toMatchObject({ status: 429, code: 'SCANLINE_ERR_LIMIT_RATE' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(350);
    await new Promise((r) => setTimeout(r, 2_100));
    expect((await timed())[0]).toBe(200);
    const metrics = await (await fetch(`${g.httpUrl}/metrics`, { headers: g.authHeaders('metrics') })).text();
    expect(Number(/^scanline_http_refusals_delayed_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(3);
    expect(metrics).toMatch(/^scanline_http_refusals_held 0$/m);
  });

  it('answers at once when server.maxDelayedRefusals are held', async () => {
    const g = await gateway({ server: { requestsPerSecondPerAddress: 1, refusalDelayMs: 5_000, maxDelayedRefusals: 0 } });
    for (let i = 0; i < 2; i++) await (await fetch(`${g.httpUrl}/v1/scans`, { headers: g.authHeaders() })).arrayBuffer();
    const t0 = performance.now();
    expect((await fetch(`${g.httpUrl}/v1/scans`, { headers: g.authHeaders() })).status).toBe(429);
    expect(performance.now() - t0).toBeLessThan(2_000);
  });

  /**
   * A gateway with one 1024-line scan `image-1` (completed, or still streaming with `live`), and a function that GETs
   * its png16 image.
   */
  async function withImage(
    config: GatewayConfigInput,
    o: { live?: boolean; noise?: boolean } = {},
  ): Promise<{ g: TestGateway; get(): Promise<string>; fetchImage(signal?: AbortSignal): Promise<Response> }> {
    const g = await gateway(config);
    const p = await portalWithScan(g, 'lane-i', 'image-1');
    for (let seq = 0; seq < 64; seq++) p.binary(frame(1, seq, seq * FRAME_LINES, FRAME_LINES, 30_000, o.noise));
    if (o.live) {
      await p.next((m) => m.type === 'ack' && m.seq === 63);
    } else {
      p.json({ type: 'scan.end', streamId: 1, totalLines: 64 * FRAME_LINES });
      await p.next((m) => m.type === 'scan.completed');
    }
    const headers = g.authHeaders();
    const fetchImage = (signal?: AbortSignal): Promise<Response> =>
      fetch(`${g.httpUrl}/v1/scans/image-1/image?energy=high&format=png16`, { headers, ...(signal ? { signal } : {}) });
    return {
      g,
      fetchImage,
      async get() {
        const res = await fetchImage();
        const body = await res.arrayBuffer();
        if (res.status === 200) return `200 ${body.byteLength > 1000}`;
        return `${res.status} ${JSON.parse(Buffer.from(body).toString()).error.code} ${res.headers.get('retry-after')}`;
      },
    };
  }

  const cacheCounts = async (g: TestGateway): Promise<Record<string, number>> => {
    const text = await (await fetch(`${g.httpUrl}/metrics`, { headers: g.authHeaders('metrics') })).text();
    return Object.fromEntries([...text.matchAll(/^scanline_image_cache_requests_total\{outcome="(\w+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
  };

  it("renders an ended scan's image once for concurrent requests, serves it again from the cache, bit-exact", async () => {
    const { g, fetchImage } = await withImage({ server: { maxRequestsPerAddress: 100 } }, { noise: true });
    const bodies = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const res = await fetchImage();
        expect(res.status).toBe(200);
        return Buffer.from(await res.arrayBuffer());
      }),
    );
    // Streamed (over STREAM_BODY_ABOVE_BYTES) and whole: a 1024 x 1024 16-bit PNG of noise.
    expect(bodies[0].byteLength).toBeGreaterThan(1024 * 1024);
    for (const b of bodies) expect(b.equals(bodies[0])).toBe(true);
    const later = Buffer.from(await (await fetchImage()).arrayBuffer());
    expect(later.equals(bodies[0])).toBe(true);
    // One render; the other eight requests joined it or (on a slow machine, after it ended) read the cache.
    const counts = await cacheCounts(g);
    expect(counts.rendered).toBe(1);
    expect(counts.hit + counts.shared).toBe(8);
    expect(counts.hit).toBeGreaterThanOrEqual(1);
  });

  it('sends large images no faster than server.imageBytesPerSecondPerAddress', async () => {
    const rate = 1024 * 1024;
    const { fetchImage } = await withImage({ server: { imageBytesPerSecondPerAddress: rate, maxRequestsPerAddress: 2 } }, { noise: true });
    // The first image takes the burst (one second's worth); the second waits for the bytes to come back.
    const first = Buffer.from(await (await fetchImage()).arrayBuffer());
    const t0 = performance.now();
    const second = Buffer.from(await (await fetchImage()).arrayBuffer());
    const seconds = (performance.now() - t0) / 1000;
    expect(second.equals(first)).toBe(true);
    expect(first.byteLength).toBeGreaterThan(rate);
    expect(seconds).toBeGreaterThanOrEqual((second.byteLength / rate) * 0.8);
    // Two at once from the address share its rate, chunk by chunk: both arrive whole, and at about the same time
    // (the first to start used to take the whole bucket and end when the other was half-way).
    const t1 = performance.now();
    const both = await Promise.all(
      [fetchImage(), fetchImage()].map(async (r) => ({ body: Buffer.from(await (await r).arrayBuffer()), ms: performance.now() - t1 })),
    );
    for (const b of both) expect(b.body.equals(first)).toBe(true);
    const [sooner, later] = both.map((b) => b.ms).sort((a, b) => a - b);
    expect(later).toBeGreaterThanOrEqual(((2 * first.byteLength) / rate) * 1000 * 0.8);
    expect(sooner / later).toBeGreaterThan(0.75);
    // A client that goes away mid-body gives its request slot back (maxRequestsPerAddress is 2 here).
    for (let i = 0; i < 3; i++) {
      const gaveUp = new AbortController();
      const res = await fetchImage(gaveUp.signal);
      const reader = res.body?.getReader();
      await reader?.read();
      gaveUp.abort();
      await reader?.cancel().catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 200));
    expect((await fetchImage()).status).toBe(200);
  });

  const tally = (answers: string[]): Record<string, number> => {
    const t: Record<string, number> = {};
    for (const a of answers) t[a] = (t[a] ?? 0) + 1;
    return t;
  };

  it('refuses requests beyond server.maxRequestsPerAddress, serves the rest, and gives every slot back', async () => {
    // Renders wait in a long queue, so requests stay in progress: beyond 6 from this address, 429 at once.
    const { g, get } = await withImage({ server: { maxRequestsPerAddress: 6, maxConcurrentImages: 1, maxQueuedImages: 100 } });
    expect(tally(await Promise.all(Array.from({ length: 12 }, get)))).toEqual({ '200 true': 6, '429 SCANLINE_ERR_LIMIT_REQUESTS 1': 6 });
    expect(await get()).toBe('200 true');
    expect(await refusals(g)).toMatchObject({ SCANLINE_ERR_LIMIT_REQUESTS: 6 });
  });

  it('renders one image at a time with two waiting, and answers the others 503', async () => {
    // A live scan's image is rendered for each request (never shared or cached: it grows).
    const { g, get } = await withImage(
      { server: { maxRequestsPerAddress: 100, maxConcurrentImages: 1, maxQueuedImages: 2, refusalDelayMs: 0 } },
      { live: true },
    );
    expect(tally(await Promise.all(Array.from({ length: 12 }, get)))).toEqual({ '200 true': 3, '503 SCANLINE_ERR_LIMIT_IMAGES 1': 9 });
    expect(await get()).toBe('200 true');
    expect(await refusals(g)).toMatchObject({ SCANLINE_ERR_LIMIT_IMAGES: 9 });
  });
});
