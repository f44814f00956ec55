import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ScanlineError } from '../../../src/errors/index.js';
import { createDetector } from '../../../tools/simulator/detector.js';
import { renderAir, renderLines, trueAttenuationLines } from '../../../tools/simulator/render.js';
import { generateTruck } from '../../../tools/simulator/scene.js';
import { simulatePortals, type SimulatedScan } from '../../../tools/simulator/simulate.js';
import { truthLabels } from '../../../tools/simulator/truth.js';
import { writeScanToDisk } from '../../../tools/simulator/write-scan.js';
import { hashSeed } from '../../../tools/simulator/random.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';

let gateway: TestGateway | null = null;
const dirs: string[] = [];

afterEach(async () => {
  await gateway?.dispose();
  gateway = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('simulatePortals', () => {
  it('runs N portals x M trucks and summarises what was sent with the ground truth of every scan', async () => {
    gateway = await startTestGateway();
    const logs: string[] = [];
    const summary = await simulatePortals({
      url: gateway.portalUrl,
      portals: 2,
      credentials: gateway.simulatorCredentials(2),
      trucks: 2,
      seed: 40,
      speed: 'max',
      pixels: 32,
      log: (_level, msg) => logs.push(msg),
    });
    expect(summary.scansCompleted).toBe(4);
    expect(summary.scansFailed).toBe(0);
    expect(summary.errorsByCode).toEqual({});
    expect(summary.aborted).toBe(false);
    expect(summary.scans.map((s) => s.seed).sort()).toEqual([40, 41, 42, 43]);
    expect(new Set(summary.scans.map((s) => s.portalId))).toEqual(new Set(['sim-1', 'sim-2']));
    const totalLines = summary.scans.reduce((s, x) => s + x.truth.totalLines, 0);
    expect(summary.linesSent).toBe(totalLines);
    expect(summary.slicesSent).toBe(summary.scans.reduce((s, x) => s + x.slices, 0));
    expect(summary.bytesSent).toBeGreaterThan(totalLines * 2 * 32 * 2);
    // Truth labels are those of the truck with that seed; the gateway stored exactly the rendered lines.
    for (const scan of summary.scans) {
      const det = createDetector({ pixels: 32, seed: hashSeed(40, 'portal', scan.portalId === 'sim-1' ? 0 : 1) });
      const scene = generateTruck(scan.seed, det);
      expect(scan.truth).toEqual(truthLabels(scene, det));
      expect(scan.lines).toBe(scene.totalLines);
      const expected = new Uint16Array(scene.totalLines * 2 * 32);
      renderLines(scene, det, 0, scene.totalLines, expected);
      const stored = await gateway.store.readRaw(scan.scanId, scene.totalLines, 2 * 32 * 2);
      expect(Buffer.from(stored.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
    }
    expect(JSON.parse(JSON.stringify(summary))).toEqual(summary); // plain JSON for the CLI
    expect(logs).toContain('simulation finished');
  });

  it('with trucks 0 streams until the signal aborts', async () => {
    gateway = await startTestGateway();
    const controller = new AbortController();
    const scans: SimulatedScan[] = [];
    const summary = await simulatePortals({
      url: gateway.portalUrl,
      credentials: gateway.simulatorCredentials(1),
      trucks: 0,
      speed: 'max',
      pixels: 16,
      signal: controller.signal,
      onScan: (s) => {
        scans.push(s);
        if (scans.length === 3) controller.abort();
      },
    });
    expect(summary.aborted).toBe(true);
    expect(summary.scansCompleted).toBeGreaterThanOrEqual(3);
    expect(summary.scansFailed).toBe(0);
  });

  it('records failed scans (gateway errors) and connection failures instead of throwing', async () => {
    gateway = await startTestGateway();
    const summary = await simulatePortals({ url: gateway.portalUrl, trucks: 2, speed: 'max', pixels: 16, credentials: { 'sim-1': 'slp_not-this-portals' } });
    expect(summary.scansCompleted).toBe(0);
    expect(summary.scansFailed).toBe(2);
    expect(summary.errorsByCode).toEqual({ SCANLINE_ERR_AUTH_TOKEN: 2 });
    expect(summary.failures[0]).toMatchObject({ portalId: 'sim-1', code: 'SCANLINE_ERR_SIM_REJECTED' });
    const url = gateway.portalUrl;
    await gateway.dispose();
    gateway = null;
    const down = await simulatePortals({ url, trucks: 3, speed: 'max', pixels: 16 });
    expect(down.scansFailed).toBe(1);
    expect(down.failures[0].code).toBe('SCANLINE_ERR_SIM_CONNECTION');
  });

  it('rejects invalid options with SCANLINE_ERR_CLI_USAGE before connecting', async () => {
    const bad = [
      { url: 'http://localhost' },
      { url: 'ws://x', portals: 0 },
      { url: 'ws://x', trucks: -1 },
      { url: 'ws://x', speed: 'warp' },
      { url: 'ws://x', pixels: 9000 },
      { url: 'ws://x', lineRate: 0 },
      { url: 'ws://x', trucks: 0 }, // forever needs a signal
      { url: 'ws://x', truck: { threatProbability: 3 } },
    ];
    for (const options of bad) {
      const err = await simulatePortals(options as Parameters<typeof simulatePortals>[0]).catch((e: unknown) => e);
      expect(err, JSON.stringify(options)).toBeInstanceOf(ScanlineError);
      expect((err as ScanlineError).code).toBe('SCANLINE_ERR_CLI_USAGE');
    }
  });
});

describe('writeScanToDisk', () => {
  it('writes raw.u16 exactly as the wire carries it, calibration frames, truth.json and the noiseless attenuation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scanline-sim-'));
    dirs.push(dir);
    const det = createDetector({ pixels: 48 });
    const scene = generateTruck(5, det, { threats: ['narcotics'] });
    const written = await writeScanToDisk(scene, det, join(dir, 'scan-5'));
    const n = det.pixels;

    const raw = readFileSync(written.raw);
    expect(raw.byteLength).toBe(scene.totalLines * 2 * n * 2);
    const expected = new Uint16Array(scene.totalLines * 2 * n);
    renderLines(scene, det, 0, scene.totalLines, expected);
    expect(raw.equals(Buffer.from(expected.buffer))).toBe(true);

    const air = new Uint16Array(16 * 2 * n);
    renderAir(det, 16, air, scene.noiseSeed);
    expect(readFileSync(written.air!).equals(Buffer.from(air.buffer))).toBe(true);
    expect(statSync(written.dark!).size).toBe(16 * 2 * n * 2);

    const att = readFileSync(written.attenuation!);
    const expectedAtt = new Float32Array(scene.totalLines * 2 * n);
    trueAttenuationLines(scene, det, 0, scene.totalLines, expectedAtt);
    expect(att.equals(Buffer.from(expectedAtt.buffer))).toBe(true);

    const truth = JSON.parse(readFileSync(written.truth, 'utf8'));
    expect(truth.seed).toBe(5);
    expect(truth.layout).toMatchObject({ lines: scene.totalLines, energies: 2, pixels: n, energyOrder: ['high', 'low'] });
    expect(truth.labels).toEqual(JSON.parse(JSON.stringify(truthLabels(scene, det))));
    expect(truth.labels.threats).toHaveLength(1);
    expect(truth.detector).toMatchObject({ pixels: n, lineRateHz: 500, deadPixels: [...det.deadPixels] });

    const again = await writeScanToDisk(scene, det, join(dir, 'again'), { attenuation: false, calibration: false });
    expect(again.attenuation).toBeNull();
    expect(again.dark).toBeNull();
    expect(readFileSync(again.raw).equals(raw)).toBe(true);
  });
});
