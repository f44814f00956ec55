/**
 * Every completed scan gets sealed. A graceful stop waits for the seals of scans that completed just before it
 * (before, the store closed under them: "scan store is closed", 9 of 100 scans at the end of a `scanline eval` run),
 * and a start seals what the previous run left unsealed (a crash between a scan's end and its seal).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IdentityStore } from '../../src/storage/index.js';
import { SliceKind, encodeSliceFrame } from '../../src/protocol/index.js';
import { startTestGateway } from '../helpers/gateway.js';
import { RawPortal } from '../helpers/raw-portal.js';

const PIXELS = 512;
const LANES = 6;
const LINES = 2048;

/** Streams one 256-line scan of 64 pixels (every sample `value`) from portal `lane` and waits until it completes. */
async function completeSmallScan(portalUrl: string, lane: string, scanId: string, value: number): Promise<void> {
  const p = await RawPortal.hello(portalUrl, lane, { pixels: 64, energies: 2 });
  p.json({ type: 'scan.start', streamId: 1, scanId });
  await p.next((m) => m.type === 'scan.accepted');
  const data = new Uint16Array(64 * 2 * 64).fill(value);
  for (let seq = 0; seq < 4; seq++) {
    p.binary(encodeSliceFrame({ kind: SliceKind.Image, energies: 2, streamId: 1, seq, firstLine: seq * 64, pixels: 64, acquiredAtUs: 0n }, data));
  }
  p.json({ type: 'scan.end', streamId: 1, totalLines: 256 });
  await p.next((m) => m.type === 'scan.completed');
  p.close();
}

describe('graceful stop', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scanline-seal-close-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('seals every scan that completed before it, before the store closes', async () => {
    const gw = await startTestGateway({}, {}, dir);
    // Each seal's digest takes 300 ms longer (a slow disk): still in flight when close() comes, however fast the machine.
    const digest = gw.store.digestRaw.bind(gw.store);
    gw.store.digestRaw = async (scanId: string) => {
      await new Promise((r) => setTimeout(r, 300));
      return digest(scanId);
    };
    const portals = await Promise.all(Array.from({ length: LANES }, (_, i) => RawPortal.hello(gw.portalUrl, `lane-${i}`, { pixels: PIXELS, energies: 2 })));
    const data = new Uint16Array(64 * 2 * PIXELS).fill(21_000);
    const scanIds = await Promise.all(
      portals.map(async (p, i) => {
        p.json({ type: 'scan.start', streamId: 1, scanId: `close-${i}` });
        await p.next((m) => m.type === 'scan.accepted');
        for (let seq = 0; seq < LINES / 64; seq++) {
          p.binary(encodeSliceFrame({ kind: SliceKind.Image, energies: 2, streamId: 1, seq, firstLine: seq * 64, pixels: PIXELS, acquiredAtUs: 0n }, data));
        }
        p.json({ type: 'scan.end', streamId: 1, totalLines: LINES });
        return ((await p.next((m) => m.type === 'scan.completed')) as { scanId: string }).scanId;
      }),
    );
    // Stopped as the last scan completes: the seals are still being written.
    await gw.close(2_000);
    for (const p of portals) p.close();
    const store = IdentityStore.open(dir);
    try {
      const sealed = store
        .listAudit({ limit: 1000, action: 'scan.seal' })
        .map((e) => e.target)
        .sort();
      expect(sealed).toEqual([...scanIds].sort());
      expect((await store.verify(join(dir, 'scans'))).problems).toEqual([]);
    } finally {
      store.close();
    }
  }, 30_000);

  it('leaves a batch unsealed when its audit entries cannot be written, and seals it at the next start', async () => {
    const other = mkdtempSync(join(tmpdir(), 'scanline-seal-audit-'));
    try {
      const gw = await startTestGateway({}, {}, other);
      // The audit trail refuses the seals' batch (its disk failed): no record may carry a seal the chain lacks.
      const recordAll = gw.identity.recordAll.bind(gw.identity);
      let refused = 0;
      gw.identity.recordAll = (events) => {
        if (events.some((e) => e.action === 'scan.seal')) {
          refused++;
          throw new Error('audit trail disk failed');
        }
        recordAll(events);
      };
      await completeSmallScan(gw.portalUrl, 'lane-audit', 'audit-1', 25_000);
      for (let i = 0; i < 100 && refused === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(refused).toBe(1);
      expect(gw.store.sealOf('audit-1')).toBeNull();
      await gw.close(2_000);

      const again = await startTestGateway({}, {}, other);
      for (let i = 0; i < 100 && again.store.sealOf('audit-1') === null; i++) await new Promise((r) => setTimeout(r, 20));
      expect(again.store.sealOf('audit-1')).toMatch(/^[0-9a-f]{64}$/);
      const entries = again.identity.listAudit({ limit: 100, action: 'scan.seal' }).filter((e) => e.target === 'audit-1');
      expect(entries.map((e) => e.details)).toEqual([expect.objectContaining({ late: true, lines: 256 })]);
      await again.close(2_000);
      const store = IdentityStore.open(other);
      try {
        expect((await store.verify(join(other, 'scans'))).problems).toEqual([]);
      } finally {
        store.close();
      }
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  }, 30_000);

  it('seals at the next start what a run left unsealed', async () => {
    const other = mkdtempSync(join(tmpdir(), 'scanline-seal-late-'));
    try {
      const gw = await startTestGateway({}, {}, other);
      // The seal never gets written, as when the process dies right after the scan completes.
      gw.store.digestRaw = () => Promise.reject(new Error('killed before the seal'));
      await completeSmallScan(gw.portalUrl, 'lane-late', 'late-1', 30_000);
      await gw.close(2_000);

      const again = await startTestGateway({}, {}, other);
      for (let i = 0; i < 100 && again.store.sealOf('late-1') === null; i++) await new Promise((r) => setTimeout(r, 20));
      expect(again.store.sealOf('late-1')).toMatch(/^[0-9a-f]{64}$/);
      const entry = again.identity.listAudit({ limit: 100, action: 'scan.seal' }).find((e) => e.target === 'late-1');
      expect(entry?.details).toMatchObject({ late: true, lines: 256 });
      await again.close(2_000);
      const store = IdentityStore.open(other);
      try {
        expect((await store.verify(join(other, 'scans'))).problems).toEqual([]);
        expect(store.listAudit({ limit: 100, action: 'scan.seal' }).filter((e) => e.target === 'late-1')).toHaveLength(1);
      } finally {
        store.close();
      }
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  }, 30_000);
});
