/** Facts about the installed scanline package itself, read once from its package.json. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | null | undefined;

/**
 * The version of the scanline package this code belongs to (the package.json named "scanline" above this module,
 * from src/ under vitest or from dist/src/ when compiled), or null when it cannot be found.
 */
export function packageVersion(): string | null {
  if (cached !== undefined) return cached;
  cached = null;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      try {
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'scanline') {
          cached = pkg.version ?? null;
          break;
        }
      } catch {
        break;
      }
    }
    dir = dirname(dir);
  }
  return cached;
}
