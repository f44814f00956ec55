/**
 * Goods categories and how each is loaded into a cargo slot: pallets, cartons, reels, bottles, logs, coils and
 * machines drawn with scene primitives, each category with its own materials, packing density and texture.
 *
 * Packing is "aligned along the beam": identical objects side by side across the vehicle share one primitive with
 * `count` (or a longer path). That is what makes a load's texture readable in the image, as in real scans.
 */
import type { Rng } from './random.js';
import type { SceneBuilder } from './primitives.js';
import type { MaterialId } from './physics.js';

export const CARGO_CATEGORIES = [
  'timber',
  'paper',
  'clothing',
  'footwear',
  'beverages',
  'tobacco',
  'fruit',
  'tyres',
  'steel',
  'machinery',
  'electronics',
  'empty',
] as const;
export type CargoCategory = (typeof CARGO_CATEGORIES)[number];

export interface CargoCategoryInfo {
  /** HS heading (4 digits) a declaration uses for the category; null for an empty body. */
  readonly hsCode: string | null;
  /** Goods description as a declaration would word it. */
  readonly description: string;
}

export const CARGO_CATEGORY_INFO: Readonly<Record<CargoCategory, CargoCategoryInfo>> = Object.freeze({
  timber: { hsCode: '4407', description: 'Wood sawn or chipped lengthwise' },
  paper: { hsCode: '4819', description: 'Cartons, boxes and cases of paper or paperboard' },
  clothing: { hsCode: '6203', description: "Men's suits, jackets, trousers" },
  footwear: { hsCode: '6403', description: 'Footwear with uppers of leather' },
  beverages: { hsCode: '2202', description: 'Waters and non-alcoholic beverages' },
  tobacco: { hsCode: '2402', description: 'Cigars, cigarillos and cigarettes' },
  fruit: { hsCode: '0808', description: 'Apples, pears and quinces, fresh' },
  tyres: { hsCode: '4011', description: 'New pneumatic tyres, of rubber' },
  steel: { hsCode: '7308', description: 'Structures and parts of structures, of iron or steel' },
  machinery: { hsCode: '8479', description: 'Machines and mechanical appliances having individual functions' },
  electronics: { hsCode: '8471', description: 'Automatic data-processing machines and units thereof' },
  empty: { hsCode: null, description: 'Empty' },
});

/** Default relative frequency of each category when a truck's cargo is drawn at random. */
export const DEFAULT_CARGO_MIX: Readonly<Record<CargoCategory, number>> = Object.freeze({
  timber: 1,
  paper: 1,
  clothing: 1,
  footwear: 0.8,
  beverages: 1,
  tobacco: 0.6,
  fruit: 0.8,
  tyres: 0.7,
  steel: 0.8,
  machinery: 0.7,
  electronics: 0.8,
  empty: 0.6,
});

/** A stretch of the cargo bay given to one category. */
export interface CargoSlot {
  x0: number;
  x1: number;
  /** Floor top and inner roof, mm above the ground. */
  y0: number;
  y1: number;
  /** Inner width across the beam, mm. */
  widthMm: number;
}

/** Multiplicative jitter 1 + sd * N(0,1), kept within [0.5, 1.5]. */
function jit(rng: Rng, sd: number): number {
  return Math.min(1.5, Math.max(0.5, 1 + sd * rng.normal()));
}

const PALLET_HEIGHT = 144;

/** Splits `length` into round(length / nominal) equal cells (at least one): cartons sized to fill a pallet. */
function fit(length: number, nominal: number): { n: number; size: number } {
  const n = Math.max(1, Math.round(length / nominal));
  return { n, size: length / n };
}

/** Wooden pallets (deck boards, blocks, bottom boards) `across` side by side, each `depth` deep along the beam. */
function pallet(b: SceneBuilder, x0: number, length: number, y0: number, across: number, depth: number): number {
  const x1 = x0 + length;
  b.box('wood', x0, x1, y0 + 122, y0 + PALLET_HEIGHT, across * depth * 0.75, 1.1);
  b.box('wood', x0, x1, y0 + 100, y0 + 122, across * 3 * 145, 1.1);
  const mid = x0 + length / 2;
  for (const bx of [x0, mid - 72, x1 - 145]) b.box('wood', bx, bx + 145, y0 + 22, y0 + 100, across * 3 * 120, 1.1);
  b.box('wood', x0, x1, y0, y0 + 22, across * 345, 1.1);
  return y0 + PALLET_HEIGHT;
}

