/**
 * Image statistics of one tile that describe the scanner more than the cargo: how attenuation is spread, how the
 * two energies relate, and how noisy and how sharp the image is. Textured, cluttered cargo has fine structure of its
 * own, so each energy's residual measures the load as much as the detector; the two `log_dual_noise_*` features
 * measure noise on `low - ratio * high`, where whatever both energies see (the load) cancels and what each detector
 * adds on its own (photon and read noise, a foreign chain's noise) stays. A scanner whose calibration, detector, energy
 * response or processing chain differs from the one the models were trained on moves these numbers even where the
 * models' own embedding does not (out-of-distribution detection, ood.ts).
 *
 * Input: the tile as the stitcher emits it (attenuation -ln(T) per energy, channel-major [energies][size][size],
 * rows down the detector, columns along the scan, clamped to [0, attenuationMax]), before the model's normalisation.
 * Pure and allocation-free after the first call per size (two module-level scratch buffers and a lookup table, so
 * one call at a time per thread): on the inference workers in the gateway, on the main thread in the fitting tool
 * and the results stage's fallback.
 */

/** Feature names in order: the manifest's `outOfDistribution.imageFeatures` must list exactly these. */
export const IMAGE_FEATURES = Object.freeze([
  'mean_high',
  'log_std_high',
  'low_high_ratio',
  'log_ratio_spread',
  'log_noise_along_scan',
  'log_noise_along_detector',
  'log_noise_low_along_scan',
  'log_dual_noise_along_scan',
  'log_dual_noise_along_detector',
] as const);

export const IMAGE_FEATURE_COUNT = IMAGE_FEATURES.length;

/**
 * Prior weight of the low/high ratio terms: a tile with little attenuation (air) has no material to measure, so its
 * ratio tends to RATIO_PRIOR and its spread to SPREAD_PRIOR instead of being undefined.
 */
const RATIO_PRIOR = 1.3;
const SPREAD_PRIOR = 0.01;
const PRIOR_WEIGHT = 1;
/** Attenuation above which a sample's low/high ratio is measured (below it the ratio is noise). */
const RATIO_MIN_ATTENUATION = 0.1;
/** Samples within this much of the clamp are saturated and say nothing about noise. */
const SATURATION_MARGIN = 0.5;

let scratch = new Float64Array(0);
/** low - ratio * high of the current tile (dual-energy noise features). */
let dual = new Float32Array(0);

/**
 * Writes the IMAGE_FEATURES of `tile` into `out` (length >= IMAGE_FEATURE_COUNT) and returns it.
 * @param energies channels of the tile (1 or 2); a single-energy tile gets the ratio features' priors.
 * @param attenuationMax the stitcher's clamp (stitch.attenuationMax).
 */
