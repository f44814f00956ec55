/**
 * WalSync on its own (src/storage/wal-sync.ts): the group commit of the scan database's deferred commits. The sync
 * is injected where the test needs to hold it or make it fail; the last test syncs a real file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';
import { WalSync, syncFileAt } from '../../src/storage/wal-sync.js';

/** A sync the test settles by hand, one call at a time. */
function heldSync(): { sync: () => Promise<void>; calls: number; settle: (err?: Error) => void } {
  const pending: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  const h = {
    calls: 0,
    sync: () =>
      new Promise<void>((resolve, reject) => {
        h.calls++;
        pending.push({ resolve, reject });
      }),
    settle: (err?: Error) => {
      const p = pending.shift();
      if (!p) throw new Error('no sync is running');
      if (err) p.reject(err);
      else p.resolve();
    },
  };
  return h;
}

const tick = () => new Promise((r) => setImmediate(r));

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('WalSync', () => {
  it('resolves at once when nothing is pending, without a sync', async () => {
    const h = heldSync();
    const w = new WalSync('/nowhere-wal', h.sync);
    await w.durable();
    expect(h.calls).toBe(0);
  });

  it('one sync covers every commit noted before it started, for every caller', async () => {
    const h = heldSync();
    const w = new WalSync('/nowhere-wal', h.sync);
    w.committed();
    w.committed();
    const settled: number[] = [];
    const waits = [0, 1, 2].map((i) => w.durable().then(() => settled.push(i)));
    await tick();
    expect(h.calls).toBe(1);
    h.settle();
    await Promise.all(waits);
    expect(settled).toEqual([0, 1, 2]);
    expect(w.pending).toBe(0);
    expect(w.stats).toMatchObject({ deferredCommits: 2, syncs: 1, failures: 0 });
  });

  it('a commit made while a sync runs waits for the next sync, never for the one already running', async () => {
    const h = heldSync();
    const w = new WalSync('/nowhere-wal', h.sync);
    w.committed();
    let first = false;
    let second = false;
    void w.durable().then(() => (first = true));
    await tick();
    w.committed(); // after the running sync began: not covered by it
    void w.durable().then(() => (second = true));
    h.settle();
    await tick();
    await tick();
    expect([first, second]).toEqual([true, false]);
    expect(h.calls).toBe(2);
    h.settle();
    await tick();
    expect(second).toBe(true);
    expect(w.stats.syncs).toBe(2);
  });

  it('a failed sync rejects its callers with SCANLINE_ERR_STORAGE_WRITE and is final: no later sync is trusted', async () => {
    const h = heldSync();
    const w = new WalSync('/data/scanline.db-wal', h.sync);
    w.committed();
    const failed = w.durable();
    await tick();
    w.committed(); // made during the failing sync
    const later = w.durable();
    h.settle(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    const err = await failed.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ScanlineError);
    expect((err as ScanlineError).code).toBe('SCANLINE_ERR_STORAGE_WRITE');
    expect((err as ScanlineError).message).toContain('/data/scanline.db-wal');
    expect((err as ScanlineError).message).toContain('EIO');
    await expect(later).rejects.toBe(err);
    expect(w.failure).toBe(err);
    expect(w.stats.failures).toBe(1);
    // A retry could succeed on a kernel that already dropped the pages it failed to write: there is none.
    w.committed();
    await expect(w.durable()).rejects.toBe(err);
    expect(h.calls).toBe(1);
    expect(w.pending).toBe(3);
  });

  it('a sync that rejects with something that is not an Error still settles its callers, and the next caller is not left hanging', async () => {
    const w = new WalSync('/nowhere-wal', () => Promise.reject(undefined));
    w.committed();
    await expect(w.durable()).rejects.toMatchObject({ code: 'SCANLINE_ERR_STORAGE_WRITE' });
    w.committed();
    await expect(w.durable()).rejects.toMatchObject({ code: 'SCANLINE_ERR_STORAGE_WRITE' });
  });

  it('markAllDurable settles the waiters (the database was synced by its close); close rejects the rest', async () => {
    const h = heldSync();
    const w = new WalSync('/nowhere-wal', h.sync);
    w.committed();
    const a = w.durable();
    w.markAllDurable();
    await a;
    w.committed();
    const b = w.durable();
    w.close();
    await expect(b).rejects.toMatchObject({ code: 'SCANLINE_ERR_STORAGE_WRITE' });
    await expect(w.durable()).rejects.toMatchObject({ code: 'SCANLINE_ERR_STORAGE_WRITE' });
  });

  it('syncFileAt syncs a real file and fails with the errno for a missing one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scanline-walsync-'));
    dirs.push(dir);
    const path = join(dir, 'db-wal');
    writeFileSync(path, 'frames');
    await expect(syncFileAt(path)).resolves.toBeUndefined();
    await expect(syncFileAt(join(dir, 'missing-wal'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