interface CartonGrid {
  x0: number;
  y0: number;
  nx: number;
  ny: number;
  cellX: number;
  cellY: number;
  /** Cartons side by side along the beam. */
  across: number;
  /** Depth of one carton along the beam, mm. */
  depth: number;
  /** Board thickness, mm. */
  wall: number;
}

/**
 * A block of cartons nx x ny (side view) x `across` (along the beam): carton walls edge-on as thin lines, faces
 * face-on, and the content of each cell drawn by `content` (cell interior, path scale = across * inner depth).
 */
function cartons(b: SceneBuilder, g: CartonGrid, content: (cx0: number, cx1: number, cy0: number, cy1: number, path: number) => void): void {
  const x1 = g.x0 + g.nx * g.cellX;
  const y1 = g.y0 + g.ny * g.cellY;
  const w = g.wall;
  const boardPath = g.across * g.depth;
  for (let i = 0; i <= g.nx; i++) {
    const x = g.x0 + i * g.cellX;
    b.box('cardboard', Math.max(g.x0, x - w), Math.min(x1, x + w), g.y0, y1, boardPath);
  }
  for (let j = 0; j <= g.ny; j++) {
    const y = g.y0 + j * g.cellY;
    b.box('cardboard', g.x0, x1, Math.max(g.y0, y - w), Math.min(y1, y + w), boardPath);
  }
  b.box('cardboard', g.x0, x1, g.y0, y1, g.across * 2 * w);
  const inner = g.across * (g.depth - 2 * w);
  for (let i = 0; i < g.nx; i++) {
    for (let j = 0; j < g.ny; j++) {
      const cx0 = g.x0 + i * g.cellX + w;
      const cy0 = g.y0 + j * g.cellY + w;
      content(cx0, cx0 + g.cellX - 2 * w, cy0, cy0 + g.cellY - 2 * w, inner);
    }
  }
}

/** Fills a cell with `material` in `layers` horizontal sub-layers of jittered density (folded goods, bulk). */
function layered(b: SceneBuilder, rng: Rng, material: MaterialId, scale: number, layers: number, sd: number) {
  return (cx0: number, cx1: number, cy0: number, cy1: number, path: number): void => {
    const cellScale = scale * jit(rng, sd);
    const h = (cy1 - cy0) / layers;
    for (let k = 0; k < layers; k++) b.box(material, cx0, cx1, cy0 + k * h, cy0 + (k + 1) * h - 1, path, cellScale * jit(rng, sd));
  };
}

/**
 * Rows of pallets along x from s.x0, pallet `length` along x and `depth` along the beam, loaded by `load` from the
 * pallet top to at most `maxHeight`; double-stacked when two fit under the roof.
 */
function palletRows(
  b: SceneBuilder,
  rng: Rng,
  s: CargoSlot,
  length: number,
  depth: number,
  stackHeight: number,
  load: (x0: number, x1: number, y0: number, y1: number, across: number) => void,
): void {
  const across = Math.max(1, Math.floor(s.widthMm / depth));
  const room = s.y1 - s.y0;
  const unit = PALLET_HEIGHT + stackHeight;
  const stacks = 2 * unit + 40 <= room ? 2 : 1;
  const height = stacks === 1 ? Math.min(stackHeight, room - PALLET_HEIGHT - 40) : stackHeight;
  let x = s.x0 + rng.range(20, 150);
  while (x + length <= s.x1) {
    let y = s.y0;
    for (let k = 0; k < stacks; k++) {
      const top = pallet(b, x, length, y, across, depth);
      const h = height * (k === 0 ? 1 : rng.range(0.7, 1));
      load(x + 10, x + length - 10, top, top + h, across);
      y = top + h + 5;
    }
    x += length + rng.range(10, 80);
  }
}

