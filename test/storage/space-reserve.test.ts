/**
 * SpaceReserve (src/storage/disk-space.ts) across a restart: a new gateway takes over the reserve file its previous
 * run left (so a restart on a full disk keeps room for decisions), and removes one of another size or a sparse one
 * (made again by ensure() when there is room). release() names the write it made room for.
 */
import { mkdtempSync, rmSync, statSync, truncateSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RESERVE_FILE, SpaceReserve, withReserve } from '../../src/storage/index.js';

const dir = mkdtempSync(join(tmpdir(), 'scanline-reserve-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fresh(name: string): string {
  const d = join(dir, name);
  rmSync(d, { recursive: true, force: true });
  return mkdtempSync(`${d}-`);
}

describe('SpaceReserve', () => {
  it('is taken over by the next run without writing it again, and can then be released', () => {
    const d = fresh('adopt');
    const first = SpaceReserve.at(d, 256 * 1024);
    expect(first.adopt()).toBe(false);
    expect(first.ensure()).toBe(true);
    const mtime = statSync(join(d, RESERVE_FILE)).mtimeMs;
    // The next run, on a disk that may be full: held at once.
    const next = SpaceReserve.at(d, 256 * 1024);
    expect(next.held).toBe(false);
    expect(next.adopt()).toBe(true);
    expect(next.held).toBe(true);
    expect(statSync(join(d, RESERVE_FILE)).mtimeMs).toBe(mtime);
    expect(next.release('a test decision')).toBe(true);
    expect(existsSync(join(d, RESERVE_FILE))).toBe(false);
    expect(next.release()).toBe(false);
  });

  it('removes a reserve file of another size or a sparse one, and ensure() makes the right one', () => {
    const d = fresh('other');
    writeFileSync(join(d, RESERVE_FILE), Buffer.alloc(1024));
    const r = SpaceReserve.at(d, 64 * 1024);
    expect(r.adopt()).toBe(false);
    expect(existsSync(join(d, RESERVE_FILE))).toBe(false);
    // Sparse: the right size, but no blocks behind it (it would free nothing when released).
    writeFileSync(join(d, RESERVE_FILE), '');
    truncateSync(join(d, RESERVE_FILE), 64 * 1024);
    expect(r.adopt()).toBe(false);
    expect(existsSync(join(d, RESERVE_FILE))).toBe(false);
    expect(r.ensure()).toBe(true);
    expect(statSync(join(d, RESERVE_FILE)).size).toBe(64 * 1024);
    // With reserveBytes 0 a file left by an earlier setting is removed.
    const none = SpaceReserve.at(d, 0);
    expect(none.adopt()).toBe(false);
    expect(existsSync(join(d, RESERVE_FILE))).toBe(false);
  });

  it('withReserve runs a write once more after releasing the reserve for a full disk, and not for other errors', () => {
    const d = fresh('with');
    const r = SpaceReserve.at(d, 4096);
    expect(r.ensure()).toBe(true);
    const other = Object.assign(new Error('constraint failed'), { code: 'SQLITE_CONSTRAINT' });
    expect(() =>
      withReserve(r, () => {
        throw other;
      }),
    ).toThrow(other);
    expect(r.held).toBe(true);
    let tries = 0;
    const out = withReserve(
      r,
      () => {
        if (++tries === 1) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
        return 'stored';
      },
      'a decision',
    );
    expect([out, tries, r.held]).toEqual(['stored', 2, false]);
  });
});
