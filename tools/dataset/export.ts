/**
 * `exportDataset`: simulated trucks -> native stitcher -> labelled tiles on disk, for the training recipe in
 * models/train/. Files in `out` (all little-endian, N = tiles, K = threat labels, G = threat grid):
 *   tiles.f32    N x 2 x size x size float32, NCHW, the stitcher's tiles as the gateway's models receive them
 *                (attenuation, high energy first; not normalised)
 *   goods.u8     N goods label indices into index.json labels.goods
 *   threats.u8   N x K x G x G 0/1 threat cells ([kind][h][w], h down the detector, w along the scan)
 *   index.json   labels, geometry, stitch options, simulator fingerprint, per-scan truth, per-tile placement
 * Tiles stream to disk per stitcher job; only the small per-tile index stays in memory. Trucks run one at a time
 * on the calling thread (run several exports in parallel processes for more cores).
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { packageVersion } from '../../src/config/index.js';
import { invalidArgument } from '../../src/errors/index.js';
import {
  CARGO_CATEGORY_INFO,
  DEFAULT_TRUCK_OPTIONS,
  FOREIGN_SCANNER_PROFILES,
  createDetector,
  foreignScannerTransform,
  generateTruck,
  realismDetectorOptions,
  renderLines,
  type ForeignScannerProfile,
  type Realism,
  type CalibrationFrames,
  type GenerateTruckOptions,
} from '../simulator/index.js';
import type { TileInfo } from '../../src/stitch/index.js';
import { GOODS_LABELS, GOODS_LABEL_RULES, THREAT_CELL_SAMPLES, THREAT_LABELS, TileLabeler } from './labels.js';
import { DATASET_SCAN_DEFAULTS, datasetDetectorSeed, gatewayStitchOptions, scanTruckTiles, type ScannedTruck } from './scan-tiles.js';

export const DATASET_FORMAT = 'scanline-tiles';
export const DATASET_FORMAT_VERSION = 1;

export const DATASET_FILES = Object.freeze({
  tiles: 'tiles.f32',
  goods: 'goods.u8',
  threats: 'threats.u8',
  index: 'index.json',
});

export interface ExportDatasetOptions {
  /** First and last truck seed, inclusive. */
  seeds: [number, number];
  /** Output directory (created if missing; the dataset files in it are replaced). */
  out: string;
  /** Detector elements per line. Default 1024. */
  pixels?: number;
  /** Probability that a truck carries concealed threats. Default: the simulator's (0.1); training sets use ~0.5. */
  threatProbability?: number;
  /** Further truck options (forced categories, forced threats, mismatch probability, ...). */
  truck?: GenerateTruckOptions;
  /** Calibration frames per scan as the simulated portal sends them (default 16 dark + 16 air); false: none. */
  calibration?: CalibrationFrames | false;
  /**
   * Which tiles to write: 'all' (default) or 'threats' (only tiles with at least one threat cell: a compact
   * threat-rich set for the threat model, whose negatives come from an 'all' export).
   */
  keep?: 'all' | 'threats';
  /**
   * Renders every truck as another scanner would (tools/simulator/foreign-scanner.ts): a set for checking
   * out-of-distribution detection, never for training. Recorded in index.json (generator.foreignScanner).
   */
  foreignScanner?: ForeignScannerProfile;
  /** Energies of the simulated portal: 1 exports single-energy tiles (the high energy, one channel). Default 2. */
  energies?: 1 | 2;
  /** Progress sink, called once per truck. */
  log?: (message: string, fields: Record<string, unknown>) => void;
}

export interface DatasetScanEntry {
  seed: number;
  detectorSeed: number;
  totalLines: number;
  vehicleKind: string | null;
  vehicleLines: [number, number] | null;
  categories: string[];
  cargoSegments: Array<{ startLine: number; endLine: number; category: string }>;
  threats: Array<{ kind: string; variant: string; lineStart: number; lineEnd: number; pixelStart: number; pixelEnd: number }>;
  /** Tiles of this scan: index.json tiles [firstTile, firstTile + tileCount). */
  firstTile: number;
  tileCount: number;
}

/** One tile: its scan, placement (raw line and pixel of its first sample) and goods label (index and share). */
export interface DatasetTileEntry {
  seed: number;
  line: number;
  pixel: number;
  label: number;
  /** Share of the tile area covered by what the label names, 3 decimals. */
  share: number;
  /** Positive threat cells (all kinds). */
  threatCells: number;
}

export interface DatasetSummary {
  out: string;
  scans: number;
  tiles: number;
  /** Tiles per goods label id. */
  labelCounts: Record<string, number>;
  /** Tiles with at least one positive threat cell, per threat label id. */
  threatTiles: Record<string, number>;
  bytes: number;
  seconds: number;
}

const CODE = 'SCANLINE_ERR_CLI_USAGE' as const;

