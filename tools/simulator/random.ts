/**
 * Seeded pseudo-random numbers for the simulator: xoshiro128** (Blackman & Vigna) seeded through splitmix32.
 *
 * Contract: the same seed gives the same sequence on every run and platform. Everything here is 32-bit integer
 * arithmetic (Math.imul, shifts); the few transcendental functions used (Math.exp, log, sqrt) are V8's own
 * portable implementations (fdlibm ports), not the C library's.
 */

const TWO_POW_32 = 4_294_967_296;

function mix32(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Derives a u32 seed from parts (numbers and strings), e.g. `hashSeed(seed, 'portal', i)`. Numbers are taken as
 * integers up to 2^53 (fractions are truncated); order matters.
 */
export function hashSeed(...parts: Array<number | string>): number {
  let h = 0x9e3779b9 | 0;
  for (const part of parts) {
    if (typeof part === 'string') {
      h = mix32(h, 0x5f3759df);
      for (let i = 0; i < part.length; i++) h = mix32(h, part.charCodeAt(i));
      h = mix32(h, part.length);
    } else {
      const n = Math.trunc(Math.abs(part));
      h = mix32(h, n >>> 0);
      h = mix32(h, Math.floor(n / TWO_POW_32) >>> 0);
      if (part < 0) h = mix32(h, 0x2d);
    }
  }
  return fmix32(h);
}

/**
 * Ziggurat tables for normal deviates (Marsaglia & Tsang 2000, 128 layers). The layer index and the value use
 * separate bits of one u32 (7 and 25), avoiding the index/value correlation of the original 32-bit version.
 */
const ZIG_LAYERS = 128;
const ZIG_R = 3.442619855899;
const ZIG_SCALE = 16_777_216; // 2^24: the signed 25-bit value's magnitude range
const zigK = new Float64Array(ZIG_LAYERS);
const zigW = new Float64Array(ZIG_LAYERS);
const zigF = new Float64Array(ZIG_LAYERS);
{
  const vn = 9.91256303526217e-3;
  let dn = ZIG_R;
  let tn = dn;
  const q = vn / Math.exp(-0.5 * dn * dn);
  zigK[0] = (dn / q) * ZIG_SCALE;
  zigK[1] = 0;
  zigW[0] = q / ZIG_SCALE;
  zigW[ZIG_LAYERS - 1] = dn / ZIG_SCALE;
  zigF[0] = 1;
  zigF[ZIG_LAYERS - 1] = Math.exp(-0.5 * dn * dn);
  for (let i = ZIG_LAYERS - 2; i >= 1; i--) {
    dn = Math.sqrt(-2 * Math.log(vn / dn + Math.exp(-0.5 * dn * dn)));
    zigK[i + 1] = (dn / tn) * ZIG_SCALE;
    tn = dn;
    zigF[i] = Math.exp(-0.5 * dn * dn);
    zigW[i] = dn / ZIG_SCALE;
  }
}

/** Largest mean for which `poisson` draws exactly (inversion); above it, the normal approximation is used. */
export const POISSON_EXACT_MAX_MEAN = 64;

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed` is taken as a u32 (use hashSeed to combine several values). */
  constructor(seed: number) {
    let state = seed >>> 0;
    const next = (): number => {
      state = (state + 0x9e3779b9) | 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) | 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next u32. */
  nextU32(): number {
    const s1 = this.s1;
    let r = Math.imul(s1, 5);
    r = Math.imul((r << 7) | (r >>> 25), 9);
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return r >>> 0;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / TWO_POW_32;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Integer in [lo, hi], both inclusive. */
  intRange(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.uniform() < p;
  }

  /** Normal deviate (ziggurat). */
  normal(mean = 0, sd = 1): number {
    const u = this.nextU32();
    const i = u & (ZIG_LAYERS - 1);
    const h = (u | 0) >> 7; // signed, |h| <= 2^24
    const x = (h < 0 ? -h : h) < zigK[i] ? h * zigW[i] : this.normalSlow(h, i);
    return mean + sd * x;
  }

  /** The ziggurat's rare path (~1.5% of draws): wedges and the tail. */
  private normalSlow(h: number, i: number): number {
    for (;;) {
      const x = h * zigW[i];
      if (i === 0) {
        // Tail beyond R (Marsaglia's method).
        let tx: number;
        let ty: number;
        do {
          tx = -Math.log((this.nextU32() + 0.5) / TWO_POW_32) / ZIG_R;
          ty = -Math.log((this.nextU32() + 0.5) / TWO_POW_32);
        } while (ty + ty < tx * tx);
        return h > 0 ? ZIG_R + tx : -ZIG_R - tx;
      }
      if (zigF[i] + this.uniform() * (zigF[i - 1] - zigF[i]) < Math.exp(-0.5 * x * x)) return x;
      const u = this.nextU32();
      i = u & (ZIG_LAYERS - 1);
      h = (u | 0) >> 7;
      if ((h < 0 ? -h : h) < zigK[i]) return h * zigW[i];
    }
  }

  /**
   * Poisson deviate: exact (sequential inversion) for means up to POISSON_EXACT_MAX_MEAN, normal approximation
   * rounded to an integer >= 0 above.
   */
  poisson(mean: number): number {
    if (!(mean > 0)) return 0;
    if (mean <= POISSON_EXACT_MAX_MEAN) {
      const u = this.uniform();
      let k = 0;
      let p = Math.exp(-mean);
      let cdf = p;
      while (u > cdf && k < 1000) {
        k++;
        p *= mean / k;
        cdf += p;
      }
      return k;
    }
    const v = Math.round(mean + Math.sqrt(mean) * this.normal());
    return v < 0 ? 0 : v;
  }

  /** One element, uniformly. */
  choice<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('choice from an empty list');
    return items[this.int(items.length)];
  }

  /** One element with probability proportional to its weight (weights >= 0, at least one > 0). */
  weighted<T>(items: ReadonlyArray<readonly [T, number]>): T {
    let total = 0;
    for (const [, w] of items) total += w > 0 ? w : 0;
    if (!(total > 0)) throw new RangeError('weighted choice needs at least one positive weight');
    let u = this.uniform() * total;
    for (const [item, w] of items) {
      if (!(w > 0)) continue;
      if (u < w) return item;
      u -= w;
    }
    // Rounding can leave u just above the last weight: return the last positive entry.
    for (let i = items.length - 1; i >= 0; i--) if (items[i][1] > 0) return items[i][0];
    throw new RangeError('unreachable');
  }

  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }
}
