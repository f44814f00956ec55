/**
 * The one place that loads build/Release/scanline_native.node, and the types of everything it exports.
 * The addon is context-aware: it can be loaded by the main thread and by worker threads at the same time.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScanlineError } from '../errors/index.js';
import type { ProcessResult, PushResult, StitcherOptions, StitcherStats } from './types.js';

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
  /** `options` must come from validateStitcherOptions (the addon only guards against unsafe values). */
  new (options: StitcherOptions): NativeStitcherHandle;
}

export interface ScanlineNativeAddon {
  Stitcher: NativeStitcherConstructor;
  /** out[pixel * lines + line] = src[(line * energies + energy) * pixels + pixel]. */
  extractPlane(src: Uint16Array, lines: number, energies: number, pixels: number, energy: number, out: Uint16Array): void;
  /**
   * A zero-filled ArrayBuffer of byteLength bytes whose memory starts on an `alignment` boundary (power of two,
   * 64..65536); freed when collected. Throws SCANLINE_ERR_STORAGE_WRITE for bad arguments or no memory.
   */
  alignedBuffer(byteLength: number, alignment: number): ArrayBuffer;
  /** See CopyRows (src/stitch/index.ts); errors are coded SCANLINE_ERR_STITCH_BUFFER. */
  copyRows(dst: Uint32Array, dstStart: number, dstStride: number, src: Uint32Array, srcStart: number, srcStride: number, rowWords: number, rows: number): void;
  /** copyRows into packed RGB (see PackRgbRows in index.ts); throws SCANLINE_ERR_STITCH_BUFFER. */
  packRgbRows(
    dst: Uint8Array,
    dstStart: number,
    dstStride: number,
    src: Uint32Array,
    srcStart: number,
    srcStride: number,
    rowWords: number,
    rows: number,
  ): void;
  /**
   * Puts the calling thread under SCHED_IDLE (Linux): true when done, false where the platform has none. Throws
   * SCANLINE_ERR_INFER_WORKER_START when the kernel refuses. Threads the caller starts afterwards inherit it.
   */
  setThreadIdleScheduling(): boolean;
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
