/**
 * Scenes: what one scan sees, as plain data. A scene is a list of primitives in the vehicle's side view plus the
 * mapping from scan lines to positions along the vehicle (leading air lines, then the vehicle from its front
 * bumper, then trailing air lines) and the ground truth (cargo segments, threats, declaration).
 *
 * `generateTruck(seed, detector, options)` is deterministic: the same seed, detector travel per line and options
 * give the same scene. Line n samples the vehicle at x = (n - leadingAirLines + 0.5) * mmPerLine.
 */
import { invalidArgument } from '../../src/errors/index.js';
import type { Declaration, VehicleInfo } from '../../src/protocol/index.js';
import { CARGO_CATEGORIES, CARGO_CATEGORY_INFO, DEFAULT_CARGO_MIX, loadCargo, type CargoCategory } from './cargo.js';
import type { Detector } from './detector.js';
import { MATERIALS, type MaterialId } from './physics.js';
import { SceneBuilder, type Primitive } from './primitives.js';
import { Rng, hashSeed } from './random.js';
import { THREAT_KINDS, placeThreat, type ThreatKind } from './threats.js';
import { BODY_LENGTH_RANGE_MM, VEHICLE_KINDS, buildVehicle, type CargoBay, type VehicleKind } from './vehicle.js';
import {
  HARD_CATEGORY_COUNTS,
  REALISM_LEVELS,
  addClutter,
  concealmentRegion,
  textureCargo,
  varyingSpeedEdges,
  type Concealment,
  type Realism,
} from './realism.js';

