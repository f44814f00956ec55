/**
 * The material preview image of one scan as it grows: the stitcher's RGBA preview strips (src/stitch PreviewStrip,
 * palette PREVIEW_PALETTE) placed at their columns in blocks of BLOCK_COLUMNS columns (each block row-major RGBA,
 * one 32-bit word per sample). A new block is added when a strip reaches past the last one, so growing never copies
 * what is already there, and a strip is placed with one copyRows call per block: no per-row views or allocations.
 *
 * Why blocks: the canvas takes every strip of every live scan on the JS thread (up to ~30 strips/s per portal). One
 * buffer whose width doubles makes garbage with a view per detector row per strip and copies the whole image in one
 * task when it grows. Rows are placed by the addon's copyRows (a memmove per row): a JS word loop, memory-bound on
 * the strided rows, is several times slower (bench/RESULTS.md, 'Preview canvas').
 *
 * The image goes to the PNG encoder as packed RGB (packRgbRows while the blocks are joined): libvips spends more CPU
 * making a PNG from RGBA with removeAlpha() than from RGB (bench/RESULTS.md, 'Preview PNGs from packed RGB').
 *
 * Threads: gateway JS thread. `encodePng()` hands a copy to sharp (libuv pool), so later strips do not race it.
 */
import sharp from 'sharp';
import type { BufferPool } from '../memory/index.js';
import { copyRows, type PreviewStrip, packRgbRows } from '../addon/index.js';

/**
 * zlib level of preview PNGs: 1 costs a fraction of the default 6's CPU, and the few-colour previews still compress
 * well (bench/RESULTS.md, 'Preview PNG zlib level').
 */
export const PREVIEW_PNG_COMPRESSION = 1;

/** Columns per canvas block: 256 columns x 512 rows (1024 px at the default downsample 2) x 4 bytes = 512 KiB. */
export const BLOCK_COLUMNS = 256;

export class PreviewCanvas {
  /** Preview samples down the detector: ceil(pixels / downsample). */
  readonly height: number;
  /** Columns filled so far (one column = downsample raw lines). */
  private columns = 0;
  private coveredLines = 0;
  /** Block b holds columns [b * BLOCK_COLUMNS, (b + 1) * BLOCK_COLUMNS): word (y * BLOCK_COLUMNS + x). */
  private readonly blocks: Uint32Array[] = [];

  /**
   * @param pool memory of finished canvases (blocks, and the row-major copies handed to sharp) for the next scans:
   *   the operator hub's, JS thread only. Fresh memory is the expensive part of a canvas: a 1024-pixel truck's canvas
   *   is 4 MiB (8 blocks) plus a 3 MiB RGB copy for its PNG.
   */
  constructor(
    readonly pixels: number,
    readonly downsample: number,
    private readonly pool: BufferPool,
  ) {
    this.height = Math.ceil(pixels / downsample);
  }

  /** Columns of preview image so far. */
  get width(): number {
    return this.columns;
  }

  /** Raw lines the image covers (the last column may cover fewer than downsample). */
  get lines(): number {
    return this.coveredLines;
  }

  /**
   * Copies a strip into place. `rgba` is the stitcher's buffer, valid only during this call: row-major, strip.width
   * samples per row, strip.height rows.
   */
  add(strip: PreviewStrip, rgba: Uint8Array): void {
    if (strip.height !== this.height) throw new RangeError(`preview strip height ${strip.height} differs from the canvas height ${this.height}`);
    const width = strip.width;
    const src = stripWords(strip, rgba);
    const x0 = Math.floor(strip.line / this.downsample);
    const end = x0 + width;
    while (this.blocks.length * BLOCK_COLUMNS < end) this.blocks.push(new Uint32Array(this.take(BLOCK_COLUMNS * this.height * 4, true)));
    for (let x = x0; x < end; ) {
      const block = this.blocks[Math.floor(x / BLOCK_COLUMNS)];
      const bx = x % BLOCK_COLUMNS;
      const run = Math.min(end - x, BLOCK_COLUMNS - bx);
      copyRows(block, bx, BLOCK_COLUMNS, src, x - x0, width, run, this.height);
      x += run;
    }
    if (end > this.columns) this.columns = end;
    if (strip.line + strip.lines > this.coveredLines) this.coveredLines = strip.line + strip.lines;
  }

