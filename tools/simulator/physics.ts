/**
 * X-ray physics of a dual-energy MeV linac portal, as the simulator models it: two monoenergetic effective beam
 * energies (low ~2 MeV, high ~4 MeV), mass attenuation coefficients interpolated in effective Z from a few anchor
 * materials (values close to NIST XCOM, total attenuation with coherent scattering), and Beer-Lambert along each
 * ray: attenuation(E) = sum over materials of mu/rho(E, Z) * rho * pathLength.
 *
 * At these energies Compton scattering dominates and scales with Z/A, while pair production grows ~Z per electron
 * and is stronger at 4 MeV than at 2 MeV. So R = mu(low) / mu(high) falls as Z rises: organic ~1.45, aluminium
 * ~1.39, iron ~1.29, lead ~1.10. The gateway's material map thresholds R (src/stitch/options.ts).
 *
 * Simplifications (documented, deliberate): no beam hardening (the spectra are replaced by one energy each), no
 * scatter, no detector cross-talk. Thickness therefore does not change R for a single material.
 */
import { MaterialClass } from '../../src/stitch/index.js';

/** Index of an energy in a wire line: high energy first, then low (src/protocol/slice-frame.ts). */
export const Energy = {
  High: 0,
  Low: 1,
} as const;
export type Energy = (typeof Energy)[keyof typeof Energy];

/** Effective photon energies the two channels are modelled with, MeV. */
export const EFFECTIVE_ENERGY_MEV = Object.freeze({ high: 4, low: 2 });

export interface AttenuationAnchor {
  /** Effective atomic number. */
  readonly z: number;
  readonly name: string;
  /** Mass attenuation coefficient at the low effective energy (2 MeV), cm^2/g. */
  readonly low: number;
  /** Mass attenuation coefficient at the high effective energy (4 MeV), cm^2/g. */
  readonly high: number;
}

/**
 * Anchor materials, sorted by Z. mu/rho is interpolated linearly in Z between neighbours and held constant outside
 * the table. The Z=6 anchor is cellulose (C6H10O5, mixture rule from the XCOM elements), so organics between
 * cellulose and water interpolate between two hydrogenous materials rather than towards pure carbon.
 */
export const ATTENUATION_ANCHORS: readonly AttenuationAnchor[] = Object.freeze([
  { z: 6, name: 'cellulose (organic)', low: 0.0471, high: 0.0324 },
  { z: 7.42, name: 'water', low: 0.0494, high: 0.034 },
  { z: 13, name: 'aluminium', low: 0.0432, high: 0.0311 },
  { z: 26, name: 'iron', low: 0.0426, high: 0.0331 },
  { z: 29, name: 'copper', low: 0.04205, high: 0.03318 },
  { z: 50, name: 'tin', low: 0.0425, high: 0.0361 },
  { z: 82, name: 'lead', low: 0.0461, high: 0.042 },
]);

/** Mass attenuation coefficient mu/rho in cm^2/g at effective atomic number `z`. */
export function massAttenuation(z: number, energy: Energy): number {
  const a = ATTENUATION_ANCHORS;
  const pick = (x: AttenuationAnchor): number => (energy === Energy.High ? x.high : x.low);
  if (!(z > a[0].z)) return pick(a[0]);
  for (let i = 1; i < a.length; i++) {
    if (z <= a[i].z) {
      const t = (z - a[i - 1].z) / (a[i].z - a[i - 1].z);
      return pick(a[i - 1]) + t * (pick(a[i]) - pick(a[i - 1]));
    }
  }
  return pick(a[a.length - 1]);
}

/** The dual-energy ratio R = mu(low) / mu(high) of a pure material of effective atomic number `z`. */
export function energyRatio(z: number): number {
  return massAttenuation(z, Energy.Low) / massAttenuation(z, Energy.High);
}

export const MATERIAL_IDS = [
  'air',
  'wood',
  'paper',
  'cardboard',
  'textile',
  'rubber',
  'leather',
  'plastic',
  'foam',
  'water',
  'beverage',
  'diesel',
  'fruit',
  'tobacco',
  'glass',
  'circuit-board',
  'battery-cell',
  'aluminium',
  'steel',
  'cast-iron',
  'copper',
  'lead',
  'firearm-steel',
  'narcotics',
  'explosive',
] as const;
export type MaterialId = (typeof MATERIAL_IDS)[number];

