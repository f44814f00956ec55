// PreviewCanvas: strips land at their columns whatever their order and size, across block boundaries, and the
// image read back (raw and as PNG) is what a naive per-sample placement gives.
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { BLOCK_COLUMNS, PreviewCanvas, stripToRgb } from '../../src/operator/index.js';
import { BufferPool } from '../../src/memory/index.js';

const DOWNSAMPLE = 4;
const PIXELS = 37 * DOWNSAMPLE - 1; // height 37: not a power of two

function strip(line: number, width: number, height: number): { meta: { line: number; lines: number; width: number; height: number }; rgba: Uint8Array } {
  const rgba = new Uint8Array(width * height * 4);
  const column0 = line / DOWNSAMPLE;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 4;
      // Every sample distinct: column in R/G, row in B, opaque.
      rgba[o] = (column0 + x) & 0xff;
      rgba[o + 1] = (column0 + x) >> 8;
      rgba[o + 2] = y;
      rgba[o + 3] = 255;
    }
  }
  return { meta: { line, lines: width * DOWNSAMPLE, width, height }, rgba };
}

describe('PreviewCanvas', () => {
  it('places strips out of order and across blocks, leaves unfilled columns empty, and encodes what it holds', async () => {
    const canvas = new PreviewCanvas(PIXELS, DOWNSAMPLE, new BufferPool(64 << 20));
    const height = canvas.height;
    expect(height).toBe(37);
    // Columns 0..9, then a strip straddling the first block boundary, then one far past a whole empty block,
    // then columns 10..19 late.
    const strips = [
      strip(0, 10, height),
      strip((BLOCK_COLUMNS - 3) * DOWNSAMPLE, 7, height),
      strip((2 * BLOCK_COLUMNS + 5) * DOWNSAMPLE, 4, height),
      strip(10 * DOWNSAMPLE, 10, height),
    ];
    for (const s of strips) {
      // The stitcher reuses its buffer after the call: the canvas must have copied.
      const reused = s.rgba.slice();
      canvas.add(s.meta as never, reused);
      reused.fill(0);
    }
    const width = 2 * BLOCK_COLUMNS + 9;
    expect(canvas.width).toBe(width);
    expect(canvas.lines).toBe(width * DOWNSAMPLE);

    const expected = new Uint8Array(width * height * 4);
    for (const s of strips) {
      const x0 = s.meta.line / DOWNSAMPLE;
      for (let y = 0; y < height; y++) expected.set(s.rgba.subarray(y * s.meta.width * 4, (y + 1) * s.meta.width * 4), (y * width + x0) * 4);
    }
    const rgb = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) rgb.set(expected.subarray(i * 4, i * 4 + 3), i * 3);
    const raw = canvas.toRgb();
    expect(Buffer.from(raw).equals(Buffer.from(rgb))).toBe(true);
    // Column 20 was never filled: black.
    expect([...raw.subarray(20 * 3, 21 * 3)]).toEqual([0, 0, 0]);

    const png = await canvas.encodePng();
    const decoded = await sharp(png!).raw().toBuffer({ resolveWithObject: true });
    expect(decoded.info).toMatchObject({ width, height, channels: 3 });
    expect(Buffer.from(decoded.data).equals(Buffer.from(rgb))).toBe(true);
  });

  it('accepts a strip at an unaligned byte offset and refuses a short or wrongly sized one', () => {
    const canvas = new PreviewCanvas(PIXELS, DOWNSAMPLE, new BufferPool(64 << 20));
    const s = strip(0, 3, canvas.height);
    const shifted = new Uint8Array(s.rgba.byteLength + 1).subarray(1);
    shifted.set(s.rgba);
    canvas.add(s.meta as never, shifted);
    const rgb = s.rgba.filter((_, i) => i % 4 !== 3);
    expect(Buffer.from(canvas.toRgb()).equals(Buffer.from(rgb))).toBe(true);
    // A strip as the encoder of screen increments gets it: the same RGB, from the unaligned view too.
    expect(Buffer.from(stripToRgb(s.meta, shifted)).equals(Buffer.from(rgb))).toBe(true);
    expect(() => stripToRgb(s.meta, s.rgba.subarray(4))).toThrow(RangeError);
    expect(() => canvas.add(s.meta as never, s.rgba.subarray(4))).toThrow(RangeError);
    expect(() => canvas.add({ ...s.meta, height: canvas.height + 1 } as never, s.rgba)).toThrow(/height/);
  });

  it('has no image before the first strip', async () => {
    expect(await new PreviewCanvas(PIXELS, DOWNSAMPLE, new BufferPool(64 << 20)).encodePng()).toBeNull();
  });
});
