/**
 * Scene primitives: what a ray along the vehicle's width (z) crosses, described in the vehicle's side view.
 * x runs along the vehicle from its front bumper (mm), y is the height above ground (mm). Each primitive knows the
 * path length (mm of material along z) its rays get at a point (x, y); the renderer sums mu * rho * path.
 *
 * Shapes:
 *   box    constant path over a rectangle (plates, walls seen face-on, blocks, goods; a wall seen edge-on is a thin
 *          box with a long path).
 *   hcyl   cylinder with its axis along x (logs, pipes, tanks; a disc perpendicular to x is a short one): at
 *          height y the path is count * (chord(r) - chord(ri)) with chord(r) = 2 sqrt(r^2 - (y - yc)^2).
 *   vcyl   cylinder with a vertical axis (bottles, cans, reels standing up): path count * (chord(r) - chord(ri))
 *          of (x - xc), constant in y over [y0, y1).
 *   zdisc  cylinder with its axis along z, i.e. a disc or ring in the side view (wheels, tyres, coils seen
 *          eye-on): constant `path` inside the annulus ri <= distance < r.
 *   sphere count spheres of radius r centred at (xc, yc) (fruit): path count * 2 sqrt(r^2 - dx^2 - dy^2).
 * `count` multiplies identical objects aligned along the beam. `densityScale` multiplies the material density
 * (packing fractions). Bounding boxes [x0, x1) x [y0, y1) are always filled in.
 */
import type { MaterialId } from './physics.js';

/** Who a primitive belongs to: the vehicle, a cargo segment (group = index) or a threat (group = index). */
export type PrimitiveTag = 'vehicle' | 'cargo' | 'threat';

interface Base {
  material: MaterialId;
  densityScale: number;
  tag: PrimitiveTag;
  group: number;
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

export interface BoxPrimitive extends Base {
  shape: 'box';
  pathMm: number;
}
export interface HCylPrimitive extends Base {
  shape: 'hcyl';
  yc: number;
  r: number;
  ri: number;
  count: number;
}
export interface VCylPrimitive extends Base {
  shape: 'vcyl';
  xc: number;
  r: number;
  ri: number;
  count: number;
}
export interface ZDiscPrimitive extends Base {
  shape: 'zdisc';
  xc: number;
  yc: number;
  r: number;
  ri: number;
  pathMm: number;
}
export interface SpherePrimitive extends Base {
  shape: 'sphere';
  xc: number;
  yc: number;
  r: number;
  count: number;
}

export type Primitive = BoxPrimitive | HCylPrimitive | VCylPrimitive | ZDiscPrimitive | SpherePrimitive;

/** Collects primitives with the current tag and group; the generators use it as a drawing pen. */
export class SceneBuilder {
  readonly primitives: Primitive[] = [];
  tag: PrimitiveTag = 'vehicle';
  group = -1;

  private push(p: Primitive): void {
    if (!(p.x1 > p.x0) || !(p.y1 > p.y0) || !(p.densityScale > 0)) return;
    this.primitives.push(p);
  }

  private base(material: MaterialId, densityScale: number, x0: number, x1: number, y0: number, y1: number): Base {
    return { material, densityScale, tag: this.tag, group: this.group, x0, x1, y0, y1 };
  }

  /** Constant path `pathMm` over [x0, x1) x [y0, y1). */
  box(material: MaterialId, x0: number, x1: number, y0: number, y1: number, pathMm: number, densityScale = 1): void {
    if (!(pathMm > 0)) return;
    this.push({ shape: 'box', pathMm, ...this.base(material, densityScale, x0, x1, y0, y1) });
  }

  /** Cylinder along x over [x0, x1), centre height yc, outer radius r, inner radius ri (0 = solid), `count` of them. */
  hcyl(material: MaterialId, x0: number, x1: number, yc: number, r: number, ri = 0, count = 1, densityScale = 1): void {
    if (!(r > 0) || !(count > 0) || ri >= r) return;
    this.push({ shape: 'hcyl', yc, r, ri: Math.max(0, ri), count, ...this.base(material, densityScale, x0, x1, yc - r, yc + r) });
  }

  /** Upright cylinder centred at xc, over heights [y0, y1). */
  vcyl(material: MaterialId, xc: number, r: number, ri: number, y0: number, y1: number, count = 1, densityScale = 1): void {
    if (!(r > 0) || !(count > 0) || ri >= r) return;
    this.push({ shape: 'vcyl', xc, r, ri: Math.max(0, ri), count, ...this.base(material, densityScale, xc - r, xc + r, y0, y1) });
  }

  /** Disc or ring in the side view (axis along the beam), path `pathMm` through it. */
  zdisc(material: MaterialId, xc: number, yc: number, r: number, ri: number, pathMm: number, densityScale = 1): void {
    if (!(r > 0) || !(pathMm > 0) || ri >= r) return;
    this.push({ shape: 'zdisc', xc, yc, r, ri: Math.max(0, ri), pathMm, ...this.base(material, densityScale, xc - r, xc + r, yc - r, yc + r) });
  }

  /** `count` spheres aligned along the beam. */
  sphere(material: MaterialId, xc: number, yc: number, r: number, count = 1, densityScale = 1): void {
    if (!(r > 0) || !(count > 0)) return;
    this.push({ shape: 'sphere', xc, yc, r, count, ...this.base(material, densityScale, xc - r, xc + r, yc - r, yc + r) });
  }

  /**
   * A closed rectangular shell (carton, cabinet, crate) seen from the side: outer [x0, x1) x [y0, y1), wall
   * thickness `wallMm`, depth along the beam `depthMm`, `count` of them aligned along the beam. The two walls facing
   * the beam add 2 * wall over the face; the four walls seen edge-on add depth along their thin bands.
   */
  shell(material: MaterialId, x0: number, x1: number, y0: number, y1: number, wallMm: number, depthMm: number, count = 1, densityScale = 1): void {
    const t = Math.min(wallMm, (x1 - x0) / 2, (y1 - y0) / 2);
    this.box(material, x0 + t, x1 - t, y0 + t, y1 - t, 2 * t * count, densityScale);
    this.box(material, x0, x0 + t, y0, y1, depthMm * count, densityScale);
    this.box(material, x1 - t, x1, y0, y1, depthMm * count, densityScale);
    this.box(material, x0 + t, x1 - t, y0, y0 + t, depthMm * count, densityScale);
    this.box(material, x0 + t, x1 - t, y1 - t, y1, depthMm * count, densityScale);
  }

  /** Bounding box of the primitives added since `from` (an index into `primitives`), or null if none. */
  boundsSince(from: number): { x0: number; x1: number; y0: number; y1: number } | null {
    if (from >= this.primitives.length) return null;
    let x0 = Infinity;
    let x1 = -Infinity;
    let y0 = Infinity;
    let y1 = -Infinity;
    for (let i = from; i < this.primitives.length; i++) {
      const p = this.primitives[i];
      if (p.x0 < x0) x0 = p.x0;
      if (p.x1 > x1) x1 = p.x1;
      if (p.y0 < y0) y0 = p.y0;
      if (p.y1 > y1) y1 = p.y1;
    }
    return { x0, x1, y0, y1 };
  }
}
