/**
 * A real IdentityService on a data directory, for tests that build stages by hand (an IngestService without a
 * gateway). close() closes its database connection.
 */
import { resolveConfig } from '../../src/config/index.js';
import { IdentityService } from '../../src/identity/index.js';
import { silentLogger } from '../../src/log/index.js';
import { IdentityStore } from '../../src/storage/index.js';

export interface TestIdentity {
  identity: IdentityService;
  /** A portal credential, made on first use. */
  portalCredential(portalId: string): string;
  close(): void;
}

export function openTestIdentity(dataDir: string): TestIdentity {
  const store = IdentityStore.open(dataDir);
  const identity = new IdentityService({ store, config: resolveConfig({}).auth, log: silentLogger() });
  const made = new Map<string, string>();
  return {
    identity,
    portalCredential(portalId) {
      let c = made.get(portalId);
      if (c === undefined) made.set(portalId, (c = identity.setPortalCredential(portalId, { name: 'test', address: null }).credential));
      return c;
    },
    close: () => store.close(),
  };
}
