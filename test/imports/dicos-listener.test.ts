/**
 * The DICOS network service against dcmtk, an independent DICOM implementation: echoscu and storescu talk to the
 * gateway's listener; DX files sent by storescu become scans with results (the demo models), a dual-energy pair sent
 * in one association or in two becomes one scan, a lone energy is imported alone after pairWaitMs, bad files are
 * refused with a failure status and kept in quarantine, and associations from unknown AE titles, wrong addresses or
 * revoked portals are rejected before any data.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DicosInspection, newUid, writeDx } from '../../src/dicos/index.js';
import type { ScanResultsReport } from '../../src/protocol/index.js';
import { getJson, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { skipWithout } from '../helpers/tools.js';

const STORESCU = '/usr/bin/storescu';
const ECHOSCU = '/usr/bin/echoscu';
const SAMPLES = resolve(__dirname, '../../../shared/dicos-samples');

function inspection(study: string): DicosInspection {
  return {
    studyInstanceUid: study,
    frameOfReferenceUid: `${study}.1`,
    scanId: 'scanner-export',
    ooiId: 'AB 123 CD',
    ooiIdType: 'TEXT',
    stationName: 'XRAY-LANE-3',
    institution: 'Test checkpoint',
    manufacturer: 'Scanner vendor',
    modelName: 'Cargo portal',
    softwareVersion: '7',
    deviceSerialNumber: 'sn-1',
    startedAt: new Date(),
  };
}

/** A flat-fielded dual-energy-like image: bright air, a darker block (cargo) in the middle. */
function image(rows: number, columns: number, energy: 'high' | 'low' | 'single', study: string, bits = 16): Uint8Array {
  const pixels = new Uint16Array(rows * columns);
  const full = 2 ** bits - 1;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < columns; c++) {
      const cargo = c > columns / 4 && c < (3 * columns) / 4 && r > rows / 5;
      pixels[r * columns + c] = Math.round(full * (cargo ? (energy === 'low' ? 0.18 : 0.3) : 0.97)) + ((r * 7 + c * 3) % 11);
    }
  }
  return writeDx({
    inspection: inspection(study),
    sopInstanceUid: newUid(),
    seriesInstanceUid: newUid(),
    seriesNumber: energy === 'low' ? 2 : 1,
    intent: 'FOR PROCESSING',
    energy,
    rows,
    columns,
    pixels,
    pixelSpacingMm: [5, 5],
    acquiredAt: new Date(),
  });
}

