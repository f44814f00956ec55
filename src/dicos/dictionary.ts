/**
 * DICOS identifiers: SOP classes, transfer syntaxes and the attributes dcmjs' dictionary lacks.
 *
 * DICOS (NEMA IIC 1) is DICOM with security-screening IODs. dcmjs' dictionary already knows most DICOS attributes
 * (they are in DICOM PS3.6 group 4010); the ones it lacks are registered here once, at import of this module, so that
 * implicit-VR files get the right VR and written datasets keep them (dcmjs drops keywords it does not know).
 */
import { createRequire } from 'node:module';
import dcmjs from 'dcmjs';

export const SopClass = {
  /** DICOS Digital X-Ray Image Storage - For Presentation. */
  DxForPresentation: '1.2.840.10008.5.1.4.1.1.501.2.1',
  /** DICOS Digital X-Ray Image Storage - For Processing. */
  DxForProcessing: '1.2.840.10008.5.1.4.1.1.501.2.2',
  /** DICOS Threat Detection Report Storage. */
  ThreatDetectionReport: '1.2.840.10008.5.1.4.1.1.501.3',
  /** DICOS CT Image Storage (recognised, not read). */
  Ct: '1.2.840.10008.5.1.4.1.1.501.1',
  /** DICOS 2D AIT Storage (recognised, not read). */
  Ait2d: '1.2.840.10008.5.1.4.1.1.501.4',
  /** DICOS 3D AIT Storage (recognised, not read). */
  Ait3d: '1.2.840.10008.5.1.4.1.1.501.5',
  /** DICOS Quadrupole Resonance Storage (recognised, not read). */
  Qr: '1.2.840.10008.5.1.4.1.1.501.6',
} as const;

export const SOP_CLASS_NAMES: Readonly<Record<string, string>> = {
  [SopClass.DxForPresentation]: 'DICOS DX For Presentation',
  [SopClass.DxForProcessing]: 'DICOS DX For Processing',
  [SopClass.ThreatDetectionReport]: 'DICOS Threat Detection Report',
  [SopClass.Ct]: 'DICOS CT Image',
  [SopClass.Ait2d]: 'DICOS 2D AIT',
  [SopClass.Ait3d]: 'DICOS 3D AIT',
  [SopClass.Qr]: 'DICOS Quadrupole Resonance',
};

export const TransferSyntax = {
  ImplicitVrLittleEndian: '1.2.840.10008.1.2',
  ExplicitVrLittleEndian: '1.2.840.10008.1.2.1',
  /** JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14, Selection Value 1). */
  JpegLosslessSv1: '1.2.840.10008.1.2.4.70',
} as const;

export const TRANSFER_SYNTAX_NAMES: Readonly<Record<string, string>> = {
  [TransferSyntax.ImplicitVrLittleEndian]: 'Implicit VR Little Endian',
  [TransferSyntax.ExplicitVrLittleEndian]: 'Explicit VR Little Endian',
  [TransferSyntax.JpegLosslessSv1]: 'JPEG Lossless, Process 14, Selection Value 1',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian (retired)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless, Process 14',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
};

/** Transfer syntaxes Scanline reads. */
export const READABLE_TRANSFER_SYNTAXES: readonly string[] = [
  TransferSyntax.ExplicitVrLittleEndian,
  TransferSyntax.ImplicitVrLittleEndian,
  TransferSyntax.JpegLosslessSv1,
];

/** DICOS attributes (NEMA IIC 1) missing from dcmjs' dictionary. */
const DICOS_EXTRA_ATTRIBUTES: ReadonlyArray<[tag: string, vr: string, vm: string, keyword: string]> = [
  ['(0060,0026)', 'FL', '2', 'ReportedPixelSpacing'],
  ['(4010,1080)', 'DT', '1', 'PTOProcessingStartTime'],
  ['(4010,1081)', 'DT', '1', 'PTOProcessingEndTime'],
  ['(4010,1082)', 'FL', '1', 'PTOProcessingTotalTime'],
  ['(6100,0024)', 'CS', '1', 'SeriesView'],
  ['(6100,0028)', 'US', '1', 'NumberOfViews'],
  ['(6100,0030)', 'US', '1', 'SeriesEnergy'],
  ['(6100,0031)', 'LO', '1', 'SeriesEnergyDescription'],
  ['(6100,0032)', 'US', '1', 'NumberOfEnergies'],
  // Scanline's private block (creator "SCANLINE 1" at 0029,0010): named so that dcmjs keeps it when a data set is
  // naturalized and written again (dcmjs-dimse does so for every C-STORE it sends), instead of dropping it.
  ['(0029,0010)', 'LO', '1', 'ScanlinePrivateCreator'],
  ['(0029,1000)', 'UT', '1', 'ScanlinePrivateData'],
];

let registered = false;

/**
 * Adds the DICOS attributes dcmjs lacks to its dictionary (idempotent; the dictionary is process-wide). dcmjs ships
 * an ES module and a CommonJS build, which Node loads as two instances with two dictionaries: Scanline imports the
 * first, dcmjs-dimse and dcmjs-codecs require the second, so both get the entries.
 */
export function registerDicosDictionary(): void {
  if (registered) return;
  registered = true;
  const required = createRequire(import.meta.url)('dcmjs') as typeof dcmjs;
  for (const instance of new Set([dcmjs, required])) {
    const dict = instance.data.DicomMetaDictionary;
    for (const [tag, vr, vm, name] of DICOS_EXTRA_ATTRIBUTES) {
      if (dict.dictionary[tag] !== undefined) continue;
      const entry = { tag, vr, vm, name, version: 'DICOS' };
      dict.dictionary[tag] = entry;
      dict.nameMap[name] = entry;
    }
    // dcmjs reports tolerated oddities on the console; the reader reports what matters as errors and warnings itself.
    instance.log.setLevel('silent');
  }
}
registerDicosDictionary();
