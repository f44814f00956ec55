/**
 * Vehicle geometry: a cab-over tractor (or a rigid truck's cab and chassis) pulling a semi-trailer or a container
 * on a skeletal chassis, drawn with scene primitives (primitives.ts). Dimensions are those of European road
 * vehicles and ISO containers, in mm; x from the front bumper, y above the ground, z (the beam) across.
 *
 * The interior of the cargo body is returned as the cargo bay the cargo generators fill.
 */
import type { Rng } from './random.js';
import type { SceneBuilder } from './primitives.js';

export const VEHICLE_KINDS = ['curtainsider', 'box-trailer', 'reefer', 'container-40', 'container-20', 'rigid-box'] as const;
export type VehicleKind = (typeof VEHICLE_KINDS)[number];

/** Default body length per kind, mm (trailer, container or rigid box body). */
export const DEFAULT_BODY_LENGTH_MM: Readonly<Record<VehicleKind, number>> = Object.freeze({
  curtainsider: 13_600,
  'box-trailer': 13_600,
  reefer: 13_400,
  'container-40': 12_192,
  'container-20': 6_058,
  'rigid-box': 7_200,
});

/** Allowed body lengths, mm; containers have fixed ISO lengths and ignore the option. */
export const BODY_LENGTH_RANGE_MM = Object.freeze({ min: 6_000, max: 14_600 });

export interface CargoBay {
  /** Interior along the vehicle, mm from the front bumper. */
  x0: number;
  x1: number;
  /** Floor top and inner roof height above the ground, mm. */
  y0: number;
  y1: number;
  /** Inner width across the beam, mm. */
  widthMm: number;
}

export interface VehicleLayout {
  kind: VehicleKind;
  /** Front bumper to rearmost part, mm. */
  lengthMm: number;
  /** Highest point above the ground, mm. */
  heightMm: number;
  bodyLengthMm: number;
  axles: number;
  cargoBay: CargoBay;
}

const TRUCK_WIDTH = 2_450; // mm, cab and body width used for edge-on paths
const RIM_RADIUS = 286; // mm, 22.5" rim

interface WheelSpec {
  /** Tyre outer radius, mm. */
  radius: number;
  /** Tyre section width, mm. */
  width: number;
  /** Tyres on the axle (2 singles, 4 for twin tyres). */
  tyres: number;
  drive?: boolean;
}

/** One axle with its wheels, hubs, brakes and axle tube, seen along the axle. */
function axle(b: SceneBuilder, xc: number, w: WheelSpec): void {
  const R = w.radius;
  const n = w.tyres;
  const yc = R - 8; // tyre slightly compressed on the road
  const bead = RIM_RADIUS + 10;
  b.zdisc('rubber', xc, yc, R, R - 22, n * w.width * 0.9); // tread, seen along its width
  b.zdisc('steel', xc, yc, R - 11, R - 17, n * w.width * 0.8 * 0.35); // steel belt plies
  b.zdisc('rubber', xc, yc, R - 22, bead, n * 2 * 11); // two sidewalls per tyre
  b.zdisc('steel', xc, yc, bead, RIM_RADIUS, n * 2 * 8 * 0.6); // bead wire bundles
  b.zdisc('steel', xc, yc, RIM_RADIUS, RIM_RADIUS - 8, n * w.width * 0.75); // rim barrel
  b.zdisc('steel', xc, yc, RIM_RADIUS - 8, 105, n * 12); // wheel discs
  b.zdisc('cast-iron', xc, yc, 212, 190, 2 * 180); // brake drums
  b.zdisc('steel', xc, yc, 110, 0, 2 * 200, 0.6); // hubs
  b.zdisc('steel', xc, yc, 70, 57, 1_700); // axle tube along the beam
  if (w.drive) b.zdisc('cast-iron', xc, yc, 235, 0, 330, 0.5); // differential housing and gears
}

/** Ladder chassis: two C/I rails seen face-on (webs) with their flanges edge-on. */
function chassisRails(b: SceneBuilder, x0: number, x1: number, yBottom: number, yTop: number, web: number, flange: number): void {
  b.box('steel', x0, x1, yBottom, yTop, 2 * web);
  b.box('steel', x0, x1, yBottom, yBottom + web + 4, 2 * flange);
  b.box('steel', x0, x1, yTop - web - 4, yTop, 2 * flange);
}

interface CabResult {
  frontAxleX: number;
  cabLength: number;
}

