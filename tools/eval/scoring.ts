/**
 * Scoring of one scan's machine results against its ground truth. Pure functions and one small tracker; no I/O.
 *
 * Definitions (also in `scanline help`):
 * - Goods top-1, per tile position: every tile the stitcher produced (tile-grid.ts) is labelled with the training
 *   labeler (tools/dataset/labels.ts TileLabeler). Tiles whose label is a goods category (cargo: not 'empty',
 *   'vehicle' or 'air') are scored: correct when the final suggestion segment covering the tile's centre line
 *   has that category as top-1; no segment there counts as wrong.
 * - Threats: a truth threat (line x pixel box, tools/simulator/truth.ts) is found when any threat alert's box
 *   overlaps it (any kind; `foundAsKind` also asks for the same kind); an alert overlapping no truth threat is a
 *   false alarm.
 * - Suggestions off the cargo: a final suggestion segment none of whose tiles (centre line inside it) is labelled
 *   cargo (a goods category or 'empty', i.e. an empty cargo bay): it sits on the cab, the chassis or air. Each is
 *   one suggestion an officer has to dismiss.
 * - First correct suggestion, per truth cargo segment (goods, not 'empty'): from the client time its first line's
 *   slice was sent to the first polled report showing a segment that overlaps it with the right top-1; in lines,
 *   the report's received lines at that moment minus the segment's first line.
 */
import { GOODS_LABELS, NON_CARGO_LABELS, type TileLabeler } from '../dataset/index.js';
import type { ScanBox, SuggestionSegment, ThreatAlert } from '../../src/protocol/index.js';
import type { CargoSegmentLabel, ThreatLabel } from '../simulator/index.js';
import type { GridTile } from './tile-grid.js';

/** Goods categories goodsTop1 is measured on: the goods model's labels less 'empty', 'vehicle' and 'air'. */
export const SCORED_GOODS: readonly string[] = Object.freeze(GOODS_LABELS.filter((l) => l !== 'empty' && !NON_CARGO_LABELS.includes(l)));

/** Top-1 label of a segment, or 'none' where no segment covers a tile. */
export const NO_SUGGESTION = 'none';

export interface GoodsCategoryScore {
  /** Scored tiles whose truth label is this category. */
  tiles: number;
  correct: number;
  /** What the covering segment said (top-1 label, or 'none'), tiles. */
  predicted: Record<string, number>;
}

/** Scores every goods tile of a scan against the final segments; categories without tiles are left out. */
export function scoreGoodsTiles(
  labeler: Pick<TileLabeler, 'goods'>,
  grid: readonly GridTile[],
  segments: readonly SuggestionSegment[],
): Record<string, GoodsCategoryScore> {
  const out: Record<string, GoodsCategoryScore> = {};
  for (const tile of grid) {
    const truth = GOODS_LABELS[labeler.goods(tile).label];
    if (!SCORED_GOODS.includes(truth)) continue;
    const centre = tile.line + tile.lines / 2;
    const segment = segments.find((s) => s.startLine <= centre && centre < s.endLine);
    const said = segment?.top3[0]?.label ?? NO_SUGGESTION;
    const score = (out[truth] ??= { tiles: 0, correct: 0, predicted: {} });
    score.tiles++;
    if (said === truth) score.correct++;
    score.predicted[said] = (score.predicted[said] ?? 0) + 1;
  }
  return out;
}

/**
 * For goods calibration (ECE): per scored goods tile covered by a final segment, the segment's confidence and
 * whether its top-1 is the tile's category. Tiles no segment covers are left out (they were not claimed).
 */
export function goodsConfidencePairs(
  labeler: Pick<TileLabeler, 'goods'>,
  grid: readonly GridTile[],
  segments: readonly SuggestionSegment[],
): Array<[number, boolean]> {
  const out: Array<[number, boolean]> = [];
  for (const tile of grid) {
    const truth = GOODS_LABELS[labeler.goods(tile).label];
    if (!SCORED_GOODS.includes(truth)) continue;
    const centre = tile.line + tile.lines / 2;
    const segment = segments.find((s) => s.startLine <= centre && centre < s.endLine);
    if (!segment?.top3[0]) continue;
    out.push([segment.confidence, segment.top3[0].label === truth]);
  }
  return out;
}

export interface SuggestionPlacement {
  /** Final suggestion segments of the scan. */
  segments: number;
  /** Segments over no cargo tile: their top-1 label and length in lines. */
  offCargo: Array<{ label: string; lines: number }>;
}

