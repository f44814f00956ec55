/**
 * Ground-truth labels of a scan in image coordinates: cargo segments as line ranges, threats as line x pixel
 * boxes, the declaration and whether it lies. Ranges are half-open [start, end) and clipped to the scan and the
 * detector.
 */
import type { CargoCategory } from './cargo.js';
import type { Detector } from './detector.js';
import { lineAt, type DeclarationTruth, type Scene, type VehicleSummary } from './scene.js';
import type { ThreatKind } from './threats.js';

export interface CargoSegmentLabel {
  startLine: number;
  endLine: number;
  category: CargoCategory;
  hsCode: string | null;
}

export interface ThreatLabel {
  kind: ThreatKind;
  variant: string;
  lineStart: number;
  lineEnd: number;
  pixelStart: number;
  pixelEnd: number;
}

export interface TruthLabels {
  seed: number;
  totalLines: number;
  /** Leading air lines (the vehicle starts at this line). */
  airLines: number;
  trailingAirLines: number;
  /** Lines showing the vehicle, [start, end). */
  vehicleLines: [number, number] | null;
  vehicle: VehicleSummary | null;
  cargoSegments: CargoSegmentLabel[];
  threats: ThreatLabel[];
  declaration: DeclarationTruth | null;
}

function lineRange(scene: Scene, x0: number, x1: number): [number, number] {
  const a = Math.max(0, Math.floor(lineAt(scene, x0)));
  const b = Math.min(scene.totalLines, Math.ceil(lineAt(scene, x1)));
  return [a, Math.max(a, b)];
}

function pixelRange(detector: Detector, y0: number, y1: number): [number, number] {
  const a = Math.max(0, Math.floor((detector.topMm - y1) / detector.pitchMm));
  const b = Math.min(detector.pixels, Math.ceil((detector.topMm - y0) / detector.pitchMm));
  return [a, Math.max(a, b)];
}

export function truthLabels(scene: Scene, detector: Detector): TruthLabels {
  return {
    seed: scene.seed,
    totalLines: scene.totalLines,
    airLines: scene.leadingAirLines,
    trailingAirLines: scene.trailingAirLines,
    vehicleLines: scene.vehicle ? lineRange(scene, 0, scene.vehicle.lengthMm) : null,
    vehicle: scene.vehicle ? { ...scene.vehicle } : null,
    cargoSegments: scene.cargo.map((c) => {
      const [startLine, endLine] = lineRange(scene, c.x0, c.x1);
      return { startLine, endLine, category: c.category, hsCode: c.hsCode };
    }),
    threats: scene.threats.map((t) => {
      const [lineStart, lineEnd] = lineRange(scene, t.x0, t.x1);
      const [pixelStart, pixelEnd] = pixelRange(detector, t.y0, t.y1);
      return { kind: t.kind, variant: t.variant, lineStart, lineEnd, pixelStart, pixelEnd };
    }),
    declaration: scene.declaration ? { ...scene.declaration, hsCodes: [...scene.declaration.hsCodes], categories: [...scene.declaration.categories] } : null,
  };
}
