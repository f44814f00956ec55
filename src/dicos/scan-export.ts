/**
 * One ended scan as DICOS objects (docs/dicos.md, "Writer"): one inspection, one study.
 *   series 1  DX For Processing, one per energy: the raw 16-bit lines as stored, rows = detector elements, columns =
 *             scan lines; Scanline's private attribute carries the scan's dark and air frames, so that importing the
 *             files again gives the same scan and the same results;
 *   series 2  DX For Presentation: the flat-fielded (calibrated) transmission of the high (or only) energy;
 *   series 3  MACHINE TDR: the machine's alarm decision and one PTO per assessed object (threat alerts, declaration
 *             findings), boxed on each DX For Processing image; goods suggestions in the private attribute;
 *   series 4  one OPERATOR TDR per officer decision.
 * UIDs are derived from the gateway's machine id and the scan id (2.25 + a name-based 128-bit value), so exporting a
 * scan again gives the same UIDs: an archive sees the same objects, not duplicates.
 * Threads: the caller's; building copies the raw lines once per energy (a 2048-pixel, 4000-line dual-energy scan:
 * about 33 MB per energy).
 */
import { createHash } from 'node:crypto';
import type { DecisionRecord, ScanResultsReport } from '../protocol/index.js';
import type { JournalFrame, ScanRecord } from '../storage/index.js';
import { PREVIEW_PALETTE } from '../stitch/index.js';
import { SopClass } from './dictionary.js';
import type { DxEnergy } from './read.js';
import { type DicosInspection, type DicosReference, type TdrPtoInput, writeDx, writePaletteDx, writeTdr } from './write.js';

export interface ScanExportInput {
  record: ScanRecord;
  /**
   * Raw lines as stored: per line, each energy's pixels in turn (high first). null: the reports only (an OPERATOR
   * report to send); they name the images by the same derived UIDs.
   */
  raw: Uint16Array | null;
  /** Calibration frames the portal sent (the journal's dark and air frames with their payloads). */
  calibration: JournalFrame[];
  /** Lines averaged as air when the portal sent no air frame (stitch.airLines). */
  airLines: number;
  /** The final machine report; null without one (inference off, or still scoring). */
  report: ScanResultsReport | null;
  decisions: DecisionRecord[];
  machine: { machineId: string; version: string };
  institution: string | null;
  /** Dual-energy material classification (stitch.material): the material view is coloured as the stitcher colours. */
  material?: MaterialThresholds;
}

/** stitch.material: attenuation bounds and the three decreasing thresholds on R = A(low) / A(high). */
export interface MaterialThresholds {
  minAttenuation: number;
  maxAttenuation: number;
  ratioThresholds: readonly [number, number, number];
}

const DEFAULT_MATERIAL: MaterialThresholds = { minAttenuation: 0.05, maxAttenuation: 7.5, ratioThresholds: [1.41, 1.34, 1.2] };

/** Background, organic, mixed, inorganic, heavy metal, impenetrable: the operator screen's colours. */
const MATERIAL_COLOURS = PREVIEW_PALETTE;
/** Brightness levels per material in the palette: 6 x 42 = 252 of its 256 entries. */
const LEVELS = 42;

export interface DicosFile {
  /** File name in the export, e.g. `dx-processing-high.dcm`. */
  name: string;
  sopClassUid: string;
  sopInstanceUid: string;
  bytes: Uint8Array;
}

/** A stable UID for `what` of this scan on this gateway: 2.25 + 128 bits of SHA-256 (PS3.5 B.2, name-based). */
export function derivedUid(machineId: string, scanId: string, what: string): string {
  const h = createHash('sha256').update(`scanline\0${machineId}\0${scanId}\0${what}`).digest();
  // Version 8 (custom) and RFC 9562 variant bits, as a name-based UUID would have; the UID is its integer value.
  h[6] = (h[6] & 0x0f) | 0x80;
  h[8] = (h[8] & 0x3f) | 0x80;
  return `2.25.${BigInt(`0x${h.subarray(0, 16).toString('hex')}`).toString(10)}`;
}

