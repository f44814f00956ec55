// RawWriter: raw lines land at their line positions byte for byte, written direct (O_DIRECT) where the filesystem
// allows it, buffered otherwise, and a direct write the kernel refuses switches the file to buffered writes without
// losing a line.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { alignedBuffer } from '../../src/addon/index.js';
import { DIRECT_IO_ALIGNMENT, RawWriter } from '../../src/storage/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function file(): string {
  const d = mkdtempSync(join(tmpdir(), 'scanline-raw-'));
  dirs.push(d);
  return join(d, 'raw.u16');
}

const LINE = 4096; // 1024 pixels x 2 energies x 2 bytes: a multiple of the alignment

function lines(first: number, count: number, memory: 'aligned' | 'js'): Uint8Array {
  const bytes = count * LINE;
  const out = memory === 'aligned' ? new Uint8Array(alignedBuffer(bytes, DIRECT_IO_ALIGNMENT)!) : new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (first * 31 + i * 7 + (i >> 12)) & 0xff;
  return out;
}

describe('RawWriter', () => {
  it('gives aligned memory from the addon', () => {
    const b = alignedBuffer(3 * DIRECT_IO_ALIGNMENT, DIRECT_IO_ALIGNMENT);
    expect(b).toBeInstanceOf(ArrayBuffer);
    expect(b!.byteLength).toBe(3 * DIRECT_IO_ALIGNMENT);
    expect(new Uint8Array(b!).every((v) => v === 0)).toBe(true);
    expect(() => alignedBuffer(16, 3000)).toThrow(expect.objectContaining({ code: 'SCANLINE_ERR_STORAGE_WRITE' }));
    expect(() => alignedBuffer(0, DIRECT_IO_ALIGNMENT)).toThrow(expect.objectContaining({ code: 'SCANLINE_ERR_STORAGE_WRITE' }));
  });

  it('writes direct with aligned memory, out of order, and the file holds every line', async (ctx) => {
    const path = file();
    const w = RawWriter.open(path, LINE, { directIo: true });
    if (!w.direct) {
      await w.close();
      ctx.skip(`the filesystem of ${tmpdir()} refuses O_DIRECT`);
    }
    const a = lines(4, 3, 'aligned');
    const b = lines(0, 4, 'aligned');
    await Promise.all([w.write(4, a), w.write(0, b)]);
    expect(w.direct).toBe(true);
    expect(w.directFallbacks).toBe(0);
    await w.close();
    const f = readFileSync(path);
    expect(f.length).toBe(7 * LINE);
    expect(f.subarray(0, 4 * LINE).equals(Buffer.from(b))).toBe(true);
    expect(f.subarray(4 * LINE).equals(Buffer.from(a))).toBe(true);
  });

  it('switches to buffered writes when a direct write is refused, losing nothing', async (ctx) => {
    const path = file();
    const w = RawWriter.open(path, LINE, { directIo: true });
    if (!w.direct) {
      await w.close();
      ctx.skip(`the filesystem of ${tmpdir()} refuses O_DIRECT`);
    }
    const first = lines(0, 2, 'aligned');
    await w.write(0, first);
    // A view one line into aligned memory is still aligned; one byte in is not: the kernel says EINVAL.
    const backing = new Uint8Array(alignedBuffer(3 * LINE + DIRECT_IO_ALIGNMENT, DIRECT_IO_ALIGNMENT)!);
    const unaligned = backing.subarray(1, 1 + 3 * LINE);
    unaligned.set(lines(2, 3, 'js'));
    await w.write(2, unaligned);
    expect(w.direct).toBe(false);
    expect(w.directFallbacks).toBe(1);
    const last = lines(5, 1, 'js');
    await w.write(5, last);
    await w.close();
    const f = readFileSync(path);
    expect(f.length).toBe(6 * LINE);
    expect(f.subarray(0, 2 * LINE).equals(Buffer.from(first))).toBe(true);
    expect(f.subarray(2 * LINE, 5 * LINE).equals(Buffer.from(unaligned))).toBe(true);
    expect(f.subarray(5 * LINE).equals(Buffer.from(last))).toBe(true);
  });

  it('writes buffered when asked to, or when a line is not a multiple of the alignment', async () => {
    const off = RawWriter.open(file(), LINE, { directIo: false });
    expect(off.direct).toBe(false);
    await off.close();
    const odd = file();
    const w = RawWriter.open(odd, 1000 * 2 * 2, { directIo: true });
    expect(w.direct).toBe(false);
    const data = new Uint8Array(2 * 4000).map((_, i) => i & 0xff);
    await w.write(1, data.subarray(0, 4000));
    await w.write(0, data.subarray(4000));
    await w.close();
    const f = readFileSync(odd);
    expect(f.subarray(0, 4000).equals(Buffer.from(data.subarray(4000)))).toBe(true);
    expect(f.subarray(4000).equals(Buffer.from(data.subarray(0, 4000)))).toBe(true);
  });

  it('reports a write after close as SCANLINE_ERR_STORAGE_WRITE', async () => {
    const w = RawWriter.open(file(), LINE, { directIo: true });
    await w.close();
    await expect(w.write(0, lines(0, 1, 'aligned'))).rejects.toMatchObject({ code: 'SCANLINE_ERR_STORAGE_WRITE' });
  });
});
