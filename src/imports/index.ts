/** Imports stage: images from installed scanners (DICOS DX) fed to the pipeline as an in-process portal (docs/dicos.md). */
export {
  ImportService,
  linesOf,
  type DicosImportRequest,
  type ImportOutcome,
  type ImportSender,
  type ImportSlot,
  type ImportServiceOptions,
  type ImportStats,
} from './import-service.js';
export { DicosListener, type DicosListenerOptions, type DicosListenerStats } from './dicos-listener.js';
export { WatchFolder, type WatchFolderOptions } from './watch-folder.js';
export { ImageSidecarSchema, parseSidecar, readImageFile, type ImageSidecar } from './image-file.js';
