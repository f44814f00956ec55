/**
 * The audit trail appended in batches (IdentityStore.appendAuditAll: the seals of completed scans, src/main.ts): one
 * transaction, each entry linked to the one before exactly as single appends are, so the chain verifies across
 * batches and single entries alike; an empty batch writes nothing; a refused batch writes none of its entries; a
 * batch written with useReserve false (the seals) never takes the disk space reserve kept for people's acts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';
import { IdentityStore, SpaceReserve } from '../../src/storage/index.js';

describe('IdentityStore.appendAuditAll', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scanline-audit-batch-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('appends in order, chained like single appends, and verifies', async () => {
    const store = IdentityStore.open(dir);
    try {
      const event = (target: string) => ({
        actor: 'portal:lane-1',
        action: 'scan.seal',
        target,
        outcome: 'ok' as const,
        address: null,
        details: { lines: 16 },
      });
      const first = store.appendAudit(event('s-1'));
      const batch = store.appendAuditAll([event('s-2'), event('s-3'), event('s-4')]);
      const last = store.appendAudit(event('s-5'));
      expect(store.appendAuditAll([])).toEqual([]);
      expect([first.id, ...batch.map((e) => e.id), last.id]).toEqual([1, 2, 3, 4, 5].map((n) => first.id + n - 1));
      const listed = store.listAudit({ limit: 10, action: 'scan.seal' }).map((e) => e.target);
      expect([...listed].sort()).toEqual(['s-1', 's-2', 's-3', 's-4', 's-5']);
      const err = (() => {
        try {
          store.appendAuditAll([event('s-6'), { ...event('s-7'), details: { loop: 1n } as unknown as Record<string, unknown> }]);
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(err).toBeInstanceOf(ScanlineError);
      expect((err as ScanlineError).code).toBe('SCANLINE_ERR_STORAGE_WRITE');
      expect(store.listAudit({ limit: 10, action: 'scan.seal' }).map((e) => e.target)).not.toContain('s-6');
      const report = await store.verify(join(dir, 'scans'));
      expect(report.problems).toEqual([]);
      expect(report.head?.id).toBe(last.id);
    } finally {
      store.close();
    }
  });

  it("on a full database a batch with useReserve false fails and leaves the reserve; a person's act may take it", () => {
    const fullDir = mkdtempSync(join(tmpdir(), 'scanline-audit-full-'));
    const store = IdentityStore.open(fullDir);
    try {
      const reserve = SpaceReserve.at(fullDir, 4096);
      expect(reserve.ensure()).toBe(true);
      store.spaceReserve = reserve;
      const db = (store as unknown as { db: { pragma(s: string, o?: { simple: boolean }): unknown } }).db;
      // SQLite's own "database or disk is full" (SQLITE_FULL): no page may be added past the current count.
      db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
      const big = (target: string) => ({
        actor: 'portal:lane-1',
        action: 'scan.seal',
        target,
        outcome: 'ok' as const,
        address: null,
        details: { pad: 'x'.repeat(64 * 1024) },
      });
      expect(() => store.appendAuditAll([big('s-full')], new Date().toISOString(), false)).toThrow(ScanlineError);
      expect(reserve.held).toBe(true);
      // The default (an officer's act, a sign-in): the reserve is released for it (here SQLite's page limit still
      // refuses it, as the disk would if the reserve were too small).
      expect(() => store.appendAudit({ ...big('decision'), actor: 'officer-1', action: 'decision.record' })).toThrow(ScanlineError);
      expect(reserve.held).toBe(false);
    } finally {
      store.close();
      rmSync(fullDir, { recursive: true, force: true });
    }
  });
});
