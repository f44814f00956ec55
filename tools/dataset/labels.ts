/**
 * Ground-truth labels of stitched tiles, from the simulator's scene: one goods label per tile and a K x G x G grid of
 * threat cells. The same functions label the training export (`scanline dataset`) and any later evaluation, so a
 * tile means the same thing to the trainer and to the evaluator.
 *
 * Geometry: a tile covers raw lines [line, line + span) along the scan and raw detector pixels
 * [pixel, pixel + span) down the column, span = size * downsample (a tile past the end of the scan or the detector is
 * zero-padded by the stitcher: the padding counts as air). Tile sample (h, w) is the block average of raw pixels
 * pixel + h * downsample .. and raw lines line + w * downsample ..; threat cell (h, w) covers `cellSamples` x
 * `cellSamples` samples, i.e. raw lines line + w * cellSpan .. and raw pixels pixel + h * cellSpan ..
 * with cellSpan = cellSamples * downsample.
 *
 * Goods label: every raw (line, pixel) sample of the scan is classed once (`SceneRaster`) by where its centre falls:
 * inside a cargo segment's goods (the segment's category), else inside the cargo bay ('empty': an empty bay, or the
 * unloaded part of a loaded one), else inside the bounding box of a vehicle part ('vehicle': cab, engine, chassis,
 * wheels, body walls), else 'air'. A tile then takes, in this order:
 *   the goods category covering the largest share of it, if that share is >= GOODS_LABEL_RULES.goodsMinShare;
 *   else 'empty' if empty bay and goods together cover >= emptyMinShare;
 *   else 'vehicle' if vehicle parts cover >= vehicleMinShare;
 *   else 'air'.
 */
import {
  CARGO_CATEGORIES,
  THREAT_KINDS,
  lineAt,
  type CargoCategory,
  type Detector,
  type Scene,
  type ThreatKind,
  type ThreatLabel,
} from '../simulator/index.js';

/** Goods model labels, in output order: the simulator's cargo categories, then the two non-cargo classes. */
export const GOODS_LABELS = Object.freeze([...CARGO_CATEGORIES, 'vehicle', 'air'] as const);
export type GoodsLabel = (typeof GOODS_LABELS)[number];

/** Threat model labels, in output (heatmap channel) order: the simulator's threat kinds. */
export const THREAT_LABELS: readonly ThreatKind[] = THREAT_KINDS;

/** Labels that are not goods: never a suggestion, not counted as cargo. */
export const NON_CARGO_LABELS: readonly GoodsLabel[] = Object.freeze(['vehicle', 'air'] as const);

export const GOODS_LABEL_RULES = Object.freeze({
  goodsMinShare: 0.25, // of the tile area: the largest goods category wins from this share on
  emptyMinShare: 0.5, // of the tile area: cargo bay (goods + empty space) for 'empty'
  vehicleMinShare: 0.05, // of the tile area: vehicle parts for 'vehicle'
});

/** Threat heatmap cells per tile edge are tile.size / THREAT_CELL_SAMPLES. */
export const THREAT_CELL_SAMPLES = 4; // tile samples per cell edge

const AIR = GOODS_LABELS.indexOf('air');
const VEHICLE = GOODS_LABELS.indexOf('vehicle');
const EMPTY = GOODS_LABELS.indexOf('empty');
const GOODS_COUNT = CARGO_CATEGORIES.length; // label indices below this are cargo categories

/** Where a tile lies in the scan, raw lines and pixels (a TileInfo is one). */
export interface TilePlacement {
  line: number;
  pixel: number;
}

export interface TileGeometry {
  /** Tile edge in samples. */
  size: number;
  /** Raw lines and pixels per sample edge. */
  downsample: number;
}

export interface GoodsTileLabel {
  /** Index into GOODS_LABELS. */
  label: number;
  /** Share of the tile area covered by what the label names (goods of the category, bay, vehicle, air). */
  share: number;
}

/**
 * Every raw (line, pixel) sample of a scene classed as a GOODS_LABELS index. Lifetime: one scan; holds
 * totalLines * pixels bytes.
 */
export class SceneRaster {
  readonly lines: number;
  readonly pixels: number;
  /** Class per sample, [line * pixels + pixel]. */
  readonly classes: Uint8Array;

  constructor(scene: Scene, detector: Pick<Detector, 'pixels' | 'pitchMm' | 'topMm'>) {
    this.lines = scene.totalLines;
    this.pixels = detector.pixels;
    this.classes = new Uint8Array(this.lines * this.pixels).fill(AIR);
    for (const p of scene.primitives) if (p.tag === 'vehicle') this.#paint(scene, detector, p, VEHICLE);
    if (scene.cargoBay) this.#paint(scene, detector, scene.cargoBay, EMPTY);
    for (const c of scene.cargo) {
      if (c.category !== 'empty') this.#paint(scene, detector, c, CARGO_CATEGORIES.indexOf(c.category));
    }
  }

