/**
 * Goods suggestions of one scan: tile class probabilities aggregated into segments along the vehicle, each with
 * its top-3 categories, updated as tiles arrive and finalised at scan end.
 *
 * Method: within one column (tiles with the same first line), only the tiles the model sees as cargo (probability
 * mass on labels with `cargo !== false` at least one half) count: the air above a low trailer and the chassis below
 * the load do not dilute the goods, whatever the vehicle's height. A column with at least one such tile is cargo;
 * its category distribution is the cargo part of those tiles, summed and renormalised (each tile weighted by its
 * cargo mass). Neighbouring cargo columns with the same top-1 category form a segment whose distribution is the
 * mean of its columns. A segment is suggested when its top-1 probability reaches the model's `suggest`
 * threshold. Each column speaks for the lines around its centre (one stride wide), so segments tile the scan.
 */
import type { ModelLabel } from '../inference/index.js';
import type { RankedCategory, SuggestionSegment } from '../protocol/index.js';

/** Cargo tiles a column needs to be suggested as an empty cargo bay (see cargoDistribution). */
export const EMPTY_BAY_MIN_TILES = 2;

export interface GoodsTile {
  /** First raw line and pixel of the tile and how many it covers. */
  line: number;
  lines: number;
  pixel: number;
  pixels: number;
  /** Softmax probabilities over the model's labels. */
  probabilities: Float32Array;
}

interface Column {
  line: number;
  lines: number;
  /** Tiles of the column seen as cargo. */
  cargoTiles: number;
  /** Probability sums over the cargo tiles. */
  sums: Float64Array;
}

export class GoodsSuggestions {
  private readonly columns = new Map<number, Column>();
  private readonly cargoIndex: number[];
  private final = false;

  constructor(
    private readonly labels: readonly ModelLabel[],
    private readonly strideLines: number,
    private readonly suggestThreshold: number,
    /** No probability in a segment exceeds this (the model's calibration.maxProbability). */
    private readonly maxProbability = 1,
    /**
     * Maps a segment's top-1 probability (the mean of its columns) to the confidence shown and sent (the model's
     * calibration.segment); the suggest threshold applies before it. Identity when absent.
     */
    private readonly calibrateSegment: (p: number) => number = (p) => p,
  ) {
    this.cargoIndex = labels.map((l, i) => (l.cargo === false ? -1 : i)).filter((i) => i >= 0);
  }

  add(tile: GoodsTile): void {
    let c = this.columns.get(tile.line);
    if (!c) {
      c = { line: tile.line, lines: tile.lines, cargoTiles: 0, sums: new Float64Array(this.labels.length) };
      this.columns.set(tile.line, c);
    }
    let cargoMass = 0;
    for (const i of this.cargoIndex) cargoMass += tile.probabilities[i];
    if (cargoMass < 0.5) return;
    c.cargoTiles++;
    for (let i = 0; i < this.labels.length; i++) c.sums[i] += tile.probabilities[i];
  }

  finish(): void {
    this.final = true;
  }

  /** Lines of cargo the last segments() call withheld for being below the suggest threshold (uncertain goods). */
  withheldLines = 0;

  /** Current segments, ordered along the vehicle; only those reaching the suggest threshold. */
  segments(): SuggestionSegment[] {
    const ordered = [...this.columns.values()].sort((a, b) => a.line - b.line);
    const out: SuggestionSegment[] = [];
    let withheld = 0;
    let run: { first: number; dists: Float64Array[]; start: number; end: number; top: number } | null = null;
    const close = (): void => {
      if (!run) return;
      const mean = new Float64Array(this.labels.length);
      for (const d of run.dists) for (let i = 0; i < mean.length; i++) mean[i] += d[i] / run.dists.length;
      const top = argmax(mean);
      if (this.labels[top].cargo !== false && mean[top] >= this.suggestThreshold) {
        // The calibrated top-1 replaces the column mean; the others keep their shares of the rest.
        const p = this.calibrateSegment(mean[top]);
        const rest = 1 - mean[top];
        const scale = rest > 0 ? (1 - p) / rest : 0;
        // No other label may pass the top one when calibration lowers it: the suggested label is the one that passed.
        for (let i = 0; i < mean.length; i++) mean[i] = i === top ? p : Math.min(p, mean[i] * scale);
        const top3 = this.rank(mean);
        out.push({ id: `g${run.first}`, startLine: run.start, endLine: run.end, top3, confidence: top3[0].probability, final: this.final });
      } else {
        withheld += run.end - run.start;
      }
      run = null;
    };
    ordered.forEach((c, index) => {
      const dist = this.cargoDistribution(c);
      const centre = c.line + c.lines / 2;
      const start = Math.max(0, Math.round(centre - this.strideLines / 2));
      const end = Math.round(centre + this.strideLines / 2);
      if (!dist) {
        close();
        return;
      }
      const top = argmax(dist);
      if (run && run.top === top && start <= run.end + 1) {
        run.dists.push(dist);
        run.end = end;
      } else {
        close();
        run = { first: index, dists: [dist], start, end, top };
      }
    });
    close();
    this.withheldLines = withheld;
    return out;
  }

  /**
   * Cargo distribution of a column, or null when no tile of it is cargo. A column whose cargo says "empty cargo bay"
   * (top-1 a cargo label without HS codes) needs EMPTY_BAY_MIN_TILES cargo tiles: an empty bay fills most of the
   * detector's height, while one hollow tile amid vehicle structure is a part of the vehicle (the demo goods model
   * reads the tractor cab's cabin as an empty bay, 0.75, on every truck).
   */
  private cargoDistribution(c: Column): Float64Array | null {
    if (c.cargoTiles === 0) return null;
    let cargoMass = 0;
    for (const i of this.cargoIndex) cargoMass += c.sums[i];
    const d = new Float64Array(this.labels.length);
    for (const i of this.cargoIndex) d[i] = c.sums[i] / cargoMass;
    if (c.cargoTiles < EMPTY_BAY_MIN_TILES && this.labels[argmax(d)].hsCodes.length === 0) return null;
    return d;
  }

  private rank(dist: Float64Array): RankedCategory[] {
    return [...dist.keys()]
      .filter((i) => this.labels[i].cargo !== false)
      .sort((a, b) => dist[b] - dist[a])
      .slice(0, 3)
      .map((i) => ({
        label: this.labels[i].id,
        name: this.labels[i].name,
        hsCodes: [...this.labels[i].hsCodes],
        probability: round4(Math.min(this.maxProbability, dist[i])),
      }));
  }
}

function argmax(a: Float64Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/** Softmax of one row of logits into `out`. */
export function softmaxInto(logits: Float32Array, out: Float32Array): Float32Array {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += out[i] = Math.exp(logits[i] - max);
  for (let i = 0; i < logits.length; i++) out[i] /= sum;
  return out;
}