/** DICOS Threat Category of a threat label of the demo models (docs/dicos.md, "Mapping"). */
export function threatCategoryOf(label: string): string {
  switch (label) {
    case 'firearm':
    case 'weapon':
    case 'knife':
      return 'PI';
    case 'explosive':
    case 'explosives':
      return 'EXPLOSIVE';
    case 'narcotics':
    case 'drugs':
      return 'CONTRABAND';
    default:
      return 'OTHER';
  }
}

const ENERGY_NAMES: Record<number, DxEnergy[]> = { 1: ['single'], 2: ['high', 'low'] };

/** The DICOS objects of an ended scan, in series order. */
export function buildScanExport(input: ScanExportInput): DicosFile[] {
  const { record, raw, machine } = input;
  const { pixels, energies } = record.detector;
  const lines = record.lines;
  if (raw !== null && raw.length !== lines * energies * pixels) throw new RangeError(`raw lines: ${raw.length} values for ${lines} x ${energies} x ${pixels}`);
  const uid = (what: string): string => derivedUid(machine.machineId, record.scanId, what);
  const plate = typeof record.vehicle?.plate === 'string' && record.vehicle.plate.trim() !== '' ? record.vehicle.plate.trim() : null;
  const inspection: DicosInspection = {
    studyInstanceUid: uid('study'),
    frameOfReferenceUid: uid('frame-of-reference'),
    scanId: record.scanId,
    ooiId: plate ?? record.scanId,
    ooiIdType: 'TEXT',
    stationName: record.origin?.station ?? record.portalId,
    institution: input.institution,
    manufacturer: 'Scanline project',
    modelName: 'Scanline gateway',
    softwareVersion: machine.version,
    deviceSerialNumber: machine.machineId,
    startedAt: new Date(record.startedAt),
  };
  const acquiredAt = new Date(record.startedAt);
  const spacing: [number, number] = [record.detector.pitchMm, record.detector.pitchMm];
  const files: DicosFile[] = [];
  const processing: DicosReference[] = [];

  // Series 1: DX For Processing per energy.
  const names = ENERGY_NAMES[energies];
  const processingSeries = uid('series-processing');
  for (let e = 0; e < energies; e++) {
    const sopInstanceUid = uid(`dx-processing-${names[e]}`);
    processing.push({ sopClassUid: SopClass.DxForProcessing, sopInstanceUid });
    if (raw === null) continue;
    const image = energyImage(raw, lines, energies, pixels, e);
    const calibration = input.calibration
      .filter((f) => f.payload !== null)
      .map((f) => ({
        kind: f.kind === 2 ? 'dark' : 'air',
        lines: f.lineCount,
        values: Buffer.from(energyLines(f.payload!, f.lineCount, energies, pixels, e).buffer).toString('base64'),
      }));
    files.push({
      name: `dx-processing-${names[e]}.dcm`,
      sopClassUid: SopClass.DxForProcessing,
      sopInstanceUid,
      bytes: writeDx({
        inspection,
        sopInstanceUid,
        seriesInstanceUid: processingSeries,
        seriesNumber: 1,
        intent: 'FOR PROCESSING',
        energy: names[e],
        rows: pixels,
        columns: lines,
        pixels: image,
        pixelSpacingMm: spacing,
        acquiredAt,
        privateText: { 0: JSON.stringify({ scanId: record.scanId, portalId: record.portalId, calibration }) },
      }),
    });
  }

  // Series 2: DX For Presentation of the first energy, flat-fielded (not for a reports-only build).
  const presentationUid = uid('dx-presentation');
  if (raw !== null)
    files.push({
      name: 'dx-presentation.dcm',
      sopClassUid: SopClass.DxForPresentation,
      sopInstanceUid: presentationUid,
      bytes: writeDx({
        inspection,
        sopInstanceUid: presentationUid,
        seriesInstanceUid: uid('series-presentation'),
        seriesNumber: 2,
        intent: 'FOR PRESENTATION',
        energy: names[0],
        rows: pixels,
        columns: lines,
        pixels: flatField(raw, lines, energies, pixels, input.calibration, input.airLines),
        pixelSpacingMm: spacing,
        acquiredAt,
        window: { center: 32_768, width: 65_536, explanation: 'transmission 0..1 as 0..65535' },
      }),
    });

  // Series 2 also: the material view of a dual-energy scan, as a PALETTE COLOR DX.
  if (raw !== null && energies === 2) {
    const view = materialView(raw, lines, pixels, input.calibration, input.airLines, input.material ?? DEFAULT_MATERIAL);
    const materialUid = uid('dx-material');
    files.push({
      name: 'dx-material.dcm',
      sopClassUid: SopClass.DxForPresentation,
      sopInstanceUid: materialUid,
      bytes: writePaletteDx({
        inspection,
        sopInstanceUid: materialUid,
        seriesInstanceUid: uid('series-presentation'),
        seriesNumber: 2,
        rows: pixels,
        columns: lines,
        indices: view.indices,
        palette: view.palette,
        pixelSpacingMm: spacing,
        acquiredAt,
        derivation:
          'Material by dual-energy ratio R = A(low)/A(high): orange organic, green mixed, blue inorganic, violet heavy metal, dark impenetrable, white background; brightness by high-energy attenuation',
      }),
    });
  }

  // Series 3: the MACHINE TDR, from the final report.
  const report = input.report;
  let machineTdr: DicosReference | null = null;
  if (report !== null && report.status === 'final') {
    const ptos: TdrPtoInput[] = report.objects.map((o, i) => ({
      id: i + 1,
      category: o.assessment === 'THREAT' ? threatCategoryOf(o.category) : 'ANOMALY',
      description: ptoDescription(o),
      flag: 'THREAT',
      probability: o.probability,
      boxes: boxesOn(processing, o.box),
    }));
    const sopInstanceUid = uid('tdr-machine');
    files.push({
      name: 'tdr-machine.dcm',
      sopClassUid: SopClass.ThreatDetectionReport,
      sopInstanceUid,
      bytes: writeTdr({
        inspection,
        sopInstanceUid,
        seriesInstanceUid: uid('series-tdr-machine'),
        seriesNumber: 3,
        type: 'MACHINE',
        alarmDecision: report.alarmDecision,
        decisionTime: new Date(report.alarmDecisionTime),
        references: processing,
        ptos,
        algorithm: ['Scanline project', `scanline ${report.machine.version}`, ...report.algorithms.map((a) => `${a.name} ${a.version}`)],
        processingTimeMs: report.processingTimeMs,
        privateText: {
          0: JSON.stringify({
            decisionReason: report.decisionReason,
            ...(report.decisionReasons ? { decisionReasons: report.decisionReasons } : {}),
            // DICOS has no attribute for triage, out-of-distribution figures or low-confidence hints.
            ...(report.triage ? { triage: report.triage } : {}),
            ...(report.outOfDistribution !== undefined ? { outOfDistribution: report.outOfDistribution } : {}),
            ...(report.hints && report.hints.length > 0 ? { hints: report.hints } : {}),
            goods: report.goods.segments,
            declaration: report.goods.declaration,
            objectIds: report.objects.map((o) => o.id),
          }),
        },
      }),
    });
    machineTdr = { sopClassUid: SopClass.ThreatDetectionReport, sopInstanceUid };
  }

  // Series 4: one OPERATOR TDR per decision.
  for (const d of input.decisions) {
    const objects = report?.objects ?? [];
    const ptos: TdrPtoInput[] = objects.map((o, i) => {
      const view = d.suggestions[o.id];
      return {
        id: i + 1,
        category: o.assessment === 'THREAT' ? threatCategoryOf(o.category) : 'ANOMALY',
        description: ptoDescription(o),
        flag: view === 'accept' ? 'THREAT' : view === 'reject' ? 'NO_THREAT' : 'UNKNOWN',
        probability: null,
        boxes: boxesOn(processing, o.box),
      };
    });
    const sopInstanceUid = uid(`tdr-operator-${d.id}`);
    files.push({
      name: `tdr-operator-${d.id}.dcm`,
      sopClassUid: SopClass.ThreatDetectionReport,
      sopInstanceUid,
      bytes: writeTdr({
        inspection,
        sopInstanceUid,
        seriesInstanceUid: uid('series-tdr-operator'),
        seriesNumber: 4,
        type: 'OPERATOR',
        // An officer who sends the truck to physical inspection raises the alarm; "clear" releases it.
        alarmDecision: d.verdict === 'inspect' ? 'ALARM' : 'CLEAR',
        decisionTime: new Date(d.decidedAt),
        references: processing,
        ptos,
        operator: { id: d.operatorId, name: d.operatorId, issuer: 'SCANLINE' },
        ...(machineTdr ? { answers: machineTdr } : {}),
        comment: d.comment,
        privateText: { 0: JSON.stringify({ decisionId: d.id, verdict: d.verdict, machineDecision: d.machineDecision, suggestions: d.suggestions }) },
      }),
    });
  }
  return files;
}

