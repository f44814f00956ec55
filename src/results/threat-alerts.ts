/**
 * Threat alerts of one scan from per-tile heatmaps, by the rule the demo thresholds were tuned for
 * (models/README.md "Alert rule"; models/train/common.py scan_cell_maps / scan_alerts):
 *
 * - Cell probabilities of every scored tile go onto one scan-wide cell grid (cells of `span` raw lines x `span` raw
 *   pixels, span = tile lines / grid width); where tiles overlap, the maximum wins. Probabilities therefore only
 *   grow as tiles arrive.
 * - A cell is positive when at least one label reaches its threshold.
 * - An alert is an 8-connected group of positive cells; its category is the label that exceeds its threshold by the
 *   largest ratio anywhere in the group; its probability is that label's highest cell probability in the group.
 *
 * Alerts are raised as soon as a tile is scored. Because the grid only grows, groups only grow or join: a box is
 * never withdrawn here (a scan out of distribution shows them as hints instead: ScanResults); when a new cell
 * bridges two alerts they become one (the older id stays, and the update names the ids it absorbed in `merged`, so
 * a screen can drop them). Each tile update re-labels only the groups touching the cells it changed.
 *
 * Tiles come as heatmap logits and the grid keeps logits. A cell's probability is probabilityOf(logit), the sigmoid
 * rounded to float32 (as probabilities were kept before, so alerts are the same); it is non-decreasing in the logit,
 * so "the maximum wins" and "reaches its threshold" (logit >= logitThreshold(threshold), exact) need no exp, and
 * probabilities are computed only for positive cells. Why: a sigmoid per heatmap cell was a visible share of the
 * event loop at 32 portals (bench/RESULTS.md, 'Threat alerts on logits').
 */
import type { ModelLabel } from '../inference/index.js';
import type { ScanBox, ThreatAlert } from '../protocol/index.js';

export interface ThreatTile {
  line: number;
  lines: number;
  pixel: number;
  pixels: number;
  /** Heatmap logits [labels][gridH][gridW], detector direction first (read during add() only). */
  logits: Float32Array;
  gridH: number;
  gridW: number;
}

interface Group {
  alert: ThreatAlert;
  /** Cell indices (column-major: col * rows + row). */
  cells: number[];
}

/** A cell's probability from its logit: the sigmoid, rounded to float32. Non-decreasing in the logit. */
export function probabilityOf(logit: number): number {
  return Math.fround(1 / (1 + Math.exp(-logit)));
}

/** Scratch for moving between float32 values and their bits (JS thread only). */
const float32Bits = new DataView(new ArrayBuffer(4));

/** Order-preserving integer key of a number rounded to float32 (for searching the float32 numbers in order). */
function keyOfFloat32(value: number): number {
  float32Bits.setFloat32(0, value);
  const bits = float32Bits.getUint32(0);
  return bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
}

/** The float32 value of a keyOfFloat32 key. */
function float32OfKey(key: number): number {
  float32Bits.setUint32(0, key & 0x80000000 ? key & 0x7fffffff : ~key >>> 0);
  return float32Bits.getFloat32(0);
}

/**
 * The smallest float32 logit whose probabilityOf reaches `threshold`: for every float32 logit l,
 * probabilityOf(l) >= threshold exactly when l >= logitThreshold(threshold). -Infinity for thresholds <= 0 (every
 * cell reaches them); NaN for thresholds above 1, NaN or missing (Infinity), which no logit reaches: not +Infinity,
 * since a +Infinity logit (an fp16 overflow) would reach that, where its probability 1 does not reach the threshold.
 */
export function logitThreshold(threshold: number): number {
  let logit = logitThresholds.get(threshold);
  if (logit === undefined) {
    logit = searchLogitThreshold(threshold);
    // A model has a handful of thresholds; every scan asks again.
    if (logitThresholds.size < 1024) logitThresholds.set(threshold, logit);
  }
  return logit;
}

const logitThresholds = new Map<number, number>();

function searchLogitThreshold(threshold: number): number {
  if (!(threshold <= 1)) return Number.NaN;
  if (threshold <= 0) return -Infinity;
  // probabilityOf(-200) is 0 < threshold and probabilityOf(200) is 1 >= threshold: bisect the float32s between.
  let below = keyOfFloat32(-200);
  let reaches = keyOfFloat32(200);
  while (reaches - below > 1) {
    const mid = below + Math.floor((reaches - below) / 2);
    if (probabilityOf(float32OfKey(mid)) >= threshold) reaches = mid;
    else below = mid;
  }
  return float32OfKey(reaches);
}

