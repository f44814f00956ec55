/**
 * Environment overrides of the gateway configuration, derived from the schema itself: every leaf of the defaults
 * object has one variable, `SCANLINE_` + its dotted path with each camelCase word upper-cased and joined by `_`:
 *
 *   server.port                         → SCANLINE_SERVER_PORT
 *   inference.batching.maxBatchSize     → SCANLINE_INFERENCE_BATCHING_MAX_BATCH_SIZE
 *   inference.batching.defaultDeadlineMs.live → SCANLINE_INFERENCE_BATCHING_DEFAULT_DEADLINE_MS_LIVE
 *
 * Values are read by the type of the key's default: numbers as decimal numbers, booleans as `true` / `false`,
 * strings as they are, arrays as a JSON array (`["a","b"]`) or a comma-separated list (`a,b`; empty = []), whose
 * items are numbers when the default's are. A value that does not parse is a problem; ranges are checked by the
 * schema's validator like any other layer. Every other `SCANLINE_*` variable is a problem too (a misspelt name
 * would otherwise be ignored silently), with a "did you mean" when one variable is close, except the few in
 * NON_CONFIG_VARIABLES, which other parts of Scanline read.
 */
import { isPlainObject } from './layers.js';

export interface EnvLayer {
  /** The overrides as a config layer (merged like a config file). */
  layer: Record<string, unknown>;
  /** Values that did not parse and unknown variables, one message each. */
  problems: string[];
  /** Dotted config key → the variable that set it, to say where a bad value came from. */
  sources: Map<string, string>;
}

/**
 * SCANLINE_* variables that other parts of Scanline read and that are not configuration keys, so never reported as
 * unknown. Add a variable here when code starts reading it.
 */
export const NON_CONFIG_VARIABLES: ReadonlySet<string> = new Set([
  'SCANLINE_LOG_FORMAT', // the CLI's log format (src/cli.ts)
  'SCANLINE_API_TOKEN', // an API token for commands talking to a running gateway (scanline eval --url, scanline import)
  'SCANLINE_BOOTSTRAP_ADMIN_PASSWORD', // the first admin's password on a first start (src/main.ts); a secret, not configuration
  'SCANLINE_TRAIN_DIR', // training work directory (models/train/run.sh)
  'SCANLINE_EXPORT_SHARD', // one dataset-export shard, set for its child process (models/train/export-shards.mjs)
  'SCANLINE_DOCS_SCREENSHOT', // the UI test also writes docs/operator-screen.png (test/ui/operator-screen.test.ts)
]);

/**
 * What Kubernetes injects into every pod for a Service named `scanline` (docker links did the same): SCANLINE_PORT,
 * SCANLINE_PORT_8080_TCP(_PROTO|_PORT|_ADDR), SCANLINE_SERVICE_HOST, SCANLINE_SERVICE_PORT(_<name>). Not ours, and not
 * a misspelling: left alone, so that such a Service does not stop the gateway from starting.
 */
const SERVICE_LINK_VARIABLE = /^SCANLINE_(PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?|SERVICE_(HOST|PORT(_[A-Z0-9_]+)?))$/;

/** `maxBatchSize` → `MAX_BATCH_SIZE`. */
function upperSnake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** The environment variable of a dotted config key, e.g. `server.port` → `SCANLINE_SERVER_PORT`. */
export function envVariableName(path: string): string {
  return `SCANLINE_${path.split('.').map(upperSnake).join('_')}`;
}

/** Every leaf key of `defaults` (objects recursed into; arrays and scalars are leaves) with its default value. */
export function configLeaves(defaults: unknown, prefix = ''): Array<{ path: string; value: unknown }> {
  if (!isPlainObject(defaults)) return [{ path: prefix, value: defaults }];
  return Object.entries(defaults).flatMap(([k, v]) => configLeaves(v, prefix ? `${prefix}.${k}` : k));
}

/**
 * Variable name → dotted key for every leaf of `defaults`. Throws when two keys map to one name (a schema change
 * that would make the mapping ambiguous; test/config keeps it from shipping).
 */
