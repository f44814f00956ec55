/**
 * Row copies for the operator preview canvas: natively when the addon loads (a memmove per run), else in plain JS
 * with the same checks and errors.
 */
import { ScanlineError, toScanlineError } from '../errors/index.js';
import { loadNativeAddon, type RowRunsCopy } from './load.js';

/**
 * Copies `rows` runs of `rowWords` 32-bit words: run r from src[srcStart + r * srcStride] to
 * dst[dstStart + r * dstStride] (element indices; strides >= rowWords; src and dst in different buffers). Throws
 * SCANLINE_ERR_STITCH_BUFFER for mistyped arrays, negative numbers, short strides, or runs beyond either array.
 */
export type CopyRows = RowRunsCopy<Uint32Array>;

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
 * way, and a JS word loop is several times slower: bench/RESULTS.md, 'Preview canvas'), else copyRowsPortable.
 */
export const copyRows: CopyRows = nativeOrPortable('copyRows', copyRowsPortable);

/** PackRgbRows natively when the addon loads (the canvas's image for the PNG encoder), else packRgbRowsPortable. */
export const packRgbRows: PackRgbRows = nativeOrPortable('packRgbRows', packRgbRowsPortable);
