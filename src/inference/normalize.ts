/**
 * The manifest's input normalisation, applied while packing tiles into a batch:
 *   x' = clamp((x - offset[c]) * scale[c], clampMin, clampMax)
 * computed in float32 at every step (Math.fround), exactly as the training code does it in numpy, so the gateway
 * feeds the model bit-identical inputs. Used on the worker thread (ONNX backend) or by the batcher (other backends).
 */
import type { ModelInput } from './manifest-types.js';

export interface Normalizer {
  readonly channels: number;
  /** Floats per channel plane (size x size). */
  readonly planeFloats: number;
  readonly tileFloats: number;
  readonly offset: Float32Array;
  readonly scale: Float32Array;
  readonly clampMin: number;
  readonly clampMax: number;
}

export function createNormalizer(input: Pick<ModelInput, 'shape' | 'normalization'>): Normalizer {
  const [, c, h, w] = input.shape;
  const n = input.normalization;
  return Object.freeze({
    channels: c,
    planeFloats: h * w,
    tileFloats: c * h * w,
    offset: Float32Array.from(n.offset),
    scale: Float32Array.from(n.scale),
    clampMin: Math.fround(n.clampMin),
    clampMax: Math.fround(n.clampMax),
  });
}

/**
 * Writes the normalised `src` (one tile, NCHW without N) into dst[at .. at + tileFloats). Its cost per tile is why
 * the ONNX worker backend runs it off the event loop (bench/RESULTS.md, 'Normalisation on the worker').
 */
export function packTile(dst: Float32Array, at: number, src: Float32Array, n: Normalizer): void {
  const plane = n.planeFloats;
  const lo = n.clampMin;
  const hi = n.clampMax;
  for (let c = 0; c < n.channels; c++) {
    const off = n.offset[c];
    const sc = n.scale[c];
    const s = src.subarray(c * plane, (c + 1) * plane);
    const d = dst.subarray(at + c * plane, at + (c + 1) * plane);
    for (let i = 0; i < plane; i++) {
      const v = Math.fround(Math.fround(s[i] - off) * sc);
      d[i] = v < lo ? lo : v > hi ? hi : v;
    }
  }
}

/** Normalises `batchSize` raw tiles in place (the first batchSize x tileFloats floats of `batch`). */
export function normalizeBatchInPlace(batch: Float32Array, batchSize: number, n: Normalizer): void {
  for (let i = 0; i < batchSize; i++) {
    const tile = batch.subarray(i * n.tileFloats, (i + 1) * n.tileFloats);
    packTile(tile, 0, tile, n);
  }
}
