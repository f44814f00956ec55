/**
 * Metrics whose values are read from a stage's plain counters at scrape time, registered on a prom-client
 * Registry like any prom-client metric (the registry only needs `name`, `type`, `get()` and `reset()`). Nothing
 * is observed on the hot path: the stages keep bumping their own counters and fixed-bucket histograms
 * (HistogramCounts), and `get()` turns them into samples when /metrics is scraped.
 */
import type { Registry } from 'prom-client';
import type { HistogramCounts } from './histogram.js';

export type Labels = Record<string, string>;

/** One series: its label values (exactly the metric's label names) and its value. */
export interface Sample {
  labels: Labels;
  value: number;
  /** Summaries only: `${name}_sum` or `${name}_count` (quantile samples carry a quantile label instead). */
  metricName?: string;
}

/** One histogram series: its label values and the counts behind it. */
export interface HistogramSample {
  labels: Labels;
  counts: HistogramCounts;
}

/** What docs/metrics.md documents about each metric; also what the sync test compares. */
export interface MetricDescription {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary';
  help: string;
  labelNames: readonly string[];
}

/** What a prom-client Registry reads from a metric's get() (its own types for this are not exported). */
interface MetricSnapshot {
  name: string;
  help: string;
  type: string;
  values: Array<{ metricName?: string; labels: Labels; value: number }>;
  aggregator: 'sum';
}

/** A counter, gauge or summary read from plain counters at scrape time. */
export class CollectedMetric implements MetricDescription {
  readonly type: 'counter' | 'gauge' | 'summary';

  constructor(
    readonly name: string,
    type: 'counter' | 'gauge' | 'summary',
    readonly help: string,
    readonly labelNames: readonly string[],
    private readonly read: () => Iterable<Sample>,
  ) {
    this.type = type;
  }

  async get(): Promise<MetricSnapshot> {
    const values: MetricSnapshot['values'] = [];
    for (const s of this.read())
      values.push(s.metricName ? { metricName: s.metricName, labels: s.labels, value: s.value } : { labels: s.labels, value: s.value });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' };
  }

  /** The values belong to the stages; there is nothing to reset here. */
  reset(): void {}
}

/**
 * A histogram read from HistogramCounts at scrape time: cumulative `_bucket{le}` series (bounds of the counts, then
 * +Inf), `_sum` and `_count`.
 */
export class CollectedHistogram implements MetricDescription {
  readonly type = 'histogram' as const;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    private readonly read: () => Iterable<HistogramSample>,
  ) {}

  async get(): Promise<MetricSnapshot> {
    const values: MetricSnapshot['values'] = [];
    for (const { labels, counts } of this.read()) {
      let cumulative = 0;
      for (let i = 0; i < counts.bounds.length; i++) {
        cumulative += counts.counts[i];
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: String(counts.bounds[i]) }, value: cumulative });
      }
      cumulative += counts.counts[counts.bounds.length];
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: cumulative });
      values.push({ metricName: `${this.name}_sum`, labels, value: counts.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: counts.count });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }

  reset(): void {}
}

/** Registers a collected metric on `registry` (prom-client only needs name, type, get and reset). */
export function register(registry: Registry, metric: CollectedMetric | CollectedHistogram): void {
  registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
}
