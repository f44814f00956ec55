/**
 * Plain counters the inference stage bumps on its hot path (no allocation, no label lookup per tile); the metrics
 * stage reads them at scrape time. Histograms are fixed-bucket counts (histogram-ready: per-bucket counts, sum and
 * count), so a Prometheus collector can expose them without observing every value again.
 *
 * Invariant, per model and priority, at any instant:
 *   submitted = ok + rejected + expired + failed + pending   (pending = queued + in flight; see Inference.status())
 * `shed` is the part of `rejected` that was queued and then evicted for live work.
 */
import { createHistogram, type HistogramCounts } from '../metrics/index.js';
import type { TilePriority } from './config.js';

/** Upper bounds of the batch size buckets, tiles (a last bucket catches larger batches). */
export const BATCH_SIZE_BUCKETS: readonly number[] = Object.freeze([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]);
/** Upper bounds of the queue wait buckets (submit to dispatch, per tile), seconds. */
export const QUEUE_WAIT_BUCKETS_SECONDS: readonly number[] = Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
/** Upper bounds of the compute and round-trip buckets (per batch), seconds. */
export const BATCH_SECONDS_BUCKETS: readonly number[] = Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);

export interface TileOutcomeCounters {
  submitted: number;
  ok: number;
  /** Not run: refused at submit (queue full, closed) or shed from the queue. */
  rejected: number;
  /** Part of `rejected`: queued re-analysis tiles evicted for live work. */
  shed: number;
  /** Not run: the deadline passed while queued. */
  expired: number;
  /** Run (or sent to run) but the batch failed: ONNX Runtime error, worker crash, batch timeout. */
  failed: number;
}

export interface ModelInferenceStats {
  tiles: Record<TilePriority, TileOutcomeCounters>;
  batches: number;
  batchesFailed: number;
  /** Tiles per batch. */
  batchSize: HistogramCounts;
  /** Per tile: submit to dispatch in a batch. */
  queueWaitSeconds: HistogramCounts;
  /** Per batch: ONNX Runtime run time measured inside the worker. */
  computeSeconds: HistogramCounts;
  /** Per batch: dispatch to result on the main thread (packing excluded; compute + transfers + worker queueing). */
  roundTripSeconds: HistogramCounts;
}

export interface InferenceStats {
  /** One entry per loaded model, by manifest name (a bounded label set). */
  models: Map<string, ModelInferenceStats>;
  /** submit() calls naming a model that is not loaded (refused, not counted per model). */
  unknownModelTiles: number;
  /** submit() calls with an invalid request (refused, not counted per model). */
  invalidTiles: number;
  workerCrashes: number;
  workerRestarts: number;
  batchTimeouts: number;
}

function outcomeCounters(): TileOutcomeCounters {
  return { submitted: 0, ok: 0, rejected: 0, shed: 0, expired: 0, failed: 0 };
}

export function createModelInferenceStats(): ModelInferenceStats {
  return {
    tiles: { live: outcomeCounters(), reanalysis: outcomeCounters() },
    batches: 0,
    batchesFailed: 0,
    batchSize: createHistogram(BATCH_SIZE_BUCKETS),
    queueWaitSeconds: createHistogram(QUEUE_WAIT_BUCKETS_SECONDS),
    computeSeconds: createHistogram(BATCH_SECONDS_BUCKETS),
    roundTripSeconds: createHistogram(BATCH_SECONDS_BUCKETS),
  };
}

export function createInferenceStats(modelNames: Iterable<string> = []): InferenceStats {
  const models = new Map<string, ModelInferenceStats>();
  for (const n of modelNames) models.set(n, createModelInferenceStats());
  return { models, unknownModelTiles: 0, invalidTiles: 0, workerCrashes: 0, workerRestarts: 0, batchTimeouts: 0 };
}