function timber(b: SceneBuilder, rng: Rng, s: CargoSlot): void {
  const packAcross = 2;
  const packDepth = Math.min(1_150, s.widthMm / packAcross - 20);
  if (rng.chance(0.7)) {
    // Sawn timber packages: boards lying along x, layer by layer, with or without stickers.
    const board = rng.choice([22, 32, 47, 50, 63]);
    const sticker = rng.chance(0.5) ? 25 : 0;
    const room = s.y1 - s.y0 - 100;
    const tiers = room > 2_200 ? 2 : 1;
    const packHeight = Math.min(1_150, room / tiers - 90);
    let x = s.x0 + rng.range(30, 200);
    while (x < s.x1 - 1_500) {
      const len = Math.min(rng.choice([3_000, 3_600, 4_200, 4_800, 5_400]), s.x1 - x - 30);
      let y = s.y0;
      for (let t = 0; t < tiers; t++) {
        for (const bx of [x + 300, x + len / 2 - 37, x + len - 375]) b.box('wood', bx, bx + 75, y, y + 75, s.widthMm, 1.1);
        y += 75;
        const end = y + packHeight * rng.range(0.85, 1);
        while (y + board <= end) {
          const scale = jit(rng, 0.06);
          b.box('wood', x + rng.range(0, 60), x + len - rng.range(0, 60), y, y + board, packAcross * packDepth * 0.93, scale);
          y += board;
          if (sticker) {
            for (let sx = x + 200; sx < x + len - 100; sx += 600) b.box('wood', sx, sx + 40, y, y + sticker, packAcross * packDepth);
            y += sticker;
          }
        }
        y += 10;
      }
      x += len + rng.range(100, 400);
    }
    return;
  }
  // Round logs along x, stacked in nested rows, fresh (dense) wood.
  let x = s.x0 + rng.range(30, 200);
  while (x < s.x1 - 2_000) {
    const len = Math.min(rng.range(4_000, 6_000), s.x1 - x - 30);
    let base = s.y0;
    const pileTop = Math.min(s.y1 - 150, s.y0 + rng.range(1_600, 2_300));
    while (base < pileTop - 250) {
      let used = 0;
      let tallest = 0;
      while (used < s.widthMm - 240) {
        const r = Math.min(rng.range(110, 260), (s.widthMm - used) / 2);
        b.hcyl('wood', x + rng.range(0, 150), x + len - rng.range(0, 150), base + r, r, 0, 1, 1.5 * jit(rng, 0.05));
        used += 2 * r;
        tallest = Math.max(tallest, 2 * r);
      }
      base += tallest * 0.85;
    }
    x += len + rng.range(150, 400);
  }
}

function paper(b: SceneBuilder, rng: Rng, s: CargoSlot): void {
  if (rng.chance(0.6)) {
    // Flat-packed corrugated boxes in strapped bundles on 1200 x 1000 pallets.
    palletRows(b, rng, s, 1_200, 1_000, rng.range(1_000, 1_250), (x0, x1, y0, y1, across) => {
      let y = y0;
      const bundle = rng.range(60, 120);
      const scale = rng.range(1.2, 1.7);
      while (y + bundle <= y1) {
        b.box('cardboard', x0, x1, y, y + bundle - 4, across * 1_000 * 0.96, scale * jit(rng, 0.05));
        y += bundle;
      }
      b.box('plastic', x0 + 150, x0 + 165, y0, y, across * 2);
      b.box('plastic', x1 - 165, x1 - 150, y0, y, across * 2);
    });
    return;
  }
  // Paper reels standing on end.
  const r = rng.range(400, 600);
  const h = rng.range(900, 1_400);
  const across = Math.max(1, Math.floor(s.widthMm / (2 * r + 20)));
  const tiers = Math.max(1, Math.min(2, Math.floor((s.y1 - s.y0 - 50) / h)));
  for (let xc = s.x0 + r + rng.range(20, 100); xc + r <= s.x1; xc += 2 * r + rng.range(20, 60)) {
    for (let t = 0; t < tiers; t++) {
      const y0 = s.y0 + t * (h + 5);
      b.vcyl('paper', xc, r, 50, y0, y0 + h, across, 0.95 * jit(rng, 0.03));
      b.vcyl('cardboard', xc, 50, 40, y0, y0 + h, across, 6);
    }
  }
}

