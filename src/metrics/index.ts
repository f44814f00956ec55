/**
 * What every stage counts with, and the metric sets that read no stage: histogram counts kept on the hot path, the
 * bounded `portal` label, metrics collected at scrape time, the operator feed's and the process's metrics. The
 * gateway's registry that reads every stage is src/server/gateway-metrics.ts (GET /metrics, docs/metrics.md).
 * Depends on no stage, so every stage may use it.
 */
export { CollectedHistogram, CollectedMetric, type HistogramSample, type Labels, type MetricDescription, register, type Sample } from './collected-metric.js';
export { createHistogram, type HistogramCounts, observe } from './histogram.js';
export { LINE_TO_SCREEN_BUCKETS_SECONDS, OperatorMetrics, UNKNOWN_PORTAL, type OperatorFeedStats, type OperatorMetricsSink } from './operator-metrics.js';
export { NO_PORTAL, OTHER_PORTALS, portalEntry } from './portal-labels.js';
export { ProcessMetrics } from './process-metrics.js';
