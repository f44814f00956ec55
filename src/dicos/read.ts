/**
 * Reading DICOS files: DX images (For Processing, For Presentation) and Threat Detection Reports.
 *
 * dcmjs parses the P10 stream (Explicit and Implicit VR Little Endian; the data set of an encapsulated file too);
 * dcmjs-codecs, a WebAssembly build of established codecs, decodes JPEG Lossless pixel data. Both are from the
 * maintained dcmjs family; decoding was checked bit-exact against dcmtk's dcmdjpeg on the reference files (test).
 *
 * Contract: `readDicos` never returns a partial image. Whatever cannot be read as the standard says is a
 * ScanlineError with one of the DICOS error codes and a message that names the attribute; tolerable departures from
 * the standard (invalid UIDs, missing type-2 attributes) are listed in `warnings`.
 * Threads: runs on the caller's thread; decoding a large JPEG Lossless image takes tens of milliseconds.
 */
import dcmjs, { type DenaturalizedDataset, type DicomDict } from 'dcmjs';
import codecs from 'dcmjs-codecs';
import dicomParser from 'dicom-parser';
import { ScanlineError } from '../errors/index.js';
import { READABLE_TRANSFER_SYNTAXES, SOP_CLASS_NAMES, SopClass, TRANSFER_SYNTAX_NAMES, TransferSyntax } from './dictionary.js';
import { isValidUid } from './uid.js';

/** Private block of Scanline's own attributes (group 0x0029): its creator; the writer uses the same. */
export const PRIVATE_CREATOR = 'SCANLINE 1';

/** Largest image side read (detector elements or lines); larger is refused as absurd before any allocation. */
export const MAX_DX_SIDE = 65_536;
/** Largest pixel count read (rows x columns): 256 Mpx, 512 MiB of 16-bit samples. */
export const MAX_DX_PIXELS = 256 * 1024 * 1024;

/** Which energy a DX holds, from Image Type value 2 (DICOS "OOI Image Characteristics"). */
export type DxEnergy = 'high' | 'low' | 'single';

export interface DicosCommon {
  sopClassUid: string;
  /** Human name of the SOP class. */
  sopClassName: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  transferSyntaxName: string;
  /** Scan Instance UID (DICOM Study Instance UID): one inspection. */
  studyInstanceUid: string | null;
  seriesInstanceUid: string | null;
  frameOfReferenceUid: string | null;
  /** DICOS Version (4010,103A), e.g. "V03". */
  dicosVersion: string | null;
  /** Object of inspection: OOI ID (0010,0020) and OOI Type (4010,1042). */
  ooiId: string | null;
  ooiType: string | null;
  stationName: string | null;
  manufacturer: string | null;
  modelName: string | null;
  institution: string | null;
  /** Content (or instance creation) date and time as ISO 8601 without zone (DICOS local time), or null. */
  contentTime: string | null;
  /** What was tolerated: invalid UIDs, missing attributes. */
  warnings: string[];
}

export interface DicosDx extends DicosCommon {
  kind: 'dx';
  presentationIntent: 'FOR PROCESSING' | 'FOR PRESENTATION';
  imageType: string[];
  energy: DxEnergy;
  rows: number;
  columns: number;
  bitsStored: number;
  photometricInterpretation: string;
  /** Row and column spacing in mm (Reported Pixel Spacing, Pixel Spacing or Imager Pixel Spacing), or null. */
  pixelSpacingMm: [number, number] | null;
  kvp: number | null;
  /** rows x columns samples, row-major, as stored (no rescale, no palette). */
  pixels: Uint16Array;
  /** Text of Scanline's private attribute (0029,1000) when a Scanline gateway wrote the file (its calibration), else null. */
  scanlinePrivate: string | null;
}

export interface DicosPtoBox {
  /** SOP Instance UID of the image the box is on, when the report says. */
  referencedSopInstanceUid: string | null;
  referencedSopClassUid: string | null;
  /** Threat ROI Base (x = column, y = row, z = frame; 0 for 2-D). */
  base: [number, number, number];
  /** Threat ROI Extents (width, height, depth; depth 0 or 1 for 2-D). */
  extents: [number, number, number];
}

