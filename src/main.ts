/**
 * Composition root: wires config → storage → ingest (with the native stitcher) → server, and owns the lifecycle.
 * Lifecycle phases: starting → ready → draining (no new scans, portals told) → closing (sockets, storage) → closed.
 */
import type { GatewayConfig } from './config/index.js';
import { IngestService } from './ingest/index.js';
import { createRootLogger, type Logger } from './log/index.js';
import { startHttpServer, type HttpServer } from './server/index.js';
import { isNativeStitcherAvailable } from './stitch/index.js';
import { ScanStore } from './storage/index.js';

export type GatewayPhase = 'starting' | 'ready' | 'draining' | 'closing' | 'closed';

export interface GatewayOptions {
  /** Root logger; by default one is made at config.log.level writing JSON to stdout. */
  log?: Logger;
  /** Stitcher implementation; 'typescript' is the benchmark baseline. */
  stitcher?: 'native' | 'typescript';
}

export interface Gateway {
  readonly config: GatewayConfig;
  readonly port: number;
  /** ws://host:port/v1/portal */
  readonly portalUrl: string;
  /** http://host:port */
  readonly httpUrl: string;
  readonly ingest: IngestService;
  readonly store: ScanStore;
  readonly log: Logger;
  phase(): GatewayPhase;
  /**
   * Graceful stop: refuse new scans and tell portals, give open scans up to `drainTimeoutMs` to end (then abort
   * them, keeping their lines), close sockets and storage.
   */
  close(drainTimeoutMs?: number): Promise<void>;
}

export async function startGateway(config: GatewayConfig, options: GatewayOptions = {}): Promise<Gateway> {
  const log = options.log ?? createRootLogger(config.log.level);
  let phase: GatewayPhase = 'starting';
  const stitcherKind = options.stitcher ?? 'native';
  if (stitcherKind === 'native' && !isNativeStitcherAvailable()) {
    // Loading again to surface the precise reason (SCANLINE_ERR_STITCH_ADDON_LOAD with path and cause).
    isNativeStitcherAvailable(true);
  }
  const store = ScanStore.open(config.storage.dataDir, log.child({ module: 'storage' }));
  const ingest = new IngestService({ config, store, log: log.child({ module: 'ingest' }), stitcher: stitcherKind });
  let server: HttpServer;
  try {
    server = await startHttpServer({
      config,
      ingest,
      store,
      log: log.child({ module: 'server' }),
      readiness: {
        stitcher: () => (stitcherKind === 'typescript' || isNativeStitcherAvailable() ? null : 'native stitcher addon not loaded'),
        storage: () => (store.isWritable() ? null : 'scan store is not writable'),
        phase: () => (phase === 'ready' ? null : `gateway is ${phase}`),
      },
    });
  } catch (err) {
    store.close();
    throw err;
  }
  const host = config.server.host === '0.0.0.0' ? '127.0.0.1' : config.server.host;
  const gateway: Gateway = {
    config,
    port: server.port,
    portalUrl: `ws://${host}:${server.port}/v1/portal`,
    httpUrl: `http://${host}:${server.port}`,
    ingest,
    store,
    log,
    phase: () => phase,
    async close(drainTimeoutMs = 10_000) {
      if (phase === 'closing' || phase === 'closed' || phase === 'draining') return;
      phase = 'draining';
      log.info({ openScans: ingest.liveScans().length, drainTimeoutMs }, 'draining: no new scans');
      server.stopListening();
      ingest.stopAccepting(drainTimeoutMs);
      await ingest.drain(drainTimeoutMs);
      phase = 'closing';
      server.closeAll();
      store.close();
      phase = 'closed';
      log.info('gateway closed');
    },
  };
  phase = 'ready';
  log.info({ host: config.server.host, port: server.port, dataDir: store.dataDir, stitcher: stitcherKind }, 'gateway ready');
  return gateway;
}
