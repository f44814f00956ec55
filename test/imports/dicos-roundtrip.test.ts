/**
 * DICOS out and in through the real gateway (uWS, native stitcher, demo models, SQLite):
 * - a simulated truck streamed by a portal is written as DICOS (GET /v1/scans/:id/dicos); pydicom reads every file,
 *   the DX pixel data equal the stored raw lines, the MACHINE TDR has one PTO per assessed object with its box;
 *   dcmtk's dcmdump parses every file;
 * - the DX files posted back (POST /v1/imports, multipart/related) become a scan whose raw lines are bit-exact and
 *   whose results equal those of the streamed scan;
 * - the reference DX files of ../shared/dicos-samples/ become scans bit-exact with their pixel data;
 * - bad files are refused with their code, kept in quarantine with the reason, audited, and nothing else changes.
 */
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DicosDx, readDicos } from '../../src/dicos/index.js';
import type { ScanResultsReport } from '../../src/protocol/index.js';
import { simulatePortals, type SimulatedScan } from '../../tools/simulator/index.js';
import { getJson, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { needTool } from '../helpers/tools.js';

const SAMPLES = resolve(__dirname, '../../../shared/dicos-samples');
const haveSamples = existsSync(SAMPLES);
if (!haveSamples) console.warn(`[imports] ${SAMPLES} is absent: importing the DICOS toolkits' reference files is skipped`);

async function finalReport(gw: TestGateway, scanId: string, timeoutMs = 90_000): Promise<ScanResultsReport> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { status, body } = await getJson(gw, `/v1/scans/${encodeURIComponent(scanId)}/results`);
    if (status === 200 && body.status === 'final') return body as ScanResultsReport;
    if (Date.now() > until) throw new Error(`results of ${scanId} not final after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function rawLines(gw: TestGateway, scanId: string): Promise<Uint16Array> {
  const record = gw.store.getScan(scanId)!;
  return gw.store.readRaw(scanId, record.lines, record.detector.pixels * record.detector.energies * 2);
}

function importRequest(gw: TestGateway, files: Uint8Array[], query = ''): Promise<Response> {
  const token = gw.tokenOf('officer');
  if (files.length === 1) {
    return fetch(`${gw.httpUrl}/v1/imports${query}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/dicom' },
      body: Buffer.from(files[0]),
    });
  }
  const boundary = 'scanline-test-boundary-7f3a';
  const parts: Buffer[] = [];
  for (const f of files) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), Buffer.from(f), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return fetch(`${gw.httpUrl}/v1/imports${query}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` },
    body: Buffer.concat(parts),
  });
}

function pydicom(script: string, ...args: string[]): any {
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 1024 ** 3 }));
}

