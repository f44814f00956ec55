/**
 * The stitch stage's public door: one Stitcher per scan (the native addon in production; tests and benchmarks may
 * pass the TypeScript reference) and its options. The addon itself, and its helpers that are not stitching, are src/addon.
 */
import { isNativeAddonAvailable } from '../addon/index.js';
import { NativeStitcher } from './native-stitcher.js';
import { type StitcherOptionsInput, validateStitcherOptions } from './options.js';
import type { Stitcher, StitcherOptions } from './types.js';

export * from './types.js';

export {
  DEFAULT_STITCHER_OPTIONS,
  MaterialOptionsSchema,
  refineStitcherTuning,
  StitcherOptionsSchema,
  type StitcherOptionsInput,
  type StitcherTuning,
  StitcherTuningSchema,
  TileOptionsSchema,
  validateStitcherOptions,
} from './options.js';
export { PREVIEW_GAP_COLOUR, PREVIEW_PALETTE, tileRowPixels } from './output-geometry.js';
export { previewBytesOf, tileFloatsOf } from './options.js';

/**
 * Makes the Stitcher of one scan from validated options. Production uses the native addon (the default); tests and
 * benchmarks pass the TypeScript reference (test/helpers/ts-stitcher.ts) as the oracle and the baseline.
 */
export type StitcherFactory = (options: StitcherOptions) => Stitcher;

/** The production stitcher: the native addon. */
export const nativeStitcher: StitcherFactory = (options) => new NativeStitcher(options);

/**
 * Creates the stitcher of one scan. `options` are validated (and defaults merged) here, so a plain
 * StitcherOptions or a partial input both work; invalid ones throw SCANLINE_ERR_STITCH_OPTIONS listing every
 * problem. The native stitcher throws SCANLINE_ERR_STITCH_ADDON_LOAD when the addon cannot be loaded.
 */
export function createStitcher(options: StitcherOptionsInput, factory: StitcherFactory = nativeStitcher): Stitcher {
  return factory(validateStitcherOptions(options));
}

/**
 * True when the native addon loads on this thread. With `throwOnFailure`, a failed load throws its
 * ScanlineError('SCANLINE_ERR_STITCH_ADDON_LOAD') (path and cause) instead of returning false.
 */
export function isNativeStitcherAvailable(throwOnFailure = false): boolean {
  return isNativeAddonAvailable(throwOnFailure);
}
