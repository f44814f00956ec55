/**
 * What the ingest stage tells the downstream stages (inference, operator screens, metrics).
 * Listeners run synchronously on the gateway thread; the buffers they receive are valid only during the call
 * (the next stitcher job overwrites them), so a listener copies what it keeps.
 */
import type { PreviewStrip, TileInfo } from '../stitch/index.js';
import type { ActiveScan } from './active-scan.js';

export interface IngestListeners {
  scanStarted?(scan: ActiveScan): void;
  tiles?(scan: ActiveScan, tiles: TileInfo[], buffer: Float32Array, tileFloats: number): void;
  preview?(scan: ActiveScan, strip: PreviewStrip, rgba: Uint8Array): void;
  scanCompleted?(scan: ActiveScan): void;
  scanAborted?(scan: ActiveScan, reason: string): void;
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

  emitStarted(scan: ActiveScan): void {
    for (const l of this.listeners) this.call('scanStarted', () => l.scanStarted?.(scan));
  }
  emitTiles(scan: ActiveScan, tiles: TileInfo[], buffer: Float32Array, tileFloats: number): void {
    for (const l of this.listeners) this.call('tiles', () => l.tiles?.(scan, tiles, buffer, tileFloats));
  }
  emitPreview(scan: ActiveScan, strip: PreviewStrip, rgba: Uint8Array): void {
    for (const l of this.listeners) this.call('preview', () => l.preview?.(scan, strip, rgba));
  }
  emitCompleted(scan: ActiveScan): void {
    for (const l of this.listeners) this.call('scanCompleted', () => l.scanCompleted?.(scan));
  }
  emitAborted(scan: ActiveScan, reason: string): void {
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