export interface Material {
  readonly id: MaterialId;
  readonly name: string;
  /** Effective atomic number for MeV attenuation (electron-weighted mean Z of the mixture). */
  readonly z: number;
  /** Density as the material appears in a load, g/cm^3 (bulk for goods, solid for metals). */
  readonly density: number;
  /** What a calibrated dual-energy portal should call a slab of it (thick enough, not impenetrable). */
  readonly expectedClass: MaterialClass;
  /** True for materials that only appear as threats. */
  readonly threat: boolean;
}

function m(id: MaterialId, name: string, z: number, density: number, expectedClass: MaterialClass, threat = false): Material {
  return Object.freeze({ id, name, z, density, expectedClass, threat });
}

const { Background, Organic, Mixed, Inorganic, HeavyMetal } = MaterialClass;

/** The material table. Densities g/cm^3; the cargo generator scales them by packing fractions. */
export const MATERIALS: Readonly<Record<MaterialId, Material>> = Object.freeze({
  air: m('air', 'air', 7.64, 0.0012, Background),
  wood: m('wood', 'wood / timber (pine, dry)', 6.6, 0.55, Organic),
  paper: m('paper', 'paper (reels, reams)', 6.8, 0.8, Organic),
  cardboard: m('cardboard', 'corrugated cardboard', 6.8, 0.12, Organic),
  textile: m('textile', 'cotton / textile (folded, bulk)', 6.9, 0.35, Organic),
  rubber: m('rubber', 'rubber (tyre compound)', 6.2, 1.15, Organic),
  leather: m('leather', 'leather', 7.0, 0.86, Organic),
  plastic: m('plastic', 'plastic (PE/PP/PET)', 6.0, 1.0, Organic),
  foam: m('foam', 'polystyrene / polyurethane foam', 6.0, 0.035, Organic),
  water: m('water', 'water', 7.42, 1.0, Organic),
  beverage: m('beverage', 'beverage (water, sugar)', 7.3, 1.04, Organic),
  diesel: m('diesel', 'diesel fuel', 6.0, 0.83, Organic),
  fruit: m('fruit', 'fruit / plant matter', 7.3, 0.85, Organic),
  tobacco: m('tobacco', 'tobacco (cut, in cigarettes)', 7.6, 0.3, Organic),
  glass: m('glass', 'glass (soda-lime)', 12.5, 2.5, Mixed),
  'circuit-board': m('circuit-board', 'circuit board (FR4 + copper)', 14, 1.9, Mixed),
  'battery-cell': m('battery-cell', 'lithium-ion cells', 17, 2.5, Mixed),
  aluminium: m('aluminium', 'aluminium', 13, 2.7, Mixed),
  steel: m('steel', 'steel', 26, 7.85, Inorganic),
  'cast-iron': m('cast-iron', 'cast iron', 26, 7.2, Inorganic),
  copper: m('copper', 'copper', 29, 8.96, Inorganic),
  lead: m('lead', 'lead', 82, 11.35, HeavyMetal),
  'firearm-steel': m('firearm-steel', 'firearm steel', 26, 7.85, Inorganic, true),
  narcotics: m('narcotics', 'narcotics (cocaine/heroin-like, compressed bricks)', 7.0, 1.2, Organic, true),
  explosive: m('explosive', 'explosive (RDX/TNT-like)', 7.1, 1.7, Organic, true),
});

/** Linear attenuation coefficient in 1/mm of a material at `densityScale` times its table density. */
export function linearAttenuation(material: MaterialId, energy: Energy, densityScale = 1): number {
  const mat = MATERIALS[material];
  // mu/rho [cm^2/g] * rho [g/cm^3] = mu [1/cm]; / 10 for 1/mm.
  return (massAttenuation(mat.z, energy) * mat.density * densityScale) / 10;
}

/** Noiseless attenuation -ln(I/I0) of a slab, for one energy. */
export function slabAttenuation(material: MaterialId, thicknessMm: number, energy: Energy, densityScale = 1): number {
  return linearAttenuation(material, energy, densityScale) * thicknessMm;
}

export interface RayPath {
  material: MaterialId;
  pathMm: number;
  densityScale?: number;
}

/** Beer-Lambert: noiseless attenuation of a ray crossing several materials, for one energy. */
export function rayAttenuation(paths: readonly RayPath[], energy: Energy): number {
  let sum = 0;
  for (const p of paths) sum += linearAttenuation(p.material, energy, p.densityScale ?? 1) * p.pathMm;
  return sum;
}
