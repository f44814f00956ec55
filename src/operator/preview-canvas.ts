/**
 * The material preview image of one scan as it grows: the stitcher's RGBA preview strips (src/stitch PreviewStrip,
 * palette PREVIEW_PALETTE) placed at their columns in one row-major RGBA buffer whose width doubles when it fills,
 * so appending a strip costs one row copy per detector row and no per-strip allocation beyond the amortised growth.
 *
 * Threads: gateway JS thread. `encodePng()` hands a copy to sharp (libuv pool), so later strips do not race it.
 */
import sharp from 'sharp';
import type { PreviewStrip } from '../stitch/index.js';

/** zlib level of preview PNGs: 1 is several times faster than the default 6 and palette images still compress ~10x. */
export const PREVIEW_PNG_COMPRESSION = 1;

export class PreviewCanvas {
  /** Preview samples down the detector: ceil(pixels / downsample). */
  readonly height: number;
  /** Columns filled so far (one column = downsample raw lines). */
  private columns = 0;
  private coveredLines = 0;
  private capacity: number;
  private rgba: Uint8Array;

  constructor(
    readonly pixels: number,
    readonly downsample: number,
    initialColumns = 256,
  ) {
    this.height = Math.ceil(pixels / downsample);
    this.capacity = Math.max(16, initialColumns);
    this.rgba = new Uint8Array(this.capacity * this.height * 4);
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
    const x0 = Math.floor(strip.line / this.downsample);
    const end = x0 + strip.width;
    if (end > this.capacity) this.grow(end);
    const rowBytes = strip.width * 4;
    const stride = this.capacity * 4;
    for (let y = 0; y < this.height; y++) {
      this.rgba.set(rgba.subarray(y * rowBytes, (y + 1) * rowBytes), y * stride + x0 * 4);
    }
    if (end > this.columns) this.columns = end;
    if (strip.line + strip.lines > this.coveredLines) this.coveredLines = strip.line + strip.lines;
  }

  /** PNG of the whole image so far (null when it has no column yet). Encoded off the JS thread from a copy. */
  async encodePng(): Promise<Buffer | null> {
    if (this.columns === 0) return null;
    // Copy the filled part (row-major, exact width): the canvas may grow or take strips while sharp works.
    const width = this.columns;
    const out = new Uint8Array(width * this.height * 4);
    const stride = this.capacity * 4;
    for (let y = 0; y < this.height; y++) out.set(this.rgba.subarray(y * stride, y * stride + width * 4), y * width * 4);
    return encodeRgbaPng(out, width, this.height);
  }

  private grow(minColumns: number): void {
    let capacity = this.capacity;
    while (capacity < minColumns) capacity *= 2;
    const next = new Uint8Array(capacity * this.height * 4);
    const oldStride = this.capacity * 4;
    for (let y = 0; y < this.height; y++) next.set(this.rgba.subarray(y * oldStride, y * oldStride + this.columns * 4), y * capacity * 4);
    this.rgba = next;
    this.capacity = capacity;
  }
}

/** Lossless PNG of an RGBA image (alpha dropped: preview samples are opaque). */
export function encodeRgbaPng(rgba: Uint8Array, width: number, height: number): Promise<Buffer> {
  return sharp(rgba, { raw: { width, height, channels: 4 }, limitInputPixels: false })
    .removeAlpha()
    .png({ compressionLevel: PREVIEW_PNG_COMPRESSION, adaptiveFiltering: false })
    .toBuffer();
}
