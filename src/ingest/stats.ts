/**
 * Plain counters the ingest stage bumps on its hot path (no allocation, no label lookup per slice).
 * The metrics stage reads them at scrape time.
 *
 * Per-portal counters live in `portals`, one object per portal id, looked up once per connection (at hello) and
 * once per scan, never per slice. The map holds at most `portalLimit` ids (a bounded label set for metrics);
 * portals beyond that share the OTHER_PORTALS entry, and frames received before hello count under NO_PORTAL.
 */
import { createHistogram, type HistogramCounts, portalEntry } from '../metrics/index.js';
import { createGroupCommitStats, type GroupCommitStats } from '../storage/index.js';

/** Upper bounds of the stitch job duration buckets (one stitcher.process() job, JS thread to result), seconds. */
export const STITCH_SECONDS_BUCKETS: readonly number[] = Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]);
/** Upper bounds of the raw archive write buckets (one positioned write of about 1 MiB), seconds. */
export const STORAGE_WRITE_SECONDS_BUCKETS: readonly number[] = Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]);

/** Upper bounds of the ack delay buckets (a frame's arrival to its durable ack), seconds. */
export const ACK_DELAY_SECONDS_BUCKETS: readonly number[] = Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]);

export interface PortalIngestStats {
  /** Open connections of this portal (hello accepted, not closed). */
  connections: number;
  framesReceived: number;
  /** Image slices (kind 1) stored. */
  slicesReceived: number;
  linesReceived: number;
  bytesReceived: number;
  duplicateFrames: number;
  scansStarted: number;
  scansCompleted: number;
  scansAborted: number;
  tilesProduced: number;
  /** Lines of ended scans that were never received (their final gaps), lines. */
  gapLines: number;
}

export interface IngestStats {
  connectionsOpened: number;
  connectionsClosed: number;
  /** Connections closed for portal.maxSparseRefusals frames refused SCANLINE_ERR_LIMIT_SPARSE in a row. */
  sparseCutOffs: number;
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
  /** Per stitcher job, seconds (count = stitchJobs, sum = stitchSeconds). */
  stitchJobSeconds: HistogramCounts;
  tilesProduced: number;
  storageWrites: number;
  storageWriteSeconds: number;
  /** Per raw archive write, seconds (count = storageWrites, sum = storageWriteSeconds). */
  storageWriteLatency: HistogramCounts;
  storageBytes: number;
  /** Of storageBytes, those written with O_DIRECT (bypassing the page cache; storage.directIo). */
  storageDirectBytes: number;
  storageFailures: number;
  /** Per frame acknowledged with disk durability, from its arrival to its ack (journal and lines synced), seconds. */
  ackDelay: HistogramCounts;
  /** The group committer's cycles and syncs (src/storage GroupCommitter). */
  commits: GroupCommitStats;
  /** Scans rebuilt from their journal at start, and lines recovered with them. */
  scansRecovered: number;
  linesRecovered: number;
  /** Lines of ended scans that were never received (their final gaps), lines. */
  gapLines: number;
  /** By portal id (at most portalLimit ids plus NO_PORTAL and OTHER_PORTALS). */
  portals: Map<string, PortalIngestStats>;
  /** Distinct portal ids tracked in `portals`. */
  portalLimit: number;
}

export function createPortalIngestStats(): PortalIngestStats {
  return {
    connections: 0,
    framesReceived: 0,
    slicesReceived: 0,
    linesReceived: 0,
    bytesReceived: 0,
    duplicateFrames: 0,
    scansStarted: 0,
    scansCompleted: 0,
    scansAborted: 0,
    tilesProduced: 0,
    gapLines: 0,
  };
}

/** `portalLimit`: distinct portal ids counted separately (config metrics.portalLabelLimit). */
export function createIngestStats(portalLimit = 256): IngestStats {
  return {
    connectionsOpened: 0,
    connectionsClosed: 0,
    sparseCutOffs: 0,
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
    stitchJobSeconds: createHistogram(STITCH_SECONDS_BUCKETS),
    tilesProduced: 0,
    storageWrites: 0,
    storageWriteSeconds: 0,
    storageWriteLatency: createHistogram(STORAGE_WRITE_SECONDS_BUCKETS),
    storageBytes: 0,
    storageDirectBytes: 0,
    storageFailures: 0,
    ackDelay: createHistogram(ACK_DELAY_SECONDS_BUCKETS),
    commits: createGroupCommitStats(),
    scansRecovered: 0,
    linesRecovered: 0,
    gapLines: 0,
    portals: new Map(),
    portalLimit,
  };
}

/**
 * The counters of `portalId` (NO_PORTAL before hello), created on first use; OTHER_PORTALS once `portalLimit`
 * distinct ids are tracked. Call once per connection or scan, not per frame.
 */
export function portalStatsOf(stats: IngestStats, portalId: string): PortalIngestStats {
  return portalEntry(stats.portals, portalId, stats.portalLimit, createPortalIngestStats);
}
