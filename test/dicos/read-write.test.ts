/**
 * DICOS reading and writing, checked against independent implementations: dcmtk (dcmdump parses, dcmdjpeg decodes,
 * dcmcjpeg and dcmconv make JPEG Lossless and Implicit VR fixtures) and pydicom (reads what Scanline writes).
 * The reference files of ../shared/dicos-samples/ (written by the public DICOS toolkits) are read when the folder
 * is there; without it those tests skip and say why.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type DicosDx, type DicosInspection, type DicosTdr, SopClass, newUid, readDicos, writeDx, writeTdr, isValidUid } from '../../src/dicos/index.js';
import { ScanlineError } from '../../src/errors/index.js';
import { needTool } from '../helpers/tools.js';

const SAMPLES = resolve(__dirname, '../../../shared/dicos-samples');
const haveSamples = existsSync(SAMPLES);
if (!haveSamples) console.warn(`[dicos] ${SAMPLES} is absent: the tests on the DICOS toolkits' reference files are skipped`);
const PYTHON = '/usr/bin/python3';

const dir = mkdtempSync(join(tmpdir(), 'scanline-dicos-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function inspection(): DicosInspection {
  return {
    studyInstanceUid: newUid(),
    frameOfReferenceUid: newUid(),
    scanId: 'lane-1-000001',
    ooiId: 'AB 123 CD',
    ooiIdType: 'TEXT',
    stationName: 'lane-1',
    institution: 'Test checkpoint',
    manufacturer: 'Scanline project',
    modelName: 'Scanline gateway',
    softwareVersion: '0.1.0',
    deviceSerialNumber: 'test',
    startedAt: new Date('2026-12-06T10:00:00Z'),
  };
}

function testPixels(rows: number, columns: number, seed: number): Uint16Array {
  const px = new Uint16Array(rows * columns);
  let x = seed;
  for (let i = 0; i < px.length; i++) {
    x = (x * 1_103_515_245 + 12_345) >>> 0;
    px[i] = (i * 37 + (x >>> 20)) & 0xffff;
  }
  return px;
}

function dx(energy: 'high' | 'low' | 'single', rows = 48, columns = 96, seed = 1): { bytes: Uint8Array; pixels: Uint16Array; uid: string } {
  const pixels = testPixels(rows, columns, seed);
  const uid = newUid();
  const bytes = writeDx({
    inspection: inspection(),
    sopInstanceUid: uid,
    seriesInstanceUid: newUid(),
    seriesNumber: 1,
    intent: 'FOR PROCESSING',
    energy,
    rows,
    columns,
    pixels,
    pixelSpacingMm: [2.5, 2.5],
    acquiredAt: new Date('2026-12-06T10:00:01Z'),
  });
  return { bytes, pixels, uid };
}

async function refused(bytes: Uint8Array): Promise<ScanlineError> {
  try {
    await readDicos(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(ScanlineError);
    return err as ScanlineError;
  }
  throw new Error('expected readDicos to refuse the file');
}

/** pydicom's view of a file: SOP class, shape and a checksum of the pixel values, or the TDR's PTOs. */
function pydicomView(path: string): {
  sop: string;
  shape?: number[];
  sum?: number;
  first?: number[];
  ptos?: Array<{ base: number[]; extents: number[]; category: string }>;
} {
  const script = `
import json, sys, pydicom
d = pydicom.dcmread(sys.argv[1])
out = {"sop": str(d.SOPClassUID)}
if "PixelData" in d:
    a = d.pixel_array
    out["shape"] = list(a.shape); out["sum"] = int(a.astype("int64").sum()); out["first"] = [int(v) for v in a.flatten()[:8]]
if "ThreatSequence" in d:
    out["ptos"] = [{"base": [float(v) for v in r.ThreatROIVoxelSequence[0].ThreatROIBase], "extents": [float(v) for v in r.ThreatROIVoxelSequence[0].ThreatROIExtents], "category": p.ATDAssessmentSequence[0].ThreatCategory} for p in d.ThreatSequence for r in p.PTORepresentationSequence]
print(json.dumps(out))
`;
  return JSON.parse(execFileSync(PYTHON, ['-c', script, path], { encoding: 'utf8' }));
}