function clothing(b: SceneBuilder, rng: Rng, s: CargoSlot): void {
  if (rng.chance(0.3)) {
    // Garments on hangers on three rails along the body.
    const rail = s.y1 - 150;
    b.hcyl('steel', s.x0 + 50, s.x1 - 50, rail, 16, 13, 3);
    for (let x = s.x0 + 100; x < s.x1 - 100; x += rng.range(30, 70)) {
      const t = rng.range(8, 30);
      const len = rng.range(700, 1_300);
      b.box('textile', x, x + t, rail - 120 - len, rail - 120, 3 * 500, rng.range(0.3, 0.7));
      b.box('plastic', x, x + 5, rail - 110, rail - 20, 3 * 400, 0.3);
      b.box('steel', x, x + 3, rail - 20, rail + 30, 3 * 20);
    }
    return;
  }
  // Cartons of folded garments, floor-loaded to the roof or on pallets.
  const cellX = rng.choice([500, 600]);
  const cellY = rng.choice([300, 350, 400]);
  const depth = 400;
  const across = Math.max(1, Math.floor(s.widthMm / depth));
  const fill = rng.range(0.6, 0.9);
  const content = layered(b, rng, 'textile', fill, rng.intRange(4, 6), 0.12);
  if (rng.chance(0.5)) {
    const nx = Math.floor((s.x1 - s.x0 - 100) / cellX);
    const ny = Math.floor((s.y1 - s.y0 - 50) / cellY);
    cartons(b, { x0: s.x0 + 50, y0: s.y0, nx, ny, cellX, cellY, across, depth, wall: 5 }, content);
    return;
  }
  palletRows(b, rng, s, 1_200, 800, 3 * cellY, (x0, x1, y0, y1) => {
    const fx = fit(x1 - x0, cellX);
    const ny = Math.max(1, Math.floor((y1 - y0) / cellY));
    cartons(b, { x0, y0, nx: fx.n, ny, cellX: fx.size, cellY, across, depth, wall: 5 }, content);
  });
}

function footwear(b: SceneBuilder, rng: Rng, s: CargoSlot): void {
  const soleScale = rng.range(0.25, 0.9); // EVA foam to solid rubber soles
  const safety = rng.chance(0.25); // steel toe caps
  const across = Math.max(1, Math.floor(s.widthMm / 400));
  const shoes = across * 4; // two shoe boxes per master carton along the beam, two shoes per box
  const shoeBoxes = (cx0: number, cx1: number, cy0: number, cy1: number): void => {
    const boxX = (cx1 - cx0) / 2;
    const boxY = (cy1 - cy0) / 3;
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 3; j++) {
        const x = cx0 + i * boxX;
        const y = cy0 + j * boxY;
        const toeAtEnd = (i + j) % 2 === 0;
        b.box('cardboard', x, x + boxX, y, y + 2, across * 2 * 200, 5);
        b.box('cardboard', x, x + 2, y, y + boxY, across * 2 * 200, 5);
        b.box('rubber', x + 10, x + boxX - 10, y + 4, y + 30, shoes * 95, soleScale * jit(rng, 0.05));
        const heel = toeAtEnd ? x + 10 : x + boxX - 90;
        b.box('rubber', heel, heel + 80, y + 30, y + 50, shoes * 75, soleScale);
        b.box('leather', x + 20, x + boxX - 20, y + 30, y + boxY - 10, shoes * 2 * 2.5);
        b.box('paper', x + 20, x + boxX - 20, y + 30, y + boxY - 10, shoes * 80, 0.06);
        if (safety) {
          const toe = toeAtEnd ? x + boxX - 70 : x + 15;
          b.box('steel', toe, toe + 55, y + 30, y + 80, shoes * 2 * 1.5);
          b.box('steel', toe, toe + 55, y + 78, y + 81, shoes * 70);
        }
      }
    }
  };
  const cellX = 600;
  const cellY = 360;
  const nx = Math.floor((s.x1 - s.x0 - 100) / cellX);
  const ny = Math.floor((s.y1 - s.y0 - 50) / cellY);
  cartons(b, { x0: s.x0 + 50, y0: s.y0, nx, ny, cellX, cellY, across, depth: 400, wall: 5 }, shoeBoxes);
}

interface Container {
  r: number;
  height: number;
  neckR: number;
  neckH: number;
  wall: number;
  wallMaterial: MaterialId;
}

const BEVERAGE_CONTAINERS: readonly Container[] = [
  { r: 45, height: 250, neckR: 14, neckH: 70, wall: 0.35, wallMaterial: 'plastic' }, // 1.5 l PET
  { r: 31, height: 150, neckR: 13, neckH: 80, wall: 3, wallMaterial: 'glass' }, // 0.33 l glass
  { r: 33, height: 115, neckR: 0, neckH: 0, wall: 0.12, wallMaterial: 'aluminium' }, // 0.33 l can
];

