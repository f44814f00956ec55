/**
 * The one place that loads build/Release/scanline_native.node, and the types of everything it exports, including
 * the data that crosses the boundary (what push() and process() return).
 * The addon is context-aware: it can be loaded by the main thread and by worker threads at the same time.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScanlineError } from '../errors/index.js';

export interface PushResult {
  /** Lines stored by this push. */
  newLines: number;
  /** Lines that were already stored with identical values (replays are idempotent). */
  duplicateLines: number;
}

export interface TileInfo {
  /** Slot in the caller's tile buffer: the tile's floats are at [slot * tileFloats, (slot + 1) * tileFloats). */
  slot: number;
  /** First raw line (along the scan) the tile covers. */
  line: number;
  /** First raw detector pixel the tile covers. */
  pixel: number;
  /** Raw lines and pixels covered (size * downsample, unless the scan or detector is smaller: then zero-padded). */
  lines: number;
  pixels: number;
}

/**
 * Preview strips are RGBA, one sample per previewDownsample x previewDownsample block (block means of the
 * attenuation). Dual energy: the colour of the material class of the block (Background white, Organic orange,
 * Mixed green, Inorganic blue, HeavyMetal violet, Impenetrable near-black), shaded by the high-energy attenuation
 * (more attenuation is darker); single energy: grey. A block containing a gap line is red. Exact values:
 * PREVIEW_PALETTE / PREVIEW_GAP_COLOUR and native/preview.h.
 */
export interface PreviewStrip {
  /** First raw line covered; a multiple of previewDownsample. */
  line: number;
  /** Raw lines covered. */
  lines: number;
  /** Strip size in preview samples: width runs along the scan, height down the detector. */
  width: number;
  height: number;
}

export interface ProcessBuffers {
  /**
   * Receives tiles, NCHW float32 (C = energies, H = detector direction, W = scan direction), attenuation values.
   * Capacity in tiles is tiles.length / tileFloats (see `tileFloats`).
   */
  tiles: Float32Array;
  /** Receives the preview strip as RGBA, row-major, `width * height * 4` bytes; see `previewBytes`. */
  preview: Uint8Array;
}

export interface ProcessResult {
  /**
   * The frontier range this job covered, [start, end): its stored lines were calibrated, its gap lines (see `gaps`
   * and earlier results) count as attenuation 0 in tiles and preview. start === end when nothing was calibrated.
   */
  calibrated: [number, number];
  /** Every line below `frontier` is calibrated or declared a gap. */
  frontier: number;
  /**
   * Gaps declared by this job, [start, end) in lines. A gap is declared whole when the reorder window passes its
   * first line (up to the next stored line) or when finish() leaves it missing; it may reach beyond `frontier`,
   * which then crosses it over the next jobs. Lines arriving inside a declared gap are stored but late.
   */
  gaps: Array<[number, number]>;
  /** Tiles written into `buffers.tiles` by this job (valid until the next process() call). */
  tiles: TileInfo[];
  /** Preview strip written into `buffers.preview`, or null. */
  preview: PreviewStrip | null;
  /** True when more work is ready right now (job limit or tile capacity reached): call process() again. */
  more: boolean;
  /** True once finish() was called and every line, tile and strip has been produced. */
  done: boolean;
}

export interface StitcherStats {
  storedLines: number;
  /** 1 + the highest line stored, 0 when none. */
  highestLine: number;
  frontier: number;
  gapLines: number;
  /** Lines that arrived after being declared part of a gap: stored raw, not processed. */
  lateLines: number;
  duplicateLines: number;
  calibrated: boolean;
  deadPixels: number;
  tilesEmitted: number;
  /** Bytes held by the raw store and work buffers. */
  memoryBytes: number;
}

/**
 * A native stitcher object (native/stitcher_binding.cc). Methods throw Error objects whose `code` is a
 * SCANLINE_ERR_* string; process() rejects with such an error. Every method except close() throws
 * SCANLINE_ERR_STITCH_CLOSED after close().
 */