/** A box of the report (lines x detector pixels) on each DX image: x = column = line, y = row = detector pixel. */
function boxesOn(images: DicosReference[], box: ScanResultsReport['objects'][number]['box']): TdrPtoInput['boxes'] {
  return images.map((on) => ({
    on,
    x: box.lineStart,
    y: box.pixelStart,
    width: box.lineEnd - box.lineStart,
    height: box.pixelEnd - box.pixelStart,
  }));
}

function ptoDescription(o: ScanResultsReport['objects'][number]): string {
  switch (o.assessment) {
    case 'THREAT':
      return o.categoryDescription;
    case 'UNDECLARED_GOODS':
      return `Undeclared goods: ${o.categoryDescription}${o.hsCodes && o.hsCodes.length > 0 ? ` (HS ${o.hsCodes.join(', ')})` : ''}`;
    case 'DECLARED_GOODS_MISSING':
      return 'Declared goods not seen: the cargo bay looks empty';
  }
}

/** Per-element mean of the calibration frames of one kind and energy, or null. */
function calibrationMean(calibration: JournalFrame[], kind: number, energies: number, pixels: number, energy: number): Float64Array | null {
  const frames = calibration.filter((f) => f.kind === kind && f.payload !== null);
  if (frames.length === 0) return null;
  const sum = new Float64Array(pixels);
  let n = 0;
  for (const f of frames) {
    for (let l = 0; l < f.lineCount; l++) {
      const base = (l * energies + energy) * pixels;
      for (let p = 0; p < pixels; p++) sum[p] += f.payload![base + p];
      n++;
    }
  }
  for (let p = 0; p < pixels; p++) sum[p] /= n;
  return sum;
}