function validate(o: ExportDatasetOptions): { first: number; last: number; pixels: number } {
  if (typeof o !== 'object' || o === null) throw invalidArgument(CODE, 'an options object', 'options', o);
  const s = o.seeds;
  if (!Array.isArray(s) || s.length !== 2 || !s.every((x) => Number.isSafeInteger(x) && x >= 0) || s[0] > s[1]) {
    throw invalidArgument(CODE, 'a seed range [first, last] of integers >= 0 with first <= last', 'seeds', s);
  }
  if (s[1] - s[0] >= 1_000_000) throw invalidArgument(CODE, 'at most 1000000 seeds', 'seeds', s);
  if (typeof o.out !== 'string' || o.out.length === 0) throw invalidArgument(CODE, 'a directory path', 'out', o.out);
  const pixels = o.pixels ?? DATASET_SCAN_DEFAULTS.pixels;
  if (!Number.isInteger(pixels) || pixels < 16 || pixels > 4096) throw invalidArgument(CODE, 'an integer in [16, 4096]', 'pixels', pixels);
  if (o.keep !== undefined && o.keep !== 'all' && o.keep !== 'threats') throw invalidArgument(CODE, "'all' or 'threats'", 'keep', o.keep);
  const p = o.threatProbability;
  if (p !== undefined && (typeof p !== 'number' || !(p >= 0 && p <= 1))) throw invalidArgument(CODE, 'a probability in [0, 1]', 'threatProbability', p);
  return { first: s[0], last: s[1], pixels };
}

/**
 * A fingerprint of the simulator's output: sha256 of a fixed noiseless reference truck's raw lines. It changes
 * whenever the simulator renders trucks differently, so a dataset (and a model trained on it) records which
 * simulator made it.
 */
export function simulatorFingerprint(realism: Realism = 'basic'): string {
  const detector = createDetector({ pixels: 64, noise: false, seed: 1, ...realismDetectorOptions(realism, 64) });
  const scene = generateTruck(1, detector, { threats: ['firearm', 'narcotics', 'explosive'], ...(realism === 'hard' ? { realism } : {}) });
  const lines = new Uint16Array(scene.totalLines * 2 * detector.pixels);
  renderLines(scene, detector, 0, scene.totalLines, lines);
  return createHash('sha256')
    .update(new Uint8Array(lines.buffer, lines.byteOffset, lines.byteLength))
    .digest('hex');
}