/** Cab-over cab with engine, gearbox, radiator, bumper and front axle. */
function cab(b: SceneBuilder, rng: Rng): CabResult {
  const cabLength = 2_250;
  const bottom = 1_150;
  const top = rng.choice([3_350, 3_800, 3_950]);
  const W = TRUCK_WIDTH;
  // Side panels face-on, with door windows.
  b.box('steel', 60, cabLength, bottom, 2_300, 2 * 1.2);
  b.box('steel', 60, cabLength, 2_950, top, 2 * 1.2);
  b.box('steel', 1_300, cabLength, 2_300, 2_950, 2 * 1.2);
  b.box('glass', 150, 1_300, 2_300, 2_950, 2 * 4);
  // Front: panel and grille edge-on, windscreen.
  b.box('steel', 0, 60, bottom - 300, 2_250, W, 0.04);
  b.box('glass', 20, 50, 2_250, 3_050, W, 6 / 30);
  b.box('steel', 0, 60, 3_050, top, W, 0.04);
  // Back wall, roof, floor (sheets edge-on).
  b.box('steel', cabLength - 1.5, cabLength, bottom, top, W);
  b.box('steel', 60, cabLength, top - 1.5, top, W);
  b.box('steel', 60, cabLength, bottom, bottom + 3, W);
  // Interior: dashboard, cross-car beam, steering column, seats, bunk.
  b.box('plastic', 60, 450, 2_000, 2_350, W, 0.15);
  b.box('steel', 300, 360, 2_100, 2_160, W, 0.12);
  b.box('steel', 300, 700, 1_900, 1_980, 40);
  b.box('foam', 800, 1_400, 1_450, 2_350, 2 * 500, 2.5);
  b.box('steel', 850, 1_350, 1_450, 1_560, 2 * 30);
  if (top > 3_500) b.box('foam', 1_650, 2_200, 1_750, 1_900, W, 3);
  // Radiator and coolant, bumper.
  b.box('aluminium', 80, 180, 700, 1_900, 2_000, 0.06);
  b.box('water', 80, 180, 700, 1_900, 2_000, 0.05);
  b.box('steel', 0, 120, 400, 750, W, 0.08);
  b.box('plastic', 0, 120, 400, 750, W, 0.1);
  // Engine (cast block with head), crankshaft, flywheel and bell housing, sump, gearbox.
  b.box('cast-iron', 400, 1_450, 650, 1_300, 260);
  b.box('cast-iron', 450, 1_400, 1_300, 1_470, 180);
  b.hcyl('steel', 400, 1_500, 820, 45);
  b.hcyl('steel', 1_450, 1_510, 850, 240);
  b.hcyl('aluminium', 1_450, 1_650, 850, 300, 290);
  b.box('aluminium', 450, 1_400, 520, 650, 400, 0.1);
  b.box('diesel', 450, 1_400, 520, 650, 300, 0.3);
  b.box('aluminium', 1_650, 2_400, 700, 1_100, 350, 0.25);
  b.box('steel', 1_700, 2_350, 760, 1_040, 250, 0.35);
  const frontAxleX = 1_450;
  axle(b, frontAxleX, { radius: 520, width: 315, tyres: 2 });
  return { frontAxleX, cabLength };
}

/** Tractor (4x2): cab, chassis, tanks, batteries, fifth wheel, drive axle. Returns the fifth-wheel x. */
function tractor(b: SceneBuilder, rng: Rng): { fifthWheelX: number; cabLength: number } {
  const { frontAxleX, cabLength } = cab(b, rng);
  const driveX = frontAxleX + rng.choice([3_600, 3_700, 3_800]);
  const chassisEnd = driveX + 850;
  chassisRails(b, 300, chassisEnd, 820, 1_130, 8, 75);
  for (const x of [1_900, 3_000, chassisEnd - 60]) b.box('steel', x, x + 8, 850, 1_100, 900);
  tanksAndBatteries(b, rng, 2_500, driveX - 600);
  // Propeller shaft.
  b.hcyl('steel', 2_400, driveX, 800, 50, 42);
  const fifthWheelX = driveX - 300;
  b.box('steel', fifthWheelX - 450, fifthWheelX + 450, 1_240, 1_280, 850, 0.4);
  b.box('steel', fifthWheelX - 400, fifthWheelX + 400, 1_130, 1_240, 2 * 20);
  if (rng.chance(0.5)) b.vcyl('steel', cabLength + 100, 60, 57, 1_300, 3_600); // exhaust stack
  axle(b, driveX, { radius: 520, width: 315, tyres: 4, drive: true });
  return { fifthWheelX, cabLength };
}

