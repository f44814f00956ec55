/**
 * Writes one simulated scan to a directory with the same rendering code the portal client streams, for tests,
 * training data and offline work:
 *   raw.u16                 line-major u16 little-endian, each line high energy then low energy (exactly the
 *                           payloads the wire carries, concatenated)
 *   dark.u16, air.u16       the calibration frames the portal client sends first (same layout)
 *   truth.json              labels, detector, seed, layout and the scene's ground truth in mm
 *   truth-attenuation.f32   optional: noiseless attenuation, float32 little-endian, same layout as raw.u16
 */
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ScanlineError } from '../../src/errors/index.js';
import type { Detector } from './detector.js';
import { MATERIALS } from './physics.js';
import type { CalibrationFrames } from './portal-client.js';
import { renderAir, renderDark, renderLines, trueAttenuationLines } from './render.js';
import type { Scene } from './scene.js';
import { truthLabels } from './truth.js';

export interface WriteScanOptions {
  /** Also write truth-attenuation.f32. Default true. */
  attenuation?: boolean;
  /** Calibration frames to write (as the portal client sends them). Default 16 dark + 16 air lines. */
  calibration?: CalibrationFrames | false;
}

export interface WrittenScan {
  dir: string;
  raw: string;
  truth: string;
  dark: string | null;
  air: string | null;
  attenuation: string | null;
  totalLines: number;
  bytes: number;
}

const CHUNK_LINES = 256;

async function writeChunked(
  path: string,
  totalLines: number,
  valuesPerLine: number,
  make: (first: number, count: number) => Uint16Array | Float32Array,
): Promise<number> {
  const fh = await open(path, 'w');
  let bytes = 0;
  try {
    for (let first = 0; first < totalLines; first += CHUNK_LINES) {
      const count = Math.min(CHUNK_LINES, totalLines - first);
      const values = make(first, count).subarray(0, count * valuesPerLine);
      await fh.write(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      bytes += values.byteLength;
    }
  } finally {
    await fh.close();
  }
  return bytes;
}

/** Renders `scene` with `detector` into `dir` (created if needed). */
export async function writeScanToDisk(scene: Scene, detector: Detector, dir: string, options: WriteScanOptions = {}): Promise<WrittenScan> {
  const n = detector.pixels;
  const perLine = 2 * n;
  const calibration = options.calibration === undefined ? { darkLines: 16, airLines: 16 } : options.calibration;
  const files: WrittenScan = {
    dir,
    raw: join(dir, 'raw.u16'),
    truth: join(dir, 'truth.json'),
    dark: calibration && calibration.darkLines > 0 ? join(dir, 'dark.u16') : null,
    air: calibration && calibration.airLines > 0 ? join(dir, 'air.u16') : null,
    attenuation: options.attenuation === false ? null : join(dir, 'truth-attenuation.f32'),
    totalLines: scene.totalLines,
    bytes: 0,
  };
  try {
    await mkdir(dir, { recursive: true });
    const u16 = new Uint16Array(CHUNK_LINES * perLine);
    files.bytes += await writeChunked(files.raw, scene.totalLines, perLine, (first, count) => {
      renderLines(scene, detector, first, count, u16);
      return u16;
    });
    if (calibration && files.dark) {
      const dark = new Uint16Array(calibration.darkLines * perLine);
      renderDark(detector, calibration.darkLines, dark, scene.noiseSeed);
      await writeFile(files.dark, new Uint8Array(dark.buffer));
      files.bytes += dark.byteLength;
    }
    if (calibration && files.air) {
      const air = new Uint16Array(calibration.airLines * perLine);
      renderAir(detector, calibration.airLines, air, scene.noiseSeed);
      await writeFile(files.air, new Uint8Array(air.buffer));
      files.bytes += air.byteLength;
    }
    if (files.attenuation) {
      const f32 = new Float32Array(CHUNK_LINES * perLine);
      files.bytes += await writeChunked(files.attenuation, scene.totalLines, perLine, (first, count) => {
        trueAttenuationLines(scene, detector, first, count, f32);
        return f32;
      });
    }
    const truth = {
      format: 'scanline-simulated-scan/1',
      seed: scene.seed,
      noiseSeed: scene.noiseSeed,
      layout: {
        lines: scene.totalLines,
        energies: 2,
        energyOrder: ['high', 'low'],
        pixels: n,
        valueType: 'u16le',
        order: 'line, energy, pixel',
        pixel0: 'top of the detector column',
      },
      detector: { ...detector.options, mmPerLine: detector.mmPerLine, topMm: detector.topMm, deadPixels: [...detector.deadPixels] },
      labels: truthLabels(scene, detector),
      scene: {
        mmPerLine: scene.mmPerLine,
        vehicle: scene.vehicle,
        cargoBay: scene.cargoBay,
        cargo: scene.cargo,
        threats: scene.threats,
        steps: scene.steps ?? null,
      },
      materials: MATERIALS,
      files: {
        raw: 'raw.u16',
        dark: files.dark ? 'dark.u16' : null,
        air: files.air ? 'air.u16' : null,
        attenuation: files.attenuation ? 'truth-attenuation.f32' : null,
      },
    };
    const text = `${JSON.stringify(truth, null, 2)}\n`;
    await writeFile(files.truth, text);
    files.bytes += Buffer.byteLength(text);
  } catch (err) {
    throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `writing the simulated scan to ${dir} failed: ${(err as Error).message}`, {}, { cause: err });
  }
  return files;
}