export interface NativeStitcherHandle {
  readonly tileFloats: number;
  readonly previewBytes: number;
  push(kind: number, firstLine: number, lineCount: number, payload: Uint16Array): PushResult;
  /** Plans the job on the calling thread, runs the pixel work on a libuv pool thread, resolves on this thread. */
  process(tiles: Float32Array, preview: Uint8Array): Promise<ProcessResult>;
  finish(totalLines: number): void;
  readRaw(firstLine: number, lineCount: number, out: Uint16Array): void;
  missingRanges(firstLine: number, lineCount: number): Array<[number, number]>;
  readAttenuation(energy: number, firstLine: number, lineCount: number, out: Float32Array): void;
  readMaterial(firstLine: number, lineCount: number, out: Uint8Array): void;
  stats(): StitcherStats;
  close(): void;
}

export interface NativeStitcherConstructor {
  /**
   * `options`: a StitcherOptions from validateStitcherOptions (src/stitch), read once into a plain struct; the addon
   * only asserts against values that would be unsafe.
   */
  new (options: object): NativeStitcherHandle;
}

/** `rows` runs of `rowWords` source words: run r from src[srcStart + r * srcStride] to dst[dstStart + r * dstStride]. */
export type RowRunsCopy<Dst> = (
  dst: Dst,
  dstStart: number,
  dstStride: number,
  src: Uint32Array,
  srcStart: number,
  srcStride: number,
  rowWords: number,
  rows: number,
) => void;

export interface ScanlineNativeAddon {
  Stitcher: NativeStitcherConstructor;
  /** out[pixel * lines + line] = src[(line * energies + energy) * pixels + pixel]. */
  extractPlane(src: Uint16Array, lines: number, energies: number, pixels: number, energy: number, out: Uint16Array): void;
  /**
   * A zero-filled ArrayBuffer of byteLength bytes whose memory starts on an `alignment` boundary (power of two,
   * 64..65536); freed when collected. Throws SCANLINE_ERR_STORAGE_WRITE for bad arguments or no memory.
   */
  alignedBuffer(byteLength: number, alignment: number): ArrayBuffer;
  /** See CopyRows (row-runs.ts); errors are coded SCANLINE_ERR_STITCH_BUFFER. */
  copyRows: RowRunsCopy<Uint32Array>;
  /** copyRows into packed RGB (see PackRgbRows in row-runs.ts); throws SCANLINE_ERR_STITCH_BUFFER. */
  packRgbRows: RowRunsCopy<Uint8Array>;
  /**
   * Puts the calling thread under SCHED_IDLE (Linux): true when done, false where the platform has none. Throws
   * SCANLINE_ERR_INFER_WORKER_START when the kernel refuses. Threads the caller starts afterwards inherit it.
   */
  setThreadIdleScheduling(): boolean;
  /**
   * SHA-256 (lowercase hex) of the regular file at `path`, read and hashed on a libuv pool thread; null when it does
   * not exist. Rejects (never throws) with SCANLINE_ERR_STORAGE_READ when it cannot be read, is not a regular file, or
   * `path` is not a non-empty string without NUL characters.
   */
  sha256File(path: string): Promise<string | null>;
  /** Which build of the attenuation kernel this CPU runs. */
  readonly kernelIsa: 'avx2' | 'baseline';
}

/** The package root: the nearest directory above this module holding package.json (works from src/ and dist/src/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return dirname(fileURLToPath(import.meta.url));
    dir = parent;
  }
}

let addonPath: string | undefined;
let loaded: ScanlineNativeAddon | undefined;

/** Absolute path of the addon file (it may not exist when the build failed). */
export function nativeAddonPath(): string {
  addonPath ??= join(packageRoot(), 'build', 'Release', 'scanline_native.node');
  return addonPath;
}

/** Loads the addon once per thread; throws ScanlineError('SCANLINE_ERR_STITCH_ADDON_LOAD') with the path and cause. */
export function loadNativeAddon(): ScanlineNativeAddon {
  if (loaded) return loaded;
  const path = nativeAddonPath();
  try {
    const require = createRequire(import.meta.url);
    loaded = require(path) as ScanlineNativeAddon;
    return loaded;
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new ScanlineError(
      'SCANLINE_ERR_STITCH_ADDON_LOAD',
      `Could not load the native stitcher addon from ${path} (build it with npm install): ${reason}`,
      { path },
      { cause },
    );
  }
}
