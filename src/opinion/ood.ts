/**
 * Out-of-distribution scoring of tiles and scans against what a goods model was trained on, from the statistics the
 * training recipe fitted and stored in the model's manifest (`outOfDistribution`, models/README.md).
 *
 * Two views of a tile, each a class-conditional Gaussian (the class is the goods model's top-1 label for the tile;
 * the image statistics have a covariance per class, the embedding one shared by all classes):
 * - the goods model's L2-normalised embedding: what the model "saw" (cargo unlike any it knows);
 * - the tile's image statistics (image-features.ts): how the scanner renders (noise, sharpness, energy response).
 * Each view's squared Mahalanobis distance is divided by its threshold (a high percentile of the validation
 * tiles); the tile's score is the larger of the two, and a tile scoring above 1 is out of distribution.
 * A scan is out of distribution when at least `scanShare` of its scored tiles (and `minTiles` of them) are.
 *
 * Pure; the model is immutable once built. Main thread (results stage) or the fitting tool.
 */
import type { OutOfDistributionStats } from '../inference/index.js';
import { IMAGE_FEATURE_COUNT, IMAGE_FEATURES } from '../image-stats/index.js';

export interface TileOodScore {
  /** max(embedding, image); above 1: out of distribution. */
  score: number;
  /** Squared Mahalanobis distance of the embedding over its threshold (NaN without an embedding). */
  embedding: number;
  /** Squared Mahalanobis distance of the image statistics over its threshold. */
  image: number;
}

export class OodModel {
  readonly scanShare: number;
  readonly minTiles: number;
  private readonly imageMeans: Float64Array[];
  private readonly embeddingMeans: Float64Array[];
  private readonly imagePrecisions: Float64Array[];
  private readonly embeddingPrecision: Float64Array;
  private readonly dim: number;
  private readonly diff: Float64Array;

  /** Throws when the statistics were fitted on other image statistics than this gateway computes. */
  constructor(private readonly stats: Readonly<OutOfDistributionStats>) {
    const problems = imageFeatureProblems(stats);
    if (problems.length > 0) throw new Error(problems.join('; '));
    this.scanShare = stats.scanShare;
    this.minTiles = stats.minTiles;
    this.imageMeans = stats.imageMeans.map((m) => Float64Array.from(m));
    this.embeddingMeans = stats.embeddingMeans.map((m) => Float64Array.from(m));
    this.imagePrecisions = stats.imagePrecisions.map((m) => Float64Array.from(m.flat()));
    this.embeddingPrecision = Float64Array.from(stats.embeddingPrecision.flat());
    this.dim = stats.embeddingMeans[0]?.length ?? 0;
    this.diff = new Float64Array(Math.max(this.dim, IMAGE_FEATURE_COUNT));
  }

  /** Dimension of the embedding the statistics were fitted on. */
  get embeddingDim(): number {
    return this.dim;
  }

  /**
   * Scores one tile. `label` is the goods model's top-1 label index, `embedding` the L2-normalised embedding (or
   * undefined), `features` the tile's image features.
   */
  score(label: number, features: Float64Array, embedding: Float32Array | undefined): TileOodScore {
    const image = this.mahalanobis(features, this.imageMeans[label], this.imagePrecisions[label], IMAGE_FEATURE_COUNT) / this.stats.imageThreshold;
    const emb =
      embedding && embedding.length === this.dim
        ? this.mahalanobis(embedding, this.embeddingMeans[label], this.embeddingPrecision, this.dim) / this.stats.embeddingThreshold
        : Number.NaN;
    return { score: Number.isNaN(emb) ? image : Math.max(image, emb), embedding: emb, image };
  }

  /** True when a scan with `outOfDistribution` of `scored` tiles over the threshold is out of distribution. */
  scanIsOut(outOfDistribution: number, scored: number): boolean {
    return scored >= this.minTiles && outOfDistribution >= this.scanShare * scored;
  }

  private mahalanobis(x: ArrayLike<number>, mean: Float64Array, precision: Float64Array, d: number): number {
    const diff = this.diff;
    for (let i = 0; i < d; i++) diff[i] = x[i] - mean[i];
    let total = 0;
    for (let i = 0; i < d; i++) {
      let row = 0;
      const base = i * d;
      for (let j = 0; j < d; j++) row += precision[base + j] * diff[j];
      total += diff[i] * row;
    }
    return total;
  }
}

/**
 * Why this gateway cannot use a manifest's statistics (empty: it can): they must be fitted on the image statistics
 * this gateway computes, in its order (the manifest schema checks their shapes).
 */
export function imageFeatureProblems(stats: Readonly<OutOfDistributionStats>): string[] {
  if (stats.imageFeatures.length === IMAGE_FEATURE_COUNT && stats.imageFeatures.every((f, i) => f === IMAGE_FEATURES[i])) return [];
  return [`outOfDistribution.imageFeatures must be [${IMAGE_FEATURES.join(', ')}] (this gateway's image statistics), not [${stats.imageFeatures.join(', ')}]`];
}