function beverages(b: SceneBuilder, rng: Rng, s: CargoSlot): void {
  const c = rng.choice(BEVERAGE_CONTAINERS);
  const pitch = 2 * c.r + 1;
  const tierH = c.height + c.neckH + 6;
  const stack = Math.floor(rng.range(1_100, 1_450) / tierH) * tierH;
  palletRows(b, rng, s, 1_200, 800, stack, (x0, x1, y0, y1, pallets) => {
    const n = pallets * Math.floor(800 / pitch);
    const cols = Math.floor((x1 - x0) / pitch);
    for (let y = y0; y + tierH <= y1 + 1; y += tierH) {
      b.box('cardboard', x0, x0 + cols * pitch, y, y + 2, pallets * 800, 6);
      const body0 = y + 2;
      const body1 = body0 + c.height;
      const fill = c.neckH > 0 ? body1 + c.neckH * 0.3 : body1 - 10;
      for (let i = 0; i < cols; i++) {
        const xc = x0 + (i + 0.5) * pitch;
        b.vcyl(c.wallMaterial, xc, c.r, c.r - c.wall, body0, body1, n);
        b.vcyl('beverage', xc, c.r - c.wall, 0, body0 + (c.wallMaterial === 'glass' ? 5 : 0), Math.min(fill, body1), n);
        if (c.wallMaterial === 'glass') b.vcyl('glass', xc, c.r - c.wall, 0, body0, body0 + 5, n);
        if (c.neckH > 0) {
          b.vcyl(c.wallMaterial, xc, c.neckR, c.neckR - Math.min(c.wall, c.neckR / 2), body1, body1 + c.neckH, n);
          b.vcyl('beverage', xc, c.neckR - c.wall, 0, body1, fill, n);
        }
      }
    }
  });
}

function tobacco(b: SceneBuilder, rng: Rng, s: CargoSlot): void {
  if (rng.chance(0.8)) {
    // Master cases of cigarettes: ~10 cartons of 10 packs per case, thin paperboard between cartons.
    palletRows(b, rng, s, 1_200, 1_000, 5 * 300, (x0, x1, y0, y1, pallets) => {
      const across = pallets * 2;
      const fx = fit(x1 - x0, 600);
      const ny = Math.max(1, Math.floor((y1 - y0) / 300));
      cartons(b, { x0, y0, nx: fx.n, ny, cellX: fx.size, cellY: 300, across, depth: 500, wall: 4 }, (cx0, cx1, cy0, cy1, path) => {
        const k = 10;
        const w = (cx1 - cx0) / k;
        const scale = 0.75 * jit(rng, 0.04);
        for (let i = 0; i < k; i++) {
          b.box('tobacco', cx0 + i * w + 1, cx0 + (i + 1) * w, cy0, cy1, path, scale);
          b.box('cardboard', cx0 + i * w, cx0 + i * w + 1.5, cy0, cy1, path, 5);
        }
        b.box('cardboard', cx0, cx1, cy0 + (cy1 - cy0) / 2 - 1, cy0 + (cy1 - cy0) / 2 + 1, path, 5);
      });
    });
    return;
  }
  // Leaf tobacco in C48 cases: dense, mottled.
  const across = Math.max(1, Math.floor(s.widthMm / 750));
  const nx = Math.floor((s.x1 - s.x0 - 100) / 1_150);
  const ny = Math.max(1, Math.min(3, Math.floor((s.y1 - s.y0 - 50) / 720)));
  cartons(b, { x0: s.x0 + 50, y0: s.y0, nx, ny, cellX: 1_150, cellY: 720, across, depth: 750, wall: 8 }, (cx0, cx1, cy0, cy1, path) => {
    const base = rng.range(1.1, 1.3);
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 3; j++) {
        const w = (cx1 - cx0) / 4;
        const h = (cy1 - cy0) / 3;
        b.box('tobacco', cx0 + i * w, cx0 + (i + 1) * w, cy0 + j * h, cy0 + (j + 1) * h, path, base * jit(rng, 0.18));
      }
    }
  });
}

function fruit(b: SceneBuilder, rng: Rng, s: CargoSlot): void {
  const r = rng.range(35, 42);
  palletRows(b, rng, s, 1_200, 1_000, 6 * 300, (x0, x1, y0, y1, pallets) => {
    const fx = fit(x1 - x0, 400);
    const ny = Math.max(1, Math.floor((y1 - y0) / 300));
    const count = Math.max(1, Math.round((pallets * 1_000 * 0.85) / (2 * r)));
    cartons(b, { x0, y0, nx: fx.n, ny, cellX: fx.size, cellY: 300, across: pallets * 2, depth: 500, wall: 4 }, (cx0, cx1, cy0, cy1, path) => {
      const layers = Math.max(1, Math.floor((cy1 - cy0) / (2 * r + 6)));
      const lh = (cy1 - cy0) / layers;
      const per = Math.max(1, Math.floor((cx1 - cx0) / (2 * r + 2)));
      const pw = (cx1 - cx0) / per;
      for (let k = 0; k < layers; k++) {
        b.box('cardboard', cx0, cx1, cy0 + k * lh, cy0 + k * lh + 3, path, 3);
        for (let i = 0; i < per; i++) {
          const rr = r * jit(rng, 0.06);
          b.sphere('fruit', cx0 + (i + 0.5) * pw + rng.range(-3, 3), cy0 + k * lh + 3 + rr, Math.min(rr, lh / 2 - 2), count);
        }
      }
    });
  });
}

