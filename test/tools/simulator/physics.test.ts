import { describe, expect, it } from 'vitest';
import { DEFAULT_STITCHER_OPTIONS } from '../../../src/stitch/index.js';
import { MaterialClass, type MaterialOptions } from '../../../src/stitch/types.js';
import {
  ATTENUATION_ANCHORS,
  Energy,
  MATERIALS,
  MATERIAL_IDS,
  energyRatio,
  linearAttenuation,
  massAttenuation,
  rayAttenuation,
  slabAttenuation,
} from '../../../tools/simulator/physics.js';

/** The rule documented on MaterialOptions (src/stitch/types.ts), written out independently as the test oracle. */
function classify(attHigh: number, attLow: number, o: MaterialOptions): MaterialClass {
  if (attHigh < o.minAttenuation) return MaterialClass.Background;
  if (attHigh > o.maxAttenuation) return MaterialClass.Impenetrable;
  const r = attLow / attHigh;
  const [t0, t1, t2] = o.ratioThresholds;
  if (r >= t0) return MaterialClass.Organic;
  if (r >= t1) return MaterialClass.Mixed;
  if (r >= t2) return MaterialClass.Inorganic;
  return MaterialClass.HeavyMetal;
}

const material = DEFAULT_STITCHER_OPTIONS.material;

describe('mass attenuation', () => {
  it('matches the NIST XCOM anchor values at the two effective energies', () => {
    // Values (cm^2/g) close to XCOM total attenuation with coherent scattering, 2 MeV / 4 MeV.
    const xcom: Array<[number, number, number]> = [
      [7.42, 0.0494, 0.034], // water
      [13, 0.0432, 0.0311], // aluminium
      [26, 0.0426, 0.0331], // iron
      [29, 0.042, 0.033], // copper
      [50, 0.0425, 0.036], // tin
      [82, 0.0461, 0.0418], // lead
    ];
    for (const [z, low, high] of xcom) {
      expect(Math.abs(massAttenuation(z, Energy.Low) / low - 1)).toBeLessThan(0.01);
      expect(Math.abs(massAttenuation(z, Energy.High) / high - 1)).toBeLessThan(0.01);
    }
    expect(ATTENUATION_ANCHORS.map((a) => a.z)).toEqual([...ATTENUATION_ANCHORS.map((a) => a.z)].sort((a, b) => a - b));
  });

  it('interpolates between anchors and holds outside them', () => {
    expect(massAttenuation(19.5, Energy.High)).toBeCloseTo((0.0311 + 0.0331) / 2, 6);
    expect(massAttenuation(1, Energy.Low)).toBe(massAttenuation(6, Energy.Low));
    expect(massAttenuation(100, Energy.High)).toBe(massAttenuation(82, Energy.High));
  });

  it('gives R = mu(low) / mu(high) falling with Z: organic > aluminium > steel > lead', () => {
    const r = (id: keyof typeof MATERIALS) => energyRatio(MATERIALS[id].z);
    expect(r('water')).toBeCloseTo(1.45, 1);
    expect(r('aluminium')).toBeCloseTo(1.39, 2);
    expect(r('steel')).toBeCloseTo(1.29, 2);
    expect(r('lead')).toBeCloseTo(1.1, 2);
    expect(r('water')).toBeGreaterThan(r('aluminium'));
    expect(r('aluminium')).toBeGreaterThan(r('steel'));
    expect(r('steel')).toBeGreaterThan(r('lead'));
    // Monotone (non-increasing) over the whole Z range.
    let last = Infinity;
    for (let z = 6; z <= 90; z += 0.25) {
      expect(energyRatio(z)).toBeLessThanOrEqual(last + 1e-12);
      last = energyRatio(z);
    }
  });
});

