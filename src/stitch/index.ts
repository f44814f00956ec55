/**
 * The stitch stage's public door: one Stitcher per scan (native addon in production, the TypeScript reference for
 * tests and benchmarks), its options and the 16-bit plane extraction used by the image endpoint.
 */
import { ScanlineError, toScanlineError } from '../errors/index.js';
import { loadNativeAddon, nativeAddonPath } from './native-addon.js';
import { NativeStitcher } from './native-stitcher.js';
import { type StitcherOptionsInput, validateStitcherOptions } from './options.js';
import { TsStitcher } from './ts-stitcher.js';
import type { Stitcher } from './types.js';

export * from './types.js';
export { DEFAULT_STITCHER_OPTIONS } from './defaults.js';
export { type StitcherOptionsInput, validateStitcherOptions } from './options.js';
export { PREVIEW_GAP_COLOUR, PREVIEW_PALETTE, tileRowPixels } from './ts-stitcher.js';

export type StitcherImplementation = 'native' | 'typescript';

/**
 * Creates the stitcher of one scan. `options` are validated (and defaults merged) here, so a plain
 * StitcherOptions or a partial input both work; invalid ones throw SCANLINE_ERR_STITCH_OPTIONS listing every
 * problem. 'native' throws SCANLINE_ERR_STITCH_ADDON_LOAD when the addon cannot be loaded.
 */
export function createStitcher(
  options: StitcherOptionsInput,
  implementation: StitcherImplementation = 'native',
): Stitcher {
  const validated = validateStitcherOptions(options);
  if (implementation === 'native') return new NativeStitcher(validated);
  if (implementation === 'typescript') return new TsStitcher(validated);
  throw new ScanlineError(
    'SCANLINE_ERR_STITCH_OPTIONS',
    `Expected "native" or "typescript" for implementation but received ${String(implementation)}`,
  );
}

/**
 * True when the native addon loads on this thread. With `throwOnFailure`, a failed load throws its
 * ScanlineError('SCANLINE_ERR_STITCH_ADDON_LOAD') (path and cause) instead of returning false.
 */
export function isNativeStitcherAvailable(throwOnFailure = false): boolean {
  try {
    loadNativeAddon();
    return true;
  } catch (err) {
    if (throwOnFailure) throw err;
    return false;
  }
}

/** Where the addon lives and which attenuation kernel build this CPU runs (loads the addon). */
export function nativeAddonInfo(): { path: string; kernelIsa: 'avx2' | 'baseline' } {
  return { path: nativeAddonPath(), kernelIsa: loadNativeAddon().kernelIsa };
}

/**
 * Memory for O_DIRECT file writes: a zero-filled ArrayBuffer of `byteLength` bytes starting on an `alignment`
 * boundary (power of two, 64..65536), from the native addon (JS allocations give no alignment guarantee). null when
 * the addon cannot be loaded, so callers fall back to buffered writes. Bad arguments throw SCANLINE_ERR_STORAGE_WRITE.
 */
export function alignedBuffer(byteLength: number, alignment: number): ArrayBuffer | null {
  let addon;
  try {
    addon = loadNativeAddon();
  } catch {
    return null;
  }
  try {
    return addon.alignedBuffer(byteLength, alignment);
  } catch (err) {
    throw toScanlineError(err, 'SCANLINE_ERR_STORAGE_WRITE');
  }
}

/**
 * Transposes one energy of line-major raw data (lines x energies x pixels) into image layout:
 * out[pixel * lines + line] (row = detector pixel, column = line), for 16-bit PNGs. Native; throws
 * SCANLINE_ERR_STITCH_BUFFER for short or mistyped arrays and SCANLINE_ERR_SLICE_GEOMETRY for bad dimensions.
 */
export function extractPlane(
  src: Uint16Array,
  lines: number,
  energies: number,
  pixels: number,
  energy: number,
  out: Uint16Array,
): void {
  const addon = loadNativeAddon();
  try {
    addon.extractPlane(src, lines, energies, pixels, energy, out);
  } catch (err) {
    throw toScanlineError(err, 'SCANLINE_ERR_STITCH_FAILED');
  }
}

