/** Storage stage: scan records (SQLite) and raw scan lines (files) in the data directory. */
export { ScanStore, RawWriter } from './scan-store.js';
export type { ScanRecord, ScanState, DetectorGeometry, ListScansQuery, ScanEmbeddings, StoredReference, StoredDecision, ScanImageName } from './scan-store.js';
