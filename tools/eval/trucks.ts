/**
 * Held-out trucks, generated exactly as `scanline dataset` generates training trucks (tools/dataset/scan-tiles.ts):
 * the dataset's detector (pixels, line rate, vehicle speed, noise on) seeded per truck by `datasetDetectorSeed`,
 * and `generateTruck(seed, detector, options)`. Only the threat and declaration-mismatch probabilities are the
 * evaluator's: the declaration is drawn from its own random stream (hashSeed(seed, 'declaration')), so the
 * mismatch probability changes which declarations lie and nothing else about a truck; the threat probability
 * picks which trucks carry threats as it did for training (0.5 there).
 */
import { DATASET_SCAN_DEFAULTS, datasetDetectorSeed } from '../dataset/index.js';
import {
  createDetector,
  generateTruck,
  realismDetectorOptions,
  truthLabels,
  type Detector,
  type Realism,
  type Scene,
  type TruthLabels,
} from '../simulator/index.js';

/** How a declaration lies (null: it does not). */
export type MismatchKind =
  /** A category carried was declared as another one (the gateway can see the undeclared goods). */
  | 'substituted'
  /** Goods carried, nothing declared (hsCodes []). */
  | 'declared-empty'
  /** An empty truck declared as carrying goods (nothing undeclared is on board). */
  | 'goods-on-empty';

export const MISMATCH_KINDS: readonly MismatchKind[] = ['substituted', 'declared-empty', 'goods-on-empty'];

export interface EvalTruck {
  seed: number;
  detector: Detector;
  scene: Scene;
  truth: TruthLabels;
  mismatch: MismatchKind | null;
}

export interface EvalTruckOptions {
  /** Probability that a truck carries concealed threats. */
  threatProbability: number;
  /** Probability that a truck's declaration disagrees with its cargo; undefined: the simulator's default. */
  mismatchProbability?: number;
  /** Energies the truck's portal sends (1: a single-energy scanner). Default 2. */
  energies?: 1 | 2;
  /** The simulator: 'hard' scenes with the hard detector's effects (tools/simulator/realism.ts). Default 'basic'. */
  realism?: Realism;
}

export function evalTruck(seed: number, options: EvalTruckOptions): EvalTruck {
  const d = DATASET_SCAN_DEFAULTS;
  const detector = createDetector({
    pixels: d.pixels,
    lineRateHz: d.lineRateHz,
    speedMps: d.speedMps,
    seed: datasetDetectorSeed(seed),
    energies: options.energies ?? 2,
    ...realismDetectorOptions(options.realism, d.pixels),
  });
  const scene = generateTruck(seed, detector, {
    ...(options.realism ? { realism: options.realism } : {}),
    threatProbability: options.threatProbability,
    ...(options.mismatchProbability === undefined ? {} : { mismatchProbability: options.mismatchProbability }),
  });
  return { seed, detector, scene, truth: truthLabels(scene, detector), mismatch: mismatchKind(scene) };
}

export function mismatchKind(scene: Scene): MismatchKind | null {
  const d = scene.declaration;
  if (!d?.mismatch) return null;
  const loaded = scene.cargo.some((c) => c.category !== 'empty');
  if (!loaded) return 'goods-on-empty';
  if (d.hsCodes.length === 0) return 'declared-empty';
  return 'substituted';
}
