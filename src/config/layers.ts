/**
 * Helpers for layered configuration objects, shared by every stage that validates its own section
 * (gateway config, inference config, model manifests).
 */

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Merges `override` into `base`: objects recursively, arrays and scalars replaced. Keys of `override` that `base`
 * lacks are not merged; their dotted paths (prefixed with `path`) are appended to `unknown`.
 */
export function mergeLayer(base: unknown, override: unknown, path: string, unknown: string[]): unknown {
  if (override === undefined) return base;
  if (!isPlainObject(base) || !isPlainObject(override)) return override;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const p = path ? `${path}.${key}` : key;
    if (!(key in base)) {
      unknown.push(p);
      continue;
    }
    out[key] = mergeLayer(base[key], value, p, unknown);
  }
  return out;
}

export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
