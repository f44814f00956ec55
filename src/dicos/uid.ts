/** DICOM unique identifiers: making them (`2.25.` + a random UUID as a decimal integer, PS3.5 B.2) and checking them. */
import { randomUUID } from 'node:crypto';

/** A new UID under the 2.25 root: no registered organisation root is needed and collisions are as unlikely as UUIDs. */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replaceAll('-', '')}`).toString(10)}`;
}

/**
 * True for a valid UID (PS3.5 9.1): at most 64 characters, dot-separated components of digits, no component with a
 * leading zero unless it is "0".
 */
export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/.test(uid);
}
