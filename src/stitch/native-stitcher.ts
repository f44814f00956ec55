/** The production Stitcher: a thin layer over the native addon that maps native errors to ScanlineError. */
import { toScanlineError } from '../errors/index.js';
import { loadNativeAddon, type NativeStitcherHandle } from '../addon/index.js';
import type { ProcessBuffers, ProcessResult, PushResult, Stitcher, StitcherOptions, StitcherStats } from './types.js';

export class NativeStitcher implements Stitcher {
  readonly options: Readonly<StitcherOptions>;
  readonly tileFloats: number;
  readonly previewBytes: number;
  readonly #handle: NativeStitcherHandle;

  /** `options` must come from validateStitcherOptions. Throws SCANLINE_ERR_STITCH_ADDON_LOAD without the addon. */
  constructor(options: StitcherOptions) {
    const addon = loadNativeAddon();
    this.options = options;
    try {
      this.#handle = new addon.Stitcher(options);
    } catch (err) {
      throw toScanlineError(err, 'SCANLINE_ERR_STITCH_FAILED');
    }
    this.tileFloats = this.#handle.tileFloats;
    this.previewBytes = this.#handle.previewBytes;
  }

  push(kind: 1 | 2 | 3, firstLine: number, lineCount: number, payload: Uint16Array): PushResult {
    try {
      return this.#handle.push(kind, firstLine, lineCount, payload);
    } catch (err) {
      throw toScanlineError(err, 'SCANLINE_ERR_STITCH_FAILED');
    }
  }

  /**
   * Refused calls (bad buffers, busy, closed) throw inside the native call, so their error carries the caller's
   * stack. A failure of the pixel work itself rejects on a later turn; its stack is this async function's
   * continuation (V8 async stack traces add the awaiting callers). No call-site Error is captured up front: its stack
   * walk, on the event loop at every call, was a large share of process()'s synchronous cost
   * (bench/RESULTS.md, 'No call-site Error per process()').
   */
  async process(buffers: ProcessBuffers): Promise<ProcessResult> {
    try {
      return await this.#handle.process(buffers?.tiles, buffers?.preview);
    } catch (err) {
      throw toScanlineError(err, 'SCANLINE_ERR_STITCH_FAILED');
    }
  }

  finish(totalLines: number): void {
    try {
      this.#handle.finish(totalLines);
    } catch (err) {
      throw toScanlineError(err, 'SCANLINE_ERR_STITCH_FAILED');
    }
  }

  readRaw(firstLine: number, lineCount: number, out: Uint16Array): void {
    try {
      this.#handle.readRaw(firstLine, lineCount, out);
    } catch (err) {
      throw toScanlineError(err, 'SCANLINE_ERR_STITCH_FAILED');
    }
  }

  missingRanges(firstLine: number, lineCount: number): Array<[number, number]> {
    try {
      return this.#handle.missingRanges(firstLine, lineCount);
    } catch (err) {
      throw toScanlineError(err, 'SCANLINE_ERR_STITCH_FAILED');
    }
  }

  readAttenuation(energy: number, firstLine: number, lineCount: number, out: Float32Array): void {
    try {
      this.#handle.readAttenuation(energy, firstLine, lineCount, out);
    } catch (err) {
      throw toScanlineError(err, 'SCANLINE_ERR_STITCH_FAILED');
    }
  }

  readMaterial(firstLine: number, lineCount: number, out: Uint8Array): void {
    try {
      this.#handle.readMaterial(firstLine, lineCount, out);
    } catch (err) {
      throw toScanlineError(err, 'SCANLINE_ERR_STITCH_FAILED');
    }
  }

  stats(): StitcherStats {
    try {
      return this.#handle.stats();
    } catch (err) {
      throw toScanlineError(err, 'SCANLINE_ERR_STITCH_FAILED');
    }
  }

  close(): void {
    this.#handle.close();
  }
}