/** Fuel tank, battery box and air tanks hung on the chassis between x0 and x1. */
function tanksAndBatteries(b: SceneBuilder, rng: Rng, x0: number, x1: number): void {
  const tankLen = Math.min(x1 - x0 - 1_400, rng.choice([900, 1_150, 1_400]));
  const fill = rng.range(0.3, 0.95);
  b.hcyl('aluminium', x0, x0 + tankLen, 800, 320, 316);
  b.hcyl('diesel', x0, x0 + tankLen, 800, 316, 0, 1, fill);
  const bx = x0 + tankLen + 100;
  // Two 225 Ah lead-acid batteries side by side: ~42 mm of lead plates along the beam, acid, polypropylene cases.
  b.box('lead', bx, bx + 518, 560, 800, 42);
  b.box('water', bx, bx + 518, 560, 800, 300, 1.28);
  b.box('plastic', bx, bx + 518, 560, 800, 20);
  b.hcyl('steel', bx + 600, Math.min(x1, bx + 1_300), 620, 120, 116, 2);
}

interface BodyResult {
  cargoBay: CargoBay;
  x1: number;
  top: number;
}

/** Floor, walls and roof of a box-type body (curtainsider, dry van, reefer) from x0 to x1 on a deck at deckY. */
function boxBody(b: SceneBuilder, kind: 'curtainsider' | 'box-trailer' | 'reefer' | 'rigid-box', x0: number, x1: number, deckY: number): BodyResult {
  const W = TRUCK_WIDTH;
  const reefer = kind === 'reefer';
  const floorTop = deckY + 40;
  const innerHeight = reefer ? 2_550 : kind === 'rigid-box' ? 2_500 : 2_700;
  const wall = reefer ? 85 : kind === 'curtainsider' ? 2 : 20;
  const y1 = floorTop + innerHeight;
  const top = y1 + (reefer ? 100 : 40);
  const inner = W - 2 * wall;
  // Floor: hardwood/plywood seen edge-on; reefer: aluminium duct floor on foam.
  b.box('wood', x0, x1, deckY, floorTop, inner, 1.3);
  if (reefer) {
    b.box('aluminium', x0, x1, floorTop, floorTop + 50, inner, 0.12);
    b.box('foam', x0, x1, deckY - 80, deckY, inner);
  }
  // Side walls face-on.
  if (kind === 'curtainsider') {
    b.box('plastic', x0, x1, floorTop, top, 2 * 1.2);
    for (const f of [0.25, 0.5, 0.75]) {
      const x = x0 + f * (x1 - x0);
      b.shell('steel', x - 40, x + 40, floorTop, y1, 4, 100, 2);
    }
  } else if (reefer) {
    b.box('foam', x0, x1, floorTop, top, 2 * wall);
    b.box('aluminium', x0, x1, floorTop, top, 2 * 2);
  } else {
    b.box('wood', x0, x1, floorTop, top, 2 * 15, 1.2);
    b.box('plastic', x0, x1, floorTop, top, 2 * 3, 1.8);
  }
  // Roof edge-on, roof bows, top rails.
  if (reefer) {
    b.box('foam', x0, x1, y1, top, W);
    b.box('aluminium', x0, x1, top - 1, top, W);
    b.box('aluminium', x0, x1, y1, y1 + 1, W);
  } else {
    b.box('plastic', x0, x1, top - 2, top, W);
    for (let x = x0 + 300; x < x1 - 300; x += 600) b.box('aluminium', x, x + 40, top - 60, top - 20, W, 0.08);
  }
  b.box('aluminium', x0, x1, top - 120, top - 20, 2 * 6);
  // Front wall and rear doors edge-on, rear door frame, locking rods.
  const frontT = reefer ? 100 : 40;
  b.box(reefer ? 'foam' : 'wood', x0, x0 + frontT, floorTop, top, W, reefer ? 1 : 0.45);
  b.box('aluminium', x0, x0 + 1, floorTop, top, W);
  b.box(reefer ? 'foam' : 'wood', x1 - frontT, x1, floorTop, top, W, reefer ? 1 : 0.45);
  b.box('aluminium', x1 - 1, x1, floorTop, top, W);
  b.shell('steel', x1 - 120, x1, deckY, top, 6, 120, 2);
  b.vcyl('steel', x1 + 25, 13, 9, floorTop + 50, top - 50, 4);
  if (reefer) {
    // Refrigeration unit on the front wall: frame, compressor, small diesel engine, condenser coils.
    const u0 = x0 - 380;
    b.shell('aluminium', u0, x0, 2_200, top - 50, 3, 2_000);
    b.box('cast-iron', u0 + 60, u0 + 260, 2_400, 2_750, 250, 0.8);
    b.box('cast-iron', u0 + 50, u0 + 320, 2_900, 3_300, 300, 0.7);
    b.box('copper', u0, u0 + 80, 3_300, Math.min(3_850, top - 60), 1_800, 0.01);
    b.box('aluminium', u0, u0 + 80, 3_300, Math.min(3_850, top - 60), 1_800, 0.03);
  }
  return { cargoBay: { x0: x0 + frontT, x1: x1 - frontT, y0: reefer ? floorTop + 50 : floorTop, y1, widthMm: inner }, x1, top };
}

