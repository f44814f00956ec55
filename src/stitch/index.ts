/**
 * The stitch stage's public door: one Stitcher per scan (native addon in production, the TypeScript reference for
 * tests and benchmarks), its options and the 16-bit plane extraction used by the image endpoint.
 */
import { ScanlineError, toScanlineError } from '../errors/index.js';
import { loadNativeAddon, nativeAddonPath, type ScanlineNativeAddon } from './native-addon.js';
import { NativeStitcher } from './native-stitcher.js';
import { type StitcherOptionsInput, validateStitcherOptions } from './options.js';
import { TsStitcher } from './ts-stitcher.js';
import type { Stitcher } from './types.js';

export * from './types.js';

export {
  DEFAULT_STITCHER_OPTIONS,
  MaterialOptionsSchema,
  refineStitcherTuning,
  StitcherOptionsSchema,
  type StitcherOptionsInput,
  type StitcherTuning,
  StitcherTuningSchema,
  TileOptionsSchema,
  validateStitcherOptions,
} from './options.js';
export { PREVIEW_GAP_COLOUR, PREVIEW_PALETTE, tileRowPixels } from './ts-stitcher.js';

export type StitcherImplementation = 'native' | 'typescript';

/**
 * Creates the stitcher of one scan. `options` are validated (and defaults merged) here, so a plain
 * StitcherOptions or a partial input both work; invalid ones throw SCANLINE_ERR_STITCH_OPTIONS listing every
 * problem. 'native' throws SCANLINE_ERR_STITCH_ADDON_LOAD when the addon cannot be loaded.
 */