function sum(px: Uint16Array): number {
  let s = 0;
  for (const v of px) s += v;
  return s;
}

describe('DICOS reference files (../shared/dicos-samples)', () => {
  const files = haveSamples ? readdirSync(SAMPLES).filter((f) => f.endsWith('.dcs')) : [];

  it.skipIf(!haveSamples)('reads every DX and TDR reference file', async () => {
    expect(files.length).toBeGreaterThanOrEqual(8);
    for (const f of files) {
      const o = await readDicos(readFileSync(join(SAMPLES, f)));
      expect(['dx', 'tdr']).toContain(o.kind);
    }
  });

  it.skipIf(!haveSamples)("DX pixel data equal dcmtk's decoding, JPEG Lossless included", async (ctx) => {
    needTool(ctx, '/usr/bin/dcmdjpeg', 'dcmtk');
    for (const f of files.filter((name) => name.startsWith('dx-'))) {
      const o = (await readDicos(readFileSync(join(SAMPLES, f)))) as DicosDx;
      const plain = join(dir, `${f}.plain.dcm`);
      execFileSync('/usr/bin/dcmdjpeg', [join(SAMPLES, f), plain]);
      const view = pydicomView(plain);
      expect(view.shape, f).toEqual([o.rows, o.columns]);
      expect(view.sum, f).toBe(sum(o.pixels));
      expect(view.first, f).toEqual([...o.pixels.subarray(0, 8)]);
    }
  });

  it.skipIf(!haveSamples)('reads the PTOs of the reference reports', async () => {
    const multiple = (await readDicos(readFileSync(join(SAMPLES, 'tdr-multiple-ptos.dcs')))) as DicosTdr;
    expect(multiple.tdrType).toBe('MACHINE');
    expect(multiple.alarmDecision).toBe('ALARM');
    expect(multiple.ptos.map((p) => [p.id, p.category, p.assessmentFlag])).toEqual([
      [2002, 'ANOMALY', 'NO_THREAT'],
      [9001, 'PI', 'HIGH_THREAT'],
    ]);
    expect(multiple.ptos[1].boxes[0]).toMatchObject({ base: [12, 23, 45], extents: [50, 50, 100] });
    // The toolkit's UIDs have components with leading zeros: read, with a warning.
    expect(multiple.warnings.some((w) => w.includes('not a valid DICOM UID'))).toBe(true);
    const none = (await readDicos(readFileSync(join(SAMPLES, 'tdr-no-threat.dcs')))) as DicosTdr;
    expect(none.ptos).toEqual([]);
    const ait = (await readDicos(readFileSync(join(SAMPLES, 'tdr-v03-ait2d.dcs')))) as DicosTdr;
    expect(ait.ptos[0].boxes[0]).toMatchObject({ base: [24, 91, 0], extents: [16, 22, 1] });
  });

  it.skipIf(!haveSamples)('`scanline dicos inspect` prints each file and its threats', () => {
    const out = execFileSync(process.execPath, [resolve(__dirname, '../../bin/scanline.js'), 'dicos', 'inspect', ...files.map((f) => join(SAMPLES, f))], {
      encoding: 'utf8',
    });
    for (const f of files) expect(out).toContain(f);
    expect(out).toContain('PTO 9001: PI "Flammable Liquid", HIGH_THREAT');
    expect(out).toContain('128 rows x 256 columns');
    const json = execFileSync(
      process.execPath,
      [resolve(__dirname, '../../bin/scanline.js'), 'dicos', 'inspect', '--json', join(SAMPLES, 'dx-for-processing.dcs')],
      {
        encoding: 'utf8',
      },
    );
    expect(JSON.parse(json)).toMatchObject({ kind: 'dx', rows: 128, columns: 256, energy: 'single', pixelStats: { min: 0, max: 32_767 } });
  });
});