function tyres(b: SceneBuilder, rng: Rng, s: CargoSlot): void {
  const truck = rng.chance(0.3);
  const R = truck ? 536 : rng.range(300, 345);
  const bead = truck ? 296 : rng.choice([203, 216, 229]);
  const width = truck ? rng.choice([315, 385]) : rng.choice([195, 205, 225, 245]);
  const n = Math.max(1, Math.floor(s.widthMm / width));
  for (let xc = s.x0 + R + rng.range(20, 80); xc + R <= s.x1; xc += 2 * R + rng.range(5, 25)) {
    for (let yc = s.y0 + R; yc + R <= s.y1; yc += 2 * R + 5) {
      b.zdisc('rubber', xc, yc, R, R - 16, n * width * 0.9);
      b.zdisc('steel', xc, yc, R - 9, R - 14, n * width * 0.8 * 0.3);
      b.zdisc('rubber', xc, yc, R - 16, bead + 10, n * 2 * 9);
      b.zdisc('steel', xc, yc, bead + 10, bead, n * 2 * 8 * 0.6);
    }
  }
}

/** Steel products: structural sections, pipe bundles or coils, within a ~24 t payload. */
function steel(b: SceneBuilder, rng: Rng, s: CargoSlot): void {
  const payloadKg = rng.range(14_000, 24_000);
  const kgPerMm3 = 7.85e-6;
  const variant = rng.weighted([
    ['sections', 0.4],
    ['pipes', 0.35],
    ['coils', 0.25],
  ] as const);
  if (variant === 'coils') {
    const rOut = rng.range(550, 900);
    const rIn = 305;
    const w = rng.range(1_000, 1_500);
    const coilKg = Math.PI * (rOut * rOut - rIn * rIn) * w * kgPerMm3;
    const coils = Math.max(1, Math.min(4, Math.floor(payloadKg / coilKg), Math.floor((s.x1 - s.x0) / (2 * rOut + 600))));
    const eyeToSky = rng.chance(0.35);
    const spacing = (s.x1 - s.x0) / coils;
    for (let i = 0; i < coils; i++) {
      const xc = s.x0 + (i + 0.5) * spacing;
      if (eyeToSky) {
        b.box('wood', xc - rOut, xc + rOut, s.y0, s.y0 + 100, 2 * 150);
        b.vcyl('steel', xc, rOut, rIn, s.y0 + 100, s.y0 + 100 + Math.min(w, s.y1 - s.y0 - 150), 1, 0.97);
      } else {
        b.box('wood', xc - rOut, xc + rOut, s.y0, s.y0 + 150, w, 0.8);
        b.zdisc('steel', xc, s.y0 + 150 + rOut, rOut, rIn, w, 0.97);
      }
    }
    return;
  }
  const len = Math.min(s.x1 - s.x0 - 100, rng.range(6_000, 12_000));
  const x0 = s.x0 + rng.range(20, Math.max(21, s.x1 - s.x0 - len - 20));
  const x1 = x0 + len;
  let kg = 0;
  let y = s.y0;
  if (variant === 'sections') {
    const h = rng.range(150, 400);
    const bf = rng.range(100, 300);
    const tw = rng.range(7, 13);
    const tf = rng.range(10, 20);
    const k = Math.max(1, Math.floor(s.widthMm / (bf + 60)));
    const layerKg = k * (2 * bf * tf + (h - 2 * tf) * tw) * len * kgPerMm3;
    while (kg + layerKg <= payloadKg && y + h + 75 <= s.y1) {
      for (let bx = x0 + 300; bx < x1 - 100; bx += 2_000) b.box('wood', bx, bx + 75, y, y + 75, s.widthMm);
      y += 75;
      b.box('steel', x0, x1, y + tf, y + h - tf, k * tw);
      b.box('steel', x0, x1, y, y + tf, k * bf);
      b.box('steel', x0, x1, y + h - tf, y + h, k * bf);
      y += h;
      kg += layerKg;
    }
    return;
  }
  const r = rng.range(30, 160);
  const wall = Math.min(r / 3, rng.range(3, 12));
  const k = Math.max(1, Math.floor(s.widthMm / (2 * r + 5)));
  const rowKg = k * Math.PI * (r * r - (r - wall) * (r - wall)) * len * kgPerMm3;
  y += 60;
  b.box('wood', x0 + 500, x0 + 575, s.y0, y, s.widthMm);
  b.box('wood', x1 - 575, x1 - 500, s.y0, y, s.widthMm);
  while (kg + rowKg <= payloadKg && y + 2 * r <= Math.min(s.y1, s.y0 + 1_800)) {
    b.hcyl('steel', x0 + rng.range(0, 40), x1 - rng.range(0, 40), y + r, r, r - wall, k);
    y += 2 * r + 2;
    kg += rowKg;
  }
}

