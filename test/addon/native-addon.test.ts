/**
 * The addon itself: loading, worker threads (context awareness), extractPlane, native error codes.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';
import { extractPlane, nativeAddonInfo } from '../../src/addon/index.js';
import { createStitcher, isNativeStitcherAvailable, type StitcherOptions, validateStitcherOptions } from '../../src/stitch/index.js';
import { makeScene } from '../stitch/helpers.js';

interface Digest {
  tileSum: number;
  tileCount: number;
  previewSum: number;
  frontier: number;
  kernelIsa?: string;
}

async function stitchOnMain(options: StitcherOptions, lines: number, payload: Uint16Array): Promise<Digest> {
  const st = createStitcher(options);
  st.push(1, 0, lines, payload);
  st.finish(lines);
  const buffers = { tiles: new Float32Array(st.tileFloats * 16), preview: new Uint8Array(st.previewBytes) };
  const digest: Digest = { tileSum: 0, tileCount: 0, previewSum: 0, frontier: 0 };
  for (;;) {
    const r = await st.process(buffers);
    for (const t of r.tiles) {
      for (let i = t.slot * st.tileFloats; i < (t.slot + 1) * st.tileFloats; i++) digest.tileSum += buffers.tiles[i];
    }
    digest.tileCount += r.tiles.length;
    if (r.preview) for (let i = 0; i < r.preview.width * r.preview.height * 4; i++) digest.previewSum += buffers.preview[i];
    if (r.done) break;
  }
  digest.frontier = st.stats().frontier;
  st.close();
  return digest;
}

function stitchInWorker(options: StitcherOptions, lines: number, payload: Uint16Array): Promise<Digest> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./fixtures/stitch-worker.mjs', import.meta.url), {
      workerData: { addonPath: nativeAddonInfo().path, options, lines, payload },
    });
    worker.once('message', (m: Digest) => resolve(m));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`worker exited with ${code}`));
    });
  });
}

describe('native addon', () => {
  it('is available and says where it lives and which kernel it runs', () => {
    expect(isNativeStitcherAvailable()).toBe(true);
    expect(isNativeStitcherAvailable(true)).toBe(true);
    const info = nativeAddonInfo();
    expect(info.path).toMatch(/build[/\\]Release[/\\]scanline_native\.node$/);
    expect(['avx2', 'baseline']).toContain(info.kernelIsa);
  });

  it('loads and stitches inside worker threads, two at once next to the main thread, with identical results', async () => {
    const scene = makeScene({
      pixels: 128,
      energies: 2,
      lines: 300,
      seed: 31,
      noise: 1,
      rects: [{ line0: 40, line1: 260, pixel0: 10, pixel1: 100, high: 1.3, low: 1.9 }],
    });
    const options = validateStitcherOptions({
      pixels: 128,
      energies: 2,
      maxLines: 512,
      maxLinesPerJob: 64,
      tile: { size: 16, downsample: 4, strideLines: 32, overlapPixels: 16 },
    });
    const [main, w1, w2] = await Promise.all([
      stitchOnMain(options, scene.lines, scene.raw),
      stitchInWorker(options, scene.lines, scene.raw),
      stitchInWorker(options, scene.lines, scene.raw),
    ]);
    expect(main.tileCount).toBeGreaterThan(10);
    expect(main.frontier).toBe(300);
    expect(w1).toEqual({ ...main, kernelIsa: nativeAddonInfo().kernelIsa });
    expect(w2).toEqual(w1);
  });

  it('extractPlane transposes one energy into image layout', () => {
    const lines = 70;
    const pixels = 33;
    const src = new Uint16Array(lines * 2 * pixels).map((_, i) => (i * 7919) % 65536);
    for (const energy of [0, 1]) {
      const out = new Uint16Array(lines * pixels);
      extractPlane(src, lines, 2, pixels, energy, out);
      for (let l = 0; l < lines; l++) {
        for (let p = 0; p < pixels; p++) expect(out[p * lines + l]).toBe(src[(l * 2 + energy) * pixels + p]);
      }
    }
  });

  it('extractPlane refuses short buffers and bad geometry with codes', () => {
    const src = new Uint16Array(10 * 2 * 4);
    const codeOf = (fn: () => void): string | undefined => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(ScanlineError);
        return (err as ScanlineError).code;
      }
      return undefined;
    };
    expect(codeOf(() => extractPlane(src, 10, 2, 4, 0, new Uint16Array(39)))).toBe('SCANLINE_ERR_STITCH_BUFFER');
    expect(codeOf(() => extractPlane(src, 11, 2, 4, 0, new Uint16Array(44)))).toBe('SCANLINE_ERR_STITCH_BUFFER');
    expect(codeOf(() => extractPlane(src, 10, 2, 4, 2, new Uint16Array(40)))).toBe('SCANLINE_ERR_SLICE_GEOMETRY');
    expect(codeOf(() => extractPlane(src, 10, 2, 4, 0, new Float32Array(40) as unknown as Uint16Array))).toBe('SCANLINE_ERR_STITCH_BUFFER');
    // Sizes whose product wraps a 64-bit size (found by the buffers fuzzer: lines x pixels = 2^64 + 6144 passed the
    // check with 65 Ki-sample arrays, and the transpose wrote far past them).
    expect(codeOf(() => extractPlane(new Uint16Array(0), 2 ** 48, 2, 65536, 0, new Uint16Array(0)))).toBe('SCANLINE_ERR_STITCH_BUFFER');
    expect(codeOf(() => extractPlane(new Uint16Array(65536), 467906454791740, 1, 39424, 0, new Uint16Array(65536)))).toBe('SCANLINE_ERR_STITCH_BUFFER');
  });

  it('the raw addon throws Error objects carrying a SCANLINE_ERR code (guards behind the TS validation)', () => {
    const addon = createRequire(import.meta.url)(nativeAddonInfo().path) as {
      Stitcher: new (o: unknown) => { push(...a: unknown[]): unknown };
    };
    const options = validateStitcherOptions({ pixels: 8, energies: 2 });
    const codeOf = (fn: () => unknown): unknown => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(Error);
        return (err as { code?: unknown }).code;
      }
      return undefined;
    };
    expect(codeOf(() => new addon.Stitcher({ ...options, pixels: 0 }))).toBe('SCANLINE_ERR_STITCH_OPTIONS');
    expect(codeOf(() => new addon.Stitcher({ ...options, tile: { ...options.tile, overlapPixels: 256 } }))).toBe('SCANLINE_ERR_STITCH_OPTIONS');
    expect(codeOf(() => new addon.Stitcher({ pixels: 8 }))).toBe('SCANLINE_ERR_STITCH_OPTIONS');
    const st = new addon.Stitcher(options);
    expect(codeOf(() => st.push(1, 0, 1, new Uint16Array(15)))).toBe('SCANLINE_ERR_SLICE_SIZE');
    expect(codeOf(() => st.push('1', 0, 1, new Uint16Array(16)))).toBe('SCANLINE_ERR_SLICE_HEADER');
  });
});