export class ThreatAlerts {
  /** Cell grid rows (detector direction). */
  private readonly rows: number;
  /** Per label, columns of `rows` logits (the maximum seen; -Infinity before any tile); columns grow with the scan. */
  private readonly grid: Float32Array[][];
  /** Group id per cell (-1 none), column-major like the grid. */
  private owner: Int32Array = new Int32Array(0);
  private readonly groups = new Map<number, Group>();
  private readonly thresholds: number[];
  /** logitThreshold of each label's threshold. */
  private readonly logitThresholds: number[];
  /** Scratch of add(), per column of a tile: each cell's logit per label before the tile ([label][row]). */
  private previous = new Float32Array(0);
  /** Scratch of add(), per column of a tile: 1 where a cell's logit grew for some label. */
  private grew = new Uint8Array(0);
  private counter = 0;
  /** Highest logit seen per label anywhere in the scan. */
  private readonly peakLogits: Float32Array;

  /**
   * @param thresholds per label id; a label without one raises no alerts.
   * @param pixels detector pixels of the scan (grid rows = ceil(pixels / span)).
   * @param span raw lines (and pixels) per heatmap cell: tile size x downsample / heatmap width.
   */
  constructor(
    private readonly labels: readonly ModelLabel[],
    thresholds: Readonly<Record<string, number>>,
    private readonly pixels: number,
    private readonly span: number,
    /**
     * Maps an alert's peak cell probability to the probability it shows and sends (the model's calibration,
     * src/opinion/calibration.ts); identity when absent. Which cells alert does not depend on it.
     */
    private readonly calibrate: (peak: number) => number = (p) => p,
  ) {
    this.rows = Math.ceil(pixels / span);
    this.thresholds = labels.map((l) => thresholds[l.id] ?? Infinity);
    this.logitThresholds = this.thresholds.map(logitThreshold);
    this.grid = labels.map(() => []);
    this.peakLogits = new Float32Array(labels.length).fill(-Infinity);
  }

  /** Scores one tile; returns the alerts it raised or changed (empty when it found nothing new). */
  add(tile: ThreatTile): ThreatAlert[] {
    const { gridH, gridW } = tile;
    const span = this.span;
    const rows = this.rows;
    const l0 = Math.floor((tile.line + span / 2) / span);
    const p0 = Math.floor((tile.pixel + span / 2) / span);
    // Cells of the zero padding past the end of the scan are not part of the scan.
    const width = Math.min(gridW, Math.ceil(tile.lines / span));
    const touched: number[] = [];
    // Rows of the tile inside the detector (the rest is the tile's zero padding).
    const height = Math.min(gridH, rows - p0);
    const labels = this.labels.length;
    if (this.previous.length < labels * height) this.previous = new Float32Array(labels * height);
    if (this.grew.length < height) this.grew = new Uint8Array(height);
    const { previous, grew, logitThresholds } = this;
    const logits = tile.logits;
    for (let x = 0; x < width; x++) {
      const col = l0 + x;
      this.ensureColumns(col + 1);
      grew.fill(0, 0, height);
      // Label by label down the column: the maximum wins; remember what each cell held.
      for (let k = 0; k < labels; k++) {
        const column = this.grid[k][col];
        const base = k * gridH * gridW + x;
        for (let y = 0; y < height; y++) {
          const v = logits[base + y * gridW];
          const was = column[p0 + y];
          previous[k * height + y] = was;
          if (v > was) {
            column[p0 + y] = v;
            grew[y] = 1;
            if (v > this.peakLogits[k]) this.peakLogits[k] = v;
          }
        }
      }
      // A cell changed when a label's probability grew (a larger logit can round to the same probability); that
      // matters only for a positive cell, so only those pay for the exp.
      for (let y = 0; y < height; y++) {
        if (grew[y] === 0) continue;
        const row = p0 + y;
        let positive = false;
        for (let k = 0; k < labels && !positive; k++) positive = this.grid[k][col][row] >= logitThresholds[k];
        if (!positive) continue;
        for (let k = 0; k < labels; k++) {
          const now = this.grid[k][col][row];
          const was = previous[k * height + y];
          if (now > was && probabilityOf(now) > probabilityOf(was)) {
            touched.push(col * rows + row);
            break;
          }
        }
      }
    }
    if (touched.length === 0) return [];
    return this.relabel(touched);
  }

  /**
   * The most suspicious cell of the scan so far, as its probability over its label's threshold (below 1: no cell
   * alerted). For triage: a scan released without review should not have come close to an alert.
   */
  peak(): number {
    let peak = 0;
    for (let k = 0; k < this.labels.length; k++) {
      if (this.thresholds[k] > 0 && Number.isFinite(this.thresholds[k])) peak = Math.max(peak, probabilityOf(this.peakLogits[k]) / this.thresholds[k]);
    }
    return peak;
  }

  /** Number of alerts (without copying them). */
  count(): number {
    return this.groups.size;
  }

  all(): ThreatAlert[] {
    return [...this.groups.values()]
      .map((g) => ({ ...g.alert, box: { ...g.alert.box } }))
      .sort((a, b) => a.box.lineStart - b.box.lineStart || a.id.localeCompare(b.id));
  }

  private ensureColumns(n: number): void {
    const have = this.grid[0]?.length ?? 0;
    if (n <= have) return;
    for (const label of this.grid) for (let c = have; c < n; c++) label.push(new Float32Array(this.rows).fill(-Infinity));
    // The owner map grows geometrically: a scan adds a column every few tiles.
    if (n * this.rows > this.owner.length) {
      const owner = new Int32Array(Math.max(n, 2 * (this.owner.length / Math.max(1, this.rows)), 64) * this.rows).fill(-1);
      owner.set(this.owner);
      this.owner = owner;
    }
  }

