/**
 * Plain histogram counts that a stage keeps on its hot path (one array increment per observation, no prom-client
 * call) and the metrics registry reads at scrape time. JS thread of the owner only.
 */

export interface HistogramCounts {
  /** Bucket upper bounds, ascending; shared and frozen. */
  readonly bounds: readonly number[];
  /** counts[i] = observations v with bounds[i-1] < v <= bounds[i]; counts[bounds.length] = above the last bound. */
  readonly counts: number[];
  sum: number;
  count: number;
}

export function createHistogram(bounds: readonly number[]): HistogramCounts {
  return { bounds, counts: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 };
}

export function observe(h: HistogramCounts, value: number): void {
  const b = h.bounds;
  let i = 0;
  while (i < b.length && value > b[i]) i++;
  h.counts[i]++;
  h.sum += value;
  h.count++;
}