/** Dark and air of one energy: the calibration frames, else zero and the mean of the first airLines lines. */
function flatFieldOf(raw: Uint16Array, lines: number, energies: number, pixels: number, calibration: JournalFrame[], airLines: number, energy: number) {
  const dark = calibrationMean(calibration, 2, energies, pixels, energy) ?? new Float64Array(pixels);
  let air = calibrationMean(calibration, 3, energies, pixels, energy);
  if (air === null) {
    air = new Float64Array(pixels);
    const n = Math.max(1, Math.min(airLines, lines));
    for (let l = 0; l < n; l++) for (let p = 0; p < pixels; p++) air[p] += raw[(l * energies + energy) * pixels + p] / n;
  }
  return { dark, air };
}

/**
 * The material view: each pixel's class by the stitcher's rule (background below minAttenuation of the high energy,
 * impenetrable above maxAttenuation, else by R = A(low)/A(high) against the thresholds) and its brightness by the
 * high-energy attenuation, as indices into a 256-entry palette (class x 42 levels).
 */
function materialView(raw: Uint16Array, lines: number, pixels: number, calibration: JournalFrame[], airLines: number, m: MaterialThresholds) {
  const hi = flatFieldOf(raw, lines, 2, pixels, calibration, airLines, 0);
  const lo = flatFieldOf(raw, lines, 2, pixels, calibration, airLines, 1);
  const attenuation = (v: number, dark: number, air: number): number => {
    const span = air - dark;
    if (span <= 0) return 0;
    return -Math.log(Math.min(1, Math.max(1e-6, (v - dark) / span)));
  };
  const [t0, t1, t2] = m.ratioThresholds;
  const indices = new Uint8Array(pixels * lines);
  for (let l = 0; l < lines; l++) {
    const base = l * 2 * pixels;
    for (let p = 0; p < pixels; p++) {
      const h = attenuation(raw[base + p], hi.dark[p], hi.air[p]);
      const lowA = attenuation(raw[base + pixels + p], lo.dark[p], lo.air[p]);
      let cls = 4;
      if (lowA >= t2 * h) cls = 3;
      if (lowA >= t1 * h) cls = 2;
      if (lowA >= t0 * h) cls = 1;
      if (h > m.maxAttenuation) cls = 5;
      if (h < m.minAttenuation) cls = 0;
      const shade = 0.85 * (1 - Math.min(Math.max(h, 0), m.maxAttenuation) / m.maxAttenuation);
      const level = cls === 5 ? LEVELS - 1 : Math.round((shade / 0.85) * (LEVELS - 1));
      indices[p * lines + l] = cls * LEVELS + level;
    }
  }
  const red = new Uint16Array(256);
  const green = new Uint16Array(256);
  const blue = new Uint16Array(256);
  for (let c = 0; c < MATERIAL_COLOURS.length; c++) {
    for (let k = 0; k < LEVELS; k++) {
      const s = c === 5 ? 1 : 0.15 + (0.85 * k) / (LEVELS - 1);
      const [r, g, b] = MATERIAL_COLOURS[c];
      red[c * LEVELS + k] = Math.round(r * s) * 257;
      green[c * LEVELS + k] = Math.round(g * s) * 257;
      blue[c * LEVELS + k] = Math.round(b * s) * 257;
    }
  }
  return { indices, palette: { red, green, blue } };
}

