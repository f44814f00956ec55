/**
 * What the ingest stage tells the downstream stages (inference, operator screens, metrics).
 * Listeners run synchronously on the gateway thread; the buffers they receive are valid only during the call
 * (the next stitcher job overwrites them), so a listener copies what it keeps.
 */
import type { Declaration, DetectorInfo, VehicleInfo } from '../protocol/index.js';
import type { PreviewStrip, TileInfo } from '../stitch/index.js';

/** receiving: lines arrive; finishing: scan.end came, the last jobs and the archive flush run; then ended. */
export type ActiveScanState = 'receiving' | 'finishing' | 'completed' | 'aborted';

/**
 * What the stages downstream of ingest (results, operator screens, the HTTP API, metrics) see of a live scan: its
 * facts and read-only reads. The state machine (frames, resume, end, abort) stays with ingest: a downstream stage
 * cannot move a scan, only observe it.
 */
export interface ScanView {
  readonly scanId: string;
  readonly portalId: string;
  readonly detector: Readonly<DetectorInfo>;
  readonly vehicle: Readonly<VehicleInfo> | null;
  readonly declaration: Readonly<Declaration> | null;
  readonly startedAt: Date;
  readonly state: ActiveScanState;
  /** Lines received so far: 1 + the highest line stored (the total once scan.end came). */
  readonly lines: number;
  /**
   * Set when the scan was rebuilt from its journal after the gateway stopped without closing it (a crash): when, and
   * how many lines were recovered. Null for a scan received in one run.
   */
  readonly recovered: { readonly at: Date; readonly lines: number } | null;
  /** When `line` arrived (performance.now(), ms), NaN before; for line-to-result latency. */
  lineReceivedAt(line: number): number;
  /** Copies stored raw lines [firstLine, firstLine + lineCount) into `out` (line-major, energies interleaved). */
  readRaw(firstLine: number, lineCount: number, out: Uint16Array): void;
}

export interface IngestListeners {
  scanStarted?(scan: ScanView): void;
  tiles?(scan: ScanView, tiles: TileInfo[], buffer: Float32Array, tileFloats: number): void;
  preview?(scan: ScanView, strip: PreviewStrip, rgba: Uint8Array): void;
  scanCompleted?(scan: ScanView): void;
  scanAborted?(scan: ScanView, reason: string): void;
}

/** Fans ingest events out to listeners; a throwing listener is logged by the caller-supplied handler and skipped. */
export class IngestEventSink {
  private readonly listeners: IngestListeners[] = [];

  constructor(private readonly onListenerError: (err: unknown, event: string) => void) {}

  add(listener: IngestListeners): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  emitStarted(scan: ScanView): void {
    for (const l of this.listeners) this.call('scanStarted', () => l.scanStarted?.(scan));
  }
  emitTiles(scan: ScanView, tiles: TileInfo[], buffer: Float32Array, tileFloats: number): void {
    for (const l of this.listeners) this.call('tiles', () => l.tiles?.(scan, tiles, buffer, tileFloats));
  }
  emitPreview(scan: ScanView, strip: PreviewStrip, rgba: Uint8Array): void {
    for (const l of this.listeners) this.call('preview', () => l.preview?.(scan, strip, rgba));
  }
  emitCompleted(scan: ScanView): void {
    for (const l of this.listeners) this.call('scanCompleted', () => l.scanCompleted?.(scan));
  }
  emitAborted(scan: ScanView, reason: string): void {
    for (const l of this.listeners) this.call('scanAborted', () => l.scanAborted?.(scan, reason));
  }

  private call(event: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.onListenerError(err, event);
    }
  }
}
