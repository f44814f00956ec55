/**
 * Calibrated probabilities from a model's raw outputs, per its manifest's `calibration` (fitted on validation scans
 * by `scanline fit-opinion`): what an officer reads as "80%" should be right about 80% of the time. No probability
 * exceeds `maxProbability` (what a validation set of that size can support): the screen never says 100%.
 * Pure; main thread.
 */
import type { ModelCalibration } from '../inference/index.js';

/** The highest probability shown when a manifest carries no calibration. */
export const UNCALIBRATED_MAX_PROBABILITY = 0.99;

/** 1 / temperature for the goods logits (1 without calibration). */
export function inverseTemperature(c: Readonly<ModelCalibration> | undefined): number {
  return c?.temperature ? 1 / c.temperature : 1;
}

export function maxProbability(c: Readonly<ModelCalibration> | undefined): number {
  return c?.maxProbability ?? UNCALIBRATED_MAX_PROBABILITY;
}

/** The alert probability for a peak cell probability: Platt scaling, then the cap. */
export function alertCalibration(c: Readonly<ModelCalibration> | undefined): (peak: number) => number {
  return platt(c?.alert, maxProbability(c));
}

/** A goods segment's confidence for the mean top-1 probability of its columns: Platt scaling, then the cap. */
export function segmentCalibration(c: Readonly<ModelCalibration> | undefined): (p: number) => number {
  return platt(c?.segment, maxProbability(c));
}

/** sigmoid(slope * logit(p) + intercept), capped; only the cap without a fit. */
function platt(a: { readonly slope: number; readonly intercept: number } | undefined, cap: number): (p: number) => number {
  if (!a) return (p) => Math.min(cap, p);
  return (p) => {
    const q = Math.min(1 - 1e-7, Math.max(1e-7, p));
    const z = a.slope * Math.log(q / (1 - q)) + a.intercept;
    return Math.min(cap, 1 / (1 + Math.exp(-z)));
  };
}
