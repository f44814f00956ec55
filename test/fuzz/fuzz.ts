/**
 * How the property-based fuzz tests (test/fuzz/*.test.ts, fast-check) run. Under `npm test`: a fixed seed and a
 * bounded number of runs per property, a few seconds in all. `npm run fuzz` (scripts/fuzz.sh) sets FUZZ_SECONDS (time
 * per property; runs then unbounded) and FUZZ_SEED (random unless given, so each run explores new inputs); FUZZ_RUNS
 * overrides the number of runs. A failing property throws fast-check's report (seed, path and shrunk counterexample,
 * which repeat it: FUZZ_SEED=<seed> FUZZ_PATH=<path>) and writes it to test/fuzz/crashes/ts/<name>.txt.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { ERROR_CODES, type ErrorCode, ScanlineError } from '../../src/errors/index.js';

const CRASH_DIR = join(dirname(fileURLToPath(import.meta.url)), 'crashes', 'ts');

function envNumber(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${name} must be a non-negative integer, got ${raw}`);
  return v;
}

const SECONDS = envNumber('FUZZ_SECONDS');
/** fast-check's path of a failure (from its report), to replay just that case with its FUZZ_SEED. */
const PATH = process.env.FUZZ_PATH || undefined;
const RUNS = envNumber('FUZZ_RUNS');
/** The seed of every property: fixed under `npm test`, so a failure there repeats. */
export const FUZZ_SEED = envNumber('FUZZ_SEED') ?? 0x5ca1;

/** Timeout for a test holding one property: its time budget plus room for shrinking a counterexample. */
export const FUZZ_TEST_TIMEOUT_MS = (SECONDS ?? 20) * 1000 + 60_000;

/**
 * Runs `property` with the settings above (`runs`: its number of runs under `npm test`) and throws the report of a
 * failure after writing it to test/fuzz/crashes/ts/<name>.txt.
 */
export async function checkProperty<T>(name: string, property: fc.IProperty<T> | fc.IAsyncProperty<T>, runs: number): Promise<void> {
  const params: fc.Parameters<T> = {
    seed: FUZZ_SEED,
    numRuns: RUNS ?? (SECONDS !== undefined ? Number.MAX_SAFE_INTEGER : runs),
    ...(SECONDS !== undefined ? { interruptAfterTimeLimit: SECONDS * 1000, markInterruptAsFailure: false } : {}),
    ...(PATH !== undefined ? { path: PATH } : {}),
  };
  const details = await fc.check(property as fc.IAsyncProperty<T>, params);
  if (!details.failed) return;
  const error = details.errorInstance instanceof Error ? (details.errorInstance.stack ?? details.errorInstance.message) : String(details.errorInstance);
  const report = `${name} (FUZZ_SEED=${FUZZ_SEED} FUZZ_PATH=${details.counterexamplePath})\n${fc.defaultReportMessage(details)}\n${error}\n`;
  mkdirSync(CRASH_DIR, { recursive: true });
  writeFileSync(join(CRASH_DIR, `${name}.txt`), report);
  throw new Error(report);
}

/**
 * Calls `fn` and returns its result, or undefined when it threw a ScanlineError whose code is registered and one of
 * `codes`; anything else it throws is rethrown with what was wrong with it.
 */
export function resultOrCodedError<T>(fn: () => T, codes: readonly ErrorCode[]): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof ScanlineError)) {
      throw new Error(`threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}, not a ScanlineError`, { cause: err });
    }
    if (!Object.hasOwn(ERROR_CODES, err.code) || !codes.includes(err.code)) {
      throw new Error(`threw ScanlineError ${err.code} (${err.message}); expected one of ${codes.join(', ')}`, { cause: err });
    }
    return undefined;
  }
}
