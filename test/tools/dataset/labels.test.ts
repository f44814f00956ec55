import { describe, expect, it } from 'vitest';
import { GOODS_LABELS, GOODS_LABEL_RULES, THREAT_LABELS, TileLabeler, goodsLabelFromCounts, isCargoLabel } from '../../../tools/dataset/index.js';
import { CARGO_CATEGORIES } from '../../../tools/simulator/cargo.js';
import { createDetector } from '../../../tools/simulator/detector.js';
import { generateTruck, lineAt } from '../../../tools/simulator/scene.js';
import { THREAT_KINDS } from '../../../tools/simulator/threats.js';
import type { ThreatLabel } from '../../../tools/simulator/truth.js';

const idx = (l: (typeof GOODS_LABELS)[number]): number => GOODS_LABELS.indexOf(l);

function counts(shares: Partial<Record<(typeof GOODS_LABELS)[number], number>>): Float64Array {
  const c = new Float64Array(GOODS_LABELS.length);
  for (const [k, v] of Object.entries(shares)) c[idx(k as (typeof GOODS_LABELS)[number])] = v * 1000;
  return c;
}

describe('goods labels', () => {
  it('are the cargo categories in simulator order, then vehicle and air; threats are the threat kinds', () => {
    expect(GOODS_LABELS.slice(0, CARGO_CATEGORIES.length)).toEqual([...CARGO_CATEGORIES]);
    expect(GOODS_LABELS.slice(CARGO_CATEGORIES.length)).toEqual(['vehicle', 'air']);
    expect(THREAT_LABELS).toEqual([...THREAT_KINDS]);
    expect(isCargoLabel('empty')).toBe(true);
    expect(isCargoLabel('timber')).toBe(true);
    expect(isCargoLabel('vehicle')).toBe(false);
    expect(isCargoLabel('air')).toBe(false);
  });

  it('take the largest goods category from goodsMinShare on, then empty bay, then vehicle, then air', () => {
    const g = GOODS_LABEL_RULES.goodsMinShare;
    expect(goodsLabelFromCounts(counts({ timber: g + 0.01, paper: g, vehicle: 1 - 2 * g - 0.01 }))).toEqual({ label: idx('timber'), share: g + 0.01 });
    // Goods below the share, but goods + empty bay make the bay share.
    const e = GOODS_LABEL_RULES.emptyMinShare;
    expect(goodsLabelFromCounts(counts({ timber: g - 0.05, empty: e - g + 0.05, air: 1 - e })).label).toBe(idx('empty'));
    expect(goodsLabelFromCounts(counts({ empty: e - 0.1, vehicle: 0.2, air: 1 - e - 0.1 })).label).toBe(idx('vehicle'));
    expect(goodsLabelFromCounts(counts({ vehicle: GOODS_LABEL_RULES.vehicleMinShare / 2, air: 1 - GOODS_LABEL_RULES.vehicleMinShare / 2 })).label).toBe(
      idx('air'),
    );
  });
});

describe('TileLabeler', () => {
  const det = createDetector({ pixels: 256 });
  const scene = generateTruck(3, det, { categories: ['timber'], threats: [] });
  const geometry = { size: 64, downsample: 4 };

  it('marks the threat cells a box overlaps, in [kind][h][w] order, and nothing else', () => {
    const box: ThreatLabel = { kind: 'explosive', variant: 'test', lineStart: 1000 + 20, lineEnd: 1000 + 50, pixelStart: 33, pixelEnd: 48 };
    const labeler = new TileLabeler(scene, det, [box], geometry);
    expect(labeler.grid).toBe(16);
    const out = new Uint8Array(labeler.threatCells);
    const n = labeler.threats({ line: 1000, pixel: 0 }, out);
    // Cells are 16 raw lines x 16 raw pixels: lines 20..50 -> w 1..3, pixels 33..48 -> h 2.
    const k = THREAT_LABELS.indexOf('explosive');
    const on: Array<[number, number, number]> = [];
    out.forEach((v, i) => {
      if (v) on.push([Math.floor(i / 256), Math.floor((i % 256) / 16), i % 16]);
    });
    expect(on).toEqual([
      [k, 2, 1],
      [k, 2, 2],
      [k, 2, 3],
    ]);
    expect(n).toBe(3);
    // A tile that does not reach the box has no positive cell.
    expect(labeler.threats({ line: 1000 + 256, pixel: 0 }, out)).toBe(0);
    expect(out.every((v) => v === 0)).toBe(true);
  });

  it('labels a tile over the loaded bay with its goods and a tile before the vehicle as air', () => {
    const labeler = new TileLabeler(scene, det, [], geometry);
    const seg = scene.cargo[0];
    const mid = Math.round((lineAt(scene, seg.x0) + lineAt(scene, seg.x1)) / 2) - 128;
    const tile = labeler.goods({ line: mid, pixel: 0 });
    expect(GOODS_LABELS[tile.label]).toBe('timber');
    expect(tile.share).toBeGreaterThanOrEqual(GOODS_LABEL_RULES.goodsMinShare);
    // Lines before the vehicle: beyond the leading air there is nothing, and tiles past the scan end are padding.
    expect(GOODS_LABELS[labeler.goods({ line: -300, pixel: 0 }).label]).toBe('air');
    expect(GOODS_LABELS[labeler.goods({ line: scene.totalLines + 10, pixel: 0 }).label]).toBe('air');
  });
});