/** One energy of line-major raw data as a DX image: rows = detector elements, columns = lines. */
export function energyImage(raw: Uint16Array, lines: number, energies: number, pixels: number, energy: number): Uint16Array {
  const out = new Uint16Array(pixels * lines);
  for (let l = 0; l < lines; l++) {
    const base = (l * energies + energy) * pixels;
    for (let p = 0; p < pixels; p++) out[p * lines + l] = raw[base + p];
  }
  return out;
}

/** One energy's lines of a calibration payload (lineCount lines, energies interleaved), line-major. */
function energyLines(payload: Uint16Array, lineCount: number, energies: number, pixels: number, energy: number): Uint16Array {
  const out = new Uint16Array(lineCount * pixels);
  for (let l = 0; l < lineCount; l++) out.set(payload.subarray((l * energies + energy) * pixels, (l * energies + energy + 1) * pixels), l * pixels);
  return out;
}

/**
 * Transmission of the first energy, (raw - dark) / (air - dark) per detector element, clamped to 0..1 and scaled to
 * 0..65535: the flat field the stitcher applies (dark and air frames averaged; without an air frame the first
 * airLines lines; without a dark frame zero), without its dead-pixel interpolation.
 */
function flatField(raw: Uint16Array, lines: number, energies: number, pixels: number, calibration: JournalFrame[], airLines: number): Uint16Array {
  const { dark, air } = flatFieldOf(raw, lines, energies, pixels, calibration, airLines, 0);
  const out = new Uint16Array(pixels * lines);
  for (let l = 0; l < lines; l++) {
    const base = l * energies * pixels;
    for (let p = 0; p < pixels; p++) {
      const span = air[p] - dark[p];
      const t = span > 0 ? (raw[base + p] - dark[p]) / span : 0;
      out[p * lines + l] = Math.round(Math.min(1, Math.max(0, t)) * 65_535);
    }
  }
  return out;
}
