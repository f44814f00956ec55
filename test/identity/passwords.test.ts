/**
 * Password hashes (src/identity/passwords.ts): a hash round trips, a wrong password does not verify, the stored
 * format names its scrypt parameters and a random salt, the parameters are read back from the hash (so they can be
 * raised later), Unicode is compared in NFC, and a hash that is malformed or asks for absurd work is refused
 * (false, without throwing and without hashing).
 */
import { scryptSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword } from '../../src/identity/index.js';

const HASH_FORMAT = /^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/;
const SALT = Buffer.alloc(16, 7).toString('base64url');
const KEY = Buffer.alloc(32, 9).toString('base64url');

/** A hash of `password` with the parameters given, made without the code under test. */
function hashWith(password: string, n: number, r: number, p: number): string {
  const salt = Buffer.from('0123456789abcdef');
  const key = scryptSync(password, salt, 32, { N: n, r, p, maxmem: 256 * n * r });
  return `scrypt$${n}$${r}$${p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

describe('hashPassword / verifyPassword', () => {
  it('verifies the password a hash was made from, and refuses a wrong one', async () => {
    const stored = await hashPassword('correct horse battery');
    expect(await verifyPassword('correct horse battery', stored)).toBe(true);
    expect(await verifyPassword('correct horse battery ', stored)).toBe(false);
    expect(await verifyPassword('Correct horse battery', stored)).toBe(false);
    expect(await verifyPassword('', stored)).toBe(false);
  });

  it('stores scrypt$N$r$p$salt$key with N=2^15, r=8, p=1, a 16-byte salt and a 32-byte key (base64url)', async () => {
    const stored = await hashPassword('a password of some length');
    expect(stored).toMatch(HASH_FORMAT);
    const [, , , , salt, key] = stored.split('$');
    expect(Buffer.from(salt, 'base64url')).toHaveLength(16);
    expect(Buffer.from(key, 'base64url')).toHaveLength(32);
    expect(stored).not.toContain('a password of some length');
  });

  it('salts each hash: two hashes of the same password differ, and each verifies', async () => {
    const [a, b] = await Promise.all([hashPassword('same password here'), hashPassword('same password here')]);
    expect(a).not.toBe(b);
    expect(a.split('$')[4]).not.toBe(b.split('$')[4]);
    expect(await verifyPassword('same password here', a)).toBe(true);
    expect(await verifyPassword('same password here', b)).toBe(true);
  });

  it('reads the parameters from the hash: one made with N=2^14, r=8, p=2 verifies', async () => {
    const stored = hashWith('older parameters', 1 << 14, 8, 2);
    expect(await verifyPassword('older parameters', stored)).toBe(true);
    expect(await verifyPassword('other password', stored)).toBe(false);
  });

  it('compares passwords in NFC: a password typed composed verifies against decomposed and back', async () => {
    const composed = 'caf\u00e9-cr\u00e8me-\u00c5ngstr\u00f6m';
    const decomposed = composed.normalize('NFD');
    expect(decomposed).not.toBe(composed);
    const fromComposed = await hashPassword(composed);
    const fromDecomposed = await hashPassword(decomposed);
    expect(await verifyPassword(decomposed, fromComposed)).toBe(true);
    expect(await verifyPassword(composed, fromDecomposed)).toBe(true);
    expect(await verifyPassword('cafe-creme-Angstrom', fromComposed)).toBe(false);
  });

  it('refuses absurd parameters before hashing: false at once, no throw', async () => {
    const absurd = [
      `scrypt$${2 ** 30}$8$1$${SALT}$${KEY}`, // 2^30 * 1 KiB: a terabyte of memory
      `scrypt$${2 ** 21}$8$1$${SALT}$${KEY}`,
      `scrypt$32768$33$1$${SALT}$${KEY}`,
      `scrypt$32768$8$17$${SALT}$${KEY}`,
      `scrypt$0$8$1$${SALT}$${KEY}`,
      `scrypt$-32768$8$1$${SALT}$${KEY}`,
      `scrypt$32768.5$8$1$${SALT}$${KEY}`,
      `scrypt$32768$0$1$${SALT}$${KEY}`,
      `scrypt$32768$8$0$${SALT}$${KEY}`,
    ];
    for (const stored of absurd) {
      const started = performance.now();
      await expect(verifyPassword('any password', stored), stored).resolves.toBe(false);
      // A 2^15 hash takes tens of milliseconds; a refused one takes none.
      expect(performance.now() - started, stored).toBeLessThan(30);
    }
  });

  it('refuses malformed hashes with false, without throwing', async () => {
    const malformed = [
      '',
      'scrypt',
      'plaintext-password',
      `bcrypt$32768$8$1$${SALT}$${KEY}`,
      `scrypt$32768$8$1$${SALT}`,
      `scrypt$32768$8$1$${SALT}$${KEY}$extra`,
      `scrypt$x$8$1$${SALT}$${KEY}`,
      `scrypt$$8$1$${SALT}$${KEY}`,
      // a key shorter than 16 bytes would make a guess cheap to compare
      `scrypt$32768$8$1$${SALT}$${Buffer.alloc(8).toString('base64url')}`,
      `scrypt$32768$8$1$${SALT}$`,
    ];
    for (const stored of malformed) await expect(verifyPassword('any password', stored), stored).resolves.toBe(false);
  });

  it('a well-formed hash with another salt or key is simply a wrong password', async () => {
    const stored = hashWith('the password', 1 << 14, 8, 1);
    const parts = stored.split('$');
    expect(await verifyPassword('the password', [...parts.slice(0, 4), SALT, parts[5]].join('$'))).toBe(false);
    expect(await verifyPassword('the password', [...parts.slice(0, 5), KEY].join('$'))).toBe(false);
  });

  // Parameters scrypt itself rejects (N not a power of two, N=1, or N >= 2^(16r)) used to pass the range check and make
  // node:crypto throw "Invalid scrypt params": verifyPassword must answer false, as its contract says.
  for (const [what, stored] of [
    ['N not a power of two (3)', `scrypt$3$8$1$${SALT}$${KEY}`],
    ['N not a power of two (1000)', `scrypt$1000$8$1$${SALT}$${KEY}`],
    ['N = 1', `scrypt$1$8$1$${SALT}$${KEY}`],
    ['N = 2^17 with r = 1 (N must be below 2^(16r))', `scrypt$${2 ** 17}$1$1$${SALT}$${KEY}`],
  ] as const) {
    it(`refuses a hash scrypt cannot run, ${what}, with false`, async () => {
      await expect(verifyPassword('any password', stored)).resolves.toBe(false);
    });
  }
});
