/**
 * `exportDataset` end to end with the native stitcher, on small trucks (256-pixel detector: one tile row per column)
 * so the whole file runs in a few seconds.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../../src/cli.js';
import { TOOL_COMMANDS } from '../../../tools/cli.js';
import { DATASET_FILES, GOODS_LABELS, THREAT_LABELS, exportDataset, gatewayStitchOptions } from '../../../tools/dataset/index.js';
import { DEFAULT_CONFIG } from '../../../src/config/index.js';
import { ScanlineError } from '../../../src/errors/index.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'scanline-dataset-'));
  dirs.push(d);
  return d;
}

interface Index {
  count: number;
  tile: { size: number; downsample: number; strideLines: number; overlapPixels: number; channels: string[] };
  labels: { goods: Array<{ id: string; hsCode: string | null; cargo: boolean }>; threats: string[]; threatGrid: number };
  generator: { seeds: [number, number]; pixels: number; simulatorFingerprint: string; stitch: Record<string, unknown>; keep: string };
  scans: Array<{
    seed: number;
    totalLines: number;
    firstTile: number;
    tileCount: number;
    cargoSegments: Array<{ startLine: number; endLine: number; category: string }>;
    threats: Array<{ kind: string; lineStart: number; lineEnd: number; pixelStart: number; pixelEnd: number }>;
  }>;
  tiles: Array<{ seed: number; line: number; pixel: number; label: number; share: number; threatCells: number }>;
}

function load(dir: string): { index: Index; tiles: Float32Array; goods: Uint8Array; threats: Uint8Array } {
  const index = JSON.parse(readFileSync(join(dir, DATASET_FILES.index), 'utf8')) as Index;
  const t = readFileSync(join(dir, DATASET_FILES.tiles));
  return {
    index,
    tiles: new Float32Array(t.buffer, t.byteOffset, t.byteLength / 4),
    goods: new Uint8Array(readFileSync(join(dir, DATASET_FILES.goods))),
    threats: new Uint8Array(readFileSync(join(dir, DATASET_FILES.threats))),
  };
}

function digest(dir: string): Record<string, string> {
  return Object.fromEntries(
    Object.values(DATASET_FILES).map((f) => [
      f,
      createHash('sha256')
        .update(readFileSync(join(dir, f)))
        .digest('hex'),
    ]),
  );
}

const TILE_FLOATS = 2 * 64 * 64;
const CELLS = THREAT_LABELS.length * 16 * 16;

describe('exportDataset', () => {
  it('writes N tiles, N labels, N threat grids and an index that agree with each other and the gateway stitcher', async () => {
    const out = tmp();
    const summary = await exportDataset({ seeds: [11, 12], out, pixels: 256, threatProbability: 0.5 });
    const { index, tiles, goods, threats } = load(out);
    const n = index.count;
    expect(n).toBeGreaterThan(20);
    expect(summary.tiles).toBe(n);
    expect(tiles.length).toBe(n * TILE_FLOATS);
    expect(goods.length).toBe(n);
    expect(threats.length).toBe(n * CELLS);
    expect(index.tiles.length).toBe(n);
    expect(statSync(join(out, DATASET_FILES.tiles)).size).toBe(n * TILE_FLOATS * 4);
    // Geometry and labels are the gateway's.
    const stitch = DEFAULT_CONFIG.stitch.tile;
    expect(index.tile).toMatchObject({
      size: stitch.size,
      downsample: stitch.downsample,
      strideLines: stitch.strideLines,
      overlapPixels: stitch.overlapPixels,
    });
    expect(index.tile.channels).toEqual(['attenuation_high', 'attenuation_low']);
    expect(index.generator.stitch).toEqual(JSON.parse(JSON.stringify(gatewayStitchOptions(256))));
    expect(index.labels.goods.map((g) => g.id)).toEqual([...GOODS_LABELS]);
    expect(index.labels.goods.find((g) => g.id === 'timber')?.hsCode).toBe('4407');
    expect(index.labels.threats).toEqual([...THREAT_LABELS]);
    expect(index.generator.simulatorFingerprint).toMatch(/^[0-9a-f]{64}$/);
    // Scans partition the tiles; every tile column of a scan is there (one row at 256 pixels).
    expect(index.scans.map((s) => s.seed)).toEqual([11, 12]);
    let next = 0;
    for (const s of index.scans) {
      expect(s.firstTile).toBe(next);
      next += s.tileCount;
      const columns = Math.floor((s.totalLines - 256) / 128) + 1 + ((s.totalLines - 256) % 128 === 0 ? 0 : 1);
      expect(s.tileCount).toBe(columns);
      for (const t of index.tiles.slice(s.firstTile, s.firstTile + s.tileCount)) expect(t.seed).toBe(s.seed);
    }
    expect(next).toBe(n);
    index.tiles.forEach((t, i) => {
      expect(t.label).toBe(goods[i]);
      expect(t.pixel).toBe(0);
    });
    // Attenuation values: finite, within the stitcher's clamp; cargo tiles attenuate more than air tiles.
    let bad = 0;
    for (const v of tiles) if (!(v >= 0 && v <= 10)) bad++;
    expect(bad).toBe(0);
    const meanOf = (i: number): number => tiles.subarray(i * TILE_FLOATS, i * TILE_FLOATS + 4096).reduce((a, b) => a + b, 0) / 4096;
    const cargo = index.tiles.map((t, i) => [t, i] as const).filter(([t]) => index.labels.goods[t.label].cargo && GOODS_LABELS[t.label] !== 'empty');
    expect(cargo.length).toBeGreaterThan(0);
    expect(Math.min(...cargo.map(([, i]) => meanOf(i)))).toBeGreaterThan(0.1);
  });

  it('labels the tiles of a forced timber load as timber where the goods are', async () => {
    const out = tmp();
    await exportDataset({ seeds: [21, 21], out, pixels: 256, truck: { categories: ['timber'], threats: [] } });
    const { index, goods } = load(out);
    const names = [...goods].map((g) => GOODS_LABELS[g]);
    const goodsTiles = names.filter((l) => l !== 'vehicle' && l !== 'air' && l !== 'empty');
    expect(goodsTiles.length).toBeGreaterThan(10);
    expect(goodsTiles.every((l) => l === 'timber')).toBe(true);
    const seg = index.scans[0].cargoSegments[0];
    expect(seg.category).toBe('timber');
    for (const t of index.tiles) {
      if (GOODS_LABELS[t.label] !== 'timber') continue;
      // A timber tile overlaps the timber segment by at least a quarter of its 256 lines.
      const overlap = Math.min(t.line + 256, seg.endLine) - Math.max(t.line, seg.startLine);
      expect(overlap).toBeGreaterThanOrEqual(64);
    }
  });

  it('puts threat cells of the right kind inside the tiles that cover a forced threat, and only there', async () => {
    const out = tmp();
    await exportDataset({ seeds: [31, 31], out, pixels: 256, truck: { threats: ['narcotics'] } });
    const { index, threats } = load(out);
    const box = index.scans[0].threats[0];
    expect(box.kind).toBe('narcotics');
    const k = THREAT_LABELS.indexOf('narcotics');
    let positives = 0;
    index.tiles.forEach((t, i) => {
      const grid = threats.subarray(i * CELLS, (i + 1) * CELLS);
      for (let c = 0; c < CELLS; c++) {
        if (!grid[c]) continue;
        positives++;
        const kind = Math.floor(c / 256);
        const h = Math.floor((c % 256) / 16);
        const w = c % 16;
        expect(kind).toBe(k);
        // The cell's raw extent overlaps the box.
        const l0 = t.line + w * 16;
        const p0 = t.pixel + h * 16;
        expect(l0 < box.lineEnd && l0 + 16 > box.lineStart).toBe(true);
        expect(p0 < box.pixelEnd && p0 + 16 > box.pixelStart).toBe(true);
      }
      const covers = t.line <= box.lineStart && t.line + 256 >= box.lineEnd;
      if (covers) expect(t.threatCells).toBeGreaterThan(0);
    });
    expect(positives).toBeGreaterThan(0);
    // keep: 'threats' writes exactly the tiles that have threat cells.
    const only = tmp();
    await exportDataset({ seeds: [31, 31], out: only, pixels: 256, truck: { threats: ['narcotics'] }, keep: 'threats' });
    const kept = load(only);
    expect(kept.index.count).toBe(index.tiles.filter((t) => t.threatCells > 0).length);
    expect(kept.index.tiles.every((t) => t.threatCells > 0)).toBe(true);
  });

  it('is deterministic by seed: the same seeds give byte-identical files', async () => {
    const a = tmp();
    const b = tmp();
    await exportDataset({ seeds: [41, 41], out: a, pixels: 256, threatProbability: 1 });
    await exportDataset({ seeds: [41, 41], out: b, pixels: 256, threatProbability: 1 });
    expect(digest(a)).toEqual(digest(b));
  });

  it('refuses bad options with SCANLINE_ERR_CLI_USAGE before writing anything', async () => {
    const out = join(tmp(), 'never');
    for (const bad of [
      { seeds: [5, 1] as [number, number], out },
      { seeds: [-1, 1] as [number, number], out },
      { seeds: [1, 1] as [number, number], out: '' },
      { seeds: [1, 1] as [number, number], out, pixels: 8 },
      { seeds: [1, 1] as [number, number], out, threatProbability: 2 },
      { seeds: [1, 1] as [number, number], out, keep: 'some' as 'all' },
    ]) {
      const err = await exportDataset(bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ScanlineError);
      expect((err as ScanlineError).code).toBe('SCANLINE_ERR_CLI_USAGE');
    }
    expect(() => statSync(out)).toThrow();
  });
});

describe('scanline dataset', () => {
  it('exports through the CLI and reports usage errors with exit code 2', async () => {
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const out = tmp();
      process.exitCode = undefined;
      await main(['dataset', '--seeds', '51..51', '--out', out, '--pixels', '256', '--threat-probability', '0'], { commands: TOOL_COMMANDS });
      expect(process.exitCode).toBeUndefined();
      expect(load(out).index.generator.seeds).toEqual([51, 51]);
      for (const args of [
        ['dataset', '--out', out],
        ['dataset', '--seeds', '9..3', '--out', out],
        ['dataset', '--seeds', '1..2'],
        ['dataset', '--seeds', '1..2', '--out', out, '--threat-probability', '1.5'],
        ['dataset', '--seeds', '1..2', '--out', out, '--keep', 'none'],
        ['dataset', '--seeds', '1..2', '--out', out, '--bogus'],
      ]) {
        process.exitCode = undefined;
        await main(args, { commands: TOOL_COMMANDS });
        expect(process.exitCode).toBe(2);
        expect(String(stderr.mock.calls.at(-1)?.[0])).toContain('SCANLINE_ERR_CLI_USAGE');
      }
    } finally {
      process.exitCode = undefined;
      stdout.mockRestore();
      stderr.mockRestore();
    }
  });
});