export interface CargoSegmentTruth {
  category: CargoCategory;
  hsCode: string | null;
  /** Extent of the goods in the side view, mm (for 'empty': the cargo bay). */
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

export interface ThreatTruth {
  kind: ThreatKind;
  variant: string;
  /** How it is hidden (the hard simulator); 'in-load' for every threat of the basic one. */
  concealment: Concealment;
  /** Segment the threat is concealed in (index into `cargo`), -1 when none. */
  segment: number;
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

export interface DeclarationTruth {
  /** HS codes as declared (what goes on the wire). */
  hsCodes: string[];
  /** Categories as declared. */
  categories: CargoCategory[];
  description: string;
  /** True when the declared categories differ from the real cargo. */
  mismatch: boolean;
}

export interface VehicleSummary {
  kind: VehicleKind;
  plate: string;
  lengthMm: number;
  heightMm: number;
  bodyLengthMm: number;
  axles: number;
}

export interface StepWedgeStep {
  material: MaterialId;
  thicknessMm: number;
  x0: number;
  x1: number;
}

export interface Scene {
  readonly seed: number;
  /** Seeds the detector noise of this scan. */
  readonly noiseSeed: number;
  /** Vehicle travel per line, mm. */
  readonly mmPerLine: number;
  readonly leadingAirLines: number;
  readonly trailingAirLines: number;
  readonly totalLines: number;
  /**
   * The hard simulator's varying speed: where each line starts along the vehicle, mm (totalLines + 1 edges, line l
   * covering [lineEdgesMm[l], lineEdgesMm[l + 1])). Absent: every line travels mmPerLine, line `leadingAirLines`
   * starting at x = 0.
   */
  readonly lineEdgesMm?: Float64Array;
  readonly vehicle: VehicleSummary | null;
  readonly cargoBay: CargoBay | null;
  readonly cargo: readonly CargoSegmentTruth[];
  readonly threats: readonly ThreatTruth[];
  readonly declaration: DeclarationTruth | null;
  /** Step-wedge scenes only: the steps along x. */
  readonly steps?: readonly StepWedgeStep[];
  readonly primitives: readonly Primitive[];
}

export interface GenerateTruckOptions {
  /** Vehicle type; random (weighted towards semi-trailers and 40' containers) when absent. */
  vehicleKind?: VehicleKind;
  /** Trailer / rigid body length, mm (6000-14600; containers ignore it). Default per kind (13600 for trailers). */
  bodyLengthMm?: number;
  /** Force the cargo: 1-3 categories loaded front to rear ('empty' only alone). */
  categories?: CargoCategory[];
  /** Relative weights for random cargo (missing categories keep their default weight; 0 excludes one). */
  cargoMix?: Partial<Record<CargoCategory, number>>;
  /** Probability that a truck carries one or two concealed threats. Default 0.1. */
  threatProbability?: number;
  /** Force these threats (ignores threatProbability). */
  threats?: ThreatKind[];
  /** Probability that the declaration disagrees with the real cargo. Default 0.2. */
  mismatchProbability?: number;
  /** Air lines before the vehicle (>= 64; the gateway averages the first 32 as air). Default 80. */
  leadingAirLines?: number;
  /** Air lines after the vehicle. Default 48. */
  trailingAirLines?: number;
  /**
   * 'hard': textured and cluttered goods, mostly mixed loads, threats concealed in dense goods and behind structure
   * (realism.ts); pair it with hardDetectorOptions (what the committed models were trained on since 2026-12-07).
   * Default 'basic': the first simulator, whose scenes stay byte-identical.
   */
  realism?: Realism;
}

export const DEFAULT_TRUCK_OPTIONS = Object.freeze({
  threatProbability: 0.1,
  mismatchProbability: 0.2,
  leadingAirLines: 80, // lines
  trailingAirLines: 48, // lines
});

const VEHICLE_WEIGHTS: ReadonlyArray<readonly [VehicleKind, number]> = [
  ['curtainsider', 3],
  ['box-trailer', 2],
  ['reefer', 1],
  ['container-40', 2.5],
  ['container-20', 1],
  ['rigid-box', 1],
];

const CODE = 'SCANLINE_ERR_CLI_USAGE' as const;

function checkProbability(name: string, v: unknown): number {
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw invalidArgument(CODE, 'a probability in [0, 1]', name, v);
  return v;
}

function checkLines(name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 100_000) {
    throw invalidArgument(CODE, `an integer in [${min}, 100000]`, name, v);
  }
  return v;
}

function validateTruckOptions(o: GenerateTruckOptions): void {
  if (o.vehicleKind !== undefined && !VEHICLE_KINDS.includes(o.vehicleKind)) {
    throw invalidArgument(CODE, `one of ${VEHICLE_KINDS.join(', ')}`, 'vehicleKind', o.vehicleKind);
  }
  if (o.bodyLengthMm !== undefined) {
    const v = o.bodyLengthMm;
    if (typeof v !== 'number' || !(v >= BODY_LENGTH_RANGE_MM.min && v <= BODY_LENGTH_RANGE_MM.max)) {
      throw invalidArgument(CODE, `a length in [${BODY_LENGTH_RANGE_MM.min}, ${BODY_LENGTH_RANGE_MM.max}] mm`, 'bodyLengthMm', v);
    }
  }
  if (o.categories !== undefined) {
    const c = o.categories;
    if (!Array.isArray(c) || c.length < 1 || c.length > 3 || c.some((x) => !CARGO_CATEGORIES.includes(x)) || (c.includes('empty') && c.length > 1)) {
      throw invalidArgument(CODE, "1-3 cargo categories ('empty' only alone)", 'categories', c);
    }
  }
  if (o.cargoMix !== undefined) {
    for (const [k, w] of Object.entries(o.cargoMix)) {
      if (!CARGO_CATEGORIES.includes(k as CargoCategory)) throw invalidArgument(CODE, `one of ${CARGO_CATEGORIES.join(', ')}`, 'cargoMix key', k);
      if (typeof w !== 'number' || !(w >= 0) || !Number.isFinite(w)) throw invalidArgument(CODE, 'a weight >= 0', `cargoMix.${k}`, w);
    }
    const total = CARGO_CATEGORIES.reduce((s, k) => s + (o.cargoMix?.[k] ?? DEFAULT_CARGO_MIX[k]), 0);
    if (!(total > 0)) throw invalidArgument(CODE, 'at least one positive weight', 'cargoMix', o.cargoMix);
  }
  if (o.threatProbability !== undefined) checkProbability('threatProbability', o.threatProbability);
  if (o.mismatchProbability !== undefined) checkProbability('mismatchProbability', o.mismatchProbability);
  if (o.threats !== undefined && (!Array.isArray(o.threats) || o.threats.length > 4 || o.threats.some((t) => !THREAT_KINDS.includes(t)))) {
    throw invalidArgument(CODE, `up to 4 of ${THREAT_KINDS.join(', ')}`, 'threats', o.threats);
  }
  if (o.realism !== undefined && !REALISM_LEVELS.includes(o.realism)) throw invalidArgument(CODE, `one of ${REALISM_LEVELS.join(', ')}`, 'realism', o.realism);
  if (o.leadingAirLines !== undefined) checkLines('leadingAirLines', o.leadingAirLines, 64);
  if (o.trailingAirLines !== undefined) checkLines('trailingAirLines', o.trailingAirLines, 0);
}

type LineGeometry = Pick<Scene, 'leadingAirLines' | 'mmPerLine'> & { readonly lineEdgesMm?: Float64Array };

/** Line index (possibly fractional; line l spans [l, l + 1)) at position x along the vehicle. */
export function lineAt(scene: LineGeometry, xMm: number): number {
  const edges = scene.lineEdgesMm;
  if (!edges) return scene.leadingAirLines + xMm / scene.mmPerLine;
  const last = edges.length - 1;
  // Beyond the scan, the nominal travel per line.
  if (xMm < edges[0]) return (xMm - edges[0]) / scene.mmPerLine;
  if (xMm >= edges[last]) return last + (xMm - edges[last]) / scene.mmPerLine;
  let lo = 0;
  let hi = last;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (edges[mid] <= xMm) lo = mid;
    else hi = mid;
  }
  return lo + (xMm - edges[lo]) / (edges[lo + 1] - edges[lo]);
}

