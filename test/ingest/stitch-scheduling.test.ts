/**
 * When the gateway runs its stitcher jobs (portal.stitchMaxDelayMs), through the real gateway (uWS, native
 * stitcher) on 127.0.0.1:
 * - a frame that completes a tile column is stitched at once: its tiles do not wait for the delay;
 * - other frames wait up to the delay and are stitched together in one job (one preview strip, one archive write);
 * - a scan.end is stitched at once;
 * - 0 keeps one job per frame.
 * The delay is the longest allowed (1 s) so that "at once" and "waited" are far apart even on a loaded CI machine.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ScanView } from '../../src/ingest/index.js';
import { SliceKind, encodeSliceFrame } from '../../src/protocol/index.js';
import type { PreviewStrip, TileInfo } from '../../src/stitch/index.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { RawPortal } from '../helpers/raw-portal.js';

const PIXELS = 256;
const DELAY_MS = 1_000;
/** Default tile geometry: a column spans 64 x 4 = 256 lines and columns start every 128 lines. */
const COLUMN_LINES = 256;

interface Seen {
  tiles: Array<{ at: number; infos: TileInfo[] }>;
  strips: Array<{ at: number; strip: PreviewStrip }>;
}

async function start(stitchMaxDelayMs: number): Promise<{ g: TestGateway; seen: Seen }> {
  const g = await startTestGateway({ portal: { stitchMaxDelayMs } });
  const seen: Seen = { tiles: [], strips: [] };
  g.ingest.listen({
    tiles(_scan: ScanView, infos: TileInfo[]) {
      seen.tiles.push({ at: performance.now(), infos: infos.map((t) => ({ ...t })) });
    },
    preview(_scan: ScanView, strip: PreviewStrip) {
      seen.strips.push({ at: performance.now(), strip: { ...strip } });
    },
  });
  return { g, seen };
}

/** A flat, bright scene: every line the same mid-range reading in both energies. */
function lines(count: number): Uint16Array {
  return new Uint16Array(count * 2 * PIXELS).fill(30_000);
}

class Stream {
  private seq = 0;
  private next = 0;
  constructor(
    private readonly portal: RawPortal,
    readonly streamId: number,
  ) {}

  /** Sends image frames of 16 lines up to line `end` and resolves when the last one is acked (stored). */
  async sendUpTo(end: number): Promise<number> {
    let last = -1;
    for (; this.next < end; this.next += 16) {
      last = this.seq++;
      this.portal.binary(
        encodeSliceFrame(
          { kind: SliceKind.Image, energies: 2, streamId: this.streamId, seq: last, firstLine: this.next, pixels: PIXELS, acquiredAtUs: 0n },
          lines(Math.min(16, end - this.next)),
        ),
      );
    }
    await this.portal.next((m) => m.type === 'ack' && m.streamId === this.streamId && m.seq === last);
    return performance.now();
  }
}

async function open(g: TestGateway, portalId: string): Promise<{ portal: RawPortal; stream: Stream }> {
  const portal = await RawPortal.hello(g.portalUrl, portalId, { pixels: PIXELS, energies: 2 });
  portal.json({ type: 'scan.start', streamId: 1 });
  await portal.next((m) => m.type === 'scan.accepted');
  return { portal, stream: new Stream(portal, 1) };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('stitcher job scheduling (portal.stitchMaxDelayMs)', () => {
  let g: TestGateway | undefined;
  let portal: RawPortal | undefined;
  afterEach(async () => {
    portal?.close();
    await g?.dispose();
    g = undefined;
    portal = undefined;
  });

  it('stitches a frame that completes a tile column at once and lets other frames wait, then stitches them together', async () => {
    const started = await start(DELAY_MS);
    g = started.g;
    const { seen } = started;
    const opened = await open(g, 'lane-sched');
    portal = opened.portal;
    const { stream } = opened;
    const jobsBefore = g.ingest.stats.stitchJobs;

    // 160 lines in 10 frames: no tile column is complete yet, so nothing is stitched before the delay.
    const firstStored = await stream.sendUpTo(160);
    await sleep(300);
    expect(seen.strips).toHaveLength(0);
    expect(g.ingest.stats.stitchJobs).toBe(jobsBefore);

    // The frame that completes lines 0..255 starts a job at once: the first column's tiles, long before the delay.
    const columnStored = await stream.sendUpTo(COLUMN_LINES);
    const firstTiles = await until('the first tile column', () => seen.tiles[0]);
    expect(firstTiles.at - columnStored).toBeLessThan(DELAY_MS / 2);
    expect(firstTiles.at - firstStored).toBeLessThan(DELAY_MS);
    expect(firstTiles.infos.every((t) => t.line === 0 && t.lines === COLUMN_LINES)).toBe(true);
    // One job covered all 16 frames: one strip for lines 0..255.
    expect(g.ingest.stats.stitchJobs - jobsBefore).toBe(1);
    expect(seen.strips.map((s) => [s.strip.line, s.strip.lines])).toEqual([[0, COLUMN_LINES]]);

    // 32 more lines complete no column (the next ends at 384): they wait for the delay, then go in one job.
    const waitingStored = await stream.sendUpTo(COLUMN_LINES + 32);
    const strip = await until('the delayed strip', () => seen.strips[1], DELAY_MS * 3);
    expect(strip.at - waitingStored).toBeGreaterThanOrEqual(DELAY_MS / 2);
    expect([strip.strip.line, strip.strip.lines]).toEqual([COLUMN_LINES, 32]);
    expect(g.ingest.stats.stitchJobs - jobsBefore).toBe(2);

    // scan.end is stitched at once (no wait for the delay): the waiting lines' strip comes right away, then the scan
    // completes (archive flush and fsync, not timed here).
    await stream.sendUpTo(COLUMN_LINES + 64);
    const endSent = performance.now();
    // scan.completed may arrive while the strip is awaited: look for it from the messages received after scan.end.
    const sinceEnd = portal.messages.length;
    portal.json({ type: 'scan.end', streamId: 1, totalLines: COLUMN_LINES + 64 });
    const last = await until('the strip of the last lines', () => seen.strips.find((x) => x.strip.line + x.strip.lines === COLUMN_LINES + 64));
    expect(last.at - endSent).toBeLessThan(DELAY_MS / 2);
    await portal.next((m) => m.type === 'scan.completed', 10_000, sinceEnd);
  });

  it('runs one job per frame with stitchMaxDelayMs 0', async () => {
    const started = await start(0);
    g = started.g;
    const { seen } = started;
    const opened = await open(g, 'lane-per-frame');
    portal = opened.portal;
    const { stream } = opened;
    // The first 32 lines are the air reference (no air frame was sent), so the first job that can calibrate
    // anything runs after line 32; from then on every frame gets its own job and strip.
    for (let end = 16; end <= 96; end += 16) {
      await stream.sendUpTo(end);
      if (end >= 32) await until(`the strip of lines ..${end}`, () => (seen.strips.some((s) => s.strip.line + s.strip.lines >= end) ? true : undefined));
    }
    expect(seen.strips.map((s) => [s.strip.line, s.strip.lines])).toEqual([
      [0, 32],
      [32, 16],
      [48, 16],
      [64, 16],
      [80, 16],
    ]);
  });

  it('refuses a delay outside 0..1000 ms', async () => {
    await expect(startTestGateway({ portal: { stitchMaxDelayMs: 5_000 } })).rejects.toMatchObject({
      code: 'SCANLINE_ERR_CONFIG_INVALID',
      message: expect.stringContaining('portal.stitchMaxDelayMs'),
    });
  });
});