/** One machine on a skid: cast body with cavities, motor, hydraulics, cabinet, gears, maybe in a crate. */
function machine(b: SceneBuilder, rng: Rng, x0: number, len: number, y0: number, maxH: number, widthMm: number): void {
  const x1 = x0 + len;
  const H = rng.range(Math.min(900, maxH), Math.min(2_200, maxH));
  const W = rng.range(1_000, Math.min(2_000, widthMm - 100));
  if (rng.chance(0.5)) b.shell('wood', x0 - 30, x1 + 30, y0, y0 + H + 40, 22, W + 60);
  const base = y0 + 160;
  b.box('steel', x0, x1, y0, base, 2 * 8);
  b.box('steel', x0, x1, y0, y0 + 14, 2 * 120);
  b.box('steel', x0, x1, base - 14, base, 2 * 120);
  const gx = rng.intRange(2, 4);
  const gy = rng.intRange(1, 3);
  const bodyH = (H - 160) * rng.range(0.5, 0.9);
  const cw = len / gx;
  const ch = bodyH / gy;
  for (let i = 0; i < gx; i++) {
    for (let j = 0; j < gy; j++) {
      const f = rng.chance(0.25) ? 0 : rng.range(0.03, 0.25);
      if (f > 0) b.box('cast-iron', x0 + i * cw + 20, x0 + (i + 1) * cw - 20, base + j * ch, base + (j + 1) * ch - 10, W * f);
    }
  }
  const top = base + bodyH;
  const mr = rng.range(120, 300);
  const mx = x0 + rng.range(0, Math.max(1, len - 800));
  const my = Math.min(y0 + H - mr, top + mr);
  b.hcyl('steel', mx, mx + rng.range(400, 800), my, mr, mr * 0.85);
  b.hcyl('copper', mx + 50, mx + 350, my, mr * 0.8, mr * 0.5, 1, 0.5);
  b.hcyl('steel', mx, mx + 500, my, mr * 0.45);
  if (rng.chance(0.6)) {
    const hr = rng.range(40, 80);
    const hx = x0 + rng.range(0, Math.max(1, len - 1_500));
    const hy = base + rng.range(hr, Math.max(hr + 1, bodyH));
    const hl = rng.range(800, 1_500);
    b.hcyl('steel', hx, hx + hl, hy, hr, hr - 8);
    b.hcyl('diesel', hx, hx + hl, hy, hr - 8, 0, 1, 1.05);
    b.hcyl('steel', hx + hl, hx + hl + 400, hy, hr * 0.4);
  }
  if (rng.chance(0.6)) {
    const cx = x1 - rng.range(500, 800);
    const cy1 = Math.min(y0 + H, base + rng.range(700, 1_400));
    b.shell('steel', cx, x1, base, cy1, 2, 600);
    b.box('copper', cx + 50, cx + 70, base + 100, cy1 - 100, 400, 0.3);
    b.box('circuit-board', cx + 100, x1 - 50, base + 200, cy1 - 200, 600, 0.05);
  }
  if (rng.chance(0.5)) {
    const gr = rng.range(200, 400);
    b.zdisc('steel', x0 + rng.range(gr, Math.max(gr + 1, len - gr)), Math.min(y0 + H - gr, top + gr * 0.5), gr, rng.range(40, 80), rng.range(80, 200));
  }
}

