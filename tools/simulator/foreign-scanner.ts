/**
 * Scans "from another scanner": the simulator's raw counts re-rendered as a different detector and processing chain
 * would deliver them, for testing out-of-distribution detection on images the models never saw. Never used for
 * training or for fitting the out-of-distribution statistics (models/train), only to check them.
 *
 * Each profile works on one image slice in the wire layout (line, energy high then low, pixel), converts counts to
 * attenuation with the detector's own dark and gain (what the gateway's calibration will undo), changes the
 * attenuation as that scanner would, and converts back. Dark and air calibration frames are left alone: the other
 * scanner calibrates itself correctly; its images still differ.
 * - `response-curve`: another source spectrum and detector response (e.g. a 4 MeV linac with a thicker scintillator):
 *   attenuation is compressed at the top and the low/high energy ratio is stretched;
 * - `blur-noise`: a coarser detector pitch and a noisier chain: 5-pixel blur down the column, 3-line blur along the
 *   scan, and added Gaussian noise;
 * - `texture`: cluttered real-world loads: a multiplicative, seeded texture over everything that attenuates.
 * Deterministic for a given seed and line.
 */
import { hashSeed, Rng } from './random.js';
import type { Detector } from './detector.js';

export const FOREIGN_SCANNER_PROFILES = ['response-curve', 'blur-noise', 'texture'] as const;
export type ForeignScannerProfile = (typeof FOREIGN_SCANNER_PROFILES)[number];

/** Changes one image slice in place: `values` holds `lineCount` lines from `firstLine` in the wire layout. */
export type ImageSliceTransform = (values: Uint16Array, firstLine: number, lineCount: number) => void;

const MIN_TRANSMISSION = 1e-5;

export function foreignScannerTransform(profile: ForeignScannerProfile, detector: Detector, seed = 1): ImageSliceTransform {
  const n = detector.pixels;
  const dark = detector.dark;
  const gain = detector.gain;
  const air = detector.airCounts;
  const toAttenuation = (values: Uint16Array, lineCount: number, out: Float64Array): void => {
    for (let k = 0; k < lineCount; k++) {
      for (let e = 0; e < 2; e++) {
        const base = (k * 2 + e) * n;
        for (let p = 0; p < n; p++) {
          const open = air[e] * gain[p];
          if (open <= 0) {
            out[base + p] = Number.NaN; // a dead pixel stays as it is
            continue;
          }
          const t = Math.max(MIN_TRANSMISSION, (values[base + p] - dark[p]) / open);
          out[base + p] = -Math.log(t);
        }
      }
    }
  };
  const toCounts = (att: Float64Array, lineCount: number, values: Uint16Array): void => {
    for (let k = 0; k < lineCount; k++) {
      for (let e = 0; e < 2; e++) {
        const base = (k * 2 + e) * n;
        for (let p = 0; p < n; p++) {
          const a = att[base + p];
          if (Number.isNaN(a)) continue;
          const v = Math.round(dark[p] + air[e] * gain[p] * Math.exp(-a));
          values[base + p] = v < 0 ? 0 : v > 65_535 ? 65_535 : v;
        }
      }
    }
  };
  let scratch = new Float64Array(0);
  let blurred = new Float64Array(0);
  const buffers = (size: number): void => {
    if (scratch.length < size) {
      scratch = new Float64Array(size);
      blurred = new Float64Array(size);
    }
  };
  return (values, firstLine, lineCount) => {
    buffers(lineCount * 2 * n);
    const att = scratch;
    toAttenuation(values, lineCount, att);
    if (profile === 'response-curve') {
      for (let k = 0; k < lineCount; k++) {
        const hb = k * 2 * n;
        const lb = hb + n;
        for (let p = 0; p < n; p++) {
          const h = att[hb + p];
          const l = att[lb + p];
          if (Number.isNaN(h) || Number.isNaN(l)) continue;
          // Saturating response, then a low channel whose contrast to the high one is 1.8 times stronger.
          const h2 = 4 * Math.log1p(h / 4) * 1.15;
          att[hb + p] = h2;
          att[lb + p] = h2 + 1.8 * (l - h) * (h > 0 ? h2 / h : 1);
        }
      }
    } else if (profile === 'blur-noise') {
      const b = blurred;
      for (let k = 0; k < lineCount; k++) {
        for (let e = 0; e < 2; e++) {
          const base = (k * 2 + e) * n;
          for (let p = 0; p < n; p++) {
            let s = 0;
            let c = 0;
            for (let dk = -1; dk <= 1; dk++) {
              const kk = Math.min(lineCount - 1, Math.max(0, k + dk));
              for (let dp = -2; dp <= 2; dp++) {
                const pp = Math.min(n - 1, Math.max(0, p + dp));
                const v = att[(kk * 2 + e) * n + pp];
                if (Number.isNaN(v)) continue;
                s += v;
                c++;
              }
            }
            b[base + p] = c > 0 ? s / c : Number.NaN;
          }
        }
      }
      for (let k = 0; k < lineCount; k++) {
        const rng = new Rng(hashSeed(seed, 'foreign-noise', firstLine + k));
        for (let i = k * 2 * n; i < (k + 1) * 2 * n; i++) {
          if (Number.isNaN(att[i])) continue;
          att[i] = Math.max(0, b[i] + 0.06 * Math.exp(Math.min(b[i], 8) / 2) * 0.2 * rng.normal());
        }
      }
    } else {
      for (let k = 0; k < lineCount; k++) {
        const line = firstLine + k;
        for (let p = 0; p < n; p++) {
          // Two octaves of smooth seeded ripple plus a fine speckle, as mixed real loads look.
          const t =
            0.35 * Math.sin(line / 7.3 + Math.sin(p / 11.1) * 2.1 + seed) +
            0.25 * Math.sin(p / 4.7 + Math.cos(line / 5.9) * 1.7) +
            0.2 * Math.sin((line * 0.61 + p * 0.83) / 1.9);
          const factor = 1 + t;
          for (let e = 0; e < 2; e++) {
            const i = (k * 2 + e) * n + p;
            const a = att[i];
            if (Number.isNaN(a) || a < 0.05) continue;
            att[i] = a * factor;
          }
        }
      }
    }
    toCounts(att, lineCount, values);
  };
}
