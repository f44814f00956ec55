import type { StitcherOptions } from './types.js';

/**
 * Stitcher defaults for a dual-energy MeV linac portal (effective energies ~2 MeV low / ~4 MeV high) and the
 * demo models' tile geometry. Geometry fields (pixels, energies) always come from the portal's hello.
 */
export const DEFAULT_STITCHER_OPTIONS: Omit<StitcherOptions, 'pixels' | 'energies'> = Object.freeze({
  maxLines: 16_384, // lines; ~16 s at 1000 lines/s
  chunkLines: 256, // lines per raw-store allocation
  reorderWindowLines: 1_024, // lines
  airLines: 32, // leading lines averaged as air when no air frame is sent
  deadPixelFraction: 0.05, // of the median (air - dark)
  attenuationMax: 10, // -ln(T) clamp (T = 4.5e-5)
  maxLinesPerJob: 512, // lines per process() job
  material: Object.freeze({
    minAttenuation: 0.05, // below: background
    maxAttenuation: 7.5, // above: impenetrable
    ratioThresholds: Object.freeze([1.41, 1.34, 1.2]) as unknown as [number, number, number],
  }),
  tile: Object.freeze({ size: 64, downsample: 4, strideLines: 128, overlapPixels: 64 }),
  previewDownsample: 2,
});
