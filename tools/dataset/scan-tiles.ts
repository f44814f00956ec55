/**
 * One simulated truck through the gateway's native stitcher, as a portal would send it: the same frames the
 * simulated portal client sends (calibration frames, then image slices of 16 lines), the gateway's default stitch
 * options, and every tile the stitcher emits handed to the caller with its ground truth. Runs on the calling thread;
 * the stitcher does its pixel work on the libuv pool.
 */
import { DEFAULT_CONFIG } from '../../src/config/index.js';
import {
  DEFAULT_PORTAL_CLIENT_OPTIONS,
  DEFAULT_SIMULATION_OPTIONS,
  createDetector,
  generateTruck,
  realismDetectorOptions,
  hashSeed,
  renderAir,
  renderDark,
  renderLines,
  toWire,
  truthLabels,
  type CalibrationFrames,
  type Detector,
  type ImageSliceTransform,
  type GenerateTruckOptions,
  type Scene,
  type TruthLabels,
} from '../simulator/index.js';
import { createStitcher, validateStitcherOptions, type StitcherFactory, type StitcherOptions, type TileInfo } from '../../src/stitch/index.js';

export interface ScanTilesOptions {
  /** Detector elements per line. Default 1024. */
  pixels?: number;
  /** Truck generation options (threat probability, forced categories or threats, ...). */
  truck?: GenerateTruckOptions;
  /** Calibration frames before the slices, as the simulated portal sends them; false: the stitcher uses the leading air lines. */
  calibration?: CalibrationFrames | false;
  /** Stitcher implementation. Default 'native' (what the gateway runs). */
  stitcher?: StitcherFactory;
  /** Energies the simulated portal sends (1: a single-energy scanner, high energy only). Default 2. */
  energies?: 1 | 2;
  /**
   * Re-renders each image slice as another scanner would (tools/simulator/foreign-scanner.ts), made for this truck's
   * detector; for checking out-of-distribution detection, never for training data.
   */
  imageTransform?: (detector: Detector, seed: number) => ImageSliceTransform;
}

/** What one truck gives to its tile callback. */
export interface ScannedTruck {
  seed: number;
  detector: Detector;
  scene: Scene;
  truth: TruthLabels;
  stitch: StitcherOptions;
}

/** Called for every batch of tiles; `buffer` holds tile i at [tiles[i].slot * tileFloats, ...) until it returns. */
export type TileSink = (truck: ScannedTruck, tiles: readonly TileInfo[], buffer: Float32Array, tileFloats: number) => void;

export const DATASET_SCAN_DEFAULTS = Object.freeze({
  pixels: DEFAULT_SIMULATION_OPTIONS.pixels, // detector elements
  lineRateHz: DEFAULT_SIMULATION_OPTIONS.lineRate, // lines/s
  speedMps: DEFAULT_SIMULATION_OPTIONS.vehicleSpeedMps, // m/s
  linesPerSlice: DEFAULT_SIMULATION_OPTIONS.linesPerSlice, // lines per image slice
  calibration: DEFAULT_PORTAL_CLIENT_OPTIONS.calibration,
  tileCapacity: 64, // tiles per stitcher job
  pushLinesPerJob: 256, // lines pushed between two process() calls
});

/** Detector seed of dataset truck `seed`: every truck gets its own gains, dark offsets and dead pixels. */
export function datasetDetectorSeed(seed: number): number {
  return hashSeed(seed, 'dataset', 'detector');
}

/** The gateway's stitch options (config defaults) for a detector. */
export function gatewayStitchOptions(pixels: number, energies: 1 | 2 = 2): StitcherOptions {
  return validateStitcherOptions({ ...DEFAULT_CONFIG.stitch, pixels, energies });
}

/** Simulates truck `seed`, stitches it and passes every tile to `sink`. Resolves with the truck once all tiles are out. */
export async function scanTruckTiles(seed: number, options: ScanTilesOptions, sink: TileSink): Promise<ScannedTruck> {
  const d = DATASET_SCAN_DEFAULTS;
  const detector = createDetector({
    pixels: options.pixels ?? d.pixels,
    lineRateHz: d.lineRateHz,
    speedMps: d.speedMps,
    seed: datasetDetectorSeed(seed),
    energies: options.energies ?? 2,
    // The hard simulator's detector effects come with its scenes (realism.ts).
    ...realismDetectorOptions(options.truck?.realism, options.pixels ?? d.pixels),
  });
  const scene = generateTruck(seed, detector, options.truck);
  const stitch = gatewayStitchOptions(detector.pixels, detector.energies);
  const truck: ScannedTruck = { seed, detector, scene, truth: truthLabels(scene, detector), stitch };
  const stitcher = createStitcher(stitch, options.stitcher);
  const transform = options.imageTransform?.(detector, seed);
  try {
    const buffers = {
      tiles: new Float32Array(stitcher.tileFloats * d.tileCapacity),
      preview: new Uint8Array(stitcher.previewBytes),
    };
    const drain = async (): Promise<boolean> => {
      for (;;) {
        const r = await stitcher.process(buffers);
        if (r.tiles.length > 0) sink(truck, r.tiles, buffers.tiles, stitcher.tileFloats);
        if (r.done) return true;
        if (!r.more) return false;
      }
    };
    const n = detector.pixels;
    const calibration = options.calibration === undefined ? d.calibration : options.calibration;
    const scratch = new Uint16Array(Math.max(d.linesPerSlice, calibration ? Math.max(calibration.darkLines, calibration.airLines) : 0) * 2 * n);
    if (calibration && calibration.darkLines > 0) {
      const frame = scratch.subarray(0, calibration.darkLines * 2 * n);
      renderDark(detector, calibration.darkLines, frame, scene.noiseSeed);
      stitcher.push(2, 0, calibration.darkLines, toWire(detector, frame, calibration.darkLines));
    }
    if (calibration && calibration.airLines > 0) {
      const frame = scratch.subarray(0, calibration.airLines * 2 * n);
      renderAir(detector, calibration.airLines, frame, scene.noiseSeed);
      stitcher.push(3, 0, calibration.airLines, toWire(detector, frame, calibration.airLines));
    }
    let sinceJob = 0;
    for (let line = 0; line < scene.totalLines; line += d.linesPerSlice) {
      const count = Math.min(d.linesPerSlice, scene.totalLines - line);
      const slice = scratch.subarray(0, count * 2 * n);
      renderLines(scene, detector, line, count, slice);
      transform?.(slice, line, count);
      stitcher.push(1, line, count, toWire(detector, slice, count));
      sinceJob += count;
      if (sinceJob >= d.pushLinesPerJob) {
        sinceJob = 0;
        await drain();
      }
    }
    stitcher.finish(scene.totalLines);
    // After finish() every job makes progress; the bound only guards against a stitcher that never says done.
    for (let jobs = 0; !(await drain()); jobs++) {
      if (jobs > scene.totalLines) throw new Error(`stitcher did not finish truck ${seed} after ${jobs} jobs`);
    }
    return truck;
  } finally {
    stitcher.close();
  }
}
