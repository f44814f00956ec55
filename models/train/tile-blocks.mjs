// The tile resolution of raw attenuation lines, shared by the recipe's scripts that render threats on their own
// (threat-patches.mjs, threat-visibility.mjs): the stitcher's tiles are block means of -ln T over DS x DS raw
// samples (DEFAULT_CONFIG.stitch.tile.downsample).

/** The gateway's tile downsample. */
export const DS = 4;

/**
 * Writes the DS x DS block means of one energy of `raw` (lines in the wire layout [line][energy high, low][pixel],
 * `pixels` per line) over detector pixels p0..p1 and all `lines` lines into `out` ([h][w]: h = (p1 - p0) / DS down
 * the detector, w = lines / DS along the scan; a Float32Array or Float64Array) and returns it.
 */
export function blockMeans(raw, energy, pixels, p0, p1, lines, out) {
  const w = lines / DS;
  const h = (p1 - p0) / DS;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let j = 0; j < DS; j++) {
        const row = ((x * DS + j) * 2 + energy) * pixels;
        for (let k = 0; k < DS; k++) s += raw[row + p0 + y * DS + k];
      }
      out[y * w + x] = s / (DS * DS);
    }
  }
  return out;
}
