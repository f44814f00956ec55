/**
 * WalCheckpointer (src/storage/wal-checkpointer.ts) on a real scan database: once started, the connection's own
 * automatic checkpoint is off and the worker's PASSIVE checkpoints keep the WAL from growing (writes that would have
 * taken it far past SQLite's 1000-page threshold leave it reused from its start); a worker that cannot open the
 * database switches SQLite's own checkpoint back on and counts a failure; closing the store closes the worker's
 * connection first, so the store's close checkpoints and removes the WAL.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ScanStore } from '../../src/storage/index.js';
import { WalCheckpointer } from '../../src/storage/wal-checkpointer.js';
import { scanRecord } from '../helpers/scan-record.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'scanline-checkpoint-'));
  dirs.push(d);
  return d;
}

type Db = { pragma(s: string, o?: { simple: boolean }): unknown };
const dbOf = (store: ScanStore) => (store as unknown as { db: Db }).db;

async function until(what: string, ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** About 64 KiB per call into the scan database (embeddings of one scan), as a deferred commit. */
async function writeScan(store: ScanStore, i: number): Promise<void> {
  const scanId = `ck-${i}`;
  const now = new Date().toISOString();
  await store.createScan(scanRecord(scanId, now)).close();
  const tiles = 256;
  store.putEmbeddings(scanId, {
    model: 'goods-v1',
    dim: 64,
    tiles: Array.from({ length: tiles }, (_, t) => [t, 0, 64, 0, 64] as [number, number, number, number, number]),
    data: Float32Array.from({ length: tiles * 64 }, (_, k) => Math.sin(i * 7919 + k)),
  });
}

describe('WalCheckpointer', () => {
  it('checkpoints off the JS thread: the automatic checkpoint is off and the WAL stays small; close removes it', async () => {
    const dir = tempDir();
    const store = ScanStore.open(dir, undefined, { directIo: false });
    const wal = join(dir, 'scanline.db-wal');
    try {
      store.startCheckpointer(100);
      expect(dbOf(store).pragma('wal_autocheckpoint', { simple: true })).toBe(0);
      // 160 scans of ~64 KiB: ~10 MiB, some 2,500 pages, written in rounds with time for the worker between them.
      for (let round = 0; round < 8; round++) {
        for (let i = 0; i < 20; i++) await writeScan(store, round * 20 + i);
        await store.durable();
        await new Promise((r) => setTimeout(r, 250));
      }
      const stats = store.checkpointStats;
      expect(stats?.running).toBe(true);
      expect(stats?.failures).toBe(0);
      expect(stats?.seconds.count).toBeGreaterThan(0);
      // Without checkpoints the WAL would hold every page written (~10 MiB); reused, it holds about a round's.
      expect(statSync(wal).size).toBeLessThan(4 * 1024 * 1024);
      expect(store.getScan('ck-159')).toBeDefined();
    } finally {
      store.close();
    }
    expect(existsSync(wal)).toBe(false);
    const again = ScanStore.open(dir, undefined, { directIo: false });
    try {
      expect(again.listScans({ limit: 1000 })).toHaveLength(160);
    } finally {
      again.close();
    }
  });

  it("switches SQLite's own checkpoint back on when the worker cannot open the database", async () => {
    const dir = tempDir();
    const store = ScanStore.open(dir, undefined, { directIo: false });
    try {
      const db = dbOf(store);
      const checkpointer = new WalCheckpointer(db as never, join(dir, 'no-such.db'), 100);
      expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
      await until('the worker to fail', () => !checkpointer.running);
      expect(checkpointer.stats.failures).toBe(1);
      expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
      checkpointer.close();
    } finally {
      store.close();
    }
  });
});