describe('DICOS written by Scanline', () => {
  it('a DX For Processing reads back bit-exact, in Scanline and in pydicom; dcmdump parses it', async (ctx) => {
    needTool(ctx, '/usr/bin/dcmdump', 'dcmtk');
    const { bytes, pixels, uid } = dx('high');
    const path = join(dir, 'high.dcm');
    writeFileSync(path, bytes);
    const o = (await readDicos(bytes)) as DicosDx;
    expect(o).toMatchObject({ kind: 'dx', energy: 'high', rows: 48, columns: 96, sopInstanceUid: uid, warnings: [], pixelSpacingMm: [2.5, 2.5] });
    expect(Buffer.from(o.pixels.buffer).equals(Buffer.from(pixels.buffer))).toBe(true);
    expect(isValidUid(o.sopInstanceUid) && isValidUid(o.studyInstanceUid ?? '')).toBe(true);
    const view = pydicomView(path);
    expect(view).toMatchObject({ sop: SopClass.DxForProcessing, shape: [48, 96], sum: sum(pixels) });
    const dump = execFileSync('/usr/bin/dcmdump', ['-q', '+E', path], { encoding: 'utf8' });
    expect(dump).toContain('HIGH ENERGY');
    expect(dump).not.toMatch(/error/i);
  });

  it('JPEG Lossless SV1 (dcmcjpeg) and Implicit VR (dcmconv) fixtures read bit-exact', async (ctx) => {
    needTool(ctx, '/usr/bin/dcmcjpeg', 'dcmtk');
    const { bytes, pixels } = dx('low', 40, 130, 7);
    const plain = join(dir, 'low.dcm');
    writeFileSync(plain, bytes);
    const jpeg = join(dir, 'low-jpeg.dcm');
    execFileSync('/usr/bin/dcmcjpeg', ['+e1', plain, jpeg]);
    const implicit = join(dir, 'low-implicit.dcm');
    execFileSync('/usr/bin/dcmconv', ['+ti', plain, implicit]);
    for (const [path, syntax] of [
      [jpeg, '1.2.840.10008.1.2.4.70'],
      [implicit, '1.2.840.10008.1.2'],
    ]) {
      const o = (await readDicos(readFileSync(path))) as DicosDx;
      expect(o.transferSyntaxUid).toBe(syntax);
      expect(o.energy).toBe('low');
      expect(Buffer.from(o.pixels.buffer).equals(Buffer.from(pixels.buffer)), path).toBe(true);
    }
  });

  it('a TDR reads back in pydicom with its PTOs and boxes; the operator and decision are kept', async () => {
    const image = { sopClassUid: SopClass.DxForProcessing, sopInstanceUid: newUid() };
    const bytes = writeTdr({
      inspection: inspection(),
      sopInstanceUid: newUid(),
      seriesInstanceUid: newUid(),
      seriesNumber: 3,
      type: 'OPERATOR',
      alarmDecision: 'ALARM',
      decisionTime: new Date('2026-12-06T10:05:00Z'),
      references: [image],
      ptos: [
        { id: 1, category: 'PI', description: 'Firearm', flag: 'THREAT', probability: 0.875, boxes: [{ on: image, x: 10, y: 20, width: 30, height: 12 }] },
        {
          id: 2,
          category: 'ANOMALY',
          description: 'Undeclared goods',
          flag: 'THREAT',
          probability: 0.5,
          boxes: [{ on: image, x: 0, y: 0, width: 96, height: 48 }],
        },
      ],
      operator: { id: 'officer.with.a.long.id', name: 'Officer One', issuer: 'SCANLINE' },
      comment: 'opened the trailer',
    });
    const path = join(dir, 'tdr.dcm');
    writeFileSync(path, bytes);
    const o = (await readDicos(bytes)) as DicosTdr;
    expect(o).toMatchObject({
      kind: 'tdr',
      tdrType: 'OPERATOR',
      alarmDecision: 'ALARM',
      operator: { id: 'officer.with.a.long.id', name: 'Officer One' },
      warnings: [],
    });
    expect(o.ptos.map((p) => [p.category, p.assessmentFlag, p.boxes[0].base, p.boxes[0].extents])).toEqual([
      ['PI', 'THREAT', [10, 20, 0], [30, 12, 0]],
      ['ANOMALY', 'THREAT', [0, 0, 0], [96, 48, 0]],
    ]);
    expect(o.ptos[0].probability).toBeCloseTo(0.875, 6);
    expect(pydicomView(path)).toEqual({
      sop: SopClass.ThreatDetectionReport,
      ptos: [
        { base: [10, 20, 0], extents: [30, 12, 0], category: 'PI' },
        { base: [0, 0, 0], extents: [96, 48, 0], category: 'ANOMALY' },
      ],
    });
  });
});

