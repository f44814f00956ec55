/**
 * Password hashes: scrypt (memory-hard, in node:crypto; RFC 7914) with N=2^15, r=8, p=1, a 16-byte salt and a
 * 32-byte key, stored with its parameters (`scrypt$N$r$p$salt$key`, base64url) so they can be raised later without
 * invalidating existing hashes. Each hash costs 32 MiB and ~0.1 s of one libuv thread-pool thread (the async scrypt
 * runs off the event loop), which is what makes a stolen database slow to attack.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

const N = 1 << 15;
const R = 8;
const P = 1;
const KEY_BYTES = 32;
/** scrypt needs 128 * N * r bytes; node's default maxmem (32 MiB) is exactly that, which it refuses. */
const MAX_MEM = 256 * N * R;

function derive(password: string, salt: Buffer, n: number, r: number, p: number, keyBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, keyBytes, { N: n, r, p, maxmem: Math.max(MAX_MEM, 256 * n * r) }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, R, P, KEY_BYTES);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

/** Most memory one check may take (128 x N x r bytes): a tampered hash must not make a sign-in allocate gigabytes. */
const MAX_CHECK_BYTES = 256 * 1024 * 1024;

/**
 * Parameters scrypt runs with (N a power of two above 1 and below 2^(16r), r and p small) within MAX_CHECK_BYTES;
 * anything else, e.g. from an edited database, makes the hash unreadable rather than throwing or costing gigabytes.
 */
function acceptableParameters(n: number, r: number, p: number): boolean {
  if (![n, r, p].every((v) => Number.isSafeInteger(v) && v > 0)) return false;
  if (n < 2 || (n & (n - 1)) !== 0 || r > 32 || p > 16) return false;
  if (Math.log2(n) >= 16 * r) return false;
  return 128 * n * r <= MAX_CHECK_BYTES && p * r < 2 ** 30;
}

/** True when `password` matches `stored`; false for a wrong password or a hash this code cannot read. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = parts.slice(1, 4).map(Number);
  if (!acceptableParameters(n, r, p)) return false;
  const salt = Buffer.from(parts[4], 'base64url');
  const expected = Buffer.from(parts[5], 'base64url');
  if (expected.length < 16) return false;
  const key = await derive(password, salt, n, r, p, expected.length);
  return timingSafeEqual(key, expected);
}

/**
 * A hash of a random password, checked when an account does not exist or has no password, so that a sign-in takes
 * as long whether or not the name is known (no account enumeration by timing).
 */
let decoy: Promise<string> | null = null;
export function decoyHash(): Promise<string> {
  decoy ??= hashPassword(randomBytes(16).toString('hex'));
  return decoy;
}
