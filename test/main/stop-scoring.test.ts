/**
 * A graceful stop that cuts scoring short (inference closes with a completed scan's tiles still queued) leaves the
 * scan's report in progress, and the next start scores it again: the machine's opinion is never a final report of
 * "N of M tiles were not scored" that nothing scores again (a threat in those tiles would never be raised).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SliceKind, encodeSliceFrame } from '../../src/protocol/index.js';
import type { ScanResultsReport } from '../../src/protocol/index.js';
import { ScanStore } from '../../src/storage/index.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { RawPortal } from '../helpers/raw-portal.js';

const PIXELS = 1024;
const LINES = 2048;
const dir = mkdtempSync(join(tmpdir(), 'scanline-stop-scoring-'));
let g: TestGateway | null = null;
afterAll(async () => {
  await g?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const config = { inference: { enabled: true, workers: 1, intraOpThreads: 1, executionProviders: ['cpu' as const] } };

function frame(seq: number, firstLine: number, lines = 16): Uint8Array {
  const values = new Uint16Array(lines * 2 * PIXELS);
  for (let i = 0; i < values.length; i++) values[i] = 20_000 + ((((firstLine * 2 * PIXELS + i) * 2654435761) >>> 20) % 20_000);
  return encodeSliceFrame({ kind: SliceKind.Image, energies: 2, streamId: 1, seq, firstLine, pixels: PIXELS, acquiredAtUs: 0n }, values);
}

async function until(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function tilesNotScored(report: ScanResultsReport): number {
  return report.algorithms.reduce((n, a) => n + a.tiles.rejected + a.tiles.failed + a.tiles.expired, 0);
}

describe('a stop while a completed scan is being scored', () => {
  it('leaves its report in progress, and the next start scores it again in full', async () => {
    g = await startTestGateway(config, {}, dir);
    const portal = await RawPortal.hello(g.portalUrl, 'lane-stop', { pixels: PIXELS, energies: 2 });
    portal.json({ type: 'scan.start', streamId: 1, scanId: 'stop-1' });
    await portal.next((m) => m.type === 'scan.accepted');
    for (let s = 0; s < LINES / 16; s++) portal.binary(frame(s, s * 16));
    portal.json({ type: 'scan.end', streamId: 1, totalLines: LINES });
    await portal.next((m) => m.type === 'scan.completed' && m.streamId === 1, 60_000);
    // Tiles are still queued when the scan completes (one inference worker, 2048 lines of 1024 px): the stop cuts
    // their scoring short.
    expect(g.results?.isScoring('stop-1')).toBe(true);
    await g.close(1);
    portal.ws.close();
    const store = ScanStore.open(dir, undefined, { directIo: false });
    try {
      expect(store.getScan('stop-1')?.state).toBe('completed');
      expect((store.getResults('stop-1') as ScanResultsReport).status).toBe('in-progress');
    } finally {
      store.close();
    }
    // The next start scores it again from its journal: final, every tile answered.
    g = await startTestGateway(config, {}, dir);
    const gateway = g;
    await until('stop-1 scored again', () => (gateway.store.getResults('stop-1') as ScanResultsReport | undefined)?.status === 'final', 90_000);
    const report = g.store.getResults('stop-1') as ScanResultsReport;
    expect(tilesNotScored(report)).toBe(0);
    expect(report.algorithms.every((a) => a.tiles.submitted > 0 && a.tiles.ok === a.tiles.submitted)).toBe(true);
  }, 120_000);
});
