/**
 * One pre-rendered truck for the load generator: rendered once by the bench (the simulator's physics is far too
 * slow to run per frame at bench rates), written to a temp file, and replayed by every simulated portal.
 *
 * File layout: u32 LE byte length of a JSON TruckMeta, the JSON, zero padding to a multiple of 8, then the u16
 * sections back to back in wire layout (line-major, high energy then low energy per line): dark, air, image.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Declaration, DetectorInfo, VehicleInfo } from '../../src/protocol/index.js';
import {
  createDetector,
  declarationMessage,
  detectorInfo,
  generateTruck,
  renderAir,
  renderDark,
  renderLines,
  vehicleInfo,
} from '../../tools/simulator/index.js';

export interface TruckMeta {
  detector: DetectorInfo;
  seed: number;
  darkLines: number;
  airLines: number;
  /** Image lines of the scan (leading air, vehicle, trailing air). */
  lines: number;
  vehicle: VehicleInfo | null;
  declaration: Declaration | null;
}

export interface Truck extends TruckMeta {
  dark: Uint16Array;
  air: Uint16Array;
  image: Uint16Array;
}

export interface RenderTruckOptions {
  pixels: number;
  lineRateHz: number;
  /** Vehicle speed through the portal, m/s (sets the lines per truck). */
  speedMps: number;
  seed: number;
  calibrationLines: number;
}

/** Renders one truck with the simulator and writes it to `file`. Returns its metadata. */
export function renderTruckFile(file: string, o: RenderTruckOptions): TruckMeta {
  const detector = createDetector({ pixels: o.pixels, lineRateHz: o.lineRateHz, speedMps: o.speedMps, seed: o.seed });
  const scene = generateTruck(o.seed, detector);
  const values = detector.energies * detector.pixels;
  const dark = new Uint16Array(o.calibrationLines * values);
  const air = new Uint16Array(o.calibrationLines * values);
  const image = new Uint16Array(scene.totalLines * values);
  renderDark(detector, o.calibrationLines, dark, o.seed);
  renderAir(detector, o.calibrationLines, air, o.seed);
  renderLines(scene, detector, 0, scene.totalLines, image);
  const meta: TruckMeta = {
    detector: detectorInfo(detector),
    seed: o.seed,
    darkLines: o.calibrationLines,
    airLines: o.calibrationLines,
    lines: scene.totalLines,
    vehicle: vehicleInfo(scene) ?? null,
    declaration: declarationMessage(scene) ?? null,
  };
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const headerBytes = Math.ceil((4 + json.byteLength) / 8) * 8;
  const out = Buffer.alloc(headerBytes + dark.byteLength + air.byteLength + image.byteLength);
  out.writeUInt32LE(json.byteLength, 0);
  json.copy(out, 4);
  let at = headerBytes;
  for (const section of [dark, air, image]) {
    Buffer.from(section.buffer, section.byteOffset, section.byteLength).copy(out, at);
    at += section.byteLength;
  }
  writeFileSync(file, out);
  return meta;
}

/** Reads a file written by renderTruckFile. The sections share one buffer. */
export function readTruckFile(file: string): Truck {
  const bytes = readFileSync(file);
  const jsonBytes = bytes.readUInt32LE(0);
  const meta = JSON.parse(bytes.toString('utf8', 4, 4 + jsonBytes)) as TruckMeta;
  const headerBytes = Math.ceil((4 + jsonBytes) / 8) * 8;
  // Copy into a fresh, aligned ArrayBuffer: a Buffer from readFileSync may sit at an odd offset of a pool.
  const body = new Uint8Array(bytes.byteLength - headerBytes);
  body.set(bytes.subarray(headerBytes));
  const values = meta.detector.energies * meta.detector.pixels;
  const darkValues = meta.darkLines * values;
  const airValues = meta.airLines * values;
  return {
    ...meta,
    dark: new Uint16Array(body.buffer, 0, darkValues),
    air: new Uint16Array(body.buffer, darkValues * 2, airValues),
    image: new Uint16Array(body.buffer, (darkValues + airValues) * 2, meta.lines * values),
  };
}
