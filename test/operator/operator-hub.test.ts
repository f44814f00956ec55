/**
 * The hub's strip fan-out and its counters, driven directly: ingest events from a hand-made scan, two screens on
 * transports whose buffered amount the test sets before each strip, a real store in a temporary directory and the
 * real PNG encoder. Each strip is offered to both screens; the test waits for its encode before the next one, so
 * which strips are sent, coalesced or replaced by a resync does not depend on the machine's speed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ScanView } from '../../src/ingest/index.js';
import { silentLogger } from '../../src/log/index.js';
import { DEFAULT_OPERATOR_CONFIG, OperatorHub, type OperatorSession, type OperatorTransport, type SendStatus } from '../../src/operator/index.js';
import { ImageFrameKind, decodeImageFrame } from '../../src/protocol/index.js';
import { ScanStore } from '../../src/storage/index.js';

const BUDGET = 16 * 1024;
const PIXELS = 32;
const DOWNSAMPLE = 2;
const STRIP_LINES = 16;

class FakeTransport implements OperatorTransport {
  buffered = 0;
  readonly messages: Array<{ json?: any; image?: ReturnType<typeof decodeImageFrame>['header'] }> = [];

  send(data: string | Uint8Array, binary: boolean): SendStatus {
    if (binary) this.messages.push({ image: decodeImageFrame(data as Uint8Array).header });
    else this.messages.push({ json: JSON.parse(data as string) });
    return 'sent';
  }

  bufferedAmount(): number {
    return this.buffered;
  }

  close(): void {}

  strips(): number[] {
    return this.messages.filter((m) => m.image?.kind === ImageFrameKind.Strip).map((m) => m.image!.seq);
  }

  snapshots(): any[] {
    return this.messages.filter((m) => m.json?.type === 'scan.snapshot').map((m) => m.json);
  }
}

function fakeScan(scanId: string): ScanView {
  return {
    scanId,
    portalId: 'lane-1',
    streamId: 1,
    state: 'receiving',
    lines: 0,
    detector: { pixels: PIXELS, energies: 2, pitchMm: 4.4, lineRateHz: 500, bitDepth: 16 },
    vehicle: null,
    declaration: null,
    startedAt: new Date(),
  } as unknown as ScanView;
}

async function until(what: string, probe: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('OperatorHub strip fan-out', () => {
  let dir: string;
  let store: ScanStore;
  let hub: OperatorHub;
  let fast: FakeTransport;
  let slow: FakeTransport;
  let slowSession: OperatorSession;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scanline-hub-'));
    store = ScanStore.open(dir, silentLogger(), { directIo: false });
    hub = new OperatorHub({
      store,
      results: null,
      config: { ...DEFAULT_OPERATOR_CONFIG, stripBufferBytes: BUDGET },
      previewDownsample: DOWNSAMPLE,
      gateway: 'scanline test',
      log: silentLogger(),
    });
    fast = new FakeTransport();
    slow = new FakeTransport();
    for (const [id, t] of [
      ['fast-1', fast],
      ['slow-1', slow],
    ] as const) {
      const s = hub.connect(id, t);
      hub.onMessage(s, JSON.stringify({ type: 'subscribe', portals: ['*'] }));
      if (id === 'slow-1') slowSession = s;
    }
  });

  afterEach(async () => {
    await hub.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Emits strip number `n` (1-based) of the scan with the slow screen's buffer at `buffered`, and waits for its encode. */
  async function strip(scan: ScanView, n: number, buffered: number): Promise<void> {
    slow.buffered = buffered;
    const width = STRIP_LINES / DOWNSAMPLE;
    const height = PIXELS / DOWNSAMPLE;
    const rgba = new Uint8Array(width * height * 4).fill(n * 10);
    hub.ingestListener().preview?.(scan, { line: (n - 1) * STRIP_LINES, lines: STRIP_LINES, width, height }, rgba);
    await until(`strip ${n} encoded`, () => hub.stats().stripsEncoded === n);
  }

  it('counts each strip offered to each screen once: sent, coalesced, or replaced by the resync it triggers', async () => {
    const scan = fakeScan('scan-1');
    hub.ingestListener().scanStarted?.(scan);
    await strip(scan, 1, 0); // sent to both
    await strip(scan, 2, BUDGET + 1); // slow is behind: coalesced, scan stale
    await strip(scan, 3, BUDGET / 2); // still not below half: coalesced
    await strip(scan, 4, 0); // drained, no drain event yet: this strip triggers the resync and is replaced by it
    await strip(scan, 5, 0); // sent again
    expect(fast.strips()).toEqual([1, 2, 3, 4, 5]);
    expect(slow.strips()).toEqual([1, 5]);
    const resync = slow.snapshots().filter((m) => m.resync);
    expect(resync).toHaveLength(1);
    expect(resync[0].preview.seq).toBe(4); // the snapshot shows strip 4 and every strip before it
    await until('the resync image', () => slow.messages.some((m) => m.image?.kind === ImageFrameKind.Snapshot));
    const image = slow.messages.find((m) => m.image?.kind === ImageFrameKind.Snapshot)!.image!;
    expect({ seq: image.seq, lines: image.lines }).toEqual({ seq: 4, lines: 4 * STRIP_LINES });

    const stats = hub.stats();
    expect(stats).toMatchObject({ stripsEncoded: 5, stripsSent: 7, stripsCoalesced: 3, resyncs: 1, disconnectedSlow: 0 });
    expect(stats.stripsSent + stats.stripsCoalesced).toBe(2 * stats.stripsEncoded);
  });

  it('resyncs on drain: the coalesced strips are counted, the next strips are sent', async () => {
    const scan = fakeScan('scan-2');
    hub.ingestListener().scanStarted?.(scan);
    await strip(scan, 1, BUDGET + 1); // coalesced
    await strip(scan, 2, BUDGET + 1); // coalesced
    slow.buffered = 0;
    hub.onDrain(slowSession);
    expect(
      slow
        .snapshots()
        .filter((m) => m.resync)
        .map((m) => m.preview.seq),
    ).toEqual([2]);
    await strip(scan, 3, 0);
    expect(slow.strips()).toEqual([3]);
    const stats = hub.stats();
    expect(stats).toMatchObject({ stripsEncoded: 3, stripsSent: 4, stripsCoalesced: 2, resyncs: 1 });
    expect(stats.stripsSent + stats.stripsCoalesced).toBe(2 * stats.stripsEncoded);
  });

  it('answers a message that fails inside the gateway with SCANLINE_ERR_INTERNAL, not the failure text', () => {
    store.getScan = () => {
      throw new Error('SQLITE_IOERR: disk I/O error at /var/lib/scanline/scans.db');
    };
    hub.onMessage(slowSession, JSON.stringify({ type: 'resync', scanId: 'not-in-view' }));
    const last = slow.messages.at(-1)?.json;
    expect(last).toMatchObject({ type: 'error', code: 'SCANLINE_ERR_INTERNAL' });
    expect(JSON.stringify(last)).not.toContain('SQLITE');
  });

  it('keeps the counts of a screen that disconnected', async () => {
    const scan = fakeScan('scan-3');
    hub.ingestListener().scanStarted?.(scan);
    await strip(scan, 1, 0);
    await strip(scan, 2, BUDGET + 1);
    hub.onClose(slowSession);
    await strip(scan, 3, 0); // offered to the fast screen only
    expect(hub.stats()).toMatchObject({ operators: 1, stripsEncoded: 3, stripsSent: 4, stripsCoalesced: 1 });
  });
});