  /** Classes the samples whose centre lies in [x0, x1) x [y0, y1) (mm, side view). */
  #paint(scene: Scene, detector: Pick<Detector, 'pitchMm' | 'topMm'>, r: { x0: number; x1: number; y0: number; y1: number }, cls: number): void {
    // Line l samples x at its centre: l + 0.5 = lineAt(x); pixel p samples y = topMm - (p + 0.5) * pitch.
    const l0 = Math.max(0, Math.ceil(lineAt(scene, r.x0) - 0.5));
    const l1 = Math.min(this.lines, Math.ceil(lineAt(scene, r.x1) - 0.5));
    const p0 = Math.max(0, Math.floor((detector.topMm - r.y1) / detector.pitchMm - 0.5) + 1);
    const p1 = Math.min(this.pixels, Math.floor((detector.topMm - r.y0) / detector.pitchMm - 0.5) + 1);
    if (l1 <= l0 || p1 <= p0) return;
    for (let l = l0; l < l1; l++) this.classes.fill(cls, l * this.pixels + p0, l * this.pixels + p1);
  }

  /** Samples per GOODS_LABELS index over a span x span window at (line, pixel); outside the scan counts as air. */
  countWindow(line: number, pixel: number, span: number, counts: Float64Array): void {
    counts.fill(0);
    const l1 = Math.min(this.lines, line + span);
    const p0 = Math.max(0, pixel);
    const p1 = Math.min(this.pixels, pixel + span);
    const n = this.pixels;
    let inside = 0;
    for (let l = Math.max(0, line); l < l1; l++) {
      const row = l * n;
      for (let p = p0; p < p1; p++) counts[this.classes[row + p]]++;
      inside += p1 - p0;
    }
    counts[AIR] += span * span - inside;
  }
}

/** The goods label of a tile from the per-class sample counts of its window (see the rules above). */
export function goodsLabelFromCounts(counts: Float64Array): GoodsTileLabel {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i];
  let best = -1;
  let bestCount = -1;
  let goods = 0;
  for (let i = 0; i < GOODS_COUNT; i++) {
    if (i === EMPTY) continue;
    goods += counts[i];
    if (counts[i] > bestCount) {
      best = i;
      bestCount = counts[i];
    }
  }
  const r = GOODS_LABEL_RULES;
  if (bestCount / total >= r.goodsMinShare) return { label: best, share: bestCount / total };
  const bay = (goods + counts[EMPTY]) / total;
  if (bay >= r.emptyMinShare) return { label: EMPTY, share: bay };
  if (counts[VEHICLE] / total >= r.vehicleMinShare) return { label: VEHICLE, share: counts[VEHICLE] / total };
  return { label: AIR, share: counts[AIR] / total };
}

/**
 * Labels the tiles of one scan. Lifetime: one scan (it holds the scene raster). Not thread-safe: keep one per scan
 * and thread.
 */
export class TileLabeler {
  readonly geometry: Readonly<TileGeometry>;
  /** Threat cells per tile edge. */
  readonly grid: number;
  readonly #raster: SceneRaster;
  readonly #threats: readonly ThreatLabel[];
  readonly #counts = new Float64Array(GOODS_LABELS.length);

  /** `threats` are the scan's truth boxes (truthLabels(scene, detector).threats). */
  constructor(scene: Scene, detector: Pick<Detector, 'pixels' | 'pitchMm' | 'topMm'>, threats: readonly ThreatLabel[], geometry: TileGeometry) {
    if (geometry.size % THREAT_CELL_SAMPLES !== 0) {
      throw new RangeError(`Expected a tile size divisible by ${THREAT_CELL_SAMPLES} but received ${geometry.size}`);
    }
    this.geometry = Object.freeze({ size: geometry.size, downsample: geometry.downsample });
    this.grid = geometry.size / THREAT_CELL_SAMPLES;
    this.#raster = new SceneRaster(scene, detector);
    this.#threats = threats;
  }

  /** Bytes per tile of the threat target: labels x grid x grid. */
  get threatCells(): number {
    return THREAT_LABELS.length * this.grid * this.grid;
  }

  goods(tile: TilePlacement): GoodsTileLabel {
    const span = this.geometry.size * this.geometry.downsample;
    this.#raster.countWindow(tile.line, tile.pixel, span, this.#counts);
    return goodsLabelFromCounts(this.#counts);
  }

  /**
   * Writes the tile's threat target into out[offset .. offset + threatCells): [kind][h][w], 1 where the cell
   * overlaps a threat box of that kind, else 0. Returns the number of positive cells.
   */
  threats(tile: TilePlacement, out: Uint8Array, offset = 0): number {
    const g = this.grid;
    const cell = THREAT_CELL_SAMPLES * this.geometry.downsample;
    out.fill(0, offset, offset + this.threatCells);
    let positive = 0;
    for (const t of this.#threats) {
      const k = THREAT_LABELS.indexOf(t.kind);
      // Cells w with [line + w*cell, line + (w+1)*cell) overlapping [lineStart, lineEnd), likewise h for pixels.
      const w0 = Math.max(0, Math.floor((t.lineStart - tile.line) / cell));
      const w1 = Math.min(g, Math.ceil((t.lineEnd - tile.line) / cell));
      const h0 = Math.max(0, Math.floor((t.pixelStart - tile.pixel) / cell));
      const h1 = Math.min(g, Math.ceil((t.pixelEnd - tile.pixel) / cell));
      for (let h = h0; h < h1; h++) {
        for (let w = w0; w < w1; w++) {
          const at = offset + (k * g + h) * g + w;
          if (out[at] === 0) positive++;
          out[at] = 1;
        }
      }
    }
    return positive;
  }
}

/** True for goods label ids that name cargo (the cargo categories, 'empty' included). */
export function isCargoLabel(label: GoodsLabel | CargoCategory): boolean {
  return !NON_CARGO_LABELS.includes(label as GoodsLabel);
}
