/**
 * The watched folder (import.watchDir) through a real gateway: DICOS pairs and lone energies, 16-bit PNG and TIFF with
 * a JSON sidecar (bit-exact, turned per lineAxis, declaration kept, origin "file"), and bad files (8-bit, a bad
 * sidecar) refused into quarantine; what was taken or refused leaves the folder.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newUid } from '../../src/dicos/index.js';
import { testDx } from '../helpers/dicos.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

function pixels(count: number, seed: number): Uint16Array {
  const out = new Uint16Array(count);
  for (let i = 0; i < count; i++) out[i] = 30_000 + ((i * 31 + seed * 977) % 30_000);
  return out;
}

function dx(energy: 'high' | 'low' | 'single', study: string, rows: number, columns: number, seed: number): Uint8Array {
  const values = pixels(rows * columns, seed);
  return testDx({
    energy,
    rows,
    columns,
    inspection: { studyInstanceUid: study, ooiId: 'WATCH-1', stationName: 'SHARE-SCANNER' },
    fill: (i) => values[i],
    pixelSpacingMm: 4,
  }).bytes;
}

/** A 16-bit grey image of width x height (row-major values). */
function png16(values: Uint16Array, width: number, height: number): Promise<Buffer> {
  return sharp(values, { raw: { width, height, channels: 1 } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
}

describe('watched folder', () => {
  let gw: TestGateway;
  const watch = mkdtempSync(join(tmpdir(), 'scanline-watch-'));
  const scans = () => gw.store.listScans({ portalId: 'import', limit: 100 });
  const raw = async (scanId: string): Promise<Uint16Array> => {
    const r = gw.store.getScan(scanId)!;
    return gw.store.readRaw(scanId, r.lines, r.detector.pixels * r.detector.energies * 2);
  };
  async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  beforeAll(async () => {
    gw = await startTestGateway({ import: { watchDir: watch, watchIntervalMs: 100, watchPairWaitMs: 700 } });
  });

  afterAll(async () => {
    await gw?.dispose();
    rmSync(watch, { recursive: true, force: true });
  });

  it('pairs the two energies of a DICOS inspection and imports a lone energy alone after watchPairWaitMs', async () => {
    const study = newUid();
    writeFileSync(join(watch, 'a-high.dcm'), dx('high', study, 48, 120, 1));
    writeFileSync(join(watch, 'a-low.dcm'), dx('low', study, 48, 120, 2));
    await until('the pair', () => scans().length === 1 && scans()[0].state === 'completed');
    expect(scans()[0]).toMatchObject({ lines: 120, detector: { pixels: 48, energies: 2 }, origin: { source: 'dicos', station: 'SHARE-SCANNER' } });
    writeFileSync(join(watch, 'b-low.dcm'), dx('low', newUid(), 48, 90, 3));
    await until('the lone energy', () => scans().length === 2 && scans()[0].state === 'completed', 10_000);
    expect(scans()[0]).toMatchObject({ lines: 90, detector: { energies: 1 } });
    await until('an empty folder', () => readdirSync(watch).length === 0);
  });

  it('imports 16-bit PNG and TIFF with a sidecar bit-exact, turned per lineAxis, with the declaration', async () => {
    // PNG, one energy, lines are columns: 40 detector elements x 70 lines.
    const a = pixels(40 * 70, 5);
    writeFileSync(join(watch, 'truck-1.png'), await png16(a, 70, 40));
    writeFileSync(
      join(watch, 'truck-1.json'),
      JSON.stringify({ images: ['truck-1.png'], pixelPitchMm: 3, station: 'LANE-7', vehicle: { plate: 'PNG 1' }, declaration: { hsCodes: ['0803'] } }),
    );
    await until('the PNG scan', () => scans().some((s) => s.origin?.source === 'file' && s.state === 'completed'));
    const png = scans().find((s) => s.origin?.source === 'file')!;
    expect(png).toMatchObject({
      lines: 70,
      detector: { pixels: 40, energies: 1, pitchMm: 3 },
      vehicle: { plate: 'PNG 1' },
      declaration: { hsCodes: ['0803'] },
    });
    expect(png.origin).toMatchObject({ station: 'LANE-7', files: ['truck-1.json', 'truck-1.png'] });
    const lines = await raw(png.scanId);
    let wrong = 0;
    for (let l = 0; l < 70; l++) for (let p = 0; p < 40; p++) if (lines[l * 40 + p] !== a[p * 70 + l]) wrong++;
    expect(wrong).toBe(0);

    // TIFF, two energies, lines are rows: 30 lines x 50 detector elements each.
    const high = pixels(30 * 50, 6);
    const low = pixels(30 * 50, 7);
    const tiff = (v: Uint16Array) =>
      sharp(v, { raw: { width: 50, height: 30, channels: 1 } })
        .toColourspace('grey16')
        .tiff({ compression: 'lzw' })
        .toBuffer();
    writeFileSync(join(watch, 'truck-2-h.tif'), await tiff(high));
    writeFileSync(join(watch, 'truck-2-l.tif'), await tiff(low));
    writeFileSync(join(watch, 'truck-2.json'), JSON.stringify({ images: ['truck-2-h.tif', 'truck-2-l.tif'], lineAxis: 'rows' }));
    await until('the TIFF scan', () => scans().some((s) => s.origin?.files?.includes('truck-2.json') === true && s.state === 'completed'));
    const t = scans().find((s) => s.origin?.files?.includes('truck-2.json'))!;
    expect(t).toMatchObject({ lines: 30, detector: { pixels: 50, energies: 2 } });
    const tl = await raw(t.scanId);
    wrong = 0;
    for (let l = 0; l < 30; l++) {
      for (let p = 0; p < 50; p++) {
        if (tl[(l * 2 + 0) * 50 + p] !== high[l * 50 + p] || tl[(l * 2 + 1) * 50 + p] !== low[l * 50 + p]) wrong++;
      }
    }
    expect(wrong).toBe(0);
    await until('an empty folder', () => readdirSync(watch).length === 0);
  });

  it('refuses an 8-bit image and a bad sidecar into quarantine, and lets them go from the folder', async () => {
    const before = scans().length;
    writeFileSync(
      join(watch, 'eight.png'),
      await sharp(Buffer.alloc(20 * 10, 200), { raw: { width: 20, height: 10, channels: 1 } })
        .png()
        .toBuffer(),
    );
    writeFileSync(join(watch, 'eight.json'), JSON.stringify({ images: ['eight.png'] }));
    writeFileSync(join(watch, 'bad.json'), JSON.stringify({ images: ['x.png'], colour: 'blue' }));
    await until('the folder emptied', () => readdirSync(watch).length === 0);
    expect(scans().length).toBe(before);
    const reasons = readdirSync(join(gw.dataDir, 'quarantine'))
      .filter((n) => !n.startsWith('.'))
      .map((n) => JSON.parse(readFileSync(join(gw.dataDir, 'quarantine', n, 'reason.json'), 'utf8')).code)
      .sort();
    expect(reasons).toEqual(['SCANLINE_ERR_DICOS_IMAGE', 'SCANLINE_ERR_IMPORT_SIDECAR']);
  });
});
