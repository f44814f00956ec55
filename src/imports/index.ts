/** Imports stage: images from installed scanners (DICOS DX) fed to the pipeline as an in-process portal (docs/dicos.md). */
export { ImportConfigSchema, type ImportConfig } from './config.js';
export {
  ImportService,
  linesOf,
  type DicosImportRequest,
  type ImportOutcome,
  type ImportSender,
  type ImportServiceOptions,
  type ImportStats,
} from './import-service.js';