describe('material table', () => {
  it('lists every material id once, with plausible Z and density', () => {
    expect(Object.keys(MATERIALS).sort()).toEqual([...MATERIAL_IDS].sort());
    for (const id of MATERIAL_IDS) {
      const m = MATERIALS[id];
      expect(m.id).toBe(id);
      expect(m.z).toBeGreaterThanOrEqual(5.5);
      expect(m.z).toBeLessThanOrEqual(83);
      expect(m.density).toBeGreaterThan(0);
      expect(m.density).toBeLessThan(20);
    }
    expect(MATERIALS.explosive.density).toBeGreaterThanOrEqual(1.6);
    expect(MATERIALS.explosive.density).toBeLessThanOrEqual(1.8);
    expect(MATERIALS.narcotics.density).toBeGreaterThanOrEqual(1.1);
    expect(MATERIALS.narcotics.density).toBeLessThanOrEqual(1.3);
    expect(MATERIAL_IDS.filter((id) => MATERIALS[id].threat).sort()).toEqual(['explosive', 'firearm-steel', 'narcotics']);
  });

  const solids = MATERIAL_IDS.filter((id) => id !== 'air');
  it.each(solids)('%s classifies as its expected class with the default thresholds at representative thicknesses', (id) => {
    const m = MATERIALS[id];
    // Thicknesses giving high-energy attenuation 0.3, 1, 3 and 6: thin to nearly opaque, all classifiable.
    for (const target of [0.3, 1, 3, 6]) {
      const t = target / linearAttenuation(id, Energy.High);
      const attH = slabAttenuation(id, t, Energy.High);
      const attL = slabAttenuation(id, t, Energy.Low);
      expect(classify(attH, attL, material), `${m.name}, ${t.toFixed(1)} mm`).toBe(m.expectedClass);
    }
    // Too thick to see through, and too thin to see.
    const opaque = 9 / linearAttenuation(id, Energy.High);
    expect(classify(slabAttenuation(id, opaque, Energy.High), slabAttenuation(id, opaque, Energy.Low), material)).toBe(MaterialClass.Impenetrable);
    const faint = 0.01 / linearAttenuation(id, Energy.High);
    expect(classify(slabAttenuation(id, faint, Energy.High), slabAttenuation(id, faint, Energy.Low), material)).toBe(MaterialClass.Background);
  });

  it('puts the materials the brief names into the classes a portal operator expects', () => {
    const expected: Record<string, MaterialClass> = {
      wood: MaterialClass.Organic,
      paper: MaterialClass.Organic,
      textile: MaterialClass.Organic,
      rubber: MaterialClass.Organic,
      leather: MaterialClass.Organic,
      water: MaterialClass.Organic,
      tobacco: MaterialClass.Organic,
      fruit: MaterialClass.Organic,
      narcotics: MaterialClass.Organic,
      explosive: MaterialClass.Organic,
      glass: MaterialClass.Mixed,
      aluminium: MaterialClass.Mixed,
      steel: MaterialClass.Inorganic,
      copper: MaterialClass.Inorganic,
      'firearm-steel': MaterialClass.Inorganic,
      lead: MaterialClass.HeavyMetal,
    };
    for (const [id, cls] of Object.entries(expected)) expect(MATERIALS[id as keyof typeof MATERIALS].expectedClass, id).toBe(cls);
  });

  it('air is background even across a whole truck width', () => {
    const attH = slabAttenuation('air', 2_500, Energy.High);
    expect(classify(attH, slabAttenuation('air', 2_500, Energy.Low), material)).toBe(MaterialClass.Background);
  });
});

describe('Beer-Lambert', () => {
  it('adds the attenuation of every material on a ray and scales with density', () => {
    const ray = [
      { material: 'steel' as const, pathMm: 4 },
      { material: 'wood' as const, pathMm: 2_000, densityScale: 0.8 },
    ];
    const expected = slabAttenuation('steel', 4, Energy.High) + slabAttenuation('wood', 2_000, Energy.High, 0.8);
    expect(rayAttenuation(ray, Energy.High)).toBeCloseTo(expected, 12);
    // mu/rho * rho * L: 10 cm of water at 4 MeV.
    expect(slabAttenuation('water', 100, Energy.High)).toBeCloseTo(0.034 * 1 * 10, 6);
    expect(slabAttenuation('steel', 100, Energy.High, 2)).toBeCloseTo(2 * slabAttenuation('steel', 100, Energy.High), 12);
  });

  it('keeps organic cargo behind steel container walls organic (walls do not flip the class)', () => {
    // 2 x 2 mm corrugated steel walls + 2.3 m of light cartons (0.1 g/cm^3).
    const ray = [
      { material: 'steel' as const, pathMm: 4 },
      { material: 'cardboard' as const, pathMm: 2_300, densityScale: 0.1 / 0.12 },
    ];
    expect(classify(rayAttenuation(ray, Energy.High), rayAttenuation(ray, Energy.Low), material)).toBe(MaterialClass.Organic);
  });
});
