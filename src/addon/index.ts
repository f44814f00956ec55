/**
 * The native addon's door (native/, built into build/Release/scanline_native.node): loaded in one place (load.ts),
 * typed in one place, used by every stage that needs it: the stitcher (src/stitch), O_DIRECT buffers (ingest), row
 * copies for the preview canvas (operator), 16-bit planes for images (server), SCHED_IDLE for inference workers, file
 * digests that seal scans (storage).
 * Functions here turn the addon's coded errors into ScanlineErrors; those with a JS fallback say so.
 */
import { toScanlineError } from '../errors/index.js';
import { loadNativeAddon, nativeAddonPath, type ScanlineNativeAddon } from './load.js';

export {
  loadNativeAddon,
  nativeAddonPath,
  type NativeStitcherConstructor,
  type NativeStitcherHandle,
  type PreviewStrip,
  type ProcessBuffers,
  type ProcessResult,
  type PushResult,
  type ScanlineNativeAddon,
  type StitcherStats,
  type TileInfo,
} from './load.js';
export { type CopyRows, copyRows, copyRowsPortable, type PackRgbRows, packRgbRows, packRgbRowsPortable } from './row-runs.js';

/**
 * True when the native addon loads on this thread. With `throwOnFailure`, a failed load throws its
 * ScanlineError('SCANLINE_ERR_STITCH_ADDON_LOAD') (path and cause) instead of returning false.
 */
export function isNativeAddonAvailable(throwOnFailure = false): boolean {
  try {
    loadNativeAddon();
    return true;
  } catch (err) {
    if (throwOnFailure) throw err;
    return false;
  }
}

/** Where the addon lives and which attenuation kernel build this CPU runs (loads the addon). */
export function nativeAddonInfo(): { path: string; kernelIsa: 'avx2' | 'baseline' } {
  return { path: nativeAddonPath(), kernelIsa: loadNativeAddon().kernelIsa };
}

/**
 * Memory for O_DIRECT file writes: a zero-filled ArrayBuffer of `byteLength` bytes starting on an `alignment`
 * boundary (power of two, 64..65536), from the native addon (JS allocations give no alignment guarantee). null when
 * the addon cannot be loaded, so callers fall back to buffered writes. Bad arguments throw SCANLINE_ERR_STORAGE_WRITE.
 */
export function alignedBuffer(byteLength: number, alignment: number): ArrayBuffer | null {
  let addon: ScanlineNativeAddon;
  try {
    addon = loadNativeAddon();
  } catch {
    return null;
  }
  try {
    return addon.alignedBuffer(byteLength, alignment);
  } catch (err) {
    throw toScanlineError(err, 'SCANLINE_ERR_STORAGE_WRITE');
  }
}

/**
 * Transposes one energy of line-major raw data (lines x energies x pixels) into image layout:
 * out[pixel * lines + line] (row = detector pixel, column = line), for 16-bit PNGs. Native; throws
 * SCANLINE_ERR_STITCH_BUFFER for short or mistyped arrays and SCANLINE_ERR_SLICE_GEOMETRY for bad dimensions.
 */
export function extractPlane(src: Uint16Array, lines: number, energies: number, pixels: number, energy: number, out: Uint16Array): void {
  const addon = loadNativeAddon();
  try {
    addon.extractPlane(src, lines, energies, pixels, energy, out);
  } catch (err) {
    throw toScanlineError(err, 'SCANLINE_ERR_STITCH_FAILED');
  }
}

/**
 * Runs the calling thread (and the threads it starts afterwards) under Linux's SCHED_IDLE policy: it gets a CPU only
 * when no normal thread wants one. For the inference workers (src/inference): the event loop then never waits for
 * them to be preempted. Returns 'idle' when applied, 'unavailable' where the addon does not load or the platform has
 * no such policy; throws SCANLINE_ERR_INFER_WORKER_START when the kernel refuses.
 */
export function setThreadIdleScheduling(): 'idle' | 'unavailable' {
  let addon: ScanlineNativeAddon;
  try {
    addon = loadNativeAddon();
  } catch {
    return 'unavailable';
  }
  try {
    return addon.setThreadIdleScheduling() ? 'idle' : 'unavailable';
  } catch (err) {
    throw toScanlineError(err, 'SCANLINE_ERR_INFER_WORKER_START');
  }
}

/**
 * SHA-256 (lowercase hex) of the regular file at `path`, read and hashed on a libuv pool thread: the JS thread only
 * starts the job and takes the answer, however large the file. null when the file does not exist; 'unavailable' when
 * the addon does not load (the caller then hashes on its own thread); rejects with SCANLINE_ERR_STORAGE_READ when the
 * file cannot be read or is not a regular file.
 */
export async function sha256FileNative(path: string): Promise<string | null | 'unavailable'> {
  let addon: ScanlineNativeAddon;
  try {
    addon = loadNativeAddon();
  } catch {
    return 'unavailable';
  }
  // An addon built before sha256File existed (a stale build/) loads but lacks it: hashed on the JS thread then.
  if (typeof addon.sha256File !== 'function') return 'unavailable';
  try {
    return await addon.sha256File(path);
  } catch (err) {
    throw toScanlineError(err, 'SCANLINE_ERR_STORAGE_READ');
  }
}
