/**
 * The stitch stage's public door: one Stitcher per scan (native addon in production, the TypeScript reference for
 * tests and benchmarks) and its options. The addon itself, and its helpers that are not stitching, are src/addon.
 */
import { ScanlineError } from '../errors/index.js';
import { isNativeAddonAvailable } from '../addon/index.js';
import { NativeStitcher } from './native-stitcher.js';
import { type StitcherOptionsInput, validateStitcherOptions } from './options.js';
import { TsStitcher } from './ts-stitcher.js';
import type { Stitcher } from './types.js';

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
export { PREVIEW_GAP_COLOUR, PREVIEW_PALETTE, tileRowPixels } from './ts-stitcher.js';

export type StitcherImplementation = 'native' | 'typescript';

/**
 * Creates the stitcher of one scan. `options` are validated (and defaults merged) here, so a plain
 * StitcherOptions or a partial input both work; invalid ones throw SCANLINE_ERR_STITCH_OPTIONS listing every
 * problem. 'native' throws SCANLINE_ERR_STITCH_ADDON_LOAD when the addon cannot be loaded.
 */
export function createStitcher(options: StitcherOptionsInput, implementation: StitcherImplementation = 'native'): Stitcher {
  const validated = validateStitcherOptions(options);
  if (implementation === 'native') return new NativeStitcher(validated);
  if (implementation === 'typescript') return new TsStitcher(validated);
  throw new ScanlineError('SCANLINE_ERR_STITCH_OPTIONS', `Expected "native" or "typescript" for implementation but received ${String(implementation)}`);
}

/**
 * True when the native addon loads on this thread. With `throwOnFailure`, a failed load throws its
 * ScanlineError('SCANLINE_ERR_STITCH_ADDON_LOAD') (path and cause) instead of returning false.
 */
export function isNativeStitcherAvailable(throwOnFailure = false): boolean {
  return isNativeAddonAvailable(throwOnFailure);
}