/** Position along the vehicle, mm, sampled by a line (its centre). */
export function xOfLine(scene: LineGeometry, line: number): number {
  const edges = scene.lineEdgesMm;
  if (!edges) return (line - scene.leadingAirLines + 0.5) * scene.mmPerLine;
  const l = Math.min(edges.length - 2, Math.max(0, Math.floor(line)));
  return (edges[l] + edges[l + 1]) / 2;
}

function plateFor(rng: Rng): string {
  const L = 'ABCDEFGHJKLMNPRSTVWXYZ';
  const l = () => L[rng.int(L.length)];
  return `${l()}${l()}-${rng.intRange(100, 999)}-${l()}${l()}`;
}

function drawCargoCategories(rng: Rng, o: GenerateTruckOptions): CargoCategory[] {
  if (o.categories) return [...o.categories];
  const weights = CARGO_CATEGORIES.map((k) => [k, o.cargoMix?.[k] ?? DEFAULT_CARGO_MIX[k]] as const);
  const first = rng.weighted(weights);
  if (first === 'empty') return ['empty'];
  const n = rng.weighted(
    o.realism === 'hard'
      ? HARD_CATEGORY_COUNTS
      : ([
          [1, 0.7],
          [2, 0.25],
          [3, 0.05],
        ] as const),
  );
  const out: CargoCategory[] = [first];
  for (let i = 1; i < n; i++) {
    const rest = weights.filter(([k, w]) => k !== 'empty' && w > 0 && !out.includes(k));
    if (rest.length === 0) break;
    out.push(rng.weighted(rest));
  }
  return out;
}

function declare(rng: Rng, real: CargoCategory[], mismatchProbability: number): DeclarationTruth {
  const goods: CargoCategory[] = real.filter((c) => c !== 'empty');
  let declared = [...goods];
  const mismatch = rng.chance(mismatchProbability);
  if (mismatch) {
    const others: CargoCategory[] = CARGO_CATEGORIES.filter((c) => c !== 'empty' && !goods.includes(c));
    if (goods.length === 0) declared = [rng.choice(others)];
    else if (rng.chance(0.1)) declared = [];
    else declared[rng.int(declared.length)] = rng.choice(others);
  }
  const hsCodes = [...new Set(declared.map((c) => CARGO_CATEGORY_INFO[c].hsCode as string))];
  const description = declared.length === 0 ? 'Empty' : declared.map((c) => CARGO_CATEGORY_INFO[c].description).join('; ');
  return { hsCodes, categories: declared, description, mismatch };
}

