/**
 * Writing DICOS files: DX images and Threat Detection Reports, as P10 streams in Explicit VR Little Endian.
 *
 * Data sets are built tag-keyed (the DICOM JSON model) and written by dcmjs, so every attribute, DICOS-specific and
 * private ones included, is written as given (dcmjs' keyword path drops keywords it does not know). What each module
 * holds and why is in docs/dicos.md ("Writer"); tests read every file back with pydicom and dcmtk.
 */
import dcmjs, { type DenaturalizedDataset, type DicomElement } from 'dcmjs';
import { SopClass, TransferSyntax } from './dictionary.js';
import { ScanlineError } from '../errors/index.js';
import { type DxEnergy, PRIVATE_CREATOR } from './read.js';

/** Implementation Class UID of Scanline's writer (2.25 root, fixed), and its version name (≤ 16 characters). */
export const IMPLEMENTATION_CLASS_UID = '2.25.247618213902466016563178052146862095119';
export const DICOS_VERSION = 'V03';

/**
 * A text value as DICOM takes it: at most `max` characters (SH 16, LO 64, LT 10240), no backslash (it separates
 * values: one value must not become several) and no control characters.
 */
function text(value: string, max: number): string {
  let out = '';
  for (const ch of value.replaceAll('\\', '/')) {
    const code = ch.codePointAt(0) ?? 0;
    out += code < 0x20 || code === 0x7f ? ' ' : ch;
    if (out.length >= max) break;
  }
  return out.slice(0, max);
}

function el(vr: string, ...value: unknown[]): DicomElement {
  return value.length === 0 || value[0] === null || value[0] === undefined ? { vr, Value: [] } : { vr, Value: value };
}

/** DICOM DA and TM of a time, in UTC (the writer also sets Timezone Offset From UTC +0000). */
export function dicomDate(t: Date): string {
  return t.toISOString().slice(0, 10).replaceAll('-', '');
}
export function dicomTime(t: Date): string {
  const iso = t.toISOString();
  return `${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}.${iso.slice(20, 23)}000`;
}
export function dicomDateTime(t: Date): string {
  return `${dicomDate(t)}${dicomTime(t)}+0000`;
}

/** Identity of one inspection and of the equipment: the same in every object of one export. */
export interface DicosInspection {
  studyInstanceUid: string;
  frameOfReferenceUid: string;
  /** Scan ID (0020,0010), ≤ 16 characters: Scanline's scan id is longer, so it goes in Study Description. */
  scanId: string;
  /** Object of inspection: the vehicle's plate, or the scan id without one. */
  ooiId: string;
  ooiIdType: 'TEXT' | 'RFID' | 'BARCODE' | 'MRP';
  stationName: string;
  institution: string | null;
  manufacturer: string;
  modelName: string;
  softwareVersion: string;
  deviceSerialNumber: string;
  startedAt: Date;
}

function common(
  ins: DicosInspection,
  sopClassUid: string,
  sopInstanceUid: string,
  seriesInstanceUid: string,
  modality: string,
  seriesNumber: number,
  content: Date,
): DenaturalizedDataset {
  return {
    '00080005': el('CS', 'ISO_IR 192'),
    '00080012': el('DA', dicomDate(new Date())),
    '00080013': el('TM', dicomTime(new Date())),
    '00080016': el('UI', sopClassUid),
    '00080018': el('UI', sopInstanceUid),
    '00080020': el('DA', dicomDate(ins.startedAt)),
    '00080021': el('DA', dicomDate(ins.startedAt)),
    '00080023': el('DA', dicomDate(content)),
    '00080030': el('TM', dicomTime(ins.startedAt)),
    '00080031': el('TM', dicomTime(ins.startedAt)),
    '00080033': el('TM', dicomTime(content)),
    '00080060': el('CS', modality),
    '00080070': el('LO', text(ins.manufacturer, 64)),
    '00080080': el('LO', ins.institution === null ? null : text(ins.institution, 64)),
    '00081010': el('SH', text(ins.stationName, 16)),
    '00081030': el('LO', text(`Scanline scan ${ins.scanId}`, 64)),
    '00081090': el('LO', text(ins.modelName, 64)),
    '00080201': el('SH', '+0000'),
    '00100020': el('LO', text(ins.ooiId, 64)),
    '00100022': el('CS', ins.ooiIdType),
    '00100040': el('CS', 'U'),
    '00181000': el('LO', text(ins.deviceSerialNumber, 64)),
    '00181020': el('LO', text(ins.softwareVersion, 64)),
    '0020000D': el('UI', ins.studyInstanceUid),
    '0020000E': el('UI', seriesInstanceUid),
    '00200010': el('SH', text(ins.scanId.slice(-16), 16)),
    '00200011': el('IS', seriesNumber),
    '00200013': el('IS', 1),
    '00200052': el('UI', ins.frameOfReferenceUid),
    '00201040': el('LO'),
    '4010103A': el('CS', DICOS_VERSION),
    '40101042': el('CS', 'CARGO'),
    '40101044': el('CS', 'SUCCESSFUL'),
    '40101048': el('CS', 'OPERATIONAL'),
  };
}

