/**
 * Tile geometry (columns every strideLines, rows with overlap, the final column aligned to the scan end, zero
 * padding) and tile values against an independent block average of readAttenuation. Both implementations.
 */
import { describe, expect, it } from 'vitest';
import { createStitcher, type TileInfo } from '../../src/stitch/index.js';
import { type StitcherImplementation, stitcherOf } from '../helpers/ts-stitcher.js';
import { buffersFor, gapLines, makeScene, mismatches, newCollected, oracleTile, play, processedPlanes, pump, schedule, slice } from './helpers.js';

const TILE = { size: 8, downsample: 2, strideLines: 8, overlapPixels: 4 }; // span 16, row step 12

function positions(tiles: Array<{ info: TileInfo }>): Array<[number, number]> {
  return tiles.map((t) => [t.info.line, t.info.pixel]);
}

async function scan(impl: StitcherImplementation, pixels: number, lines: number, tile: typeof TILE, tileCapacity: number, drop: Array<[number, number]> = []) {
  const scene = makeScene({
    pixels,
    energies: 2,
    lines,
    seed: pixels * 1000 + lines,
    noise: 1,
    rects: [{ line0: 5, line1: lines - 2, pixel0: 2, pixel1: pixels - 3, high: 1.1, low: 1.6 }],
  });
  const steps = schedule(scene, 1, { maxSlice: 5, shuffleWindow: 2, drop });
  const options = { maxLines: 256, airLines: 4, maxLinesPerJob: 10, reorderWindowLines: 12, tile, previewDownsample: 2 };
  return { scene, ...(await play(scene, steps, options, impl, tileCapacity)) };
}

describe.each(['native', 'typescript'] as const)('%s stitcher tiles', (impl) => {
  it('columns every strideLines, rows every span - overlap plus one at the bottom, a final column at the end', async () => {
    const { st, collected, scene } = await scan(impl, 45, 70, TILE, 3);
    const rows = [0, 12, 24, 29];
    const columns = [0, 8, 16, 24, 32, 40, 48, 54]; // 48 + 16 = 64 < 70: one more column at 70 - 16
    expect(positions(collected.tiles)).toEqual(columns.flatMap((c) => rows.map((r) => [c, r])));
    expect(collected.tiles.every((t) => t.info.lines === 16 && t.info.pixels === 16)).toBe(true);
    // Slots restart in every job; the buffer holds 3 tiles, so columns of 4 straddle jobs (more = true).
    expect(Math.max(...collected.tiles.map((t) => t.info.slot))).toBe(2);
    expect(collected.results.some((r) => r.more && r.tiles.length === 3)).toBe(true);
    expect(st.stats().tilesEmitted).toBe(32);
    const planes = processedPlanes(st, scene.lines, gapLines(collected.results));
    for (const t of collected.tiles) expect(mismatches(t.data, oracleTile(planes, t.info, scene.lines, st))).toEqual([]);
  });

  it('no extra column when the last regular one ends exactly at the scan end', async () => {
    const { collected } = await scan(impl, 40, 64, TILE, 64);
    expect([...new Set(collected.tiles.map((t) => t.info.line))]).toEqual([0, 8, 16, 24, 32, 40, 48]);
    expect([...new Set(collected.tiles.map((t) => t.info.pixel))]).toEqual([0, 12, 24]); // 24 + 16 = 40: no extra row
  });

  it('columns further apart than a span, and a final column', async () => {
    const { collected } = await scan(impl, 16, 100, { ...TILE, strideLines: 40 }, 64);
    expect(positions(collected.tiles)).toEqual([
      [0, 0],
      [40, 0],
      [80, 0],
      [84, 0],
    ]);
  });

  it('a scan shorter than a span and a detector narrower than one: one zero-padded tile', async () => {
    const { st, collected, scene } = await scan(impl, 12, 10, TILE, 4);
    expect(collected.tiles.map((t) => t.info)).toEqual([{ slot: 0, line: 0, pixel: 0, lines: 10, pixels: 12 }]);
    const data = collected.tiles[0].data;
    const size = 8;
    for (let e = 0; e < 2; e++) {
      for (let h = 0; h < size; h++) {
        for (let w = 0; w < size; w++) {
          const v = data[(e * size + h) * size + w];
          if (w >= 5 || h >= 6) expect(v).toBe(0); // lines >= 10 or pixels >= 12
        }
      }
    }
    expect(data[(0 * size + 2) * size + 3]).toBeGreaterThan(1); // inside the rectangle (lines 6-7, pixels 4-5)
    const planes = processedPlanes(st, scene.lines, gapLines(collected.results));
    expect(mismatches(data, oracleTile(planes, collected.tiles[0].info, scene.lines, st))).toEqual([]);
  });

  it('gap lines count as 0 in tiles', async () => {
    const { st, collected, scene } = await scan(impl, 40, 120, TILE, 8, [[50, 70]]);
    const gaps = gapLines(collected.results);
    expect(gaps.has(55)).toBe(true);
    const planes = processedPlanes(st, scene.lines, gaps);
    const inGap = collected.tiles.find((t) => t.info.line === 48 && t.info.pixel === 12)!;
    expect(mismatches(inGap.data, oracleTile(planes, inGap.info, scene.lines, st))).toEqual([]);
    // Output columns w = 1..10 of that tile cover lines 50..69 only: all zero.
    expect(inGap.data[3 * 8 + 5]).toBe(0);
  });

  it('a column is emitted as soon as line + span <= frontier', async () => {
    const scene = makeScene({ pixels: 16, energies: 1, lines: 60, seed: 4, rects: [] });
    const st = createStitcher({ pixels: 16, energies: 1, airLines: 4, tile: TILE, maxLines: 100 }, stitcherOf(impl));
    const buffers = buffersFor(st, 16);
    st.push(1, 0, 23, slice(scene, 0, 23));
    let r = await pump(st, buffers, newCollected());
    expect(r.tiles.map((t) => t.line)).toEqual([0]); // 8 + 16 = 24 > 23
    st.push(1, 23, 1, slice(scene, 23, 1));
    r = await pump(st, buffers, newCollected());
    expect(r.tiles.map((t) => t.line)).toEqual([8]);
  });
});
