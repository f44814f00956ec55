/**
 * Scan access over HTTP:
 *   GET /v1/scans                     recent scans (live ones with their current line count)
 *   GET /v1/scans/:scanId             one scan
 *   GET /v1/scans/:scanId/image?energy=high|low&format=png16
 *                                     the stitched raw lines as a lossless 16-bit greyscale PNG,
 *                                     width = lines along the vehicle, height = detector pixels
 *   GET /v1/scans/:scanId/image?view=material|grey&format=webp|jpeg|png
 *                                     the pseudo-colour (or grey) view for people, overlays burned in
 *                                     (src/server/operator-image.ts)
 *   GET /v1/scans/:scanId/results     the machine results report (DICOS TDR-shaped; src/results), live while the
 *                                     scan is scored, stored once final
 */
import sharp from 'sharp';
import { ScanlineError } from '../errors/index.js';
import type { IngestService, ScanView } from '../ingest/index.js';
import type { Logger } from '../log/index.js';
import { literalUnion, SchemaValidator, Type } from '../schema/index.js';
import type { ReadAudit } from '../identity/index.js';
import type { ScanRecord, ScanStore, StoredDecision } from '../storage/index.js';
import type { ScanState } from '../protocol/index.js';
import { parseQuery } from './body.js';
import { badQuery, handleAsync, pathParameter } from './http.js';
import type { RenderedImageCache, RenderedImage } from './image-cache.js';
import type { ByteRate, RenderQueue } from './limits.js';
import { principalOf, type Routes } from './routes.js';
import type { HttpRequest, HttpResponse } from './uws.js';

/** GET /v1/scans?limit=&state=&portal=&before= */
export const ScanListQuerySchema = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 50, description: 'Most scans listed, newest first.' }),
  state: Type.Optional(literalUnion(['receiving', 'completed', 'aborted', 'interrupted'] satisfies ScanState[])),
  portal: Type.Optional(Type.String({ description: 'Only the scans of this portal.' })),
  before: Type.Optional(Type.String({ description: 'ISO 8601 time: only scans started before it (paging).' })),
});
const SCAN_LIST_QUERY = new SchemaValidator(ScanListQuerySchema);

/** GET /v1/scans/:scanId/image?energy=&format= (without view=: the raw lines of one energy). */
export const ScanImageQuerySchema = Type.Object({
  energy: literalUnion(['high', 'low'], { default: 'high', expected: '"high" or "low"' }),
  format: Type.Literal('png16', { default: 'png16', description: 'Lossless 16-bit greyscale PNG, the only raw format.' }),
});
const SCAN_IMAGE_QUERY = new SchemaValidator(ScanImageQuerySchema);

export interface ScanResource extends ScanRecord {
  /** The machine's stored advice (ALARM / CLEAR / UNKNOWN) once its results are final, else null. */
  alarmDecision: string | null;
  /** Officers' decisions, oldest first (the operator report; the machine report is at links.results). */
  decisions: StoredDecision[];
  links: { self: string; imageHigh: string; imageLow?: string; image: string; results: string; decision: string };
}

function view(record: ScanRecord, live: ScanView | undefined, decisions: StoredDecision[], alarmDecision: string | null): ScanResource {
  const id = encodeURIComponent(record.scanId);
  return {
    ...record,
    lines: live ? live.lines : record.lines,
    alarmDecision,
    decisions,
    links: {
      self: `/v1/scans/${id}`,
      imageHigh: `/v1/scans/${id}/image?energy=high&format=png16`,
      ...(record.detector.energies === 2 ? { imageLow: `/v1/scans/${id}/image?energy=low&format=png16` } : {}),
      image: `/v1/scans/${id}/image?view=material&format=webp`,
      results: `/v1/scans/${id}/results`,
      decision: `/v1/scans/${id}/decision`,
    },
  };
}

/** Renders the views for people (`view=` on the image route); src/server/operator-image.ts. */
export interface ScanImageRenderer {
  render(record: ScanRecord, query: URLSearchParams): Promise<{ contentType: string; body: Uint8Array; headers: Record<string, string> }>;
}

/** Where the results route reads reports: live ones from memory, final ones from the store. */
export interface ResultsSource {
  report(scanId: string): unknown;
}