function machinery(b: SceneBuilder, rng: Rng, s: CargoSlot): void {
  let x = s.x0 + rng.range(50, 300);
  while (x < s.x1 - 1_600) {
    const len = Math.min(rng.range(1_500, 4_000), s.x1 - x - 100);
    machine(b, rng, x, len, s.y0, s.y1 - s.y0 - 100, s.widthMm);
    x += len + rng.range(200, 800);
  }
}

type Device = 'desktop' | 'laptop' | 'monitor';

function electronics(b: SceneBuilder, rng: Rng, s: CargoSlot): void {
  const device = rng.choice<Device>(['desktop', 'laptop', 'monitor']);
  const dims: Record<Device, { cellX: number; cellY: number; depth: number }> = {
    desktop: { cellX: 520, cellY: 480, depth: 250 },
    laptop: { cellX: 450, cellY: 120, depth: 350 },
    monitor: { cellX: 680, cellY: 500, depth: 160 },
  };
  const d = dims[device];
  palletRows(b, rng, s, 1_200, 1_000, Math.floor(1_300 / d.cellY) * d.cellY, (x0, x1, y0, y1, pallets) => {
    const across = Math.max(1, Math.floor((pallets * 1_000) / d.depth));
    const fx = fit(x1 - x0, d.cellX);
    const ny = Math.max(1, Math.floor((y1 - y0) / d.cellY));
    cartons(b, { x0, y0, nx: fx.n, ny, cellX: fx.size, cellY: d.cellY, across, depth: d.depth, wall: 4 }, (cx0, cx1, cy0, cy1) => {
      const n = across;
      if (device === 'desktop') {
        b.box('foam', cx0, cx1, cy0, cy1, n * d.depth * 0.4);
        const a = cx0 + 40;
        const c = cx1 - 40;
        const top = cy1 - 40;
        b.shell('steel', a, c, cy0 + 40, top, 0.8, d.depth - 70, n);
        b.box('steel', a + 10, a + 160, top - 96, top - 10, n * 140, 0.25);
        b.box('copper', a + 40, a + 90, top - 80, top - 30, n * 30, 0.5);
        b.box('circuit-board', a + 60, c - 20, cy0 + 80, top - 110, n * 1.6);
        b.box('aluminium', a + 150, a + 230, top - 220, top - 140, n * 80, 0.4);
        b.box('aluminium', c - 170, c - 20, cy0 + 60, cy0 + 86, n * 101, 0.7);
      } else if (device === 'laptop') {
        const a = cx0 + 40;
        const c = cx1 - 40;
        const y = cy0 + 40;
        b.box('foam', cx0, cx1, cy0, cy1, n * d.depth * 0.3);
        b.box('aluminium', a, c, y, y + 1.5, n * 240);
        b.box('battery-cell', a + 20, a + 220, y + 3, y + 12, n * 80);
        b.box('circuit-board', a + 40, c - 40, y + 5, y + 7, n * 200);
        b.box('plastic', a, c, y + 8, y + 14, n * 240, 0.3);
        b.box('glass', a, c, y + 16, y + 17, n * 220);
        b.box('aluminium', a, c, y + 18, y + 19.5, n * 240);
        b.box('copper', c - 60, c, y + 25, y + 55, n * 60, 0.15);
      } else {
        b.box('foam', cx0, cx1, cy0, cy1, n * d.depth * 0.3);
        b.box('glass', cx0 + 30, cx1 - 30, cy0 + 80, cy1 - 30, n * 1.4);
        b.box('aluminium', cx0 + 30, cx1 - 30, cy0 + 80, cy1 - 30, n * 1);
        b.box('plastic', cx0 + 30, cx1 - 30, cy0 + 80, cy1 - 30, n * 3);
        b.box('circuit-board', cx0 + 200, cx1 - 200, cy0 + 120, cy0 + 200, n * 1.6);
        b.box('steel', cx0 + 200, cx1 - 200, cy0 + 30, cy0 + 40, n * 150);
      }
    });
  });
}

const LOADERS: Readonly<Record<CargoCategory, (b: SceneBuilder, rng: Rng, s: CargoSlot) => void>> = {
  timber,
  paper,
  clothing,
  footwear,
  beverages,
  tobacco,
  fruit,
  tyres,
  steel,
  machinery,
  electronics,
  empty: () => undefined,
};

/** Loads `category` into the slot (primitives tagged by the caller). Nothing is drawn for 'empty'. */
export function loadCargo(b: SceneBuilder, rng: Rng, category: CargoCategory, slot: CargoSlot): void {
  LOADERS[category](b, rng, slot);
}
