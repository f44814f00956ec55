/** A scan's record as `ScanStore.createScan` takes it: a small dual-energy portal scan, still receiving. */
import type { ScanRecord } from '../../src/storage/index.js';

export function scanRecord(scanId: string, at: string, patch: Partial<ScanRecord> = {}): ScanRecord {
  return {
    scanId,
    portalId: 'lane-1',
    streamId: 1,
    state: 'receiving',
    detector: { pixels: 64, energies: 2, pitchMm: 4.4, lineRateHz: 500 },
    lines: 0,
    gaps: [],
    vehicle: null,
    declaration: null,
    startedAt: at,
    endedAt: null,
    updatedAt: at,
    reason: null,
    ...patch,
  };
}
