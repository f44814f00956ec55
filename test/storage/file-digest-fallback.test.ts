/**
 * fileSha256 where the native addon does not load (sha256FileNative answers 'unavailable', as for a missing or stale
 * build): the file is still sealed, streamed through node:crypto on the JS thread, with the same answers.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';

const nativeCalls: string[] = [];
vi.mock('../../src/addon/index.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../src/addon/index.js')>()),
  sha256FileNative: async (path: string) => {
    nativeCalls.push(path);
    return 'unavailable' as const;
  },
}));

const { fileSha256 } = await import('../../src/storage/integrity.js');

describe('fileSha256 without the native addon', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scanline-digest-fallback-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('streams the file through node:crypto: the same digest, null when missing, SCANLINE_ERR_STORAGE_READ for a directory', async () => {
    const path = join(dir, 'raw.u16');
    writeFileSync(path, 'lines');
    expect(await fileSha256(path)).toBe(createHash('sha256').update('lines').digest('hex'));
    expect(await fileSha256(join(dir, 'missing.u16'))).toBeNull();
    const err = await fileSha256(dir).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ScanlineError);
    expect((err as ScanlineError).code).toBe('SCANLINE_ERR_STORAGE_READ');
    expect(nativeCalls).toEqual([path, join(dir, 'missing.u16'), dir]);
  });
});
