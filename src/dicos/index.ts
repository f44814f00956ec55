/** DICOS (NEMA IIC 1): reading DX images and Threat Detection Reports, writing them for a scan (docs/dicos.md). */
export { SopClass, SOP_CLASS_NAMES, TransferSyntax, TRANSFER_SYNTAX_NAMES, READABLE_TRANSFER_SYNTAXES } from './dictionary.js';
export {
  readDicos,
  type ReadLimits,
  MAX_DX_PIXELS,
  MAX_DX_SIDE,
  type DicosCommon,
  type DicosDx,
  type DicosObject,
  type DicosPto,
  type DicosPtoBox,
  type DicosTdr,
  type DxEnergy,
} from './read.js';
export { newUid, isValidUid } from './uid.js';
export {
  writeDx,
  writeTdr,
  writePaletteDx,
  type PaletteDxWriteInput,
  dicomDate,
  dicomTime,
  dicomDateTime,
  IMPLEMENTATION_CLASS_UID,
  type DicosInspection,
  type DicosReference,
  type DxWriteInput,
  type TdrPtoInput,
  type TdrWriteInput,
} from './write.js';
export { buildScanExport, derivedUid, energyImage, threatCategoryOf, type DicosFile, type MaterialThresholds, type ScanExportInput } from './scan-export.js';