function p10(dataset: DenaturalizedDataset): Uint8Array {
  const sopClassUid = dataset['00080016'].Value?.[0] as string;
  const sopInstanceUid = dataset['00080018'].Value?.[0] as string;
  const meta: DenaturalizedDataset = {
    '00020001': { vr: 'OB', Value: [new Uint8Array([0, 1]).buffer] },
    '00020002': el('UI', sopClassUid),
    '00020003': el('UI', sopInstanceUid),
    '00020010': el('UI', TransferSyntax.ExplicitVrLittleEndian),
    '00020012': el('UI', IMPLEMENTATION_CLASS_UID),
    '00020013': el('SH', 'SCANLINE'),
  };
  const dict = new dcmjs.data.DicomDict(meta);
  dict.dict = dataset;
  return new Uint8Array(dict.write());
}

export interface DxWriteInput {
  inspection: DicosInspection;
  sopInstanceUid: string;
  seriesInstanceUid: string;
  seriesNumber: number;
  intent: 'FOR PROCESSING' | 'FOR PRESENTATION';
  /** Image Type value 2: HIGH ENERGY, LOW ENERGY, or INTENSITY for a single-energy (or presentation) image. */
  energy: DxEnergy;
  rows: number;
  columns: number;
  /** rows x columns, row-major. */
  pixels: Uint16Array;
  /** Row and column spacing, mm. */
  pixelSpacingMm: [number, number];
  acquiredAt: Date;
  /** For Presentation: the window that shows the whole range, and what the values mean. */
  window?: { center: number; width: number; explanation: string };
  /** Attributes of Scanline's private block (0029,10xx) as text, e.g. the calibration of a For Processing image. */
  privateText?: Record<number, string>;
}

const ENERGY_VALUE: Record<DxEnergy, string> = { high: 'HIGH ENERGY', low: 'LOW ENERGY', single: 'INTENSITY' };

/** One DX image (one energy), P10 Explicit VR Little Endian. */
export function writeDx(input: DxWriteInput): Uint8Array {
  const { rows, columns, pixels } = input;
  if (pixels.length !== rows * columns) throw new RangeError(`DX pixels: ${pixels.length} values for ${rows} x ${columns}`);
  // Rows and Columns are US: a longer scan does not fit one DX.
  if (rows > 65_535 || columns > 65_535) {
    throw new ScanlineError('SCANLINE_ERR_DICOS_EXPORT', `a DX has at most 65,535 rows and columns; this image is ${rows} x ${columns}`, { rows, columns });
  }
  const presentation = input.intent === 'FOR PRESENTATION';
  const sopClassUid = presentation ? SopClass.DxForPresentation : SopClass.DxForProcessing;
  const ds = common(input.inspection, sopClassUid, input.sopInstanceUid, input.seriesInstanceUid, 'DX', input.seriesNumber, input.acquiredAt);
  Object.assign(ds, {
    '00080008': el('CS', presentation ? 'DERIVED' : 'ORIGINAL', ENERGY_VALUE[input.energy]),
    '00080068': el('CS', input.intent),
    '0008002A': el('DT', dicomDateTime(input.acquiredAt)),
    '00180060': el('DS', 0),
    '00181200': el('DA'),
    '00181201': el('TM'),
    '00187004': el('CS', 'SCINTILLATOR'),
    '00188151': el('DS', 0),
    '00200032': el('DS', 0, 0, 0),
    '00200037': el('DS', 1, 0, 0, 0, 1, 0),
    '00280002': el('US', 1),
    '00280004': el('CS', 'MONOCHROME2'),
    '00280010': el('US', rows),
    '00280011': el('US', columns),
    '00280030': el('DS', input.pixelSpacingMm[0], input.pixelSpacingMm[1]),
    '00280100': el('US', 16),
    '00280101': el('US', 16),
    '00280102': el('US', 15),
    '00280103': el('US', 0),
    '00280301': el('CS', 'NO'),
    '00281040': el('CS', 'LIN'),
    '00281041': el('SS', 1),
    '00281052': el('DS', 0),
    '00281053': el('DS', 1),
    '00281054': el('LO', 'US'),
    '00282110': el('CS', '00'),
    '00600026': el('FL', input.pixelSpacingMm[0], input.pixelSpacingMm[1]),
    '20500020': el('CS', 'IDENTITY'),
    '7FE00010': { vr: 'OW', Value: [pixels.buffer.slice(pixels.byteOffset, pixels.byteOffset + pixels.byteLength)] },
  });
  if (input.window) {
    ds['00281050'] = el('DS', input.window.center);
    ds['00281051'] = el('DS', input.window.width);
    ds['00281055'] = el('LO', text(input.window.explanation, 64));
  }
  addPrivate(ds, input.privateText);
  return p10(ds);
}