/** Every scan route needs the viewer role (or above). */
export function registerScanRoutes(
  routes: Routes,
  log: Logger,
  ingest: IngestService,
  store: ScanStore,
  results: ResultsSource | undefined,
  images: ScanImageRenderer | undefined,
  /** Bounds renders running and waiting (server.maxConcurrentImages, server.maxQueuedImages). */
  renders: RenderQueue,
  /** Who looked at what: image and results reads go to the audit trail. */
  reads: ReadAudit,
  /** png16 images of ended scans, rendered once for concurrent requests and kept a while. */
  imageCache: RenderedImageCache,
  /** Bytes per second per client address for png16 images and DICOS files (server.imageBytesPerSecondPerAddress). */
  imageRate: ByteRate,
): void {
  routes.get('/v1/scans', 'viewer', (res: HttpResponse, req: HttpRequest) => {
    const q = new URLSearchParams(req.getQuery() ?? '');
    handleAsync(res, req, log, (out) => {
      const { limit, state, portal, before } = parseQuery(SCAN_LIST_QUERY, q);
      const records = store.listScans({
        limit,
        ...(portal !== undefined ? { portalId: portal } : {}),
        ...(state !== undefined ? { state } : {}),
        ...(before !== undefined ? { before } : {}),
      });
      const ids = records.map((r) => r.scanId);
      const decisions = store.listDecisionsOf(ids);
      const machine = store.machineDecisionsOf(ids);
      out.json(200, { scans: records.map((r) => view(r, ingest.getLiveScan(r.scanId), decisions.get(r.scanId) ?? [], machine.get(r.scanId) ?? null)) });
    });
  });

  routes.get('/v1/scans/:scanId', 'viewer', (res: HttpResponse, req: HttpRequest) => {
    const scanId = pathParameter(req, 0);
    handleAsync(res, req, log, (out) => {
      const record = store.getScan(scanId);
      if (!record) throw new ScanlineError('SCANLINE_ERR_SCAN_UNKNOWN', `no scan ${scanId}`, { scanId });
      out.json(200, view(record, ingest.getLiveScan(scanId), store.listDecisions(scanId), store.machineDecisionsOf([scanId]).get(scanId) ?? null));
    });
  });

  routes.get('/v1/scans/:scanId/results', 'viewer', (res: HttpResponse, req: HttpRequest, ctx) => {
    const scanId = pathParameter(req, 0);
    const reader = principalOf(ctx).account;
    handleAsync(res, req, log, (out) => {
      if (!store.hasScan(scanId)) throw new ScanlineError('SCANLINE_ERR_SCAN_UNKNOWN', `no scan ${scanId}`, { scanId });
      const report = results?.report(scanId);
      if (report === undefined) {
        throw new ScanlineError('SCANLINE_ERR_RESULTS_UNAVAILABLE', `scan ${scanId} has no machine results (it was received without inference)`, { scanId });
      }
      reads.read(reader, scanId, 'results', ctx.facts.address);
      out.json(200, report);
    });
  });

  routes.get('/v1/scans/:scanId/image', 'viewer', (res: HttpResponse, req: HttpRequest, ctx) => {
    const scanId = pathParameter(req, 0);
    const q = new URLSearchParams(req.getQuery() ?? '');
    const reader = principalOf(ctx).account;
    handleAsync(res, req, log, async (out) => {
      const record = store.getScan(scanId);
      if (!record) throw new ScanlineError('SCANLINE_ERR_SCAN_UNKNOWN', `no scan ${scanId}`, { scanId });
      if (q.get('view') !== null && images) {
        const image = await renders.run(ctx.facts.address, () => images.render(record, q));
        reads.read(reader, scanId, 'image', ctx.facts.address, { view: q.get('view') });
        // Paced like png16 when large (a whole truck's view is megabytes).
        out.send(200, image.contentType, image.body, image.headers, imageRate);
        return;
      }
      const { energy: energyName } = parseQuery(SCAN_IMAGE_QUERY, q);
      const { pixels, energies } = record.detector;
      if (energyName === 'low' && energies !== 2) throw badQuery('energy=low needs a dual-energy scan; this scan has one energy');
      const energy = energyName === 'high' ? 0 : 1;

      // Rendering waits for a slot (limits.ts). Once it has one, a live scan is read from its stitcher in that tick
      // (before it can close); an ended one from its file, with the record as it is then. The JS thread only reads
      // the bytes: picking the energy's plane and turning lines into columns (extract, rotate, flip) is libvips' work
      // off the event loop, where a 16-bit plane of a whole truck used to block it for tens of ms per image
      // (bench:security, 'Under attack'). An ended scan's image is rendered once for every request that wants it
      // meanwhile, and kept a while (image-cache.ts).
      const render = (): Promise<RenderedImage> =>
        renders.run(ctx.facts.address, async () => {
          const live = ingest.getLiveScan(scanId);
          const samplesPerLine = energies * pixels;
          let lines: number;
          let raw: Uint16Array;
          if (live) {
            lines = live.lines;
            raw = new Uint16Array(Buffer.allocUnsafe(lines * samplesPerLine * 2).buffer, 0, lines * samplesPerLine);
            if (lines > 0) live.readRaw(0, lines, raw);
          } else {
            lines = store.getScan(scanId)?.lines ?? record.lines;
            const bytes = lines > 0 ? await store.readRawFile(scanId) : Buffer.alloc(0);
            raw =
              bytes.byteLength >= lines * samplesPerLine * 2 && bytes.byteOffset % 2 === 0
                ? new Uint16Array(bytes.buffer, bytes.byteOffset, lines * samplesPerLine)
                : await store.readRaw(scanId, lines, samplesPerLine * 2); // a short file: the missing lines read as zeros
          }
          if (lines === 0) throw new ScanlineError('SCANLINE_ERR_IMAGE_UNAVAILABLE', `scan ${scanId} has no lines yet`, { scanId });
          // The lines as an image of `samplesPerLine` columns; the energy's columns; lines along x (transposed: sharp
          // mirrors before it rotates, so rotate(90) with a vertical flip is the transpose; the bit-exact image tests
          // hold it).
          const png = await sharp(raw, { raw: { width: samplesPerLine, height: lines, channels: 1 }, limitInputPixels: false })
            .extract({ left: energy * pixels, top: 0, width: pixels, height: lines })
            .rotate(90)
            .flip()
            .toColourspace('grey16')
            .png({ compressionLevel: 3 })
            .toBuffer();
          return { png, lines };
        });
      const ended = record.state !== 'receiving' && !ingest.getLiveScan(scanId);
      const { png, lines } = ended ? await imageCache.get(`${scanId}\n${energy}\n${record.lines}\n${record.updatedAt}`, render) : await render();
      reads.read(reader, scanId, 'image', ctx.facts.address, { energy: energyName, format: 'png16' });
      out.sendLarge(200, 'image/png', png, { 'X-Scanline-Lines': String(lines), 'X-Scanline-Energy': energyName }, imageRate);
    });
  });
}
