import { describe, expect, it } from 'vitest';
import type { ModelLabel } from '../../src/inference/index.js';
import { GoodsSuggestions, ThreatAlerts, checkDeclaration, softmaxInto, type SuggestionSegment, type ThreatTile } from '../../src/results/index.js';

const GOODS: ModelLabel[] = [
  { id: 'timber', name: 'Timber', hsCodes: ['4407'] },
  { id: 'tobacco', name: 'Tobacco / cigarettes', hsCodes: ['2402'] },
  { id: 'steel', name: 'Steel products', hsCodes: ['7308'] },
  { id: 'vehicle', name: 'Vehicle structure', hsCodes: [], cargo: false },
  { id: 'air', name: 'Air', hsCodes: [], cargo: false },
];
const THREATS: ModelLabel[] = [
  { id: 'firearm', name: 'Firearm', hsCodes: [] },
  { id: 'narcotics', name: 'Narcotics', hsCodes: [] },
];

function probs(p: Partial<Record<string, number>>): Float32Array {
  return Float32Array.from(GOODS.map((l) => p[l.id] ?? 0));
}

/** A scan of columns every 128 lines (tiles span 256), two tiles per column. */
function feed(g: GoodsSuggestions, columns: Array<Partial<Record<string, number>>>): void {
  columns.forEach((p, k) => {
    for (const pixel of [0, 192]) g.add({ line: k * 128, lines: 256, pixel, pixels: 256, probabilities: probs(p) });
  });
}

