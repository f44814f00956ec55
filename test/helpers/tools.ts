/**
 * Tests that need a program from Debian (chromium, promtool, systemd-analyze, script): outside CI a missing program
 * skips the test with the reason (which package to install); in CI (CI=true) it fails the test, because .ci/run
 * installs every program the tests use, so nothing is skipped silently there.
 */
import { existsSync } from 'node:fs';

/** Why a test cannot run here, or null when `path` exists. */
export function missingTool(path: string, debianPackage: string): string | null {
  return existsSync(path) ? null : `${path} is not installed (Debian package ${debianPackage})`;
}

/** True when a suite needing `path` should be skipped: missing, and not in CI (where it must run, and fail). */
export function skipWithout(path: string): boolean {
  return !existsSync(path) && process.env.CI === undefined;
}

/** In a test: skips with the reason when `path` is missing outside CI; throws in CI. */
export function needTool(ctx: { skip(note?: string): void }, path: string, debianPackage: string): void {
  const why = missingTool(path, debianPackage);
  if (why === null) return;
  if (process.env.CI !== undefined) throw new Error(`${why}: .ci/run must install it`);
  ctx.skip(why);
}