describe('bad DICOS files get a coded error', () => {
  it('not DICOM, truncated native and truncated JPEG Lossless data: SCANLINE_ERR_DICOS_PARSE', async (ctx) => {
    needTool(ctx, '/usr/bin/dcmcjpeg', 'dcmtk');
    expect((await refused(new TextEncoder().encode('hello'))).code).toBe('SCANLINE_ERR_DICOS_PARSE');
    const { bytes } = dx('single', 64, 64);
    expect((await refused(bytes.subarray(0, bytes.byteLength - 100))).code).toBe('SCANLINE_ERR_DICOS_PARSE');
    const plain = join(dir, 'trunc.dcm');
    writeFileSync(plain, bytes);
    const jpeg = join(dir, 'trunc-jpeg.dcm');
    execFileSync('/usr/bin/dcmcjpeg', ['+e1', plain, jpeg]);
    const whole = readFileSync(jpeg);
    for (const cut of [200, Math.floor(whole.byteLength / 2), whole.byteLength - 40]) {
      const err = await refused(whole.subarray(0, cut));
      expect(err.code, `cut at ${cut} of ${whole.byteLength}`).toBe('SCANLINE_ERR_DICOS_PARSE');
    }
  });

  it('another SOP class, another transfer syntax, 8-bit, multi-frame, derived and absurd images are refused with their codes', async (ctx) => {
    needTool(ctx, '/usr/bin/dcmodify', 'dcmtk');
    const { bytes } = dx('high', 32, 32);
    const base = join(dir, 'base.dcm');
    writeFileSync(base, bytes);
    const variant = (name: string, tool: string, args: string[]): Uint8Array => {
      const path = join(dir, `${name}.dcm`);
      if (tool === 'dcmodify') {
        writeFileSync(path, bytes);
        execFileSync('/usr/bin/dcmodify', ['-nb', '-q', ...args, path]);
      } else execFileSync(`/usr/bin/${tool}`, [...args, base, path]);
      return readFileSync(path);
    };
    expect((await refused(variant('ct', 'dcmodify', ['-m', `(0008,0016)=${SopClass.Ct}`]))).code).toBe('SCANLINE_ERR_DICOS_SOP_CLASS');
    expect((await refused(variant('mr', 'dcmodify', ['-m', '(0008,0016)=1.2.840.10008.5.1.4.1.1.4']))).code).toBe('SCANLINE_ERR_DICOS_SOP_CLASS');
    expect((await refused(variant('big', 'dcmconv', ['+tb']))).code).toBe('SCANLINE_ERR_DICOS_TRANSFER_SYNTAX');
    expect((await refused(variant('deflated', 'dcmconv', ['+td']))).code).toBe('SCANLINE_ERR_DICOS_TRANSFER_SYNTAX');
    expect((await refused(variant('eight', 'dcmodify', ['-m', '(0028,0100)=8', '-m', '(0028,0101)=8', '-m', '(0028,0102)=7']))).code).toBe(
      'SCANLINE_ERR_DICOS_IMAGE',
    );
    expect((await refused(variant('frames', 'dcmodify', ['-i', '(0028,0008)=2']))).code).toBe('SCANLINE_ERR_DICOS_IMAGE');
    expect((await refused(variant('zeff', 'dcmodify', ['-m', '(0008,0008)=DERIVED\\Z_EFFECTIVE']))).code).toBe('SCANLINE_ERR_DICOS_IMAGE');
    expect((await refused(variant('rgb', 'dcmodify', ['-m', '(0028,0002)=3', '-m', '(0028,0004)=RGB']))).code).toBe('SCANLINE_ERR_DICOS_IMAGE');
    expect((await refused(variant('zero', 'dcmodify', ['-m', '(0028,0010)=0']))).code).toBe('SCANLINE_ERR_DICOS_IMAGE');
    // Rows x Columns larger than the pixel data: damaged, not read half.
    expect((await refused(variant('taller', 'dcmodify', ['-m', '(0028,0010)=33']))).code).toBe('SCANLINE_ERR_DICOS_PARSE');
    // Sign -1 (more signal = more attenuation) and a High Bit other than Bits Stored - 1 cannot be scanned as they are.
    expect((await refused(variant('sign', 'dcmodify', ['-m', '(0028,1041)=-1']))).code).toBe('SCANLINE_ERR_DICOS_IMAGE');
    expect((await refused(variant('highbit', 'dcmodify', ['-m', '(0028,0102)=11']))).code).toBe('SCANLINE_ERR_DICOS_IMAGE');
  });

  it("checks a JPEG Lossless frame against Rows x Columns, and a caller's limits, before decoding", async (ctx) => {
    needTool(ctx, '/usr/bin/dcmcjpeg', 'dcmtk');
    const { bytes } = dx('high', 40, 60, 3);
    const plain = join(dir, 'frame.dcm');
    writeFileSync(plain, bytes);
    const jpeg = join(dir, 'frame-jpeg.dcm');
    execFileSync('/usr/bin/dcmcjpeg', ['+e1', plain, jpeg]);
    // The data set says fewer rows than the JPEG frame has: the stream would decode to another image.
    execFileSync('/usr/bin/dcmodify', ['-nb', '-q', '-m', '(0028,0010)=20', jpeg]);
    const err = await refused(readFileSync(jpeg));
    expect(err.code).toBe('SCANLINE_ERR_DICOS_PARSE');
    expect(err.message).toMatch(/JPEG Lossless frame is 60 x 40/);
    // An import's limits are checked on the data set, before any pixel is decoded.
    try {
      await readDicos(bytes, { maxRows: 32 });
      throw new Error('not refused');
    } catch (e) {
      expect((e as ScanlineError).code).toBe('SCANLINE_ERR_DICOS_IMAGE');
    }
  });

  it('writes text values as DICOM takes them, and refuses a DX longer than 65,535 columns', async () => {
    const ins = { ...inspection(), stationName: 'lane\\with\\backslashes-and-a-long-name', ooiId: 'x'.repeat(300) };
    const write = (rows: number, columns: number) =>
      writeDx({
        inspection: ins,
        sopInstanceUid: newUid(),
        seriesInstanceUid: newUid(),
        seriesNumber: 1,
        intent: 'FOR PROCESSING',
        energy: 'single',
        rows,
        columns,
        pixels: new Uint16Array(rows * columns),
        pixelSpacingMm: [1, 1],
        acquiredAt: new Date(),
      });
    const o = await readDicos(write(2, 2));
    expect(o.stationName).toBe('lane/with/backsl');
    expect(o.ooiId).toHaveLength(64);
    expect(() => write(1, 70_000)).toThrow(expect.objectContaining({ code: 'SCANLINE_ERR_DICOS_EXPORT' }));
  });
});
