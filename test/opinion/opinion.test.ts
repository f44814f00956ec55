import { describe, expect, it } from 'vitest';
import { validateManifest } from '../../src/inference/index.js';
import {
  IMAGE_FEATURE_COUNT,
  IMAGE_FEATURES,
  OodModel,
  alertCalibration,
  imageFeatureProblems,
  inverseTemperature,
  maxProbability,
  tileImageFeatures,
} from '../../src/opinion/index.js';
import { Rng } from '../../tools/simulator/index.js';
import { testManifest } from '../helpers/manifest.js';

const SIZE = 64;
const N = SIZE * SIZE;

/** A two-energy tile: high attenuation `h(r, c)`, low = ratio x high, plus seeded Gaussian noise of `sigma`. */
function tile(h: (r: number, c: number) => number, ratio: number, sigma = 0, seed = 1): Float32Array {
  const rng = new Rng(seed);
  const t = new Float32Array(2 * N);
  for (let r = 0; r < SIZE; r++) {
    for (let c = 0; c < SIZE; c++) {
      const v = h(r, c);
      t[r * SIZE + c] = Math.max(0, v + sigma * rng.normal());
      t[N + r * SIZE + c] = Math.max(0, ratio * v + sigma * rng.normal());
    }
  }
  return t;
}

const features = (t: Float32Array, energies = 2): Float64Array => tileImageFeatures(t, SIZE, energies, 10, new Float64Array(IMAGE_FEATURE_COUNT));
const at = (f: Float64Array, name: (typeof IMAGE_FEATURES)[number]): number => f[IMAGE_FEATURES.indexOf(name)];

describe('tile image statistics', () => {
  it('measure attenuation, the energy ratio and noise as the scanner renders them', () => {
    const clean = features(tile(() => 2, 1.4));
    expect(at(clean, 'mean_high')).toBeCloseTo(2, 6);
    expect(at(clean, 'low_high_ratio')).toBeCloseTo(1.4, 3);
    // No noise at all: the floor of the noise features.
    expect(at(clean, 'log_noise_along_scan')).toBeCloseTo(Math.log(1e-4), 6);

    const noisy = features(tile(() => 2, 1.4, 0.02));
    const noisier = features(tile(() => 2, 1.4, 0.06));
    expect(at(noisier, 'log_noise_along_scan')).toBeGreaterThan(at(noisy, 'log_noise_along_scan') + 0.8);
    expect(at(noisier, 'log_noise_along_detector')).toBeGreaterThan(at(noisy, 'log_noise_along_detector') + 0.8);

    // Another energy response moves the ratio, not the mean.
    const other = features(tile(() => 2, 1.8, 0.02));
    expect(at(other, 'low_high_ratio') - at(noisy, 'low_high_ratio')).toBeCloseTo(0.4, 2);
    expect(at(other, 'mean_high')).toBeCloseTo(at(noisy, 'mean_high'), 2);
  });

  it('scale noise by the photon statistics, so the same detector reads the same at any attenuation', () => {
    // -ln(T) noise grows as exp(A / 2): the feature divides it out.
    const thin = features(tile(() => 1, 1.4, 0.01 * Math.exp(0.5), 3));
    const thick = features(tile(() => 5, 1.4, 0.01 * Math.exp(2.5), 3));
    expect(Math.abs(at(thin, 'log_noise_along_scan') - at(thick, 'log_noise_along_scan'))).toBeLessThan(0.15);
  });

  it('tell a textured load from a noisy detector on the two energies together', () => {
    // Fine texture both energies see (cluttered cargo) against the same load rendered by a noisier chain.
    const texture = (r: number, c: number): number => 2 + 0.3 * Math.sin(r * 1.7 + Math.cos(c * 0.9) * 2) * Math.sin(c * 2.3);
    const textured = features(tile(texture, 1.4, 0.005, 5));
    const flatNoisy = features(tile(() => 2, 1.4, 0.02, 5));
    // Each energy's residual reads the texture as noise (it is larger than the noisy flat tile's)...
    expect(at(textured, 'log_noise_along_scan')).toBeGreaterThan(at(flatNoisy, 'log_noise_along_scan'));
    // ...while low - ratio x high cancels it and keeps the detector's own noise: 4 times less noise, about log(4) less.
    expect(at(flatNoisy, 'log_dual_noise_along_scan') - at(textured, 'log_dual_noise_along_scan')).toBeGreaterThan(1);
    expect(at(flatNoisy, 'log_dual_noise_along_detector') - at(textured, 'log_dual_noise_along_detector')).toBeGreaterThan(1);
    const texturedNoisy = features(tile(texture, 1.4, 0.02, 5));
    expect(Math.abs(at(texturedNoisy, 'log_dual_noise_along_scan') - at(flatNoisy, 'log_dual_noise_along_scan'))).toBeLessThan(0.3);
  });

  it('give a single-energy tile the ratio priors instead of reading a second channel', () => {
    const f = features(tile(() => 2, 1.4, 0.02).subarray(0, N), 1);
    expect(at(f, 'low_high_ratio')).toBe(1.3);
    expect(at(f, 'log_noise_low_along_scan')).toBe(0);
    expect(at(f, 'log_dual_noise_along_scan')).toBe(0);
    expect(at(f, 'log_dual_noise_along_detector')).toBe(0);
    expect(f.every(Number.isFinite)).toBe(true);
  });
});

