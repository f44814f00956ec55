/**
 * Starts a real gateway on 127.0.0.1 with a fresh data directory for one test file. Inference is off unless the
 * test turns it on (`inference: { enabled: true }`): ingest tests need no models and start faster without them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig, type GatewayConfigInput } from '../../src/config/index.js';
import { silentLogger } from '../../src/log/index.js';
import { startGateway, type Gateway, type GatewayOptions } from '../../src/main.js';

export interface TestGateway extends Gateway {
  dataDir: string;
  /** Closes the gateway and removes its data directory. */
  dispose(): Promise<void>;
}

export async function startTestGateway(config: GatewayConfigInput = {}, options: GatewayOptions = {}, dataDir?: string): Promise<TestGateway> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'scanline-test-'));
  const gateway = await startGateway(
    resolveConfig({ server: { host: '127.0.0.1', port: 0 }, storage: { dataDir: dir }, log: { level: 'silent' }, inference: { enabled: false } }, config),
    { log: silentLogger(), ...options },
  );
  return Object.assign(gateway, {
    dataDir: dir,
    async dispose() {
      await gateway.close(2_000);
      if (!dataDir) rmSync(dir, { recursive: true, force: true });
    },
  });
}

export async function getJson(gateway: Gateway, path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${gateway.httpUrl}${path}`);
  return { status: res.status, body: await res.json() };
}