export interface DicosPto {
  id: number;
  category: string | null;
  description: string | null;
  /** ATD Assessment Flag: HIGH_THREAT, THREAT, NO_THREAT, UNKNOWN. */
  assessmentFlag: string | null;
  abilityAssessment: string | null;
  /** ATD Assessment Probability 0..1, when given. */
  probability: number | null;
  boxes: DicosPtoBox[];
}

export interface DicosTdr extends DicosCommon {
  kind: 'tdr';
  /** MACHINE, OPERATOR, GROUND TRUTH, ... */
  tdrType: string | null;
  alarmDecision: string | null;
  alarmDecisionTime: string | null;
  /** Threat Detection Algorithm and Version: manufacturer, version, parameters. */
  algorithm: string[];
  /** Operator of an OPERATOR report (Operator Identification Sequence), or null. */
  operator: { id: string | null; name: string | null } | null;
  totalProcessingTimeMs: number | null;
  ptos: DicosPto[];
  /** Instances the report refers to (Referenced Study Sequence and each PTO's). */
  referencedSopInstanceUids: string[];
}

export type DicosObject = DicosDx | DicosTdr;

let codecsReady: Promise<void> | null = null;

/** Loads the WebAssembly codecs once per process (from the package's own files; nothing is downloaded). */
function ensureCodecs(): Promise<void> {
  if (codecsReady === null) {
    codecs.log.setLevel('silent');
    codecsReady = codecs.NativeCodecs.initializeAsync();
  }
  return codecsReady;
}

function dicosError(
  code: 'SCANLINE_ERR_DICOS_PARSE' | 'SCANLINE_ERR_DICOS_SOP_CLASS' | 'SCANLINE_ERR_DICOS_TRANSFER_SYNTAX' | 'SCANLINE_ERR_DICOS_IMAGE',
  message: string,
  details?: Record<string, unknown>,
): ScanlineError {
  return new ScanlineError(code, message, details);
}

function values(ds: DenaturalizedDataset, tag: string): unknown[] {
  return ds[tag]?.Value ?? [];
}

/** Longest text kept from a file (the longest DICOM string VRs a reader shows are LO/UI, 64): a file cannot push more. */
const MAX_TEXT = 64;

