/** Ingest stage: portal protocol v1, portal connections, live scans and the events they feed downstream. */
export { type IngestConfig, type PortalConfig, PortalConfigSchema } from './config.js';
export { IngestService, type IngestServiceOptions, type PortalAuthenticator } from './ingest-service.js';
export { PortalConnection, CloseCode, type PortalChannel } from './portal-connection.js';
export type { ActiveScanState, IngestListeners, ScanView } from './events.js';
export {
  STITCH_SECONDS_BUCKETS,
  STORAGE_WRITE_SECONDS_BUCKETS,
  type IngestStats,
  type PortalIngestStats,
} from './stats.js';