  /**
   * The filled part as one row-major packed RGB image of width x height (a copy; unfilled columns black). Its buffer
   * may be longer (whole blocks of columns, so it can be pooled); `recycle()` it when done.
   */
  toRgb(): Uint8Array {
    const width = this.columns;
    const blocks = Math.ceil(width / BLOCK_COLUMNS);
    const out = new Uint8Array(this.take(blocks * BLOCK_COLUMNS * this.height * 3, false), 0, width * this.height * 3);
    for (let b = 0; b * BLOCK_COLUMNS < width; b++) {
      const columns = Math.min(BLOCK_COLUMNS, width - b * BLOCK_COLUMNS);
      packRgbRows(out, b * BLOCK_COLUMNS, width, this.blocks[b], 0, BLOCK_COLUMNS, columns, this.height);
    }
    return out;
  }

  /** PNG of the whole image so far (null when it has no column yet). Encoded off the JS thread from a copy. */
  async encodePng(): Promise<Buffer | null> {
    if (this.columns === 0) return null;
    // A copy: the canvas takes strips while sharp works.
    const rgb = this.toRgb();
    try {
      return await encodeRgbPng(rgb, this.columns, this.height);
    } finally {
      this.recycle(rgb);
    }
  }

  /** The canvas will not be used again: its blocks go back to the pool for later scans. */
  release(): void {
    for (const block of this.blocks.splice(0)) this.pool.give(block.buffer as ArrayBuffer);
    this.columns = 0;
    this.coveredLines = 0;
  }

  /** Gives a toRgb() result back to the pool; the caller must not use it (or a view of it) afterwards. */
  recycle(image: Uint8Array): void {
    this.pool.give(image.buffer as ArrayBuffer);
  }

  /** A pool buffer; the default allocator never returns null. */
  private take(bytes: number, zero: boolean): ArrayBuffer {
    return this.pool.take(bytes, zero) as ArrayBuffer;
  }
}

/**
 * A preview strip (row-major RGBA words, width x height, as the stitcher hands it, valid only during the call) as a
 * new packed RGB image of the same size, for encodeRgbPng.
 */
export function stripToRgb(strip: { width: number; height: number }, rgba: Uint8Array): Uint8Array {
  const words = stripWords(strip, rgba);
  const rgb = new Uint8Array(words.length * 3);
  packRgbRows(rgb, 0, strip.width, words, 0, strip.width, strip.width, strip.height);
  return rgb;
}

/** A strip's samples as words (one per sample); RangeError when `rgba` is too short for width x height. */
function stripWords(strip: { width: number; height: number }, rgba: Uint8Array): Uint32Array {
  const samples = strip.width * strip.height;
  if (rgba.byteLength < samples * 4)
    throw new RangeError(`preview strip of ${strip.width} x ${strip.height} samples needs ${samples * 4} bytes, received ${rgba.byteLength}`);
  // The stitcher's buffers are 4-byte aligned; a copy makes any other input word-addressable.
  return rgba.byteOffset % 4 === 0 ? new Uint32Array(rgba.buffer, rgba.byteOffset, samples) : new Uint32Array(rgba.slice(0, samples * 4).buffer);
}

/** Lossless PNG of a packed 8-bit RGB image. */
export function encodeRgbPng(rgb: Uint8Array, width: number, height: number): Promise<Buffer> {
  return sharp(rgb, { raw: { width, height, channels: 3 }, limitInputPixels: false })
    .png({ compressionLevel: PREVIEW_PNG_COMPRESSION, adaptiveFiltering: false })
    .toBuffer();
}
