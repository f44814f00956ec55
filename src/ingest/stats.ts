/**
 * Plain counters the ingest stage bumps on its hot path (no allocation, no label lookup per slice).
 * The metrics stage reads them at scrape time.
 */
export interface IngestStats {
  connectionsOpened: number;
  connectionsClosed: number;
  framesReceived: number;
  /** Image slices (kind 1) stored; calibration frames are counted in framesReceived only. */
  slicesReceived: number;
  linesReceived: number;
  bytesReceived: number;
  duplicateFrames: number;
  /** Protocol errors sent to portals, by code. */
  errorsByCode: Map<string, number>;
  scansStarted: number;
  scansCompleted: number;
  scansAborted: number;
  scansResumed: number;
  stitchJobs: number;
  stitchSeconds: number;
  tilesProduced: number;
  storageWrites: number;
  storageWriteSeconds: number;
  storageBytes: number;
  storageFailures: number;
}

export function createIngestStats(): IngestStats {
  return {
    connectionsOpened: 0,
    connectionsClosed: 0,
    framesReceived: 0,
    slicesReceived: 0,
    linesReceived: 0,
    bytesReceived: 0,
    duplicateFrames: 0,
    errorsByCode: new Map(),
    scansStarted: 0,
    scansCompleted: 0,
    scansAborted: 0,
    scansResumed: 0,
    stitchJobs: 0,
    stitchSeconds: 0,
    tilesProduced: 0,
    storageWrites: 0,
    storageWriteSeconds: 0,
    storageBytes: 0,
    storageFailures: 0,
  };
}