export interface PaletteDxWriteInput {
  inspection: DicosInspection;
  sopInstanceUid: string;
  seriesInstanceUid: string;
  seriesNumber: number;
  rows: number;
  columns: number;
  /** rows x columns palette indices, row-major. */
  indices: Uint8Array;
  /** 256 entries each, 16-bit (0..65535) red, green and blue. */
  palette: { red: Uint16Array; green: Uint16Array; blue: Uint16Array };
  pixelSpacingMm: [number, number];
  acquiredAt: Date;
  /** What the colours mean, for people (Derivation Description). */
  derivation: string;
}

/**
 * A colour view for people as a DX For Presentation in PALETTE COLOR (the photometric interpretation DICOS DX allows
 * besides grey, as the toolkit's own palette DX shows): 8-bit indices into a 256-entry RGB lookup table.
 */
export function writePaletteDx(input: PaletteDxWriteInput): Uint8Array {
  const { rows, columns, indices, palette } = input;
  if (indices.length !== rows * columns) throw new RangeError(`palette DX: ${indices.length} indices for ${rows} x ${columns}`);
  if (rows > 65_535 || columns > 65_535) {
    throw new ScanlineError('SCANLINE_ERR_DICOS_EXPORT', `a DX has at most 65,535 rows and columns; this image is ${rows} x ${columns}`, { rows, columns });
  }
  for (const lut of [palette.red, palette.green, palette.blue]) if (lut.length !== 256) throw new RangeError('a palette has 256 entries');
  const ds = common(input.inspection, SopClass.DxForPresentation, input.sopInstanceUid, input.seriesInstanceUid, 'DX', input.seriesNumber, input.acquiredAt);
  const lut = (values: Uint16Array): DicomElement => ({ vr: 'OW', Value: [values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)] });
  // Even length: an 8-bit image of odd size is padded with one byte, as PS3.5 7.1 wants.
  const padded = new Uint8Array(indices.length + (indices.length % 2));
  padded.set(indices);
  Object.assign(ds, {
    '00080008': el('CS', 'DERIVED', 'MULTI ENERGY'),
    '00080068': el('CS', 'FOR PRESENTATION'),
    '0008002A': el('DT', dicomDateTime(input.acquiredAt)),
    '00082111': el('ST', text(input.derivation, 1024)),
    '00180060': el('DS', 0),
    '00187004': el('CS', 'SCINTILLATOR'),
    '00188151': el('DS', 0),
    '00200032': el('DS', 0, 0, 0),
    '00200037': el('DS', 1, 0, 0, 0, 1, 0),
    '00280002': el('US', 1),
    '00280004': el('CS', 'PALETTE COLOR'),
    '00280010': el('US', rows),
    '00280011': el('US', columns),
    '00280030': el('DS', input.pixelSpacingMm[0], input.pixelSpacingMm[1]),
    '00280100': el('US', 8),
    '00280101': el('US', 8),
    '00280102': el('US', 7),
    '00280103': el('US', 0),
    '00280301': el('CS', 'NO'),
    '00281101': el('US', 256, 0, 16),
    '00281102': el('US', 256, 0, 16),
    '00281103': el('US', 256, 0, 16),
    '00281201': lut(palette.red),
    '00281202': lut(palette.green),
    '00281203': lut(palette.blue),
    '00282110': el('CS', '00'),
    '00600026': el('FL', input.pixelSpacingMm[0], input.pixelSpacingMm[1]),
    '7FE00010': { vr: 'OB', Value: [padded.buffer] },
  });
  return p10(ds);
}

function addPrivate(ds: DenaturalizedDataset, text: Record<number, string> | undefined): void {
  if (!text || Object.keys(text).length === 0) return;
  ds['00290010'] = el('LO', PRIVATE_CREATOR);
  for (const [element, value] of Object.entries(text)) {
    ds[`002910${Number(element).toString(16).padStart(2, '0').toUpperCase()}`] = el('UT', value);
  }
}

/** A reference to an image a report is about. */
export interface DicosReference {
  sopClassUid: string;
  sopInstanceUid: string;
}

export interface TdrPtoInput {
  id: number;
  /** DICOS Threat Category: EXPLOSIVE, PI, CONTRABAND, ANOMALY, LAPTOP, OTHER, PHARMACEUTICAL. */
  category: string;
  description: string;
  flag: 'HIGH_THREAT' | 'THREAT' | 'NO_THREAT' | 'UNKNOWN';
  probability: number | null;
  /** One box per image it is shown on: base (column, row) and size (width, height) in that image's pixels. */
  boxes: Array<{ on: DicosReference; x: number; y: number; width: number; height: number }>;
}