describe('DICOS export and import through the gateway', () => {
  let gw: TestGateway;
  let streamed: SimulatedScan;
  let report: ScanResultsReport;
  const dir = mkdtempSync(join(tmpdir(), 'scanline-dicos-gw-'));
  let exported: Record<string, Uint8Array>;

  beforeAll(async () => {
    gw = await startTestGateway({ inference: { enabled: true } });
    const sim = await simulatePortals({
      url: gw.portalUrl,
      portals: 1,
      credentials: gw.simulatorCredentials(1),
      trucks: 1,
      seed: 5203,
      speed: 'max',
      truck: { categories: ['tobacco'], threats: ['narcotics', 'firearm'], mismatchProbability: 1, realism: 'hard' },
    });
    expect(sim.scansCompleted).toBe(1);
    streamed = sim.scans[0];
    report = await finalReport(gw, streamed.scanId);
  }, 180_000);

  afterAll(async () => {
    await gw?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes the scan as DICOS: DX per energy equal to the stored lines, a presentation DX, a MACHINE TDR with one PTO per object', async (ctx) => {
    needTool(ctx, '/usr/bin/dcmdump', 'dcmtk');
    const res = await fetch(`${gw.httpUrl}/v1/scans/${encodeURIComponent(streamed.scanId)}/dicos`, { headers: gw.authHeaders('viewer') });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/zip');
    exported = unzipSync(new Uint8Array(await res.arrayBuffer()));
    expect(Object.keys(exported).sort()).toEqual([
      'dx-material.dcm',
      'dx-presentation.dcm',
      'dx-processing-high.dcm',
      'dx-processing-low.dcm',
      'tdr-machine.dcm',
    ]);
    for (const [name, bytes] of Object.entries(exported)) writeFileSync(join(dir, name), bytes);

    const record = gw.store.getScan(streamed.scanId)!;
    const { pixels, energies } = record.detector;
    expect(energies).toBe(2);
    const raw = await rawLines(gw, streamed.scanId);
    // pydicom's pixel arrays, as rows x columns; compared value for value with the stored lines.
    const view = pydicom(
      `
import json, sys, pydicom
from pydicom.pixel_data_handlers.util import apply_color_lut
out = {}
for name in sys.argv[1:]:
    d = pydicom.dcmread(name)
    o = {"sop": str(d.SOPClassUID), "study": str(d.StudyInstanceUID)}
    if "PixelData" in d:
        a = d.pixel_array
        o["shape"] = list(a.shape); o["imageType"] = list(d.ImageType)
        if d.PhotometricInterpretation == "PALETTE COLOR":
            o["rgbShape"] = list(apply_color_lut(a, d).shape)
            o["classes"] = [int((a // 42 == c).sum()) for c in range(6)]
        else:
            o["bytes"] = a.astype("<u2").tobytes().hex()
    if "ThreatSequence" in d:
        o["decision"] = d.AlarmDecision; o["type"] = d.TDRType
        o["ptos"] = [{"category": p.ATDAssessmentSequence[0].ThreatCategory, "probability": float(p.ATDAssessmentSequence[0].ATDAssessmentProbability),
                      "boxes": [[float(v) for v in r.ThreatROIVoxelSequence[0].ThreatROIBase] + [float(v) for v in r.ThreatROIVoxelSequence[0].ThreatROIExtents] for r in p.PTORepresentationSequence]}
                     for p in d.ThreatSequence]
    out[name.split("/")[-1]] = o
print(json.dumps(out))
`,
      ...Object.keys(exported).map((n) => join(dir, n)),
    );
    const studies = new Set(Object.values(view).map((v: any) => v.study));
    expect(studies.size).toBe(1); // one study per inspection
    for (const [e, name] of ['dx-processing-high.dcm', 'dx-processing-low.dcm'].entries()) {
      expect(view[name].shape).toEqual([pixels, record.lines]);
      expect(view[name].imageType).toEqual(['ORIGINAL', e === 0 ? 'HIGH ENERGY' : 'LOW ENERGY']);
      const values = new Uint16Array(Buffer.from(view[name].bytes, 'hex').buffer.slice(0));
      let mismatches = 0;
      for (let l = 0; l < record.lines; l++) {
        for (let p = 0; p < pixels; p++) if (values[p * record.lines + l] !== raw[(l * energies + e) * pixels + p]) mismatches++;
      }
      expect(mismatches, name).toBe(0);
    }
    // The material view: a PALETTE COLOR DX that pydicom colours; a loaded truck has organic, mixed or inorganic
    // pixels, and air around it.
    const material = view['dx-material.dcm'];
    expect(material.shape).toEqual([pixels, record.lines]);
    expect(material.rgbShape).toEqual([pixels, record.lines, 3]);
    expect(material.imageType).toEqual(['DERIVED', 'MULTI ENERGY']);
    expect(material.classes[0]).toBeGreaterThan(0);
    expect(material.classes[1] + material.classes[2] + material.classes[3]).toBeGreaterThan(0);
    const tdr = view['tdr-machine.dcm'];
    expect(tdr.type).toBe('MACHINE');
    expect(tdr.decision).toBe(report.alarmDecision);
    expect(report.objects.length).toBeGreaterThan(0);
    expect(tdr.ptos.length).toBe(report.objects.length);
    for (const [i, o] of report.objects.entries()) {
      const box = [o.box.lineStart, o.box.pixelStart, 0, o.box.lineEnd - o.box.lineStart, o.box.pixelEnd - o.box.pixelStart, 0];
      expect(tdr.ptos[i].boxes).toEqual([box, box]); // one representation per energy image
      expect(tdr.ptos[i].probability).toBeCloseTo(o.probability, 5);
    }
    for (const name of Object.keys(exported)) {
      const dump = execFileSync('/usr/bin/dcmdump', ['-q', '+E', join(dir, name)], { encoding: 'utf8' });
      expect(dump.length, name).toBeGreaterThan(1000);
    }
  });

  it('the exported DX files posted back become a scan with the same lines and the same results', async () => {
    const record = gw.store.getScan(streamed.scanId)!;
    const hsCodes = record.declaration?.hsCodes ?? [];
    const plate = typeof record.vehicle?.plate === 'string' ? `&plate=${encodeURIComponent(record.vehicle.plate)}` : '';
    const res = await importRequest(gw, [exported['dx-processing-low.dcm'], exported['dx-processing-high.dcm']], `?hsCodes=${hsCodes.join(',')}${plate}`);
    const body = await res.json();
    expect(res.status, JSON.stringify(body)).toBe(201);
    expect(res.headers.get('location')).toBe(`/v1/scans/${encodeURIComponent(body.scanId)}`);
    expect(body).toMatchObject({ portalId: 'import', energies: 2, pixels: record.detector.pixels, lines: record.lines, gaps: [] });
    const imported = gw.store.getScan(body.scanId)!;
    expect(imported.origin).toMatchObject({ source: 'dicos', receivedBy: 'officer-bot', station: streamed.portalId });
    expect(Buffer.from((await rawLines(gw, body.scanId)).buffer).equals(Buffer.from((await rawLines(gw, streamed.scanId)).buffer))).toBe(true);

    const again = await finalReport(gw, body.scanId);
    expect(again.alarmDecision).toBe(report.alarmDecision);
    expect(again.objects.map((o) => [o.assessment, o.category, o.box])).toEqual(report.objects.map((o) => [o.assessment, o.category, o.box]));
    for (const [i, o] of again.objects.entries()) expect(o.probability).toBeCloseTo(report.objects[i].probability, 4);
    expect(again.goods.segments.map((s) => [s.startLine, s.endLine, s.top3[0].label])).toEqual(
      report.goods.segments.map((s) => [s.startLine, s.endLine, s.top3[0].label]),
    );
    expect(again.goods.declaration.status).toBe(report.goods.declaration.status);
    expect(again.threats.map((t) => [t.category, t.box])).toEqual(report.threats.map((t) => [t.category, t.box]));
    // GET /v1/scans/:id shows where it came from.
    const { body: scan } = await getJson(gw, `/v1/scans/${encodeURIComponent(body.scanId)}`);
    expect(scan.origin.sopInstanceUids).toHaveLength(2);
  }, 120_000);

  it.skipIf(!haveSamples)(
    "the toolkits' reference DX files become scans bit-exact with their pixel data",
    async () => {
      const dxFiles = readdirSync(SAMPLES).filter((f) => f.startsWith('dx-'));
      expect(dxFiles.length).toBeGreaterThanOrEqual(4);
      for (const f of dxFiles) {
        const bytes = readFileSync(join(SAMPLES, f));
        const image = (await readDicos(bytes)) as DicosDx;
        const res = await importRequest(gw, [bytes]);
        const body = await res.json();
        expect(res.status, `${f}: ${JSON.stringify(body)}`).toBe(201);
        expect(body).toMatchObject({ energies: 1, pixels: image.rows, lines: image.columns });
        expect(body.warnings.length).toBeGreaterThanOrEqual(0);
        const raw = await rawLines(gw, body.scanId);
        let mismatches = 0;
        for (let l = 0; l < image.columns; l++)
          for (let r = 0; r < image.rows; r++) if (raw[l * image.rows + r] !== image.pixels[r * image.columns + l]) mismatches++;
        expect(mismatches, f).toBe(0);
        expect(gw.store.getScan(body.scanId)?.origin).toMatchObject({
          source: 'dicos',
          sopInstanceUids: [image.sopInstanceUid],
          transferSyntaxUid: image.transferSyntaxUid,
        });
      }
    },
    60_000,
  );

  it("takes a portal's own credential (X-Scanline-Portal) and files the scan under that portal; refuses another portal's", async () => {
    const credential = gw.portalCredential('scanner-http');
    const post = (portal: string, token: string) =>
      fetch(`${gw.httpUrl}/v1/imports`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'x-scanline-portal': portal, 'content-type': 'application/dicom' },
        body: Buffer.from(exported['dx-processing-high.dcm']),
      });
    const ok = await post('scanner-http', credential);
    const body = await ok.json();
    expect(ok.status, JSON.stringify(body)).toBe(201);
    expect(body.portalId).toBe('scanner-http');
    expect(gw.store.getScan(body.scanId)?.origin?.receivedBy).toBe('portal:scanner-http');
    expect((await post('another-portal', credential)).status).toBe(401);
    expect((await post('scanner-http', gw.tokenOf('officer'))).status).toBe(401);
    // A portal credential opens nothing else.
    const read = await fetch(`${gw.httpUrl}/v1/scans`, { headers: { authorization: `Bearer ${credential}`, 'x-scanline-portal': 'scanner-http' } });
    expect(read.status).toBe(401);
  });

  it('bounds the bodies in memory: beyond import.maxConcurrent a request is refused before its body is read; a client gone frees its place', async () => {
    const url = new URL(`${gw.httpUrl}/v1/imports`);
    const slow = (): http.ClientRequest => {
      const req = http.request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { authorization: `Bearer ${gw.tokenOf('officer')}`, 'content-type': 'application/dicom', 'content-length': '100000' },
      });
      req.on('error', () => undefined);
      req.write(Buffer.alloc(10));
      return req;
    };
    const held = [slow(), slow()]; // import.maxConcurrent is 2
    const until = Date.now() + 5_000;
    while (
      gw.metrics &&
      !(await (await fetch(`${gw.httpUrl}/metrics`, { headers: gw.authHeaders('metrics') })).text()).includes('scanline_imports_in_progress 2')
    ) {
      if (Date.now() > until) throw new Error('the two slow imports never took their places');
      await new Promise((r) => setTimeout(r, 20));
    }
    const busy = await importRequest(gw, [exported['dx-processing-high.dcm']]);
    expect(busy.status).toBe(503);
    expect((await busy.json()).error.code).toBe('SCANLINE_ERR_IMPORT_BUSY');
    expect(busy.headers.get('retry-after')).toBe('2');
    for (const req of held) req.destroy();
    const again = Date.now() + 5_000;
    for (;;) {
      const res = await importRequest(gw, [exported['dx-processing-high.dcm']], '?plate=AFTER-BUSY');
      if (res.status === 201) break;
      expect(res.status).toBe(503);
      if (Date.now() > again) throw new Error('the places of the clients that went away were not freed');
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  it('refuses bad files with their code, keeps them in quarantine with the reason, audits, and changes nothing else', async () => {
    const before = gw.store.listScans({ limit: 1000 }).length;
    const cases: Array<[string, Uint8Array[], number, string]> = [
      ['not DICOM', [new TextEncoder().encode('this is not a DICOM file')], 400, 'SCANLINE_ERR_DICOS_PARSE'],
      ['truncated', [exported['dx-processing-high.dcm'].subarray(0, 5000)], 400, 'SCANLINE_ERR_DICOS_PARSE'],
      ['a TDR', [exported['tdr-machine.dcm']], 422, 'SCANLINE_ERR_IMPORT_SET'],
      ['two high energies', [exported['dx-processing-high.dcm'], exported['dx-processing-high.dcm']], 422, 'SCANLINE_ERR_IMPORT_SET'],
    ];
    for (const [what, files, status, code] of cases) {
      const res = await importRequest(gw, files);
      const body = await res.json();
      expect(res.status, what).toBe(status);
      expect(body.error.code, what).toBe(code);
    }
    const wrongType = await fetch(`${gw.httpUrl}/v1/imports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.tokenOf('officer')}`, 'content-type': 'image/png' },
      body: new Uint8Array(10),
    });
    expect(wrongType.status).toBe(415);
    expect(gw.store.listScans({ limit: 1000 }).length).toBe(before);
    const quarantine = join(gw.dataDir, 'quarantine');
    const kept = readdirSync(quarantine).filter((n) => !n.startsWith('.'));
    expect(kept.length).toBe(cases.length);
    const reasons = kept.map((k) => JSON.parse(readFileSync(join(quarantine, k, 'reason.json'), 'utf8')));
    expect(reasons.map((r) => r.code).sort()).toEqual(cases.map((c) => c[3]).sort());
    expect(reasons.every((r) => r.receivedBy === 'officer-bot')).toBe(true);
    const audit = gw.identity.listAudit({ limit: 100, action: 'import.dicos' });
    expect(audit.filter((a) => a.outcome === 'refused').length).toBe(cases.length);
    // A viewer may not import.
    const viewer = await fetch(`${gw.httpUrl}/v1/imports`, {
      method: 'POST',
      headers: { ...gw.authHeaders('viewer'), 'content-type': 'application/dicom' },
      body: Buffer.from(exported['dx-processing-high.dcm']),
    });
    expect(viewer.status).toBe(403);
    const metrics = await (await fetch(`${gw.httpUrl}/metrics`, { headers: gw.authHeaders('metrics') })).text();
    expect(metrics).toMatch(/scanline_imports_total\{outcome="refused"\} 4/);
    expect(metrics).toMatch(/scanline_import_quarantined_files_total 5/);
  });
});
