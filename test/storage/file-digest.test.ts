/**
 * The digest that seals completed scans (src/storage/integrity.ts fileSha256): read and hashed by the native addon on
 * a libuv pool thread. It must equal node:crypto's SHA-256 on files around its 1 MiB read blocks, say null for a
 * missing file, refuse what it cannot read or what is not a regular file with SCANLINE_ERR_STORAGE_READ (as the
 * streamed fallback does), keep its queue going after a refusal, and leave the event loop idle while it hashes (the
 * reason it is native: bench/RESULTS.md, 'Sealing scans off the event loop').
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256FileNative } from '../../src/addon/index.js';
import { ScanlineError } from '../../src/errors/index.js';
import { fileSha256, fileSha256Streamed } from '../../src/storage/integrity.js';

const MiB = 1 << 20;

describe('fileSha256 (native, off the JS thread)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scanline-digest-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('equals node:crypto on files around the 1 MiB read block, and the streamed fallback does too', async () => {
    for (const size of [0, 1, 4095, MiB - 1, MiB, MiB + 1, 3 * MiB + 12_345]) {
      const data = randomBytes(size);
      const path = join(dir, `f-${size}.bin`);
      writeFileSync(path, data);
      const expected = createHash('sha256').update(data).digest('hex');
      expect(await sha256FileNative(path), `native, ${size} bytes`).toBe(expected);
      expect(await fileSha256(path), `fileSha256, ${size} bytes`).toBe(expected);
      expect(await fileSha256Streamed(path), `streamed, ${size} bytes`).toBe(expected);
    }
  });

  it('says null for a file that does not exist', async () => {
    expect(await fileSha256(join(dir, 'missing.u16'))).toBeNull();
    expect(await fileSha256Streamed(join(dir, 'missing.u16'))).toBeNull();
  });

  it('refuses a directory, a FIFO, an empty path and a path with a NUL with SCANLINE_ERR_STORAGE_READ, native and streamed alike', async () => {
    const fifo = join(dir, 'raw.fifo');
    execFileSync('mkfifo', [fifo]); // opened without O_NONBLOCK, a FIFO with no writer would hold the reader forever
    for (const digest of [fileSha256, fileSha256Streamed]) {
      for (const path of [dir, fifo, `${join(dir, 'f-1.bin')}\0.u16`, '']) {
        const err = await digest(path).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err, `${digest.name} ${JSON.stringify(path)}`).toBeInstanceOf(ScanlineError);
        expect((err as ScanlineError).code).toBe('SCANLINE_ERR_STORAGE_READ');
      }
    }
  });

  it('runs queued digests in turn and goes on after one is refused', async () => {
    const a = join(dir, 'q-a.bin');
    const b = join(dir, 'q-b.bin');
    writeFileSync(a, 'first');
    writeFileSync(b, 'second');
    const sha = (text: string) => createHash('sha256').update(text).digest('hex');
    const settled = await Promise.allSettled([fileSha256(dir), fileSha256(a), fileSha256(join(dir, 'gone.bin')), fileSha256(b)]);
    expect(settled.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
    expect(settled.slice(1).map((r) => (r as PromiseFulfilledResult<string | null>).value)).toEqual([sha('first'), null, sha('second')]);
  });

  it('leaves the event loop idle while it reads and hashes 96 MiB: a fraction of the JS-thread time of hashing on it', async () => {
    const path = join(dir, 'large.bin');
    const data = Buffer.alloc(96 * MiB, 7);
    writeFileSync(path, data);
    const expected = createHash('sha256').update(data).digest('hex');
    /** Event-loop active time (ms) while `digest` hashes the file. */
    const activeMs = async (digest: (p: string) => Promise<string | null>): Promise<number> => {
      const before = performance.eventLoopUtilization();
      expect(await digest(path)).toBe(expected);
      return performance.eventLoopUtilization(before).active;
    };
    await activeMs(fileSha256Streamed); // the file in the page cache for both
    const onJsThread = await activeMs(fileSha256Streamed);
    const native = await activeMs(fileSha256);
    // Where the hashing runs, not how fast: streamed through node:crypto, the loop itself hashes 96 MiB (170-190 ms
    // active on the 2-core build VM, more on a slower or busier machine); the native digest leaves it only the job's
    // start and answer, and whatever else the test runner does meanwhile (0.4 ms there). Event-loop active time is
    // this process's own (vitest runs each file in its own process), so other load can only widen the gap.
    expect(native, `event loop active ${native.toFixed(1)} ms native, ${onJsThread.toFixed(1)} ms streamed`).toBeLessThan(onJsThread / 2);
  });
});