export interface TdrWriteInput {
  inspection: DicosInspection;
  sopInstanceUid: string;
  seriesInstanceUid: string;
  seriesNumber: number;
  type: 'MACHINE' | 'OPERATOR';
  alarmDecision: 'ALARM' | 'CLEAR' | 'UNKNOWN';
  decisionTime: Date;
  references: DicosReference[];
  ptos: TdrPtoInput[];
  /** MACHINE: manufacturer, algorithm name and version (Threat Detection Algorithm and Version). */
  algorithm?: string[];
  processingTimeMs?: number;
  /** OPERATOR: who decided (id and name) and the organisation that issued the id. */
  operator?: { id: string; name: string; issuer: string };
  /** OPERATOR: the MACHINE report the decision answers. */
  answers?: DicosReference;
  comment?: string | null;
  privateText?: Record<number, string>;
}

/** One Threat Detection Report, P10 Explicit VR Little Endian. */
export function writeTdr(input: TdrWriteInput): Uint8Array {
  const ds = common(
    input.inspection,
    SopClass.ThreatDetectionReport,
    input.sopInstanceUid,
    input.seriesInstanceUid,
    'TDR',
    input.seriesNumber,
    input.decisionTime,
  );
  const refItem = (r: DicosReference): DenaturalizedDataset => ({ '00081150': el('UI', r.sopClassUid), '00081155': el('UI', r.sopInstanceUid) });
  const alarmObjects = input.ptos.filter((p) => p.flag === 'THREAT' || p.flag === 'HIGH_THREAT').length;
  Object.assign(ds, {
    '00081110': { vr: 'SQ', Value: input.references.map(refItem) },
    '40101011': {
      vr: 'SQ',
      Value: input.ptos.map((p) => {
        const assessment: DenaturalizedDataset = {
          '40101012': el('CS', p.category),
          '40101013': el('LT', text(p.description, 10_240)),
          '40101014': el('CS', 'NO_INTERFERENCE'),
          '40101015': el('CS', p.flag),
        };
        if (p.probability !== null) assessment['40101016'] = el('FL', Math.min(1, Math.max(0, p.probability)));
        return {
          '40101010': el('US', p.id),
          '40101037': {
            vr: 'SQ',
            Value: p.boxes.map((b) => ({
              '0008114A': { vr: 'SQ', Value: [refItem(b.on)] },
              '40101001': {
                vr: 'SQ',
                Value: [
                  { '40101004': el('FL', b.x, b.y, 0), '40101005': el('FL', b.width, b.height, 0), '40101006': { vr: 'OB', Value: [new ArrayBuffer(0)] } },
                ],
              },
              '4010101D': el('FL', b.x, b.y, 0, b.x + b.width, b.y + b.height, 0),
            })),
          },
          '40101038': { vr: 'SQ', Value: [assessment] },
        };
      }),
    },
    '40101024': el('CS', 'SUCCESS'),
    '40101027': el('CS', input.type),
    '4010102B': el('DT', dicomDateTime(input.decisionTime)),
    '40101031': el('CS', input.alarmDecision),
    '40101033': el('US', input.ptos.length),
    '40101034': el('US', alarmObjects),
    '4010106D': el('CS', 'NO'),
  });
  if (input.algorithm) ds['40101029'] = el('LO', ...input.algorithm.map((a) => text(a, 64)));
  if (input.processingTimeMs !== undefined) ds['40101069'] = el('FL', input.processingTimeMs);
  if (input.operator) {
    ds['00081072'] = {
      vr: 'SQ',
      Value: [
        {
          '00401101': {
            vr: 'SQ',
            Value: [
              {
                // Code Value is SH (16 characters); a longer id goes in Long Code Value (UC), as PS3.3 8.8 says.
                ...(input.operator.id.length <= 16
                  ? { '00080100': el('SH', text(input.operator.id, 16)) }
                  : { '00080119': el('UC', text(input.operator.id, 1024)) }),
                '00080102': el('SH', text(input.operator.issuer, 16)),
                '00080104': el('LO', text(input.operator.name, 64)),
              },
            ],
          },
          '00080080': el('LO', input.inspection.institution === null ? null : text(input.inspection.institution, 64)),
        },
      ],
    };
  }
  if (input.answers) ds['40101077'] = { vr: 'SQ', Value: [refItem(input.answers)] };
  if (input.comment) ds['00204000'] = el('LT', text(input.comment, 10_240));
  addPrivate(ds, input.privateText);
  return p10(ds);
}