describe('out-of-distribution model', () => {
  const F = IMAGE_FEATURE_COUNT;
  const identity = (d: number): number[][] => Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => (i === j ? 1 : 0)));
  const stats = {
    imageFeatures: [...IMAGE_FEATURES],
    imageMeans: [new Array(F).fill(0), new Array(F).fill(1)],
    imagePrecisions: [identity(F), identity(F).map((r) => r.map((v) => v * 4))],
    imageThreshold: 2,
    embeddingMeans: [
      [1, 0],
      [0, 1],
    ],
    embeddingPrecision: identity(2),
    embeddingThreshold: 0.5,
    scanShare: 0.25,
    minTiles: 4,
  };

  it("scores a tile by the larger of its two views' Mahalanobis distances over their thresholds, under the tile's label", () => {
    const m = new OodModel(stats);
    const x = new Float64Array(F);
    x[0] = 1;
    // label 0: |x - 0|^2 = 1 over 2; label 1: 4 * ((F - 1) * 1 + 0) over 2
    expect(m.score(0, x, undefined)).toEqual({ score: 0.5, embedding: Number.NaN, image: 0.5 });
    expect(m.score(1, x, undefined).image).toBe(2 * (F - 1));
    // embedding [0, 1] under label 0: distance 2 over 0.5 = 4, which wins
    expect(m.score(0, x, Float32Array.from([0, 1]))).toEqual({ score: 4, embedding: 4, image: 0.5 });
  });

  it('calls a scan out of distribution at scanShare of its tiles, once it has minTiles', () => {
    const m = new OodModel(stats);
    expect(m.scanIsOut(3, 3)).toBe(false); // too few tiles to say
    expect(m.scanIsOut(1, 4)).toBe(true);
    expect(m.scanIsOut(2, 9)).toBe(false);
  });

  it('refuses statistics fitted on other image statistics', () => {
    expect(imageFeatureProblems(stats)).toEqual([]);
    expect(() => new OodModel({ ...stats, imageFeatures: ['mean_high'] })).toThrow(/imageFeatures must be/);
    expect(imageFeatureProblems({ ...stats, imageFeatures: ['mean_high'] })[0]).toMatch(/^outOfDistribution\.imageFeatures must be \[mean_high, log_std_high/);
  });
});

describe('calibration', () => {
  it('scales goods logits by the temperature and alerts by Platt scaling, capped at maxProbability', () => {
    expect(inverseTemperature(undefined)).toBe(1);
    expect(inverseTemperature({ temperature: 2, maxProbability: 0.99 })).toBe(0.5);
    expect(maxProbability(undefined)).toBe(0.99);
    const raw = alertCalibration(undefined);
    expect(raw(0.5)).toBe(0.5);
    expect(raw(1)).toBe(0.99);
    const platt = alertCalibration({ alert: { slope: 0.5, intercept: -1 }, maxProbability: 0.95 });
    // logit(0.9975) = 5.99; sigmoid(0.5 * 5.99 - 1) = 0.880
    expect(platt(0.9975)).toBeCloseTo(0.88, 2);
    expect(platt(1)).toBe(0.95);
    expect(platt(0.2)).toBeLessThan(0.2);
  });
});

describe('manifest rules for calibration and out-of-distribution statistics', () => {
  const base = testManifest(
    'goods',
    [
      { id: 'timber', name: 'Timber', hsCodes: ['4407'] },
      { id: 'air', name: 'Air', hsCodes: [], cargo: false },
    ],
    { suggest: 0.6 },
    {
      name: 'goods-x',
      outputs: [
        { name: 'logits', shape: [-1, 2], dtype: 'float32', meaning: 'class_logits' },
        { name: 'embedding', shape: [-1, 3], dtype: 'float32', meaning: 'embedding' },
      ],
    },
  );
  const F = IMAGE_FEATURE_COUNT;
  const square = (d: number): number[][] => Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => (i === j ? 1 : 0)));
  const ood = {
    imageFeatures: [...IMAGE_FEATURES],
    imageMeans: [new Array(F).fill(0), new Array(F).fill(0)],
    imagePrecisions: [square(F), square(F)],
    imageThreshold: 1,
    embeddingMeans: [
      [0, 0, 0],
      [0, 0, 0],
    ],
    embeddingPrecision: square(3),
    embeddingThreshold: 1,
    scanShare: 0.2,
    minTiles: 8,
  };

  it('accepts a goods manifest with a temperature and statistics that fit its labels and embedding', () => {
    expect(validateManifest({ ...base, calibration: { temperature: 0.7, maxProbability: 0.99 }, outOfDistribution: ood })).toEqual([]);
  });

  it('lists statistics whose shapes do not fit, an alert calibration on a goods model, and a temperature on a threats model', () => {
    const bad = {
      ...base,
      calibration: { alert: { slope: 1, intercept: 0 }, maxProbability: 0.99 },
      outOfDistribution: { ...ood, embeddingPrecision: square(2) },
    };
    const problems = validateManifest(bad).join('\n');
    expect(problems).toMatch(/calibration\.alert/);
    expect(problems).toMatch(/embeddingPrecision must be 3 x 3/);
    const flat = {
      ...base,
      outOfDistribution: {
        ...ood,
        embeddingPrecision: [
          [1, 0, 0],
          [0, 0, 0],
          [0, 0, 1],
        ],
      },
    };
    expect(validateManifest(flat).join('\n')).toMatch(/precision matrices need a positive diagonal/);
    const threats = {
      ...base,
      task: 'threats',
      outputs: [{ name: 'heat', shape: [-1, 1, 16, 16], dtype: 'float32', meaning: 'threat_heatmap_logits' }],
      labels: [{ id: 'firearm', name: 'Firearm', hsCodes: [] }],
      thresholds: { firearm: 0.9 },
      calibration: { temperature: 2, maxProbability: 0.99 },
    };
    expect(validateManifest(threats).join('\n')).toMatch(/calibration\.temperature/);
    expect(validateManifest({ ...base, calibration: { temperature: 0, maxProbability: 0.99 } }).join('\n')).toMatch(/calibration\.temperature/);
  });
});