/** A value of the file for a message: quoted, at most MAX_TEXT characters. */
function shown(value: unknown): string {
  const text = String(value);
  return JSON.stringify(text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}...` : text);
}

function str(ds: DenaturalizedDataset, tag: string): string | null {
  const v = values(ds, tag)[0];
  if (v === undefined || v === null) return null;
  if (typeof v === 'object') {
    const alphabetic = (v as { Alphabetic?: unknown }).Alphabetic;
    return typeof alphabetic === 'string' ? alphabetic.trim().slice(0, MAX_TEXT) || null : null;
  }
  const s = String(v).replace(/\0+$/, '').trim().slice(0, MAX_TEXT);
  return s === '' ? null : s;
}

function num(ds: DenaturalizedDataset, tag: string): number | null {
  const v = values(ds, tag)[0];
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN;
  return Number.isFinite(n) ? n : null;
}

function nums(ds: DenaturalizedDataset, tag: string): number[] {
  return values(ds, tag)
    .map((v) => (typeof v === 'number' ? v : Number(v)))
    .filter((n) => Number.isFinite(n));
}

function items(ds: DenaturalizedDataset, tag: string): DenaturalizedDataset[] {
  return values(ds, tag).filter((v): v is DenaturalizedDataset => typeof v === 'object' && v !== null);
}

/** DA + TM → "YYYY-MM-DDTHH:MM:SS(.ffffff)", or null when the date is absent or malformed. */
function dateTime(date: string | null, time: string | null): string | null {
  const d = date?.match(/^(\d{4})(\d{2})(\d{2})$/);
  if (!d) return null;
  const t = time?.match(/^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?/);
  const hh = t?.[1] ?? '00';
  const mm = t?.[2] ?? '00';
  const ss = t?.[3] ?? '00';
  return `${d[1]}-${d[2]}-${d[3]}T${hh}:${mm}:${ss}${t?.[4] ?? ''}`;
}

function checkUid(name: string, uid: string | null, warnings: string[]): void {
  if (uid !== null && !isValidUid(uid)) warnings.push(`${name} "${uid}" is not a valid DICOM UID (read anyway)`);
}

function parseP10(bytes: Uint8Array): DicomDict {
  if (bytes.byteLength < 132 || bytes[128] !== 0x44 || bytes[129] !== 0x49 || bytes[130] !== 0x43 || bytes[131] !== 0x4d) {
    throw dicosError('SCANLINE_ERR_DICOS_PARSE', 'not a DICOM/DICOS file: no "DICM" after the 128-byte preamble');
  }
  // dcmjs (0.50, the release that runs on Node 20 and that dcmjs-codecs and dcmjs-dimse use) fills a value cut short
  // by the end of the file with zeros. dicom-parser refuses any element that runs past the end, so it checks the
  // structure first: a truncated file is refused, never read in part.
  try {
    dicomParser.parseDicom(bytes);
  } catch (err) {
    const why = typeof err === 'object' && err !== null && 'exception' in err ? String((err as { exception: unknown }).exception) : String(err);
    throw dicosError('SCANLINE_ERR_DICOS_PARSE', `the file is truncated or damaged: ${why.replace(/^dicomParser[.:]\w+: /, '')}`);
  }
  const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  try {
    return dcmjs.data.DicomMessage.readFile(copy, { ignoreErrors: false });
  } catch (err) {
    throw dicosError('SCANLINE_ERR_DICOS_PARSE', `the file cannot be parsed (truncated or damaged): ${(err as Error).message}`);
  }
}

/** Reads one DICOS file (a whole P10 stream). */
/** Limits a caller checks before any pixel is decoded (an import: detector elements and lines a scan may have). */
export interface ReadLimits {
  maxRows?: number;
  maxColumns?: number;
}

export async function readDicos(bytes: Uint8Array, limits: ReadLimits = {}): Promise<DicosObject> {
  const parsed = parseP10(bytes);
  const meta = parsed.meta;
  const ds = parsed.dict;
  const transferSyntaxUid = str(meta, '00020010');
  if (transferSyntaxUid === null) throw dicosError('SCANLINE_ERR_DICOS_PARSE', 'the file meta information has no Transfer Syntax UID (0002,0010)');
  const sopClassUid = str(ds, '00080016') ?? str(meta, '00020002');
  if (sopClassUid === null) throw dicosError('SCANLINE_ERR_DICOS_PARSE', 'the file has no SOP Class UID (0008,0016)');
  const sopInstanceUid = str(ds, '00080018') ?? str(meta, '00020003');
  if (sopInstanceUid === null) throw dicosError('SCANLINE_ERR_DICOS_PARSE', 'the file has no SOP Instance UID (0008,0018)');

  const isDx = sopClassUid === SopClass.DxForProcessing || sopClassUid === SopClass.DxForPresentation;
  if (!isDx && sopClassUid !== SopClass.ThreatDetectionReport) {
    const name = SOP_CLASS_NAMES[sopClassUid] ?? 'not a DICOS class Scanline knows';
    throw dicosError(
      'SCANLINE_ERR_DICOS_SOP_CLASS',
      `SOP class ${shown(sopClassUid)} (${name}) is not read; Scanline reads DICOS DX For Processing, DX For Presentation and Threat Detection Reports`,
      { sopClassUid },
    );
  }
  // A TDR carries no pixel data of its own (a bitmap mask at most): its data set is readable in any transfer syntax.
  if (isDx && !READABLE_TRANSFER_SYNTAXES.includes(transferSyntaxUid)) {
    throw dicosError(
      'SCANLINE_ERR_DICOS_TRANSFER_SYNTAX',
      `transfer syntax ${shown(transferSyntaxUid)} (${TRANSFER_SYNTAX_NAMES[transferSyntaxUid] ?? 'unknown'}) is not supported; send Explicit or Implicit VR Little Endian or JPEG Lossless SV1`,
      { transferSyntaxUid },
    );
  }

  const warnings: string[] = [];
  const common: DicosCommon = {
    sopClassUid,
    sopClassName: SOP_CLASS_NAMES[sopClassUid],
    sopInstanceUid,
    transferSyntaxUid,
    transferSyntaxName: TRANSFER_SYNTAX_NAMES[transferSyntaxUid] ?? transferSyntaxUid,
    studyInstanceUid: str(ds, '0020000D'),
    seriesInstanceUid: str(ds, '0020000E'),
    frameOfReferenceUid: str(ds, '00200052'),
    dicosVersion: str(ds, '4010103A'),
    ooiId: str(ds, '00100020'),
    ooiType: str(ds, '40101042'),
    stationName: str(ds, '00081010'),
    manufacturer: str(ds, '00080070'),
    modelName: str(ds, '00081090'),
    institution: str(ds, '00080080'),
    contentTime: dateTime(str(ds, '00080023') ?? str(ds, '00080012'), str(ds, '00080033') ?? str(ds, '00080013')),
    warnings,
  };
  checkUid('SOP Instance UID', sopInstanceUid, warnings);
  checkUid('Scan (Study) Instance UID', common.studyInstanceUid, warnings);
  checkUid('Series Instance UID', common.seriesInstanceUid, warnings);
  if (common.studyInstanceUid === null) warnings.push('no Scan (Study) Instance UID (0020,000D)');
  return isDx ? readDx(ds, common, bytes, limits) : readTdr(ds, common);
}

async function readDx(ds: DenaturalizedDataset, common: DicosCommon, bytes: Uint8Array, limits: ReadLimits): Promise<DicosDx> {
  const need = (tag: string, name: string): number => {
    const v = num(ds, tag);
    if (v === null) throw dicosError('SCANLINE_ERR_DICOS_PARSE', `the DX has no ${name} (${tag.slice(0, 4)},${tag.slice(4)}): a truncated or damaged file`);
    return v;
  };
  const rows = need('00280010', 'Rows');
  const columns = need('00280011', 'Columns');
  const bitsAllocated = need('00280100', 'Bits Allocated');
  const bitsStored = num(ds, '00280101') ?? bitsAllocated;
  const samplesPerPixel = num(ds, '00280002') ?? 1;
  const pixelRepresentation = num(ds, '00280103') ?? 0;
  const frames = num(ds, '00280008') ?? 1;
  const photometricInterpretation = str(ds, '00280004') ?? 'MONOCHROME2';
  const imageType = values(ds, '00080008').map((v) => String(v).trim().toUpperCase().slice(0, 16));
  const highBit = num(ds, '00280102');
  const intensitySign = num(ds, '00281041');
  const intensityRelationship = str(ds, '00281040');
  const intent = (str(ds, '00080068') ?? (common.sopClassUid === SopClass.DxForProcessing ? 'FOR PROCESSING' : 'FOR PRESENTATION')).toUpperCase();
  const image = (problem: string): ScanlineError =>
    dicosError('SCANLINE_ERR_DICOS_IMAGE', problem, { rows, columns, bitsAllocated, photometricInterpretation });

  if (bitsAllocated !== 16) {
    throw image(`the DX has ${bitsAllocated}-bit samples; Scanline reads 16-bit X-ray data (an 8-bit image is a display rendering, not detector data)`);
  }
  if (bitsStored < 1 || bitsStored > 16) throw image(`Bits Stored is ${bitsStored}; expected 1..16`);
  if (samplesPerPixel !== 1) throw image(`the DX has ${samplesPerPixel} samples per pixel; Scanline reads one sample per pixel (grey or palette)`);
  if (!['MONOCHROME2', 'MONOCHROME1', 'PALETTE COLOR'].includes(photometricInterpretation)) {
    throw image(`Photometric Interpretation ${shown(photometricInterpretation)} is not read; expected MONOCHROME2, MONOCHROME1 or PALETTE COLOR`);
  }
  if (pixelRepresentation !== 0) throw image('the DX has signed samples (Pixel Representation 1); detector data are unsigned');
  if (frames !== 1) throw image(`the DX has ${frames} frames; Scanline reads single-frame DX images`);
  if (rows < 1 || columns < 1 || rows > MAX_DX_SIDE || columns > MAX_DX_SIDE || rows * columns > MAX_DX_PIXELS) {
    throw image(`the DX is ${rows} x ${columns}; Scanline reads 1..${MAX_DX_SIDE} on each side and at most ${MAX_DX_PIXELS} pixels`);
  }
  // Checked before any pixel is decoded: a small compressed file must not make the gateway decode a huge image.
  if (limits.maxRows !== undefined && rows > limits.maxRows) {
    throw image(
      `the DX has ${rows} rows; a row is one detector element and a detector has at most ${limits.maxRows} (is the image turned? columns are scan lines)`,
    );
  }
  if (limits.maxColumns !== undefined && columns > limits.maxColumns) {
    throw image(`the DX has ${columns} columns (scan lines); a scan has at most ${limits.maxColumns} (stitch.maxLines)`);
  }
  if (highBit !== null && highBit !== bitsStored - 1)
    throw image(`High Bit is ${highBit} with ${bitsStored} bits stored; only High Bit = Bits Stored - 1 is read`);
  if (intensitySign === -1 || (intensityRelationship !== null && intensityRelationship.toUpperCase() === 'LOG')) {
    throw image(
      `Pixel Intensity Relationship ${intensityRelationship ?? 'LIN'} with sign ${intensitySign ?? 1}: only linear data where more signal means more transmission (LIN, sign 1) can be scanned`,
    );
  }
  const energyValue = imageType[1] ?? null;
  let energy: DxEnergy;
  if (energyValue === 'HIGH ENERGY' || energyValue === 'HIGH_ENERGY') energy = 'high';
  else if (energyValue === 'LOW ENERGY' || energyValue === 'LOW_ENERGY') energy = 'low';
  else if (energyValue === null || energyValue === 'INTENSITY' || energyValue === '') {
    if (energyValue === null) common.warnings.push('Image Type (0008,0008) has no value 2; read as a single-energy intensity image');
    energy = 'single';
  } else {
    throw image(
      `Image Type value 2 is ${shown(energyValue)}: a derived image (e.g. Z_EFFECTIVE) is not detector data; Scanline reads HIGH ENERGY, LOW ENERGY and INTENSITY DX images`,
    );
  }

  const expectedBytes = rows * columns * 2;
  let pixelBytes: ArrayBuffer;
  if (common.transferSyntaxUid === TransferSyntax.JpegLosslessSv1) pixelBytes = await decodeJpegLossless(ds, bytes, expectedBytes, rows, columns);
  else {
    const pixelValue = values(ds, '7FE00010');
    const first = pixelValue[0];
    if (!(first instanceof ArrayBuffer)) throw dicosError('SCANLINE_ERR_DICOS_PARSE', 'the DX has no Pixel Data (7FE0,0010): a truncated or damaged file');
    pixelBytes = first;
  }
  // A native value of odd length is padded by one byte; anything else short or long is a damaged file.
  if (pixelBytes.byteLength !== expectedBytes && pixelBytes.byteLength !== expectedBytes + 1) {
    throw dicosError(
      'SCANLINE_ERR_DICOS_PARSE',
      `Pixel Data has ${pixelBytes.byteLength} bytes; ${rows} rows x ${columns} columns x 2 bytes = ${expectedBytes} (a truncated or damaged file)`,
    );
  }
  const pixels = new Uint16Array(pixelBytes.slice(0, expectedBytes));
  if (bitsStored < 16) {
    // Bits above Bits Stored are not part of the sample (PS3.5 8.1.1); mask them so they cannot leak in.
    const mask = (1 << bitsStored) - 1;
    for (let i = 0; i < pixels.length; i++) pixels[i] &= mask;
  }
  const spacing = nums(ds, '00600026');
  const pixelSpacing = spacing.length === 2 ? spacing : nums(ds, '00280030').length === 2 ? nums(ds, '00280030') : nums(ds, '00181164');
  return {
    ...common,
    kind: 'dx',
    presentationIntent: intent === 'FOR PRESENTATION' ? 'FOR PRESENTATION' : 'FOR PROCESSING',
    imageType,
    energy,
    rows,
    columns,
    bitsStored,
    photometricInterpretation,
    pixelSpacingMm: pixelSpacing.length === 2 && pixelSpacing[0] > 0 && pixelSpacing[1] > 0 ? [pixelSpacing[0], pixelSpacing[1]] : null,
    kvp: num(ds, '00180060'),
    pixels,
    scanlinePrivate: scanlinePrivate(ds),
  };
}

/** (0029,1000) of the private block whose creator (0029,0010) is Scanline's; text in explicit VR, bytes in implicit. */
function scanlinePrivate(ds: DenaturalizedDataset): string | null {
  const creator = values(ds, '00290010')[0];
  const creatorText = creator instanceof ArrayBuffer ? Buffer.from(creator).toString('latin1') : creator;
  if (typeof creatorText !== 'string' || creatorText.replace(/[\0 ]+$/, '') !== PRIVATE_CREATOR) return null;
  const value = values(ds, '00291000')[0];
  if (typeof value === 'string') return value;
  if (value instanceof ArrayBuffer)
    return Buffer.from(value)
      .toString('utf8')
      .replace(/[\0 ]+$/, '');
  return null;
}

async function decodeJpegLossless(ds: DenaturalizedDataset, bytes: Uint8Array, expectedBytes: number, rows: number, columns: number): Promise<ArrayBuffer> {
  const fragments = values(ds, '7FE00010').filter((v): v is ArrayBuffer => v instanceof ArrayBuffer);
  if (fragments.length === 0) throw dicosError('SCANLINE_ERR_DICOS_PARSE', 'the DX has no Pixel Data (7FE0,0010): a truncated or damaged file');
  // The codec decodes what it is given, even a stream cut short; a complete JPEG stream ends with EOI (FFD9),
  // possibly followed by one pad byte, so a missing EOI means a truncated file, refused rather than half-read.
  const last = new Uint8Array(fragments[fragments.length - 1]);
  let end = last.length;
  if (end > 0 && last[end - 1] === 0x00) end--;
  if (end < 2 || last[end - 2] !== 0xff || last[end - 1] !== 0xd9) {
    throw dicosError('SCANLINE_ERR_DICOS_PARSE', 'the JPEG Lossless pixel data does not end with an EOI marker (a truncated or damaged file)');
  }
  checkJpegFrame(new Uint8Array(fragments[0]), rows, columns);
  await ensureCodecs();
  let decoded: unknown;
  try {
    const transcoder = new codecs.Transcoder(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    transcoder.transcode(TransferSyntax.ExplicitVrLittleEndian);
    decoded = (transcoder.getElements() as { PixelData?: unknown }).PixelData;
  } catch (err) {
    throw dicosError('SCANLINE_ERR_DICOS_PARSE', `the JPEG Lossless pixel data cannot be decoded: ${(err as Error).message}`);
  }
  const frame = Array.isArray(decoded) ? decoded[0] : decoded;
  if (!(frame instanceof ArrayBuffer)) throw dicosError('SCANLINE_ERR_DICOS_PARSE', 'the JPEG Lossless pixel data decoded to nothing');
  if (frame.byteLength !== expectedBytes) {
    throw dicosError('SCANLINE_ERR_DICOS_PARSE', `the JPEG Lossless pixel data decoded to ${frame.byteLength} bytes; the image needs ${expectedBytes}`);
  }
  return frame;
}

/**
 * The JPEG stream's frame header (SOF3, lossless) must describe the image the data set does: one component of at
 * most 16 bits, Rows x Columns. Read before decoding, so a stream that would decode to another size (larger than
 * the data set says, or huge) is refused without being decoded.
 */
function checkJpegFrame(stream: Uint8Array, rows: number, columns: number): void {
  for (let i = 0; i + 9 < stream.length; i++) {
    if (stream[i] !== 0xff) continue;
    const marker = stream[i + 1];
    if (marker === 0xc3) {
      const precision = stream[i + 4];
      const height = (stream[i + 5] << 8) | stream[i + 6];
      const width = (stream[i + 7] << 8) | stream[i + 8];
      const components = stream[i + 9];
      if (precision > 16 || components !== 1 || height !== rows || width !== columns) {
        throw dicosError(
          'SCANLINE_ERR_DICOS_PARSE',
          `the JPEG Lossless frame is ${width} x ${height}, ${components} components of ${precision} bits; the data set says ${columns} x ${rows}, one 16-bit sample`,
        );
      }
      return;
    }
    // Other frame types (baseline, extended, progressive, hierarchical) are not Process 14.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      throw dicosError('SCANLINE_ERR_DICOS_PARSE', `the JPEG stream is not lossless (frame marker FF${marker.toString(16).toUpperCase()})`);
    }
    // Skip a marker segment with a length (everything from APPn to SOS headers); stand-alone markers have none.
    if (marker >= 0xc0 && marker !== 0xff && !(marker >= 0xd0 && marker <= 0xd9) && marker !== 0x01 && marker !== 0x00) {
      const length = (stream[i + 2] << 8) | stream[i + 3];
      i += 1 + length;
    }
  }
  throw dicosError('SCANLINE_ERR_DICOS_PARSE', 'the JPEG Lossless pixel data has no lossless frame header (SOF3)');
}

function readTdr(ds: DenaturalizedDataset, common: DicosCommon): DicosTdr {
  const referenced = new Set<string>();
  for (const item of items(ds, '00081110')) {
    const uid = str(item, '00081155');
    if (uid !== null) referenced.add(uid);
  }
  const ptos: DicosPto[] = items(ds, '40101011').map((pto) => {
    const assessment = items(pto, '40101038')[0] ?? {};
    const boxes: DicosPtoBox[] = [];
    for (const representation of items(pto, '40101037')) {
      const ref = items(representation, '0008114A')[0] ?? {};
      const refUid = str(ref, '00081155');
      if (refUid !== null) referenced.add(refUid);
      for (const roi of items(representation, '40101001')) {
        const base = nums(roi, '40101004');
        const extents = nums(roi, '40101005');
        if (base.length !== 3 || extents.length !== 3) {
          common.warnings.push(`PTO ${num(pto, '40101010') ?? '?'}: a Threat ROI without 3 base and 3 extent values is skipped`);
          continue;
        }
        boxes.push({
          referencedSopInstanceUid: refUid,
          referencedSopClassUid: str(ref, '00081150'),
          base: [base[0], base[1], base[2]],
          extents: [extents[0], extents[1], extents[2]],
        });
      }
    }
    return {
      id: num(pto, '40101010') ?? 0,
      category: str(assessment, '40101012'),
      description: str(assessment, '40101013'),
      assessmentFlag: str(assessment, '40101015'),
      abilityAssessment: str(assessment, '40101014'),
      probability: num(assessment, '40101016'),
      boxes,
    };
  });
  const operatorItem = items(ds, '00081072')[0];
  let operator: DicosTdr['operator'] = null;
  if (operatorItem !== undefined) {
    const code = items(operatorItem, '00401101')[0] ?? {};
    operator = { id: str(code, '00080100') ?? str(code, '00080119'), name: str(code, '00080104') };
  }
  return {
    ...common,
    kind: 'tdr',
    tdrType: str(ds, '40101027'),
    alarmDecision: str(ds, '40101031'),
    alarmDecisionTime: str(ds, '4010102B'),
    algorithm: values(ds, '40101029').map((v) => String(v).trim()),
    operator,
    totalProcessingTimeMs: num(ds, '40101069'),
    ptos,
    referencedSopInstanceUids: [...referenced],
  };
}