export function envVariables(defaults: unknown): Map<string, { path: string; value: unknown }> {
  const out = new Map<string, { path: string; value: unknown }>();
  for (const leaf of configLeaves(defaults)) {
    const name = envVariableName(leaf.path);
    const clash = out.get(name);
    if (clash) throw new Error(`config keys ${clash.path} and ${leaf.path} both map to ${name}`);
    out.set(name, leaf);
  }
  return out;
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function parseNumber(raw: string): number | undefined {
  const t = raw.trim().replace(/_/g, '');
  return NUMBER.test(t) ? Number(t) : undefined;
}

/** Parses one variable by the type of its default; undefined = does not parse (the reason in `expected`). */
function parseValue(raw: string, fallback: unknown): { ok: true; value: unknown } | { ok: false; expected: string } {
  if (typeof fallback === 'number') {
    const n = parseNumber(raw);
    return n === undefined ? { ok: false, expected: 'a number' } : { ok: true, value: n };
  }
  if (typeof fallback === 'boolean') {
    const t = raw.trim().toLowerCase();
    if (t === 'true') return { ok: true, value: true };
    if (t === 'false') return { ok: true, value: false };
    return { ok: false, expected: 'true or false' };
  }
  if (Array.isArray(fallback)) {
    const numeric = fallback.length > 0 && typeof fallback[0] === 'number';
    const t = raw.trim();
    if (t.startsWith('[')) {
      try {
        const v = JSON.parse(t) as unknown;
        if (Array.isArray(v)) return { ok: true, value: v };
      } catch {
        // reported below
      }
      return { ok: false, expected: 'a JSON array or a comma-separated list' };
    }
    const items = t === '' ? [] : t.split(',').map((x) => x.trim());
    if (!numeric) return { ok: true, value: items };
    const nums = items.map(parseNumber);
    return nums.every((n) => n !== undefined) ? { ok: true, value: nums } : { ok: false, expected: 'a comma-separated list of numbers' };
  }
  return { ok: true, value: raw };
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = target;
  for (const k of keys.slice(0, -1)) {
    if (!isPlainObject(o[k])) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys[keys.length - 1]] = value;
}

/**
 * Edit distance between two strings, counting an adjacent transposition (PROT / PORT) as one edit (optimal string
 * alignment).
 */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[(i - 1) * cols + j] + 1, d[i * cols + j - 1] + 1, d[(i - 1) * cols + j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[(i - 2) * cols + j - 2] + 1);
      d[i * cols + j] = v;
    }
  }
  return d[rows * cols - 1];
}

/**
 * The variable an unknown `name` most likely meant, or undefined when none is close or two are equally close:
 * the nearest by edit distance (at most 2, 3 for names over 20 characters after SCANLINE_), else the only variable
 * whose name ends with the unknown one's words (SCANLINE_DATA_DIR → SCANLINE_STORAGE_DATA_DIR).
 */
export function closestVariable(name: string, candidates: Iterable<string>): string | undefined {
  const rest = name.slice('SCANLINE_'.length);
  const limit = rest.length > 20 ? 3 : 2;
  let best: string | undefined;
  let bestDistance = limit + 1;
  let tie = false;
  const suffixed: string[] = [];
  for (const c of candidates) {
    const d = editDistance(rest, c.slice('SCANLINE_'.length));
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
      tie = false;
    } else if (d === bestDistance) tie = true;
    if (rest.length > 0 && c.endsWith(`_${rest}`)) suffixed.push(c);
  }
  if (best !== undefined) return tie ? undefined : best;
  return suffixed.length === 1 ? suffixed[0] : undefined;
}

/**
 * Reads the `SCANLINE_*` variables of `env` that name keys of `defaults` into one config layer. Never throws: bad
 * values and unknown variables (any `SCANLINE_*` that is neither a key's nor in NON_CONFIG_VARIABLES) come back as
 * problems, for one list with the rest.
 */
export function readConfigEnv(
  defaults: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
  /** Dotted keys whose values are secrets: a value that does not parse is not shown. */
  secrets: ReadonlySet<string> = new Set(),
): EnvLayer {
  const known = envVariables(defaults);
  const layer: Record<string, unknown> = {};
  const problems: string[] = [];
  const sources = new Map<string, string>();
  for (const name of Object.keys(env).sort()) {
    const raw = env[name];
    if (raw === undefined || !name.startsWith('SCANLINE_') || NON_CONFIG_VARIABLES.has(name) || SERVICE_LINK_VARIABLE.test(name)) continue;
    const leaf = known.get(name);
    if (!leaf) {
      const meant = closestVariable(name, known.keys());
      problems.push(`Unknown configuration variable ${name} (no configuration key maps to it${meant ? `; did you mean ${meant}?` : ''})`);
      continue;
    }
    const parsed = parseValue(raw, leaf.value);
    if (!parsed.ok) {
      const shown = secrets.has(leaf.path) ? '<redacted>' : JSON.stringify(raw);
      problems.push(`Expected ${parsed.expected} for ${name} (${leaf.path}) but received ${shown}`);
      continue;
    }
    setPath(layer, leaf.path, parsed.value);
    sources.set(leaf.path, name);
  }
  return { layer, problems, sources };
}