/** Semi-trailer chassis: main beams, cross members, kingpin, landing legs, underrun bar, axles. */
function trailerChassis(b: SceneBuilder, x0: number, x1: number, deckY: number, skeletal: boolean, axles: number, wheels: WheelSpec): void {
  chassisRails(b, x0 + 300, x1 - 200, deckY - 380, deckY, 8, 150);
  if (skeletal) {
    for (const x of [x0 + 150, x0 + (x1 - x0) / 2, x1 - 350]) b.box('steel', x, x + 200, deckY - 200, deckY, 2_400, 0.1);
  } else {
    b.box('steel', x0, x1, deckY - 200, deckY, 2 * 5);
    for (let x = x0 + 200; x < x1 - 100; x += 400) b.box('steel', x, x + 6, deckY - 100, deckY, TRUCK_WIDTH - 50);
  }
  b.box('steel', x0 + 700, x0 + 2_300, deckY - 8, deckY, 2_400);
  b.vcyl('steel', x0 + 1_600, 45, 0, deckY - 90, deckY - 8);
  b.shell('steel', x0 + 2_700, x0 + 2_800, 280, deckY - 380, 6, 100, 2);
  b.box('steel', x0 + 2_650, x0 + 2_850, 250, 280, 2 * 250);
  b.box('steel', x1 - 150, x1 - 50, 450, 570, 2_400, 0.05);
  const rearOverhang = Math.min(3_100, Math.max(1_200, 0.23 * (x1 - x0)));
  const lastAxle = x1 - rearOverhang;
  for (let i = 0; i < axles; i++) {
    const ax = lastAxle - (axles - 1 - i) * 1_310;
    b.box('steel', ax - 600, ax + 500, 550, 650, 2 * 40);
    b.box('rubber', ax + 250, ax + 550, 650, 900, 2 * 300, 0.08);
    axle(b, ax, wheels);
  }
}

/** ISO container (8'6" or 9'6" high) from x0 to x0 + length with its bottom at yb. */
function container(b: SceneBuilder, rng: Rng, x0: number, length: number, yb: number): BodyResult {
  const x1 = x0 + length;
  const highCube = rng.chance(0.6);
  const top = yb + (highCube ? 2_896 : 2_591);
  const inner = 2_352;
  // Bottom side rails, cross members, floor.
  b.box('steel', x0, x1, yb, yb + 162, 2 * 4.5);
  b.box('steel', x0, x1, yb, yb + 12, 2 * 50);
  for (let x = x0 + 200; x < x1 - 150; x += 300) b.box('steel', x, x + 4.5, yb + 28, yb + 150, inner);
  b.box('wood', x0, x1, yb + 150, yb + 178, inner, 1.27);
  // Corrugated side walls: flat sections 2t, inclined sections 2t / cos(27.5 deg).
  const t = length > 7_000 ? 2 : 1.6;
  const wy0 = yb + 162;
  const wy1 = top - 60;
  for (let x = x0 + 150; x < x1 - 150; x += 278) {
    const e = Math.min(x + 278, x1 - 150);
    b.box('steel', x, Math.min(x + 68, e), wy0, wy1, 2 * t);
    b.box('steel', Math.min(x + 68, e), Math.min(x + 137, e), wy0, wy1, 2 * t * 1.13);
    b.box('steel', Math.min(x + 137, e), Math.min(x + 209, e), wy0, wy1, 2 * t);
    b.box('steel', Math.min(x + 209, e), e, wy0, wy1, 2 * t * 1.13);
  }
  // Top side rails, corrugated roof sheet (edge-on, alternating heights).
  b.box('steel', x0, x1, top - 60, top, 2 * 6);
  b.box('steel', x0, x1, top - 3, top, 2 * 60);
  b.box('steel', x0, x1, top - 60, top - 57, 2 * 60);
  for (let x = x0 + 150; x < x1 - 150; x += 200) {
    b.box('steel', x, x + 100, top - 6, top - 4, inner);
    b.box('steel', x + 100, x + 200, top - 24, top - 22, inner);
  }
  // Front end wall, rear doors with locking bars, corner posts and castings.
  b.box('steel', x0, x0 + 45, wy0, wy1, inner, (2 * 1.25) / 45);
  b.box('steel', x1 - 45, x1, wy0, wy1, inner, (2 * 1.25) / 45);
  b.vcyl('steel', x1 + 30, 13.5, 10, yb + 100, top - 100, 4);
  b.box('steel', x1 - 150, x1, top - 150, top, 2 * 6);
  for (const [a, c] of [
    [x0, x0 + 150],
    [x1 - 150, x1],
  ] as const) {
    b.box('steel', a, c, yb, top, 2 * 6);
    b.box('steel', a, a + 8, yb, top, 2 * 150);
    b.box('steel', a, a + 178, yb, yb + 118, 2 * 162, 0.35);
    b.box('steel', a, a + 178, top - 118, top, 2 * 162, 0.35);
  }
  return { cargoBay: { x0: x0 + 50, x1: x1 - 50, y0: yb + 178, y1: top - 30, widthMm: inner }, x1, top };
}