/** Exports the labelled tiles of trucks seeds[0]..seeds[1] into `out`. Throws SCANLINE_ERR_CLI_USAGE on bad options. */
export async function exportDataset(options: ExportDatasetOptions): Promise<DatasetSummary> {
  const { first, last, pixels } = validate(options);
  if (endianness() !== 'LE') throw new Error('dataset export writes little-endian files and needs a little-endian host');
  const started = performance.now();
  const truckOptions: GenerateTruckOptions = {
    ...options.truck,
    ...(options.threatProbability === undefined ? {} : { threatProbability: options.threatProbability }),
  };
  // Validate truck options once before creating any file (generateTruck throws on bad ones).
  generateTruck(first, createDetector({ pixels }), truckOptions);
  const calibration = options.calibration === undefined ? DATASET_SCAN_DEFAULTS.calibration : options.calibration;
  const keep = options.keep ?? 'all';
  const foreign = options.foreignScanner;
  if (foreign !== undefined && !FOREIGN_SCANNER_PROFILES.includes(foreign))
    throw invalidArgument(CODE, `one of ${FOREIGN_SCANNER_PROFILES.join(', ')}`, 'foreignScanner', foreign);
  const energies = options.energies ?? 2;
  if (energies !== 1 && energies !== 2) throw invalidArgument(CODE, '1 or 2', 'energies', energies);
  const stitch = gatewayStitchOptions(pixels, energies);
  const tile = stitch.tile;

  mkdirSync(options.out, { recursive: true });
  const fds = {
    tiles: openSync(join(options.out, DATASET_FILES.tiles), 'w'),
    goods: openSync(join(options.out, DATASET_FILES.goods), 'w'),
    threats: openSync(join(options.out, DATASET_FILES.threats), 'w'),
  };
  const scans: DatasetScanEntry[] = [];
  const tiles: DatasetTileEntry[] = [];
  const labelCounts = Object.fromEntries(GOODS_LABELS.map((l) => [l, 0])) as Record<string, number>;
  const threatTiles = Object.fromEntries(THREAT_LABELS.map((l) => [l, 0])) as Record<string, number>;
  let bytes = 0;
  try {
    for (let seed = first; seed <= last; seed++) {
      const firstTile = tiles.length;
      let labeler: TileLabeler | null = null;
      let goodsOut = new Uint8Array(0);
      let threatsOut = new Uint8Array(0);
      const sink = (truck: ScannedTruck, batch: readonly TileInfo[], buffer: Float32Array, tileFloats: number): void => {
        labeler ??= new TileLabeler(truck.scene, truck.detector, truck.truth.threats, tile);
        const cells = labeler.threatCells;
        if (goodsOut.length < batch.length) {
          goodsOut = new Uint8Array(batch.length);
          threatsOut = new Uint8Array(batch.length * cells);
        }
        const perKind = labeler.grid * labeler.grid;
        let kept = 0;
        for (const t of batch) {
          const i = kept;
          const positive = labeler.threats(t, threatsOut, i * cells);
          if (keep === 'threats' && positive === 0) continue;
          kept++;
          const goods = labeler.goods(t);
          goodsOut[i] = goods.label;
          THREAT_LABELS.forEach((kind, k) => {
            if (threatsOut.subarray(i * cells + k * perKind, i * cells + (k + 1) * perKind).includes(1)) threatTiles[kind]++;
          });
          labelCounts[GOODS_LABELS[goods.label]]++;
          tiles.push({ seed, line: t.line, pixel: t.pixel, label: goods.label, share: Math.round(goods.share * 1000) / 1000, threatCells: positive });
          // Tiles of one job sit in consecutive slots; write each by its slot anyway (the contract is per slot).
          const floats = buffer.subarray(t.slot * tileFloats, (t.slot + 1) * tileFloats);
          bytes += writeSync(fds.tiles, floats, 0, floats.byteLength);
        }
        bytes += writeSync(fds.goods, goodsOut, 0, kept);
        bytes += writeSync(fds.threats, threatsOut, 0, kept * cells);
      };
      const truck = await scanTruckTiles(
        seed,
        { pixels, energies, truck: truckOptions, calibration, ...(foreign ? { imageTransform: (d, sd) => foreignScannerTransform(foreign, d, sd) } : {}) },
        sink,
      );
      const t = truck.truth;
      scans.push({
        seed,
        detectorSeed: datasetDetectorSeed(seed),
        totalLines: t.totalLines,
        vehicleKind: t.vehicle?.kind ?? null,
        vehicleLines: t.vehicleLines,
        categories: [...new Set(t.cargoSegments.map((c) => c.category))],
        cargoSegments: t.cargoSegments.map((c) => ({ startLine: c.startLine, endLine: c.endLine, category: c.category })),
        threats: t.threats.map((x) => ({
          kind: x.kind,
          variant: x.variant,
          lineStart: x.lineStart,
          lineEnd: x.lineEnd,
          pixelStart: x.pixelStart,
          pixelEnd: x.pixelEnd,
        })),
        firstTile,
        tileCount: tiles.length - firstTile,
      });
      options.log?.('truck exported', {
        seed,
        lines: t.totalLines,
        tiles: tiles.length - firstTile,
        threats: t.threats.length,
        done: seed - first + 1,
        of: last - first + 1,
      });
    }
  } finally {
    closeSync(fds.tiles);
    closeSync(fds.goods);
    closeSync(fds.threats);
  }

  const grid = tile.size / THREAT_CELL_SAMPLES;
  const index = {
    format: DATASET_FORMAT,
    formatVersion: DATASET_FORMAT_VERSION,
    count: tiles.length,
    files: {
      tiles: { path: DATASET_FILES.tiles, dtype: 'float32', byteOrder: 'little', shape: [tiles.length, energies, tile.size, tile.size], layout: 'NCHW' },
      goods: { path: DATASET_FILES.goods, dtype: 'uint8', shape: [tiles.length] },
      threats: { path: DATASET_FILES.threats, dtype: 'uint8', shape: [tiles.length, THREAT_LABELS.length, grid, grid] },
    },
    tile: {
      size: tile.size,
      downsample: tile.downsample,
      strideLines: tile.strideLines,
      overlapPixels: tile.overlapPixels,
      channels: energies === 2 ? ['attenuation_high', 'attenuation_low'] : ['attenuation_high'],
    },
    labels: {
      goods: GOODS_LABELS.map((id) => ({
        id,
        hsCode: id in CARGO_CATEGORY_INFO ? CARGO_CATEGORY_INFO[id as keyof typeof CARGO_CATEGORY_INFO].hsCode : null,
        cargo: id !== 'vehicle' && id !== 'air',
      })),
      goodsRules: GOODS_LABEL_RULES,
      threats: [...THREAT_LABELS],
      threatGrid: grid,
      threatCellSamples: THREAT_CELL_SAMPLES,
    },
    generator: {
      scanline: packageVersion(),
      simulatorFingerprint: simulatorFingerprint(truckOptions.realism ?? 'basic'),
      seeds: [first, last],
      pixels,
      energies,
      detector: {
        lineRateHz: DATASET_SCAN_DEFAULTS.lineRateHz,
        speedMps: DATASET_SCAN_DEFAULTS.speedMps,
        seed: "hashSeed(seed, 'dataset', 'detector')",
        ...realismDetectorOptions(truckOptions.realism, pixels),
      },
      truck: { ...DEFAULT_TRUCK_OPTIONS, ...truckOptions },
      calibration,
      keep,
      ...(foreign ? { foreignScanner: foreign } : {}),
      linesPerSlice: DATASET_SCAN_DEFAULTS.linesPerSlice,
      stitcher: 'native',
      stitch,
    },
    labelCounts,
    threatTiles,
    scans,
    tiles,
  };
  const json = JSON.stringify(index);
  await writeFile(join(options.out, DATASET_FILES.index), json);
  bytes += Buffer.byteLength(json);
  return {
    out: options.out,
    scans: scans.length,
    tiles: tiles.length,
    labelCounts,
    threatTiles,
    bytes,
    seconds: Math.round((performance.now() - started) / 100) / 10,
  };
}