describe.skipIf(skipWithout(STORESCU))('DICOS listener (C-ECHO, C-STORE SCP) with dcmtk', () => {
  let gw: TestGateway;
  const dir = mkdtempSync(join(tmpdir(), 'scanline-dicos-scu-'));
  const file = (name: string, bytes: Uint8Array): string => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };
  /** Runs a dcmtk tool without blocking the event loop (the gateway answers it from this process). */
  const run = (program: string, args: string[]): Promise<{ status: number; output: string }> =>
    new Promise((done) => {
      execFile(program, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code as number) : 1) : 0;
        done({ status: code, output: `${stdout}${stderr}` });
      });
    });
  const storescu = (aet: string, ...paths: string[]) =>
    run(STORESCU, ['-v', '-R', '-aet', aet, '-aec', 'SCANLINE', '-xs', '127.0.0.1', String(gw.dicosPort), ...paths]);
  const scansOf = (portalId: string) => gw.store.listScans({ portalId, limit: 100 });

  beforeAll(async () => {
    gw = await startTestGateway({
      inference: { enabled: true },
      dicos: {
        listener: {
          enabled: true,
          port: 0,
          pairWaitMs: 1_500,
          sources: [
            { aeTitle: 'SCANNER1', portalId: 'scanner-1', addresses: [] },
            { aeTitle: 'SCANNER2', portalId: 'scanner-2', addresses: ['10.9.9.9'] },
            { aeTitle: 'REVOKED', portalId: 'scanner-r', addresses: [] },
          ],
        },
      },
    });
    for (const p of ['scanner-1', 'scanner-2', 'scanner-r']) gw.portalCredential(p);
    gw.identity.revokePortal('scanner-r', { name: 'test', address: null });
    expect(gw.dicosPort).toBeGreaterThan(0);
  }, 120_000);

  afterAll(async () => {
    await gw?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers C-ECHO from a known scanner and rejects unknown AE titles, wrong addresses and revoked portals', async () => {
    const echo = (aet: string, aec = 'SCANLINE') => run(ECHOSCU, ['-aet', aet, '-aec', aec, '127.0.0.1', String(gw.dicosPort)]);
    expect((await echo('SCANNER1')).status).toBe(0);
    expect((await echo('SCANNER1', 'OTHER')).output).toMatch(/Called AE Title Not Recognized/i);
    expect((await echo('STRANGER')).output).toMatch(/Calling AE Title Not Recognized/i);
    expect((await echo('SCANNER2')).status).not.toBe(0); // not from 10.9.9.9
    expect((await echo('REVOKED')).status).not.toBe(0);
    const metrics = await (await fetch(`${gw.httpUrl}/metrics`, { headers: gw.authHeaders('metrics') })).text();
    expect(metrics).toMatch(/scanline_dicos_echoes_total 1/);
    expect(metrics).toMatch(/scanline_dicos_associations_total\{outcome="rejected-portal-revoked"\} 1/);
    expect(metrics).toMatch(/scanline_dicos_associations_total\{outcome="rejected-address"\} 1/);
  });

  it('a dual-energy pair sent by storescu in one association becomes one scan with results', async () => {
    const study = newUid();
    const sent = await storescu('SCANNER1', file('pair-high.dcm', image(96, 400, 'high', study)), file('pair-low.dcm', image(96, 400, 'low', study)));
    expect(sent.status, sent.output).toBe(0);
    const scans = scansOf('scanner-1');
    expect(scans).toHaveLength(1);
    const scan = scans[0];
    expect(scan).toMatchObject({ state: 'completed', lines: 400, detector: { pixels: 96, energies: 2 }, vehicle: { plate: 'AB 123 CD' } });
    expect(scan.origin).toMatchObject({ source: 'dicos', receivedBy: 'dicos:SCANNER1', station: 'XRAY-LANE-3', studyInstanceUid: study });
    const until = Date.now() + 60_000;
    let report: ScanResultsReport | null = null;
    while (Date.now() < until) {
      const { status, body } = await getJson(gw, `/v1/scans/${encodeURIComponent(scan.scanId)}/results`);
      if (status === 200 && body.status === 'final') {
        report = body;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(report?.tilesProduced).toBeGreaterThan(0);
    expect(report?.algorithms.every((a) => a.tiles.ok + a.tiles.rejected === a.tiles.submitted)).toBe(true);
  }, 90_000);

  it('pairs energies sent in two associations, and imports a lone energy alone after pairWaitMs', async () => {
    const before = scansOf('scanner-1').length;
    const study = newUid();
    expect((await storescu('SCANNER1', file('split-low.dcm', image(64, 200, 'low', study)))).status).toBe(0);
    expect(readdirSync(join(gw.dataDir, 'dicos-spool', 'scanner-1')).filter((n) => n.endsWith('.dcm'))).toHaveLength(1);
    expect(scansOf('scanner-1').length).toBe(before);
    expect((await storescu('SCANNER1', file('split-high.dcm', image(64, 200, 'high', study)))).status).toBe(0);
    // Answered Success once the pair's scan completed.
    expect(scansOf('scanner-1').length).toBe(before + 1);
    expect(scansOf('scanner-1')[0].state).toBe('completed');
    expect(scansOf('scanner-1')[0].detector.energies).toBe(2);
    expect(readdirSync(join(gw.dataDir, 'dicos-spool', 'scanner-1'))).toEqual([]); // the object and its sender record

    expect((await storescu('SCANNER1', file('lone-high.dcm', image(64, 150, 'high', newUid())))).status).toBe(0);
    const until = Date.now() + 10_000;
    while (!(scansOf('scanner-1').length === before + 2 && scansOf('scanner-1')[0].state === 'completed') && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const lone = scansOf('scanner-1')[0];
    expect(lone).toMatchObject({ lines: 150, detector: { energies: 1 } });
  }, 60_000);

  it.skipIf(!existsSync(SAMPLES))(
    "imports the toolkits' reference DX files sent by storescu, JPEG Lossless included",
    async () => {
      const before = scansOf('scanner-1').length;
      const samples = readdirSync(SAMPLES).filter((f) => f.startsWith('dx-'));
      const sent = await storescu('SCANNER1', ...samples.map((f) => join(SAMPLES, f)));
      expect(sent.status, sent.output).toBe(0);
      expect(scansOf('scanner-1').length).toBe(before + samples.length);
      // Single-energy images: the single-energy pair reads them (models/README.md, "Single-energy portals"). An
      // imported image comes without a declaration, so nothing raised is not enough to clear it: UNKNOWN, and why.
      const single = scansOf('scanner-1')[0];
      expect(single.detector.energies).toBe(1);
      const until = Date.now() + 30_000;
      let report: ScanResultsReport | null = null;
      while (Date.now() < until && report === null) {
        const { status, body } = await getJson(gw, `/v1/scans/${encodeURIComponent(single.scanId)}/results`);
        if (status === 200 && body.status === 'final') report = body;
        else await new Promise((r) => setTimeout(r, 100));
      }
      expect(report?.alarmDecision).toBe('UNKNOWN');
      expect(report?.algorithms.map((a) => a.name).sort()).toEqual(['goods-1e-v1', 'threats-1e-v1']);
      expect(report?.decisionReasons).toEqual(['no declaration to compare the cargo with', 'needs review']);
    },
    60_000,
  );

  it('refuses a bad file with a failure status, keeps it in quarantine, and takes nothing else from it', async () => {
    const before = scansOf('scanner-1').length;
    const eight = file('eight.dcm', image(32, 40, 'single', newUid()));
    execFileSync('/usr/bin/dcmodify', ['-nb', '-q', '-m', '(0028,0100)=8', '-m', '(0028,0101)=8', '-m', '(0028,0102)=7', eight]);
    const sent = await storescu('SCANNER1', eight);
    expect(sent.output).toMatch(/Received Store Response \(Error: CannotUnderstand\)/);
    expect(scansOf('scanner-1').length).toBe(before);
    const kept = readdirSync(join(gw.dataDir, 'quarantine')).filter((n) => !n.startsWith('.'));
    expect(kept.length).toBeGreaterThanOrEqual(1);
    const refused = gw.identity.listAudit({ limit: 50, action: 'import.dicos' }).filter((e) => e.outcome === 'refused' && e.actor === 'dicos:SCANNER1');
    expect(refused.length).toBeGreaterThanOrEqual(1);
  });
});
