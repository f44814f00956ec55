import { describe, expect, it } from 'vitest';
import type { ModelLabel, OutOfDistributionStats } from '../../src/inference/index.js';
import { testManifest } from '../helpers/manifest.js';
import { IMAGE_FEATURE_COUNT, IMAGE_FEATURES, OodModel } from '../../src/opinion/index.js';
import {
  GoodsSuggestions,
  ReferenceLibrary,
  ScanResults,
  ThreatAlerts,
  logitThreshold,
  probabilityOf,
  checkDeclaration,
  normalizeL2,
  prototypeOf,
  softmaxInto,
  type ReferenceCategory,
  type ReferenceSnapshot,
  type ThreatTile,
} from '../../src/results/index.js';
import type { SuggestionSegment } from '../../src/protocol/index.js';

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

  it('counts only the cargo tiles of a column, so air above a low load and the chassis below do not hide it', () => {
    const g = new GoodsSuggestions(GOODS, 128, 0.5);
    for (const [pixel, p] of [
      [0, { air: 1 }],
      [192, { air: 0.9, vehicle: 0.1 }],
      [384, { steel: 0.85, vehicle: 0.15 }],
      [576, { vehicle: 0.8, steel: 0.2 }],
    ] as const) {
      g.add({ line: 0, lines: 256, pixel, pixels: 256, probabilities: probs(p) });
    }
    expect(g.segments().map((x) => [x.top3[0].label, x.confidence])).toEqual([['steel', 1]]);
  });

  it('suggests an empty cargo bay only where a column has two cargo tiles: one hollow tile amid vehicle structure is the vehicle', () => {
    const labels: ModelLabel[] = [...GOODS.slice(0, 3), { id: 'empty', name: 'Empty cargo bay', hsCodes: [] }, ...GOODS.slice(3)];
    const p = (q: Partial<Record<string, number>>): Float32Array => Float32Array.from(labels.map((l) => q[l.id] ?? 0));
    const g = new GoodsSuggestions(labels, 128, 0.5);
    const column = (line: number, tiles: Array<Partial<Record<string, number>>>): void =>
      tiles.forEach((q, k) => {
        g.add({ line, lines: 256, pixel: k * 192, pixels: 256, probabilities: p(q) });
      });
    // A tractor cab: the cabin reads as an empty bay, everything around it as vehicle.
    column(0, [{ vehicle: 1 }, { empty: 0.75, vehicle: 0.13, timber: 0.12 }, { vehicle: 0.9, air: 0.1 }]);
    // An empty trailer: the bay fills two tiles of the column.
    column(256, [{ air: 1 }, { empty: 0.9, vehicle: 0.1 }, { empty: 0.8, vehicle: 0.2 }]);
    // A low load: one goods tile is enough for goods.
    column(512, [{ air: 1 }, { air: 0.9, vehicle: 0.1 }, { steel: 0.85, vehicle: 0.15 }]);
    expect(g.segments().map((x) => [x.top3[0].label, x.startLine])).toEqual([
      ['empty', 320],
      ['steel', 576],
    ]);
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
  /** Heatmap logits with the given cells at probability v (as logit(v)), every other cell cold (logit -20). */
  function heat(cells: Array<[number, number, number, number]>, grid = 16): Float32Array {
    const logits = new Float32Array(THREATS.length * grid * grid).fill(-20);
    for (const [k, y, x, v] of cells) logits[k * grid * grid + y * grid + x] = Math.log(v / (1 - v));
    return logits;
  }

  const tile = (line: number, pixel: number, cells: Array<[number, number, number, number]>, lines = 256): ThreatTile => ({
    line,
    lines,
    pixel,
    pixels: 256,
    gridH: 16,
    gridW: 16,
    logits: heat(cells),
  });

  it('turns hot cells into boxes in scan coordinates and merges overlapping tiles into one alert', () => {
    const a = new ThreatAlerts(THREATS, { firearm: 0.6, narcotics: 0.5 }, 1024, 16);
    // tile at line 512, pixel 192, 256 x 256 raw: each cell is 16 x 16 raw
    const first = a.add(
      tile(512, 192, [
        [0, 4, 14, 0.9],
        [0, 4, 15, 0.7],
        [0, 9, 2, 0.55],
      ]),
    );
    expect(first.map((x) => [x.category, x.box])).toEqual([['firearm', { lineStart: 736, lineEnd: 768, pixelStart: 256, pixelEnd: 272 }]]);
    // the next column overlaps: the same object seen again extends the alert instead of raising a new one
    const second = a.add(
      tile(640, 192, [
        [0, 4, 7, 0.95],
        [0, 4, 8, 0.8],
      ]),
    );
    expect(second).toHaveLength(1);
    expect(a.all()).toEqual([
      expect.objectContaining({
        id: 't0',
        category: 'firearm',
        probability: 0.95,
        cells: 3,
        box: { lineStart: 736, lineEnd: 784, pixelStart: 256, pixelEnd: 272 },
      }),
    ]);
    // a tile that adds nothing new changes nothing
    expect(a.add(tile(640, 192, [[0, 4, 7, 0.5]]))).toEqual([]);
  });

  it('names a group by the label exceeding its threshold most, keeps separate objects apart, ignores cold cells', () => {
    const a = new ThreatAlerts(THREATS, { firearm: 0.6, narcotics: 0.5 }, 1024, 16);
    // cell (1,1): firearm 0.7 / 0.6 = 1.17 < narcotics 0.6 / 0.5 = 1.2 -> one narcotics alert; (5,5) is cold
    a.add(
      tile(0, 0, [
        [0, 1, 1, 0.7],
        [0, 10, 10, 0.7],
        [1, 1, 1, 0.6],
        [1, 5, 5, 0.4],
      ]),
    );
    expect(a.all().map((x) => `${x.category}@${x.box.lineStart},${x.box.pixelStart}`)).toEqual(['narcotics@16,16', 'firearm@160,160']);
  });

  it('joins alerts a later cell bridges (8-connected), keeping the older id, and never withdraws one', () => {
    const a = new ThreatAlerts(THREATS, { firearm: 0.5 }, 1024, 16);
    a.add(
      tile(0, 0, [
        [0, 3, 3, 0.9],
        [0, 5, 5, 0.8],
      ]),
    );
    expect(a.all().map((x) => x.id)).toEqual(['t0', 't1']);
    // (4,4) touches both diagonally
    const changed = a.add(tile(0, 0, [[0, 4, 4, 0.6]]));
    expect(changed.map((x) => x.id)).toEqual(['t0']);
    // the update names the alert it absorbed, so a screen can drop it; reports never carry `merged`
    expect(changed[0].merged).toEqual(['t1']);
    expect(a.all()).toEqual([
      expect.objectContaining({ id: 't0', cells: 3, probability: 0.9, box: { lineStart: 48, lineEnd: 96, pixelStart: 48, pixelEnd: 96 } }),
    ]);
    expect(a.all()[0]).not.toHaveProperty('merged');
    // a later update of the joined alert names nothing absorbed
    expect(a.add(tile(0, 0, [[0, 3, 3, 0.95]]))[0]).not.toHaveProperty('merged');
  });

  it('names every alert absorbed when one cell bridges three, including one absorbed earlier in the same tile', () => {
    const a = new ThreatAlerts(THREATS, { firearm: 0.5 }, 1024, 16);
    a.add(
      tile(0, 0, [
        [0, 1, 1, 0.9],
        [0, 1, 3, 0.9],
        [0, 1, 5, 0.9],
      ]),
    );
    expect(a.all().map((x) => x.id)).toEqual(['t0', 't1', 't2']);
    const changed = a.add(
      tile(0, 0, [
        [0, 1, 2, 0.9],
        [0, 1, 4, 0.9],
      ]),
    );
    expect(changed.map((x) => [x.id, [...(x.merged ?? [])].sort()])).toEqual([['t0', ['t1', 't2']]]);
    expect(a.count()).toBe(1);
  });

  it('decides on logits exactly as on float32 probabilities: logitThreshold is the smallest logit reaching a threshold', () => {
    const f32 = new Float32Array(1);
    const below = (x: number): number => {
      // The float32 just below x (x finite, not 0).
      f32[0] = x;
      const bits = new Uint32Array(f32.buffer);
      bits[0] += x > 0 ? -1 : 1;
      return f32[0];
    };
    let seed = 3;
    const random = (): number => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed / 2 ** 32;
    };
    for (const t of [0.3, 0.5, 0.62, 0.9, 0.99, 0.999999, 1]) {
      const l = logitThreshold(t);
      expect(probabilityOf(l)).toBeGreaterThanOrEqual(t);
      expect(probabilityOf(below(l))).toBeLessThan(t);
      for (let i = 0; i < 2000; i++) {
        f32[0] = (random() - 0.5) * 60;
        const logit = f32[0];
        expect(logit >= l).toBe(probabilityOf(logit) >= t);
      }
    }
    expect(logitThreshold(0)).toBe(-Infinity);
    // Unreachable thresholds: no logit, +Infinity included (probability 1), reaches them.
    for (const t of [1.5, Number.NaN, Infinity]) {
      expect(Number.POSITIVE_INFINITY >= logitThreshold(t)).toBe(false);
      expect(probabilityOf(Number.POSITIVE_INFINITY) >= t).toBe(false);
    }
  });

  it('raises nothing for a +Infinity logit of a label without a reachable threshold', () => {
    for (const thresholds of [{ firearm: 0.5 }, { firearm: 0.5, narcotics: 1.5 }, { firearm: 0.5, narcotics: Number.NaN }] as Array<Record<string, number>>) {
      const a = new ThreatAlerts(THREATS, thresholds, 1024, 16);
      const t = tile(0, 0, []);
      t.logits[1 * 16 * 16 + 3 * 16 + 3] = Number.POSITIVE_INFINITY; // narcotics
      expect(a.add(t)).toEqual([]);
    }
  });

  it('treats a larger logit whose float32 probability is the same as no change', () => {
    const a = new ThreatAlerts(THREATS, { firearm: 0.5 }, 1024, 16);
    const at = (logit: number): ThreatTile => {
      const t = tile(0, 0, []);
      t.logits[3 * 16 + 3] = logit;
      return t;
    };
    // sigmoid(20) and sigmoid(25) both round to 1 in float32
    expect(a.add(at(20))).toEqual([expect.objectContaining({ probability: 1 })]);
    expect(a.add(at(25))).toEqual([]);
    // a probability that does grow is an update
    const b = new ThreatAlerts(THREATS, { firearm: 0.5 }, 1024, 16);
    b.add(at(1));
    expect(b.add(at(2))).toEqual([expect.objectContaining({ probability: Math.round(probabilityOf(2) * 1e4) / 1e4 })]);
  });

  it('ignores the zero padding past the end of the scan and the detector', () => {
    const a = new ThreatAlerts(THREATS, { firearm: 0.5 }, 200, 16);
    // the last tile covers only 40 lines (cells 0..2) and the detector ends at pixel 200 (rows 0..12)
    a.add(
      tile(
        128,
        0,
        [
          [0, 1, 3, 0.9],
          [0, 14, 0, 0.9],
        ],
        40,
      ),
    );
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

  it('flags goods in a vehicle declared empty (a declaration without codes)', () => {
    expect(checkDeclaration([], [seg(GOODS[1], 0, 500)])).toMatchObject({ status: 'mismatch', undeclared: [{ label: 'tobacco' }] });
  });

  it('never calls an empty cargo bay undeclared goods, but flags declared goods in a vehicle that looks empty', () => {
    const empty: ModelLabel = { id: 'empty', name: 'Empty cargo bay', hsCodes: [] };
    expect(checkDeclaration(['4407'], [seg(GOODS[0], 0, 500), seg(empty, 500, 900)])).toMatchObject({
      status: 'match',
      undeclared: [],
      emptyButDeclared: false,
    });
    expect(checkDeclaration(['4407'], [seg(empty, 0, 900)])).toMatchObject({ status: 'mismatch', undeclared: [], notSeen: ['4407'], emptyButDeclared: true });
    expect(checkDeclaration([], [seg(empty, 0, 900)])).toMatchObject({ status: 'match', emptyButDeclared: false });
    // goods the model was unsure about (withheld segments) keep a vehicle from reading as empty
    expect(checkDeclaration(['4407'], [seg(empty, 0, 300)], 1200)).toMatchObject({ status: 'unknown', emptyButDeclared: false });
  });

  it('does not call declared goods missing while the scan grows: they may be in the part of the bay not yet scanned', () => {
    const empty: ModelLabel = { id: 'empty', name: 'Empty cargo bay', hsCodes: [] };
    expect(checkDeclaration(['4407'], [seg(empty, 0, 900)], 0, false)).toMatchObject({ status: 'unknown', emptyButDeclared: false });
    expect(checkDeclaration(['4407'], [seg(empty, 0, 900)], 0, true)).toMatchObject({ status: 'mismatch', emptyButDeclared: true });
    // undeclared goods seen are a finding at once, complete or not
    expect(checkDeclaration(['4407'], [seg(GOODS[1], 0, 900)], 0, false).status).toBe('mismatch');
  });

  it('is unknown without a declaration or before anything is suggested', () => {
    expect(checkDeclaration(null, [seg(GOODS[0], 0, 10)]).status).toBe('unknown');
    expect(checkDeclaration(['4407'], []).status).toBe('unknown');
  });
});

describe('scan results report', () => {
  const goods = testManifest('goods', GOODS, { suggest: 0.6 });
  const threats = testManifest('threats', THREATS, { firearm: 0.5, narcotics: 0.5 });
  const tile = { line: 0, lines: 256, pixel: 0, pixels: 256 };
  const make = (declared: string[] | null, references?: ReferenceSnapshot): ScanResults =>
    new ScanResults({
      scanId: 's1',
      portalId: 'p1',
      pixels: 256,
      declaredHsCodes: declared,
      startedAt: new Date(),
      goodsModel: goods,
      threatsModel: threats,
      tile: { size: 64, downsample: 4, strideLines: 128 },
      machine: { version: '0.1.0', machineId: 'lane-1' },
      ...(references ? { references } : {}),
    });
  const timberLogits = Float32Array.from([8, 0, 0, 0, 0]);
  const coldHeat = new Float32Array(2 * 256).fill(-10);

  function score(r: ScanResults, heat = coldHeat, embedding?: Float32Array): void {
    r.tileProduced();
    r.submitted('goods-test');
    r.submitted('threats-test');
    r.addGoods(tile, timberLogits, embedding);
    r.addThreats(tile, heat);
    r.refreshGoods(); // what ResultsService does once per batch of results
  }

  it('is UNKNOWN while scoring, CLEAR once the completed scan is fully scored with nothing raised', () => {
    const r = make(['4407']);
    score(r);
    expect(r.report()).toMatchObject({ reportType: 'MACHINE', status: 'in-progress', alarmDecision: 'UNKNOWN' });
    r.scanEnded('completed', 300);
    const rep = r.report();
    expect(rep).toMatchObject({
      status: 'final',
      alarmDecision: 'CLEAR',
      decisionReason: 'every tile scored, the cargo classified and declared, the image like the training data; nothing raised',
      tilesProduced: 1,
      objects: [],
      // softmax of [8, 0, 0, 0, 0] is 0.9987, shown as at most 0.99: never "100%"
      // the coldest threat cells: sigmoid(-10) over a threshold of 0.5. Not GREEN: this goods model carries no
      // out-of-distribution statistics, so nothing says the image is like its training data.
      triage: { level: 'AMBER', greenScore: 0.99, greenMinConfidence: 0.98, threatPeak: 0.0001, greenMaxThreatPeak: 0.5 },
      outOfDistribution: null,
      hints: [],
    });
    expect(rep.goods.declaration.status).toBe('match');
    expect(rep.algorithms.map((a) => [a.name, a.version, a.tiles.ok, a.tiles.pending])).toEqual([
      ['goods-test', '1.2.3', 1, 0],
      ['threats-test', '1.2.3', 1, 0],
    ]);
    expect(rep.machine).toEqual({ product: 'scanline', version: '0.1.0', machineId: 'lane-1' });
  });

  it('stays UNKNOWN when a tile was not scored, and is not final while a tile is pending', () => {
    const r = make(['4407']);
    score(r);
    r.tileProduced();
    r.submitted('goods-test');
    r.submitted('threats-test');
    r.addGoods(tile, timberLogits);
    r.scanEnded('completed', 300);
    expect(r.isFinal()).toBe(false);
    r.failed('threats-test', 'expired');
    expect(r.isFinal()).toBe(true);
    expect(r.report()).toMatchObject({ alarmDecision: 'UNKNOWN', decisionReason: '1 of 2 tiles were not scored by threats-test' });
  });

  it('is ALARM as soon as a threat cell or an undeclared category appears, with one assessed object each', () => {
    const r = make(['2402']);
    const heat = Float32Array.from(coldHeat);
    heat[256 + 3 * 16 + 5] = 4; // narcotics, cell (3, 5)
    score(r, heat);
    const rep = r.report();
    expect(rep.status).toBe('in-progress');
    expect(rep.alarmDecision).toBe('ALARM');
    expect(rep.objects.map((o) => [o.assessment, o.category, o.algorithm])).toEqual([
      ['THREAT', 'narcotics', 'threats-test'],
      ['UNDECLARED_GOODS', 'timber', 'goods-test'],
    ]);
    expect(rep.objects[0].box).toEqual({ lineStart: 80, lineEnd: 96, pixelStart: 48, pixelEnd: 64 });
  });

  it('lets an enrolled reference take a matching tile, with its similarity as confidence and its HS codes', () => {
    const proto = normalizeL2(Float32Array.from([1, 1, 0, 0]));
    const ref: ReferenceCategory = {
      id: 'oak-logs',
      name: 'Oak logs',
      hsCodes: ['4403'],
      model: 'goods-test',
      minSimilarity: 0.9,
      prototype: proto,
      samples: 3,
      sources: [],
      sampleSimilarity: { min: 0.95, mean: 0.97 },
      createdAt: new Date().toISOString(),
      proposedBy: 'sup-1',
      approvedBy: 'sup-2',
    };
    const snap = new ReferenceLibrary('goods-test', [ref]).snapshot();
    expect(snap.match(normalizeL2(Float32Array.from([1, 0.9, 0.1, 0])))?.index).toBe(0);
    expect(snap.match(normalizeL2(Float32Array.from([1, 0, 0, 0])))).toBeNull(); // 0.71 < 0.9
    const r = make(['4403'], snap);
    score(r, coldHeat, Float32Array.from([2, 2, 0, 0]));
    r.scanEnded('completed', 300);
    const rep = r.report();
    expect(rep.goods.references).toEqual(['oak-logs']);
    expect(rep.goods.segments[0].top3[0]).toMatchObject({ label: 'oak-logs', hsCodes: ['4403'] });
    expect(rep.goods.segments[0].confidence).toBe(0.99);
    expect(rep.goods.declaration.status).toBe('match');
    expect(r.embeddings()?.data.length).toBe(4);
    // a library for another model ignores the reference
    expect(new ReferenceLibrary('other-model', [ref]).list()).toEqual([]);
  });

  it('builds a prototype from sample embeddings and reports how tight they are', () => {
    const { prototype, min, mean } = prototypeOf([normalizeL2(Float32Array.from([1, 0])), normalizeL2(Float32Array.from([0, 1]))], 2);
    expect([...prototype].map((x) => Math.round(x * 1000) / 1000)).toEqual([0.707, 0.707]);
    expect([min, mean]).toEqual([0.7071, 0.7071]);
  });
});

describe('an honest opinion (issue 15)', () => {
  const F = IMAGE_FEATURE_COUNT;
  const identity = (d: number): number[][] => Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => (i === j ? 1 : 0)));
  /** Statistics centred on zero with unit covariance: a tile's score is |x|^2 / threshold. */
  const stats = (imageThreshold: number): OutOfDistributionStats => ({
    imageFeatures: [...IMAGE_FEATURES],
    imageMeans: GOODS.map(() => new Array(F).fill(0)),
    imagePrecisions: GOODS.map(() => identity(F)),
    imageThreshold,
    embeddingMeans: GOODS.map(() => [0, 0, 0, 0]),
    embeddingPrecision: identity(4),
    embeddingThreshold: 100,
    scanShare: 0.5,
    minTiles: 2,
  });
  const tile = (k: number) => ({ line: k * 128, lines: 256, pixel: 0, pixels: 256 });
  const hotHeat = (): Float32Array => {
    const h = new Float32Array(2 * 256).fill(-10);
    h[5] = 6; // one firearm cell
    return h;
  };
  function make(o: { declared?: string[] | null; temperature?: number; alert?: { slope: number; intercept: number }; ood?: OodModel }): ScanResults {
    return new ScanResults({
      scanId: 's1',
      portalId: 'p1',
      pixels: 256,
      declaredHsCodes: o.declared === undefined ? ['4407'] : o.declared,
      startedAt: new Date(),
      goodsModel: testManifest('goods', GOODS, { suggest: 0.6 }, o.temperature ? { calibration: { temperature: o.temperature, maxProbability: 0.99 } } : {}),
      threatsModel: testManifest(
        'threats',
        THREATS,
        { firearm: 0.5, narcotics: 0.5 },
        o.alert ? { calibration: { alert: o.alert, maxProbability: 0.99 } } : {},
      ),
      tile: { size: 64, downsample: 4, strideLines: 128 },
      machine: { version: '0.1.0', machineId: 'lane-1' },
      ...(o.ood ? { ood: o.ood } : {}),
    });
  }
  function score(r: ScanResults, tiles: number, o: { heat?: Float32Array; logits?: Float32Array; features?: Float64Array } = {}): void {
    for (let k = 0; k < tiles; k++) {
      r.tileProduced();
      r.submitted('goods-test');
      r.submitted('threats-test');
      r.addGoods(tile(k), o.logits ?? Float32Array.from([8, 0, 0, 0, 0]), Float32Array.from([1, 0, 0, 0]), o.features ?? new Float64Array(F));
      r.addThreats(tile(k), k === 0 && o.heat ? o.heat : new Float32Array(2 * 256).fill(-10));
      r.refreshGoods();
    }
  }

  it('is not CLEAR when declared goods were not seen (held-out seed 5010: suits declared, an empty bay seen at the rear)', () => {
    const r = make({ declared: ['4407', '6203'] });
    score(r, 2);
    r.scanEnded('completed', 400);
    const rep = r.report();
    expect(rep.alarmDecision).toBe('UNKNOWN');
    expect(rep.decisionReasons).toEqual(['declared goods not seen: 6203', 'needs review']);
    expect(rep.decisionReason).toBe('declared goods not seen: 6203; needs review');
    expect(rep.triage?.level).toBe('AMBER');
  });

  it('is not CLEAR without a declaration to compare with', () => {
    const r = make({ declared: null });
    score(r, 2);
    r.scanEnded('completed', 400);
    expect(r.report()).toMatchObject({ alarmDecision: 'UNKNOWN', decisionReasons: ['no declaration to compare the cargo with', 'needs review'] });
  });

  it('is not CLEAR when the cargo was not classified with confidence, and says over how much of it', () => {
    const r = make({});
    // Timber at 0.5 against tobacco: below the suggest threshold over both columns.
    score(r, 2, { logits: Float32Array.from([1, 1, -5, -5, -5]) });
    r.scanEnded('completed', 400);
    const rep = r.report();
    expect(rep.alarmDecision).toBe('UNKNOWN');
    expect(rep.decisionReasons?.[0]).toMatch(/^cargo not classified with confidence over 256 lines \(100% of the cargo\)$/);
  });

  it('shows calibrated probabilities: goods through the temperature, alerts through Platt scaling, never above maxProbability', () => {
    const r = make({ temperature: 4, alert: { slope: 0.5, intercept: -1 } });
    score(r, 1, { heat: hotHeat() });
    r.scanEnded('completed', 300);
    const rep = r.report();
    // softmax([8, 0, 0, 0, 0] / 4) over the cargo labels (timber, tobacco, steel) = e^2 / (e^2 + 2) = 0.787
    expect(rep.goods.segments[0].confidence).toBeCloseTo(0.787, 3);
    // sigmoid(0.5 * 6 - 1) = 0.8808 for a cell at logit 6 (probability 0.9975)
    expect(rep.threats[0].probability).toBeCloseTo(0.8808, 3);
    expect(rep.alarmDecision).toBe('ALARM');
    expect(rep.triage?.level).toBe('RED');
  });

  it('turns a scan unlike the training data into UNKNOWN, with its threat boxes as hints and its reason', () => {
    const r = make({ ood: new OodModel(stats(0.5)) });
    const features = new Float64Array(F).fill(1); // |x|^2 = F over 0.5: every tile is out
    score(r, 3, { heat: hotHeat(), features });
    r.scanEnded('completed', 500);
    const rep = r.report();
    expect(rep.alarmDecision).toBe('UNKNOWN');
    expect(rep.threats).toEqual([]);
    expect(rep.hints).toHaveLength(1);
    expect(rep.outOfDistribution).toMatchObject({ tiles: 3, outOfDistribution: 3, share: 1, scan: true });
    expect(rep.decisionReasons?.[0]).toBe("image unlike the model's training data (100% of tiles)");
    expect(rep.decisionReasons).toContain('1 low-confidence threat hint (not alerts)');
    expect(r.outOfDistributionCounts()).toEqual({ tiles: 3, outOfDistribution: 3 });
  });

  it('withdraws alerts already sent when the scan turns out of distribution, and sends them again if it comes back', () => {
    const r = make({ ood: new OodModel(stats(0.5)) });
    const inside = new Float64Array(F);
    const outside = new Float64Array(F).fill(1);
    const logits = Float32Array.from([8, 0, 0, 0, 0]);
    const embedding = Float32Array.from([1, 0, 0, 0]);
    // Tile 0: like the training data, with a firearm cell: an alert goes to the screens.
    expect(r.addGoods(tile(0), logits, embedding, inside)).toMatchObject({ outOfDistribution: false, alerts: [] });
    const raised = r.addThreats(tile(0), hotHeat()).alerts;
    expect(raised).toHaveLength(1);
    // Tile 1 is out: 1 of 2 tiles (scanShare 0.5, minTiles 2) and the scan is out; the alert becomes a hint.
    const out = r.addGoods(tile(1), logits, embedding, outside);
    expect(out.distribution).toEqual({ outOfDistribution: true, withdrawnAlertIds: [raised[0].id], hints: r.hints() });
    expect(out.alerts).toEqual([]);
    expect([r.alerts(), r.hints().map((a) => a.id)]).toEqual([[], [raised[0].id]]);
    // Another tile out changes nothing on the screens.
    const again = r.addGoods(tile(2), logits, embedding, outside);
    expect(again).toMatchObject({ outOfDistribution: true, alerts: [] });
    expect(again.distribution).toBeUndefined();
    // A new box while out is no alert: the screens get the hints again.
    const heat = new Float32Array(2 * 256).fill(-10);
    heat[16 * 10 + 10] = 6;
    const hinted = r.addThreats(tile(2), heat);
    expect(hinted.alerts).toEqual([]);
    expect(hinted.distribution).toMatchObject({ outOfDistribution: true, withdrawnAlertIds: [] });
    expect(hinted.distribution?.hints).toHaveLength(2);
    // 2 of 4 tiles out: still out. 2 of 5: back in distribution; the hints are alerts again, sent as alerts.
    expect(r.addGoods(tile(3), logits, embedding, inside).alerts).toEqual([]);
    const back = r.addGoods(tile(4), logits, embedding, inside);
    expect(back.distribution).toEqual({ outOfDistribution: false, withdrawnAlertIds: [], hints: [] });
    expect(back.alerts.map((a) => a.id).sort()).toEqual(
      r
        .alerts()
        .map((a) => a.id)
        .sort(),
    );
    expect(back.alerts.map((a) => a.id)).toContain(raised[0].id);
    expect([r.alerts(), r.hints()]).toEqual([back.alerts, []]);
  });

  it('keeps a CLEAR scan AMBER when a threat cell came close to an alert', () => {
    const r = make({ ood: new OodModel(stats(100)) });
    const near = new Float32Array(2 * 256).fill(-10);
    near[7] = -0.5; // probability 0.38: three quarters of the firearm threshold 0.5, no alert
    score(r, 2, { heat: near, features: new Float64Array(F).fill(1) });
    r.scanEnded('completed', 400);
    const rep = r.report();
    expect(rep.alarmDecision).toBe('CLEAR');
    expect(rep.triage).toMatchObject({ level: 'AMBER', greenScore: 0.99 });
    expect(rep.triage?.threatPeak).toBeCloseTo(0.7551, 3);
  });

  it('counts a tile whose statistics are not numbers as out of distribution (fails closed)', () => {
    const r = make({ ood: new OodModel(stats(100)) });
    score(r, 3, { features: new Float64Array(F).fill(Number.NaN) });
    r.scanEnded('completed', 500);
    expect(r.report().outOfDistribution).toMatchObject({ tiles: 3, outOfDistribution: 3, scan: true });
  });

  it('keeps the same scan CLEAR and GREEN when its images are like the training data', () => {
    const r = make({ ood: new OodModel(stats(100)) });
    score(r, 3, { features: new Float64Array(F).fill(1) });
    r.scanEnded('completed', 500);
    const rep = r.report();
    expect(rep).toMatchObject({ alarmDecision: 'CLEAR', hints: [], triage: { level: 'GREEN' } });
    expect(rep.outOfDistribution).toMatchObject({ tiles: 3, outOfDistribution: 0, scan: false });
  });
});