  private isPositive(col: number, row: number): boolean {
    for (let k = 0; k < this.labels.length; k++) if (this.grid[k][col][row] >= this.logitThresholds[k]) return true;
    return false;
  }

  /** Flood-fills from the changed positive cells, joining the groups they touch. */
  private relabel(seeds: number[]): ThreatAlert[] {
    const rows = this.rows;
    const cols = this.grid[0].length;
    const now = new Date().toISOString();
    const changed = new Set<Group>();
    /** Per surviving group: the ids of the alerts it absorbed in this update. */
    const merged = new Map<Group, string[]>();
    const visited = new Set<number>();
    for (const seed of seeds) {
      if (visited.has(seed)) continue;
      // One connected component through `seed`.
      const component: number[] = [];
      const owners = new Set<number>();
      const stack = [seed];
      visited.add(seed);
      while (stack.length > 0) {
        const cell = stack.pop() as number;
        component.push(cell);
        if (this.owner[cell] >= 0) owners.add(this.owner[cell]);
        const col = Math.floor(cell / rows);
        const row = cell - col * rows;
        for (let dc = -1; dc <= 1; dc++) {
          for (let dr = -1; dr <= 1; dr++) {
            const c = col + dc;
            const r = row + dr;
            if (c < 0 || r < 0 || c >= cols || r >= rows) continue;
            const n = c * rows + r;
            if (!visited.has(n) && this.isPositive(c, r)) {
              visited.add(n);
              stack.push(n);
            }
          }
        }
      }
      // The oldest group the component touches keeps its id; the others fold into it.
      const ids = [...owners].sort((a, b) => a - b);
      let group: Group;
      if (ids.length === 0) {
        const id = this.counter++;
        group = {
          alert: {
            id: `t${id}`,
            category: '',
            name: '',
            probability: 0,
            box: { lineStart: 0, lineEnd: 0, pixelStart: 0, pixelEnd: 0 },
            cells: 0,
            raisedAt: now,
            updatedAt: now,
          },
          cells: [],
        };
        this.groups.set(id, group);
      } else {
        group = this.groups.get(ids[0]) as Group;
        for (const other of ids.slice(1)) {
          const absorbed = this.groups.get(other) as Group;
          this.groups.delete(other);
          const gone = merged.get(group) ?? [];
          gone.push(`t${other}`, ...(merged.get(absorbed) ?? []));
          merged.set(group, gone);
          changed.delete(absorbed);
        }
      }
      const key = Number(group.alert.id.slice(1));
      for (const cell of component) this.owner[cell] = key;
      group.cells = component;
      this.describe(group, now);
      changed.add(group);
    }
    return [...changed].map((g) => {
      const gone = merged.get(g);
      return gone ? { ...g.alert, box: { ...g.alert.box }, merged: gone } : { ...g.alert, box: { ...g.alert.box } };
    });
  }

  private describe(group: Group, now: string): void {
    const rows = this.rows;
    let bestK = 0;
    let bestRatio = -1;
    let c0 = Infinity;
    let c1 = -1;
    let r0 = Infinity;
    let r1 = -1;
    for (const cell of group.cells) {
      const col = Math.floor(cell / rows);
      const row = cell - col * rows;
      c0 = Math.min(c0, col);
      c1 = Math.max(c1, col);
      r0 = Math.min(r0, row);
      r1 = Math.max(r1, row);
      for (let k = 0; k < this.labels.length; k++) {
        const ratio = probabilityOf(this.grid[k][col][row]) / this.thresholds[k];
        if (ratio > bestRatio) {
          bestRatio = ratio;
          bestK = k;
        }
      }
    }
    let peak = -Infinity;
    for (const cell of group.cells) {
      const col = Math.floor(cell / rows);
      peak = Math.max(peak, this.grid[bestK][col][cell - col * rows]);
    }
    peak = probabilityOf(peak);
    const a = group.alert;
    const box: ScanBox = {
      lineStart: c0 * this.span,
      lineEnd: (c1 + 1) * this.span,
      pixelStart: r0 * this.span,
      pixelEnd: Math.min(this.pixels, (r1 + 1) * this.span),
    };
    const label = this.labels[bestK];
    const probability = Math.round(this.calibrate(peak) * 1e4) / 1e4;
    const same =
      a.category === label.id &&
      a.probability === probability &&
      a.cells === group.cells.length &&
      a.box.lineStart === box.lineStart &&
      a.box.lineEnd === box.lineEnd &&
      a.box.pixelStart === box.pixelStart &&
      a.box.pixelEnd === box.pixelEnd;
    if (same) return;
    a.category = label.id;
    a.name = label.name;
    a.probability = probability;
    a.box = box;
    a.cells = group.cells.length;
    a.updatedAt = now;
  }
}
