/**
 * The stitcher contract: one stitcher per scan. Implemented natively (native/, the production path) and in plain
 * TypeScript (test/helpers/ts-stitcher.ts: the reference implementation, the test oracle and the benchmark baseline).
 * Both implementations must produce the same outputs for the same inputs (floats within 1e-4 relative).
 *
 * Data layout everywhere: raw payloads are line-major, and within a line the energies are interleaved high first:
 *   value(line, energy, pixel) = payload[(line * energies + energy) * pixels + pixel]
 * "line" is the position along the vehicle (time), "pixel" the detector element (height).
 *
 * Threads: every method is called on one JS thread (the main thread or a worker thread that loaded the addon).
 * `process()` does its pixel work off that thread (native: a libuv pool thread) and resolves on it.
 * `push()` may be called while a `process()` is running: pushes only ever write lines that were not stored yet,
 * and a job only reads lines that were stored before it started.
 */

/** Material classes of the dual-energy material map (u8 values). */
export const MaterialClass = {
  /** Too little attenuation to classify (air, thin walls). */
  Background: 0,
  /** Effective Z below ~10: food, wood, paper, textiles, plastics, narcotics, most explosives. */
  Organic: 1,
  /** Effective Z ~10-18: mixtures, light metals (aluminium), glass. */
  Mixed: 2,
  /** Effective Z ~18-30: iron, steel, copper. */
  Inorganic: 3,
  /** Effective Z above ~30: lead, tungsten, uranium. */
  HeavyMetal: 4,
  /** So much attenuation that the ratio is meaningless (the beam did not get through). */
  Impenetrable: 5,
} as const;
export type MaterialClass = (typeof MaterialClass)[keyof typeof MaterialClass];

// The options' types come from their schema (options.ts), where each range and default is defined once; the data
// types that cross the native boundary are the addon's (src/addon).
export type { PreviewStrip, ProcessBuffers, ProcessResult, PushResult, StitcherStats, TileInfo } from '../addon/index.js';
import type { ProcessBuffers, ProcessResult, PushResult, StitcherStats } from '../addon/index.js';
export type { MaterialOptions, StitcherOptions, TileOptions } from './options.js';
import type { StitcherOptions } from './options.js';

export interface Stitcher {
  readonly options: Readonly<StitcherOptions>;
  /** Floats per tile: energies * size * size. */
  readonly tileFloats: number;
  /** Bytes the preview buffer needs: ceil(maxLinesPerJob / d + 1) * ceil(pixels / d) * 4. */
  readonly previewBytes: number;

  /**
   * Stores an image slice (kind 1) or accumulates a calibration frame (kind 2 dark, kind 3 air).
   * `payload` is read synchronously and may be reused by the caller as soon as push returns.
   * Calibration frames must come before any image slice (else SCANLINE_ERR_SLICE_CALIBRATION_LATE).
   * A slice that overlaps stored lines with different values stores nothing and throws
   * SCANLINE_ERR_SLICE_REPLAY_MISMATCH; lines beyond maxLines throw SCANLINE_ERR_SLICE_LINE_RANGE;
   * a payload of the wrong size throws SCANLINE_ERR_SLICE_SIZE.
   */
  push(kind: 1 | 2 | 3, firstLine: number, lineCount: number, payload: Uint16Array): PushResult;

  /**
   * Calibrates the lines that became ready since the last job (contiguous stored lines from the frontier, plus
   * gaps once the reorder window is exceeded or finish() was called), writes newly complete tiles and one preview
   * strip. One job at a time per stitcher (SCANLINE_ERR_STITCH_BUSY otherwise). Processing waits for air
   * calibration: until `airLines` lines (or an air frame) are available nothing is calibrated.
   */
  process(buffers: ProcessBuffers): Promise<ProcessResult>;

  /**
   * Declares the scan over at `totalLines`; lines still missing below it become gaps; final tiles follow.
   * totalLines below the highest stored line or above maxLines, or a second call with a different value, throws
   * SCANLINE_ERR_SLICE_LINE_RANGE; pushes at or beyond totalLines are refused afterwards.
   */
  finish(totalLines: number): void;

  /** Copies raw lines [firstLine, firstLine + lineCount) line-major into `out` (zeros where never received). */
  readRaw(firstLine: number, lineCount: number, out: Uint16Array): void;
  /** Line ranges [start, end) within [firstLine, firstLine + lineCount) that were never stored. */
  missingRanges(firstLine: number, lineCount: number): Array<[number, number]>;
  /**
   * Calibrated attenuation of one energy for the lines, [line][pixel] into `out`, recomputed from the raw store
   * (lines never received read 0; lines that arrived late read their values). Before calibration is possible:
   * SCANLINE_ERR_IMAGE_UNAVAILABLE; an energy index out of range: SCANLINE_ERR_SLICE_GEOMETRY.
   */
  readAttenuation(energy: number, firstLine: number, lineCount: number, out: Float32Array): void;
  /** Material classes for the lines, [line][pixel] into `out` (dual energy only, else SLICE_GEOMETRY; as above). */
  readMaterial(firstLine: number, lineCount: number, out: Uint8Array): void;

  stats(): StitcherStats;
  /** Frees native memory. Safe to call twice; a running job finishes first. Any later call throws STITCH_CLOSED. */
  close(): void;
}