/** Generates one truck scan scene. Throws ScanlineError SCANLINE_ERR_CLI_USAGE on invalid options. */
export function generateTruck(seed: number, detector: Pick<Detector, 'mmPerLine'>, options: GenerateTruckOptions = {}): Scene {
  if (!Number.isSafeInteger(seed) || seed < 0) throw invalidArgument(CODE, 'an integer >= 0', 'seed', seed);
  validateTruckOptions(options);
  const o = { ...DEFAULT_TRUCK_OPTIONS, ...options };
  const rng = new Rng(hashSeed(seed, 'truck'));
  const b = new SceneBuilder();
  const hard = o.realism === 'hard';

  const kind = o.vehicleKind ?? rng.weighted(VEHICLE_WEIGHTS);
  const layout = buildVehicle(b, new Rng(hashSeed(seed, 'vehicle')), kind, o.bodyLengthMm);
  const bay = layout.cargoBay;

  // Cargo: 1-3 categories front to rear over a loaded part of the bay.
  const categories = drawCargoCategories(rng, o);
  const cargo: CargoSegmentTruth[] = [];
  const bayLength = bay.x1 - bay.x0;
  const loaded = categories[0] === 'empty' ? 0 : bayLength * rng.range(0.75, 1);
  const shares = categories.map(() => rng.range(0.6, 1.4));
  const shareSum = shares.reduce((s, v) => s + v, 0);
  let x = bay.x0;
  categories.forEach((category, i) => {
    const len = categories[0] === 'empty' ? bayLength : (loaded * shares[i]) / shareSum;
    const slot = { x0: x, x1: x + len, y0: bay.y0, y1: bay.y1, widthMm: bay.widthMm };
    b.tag = 'cargo';
    b.group = i;
    const from = b.primitives.length;
    loadCargo(b, new Rng(hashSeed(seed, 'cargo', i)), category, slot);
    if (hard && category !== 'empty') {
      // The goods' own extent first: clutter is spread over it (and may stick out of it, as loose items do).
      const goods = b.boundsSince(from) ?? slot;
      addClutter(b, new Rng(hashSeed(seed, 'clutter', i)), { x0: goods.x0, x1: goods.x1, y0: slot.y0, y1: Math.min(slot.y1, goods.y1 + 300) }, bay.widthMm);
      textureCargo(b.primitives, from, new Rng(hashSeed(seed, 'texture', i)));
    }
    const bounds = b.boundsSince(from) ?? { x0: slot.x0, x1: slot.x1, y0: slot.y0, y1: slot.y1 };
    cargo.push({ category, hsCode: CARGO_CATEGORY_INFO[category].hsCode, ...bounds });
    x += len + 80;
  });

  // Threats, concealed inside a loaded segment (or anywhere in the bay of an empty truck).
  const threatKinds: ThreatKind[] = o.threats
    ? [...o.threats]
    : rng.chance(o.threatProbability)
      ? Array.from({ length: rng.chance(0.2) ? 2 : 1 }, () => rng.choice(THREAT_KINDS))
      : [];
  const threats: ThreatTruth[] = [];
  const threatRng = new Rng(hashSeed(seed, 'threats'));
  threatKinds.forEach((kindOfThreat, i) => {
    let region: { x0: number; x1: number; y0: number; y1: number };
    let segment: number;
    let concealment: Concealment = 'in-load';
    if (hard) {
      // Its own stream: the basic simulator's threats stay where they were.
      ({ region, segment, how: concealment } = concealmentRegion(new Rng(hashSeed(seed, 'concealment', i)), bay, cargo));
    } else {
      const loadedSegments = cargo.map((c, k) => [c, k] as const).filter(([c]) => c.category !== 'empty');
      const [seg, k] = loadedSegments.length > 0 ? threatRng.choice(loadedSegments) : [null, -1];
      segment = k;
      region = seg
        ? { x0: seg.x0, x1: seg.x1, y0: Math.max(seg.y0, bay.y0), y1: Math.min(seg.y1, bay.y1) }
        : { x0: bay.x0, x1: bay.x1, y0: bay.y0, y1: bay.y0 + 400 };
    }
    b.tag = 'threat';
    b.group = i;
    const from = b.primitives.length;
    const variant = placeThreat(b, threatRng, kindOfThreat, region);
    const bounds = b.boundsSince(from) as { x0: number; x1: number; y0: number; y1: number };
    threats.push({ kind: kindOfThreat, variant, concealment, segment, ...bounds });
  });

  const declaration = declare(new Rng(hashSeed(seed, 'declaration')), categories, o.mismatchProbability);
  const mmPerLine = detector.mmPerLine;
  const edges = hard ? varyingSpeedEdges(new Rng(hashSeed(seed, 'speed')), mmPerLine, o.leadingAirLines, o.trailingAirLines, layout.lengthMm) : null;
  const vehicleLines = Math.ceil(layout.lengthMm / mmPerLine);
  return Object.freeze({
    seed,
    noiseSeed: hashSeed(seed, 'noise'),
    mmPerLine,
    leadingAirLines: o.leadingAirLines,
    trailingAirLines: o.trailingAirLines,
    totalLines: edges ? edges.length - 1 : o.leadingAirLines + vehicleLines + o.trailingAirLines,
    ...(edges ? { lineEdgesMm: edges } : {}),
    vehicle: {
      kind,
      plate: plateFor(new Rng(hashSeed(seed, 'plate'))),
      lengthMm: layout.lengthMm,
      heightMm: layout.heightMm,
      bodyLengthMm: layout.bodyLengthMm,
      axles: layout.axles,
    },
    cargoBay: { ...bay },
    cargo,
    threats,
    declaration,
    primitives: b.primitives,
  });
}

