/**
 * Layered configuration objects: defaults < config file < environment < flags, merged before one validation.
 */

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Merges `override` into `base`: objects recursively, arrays and scalars replaced. Keys `base` lacks are merged too,
 * so the schema's check names them ("Unknown configuration key x").
 */
export function mergeLayer(base: unknown, override: unknown): unknown {
  if (override === undefined) return base;
  if (!isPlainObject(base) || !isPlainObject(override)) return override;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    // An own property even for a key like "__proto__" (JSON.parse makes it one), so the check names it as unknown
    // instead of it replacing the prototype of the configuration.
    Object.defineProperty(out, key, {
      value: mergeLayer(Object.hasOwn(base, key) ? base[key] : undefined, value),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}