/** Which suggestion segments lie over no cargo (see the definitions above). */
export function scoreSuggestionPlacement(
  labeler: Pick<TileLabeler, 'goods'>,
  grid: readonly GridTile[],
  segments: readonly SuggestionSegment[],
): SuggestionPlacement {
  const cargoCentres: number[] = [];
  for (const tile of grid) {
    const truth = GOODS_LABELS[labeler.goods(tile).label];
    if (!NON_CARGO_LABELS.includes(truth)) cargoCentres.push(tile.line + tile.lines / 2);
  }
  const offCargo = segments
    .filter((seg) => !cargoCentres.some((c) => seg.startLine <= c && c < seg.endLine))
    .map((seg) => ({ label: seg.top3[0]?.label ?? NO_SUGGESTION, lines: seg.endLine - seg.startLine }));
  return { segments: segments.length, offCargo };
}

/** Half-open boxes [lineStart, lineEnd) x [pixelStart, pixelEnd) share at least one sample. */
export function boxesOverlap(a: ScanBox, b: ScanBox): boolean {
  return a.lineStart < b.lineEnd && b.lineStart < a.lineEnd && a.pixelStart < b.pixelEnd && b.pixelStart < a.pixelEnd;
}

export interface ThreatScore {
  /** `concealment`: how the simulator hid it (ThreatTruth.concealment), where the caller knows it. */
  truth: Array<{ kind: string; found: boolean; foundAsKind: boolean; concealment?: string }>;
  alerts: Array<{ category: string; falseAlarm: boolean; probability: number }>;
}

/** `concealments[i]` (optional) is how truth threat i was hidden, carried into its score. */
export function scoreThreats(
  truth: readonly ThreatLabel[],
  alerts: readonly Pick<ThreatAlert, 'category' | 'box' | 'probability'>[],
  concealments?: readonly string[],
): ThreatScore {
  return {
    truth: truth.map((t, i) => {
      const hits = alerts.filter((a) => boxesOverlap(a.box, t));
      const how = concealments?.[i];
      return { kind: t.kind, found: hits.length > 0, foundAsKind: hits.some((a) => a.category === t.kind), ...(how !== undefined ? { concealment: how } : {}) };
    }),
    alerts: alerts.map((a) => ({ category: a.category, falseAlarm: !truth.some((t) => boxesOverlap(a.box, t)), probability: a.probability })),
  };
}

export interface FirstSuggestion {
  category: string;
  startLine: number;
  endLine: number;
  /** Slice with the segment's first line sent -> first report with a correct overlapping segment; null: never. */
  ms: number | null;
  /** Report lines at that moment minus startLine; null: never. */
  lines: number | null;
}

/**
 * Times each truth goods segment's first correct suggestion. Feed it every image slice as it is sent (first send
 * only) and every report as it is polled, in time order. Lifetime: one scan; single-threaded (event loop).
 */
export class FirstSuggestionTracker {
  readonly #segments: FirstSuggestion[];
  readonly #linesPerSlice: number;
  /** performance.now() of each image slice's first send, NaN until sent; slice k holds lines [k * lps, ...). */
  readonly #sentAt: Float64Array;

  constructor(cargo: readonly CargoSegmentLabel[], totalLines: number, linesPerSlice: number) {
    this.#segments = cargo
      .filter((c) => c.category !== 'empty' && c.endLine > c.startLine)
      .map((c) => ({ category: c.category, startLine: c.startLine, endLine: c.endLine, ms: null, lines: null }));
    this.#linesPerSlice = linesPerSlice;
    this.#sentAt = new Float64Array(Math.ceil(totalLines / linesPerSlice)).fill(NaN);
  }

  /** An image slice starting at `firstLine` was sent at `at` (performance.now()); later sends are ignored. */
  sliceSent(firstLine: number, at: number): void {
    const k = Math.floor(firstLine / this.#linesPerSlice);
    if (k < this.#sentAt.length && Number.isNaN(this.#sentAt[k])) this.#sentAt[k] = at;
  }

  /** A report polled at `at` (performance.now() when it arrived). */
  observe(report: { lines: number; goods: { segments: readonly SuggestionSegment[] } }, at: number): void {
    for (const s of this.#segments) {
      if (s.ms !== null) continue;
      const sent = this.#sentAt[Math.floor(s.startLine / this.#linesPerSlice)];
      if (Number.isNaN(sent)) continue;
      const shown = report.goods.segments.some((g) => g.startLine < s.endLine && s.startLine < g.endLine && g.top3[0]?.label === s.category);
      if (!shown) continue;
      s.ms = Math.max(0, at - sent);
      s.lines = report.lines - s.startLine;
    }
  }

  results(): FirstSuggestion[] {
    return this.#segments.map((s) => ({ ...s }));
  }
}
