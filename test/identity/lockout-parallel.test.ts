/**
 * Sign-ins sent in parallel cannot have more passwords checked than auth.loginMaxFailures before the lockout
 * applies: each attempt counts as a failure from the moment it arrives (the hash takes ~0.1 s), and only a success
 * clears the count. Found by review: before, 16 parallel guesses were all checked and one right guess cleared the lock.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/index.js';
import type { ScanlineError } from '../../src/errors/index.js';
import { IdentityService } from '../../src/identity/index.js';
import { silentLogger } from '../../src/log/index.js';
import { IdentityStore } from '../../src/storage/index.js';

describe('sign-in lockout under parallel attempts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scanline-lockout-'));
  const store = IdentityStore.open(dir);
  afterAll(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('checks at most loginMaxFailures passwords of a burst and locks the rest', async () => {
    const identity = new IdentityService({ store, config: resolveConfig({}).auth, log: silentLogger() });
    await identity.addAccount('alice', 'officer', 'the right password', { name: 'test', address: null });
    const outcomes = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        identity.signIn('alice', i === 15 ? 'the right password' : `guess number ${i}`, '10.0.0.9').then(
          () => 'ok',
          (err: ScanlineError) => err.code,
        ),
      ),
    );
    const checked = outcomes.filter((o) => o !== 'SCANLINE_ERR_AUTH_LOCKED');
    expect(checked.length).toBe(5);
    expect(outcomes.filter((o) => o === 'SCANLINE_ERR_AUTH_LOCKED')).toHaveLength(11);
    // The right password came last, in the locked part: the lock holds.
    expect(outcomes.at(-1)).toBe('SCANLINE_ERR_AUTH_LOCKED');
    await expect(identity.signIn('alice', 'the right password', '10.0.0.9')).rejects.toMatchObject({ code: 'SCANLINE_ERR_AUTH_LOCKED' });
  });
});