export function tileImageFeatures(tile: Float32Array, size: number, energies: number, attenuationMax: number, out: Float64Array): Float64Array {
  const n = size * size;
  if (scratch.length < n) scratch = new Float64Array(n);
  const high = tile.subarray(0, n);
  let sum = 0;
  let sum2 = 0;
  for (let i = 0; i < n; i++) {
    const v = high[i];
    sum += v;
    sum2 += v * v;
  }
  const mean = sum / n;
  const variance = Math.max(0, sum2 / n - mean * mean);
  out[0] = mean;
  out[1] = Math.log(Math.sqrt(variance) + 0.01);

  if (energies >= 2) {
    const low = tile.subarray(n, 2 * n);
    // Ratio weighted by high attenuation squared: thick material speaks loudest, air not at all. Every other row and
    // column (a quarter of the samples): material changes over tens of samples, not from one to the next.
    let wr = PRIOR_WEIGHT * RATIO_PRIOR;
    let w = PRIOR_WEIGHT;
    for (let r = 0; r < size; r += 2) {
      for (let i = r * size; i < (r + 1) * size; i += 2) {
        const h = high[i];
        if (h < RATIO_MIN_ATTENUATION) continue;
        const weight = h * h;
        wr += weight * (low[i] / h);
        w += weight;
      }
    }
    const ratio = wr / w;
    let spread = PRIOR_WEIGHT * SPREAD_PRIOR;
    for (let r = 0; r < size; r += 2) {
      for (let i = r * size; i < (r + 1) * size; i += 2) {
        const h = high[i];
        if (h < RATIO_MIN_ATTENUATION) continue;
        const d = low[i] / h - ratio;
        spread += h * h * d * d;
      }
    }
    out[2] = ratio;
    out[3] = Math.log(spread / w);
    out[6] = noise(low, low, size, 1, attenuationMax);
    // The load cancels in low - ratio * high (both energies see it, scaled by the material's ratio); each detector's
    // own noise does not. Scaled by the low energy's photon statistics, which dominate the difference's noise.
    if (dual.length < n) dual = new Float32Array(n);
    for (let i = 0; i < n; i++) dual[i] = low[i] - ratio * high[i];
    out[7] = noise(dual, low, size, 1, attenuationMax);
    out[8] = noise(dual, low, size, size, attenuationMax);
  } else {
    out[2] = RATIO_PRIOR;
    out[3] = Math.log(SPREAD_PRIOR);
    out[6] = 0;
    out[7] = 0;
    out[8] = 0;
  }
  out[4] = noise(high, high, size, 1, attenuationMax);
  out[5] = noise(high, high, size, size, attenuationMax);
  return out;
}

/** exp(-x / 2) on a grid of NOISE_LUT_STEP over [0, attenuationMax]: the noise pass's one transcendental, looked up. */
const NOISE_LUT_STEP = 1 / 256;
let noiseLut = new Float64Array(0);

function photonScale(x: number): number {
  const i = (x / NOISE_LUT_STEP) | 0;
  return i < noiseLut.length ? noiseLut[i] : Math.exp(-x / 2);
}

/**
 * Log of the median second-difference residual |x[i] - (x[i-s] + x[i+s]) / 2| along one axis (s = 1: along the
 * scan, s = size: down the detector), each scaled by exp(-a[i] / 2) where `a` is the attenuation whose photons set
 * the noise (x itself, or the low energy for the dual-energy difference). Photon noise of -ln(T) grows as
 * exp(a / 2), so the scaled residual is about constant across attenuation for a given detector; the median ignores
 * edges. Samples where `a` is 0 or near the clamp say nothing about noise and are skipped.
 * Measured on a quarter of the samples (each with its full-resolution neighbours): the median of ~1000 residuals
 * keeps blur plus noise apart from the simulator's detector, where ~500 (an eighth) let a held-out truck through
 * (bench:opinion has the costs).
 */
function noise(x: Float32Array, a: Float32Array, size: number, step: number, attenuationMax: number): number {
  if (noiseLut.length === 0 || noiseLut.length * NOISE_LUT_STEP < attenuationMax) {
    noiseLut = new Float64Array(Math.ceil(attenuationMax / NOISE_LUT_STEP) + 1);
    for (let i = 0; i < noiseLut.length; i++) noiseLut[i] = Math.exp(-(i + 0.5) * NOISE_LUT_STEP * 0.5);
  }
  let k = 0;
  const top = attenuationMax - SATURATION_MARGIN;
  // Every other row and column (a quarter of the samples), each against its full-resolution neighbours.
  const rowStep = 2;
  const colStep = 2;
  for (let r = step === 1 ? 0 : 2; r < (step === 1 ? size : size - 1); r += rowStep) {
    for (let c = step === 1 ? 2 : 0; c < (step === 1 ? size - 1 : size); c += colStep) {
      const i = r * size + c;
      const photons = a[i];
      if (photons <= 0 || photons >= top) continue;
      const residual = Math.abs(x[i] - (x[i - step] + x[i + step]) / 2);
      scratch[k++] = residual * photonScale(photons);
    }
  }
  if (k === 0) return Math.log(1e-4);
  return Math.log(select(scratch, k, k >> 1) + 1e-4);
}

/** The k-th smallest of a[0..n) (Hoare quickselect, in place). */
function select(a: Float64Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}
