/**
 * `scanline eval`: the scoring rules on hand-made reports (tile grid, goods tiles, threat overlap, first correct
 * suggestion, aggregation), and the command as a user runs it (compiled dist/, a child process) on two held-out
 * trucks at max speed against the random fixture models: the JSON shape and that its counts agree with each other
 * and with the simulator's own ground truth. Accuracy is not asserted: the fixture models are untrained.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DATASET_SCAN_DEFAULTS, GOODS_LABELS, datasetDetectorSeed } from '../../../tools/dataset/index.js';
import {
  FirstSuggestionTracker,
  formatEvalTable,
  NO_SUGGESTION,
  percentile,
  scoreGoodsTiles,
  scoreSuggestionPlacement,
  scoreThreats,
  summarise,
  tileGrid,
  type ScanEval,
} from '../../../tools/eval/index.js';
import type { SuggestionSegment } from '../../../src/protocol/index.js';
import { createDetector, generateTruck, truthLabels } from '../../../tools/simulator/index.js';

const BIN = new URL('../../../bin/scanline.js', import.meta.url).pathname;
const FIXTURE_MODELS = new URL('../../inference/fixtures/models', import.meta.url).pathname;
const TILE = { size: 64, downsample: 4, strideLines: 128, overlapPixels: 64 };

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function segment(startLine: number, endLine: number, label: string): SuggestionSegment {
  return { id: `g${startLine}`, startLine, endLine, top3: [{ label, name: label, hsCodes: [], probability: 0.9 }], confidence: 0.9, final: true };
}

describe('tile grid', () => {
  it('has a column every stride while it fits, then one flush with the end, and the detector rows', () => {
    const rows = [0, 192, 384, 576, 768];
    const grid = tileGrid(700, 1024, TILE);
    const columns = [...new Set(grid.map((t) => `${t.line}+${t.lines}`))];
    expect(columns).toEqual(['0+256', '128+256', '256+256', '384+256', '444+256']);
    expect(grid.filter((t) => t.line === 0).map((t) => t.pixel)).toEqual(rows);
    // A scan whose last stride column ends exactly at the end gets no extra column; a short scan gets one.
    expect(new Set(tileGrid(640, 1024, TILE).map((t) => t.line))).toEqual(new Set([0, 128, 256, 384]));
    expect(tileGrid(100, 1024, TILE).map((t) => [t.line, t.lines])).toEqual(rows.map(() => [0, 100]));
  });
});

describe('scoring', () => {
  it('scores goods tiles by the segment covering the tile centre; other labels and uncovered tiles as defined', () => {
    const timber = GOODS_LABELS.indexOf('timber');
    const steel = GOODS_LABELS.indexOf('steel');
    const air = GOODS_LABELS.indexOf('air');
    const empty = GOODS_LABELS.indexOf('empty');
    // Truth by column: 0 air, 128 timber, 256 timber, 384 steel, 512 empty; centres are line + 128.
    const truthAt: Record<number, number> = { 0: air, 128: timber, 256: timber, 384: steel, 512: empty };
    const labeler = { goods: (t: { line: number }) => ({ label: truthAt[t.line], share: 1 }) };
    const grid = [0, 128, 256, 384, 512].map((line) => ({ line, lines: 256, pixel: 0 }));
    const scores = scoreGoodsTiles(labeler, grid, [segment(200, 300, 'timber'), segment(400, 600, 'timber')]);
    expect(scores).toEqual({
      timber: { tiles: 2, correct: 1, predicted: { [NO_SUGGESTION]: 1, timber: 1 } },
      steel: { tiles: 1, correct: 0, predicted: { timber: 1 } },
    });
  });

  it('counts suggestion segments over no cargo tile (cab, chassis, air) as off the cargo, an empty bay as cargo', () => {
    const label = (name: string): number => GOODS_LABELS.indexOf(name as (typeof GOODS_LABELS)[number]);
    // Truth by column, centre = line + 128: cab (vehicle) at 128, gap (air) at 256, empty bay at 384, timber at 512.
    const truthAt: Record<number, number> = { 0: label('vehicle'), 128: label('air'), 256: label('empty'), 384: label('timber') };
    const labeler = { goods: (t: { line: number }) => ({ label: truthAt[t.line], share: 1 }) };
    const grid = [0, 128, 256, 384].map((line) => ({ line, lines: 256, pixel: 0 }));
    const placement = scoreSuggestionPlacement(labeler, grid, [
      segment(0, 200, 'empty'), // holds the cab's centre only: off the cargo
      segment(200, 300, 'machinery'), // holds the gap's centre only: off the cargo
      segment(300, 420, 'empty'), // holds the empty bay's centre: on the cargo
      segment(500, 520, 'timber'), // holds the timber centre
    ]);
    expect(placement).toEqual({
      segments: 4,
      offCargo: [
        { label: 'empty', lines: 200 },
        { label: 'machinery', lines: 100 },
      ],
    });
  });

  it('finds a truth threat by any overlapping alert and counts alerts overlapping nothing as false', () => {
    const truth = [
      { kind: 'firearm' as const, variant: 'x', lineStart: 100, lineEnd: 150, pixelStart: 300, pixelEnd: 340 },
      { kind: 'explosive' as const, variant: 'y', lineStart: 900, lineEnd: 960, pixelStart: 100, pixelEnd: 200 },
    ];
    const alerts = [
      { category: 'narcotics', probability: 0.8, box: { lineStart: 149, lineEnd: 170, pixelStart: 339, pixelEnd: 400 } }, // overlaps the firearm by one sample
      { category: 'explosive', probability: 0.7, box: { lineStart: 960, lineEnd: 990, pixelStart: 100, pixelEnd: 200 } }, // touches, does not overlap
    ];
    expect(scoreThreats(truth, alerts)).toEqual({
      truth: [
        { kind: 'firearm', found: true, foundAsKind: false },
        { kind: 'explosive', found: false, foundAsKind: false },
      ],
      alerts: [
        { category: 'narcotics', falseAlarm: false, probability: 0.8 },
        { category: 'explosive', falseAlarm: true, probability: 0.7 },
      ],
    });
    // How each was hidden (the hard simulator's ThreatTruth.concealment) rides along, by index.
    expect(scoreThreats(truth, alerts, ['under-floor', 'dense-load']).truth).toEqual([
      { kind: 'firearm', found: true, foundAsKind: false, concealment: 'under-floor' },
      { kind: 'explosive', found: false, foundAsKind: false, concealment: 'dense-load' },
    ]);
  });

  it('times the first correct overlapping suggestion from the slice holding the segment start', () => {
    const cargo = [
      { startLine: 200, endLine: 600, category: 'timber' as const, hsCode: '4407' },
      { startLine: 600, endLine: 700, category: 'empty' as const, hsCode: null },
      { startLine: 700, endLine: 900, category: 'steel' as const, hsCode: '7308' },
    ];
    const t = new FirstSuggestionTracker(cargo, 1000, 16);
    t.sliceSent(192, 1000); // lines 192..207 hold line 200
    t.sliceSent(192, 5000); // a later send of the same slice does not move the clock
    t.observe({ lines: 400, goods: { segments: [segment(128, 384, 'paper')] } }, 1100); // wrong category
    t.observe({ lines: 460, goods: { segments: [segment(128, 384, 'timber')] } }, 1250);
    t.observe({ lines: 900, goods: { segments: [segment(700, 900, 'steel')] } }, 1400); // steel's slice never sent
    expect(t.results()).toEqual([
      { category: 'timber', startLine: 200, endLine: 600, ms: 250, lines: 260 },
      { category: 'steel', startLine: 700, endLine: 900, ms: null, lines: null },
    ]);
  });

  it('aggregates scans into ratios whose counts add up, null where nothing was there to find', () => {
    expect(percentile([5, 1, 4, 2, 3], 0.5)).toBe(3);
    expect(percentile([5, 1, 4, 2, 3], 0.99)).toBe(5);
    expect(percentile([], 0.5)).toBeNull();
    const base: Omit<ScanEval, 'seed' | 'goods' | 'threats' | 'declaration' | 'firstSuggestions' | 'suggestions'> = {
      scanId: 's',
      portalId: 'p',
      lines: 1000,
      reportFinal: true,
      decision: 'ALARM',
      tilesProduced: 10,
      tilesExpected: 10,
      tileOutcomes: { submitted: 20, ok: 20, rejected: 0, expired: 0, failed: 0, pending: 0 },
      models: [{ name: 'g', version: '1', task: 'goods' }],
      goodsConfidence: [
        [0.95, true],
        [0.95, false],
      ],
      triage: { level: 'RED', greenScore: null, threatPeak: 2 },
      outOfDistribution: false,
      hints: { truth: [], alerts: [] },
      reasons: ['1 threat alert'],
    };
    const scans: ScanEval[] = [
      {
        ...base,
        seed: 1,
        goods: { timber: { tiles: 4, correct: 3, predicted: { timber: 3, none: 1 } } },
        suggestions: {
          segments: 3,
          offCargo: [
            { label: 'empty', lines: 256 },
            { label: 'steel', lines: 128 },
          ],
        },
        threats: {
          truth: [{ kind: 'firearm', found: true, foundAsKind: true, concealment: 'in-load' }],
          alerts: [
            { category: 'firearm', falseAlarm: false, probability: 0.9 },
            { category: 'explosive', falseAlarm: true, probability: 0.9 },
          ],
        },
        declaration: { mismatch: 'substituted', status: 'mismatch' },
        firstSuggestions: [{ category: 'timber', startLine: 0, endLine: 10, ms: 100, lines: 50 }],
      },
      {
        ...base,
        seed: 2,
        goods: { timber: { tiles: 1, correct: 1, predicted: { timber: 1 } }, steel: { tiles: 5, correct: 0, predicted: { timber: 5 } } },
        suggestions: { segments: 2, offCargo: [{ label: 'empty', lines: 128 }] },
        threats: { truth: [{ kind: 'narcotics', found: false, foundAsKind: false, concealment: 'under-floor' }], alerts: [] },
        declaration: { mismatch: null, status: 'mismatch' },
        firstSuggestions: [{ category: 'steel', startLine: 0, endLine: 10, ms: null, lines: null }],
      },
      {
        ...base,
        seed: 3,
        decision: 'CLEAR',
        triage: { level: 'GREEN', greenScore: 0.95, threatPeak: 0.1 },
        goods: {},
        suggestions: { segments: 1, offCargo: [] },
        threats: { truth: [], alerts: [] },
        declaration: { mismatch: null, status: 'match' },
        firstSuggestions: [],
      },
    ];
    // Hints count only on scans out of distribution: one found of two threats, one hint over nothing.
    const oodScan: ScanEval = {
      ...base,
      seed: 4,
      decision: 'UNKNOWN',
      triage: { level: 'AMBER', greenScore: null, threatPeak: null },
      outOfDistribution: true,
      goods: {},
      suggestions: { segments: 0, offCargo: [] },
      threats: { truth: [], alerts: [] },
      hints: {
        truth: [
          { kind: 'explosive', found: true, foundAsKind: false },
          { kind: 'firearm', found: false, foundAsKind: false },
        ],
        alerts: [
          { category: 'narcotics', falseAlarm: false, probability: 0.6 },
          { category: 'firearm', falseAlarm: true, probability: 0.5 },
        ],
      },
      declaration: { mismatch: null, status: 'unknown' },
      firstSuggestions: [],
    };
    const runInfo = {
      seeds: [1, 2] as [number, number],
      heldOut: true,
      url: 'ws://x',
      portals: 1,
      speed: 'max' as const,
      lineRateHz: 500,
      threatProbability: 0.5,
      mismatchProbability: 0.2,
      foreignScanner: null,
      energies: 2 as const,
      realism: 'basic',
      durationMs: 1,
    };
    const withHints = summarise([...scans, oodScan], [], { ...runInfo, seeds: [1, 4], realism: 'hard' });
    expect(withHints.hints).toEqual({ scans: 1, truth: 2, found: 1, hints: 2, falseHints: 1, recall: 0.5 });
    expect(withHints.outOfDistributionRate).toBe(0.25);
    expect(formatEvalTable(withHints)).toMatch(/hints \(out-of-distribution scans\)\s+50\.0%\s+1\/2 threats\s+1 false of 2 hints in 1 scans/);
    const s = summarise(scans, [], runInfo);
    expect(s).toMatchObject({ scans: 3, goodsTop1: 0.4, threatRecall: 0.5, falseAlarmsPerScan: 1 / 3, mismatchRecall: 1 });
    // Opinion: one of two covered goods tiles right at 95% is an ECE of 0.45 (times the two scans that have them:
    // 4 pairs, 2 right); one alert of two right at 90%, 0.4.
    expect(s.goodsEce).toBeCloseTo(0.45, 4);
    expect(s.threatEce).toBeCloseTo(0.4, 4);
    expect(s.triage).toEqual({ green: 1 / 3, amber: 0, red: 2 / 3 });
    expect(s.greenPrecision).toBe(1);
    expect(s.green).toEqual({ trucks: 1, clean: 1, withMissedThreat: 0, misDeclared: 0 });
    expect(s.greenCurve.find((c) => c.threshold === 0.9 && c.maxThreatPeak === 1)).toEqual({
      threshold: 0.9,
      maxThreatPeak: 1,
      share: 1 / 3,
      precision: 1,
      unsafe: 0,
    });
    expect(s.greenCurve.find((c) => c.threshold === 0.97)).toEqual({ threshold: 0.97, maxThreatPeak: 1, share: 0, precision: null, unsafe: 0 });
    expect(s.unknownRate).toBe(0);
    expect(s.outOfDistributionRate).toBe(0);
    expect(s.hints).toEqual({ scans: 0, truth: 0, found: 0, hints: 0, falseHints: 0, recall: null });
    expect(formatEvalTable(s)).not.toMatch(/hints/);
    const [lo, hi] = s.intervals.threatRecall as [number, number];
    expect(lo).toBeLessThanOrEqual(0.5);
    expect(hi).toBeGreaterThanOrEqual(0.5);
    expect(s.goods.perCategory.timber).toEqual({ tiles: 5, correct: 4, predicted: { timber: 4, none: 1 }, top1: 0.8 });
    expect(s.goods.perCategory.paper.top1).toBeNull();
    expect(s.declaration).toMatchObject({ misDeclared: 1, flagged: 1, honest: 2, falseMismatches: 1, falseMismatchRate: 0.5 });
    expect(s.firstSuggestion).toEqual({ segments: 2, suggested: 1, never: 1 });
    expect(s.suggestionsOffCargoPerScan).toBe(1);
    expect(s.suggestions).toEqual({ segments: 6, offCargo: 3, scansWithOffCargo: 2, offCargoByLabel: { empty: 2, steel: 1 } });
    expect(s.firstSuggestionMs).toEqual({ p50: 100, p99: 100 });
    expect(s.targets.goodsEce.met).toBe(false);
    expect(s.threats.perKind.explosive).toEqual({ truth: 0, found: 0, recall: null, alerts: 1, falseAlarms: 1 });
    expect(s.threats.perConcealment).toEqual({ 'in-load': { truth: 1, found: 1, recall: 1 }, 'under-floor': { truth: 1, found: 0, recall: 0 } });
    expect(formatEvalTable(s)).toMatch(/hidden under-floor\s+0\.0%\s+0\/1 found/);
    expect(s.targets.allMet).toBe(false);
  });
});

describe('scanline eval', () => {
  it('streams two held-out trucks through its own gateway and prints consistent figures as JSON on the last line', async () => {
    // The basic simulator, named: eval's default is the harder one the demo models were trained on.
    const r = await run(['eval', '--seeds', '5000..5001', '--speed', 'max', '--portals', '2', '--realism', 'basic', '--models', FIXTURE_MODELS, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^scanline eval: 2 scans of seeds 5000\.\.5001; models goods-tiny 0\.0\.1, threats-tiny 0\.0\.1/);
    const s = JSON.parse(lines[lines.length - 1]);
    for (const key of ['scans', 'goodsTop1', 'threatRecall', 'falseAlarmsPerScan', 'mismatchRecall', 'firstSuggestionMs']) expect(s).toHaveProperty(key);
    expect(Object.keys(s.firstSuggestionMs)).toEqual(['p50', 'p99']);
    expect(s).toMatchObject({
      scans: 2,
      failed: 0,
      reportsNotFinal: 0,
      seeds: [5000, 5001],
      heldOut: true,
      speed: 'max',
      threatProbability: 0.5,
      realism: 'basic',
    });

    // The simulator's own truth for the same trucks, generated here independently of the evaluator.
    let threats = 0;
    let misDeclared = 0;
    let goodsSegments = 0;
    for (const seed of [5000, 5001]) {
      const d = DATASET_SCAN_DEFAULTS;
      const detector = createDetector({ pixels: d.pixels, lineRateHz: d.lineRateHz, speedMps: d.speedMps, seed: datasetDetectorSeed(seed) });
      const scene = generateTruck(seed, detector, { threatProbability: 0.5 });
      const truth = truthLabels(scene, detector);
      threats += truth.threats.length;
      misDeclared += scene.declaration?.mismatch ? 1 : 0;
      goodsSegments += truth.cargoSegments.filter((c) => c.category !== 'empty').length;
    }
    expect(s.threats.truth).toBe(threats);
    expect(s.declaration.misDeclared).toBe(misDeclared);
    expect(s.declaration.misDeclared + s.declaration.honest).toBe(2);
    expect(s.firstSuggestion.segments).toBe(goodsSegments);
    expect(s.firstSuggestion.suggested + s.firstSuggestion.never).toBe(goodsSegments);

    // Counts add up and the headline ratios are made of them.
    const cats = Object.values(s.goods.perCategory) as Array<{ tiles: number; correct: number }>;
    expect(cats.reduce((a, c) => a + c.tiles, 0)).toBe(s.goods.tiles);
    expect(cats.reduce((a, c) => a + c.correct, 0)).toBe(s.goods.correct);
    expect(s.goods.tiles).toBeGreaterThan(0);
    expect(s.goodsTop1).toBeCloseTo(s.goods.correct / s.goods.tiles, 12);
    expect(s.falseAlarmsPerScan).toBeCloseTo(s.threats.falseAlarms / 2, 12);
    expect(s.threatRecall).toBe(threats > 0 ? s.threats.found / threats : null);
    const kinds = Object.values(s.threats.perKind) as Array<{ truth: number; alerts: number; falseAlarms: number }>;
    expect(kinds.reduce((a, k) => a + k.truth, 0)).toBe(s.threats.truth);
    expect(kinds.reduce((a, k) => a + k.alerts, 0)).toBe(s.threats.alerts);
    expect(kinds.reduce((a, k) => a + k.falseAlarms, 0)).toBe(s.threats.falseAlarms);
    // Every tile the stitcher produced was labelled, and went to both models and came back.
    expect(s.tiles.produced).toBeGreaterThan(0);
    expect(s.tiles.expected).toBe(s.tiles.produced);
    expect(s.tiles.submitted).toBe(2 * s.tiles.produced);
    expect(s.tiles.ok + s.tiles.rejected + s.tiles.expired + s.tiles.failed).toBe(s.tiles.submitted);
    expect(s.models.map((m: { name: string }) => m.name).sort()).toEqual(['goods-tiny', 'threats-tiny']);
    expect(r.stderr).toMatch(/eval 2\/2: seed 500[01]/);
  }, 120_000);

  it('exits 2 on usage errors', async () => {
    const none = await run(['eval']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('SCANLINE_ERR_CLI_USAGE: Expected a seed range A..B');
    const speed = await run(['eval', '--seeds', '5000..5001', '--speed', 'warp']);
    expect(speed.code).toBe(2);
    const both = await run(['eval', '--seeds', '5000', '--url', 'ws://127.0.0.1:9/v1/portal', '--models', FIXTURE_MODELS]);
    expect(both.code).toBe(2);
    const p = await run(['eval', '--seeds', '5000', '--mismatch-probability', '1.5']);
    expect(p.code).toBe(2);
    expect(p.stderr).toContain('Expected a probability 0..1 for --mismatch-probability but received "1.5"');
  });
});