export function createStitcher(options: StitcherOptionsInput, implementation: StitcherImplementation = 'native'): Stitcher {
  const validated = validateStitcherOptions(options);
  if (implementation === 'native') return new NativeStitcher(validated);
  if (implementation === 'typescript') return new TsStitcher(validated);
  throw new ScanlineError('SCANLINE_ERR_STITCH_OPTIONS', `Expected "native" or "typescript" for implementation but received ${String(implementation)}`);
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
  let addon: ScanlineNativeAddon;
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
export function extractPlane(src: Uint16Array, lines: number, energies: number, pixels: number, energy: number, out: Uint16Array): void {
  const addon = loadNativeAddon();
  try {
    addon.extractPlane(src, lines, energies, pixels, energy, out);
  } catch (err) {
    throw toScanlineError(err, 'SCANLINE_ERR_STITCH_FAILED');
  }
}

/** `rows` runs of `rowWords` source words: run r from src[srcStart + r * srcStride] to dst[dstStart + r * dstStride]. */
type RowRunsCopy<Dst> = (
  dst: Dst,
  dstStart: number,
  dstStride: number,
  src: Uint32Array,
  srcStart: number,
  srcStride: number,
  rowWords: number,
  rows: number,
) => void;

/**
 * Copies `rows` runs of `rowWords` 32-bit words: run r from src[srcStart + r * srcStride] to
 * dst[dstStart + r * dstStride] (element indices; strides >= rowWords; src and dst in different buffers). Throws
 * SCANLINE_ERR_STITCH_BUFFER for mistyped arrays, negative numbers, short strides, or runs beyond either array.
 */
export type CopyRows = RowRunsCopy<Uint32Array>;

/**
 * Runs the calling thread (and the threads it starts afterwards) under Linux's SCHED_IDLE policy: it gets a CPU only
 * when no normal thread wants one. For the inference workers (src/inference): the event loop then never waits for
 * them to be preempted. Returns 'idle' when applied, 'unavailable' where the addon does not load or the platform has
 * no such policy; throws SCANLINE_ERR_INFER_WORKER_START when the kernel refuses. Lives here because the addon does.
 */
export function setThreadIdleScheduling(): 'idle' | 'unavailable' {
  let addon: ScanlineNativeAddon;
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

/**
 * packRgbRows(dst, dstStart, dstStride, src, srcStart, srcStride, rowWords, rows): CopyRows into packed 8-bit RGB.
 * Each source word (RGBA in memory order, as preview strips are) becomes its first three bytes; dst indices and
 * strides count pixels of 3 bytes, and dst holds floor(byteLength / 3) of them. Same checks and error as CopyRows.
 */
export type PackRgbRows = RowRunsCopy<Uint8Array>;

/**
 * The addon's function `name` when the addon loads here, else `portable`; looked up on the first call. Errors from
 * the addon become ScanlineErrors with SCANLINE_ERR_STITCH_BUFFER.
 */
function nativeOrPortable<F extends (...args: never[]) => void>(name: 'copyRows' | 'packRgbRows', portable: F): F {
  let native: F | null | undefined;
  return ((...args: Parameters<F>) => {
    if (native === undefined) {
      try {
        const addon = loadNativeAddon();
        // An addon built before `name` existed lacks it: the portable version then runs.
        native = typeof addon[name] === 'function' ? ((addon[name] as unknown as F).bind(addon) as F) : null;
      } catch {
        native = null;
      }
    }
    if (!native) return portable(...args);
    try {
      native(...args);
    } catch (err) {
      throw toScanlineError(err, 'SCANLINE_ERR_STITCH_BUFFER');
    }
  }) as F;
}

/** Checks of CopyRows and PackRgbRows in JS; `dstLength` counts dst's elements, in `unit` (pixels for packRgbRows). */
function checkRowRuns(fn: string, dstLength: number, unit: string, srcLength: number, sameBuffer: boolean, args: readonly number[]): boolean {
  const [dstStart, dstStride, srcStart, srcStride, rowWords, rows] = args;
  if (!args.every((v) => Number.isSafeInteger(v) && v >= 0) || dstStride < rowWords || srcStride < rowWords) {
    throw new ScanlineError('SCANLINE_ERR_STITCH_BUFFER', `${fn}: expected non-negative starts, rowWords and rows, and strides >= rowWords`);
  }
  if (rows === 0 || rowWords === 0) return false;
  if (sameBuffer) throw new ScanlineError('SCANLINE_ERR_STITCH_BUFFER', `${fn}: src and dst share one buffer`);
  if (dstStart + (rows - 1) * dstStride + rowWords > dstLength || srcStart + (rows - 1) * srcStride + rowWords > srcLength) {
    throw new ScanlineError(
      'SCANLINE_ERR_STITCH_BUFFER',
      `${fn}: ${rows} rows of ${rowWords} words reach beyond dst (${dstLength} ${unit}) or src (${srcLength} words)`,
    );
  }
  return true;
}

/** CopyRows in plain JS, with the same checks and errors: what copyRows runs when the addon does not load. */
export const copyRowsPortable: CopyRows = (dst, dstStart, dstStride, src, srcStart, srcStride, rowWords, rows) => {
  if (!(dst instanceof Uint32Array) || !(src instanceof Uint32Array)) {
    throw new ScanlineError('SCANLINE_ERR_STITCH_BUFFER', 'copyRows: expected a Uint32Array for dst and src');
  }
  if (!checkRowRuns('copyRows', dst.length, 'words', src.length, src.buffer === dst.buffer, [dstStart, dstStride, srcStart, srcStride, rowWords, rows])) return;
  for (let r = 0; r < rows; r++) {
    const d = dstStart + r * dstStride;
    const s = srcStart + r * srcStride;
    for (let i = 0; i < rowWords; i++) dst[d + i] = src[s + i];
  }
};

/** PackRgbRows in plain JS, with the same checks and errors: what packRgbRows runs when the addon does not load. */
export const packRgbRowsPortable: PackRgbRows = (dst, dstStart, dstStride, src, srcStart, srcStride, rowWords, rows) => {
  if (!(dst instanceof Uint8Array) || !(src instanceof Uint32Array)) {
    throw new ScanlineError('SCANLINE_ERR_STITCH_BUFFER', 'packRgbRows: expected a Uint8Array dst and a Uint32Array src');
  }
  const args = [dstStart, dstStride, srcStart, srcStride, rowWords, rows];
  if (!checkRowRuns('packRgbRows', Math.floor(dst.length / 3), 'pixels', src.length, src.buffer === dst.buffer, args)) return;
  const bytes = new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
  for (let r = 0; r < rows; r++) {
    let d = (dstStart + r * dstStride) * 3;
    let s = (srcStart + r * srcStride) * 4;
    for (let i = 0; i < rowWords; i++, d += 3, s += 4) {
      dst[d] = bytes[s];
      dst[d + 1] = bytes[s + 1];
      dst[d + 2] = bytes[s + 2];
    }
  }
};

/**
 * CopyRows as a native memmove per run when the addon loads (the operator preview canvas places every strip this
 * way: ~4x faster than a JS word loop), else copyRowsPortable.
 */
export const copyRows: CopyRows = nativeOrPortable('copyRows', copyRowsPortable);

/** PackRgbRows natively when the addon loads (the canvas's image for the PNG encoder), else packRgbRowsPortable. */
export const packRgbRows: PackRgbRows = nativeOrPortable('packRgbRows', packRgbRowsPortable);