/** The `vehicle` object of a scan.start message for a scene. */
export function vehicleInfo(scene: Scene): VehicleInfo | undefined {
  return scene.vehicle ? { plate: scene.vehicle.plate, kind: scene.vehicle.kind } : undefined;
}

/** The `declaration` object of a scan.start message for a scene. */
export function declarationMessage(scene: Scene): Declaration | undefined {
  return scene.declaration ? { hsCodes: [...scene.declaration.hsCodes], description: scene.declaration.description } : undefined;
}

export interface CustomSceneOptions {
  /** Length covered by the primitives along x, mm; default: the largest x1 of the primitives. */
  lengthMm?: number;
  leadingAirLines?: number;
  trailingAirLines?: number;
  seed?: number;
}

/** A scene from hand-made primitives (tests, calibration targets). No vehicle, cargo, threats or declaration. */
export function sceneFromPrimitives(detector: Pick<Detector, 'mmPerLine'>, primitives: readonly Primitive[], options: CustomSceneOptions = {}): Scene {
  const leading = options.leadingAirLines ?? DEFAULT_TRUCK_OPTIONS.leadingAirLines;
  const trailing = options.trailingAirLines ?? DEFAULT_TRUCK_OPTIONS.trailingAirLines;
  checkLines('leadingAirLines', leading, 0);
  checkLines('trailingAirLines', trailing, 0);
  const seed = options.seed ?? 0;
  const length = options.lengthMm ?? primitives.reduce((m, p) => Math.max(m, p.x1), 0);
  return Object.freeze({
    seed,
    noiseSeed: hashSeed(seed, 'noise'),
    mmPerLine: detector.mmPerLine,
    leadingAirLines: leading,
    trailingAirLines: trailing,
    totalLines: leading + Math.ceil(length / detector.mmPerLine) + trailing,
    vehicle: null,
    cargoBay: null,
    cargo: [],
    threats: [],
    declaration: null,
    primitives: [...primitives],
  });
}

export interface StepWedgeOptions {
  /** Default: every non-air material of the table. */
  materials?: MaterialId[];
  /** Default: 10, 30, 100, 300 mm for metals (density > 2), 50, 200, 600, 1500 mm otherwise. */
  thicknessesMm?: number[];
  /** Length of each step along x, mm. Default 200. */
  stepLengthMm?: number;
  /** Heights covered by the slabs, mm. Default 500..4000. */
  y0?: number;
  y1?: number;
}

/**
 * A calibration scan: slabs of known materials and thicknesses one after another along x (what a portal's
 * step-wedge scan gives to calibrate material thresholds). `steps` lists them.
 */
export function generateStepWedge(detector: Pick<Detector, 'mmPerLine'>, options: StepWedgeOptions = {}): Scene {
  const materials = options.materials ?? (Object.keys(MATERIALS) as MaterialId[]).filter((id) => id !== 'air');
  const len = options.stepLengthMm ?? 200;
  const y0 = options.y0 ?? 500;
  const y1 = options.y1 ?? 4_000;
  const b = new SceneBuilder();
  const steps: StepWedgeStep[] = [];
  let x = 0;
  for (const material of materials) {
    if (!(material in MATERIALS)) throw invalidArgument(CODE, 'a material id', 'materials[]', material);
    const thicknesses = options.thicknessesMm ?? (MATERIALS[material].density > 2 ? [10, 30, 100, 300] : [50, 200, 600, 1_500]);
    for (const t of thicknesses) {
      b.box(material, x, x + len, y0, y1, t);
      steps.push({ material, thicknessMm: t, x0: x, x1: x + len });
      x += len + 100;
    }
  }
  return Object.freeze({ ...sceneFromPrimitives(detector, b.primitives, { lengthMm: x }), steps });
}
