/**
 * DICOS out over HTTP:
 *   GET /v1/scans/:scanId/dicos   (role viewer) -> application/zip of the scan's DICOS objects (src/dicos
 *                                 scan-export.ts): DX For Processing per energy, DX For Presentation, the MACHINE
 *                                 TDR and one OPERATOR TDR per decision; audited as a read of the scan.
 * Only ended scans are written: a scan still receiving, or whose results are still being scored, gets 409
 * SCANLINE_ERR_DICOS_NOT_FINAL. Building and zipping wait for a render slot (server.maxConcurrentImages), so a flood
 * of exports cannot take the gateway's memory.
 */
import { zip } from 'fflate';
import { buildScanExport, type MaterialThresholds } from '../dicos/index.js';
import { ScanlineError } from '../errors/index.js';
import type { ReadAudit } from '../identity/index.js';
import type { IngestService } from '../ingest/index.js';
import type { Logger } from '../log/index.js';
import type { ScanResultsReport } from '../protocol/index.js';
import { readJournal, type ScanStore } from '../storage/index.js';
import { handleAsync, pathParameter } from './http.js';
import type { ByteRate, RenderQueue } from './limits.js';
import { principalOf, type Routes } from './routes.js';
import type { HttpRequest, HttpResponse } from './uws.js';

export interface DicosRouteOptions {
  ingest: IngestService;
  store: ScanStore;
  /** Reports of scans (live from memory, final from the store); absent without inference. */
  results: { report(scanId: string): unknown } | undefined;
  renders: RenderQueue;
  /** Bytes per second per client address for the files (server.imageBytesPerSecondPerAddress). */
  imageRate: ByteRate;
  reads: ReadAudit;
  machine: { machineId: string; version: string };
  institution: string | null;
  airLines: number;
  /** stitch.material: the material view is coloured as the stitcher colours. */
  material: MaterialThresholds;
  log: Logger;
}

function zipFiles(files: Record<string, Uint8Array>): Promise<Uint8Array> {
  // fflate compresses in worker threads when asked asynchronously: the event loop only hands the buffers over.
  return new Promise((resolve, reject) => zip(files, { level: 6, consume: true }, (err, data) => (err ? reject(err) : resolve(data))));
}

export function registerDicosRoutes(routes: Routes, o: DicosRouteOptions): void {
  routes.get('/v1/scans/:scanId/dicos', 'viewer', (res: HttpResponse, req: HttpRequest, ctx) => {
    const scanId = pathParameter(req, 0);
    const reader = principalOf(ctx).account;
    handleAsync(res, req, o.log, async (out) => {
      const record = o.store.getScan(scanId);
      if (!record) throw new ScanlineError('SCANLINE_ERR_SCAN_UNKNOWN', `no scan ${scanId}`, { scanId });
      if (record.state === 'receiving' || o.ingest.getLiveScan(scanId)) {
        throw new ScanlineError('SCANLINE_ERR_DICOS_NOT_FINAL', `scan ${scanId} is still receiving lines; DICOS is written once it has ended`, {
          scanId,
          retryAfterSec: 5,
        });
      }
      const report = (o.results?.report(scanId) as ScanResultsReport | undefined) ?? null;
      if (report !== null && report.status !== 'final') {
        throw new ScanlineError('SCANLINE_ERR_DICOS_NOT_FINAL', `the results of scan ${scanId} are still being scored`, { scanId, retryAfterSec: 2 });
      }
      const body = await o.renders.run(ctx.facts.address, async () => {
        const { pixels, energies } = record.detector;
        const raw = await o.store.readRaw(scanId, record.lines, pixels * energies * 2);
        const journal = readJournal(o.store.journalPath(scanId));
        const files = buildScanExport({
          record,
          raw,
          calibration: journal?.frames.filter((f) => f.payload !== null) ?? [],
          airLines: o.airLines,
          report,
          decisions: o.store.listDecisions(scanId),
          machine: o.machine,
          institution: o.institution,
          material: o.material,
        });
        return zipFiles(Object.fromEntries(files.map((f) => [f.name, f.bytes])));
      });
      o.reads.read(reader, scanId, 'dicos', ctx.facts.address);
      out.sendLarge(200, 'application/zip', body, { 'Content-Disposition': `attachment; filename="${scanId}-dicos.zip"` }, o.imageRate);
    });
  });
}
