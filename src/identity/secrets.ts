/**
 * Secrets the gateway hands out (session ids, API tokens, portal credentials) and how they are checked. Each is 256
 * bits from the OS's CSPRNG, so its SHA-256 is what is stored (no salt or stretching needed for a value that cannot
 * be guessed); passwords, which people choose, go through scrypt instead (passwords.ts). Comparisons of secrets
 * run in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A new secret: `prefix` + 43 base64url characters (256 bits). The prefix says what it is when it leaks into a ticket. */
export function newSecret(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

/** Hex SHA-256 of a secret: what the database keeps. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time equality of two strings (their lengths aside, which are not secret here). */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The CSRF token of a session: derived from the session's secret, so it is never stored and a page that cannot read
 * the HttpOnly cookie cannot compute it.
 */
export function csrfTokenOf(sessionSecret: string): string {
  return createHash('sha256').update('scanline-csrf\0', 'utf8').update(sessionSecret, 'utf8').digest('base64url');
}
