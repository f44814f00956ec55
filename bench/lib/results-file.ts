/**
 * Where every bench writes its raw results: bench/results/<bench>-<stamp>.json, <stamp> the run's UTC time as
 * YYYY-MM-DDTHHMMSSZ (ISO 8601 without the colons and milliseconds: the names sort by time and are valid file names
 * everywhere), e.g. bench/results/infer-2026-11-25T052147Z.json. bench/RESULTS.md cites the files by these names.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from dist/bench/lib/ where the benches run compiled. */
const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** `date` (Date.prototype.toISOString(), UTC) as a file-name stamp: 2026-11-25T05:21:47.532Z → 2026-11-25T052147Z. */
export function resultsStamp(date: string): string {
  return date.replace(/:/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Writes `data` as bench/results/<bench>-<stamp>.json and returns that path relative to the repository root. */
export function writeResultsJson(bench: string, date: string, data: unknown): string {
  const rel = `bench/results/${bench}-${resultsStamp(date)}.json`;
  mkdirSync(join(REPO, 'bench', 'results'), { recursive: true });
  writeFileSync(join(REPO, rel), `${JSON.stringify(data, null, 2)}\n`);
  return rel;
}
