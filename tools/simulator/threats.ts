/**
 * Concealed threats placed inside a load: firearms (rifles, pistols), narcotics bricks and explosives (blocks with
 * a detonator and timer, pipe bombs). Threat material is added on top of the cargo (it sits in the voids of the
 * load), so a threat always raises the attenuation inside its ground-truth box.
 */
import type { Rng } from './random.js';
import type { SceneBuilder } from './primitives.js';

export const THREAT_KINDS = ['firearm', 'narcotics', 'explosive'] as const;
export type ThreatKind = (typeof THREAT_KINDS)[number];

/** Where a threat may go: a rectangle of the side view, mm. */
export interface ThreatRegion {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

interface Drawn {
  variant: string;
  width: number;
  height: number;
  draw: (x: number, y: number) => void;
}

function firearm(b: SceneBuilder, rng: Rng): Drawn {
  if (rng.chance(0.5)) {
    const L = rng.range(950, 1_100);
    const n = rng.intRange(1, 5);
    return {
      variant: n > 1 ? `rifles x${n}` : 'rifle',
      width: L,
      height: 110,
      draw: (x, y) => {
        b.hcyl('firearm-steel', x + 350, x + L, y + 70, 11, 4, n);
        b.box('firearm-steel', x + 150, x + 400, y + 50, y + 95, 30 * n, 0.7);
        b.box('firearm-steel', x + 300, x + 330, y + 30, y + 50, 10 * n);
        b.box('firearm-steel', x + 250, x + 320, y, y + 50, 25 * n, 0.4);
        b.box('copper', x + 255, x + 315, y + 5, y + 48, 20 * n, 0.3);
        b.box('lead', x + 255, x + 315, y + 5, y + 48, 8 * n, 0.3);
        b.box('wood', x, x + 300, y + 30, y + 110, 40 * n);
      },
    };
  }
  const n = rng.intRange(1, 10);
  return {
    variant: n > 1 ? `pistols x${n}` : 'pistol',
    width: 190,
    height: 140,
    draw: (x, y) => {
      b.box('firearm-steel', x, x + 190, y + 105, y + 140, 25 * n);
      b.hcyl('firearm-steel', x + 5, x + 120, y + 120, 7, 4.5, n);
      b.box('plastic', x + 60, x + 190, y + 70, y + 105, 30 * n);
      b.box('firearm-steel', x + 140, x + 175, y, y + 100, 22 * n, 0.4);
      b.box('copper', x + 145, x + 170, y + 5, y + 95, 15 * n, 0.3);
    },
  };
}

function narcotics(b: SceneBuilder, rng: Rng): Drawn {
  const kx = rng.intRange(2, 5);
  const ky = rng.intRange(2, 6);
  const kz = rng.intRange(2, 6);
  return {
    variant: `${kx * ky * kz} x 1 kg bricks`,
    width: kx * 200,
    height: ky * 60,
    draw: (x, y) => {
      for (let i = 0; i < kx; i++) {
        for (let j = 0; j < ky; j++) {
          const bx = x + i * 200;
          const by = y + j * 60;
          b.box('narcotics', bx + 2, bx + 198, by + 2, by + 58, kz * 110, rng.range(0.9, 1.1));
          b.box('plastic', bx, bx + 200, by, by + 60, kz * 2);
        }
      }
    },
  };
}

function explosive(b: SceneBuilder, rng: Rng): Drawn {
  if (rng.chance(0.6)) {
    const W = rng.range(200, 400);
    const H = rng.range(100, 250);
    const path = rng.range(150, 400);
    return {
      variant: 'block with detonator',
      width: W + 180,
      height: H,
      draw: (x, y) => {
        b.box('explosive', x, x + W, y, y + H, path);
        b.hcyl('copper', x + W - 40, x + W + 30, y + H / 2, 3.5, 3);
        b.box('copper', x + W + 30, x + W + 120, y + H / 2 - 1, y + H / 2 + 1, 2);
        b.box('battery-cell', x + W + 100, x + W + 148, y + H / 2 - 13, y + H / 2 + 13, 17);
        b.box('circuit-board', x + W + 60, x + W + 180, y + 10, y + 50, 60);
      },
    };
  }
  const r = rng.range(25, 40);
  const L = rng.range(250, 350);
  return {
    variant: 'pipe bomb',
    width: L,
    height: 2 * r,
    draw: (x, y) => {
      b.hcyl('steel', x + 10, x + L - 10, y + r, r, r - 4);
      b.hcyl('explosive', x + 10, x + L - 10, y + r, r - 4);
      b.hcyl('steel', x, x + 10, y + r, r);
      b.hcyl('steel', x + L - 10, x + L, y + r, r);
      b.box('copper', x + L, x + L + 40, y + r - 1, y + r + 1, 2);
    },
  };
}

const MAKERS: Readonly<Record<ThreatKind, (b: SceneBuilder, rng: Rng) => Drawn>> = { firearm, narcotics, explosive };

/**
 * Draws a threat of `kind` at a random position fully inside `region` (or centred on it when it does not fit).
 * Returns the variant drawn; the caller reads the bounds from the builder.
 */
export function placeThreat(b: SceneBuilder, rng: Rng, kind: ThreatKind, region: ThreatRegion): string {
  const t = MAKERS[kind](b, rng);
  const spanX = region.x1 - region.x0 - t.width;
  const spanY = region.y1 - region.y0 - t.height;
  const x = spanX > 0 ? region.x0 + rng.range(0, spanX) : (region.x0 + region.x1 - t.width) / 2;
  const y = spanY > 0 ? region.y0 + rng.range(0, spanY) : Math.max(region.y0, (region.y0 + region.y1 - t.height) / 2);
  t.draw(x, y);
  return t.variant;
}
