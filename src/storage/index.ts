/** Storage stage: scan records (SQLite) and raw scan lines (files) in the data directory. */
export { ScanStore, RawWriter, DIRECT_IO_ALIGNMENT } from './scan-store.js';
export { MIGRATIONS, SCHEMA_VERSION, type Migration, type MigrationOutcome } from './migrations.js';
export type {
  ScanRecord,
  ScanEndPatch,
  ScanOrigin,
  StoredPush,
  ScanState,
  DetectorGeometry,
  ListScansQuery,
  ScanEmbeddings,
  StoredReference,
  StoredReferenceProposal,
  StoredDecision,
  ScanImageName,
  RawWriterOptions,
  RetentionRow,
} from './scan-store.js';
export { IdentityStore } from './identity-store.js';
export type { AccountRole, StoredAccount, StoredSession, StoredToken, StoredPortalIdentity, AuditEvent, StoredAuditEvent } from './identity-store.js';
export { GENESIS, auditEntryHash, decisionSeal, fileSha256, verifyIntegrity, type IntegrityReport } from './integrity.js';
export {
  ScanJournalWriter,
  parseJournal,
  readJournal,
  JOURNAL_FILE,
  JOURNAL_HEADER_BYTES,
  JournalRecordType,
  type JournalContents,
  type JournalFrame,
} from './scan-journal.js';
export { GroupCommitter, type CommitParticipant, type CommitWork, type GroupCommitStats, createGroupCommitStats } from './group-commit.js';
export {
  DiskMonitor,
  SpaceReserve,
  RESERVE_FILE,
  diskSampleSync,
  isDiskFull,
  openWithRoom,
  withReserve,
  type DiskSample,
  type DiskMonitorOptions,
} from './disk-space.js';