/**
 * Copies `rows` runs of `rowWords` 32-bit words: run r from src[srcStart + r * srcStride] to
 * dst[dstStart + r * dstStride] (element indices; strides >= rowWords; src and dst in different buffers). Throws
 * SCANLINE_ERR_STITCH_BUFFER for mistyped arrays, negative numbers, short strides, or runs beyond either array.
 */
export type CopyRows = (
  dst: Uint32Array,
  dstStart: number,
  dstStride: number,
  src: Uint32Array,
  srcStart: number,
  srcStride: number,
  rowWords: number,
  rows: number,
) => void;

/**
 * Runs the calling thread (and the threads it starts afterwards) under Linux's SCHED_IDLE policy: it gets a CPU only
 * when no normal thread wants one. For the inference workers (src/inference): the event loop then never waits for
 * them to be preempted. Returns 'idle' when applied, 'unavailable' where the addon does not load or the platform has
 * no such policy; throws SCANLINE_ERR_INFER_WORKER_START when the kernel refuses. Lives here because the addon does.
 */
export function setThreadIdleScheduling(): 'idle' | 'unavailable' {
  let addon;
  try {
    addon = loadNativeAddon();
  } catch {
    return 'unavailable';
  }
  try {
    return addon.setThreadIdleScheduling() ? 'idle' : 'unavailable';
  } catch (err) {
    throw toScanlineError(err, 'SCANLINE_ERR_INFER_WORKER_START');
  }
}

/** The addon's copyRows, looked up once (null when the addon does not load here). */
let nativeCopyRows: CopyRows | null | undefined;

/**
 * CopyRows as a native memmove per run when the addon loads (the operator preview canvas places every strip this
 * way: ~4x faster than a JS word loop), else copyRowsPortable.
 */
export const copyRows: CopyRows = (dst, dstStart, dstStride, src, srcStart, srcStride, rowWords, rows) => {
  if (nativeCopyRows === undefined) {
    try {
      const addon = loadNativeAddon();
      nativeCopyRows = addon.copyRows.bind(addon);
    } catch {
      nativeCopyRows = null;
    }
  }
  if (!nativeCopyRows) return copyRowsPortable(dst, dstStart, dstStride, src, srcStart, srcStride, rowWords, rows);
  try {
    nativeCopyRows(dst, dstStart, dstStride, src, srcStart, srcStride, rowWords, rows);
  } catch (err) {
    throw toScanlineError(err, 'SCANLINE_ERR_STITCH_BUFFER');
  }
};

/** CopyRows in plain JS, with the same checks and errors: what copyRows runs when the addon does not load. */
export const copyRowsPortable: CopyRows = (dst, dstStart, dstStride, src, srcStart, srcStride, rowWords, rows) => {
  if (!(dst instanceof Uint32Array) || !(src instanceof Uint32Array)) {
    throw new ScanlineError('SCANLINE_ERR_STITCH_BUFFER', 'copyRows: expected a Uint32Array for dst and src');
  }
  const ints = [dstStart, dstStride, srcStart, srcStride, rowWords, rows];
  if (!ints.every((v) => Number.isSafeInteger(v) && v >= 0) || dstStride < rowWords || srcStride < rowWords) {
    throw new ScanlineError('SCANLINE_ERR_STITCH_BUFFER', 'copyRows: expected non-negative starts, rowWords and rows, and strides >= rowWords');
  }
  if (rows === 0 || rowWords === 0) return;
  if (dstStart + (rows - 1) * dstStride + rowWords > dst.length || srcStart + (rows - 1) * srcStride + rowWords > src.length) {
    throw new ScanlineError(
      'SCANLINE_ERR_STITCH_BUFFER',
      `copyRows: ${rows} rows of ${rowWords} words reach beyond dst (${dst.length} words) or src (${src.length} words)`,
    );
  }
  if (src.buffer === dst.buffer) {
    throw new ScanlineError('SCANLINE_ERR_STITCH_BUFFER', 'copyRows: src and dst share one buffer');
  }
  for (let r = 0; r < rows; r++) {
    const d = dstStart + r * dstStride;
    const s = srcStart + r * srcStride;
    for (let i = 0; i < rowWords; i++) dst[d + i] = src[s + i];
  }
};
