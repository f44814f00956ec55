/**
 * Metrics stage: Prometheus metrics of every stage, read from their plain counters at scrape time and served on
 * GET /metrics (docs/metrics.md). src/main.ts creates one GatewayMetrics per gateway; the operator hub reports
 * through `metrics.operator` (OperatorMetricsSink).
 */
export { createGatewayMetrics, type GatewayMetrics, type GatewayMetricsOptions } from './gateway-metrics.js';
export { CollectedHistogram, CollectedMetric, type HistogramSample, type Labels, type MetricDescription, type Sample } from './collected-metric.js';
export { LINE_TO_SCREEN_BUCKETS_SECONDS, OperatorMetrics, UNKNOWN_PORTAL, type OperatorFeedStats, type OperatorMetricsSink } from './operator-metrics.js';