describe('goods suggestions', () => {
  it('groups cargo columns by top-1 category, skips non-cargo columns, ranks the top 3', () => {
    const g = new GoodsSuggestions(GOODS, 128, 0.5);
    feed(g, [
      { vehicle: 0.9, timber: 0.1 },
      { timber: 0.8, tobacco: 0.15, steel: 0.05 },
      { timber: 0.7, tobacco: 0.3 },
      { tobacco: 0.9, timber: 0.1 },
      { air: 1 },
    ]);
    const s = g.segments();
    expect(s.map((x) => [x.id, x.top3[0].label, x.startLine, x.endLine, x.final])).toEqual([
      ['g1', 'timber', 192, 448, false],
      ['g3', 'tobacco', 448, 576, false],
    ]);
    expect(s[0].top3.map((c) => c.label)).toEqual(['timber', 'tobacco', 'steel']);
    expect(s[0].confidence).toBeCloseTo(0.75, 4);
    expect(s[0].top3[0].hsCodes).toEqual(['4407']);
    g.finish();
    expect(g.segments().every((x) => x.final)).toBe(true);
  });

  it('withholds segments below the suggest threshold and renormalises the cargo part', () => {
    const g = new GoodsSuggestions(GOODS, 128, 0.6);
    feed(g, [{ timber: 0.35, tobacco: 0.3, steel: 0.05, vehicle: 0.3 }]);
    expect(g.segments()).toEqual([]); // 0.35 / 0.7 = 0.5 < 0.6
    const h = new GoodsSuggestions(GOODS, 128, 0.45);
    feed(h, [{ timber: 0.35, tobacco: 0.3, steel: 0.05, vehicle: 0.3 }]);
    expect(h.segments()[0].confidence).toBeCloseTo(0.5, 4);
  });

  it('softmax sums to one and is stable for large logits', () => {
    const out = softmaxInto(Float32Array.from([1000, 1001, 999]), new Float32Array(3));
    expect(out.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    expect(out[1]).toBeGreaterThan(out[0]);
  });
});

describe('threat alerts', () => {
  function heat(cells: Array<[number, number, number, number]>, grid = 16): Float32Array {
    const p = new Float32Array(THREATS.length * grid * grid);
    for (const [k, y, x, v] of cells) p[k * grid * grid + y * grid + x] = v;
    return p;
  }

  const tile = (line: number, pixel: number, cells: Array<[number, number, number, number]>, lines = 256): ThreatTile => ({
    line,
    lines,
    pixel,
    pixels: 256,
    gridH: 16,
    gridW: 16,
    probabilities: heat(cells),
  });

  it('turns hot cells into boxes in scan coordinates and merges overlapping tiles into one alert', () => {
    const a = new ThreatAlerts(THREATS, { firearm: 0.6, narcotics: 0.5 }, 1024, 16);
    // tile at line 512, pixel 192, 256 x 256 raw: each cell is 16 x 16 raw
    const first = a.add(tile(512, 192, [[0, 4, 14, 0.9], [0, 4, 15, 0.7], [0, 9, 2, 0.55]]));
    expect(first.map((x) => [x.category, x.box])).toEqual([['firearm', { lineStart: 736, lineEnd: 768, pixelStart: 256, pixelEnd: 272 }]]);
    // the next column overlaps: the same object seen again extends the alert instead of raising a new one
    const second = a.add(tile(640, 192, [[0, 4, 7, 0.95], [0, 4, 8, 0.8]]));
    expect(second).toHaveLength(1);
    expect(a.all()).toEqual([
      expect.objectContaining({ id: 't0', category: 'firearm', probability: 0.95, cells: 3, box: { lineStart: 736, lineEnd: 784, pixelStart: 256, pixelEnd: 272 } }),
    ]);
    // a tile that adds nothing new changes nothing
    expect(a.add(tile(640, 192, [[0, 4, 7, 0.5]]))).toEqual([]);
  });

  it('names a group by the label exceeding its threshold most, keeps separate objects apart, ignores cold cells', () => {
    const a = new ThreatAlerts(THREATS, { firearm: 0.6, narcotics: 0.5 }, 1024, 16);
    // cell (1,1): firearm 0.7 / 0.6 = 1.17 < narcotics 0.6 / 0.5 = 1.2 -> one narcotics alert; (5,5) is cold
    a.add(tile(0, 0, [[0, 1, 1, 0.7], [0, 10, 10, 0.7], [1, 1, 1, 0.6], [1, 5, 5, 0.4]]));
    expect(a.all().map((x) => `${x.category}@${x.box.lineStart},${x.box.pixelStart}`)).toEqual(['narcotics@16,16', 'firearm@160,160']);
  });

  it('joins alerts a later cell bridges (8-connected), keeping the older id, and never withdraws one', () => {
    const a = new ThreatAlerts(THREATS, { firearm: 0.5 }, 1024, 16);
    a.add(tile(0, 0, [[0, 3, 3, 0.9], [0, 5, 5, 0.8]]));
    expect(a.all().map((x) => x.id)).toEqual(['t0', 't1']);
    // (4,4) touches both diagonally
    const changed = a.add(tile(0, 0, [[0, 4, 4, 0.6]]));
    expect(changed.map((x) => x.id)).toEqual(['t0']);
    expect(a.all()).toEqual([expect.objectContaining({ id: 't0', cells: 3, probability: 0.9, box: { lineStart: 48, lineEnd: 96, pixelStart: 48, pixelEnd: 96 } })]);
  });

  it('ignores the zero padding past the end of the scan and the detector', () => {
    const a = new ThreatAlerts(THREATS, { firearm: 0.5 }, 200, 16);
    // the last tile covers only 40 lines (cells 0..2) and the detector ends at pixel 200 (rows 0..12)
    a.add(tile(128, 0, [[0, 1, 3, 0.9], [0, 14, 0, 0.9]], 40));
    expect(a.all()).toEqual([]);
    a.add(tile(128, 0, [[0, 12, 2, 0.9]], 40));
    expect(a.all()).toEqual([expect.objectContaining({ box: { lineStart: 160, lineEnd: 176, pixelStart: 192, pixelEnd: 200 } })]);
  });
});

describe('declaration check', () => {
  const seg = (label: ModelLabel, start: number, end: number, confidence = 0.9): SuggestionSegment => ({
    id: `g${start}`,
    startLine: start,
    endLine: end,
    confidence,
    final: true,
    top3: [{ label: label.id, name: label.name, hsCodes: label.hsCodes, probability: confidence }],
  });

  it('flags suggested goods whose HS heading was not declared (declared timber, looks like cigarettes)', () => {
    const c = checkDeclaration(['440710'], [seg(GOODS[0], 0, 500), seg(GOODS[1], 500, 900)]);
    expect(c.status).toBe('mismatch');
    expect(c.undeclared).toEqual([{ label: 'tobacco', name: 'Tobacco / cigarettes', hsCodes: ['2402'], lines: 400, confidence: 0.9 }]);
    expect(c.notSeen).toEqual([]);
  });

  it('matches on the 4-digit heading and reports declared goods not seen', () => {
    const c = checkDeclaration(['4407', '7308900000'], [seg(GOODS[0], 0, 500)]);
    expect(c).toMatchObject({ status: 'match', undeclared: [], notSeen: ['7308'] });
  });

  it('is unknown without a declaration or before anything is suggested', () => {
    expect(checkDeclaration(null, [seg(GOODS[0], 0, 10)]).status).toBe('unknown');
    expect(checkDeclaration(['4407'], []).status).toBe('unknown');
  });
});
