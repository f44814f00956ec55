/**
 * Threat alerts of one scan from per-tile heatmaps: cells whose probability reaches the class threshold are grouped
 * (4-neighbour connected components within a tile) into boxes in scan coordinates. A new box that overlaps an
 * alert of the same class (neighbouring tiles overlap) widens that alert instead of raising a second one.
 * Alerts are raised as soon as a tile is scored.
 */
import type { ModelLabel } from '../inference/index.js';

export interface ScanBox {
  /** Lines [lineStart, lineEnd) along the vehicle, detector pixels [pixelStart, pixelEnd). */
  lineStart: number;
  lineEnd: number;
  pixelStart: number;
  pixelEnd: number;
}

export interface ThreatAlert {
  /** Stable within a scan. */
  id: string;
  /** Threat label id, e.g. "firearm". */
  category: string;
  name: string;
  /** Highest cell probability seen for this alert. */
  probability: number;
  box: ScanBox;
  /** Alerts are never withdrawn; they may grow while neighbouring tiles are scored. */
  updatedAt: string;
}

export interface ThreatTile {
  line: number;
  lines: number;
  pixel: number;
  pixels: number;
  /** Probabilities [labels][gridH][gridW] (sigmoid of the heatmap logits), detector direction first. */
  probabilities: Float32Array;
  gridH: number;
  gridW: number;
}

function overlaps(a: ScanBox, b: ScanBox): boolean {
  return a.lineStart < b.lineEnd && b.lineStart < a.lineEnd && a.pixelStart < b.pixelEnd && b.pixelStart < a.pixelEnd;
}

export class ThreatAlerts {
  private readonly alerts: ThreatAlert[] = [];
  private counter = 0;

  constructor(
    private readonly labels: readonly ModelLabel[],
    private readonly thresholds: Readonly<Record<string, number>>,
  ) {}

  /** Scores one tile; returns the alerts it raised or widened (empty when it found nothing). */
  add(tile: ThreatTile): ThreatAlert[] {
    const changed = new Set<ThreatAlert>();
    const { gridH, gridW } = tile;
    const cellPixels = tile.pixels / gridH;
    const cellLines = tile.lines / gridW;
    for (let k = 0; k < this.labels.length; k++) {
      const threshold = this.thresholds[this.labels[k].id] ?? 0.5;
      const base = k * gridH * gridW;
      const seen = new Uint8Array(gridH * gridW);
      for (let start = 0; start < gridH * gridW; start++) {
        if (seen[start] || tile.probabilities[base + start] < threshold) continue;
        // Flood-fill one component of hot cells.
        let y0 = gridH;
        let y1 = -1;
        let x0 = gridW;
        let x1 = -1;
        let peak = 0;
        const stack = [start];
        seen[start] = 1;
        while (stack.length > 0) {
          const c = stack.pop() as number;
          const y = Math.floor(c / gridW);
          const x = c % gridW;
          peak = Math.max(peak, tile.probabilities[base + c]);
          y0 = Math.min(y0, y);
          y1 = Math.max(y1, y);
          x0 = Math.min(x0, x);
          x1 = Math.max(x1, x);
          for (const [ny, nx] of [
            [y - 1, x],
            [y + 1, x],
            [y, x - 1],
            [y, x + 1],
          ]) {
            if (ny < 0 || nx < 0 || ny >= gridH || nx >= gridW) continue;
            const n = ny * gridW + nx;
            if (!seen[n] && tile.probabilities[base + n] >= threshold) {
              seen[n] = 1;
              stack.push(n);
            }
          }
        }
        const box: ScanBox = {
          lineStart: Math.round(tile.line + x0 * cellLines),
          lineEnd: Math.round(tile.line + (x1 + 1) * cellLines),
          pixelStart: Math.round(tile.pixel + y0 * cellPixels),
          pixelEnd: Math.round(tile.pixel + (y1 + 1) * cellPixels),
        };
        changed.add(this.merge(this.labels[k], box, peak));
      }
    }
    return [...changed];
  }

  all(): ThreatAlert[] {
    return this.alerts.map((a) => ({ ...a, box: { ...a.box } }));
  }

  private merge(label: ModelLabel, box: ScanBox, probability: number): ThreatAlert {
    const now = new Date().toISOString();
    const existing = this.alerts.find((a) => a.category === label.id && overlaps(a.box, box));
    if (existing) {
      existing.box = {
        lineStart: Math.min(existing.box.lineStart, box.lineStart),
        lineEnd: Math.max(existing.box.lineEnd, box.lineEnd),
        pixelStart: Math.min(existing.box.pixelStart, box.pixelStart),
        pixelEnd: Math.max(existing.box.pixelEnd, box.pixelEnd),
      };
      existing.probability = Math.max(existing.probability, Math.round(probability * 1e4) / 1e4);
      existing.updatedAt = now;
      // The widened box may now bridge to other alerts of the class: fold them in (the oldest id stays).
      for (let i = this.alerts.length - 1; i >= 0; i--) {
        const other = this.alerts[i];
        if (other === existing || other.category !== label.id || !overlaps(other.box, existing.box)) continue;
        existing.box = {
          lineStart: Math.min(existing.box.lineStart, other.box.lineStart),
          lineEnd: Math.max(existing.box.lineEnd, other.box.lineEnd),
          pixelStart: Math.min(existing.box.pixelStart, other.box.pixelStart),
          pixelEnd: Math.max(existing.box.pixelEnd, other.box.pixelEnd),
        };
        existing.probability = Math.max(existing.probability, other.probability);
        this.alerts.splice(i, 1);
      }
      return existing;
    }
    const alert: ThreatAlert = {
      id: `t${this.counter++}`,
      category: label.id,
      name: label.name,
      probability: Math.round(probability * 1e4) / 1e4,
      box,
      updatedAt: now,
    };
    this.alerts.push(alert);
    return alert;
  }
}
