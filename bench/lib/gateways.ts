/**
 * The two gateways the ingest bench compares, behind one small interface:
 *   (a) 'uws-native': the production composition root (src/main.ts startGateway): uWebSockets.js + native addon.
 *   (b) 'ws-typescript': the `ws` package (bench/lib/ws-transport.ts) + the pure-TypeScript reference stitcher.
 * Both use the same IngestService (protocol, seq/ack bookkeeping, raw archiving) and the same ScanStore (SQLite
 * records + raw line files written progressively) in a fresh temp directory that dispose() deletes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig, type GatewayConfig } from '../../src/config/index.js';
import { IngestService } from '../../src/ingest/index.js';
import { IdentityService } from '../../src/identity/index.js';
import { silentLogger } from '../../src/log/index.js';
import { startGateway } from '../../src/main.js';
import { IdentityStore, ScanStore } from '../../src/storage/index.js';
import { tsStitcher } from '../../test/helpers/ts-stitcher.js';
import { startWsTransport } from './ws-transport.js';

export type GatewayPath = 'uws-native' | 'ws-typescript' | 'uws-native-open' | 'uws-native-memory';

export const PATH_LABEL: Readonly<Record<GatewayPath, string>> = Object.freeze({
  'uws-native': '(a) uWS + addon',
  'ws-typescript': '(b) ws + TS stitcher',
  'uws-native-open': '(a) with identities and limits off',
  'uws-native-memory': "(a) acked in memory (portal.ackDurability 'memory')",
});

/**
 * bench:security's baseline: every portal admitted without a credential (an embedding's own PortalAuthenticator, not
 * a gateway setting) and the per-frame limits at their widest, so that (a) against this is what identities and
 * limits cost.
 */
const OPEN_PORTALS = { verifyPortal: () => 'open', portalStillValid: () => true };

export interface BenchGateway {
  readonly path: GatewayPath;
  readonly portalUrl: string;
  readonly ingest: IngestService;
  readonly dataDir: string;
  /** Credentials of the load generator's portals `bench-portal-0..n-1` (made on first use). */
  portalCredentials(n: number): Record<string, string>;
  /** Closes the gateway (open scans are aborted at once) and deletes its data directory. */
  dispose(): Promise<void>;
}

function benchConfig(dataDir: string): GatewayConfig {
  return resolveConfig({
    server: { host: '127.0.0.1', port: 0 },
    storage: { dataDir },
    log: { level: 'silent' },
    // The load generator disconnects mid-scan at the end of a run: abort those scans at once instead of waiting
    // for a scan.resume, so teardown does not depend on the drain timeout.
    portal: { resumeGraceMs: 0 },
  });
}

const credentialCache = new WeakMap<IdentityService, Map<string, string>>();

/** Portal identities `bench-portal-0..n-1` on a bench gateway, made once each. */
export function benchPortalCredentials(identity: IdentityService, n: number): Record<string, string> {
  let cache = credentialCache.get(identity);
  if (!cache) credentialCache.set(identity, (cache = new Map()));
  const out: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    const portalId = `bench-portal-${i}`;
    let c = cache.get(portalId);
    if (c === undefined) {
      c = identity.setPortalCredential(portalId, { name: 'bench', address: null }).credential;
      cache.set(portalId, c);
    }
    out[portalId] = c;
  }
  return out;
}

/** A program account `account` of `role` (viewer, metrics, ...) on a bench gateway and an API token of it. */
export function benchProgramToken(identity: IdentityService, account: string, role: string, label: string): string {
  const by = { name: 'bench', address: null };
  identity.addProgramAccount(account, role, by);
  return identity.createToken(account, { label }, by).token;
}

/** `dataParent`: where the data directory is made (default os.tmpdir()). */
export async function startBenchGateway(path: GatewayPath, dataParent: string = tmpdir()): Promise<BenchGateway> {
  const dataDir = mkdtempSync(join(dataParent, 'scanline-bench-ingest-'));
  const config = benchConfig(dataDir);
  const log = silentLogger();
  const removeDir = () => rmSync(dataDir, { recursive: true, force: true });
  try {
    if (path === 'uws-native' || path === 'uws-native-open' || path === 'uws-native-memory') {
      const open = path === 'uws-native-open';
      const gateway = await startGateway(
        open
          ? resolveConfig(config, { portal: { maxMissingLines: 16_777_216, scanBufferBudgetBytes: 2 ** 45, maxOpenScansTotal: 100_000 } })
          : path === 'uws-native-memory'
            ? resolveConfig(config, { portal: { ackDurability: 'memory' } })
            : config,
        { log, ...(open ? { portalAuthenticator: OPEN_PORTALS } : {}) },
      );
      return {
        path,
        portalUrl: gateway.portalUrl,
        ingest: gateway.ingest,
        dataDir,
        portalCredentials: (n) => benchPortalCredentials(gateway.identity, n),
        async dispose() {
          await gateway.close(1_000);
          removeDir();
        },
      };
    }
    const store = ScanStore.open(dataDir, log);
    const identityStore = IdentityStore.open(dataDir);
    const identity = new IdentityService({ store: identityStore, config: config.auth, log });
    const ingest = new IngestService({ config, store, log, stitcher: tsStitcher, portals: identity });
    const transport = await startWsTransport(config, ingest);
    return {
      path,
      portalUrl: transport.portalUrl,
      ingest,
      dataDir,
      portalCredentials: (n) => benchPortalCredentials(identity, n),
      async dispose() {
        ingest.stopAccepting(1_000);
        await transport.close();
        await ingest.drain(1_000);
        store.close();
        identityStore.close();
        removeDir();
      },
    };
  } catch (err) {
    removeDir();
    throw err;
  }
}