/** Draws a vehicle of `kind` and returns its layout. `bodyLengthMm` applies to trailers and rigid bodies. */
export function buildVehicle(b: SceneBuilder, rng: Rng, kind: VehicleKind, bodyLengthMm?: number): VehicleLayout {
  b.tag = 'vehicle';
  b.group = -1;
  const bodyLength =
    kind === 'container-40' || kind === 'container-20' ? DEFAULT_BODY_LENGTH_MM[kind] : Math.round(bodyLengthMm ?? DEFAULT_BODY_LENGTH_MM[kind]);
  if (kind === 'rigid-box') {
    const { frontAxleX, cabLength } = cab(b, rng);
    const bx0 = cabLength + 250;
    const bx1 = bx0 + bodyLength;
    const deckY = 1_150;
    chassisRails(b, 300, bx1 - 300, 820, deckY - 20, 7, 70);
    tanksAndBatteries(b, rng, 2_450, Math.min(bx0 + 0.55 * bodyLength - 700, bx0 + 3_200));
    const rearX = Math.max(frontAxleX + 3_800, bx0 + 0.62 * bodyLength);
    b.hcyl('steel', 2_400, rearX, 800, 50, 42);
    axle(b, rearX, { radius: 520, width: 315, tyres: 4, drive: true });
    b.box('steel', bx1 - 150, bx1 - 50, 450, 570, 2_400, 0.05);
    const body = boxBody(b, 'rigid-box', bx0, bx1, deckY);
    return { kind, lengthMm: body.x1 + 60, heightMm: body.top, bodyLengthMm: bodyLength, axles: 2, cargoBay: body.cargoBay };
  }
  const { fifthWheelX } = tractor(b, rng);
  const kingpinOffset = 1_600;
  const t0 = fifthWheelX - kingpinOffset;
  if (kind === 'container-40' || kind === 'container-20') {
    const chassisLen = bodyLength + 300;
    const deckY = 1_200;
    const axles = kind === 'container-40' ? 3 : 2;
    trailerChassis(b, t0, t0 + chassisLen, deckY, true, axles, { radius: 536, width: 385, tyres: 2 });
    const body = container(b, rng, t0 + 150, bodyLength, deckY);
    return { kind, lengthMm: t0 + chassisLen + 40, heightMm: body.top, bodyLengthMm: bodyLength, axles: 2 + axles, cargoBay: body.cargoBay };
  }
  const deckY = 1_180;
  const axles = bodyLength >= 10_000 ? 3 : 2;
  trailerChassis(b, t0, t0 + bodyLength, deckY, false, axles, { radius: 536, width: 385, tyres: 2 });
  const body = boxBody(b, kind, t0, t0 + bodyLength, deckY);
  return { kind, lengthMm: body.x1 + 60, heightMm: body.top, bodyLengthMm: bodyLength, axles: 2 + axles, cargoBay: body.cargoBay };
}
