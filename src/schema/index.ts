/**
 * One schema per boundary: the TypeScript type (`Static<typeof S>`) and the runtime check come from the same
 * TypeBox definition, so a range is written once. TypeBox over zod or hand-written ajv types: its schemas *are*
 * JSON Schema (docs and other languages can read them), `TypeCompiler` turns each into a fast check for the hot
 * path (one control message per scan event), and fastify's own type provider uses it.
 *
 * Contract of `SchemaValidator.problems()`: every problem of a value at once, one string each, in the house shape
 * "Expected X for name but received V of type T" (the shape of every caller error since the first release), in the
 * order of the schema's properties. X comes from the schema (`expected` keyword, else derived from its type and
 * range), `name` is the dotted path (`detector.pixels`, `declaration.hsCodes[3]`), V is the value as JSON, cut at
 * 40 characters, or `<redacted>` where the schema says `secret: true`.
 *
 * Extra keywords understood here (TypeBox carries unknown options into the schema unchanged):
 * - `expected`: the X of the message when the derived one would not say enough ("an id of 1-64 letters ...");
 * - `secret`: the value never appears in a message (tokens, passwords);
 * - `unit`: the unit of a number, for generated documentation (`ms`, `bytes`, `tiles`).
 */
import { Kind, type SchemaOptions, type Static, type TLiteral, type TSchema, type TUnion, Type as TypeBuilder } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { Value, type ValueError, ValueErrorType } from '@sinclair/typebox/value';

export { Kind, Type, type Static, type TSchema } from '@sinclair/typebox';

/** Options this project adds to any TypeBox schema (see the file comment). */
export interface ScanlineSchemaOptions {
  expected?: string;
  secret?: boolean;
  unit?: string;
}

/** What a cross-field rule sees: the value, and whether the fields it reads passed their own checks. */
export interface RefineContext {
  /** True when no problem was found at or below any of these dotted paths. */
  ok(...paths: string[]): boolean;
  /** Records a problem in the house shape at `path` (dotted). */
  fail(path: string, expected: string, value: unknown, secret?: boolean): void;
  /** The same context for the object at `prefix` (dotted): a section's rules written against the section alone. */
  at(prefix: string): RefineContext;
}

export interface SchemaValidatorOptions<T> {
  /**
   * Message for a key that an object with `additionalProperties: false` does not know, given its dotted path.
   * Default "Unknown key x".
   */
  unknownKey?: (path: string) => string;
  /**
   * Rules across fields (e.g. overlap below the tile span). Runs on every value that is an object; use `ctx.ok()` to
   * skip a rule whose inputs already failed, so each problem is reported once.
   */
  refine?: (value: T, ctx: RefineContext) => void;
}

/** A compiled schema with the house error wording. Build once per boundary at module load; reuse for every value. */
export class SchemaValidator<S extends TSchema> {
  readonly schema: S;
  readonly #check: TypeCheck<S>;
  readonly #options: SchemaValidatorOptions<Static<S>>;

  constructor(schema: S, options: SchemaValidatorOptions<Static<S>> = {}) {
    this.schema = schema;
    this.#check = TypeCompiler.Compile(schema);
    this.#options = options;
  }

  /** True when `value` has every property the schema asks for; cross-field rules included. */
  check(value: unknown): value is Static<S> {
    if (!this.#check.Check(value)) return false;
    return this.#options.refine === undefined || this.problems(value).length === 0;
  }

  /**
   * Every problem of `value`, in schema order; empty when valid. `prefix` is prepended to every path
   * (`inference` → "for inference.workers").
   */
  problems(value: unknown, prefix = ''): string[] {
    const found: Problem[] = [];
    let truncated = false;
    if (!this.#check.Check(value)) {
      const seen = new Set<string>();
      // An array over maxItems (an object over maxProperties) is one problem: its items are not listed one by one, so
      // a long bad list costs one line, not one per item.
      const closed: string[] = [];
      for (const error of this.#check.Errors(value)) {
        const path = dottedPath(error.path);
        // One problem per path: a missing property is reported by its object and again by its own schema.
        if (seen.has(path) || closed.some((c) => isBelow(path, c))) continue;
        if (found.length >= MAX_PROBLEMS) {
          truncated = true;
          break;
        }
        seen.add(path);
        if (error.type === ValueErrorType.ArrayMaxItems || error.type === ValueErrorType.ObjectMaxProperties) closed.push(path);
        found.push(this.#problemOf(error, path));
      }
    }
    const refine = this.#options.refine;
    if (refine && !truncated && typeof value === 'object' && value !== null) {
      // ok(p): no problem at p, below p, or at any ancestor of p; O(depth of p) per call.
      const failed = new Set(found.map((p) => p.path));
      const failedBelow = new Set(found.flatMap((p) => ancestorsOf(p.path)));
      const ok = (path: string): boolean => !failed.has(path) && !failedBelow.has(path) && !ancestorsOf(path).some((a) => failed.has(a));
      const contextAt = (base: string): RefineContext => ({
        ok: (...paths) => paths.every((p) => ok(joinPath(base, p))),
        fail: (relative, expected, v, secret) => {
          if (found.length >= MAX_PROBLEMS) {
            truncated = true;
            return;
          }
          const path = joinPath(base, relative);
          found.push({ path, order: orderOf(this.schema, path), render: (name) => expectedMessage(expected, name, v, secret === true) });
        },
        at: (prefix) => contextAt(joinPath(base, prefix)),
      });
      refine(value as Static<S>, contextAt(''));
    }
    found.sort((a, b) => compareOrder(a.order, b.order));
    const out = found.map((p) => p.render(joinPath(prefix, p.path)));
    if (truncated) out.push(`(further problems not listed: the first ${MAX_PROBLEMS} are)`);
    return out;
  }

  #problemOf(error: ValueError, path: string): Problem {
    const order = orderOf(this.schema, path);
    if (error.type === ValueErrorType.ObjectAdditionalProperties) {
      const unknownKey = this.#options.unknownKey ?? ((name: string) => `Unknown key ${name}`);
      return { path, order, render: unknownKey };
    }
    const schema = error.schema as TSchema & ScanlineSchemaOptions;
    // A value that holds a secret anywhere inside (a list of tokens given as one string) is never shown.
    return { path, order, render: (name) => expectedMessage(expectationOf(schema), name, error.value, holdsSecret(schema)) };
  }
}

/**
 * The key schema of a record whose keys may be any string: TypeBox's Type.String() key compiles to `^(.*)$`, which
 * does not match a key with a line break, so such a key would escape the value check.
 */
export function anyKey() {
  return TypeBuilder.String({ pattern: '^[\\s\\S]*$' });
}

type LiteralValue = string | number | boolean;

/**
 * A union of literals from a constant list (`['json', 'pretty'] as const`), keeping the literal types, so one list
 * serves the type, the check and the "one of json, pretty" message.
 */
export function literalUnion<const T extends readonly LiteralValue[]>(
  values: T,
  options: SchemaOptions & ScanlineSchemaOptions = {},
): TUnion<{ [K in keyof T]: TLiteral<T[K]> } & TSchema[]> {
  return TypeBuilder.Union(
    values.map((v) => TypeBuilder.Literal(v)),
    options,
  ) as unknown as TUnion<{ [K in keyof T]: TLiteral<T[K]> } & TSchema[]>;
}

/**
 * A uWebSockets.js idle timeout in seconds, shared by every WebSocket route's configuration: 0 (off) or 8..960;
 * uWebSockets.js aborts the process on 1..7.
 */
export function uwsIdleTimeoutSchema(description: string) {
  return TypeBuilder.Union([TypeBuilder.Literal(0), TypeBuilder.Integer({ minimum: 8, maximum: 960 })], {
    default: 60,
    unit: 's',
    expected: '0 or an integer 8..960 (uWebSockets.js aborts on 1..7)',
    description,
  });
}

/**
 * A copy of `value` with the defaults of missing properties filled in, objects recursively: where a property is
 * absent (undefined), its `default` is used; a nested object schema with `default: {}` is created and filled in. Only
 * plain objects are filled: an array, a string or a number is kept as it is (so `[1.4, 1.3]` for a 3-tuple, or `[]`
 * for an object, stay wrong and the check says so). No validation here.
 */
export function withDefaults<S extends TSchema>(schema: S, value: unknown): unknown {
  return fillDefaults(schema, Value.Clone(value));
}

/**
 * The value made of an object schema's defaults: every leaf property needs a `default`, every nested object
 * `default: {}` (so that a missing section is created and filled in by withDefaults too).
 */
export function defaultsOf<S extends TSchema>(schema: S): Static<S> {
  return fillDefaults(schema, {}) as Static<S>;
}

function fillDefaults(schema: TSchema, value: unknown): unknown {
  if (value === undefined) {
    if (!('default' in schema)) return undefined;
    value = Value.Clone(schema.default);
  }
  const properties = schema[Kind] === 'Object' ? (schema.properties as Record<string, TSchema> | undefined) : undefined;
  if (!properties || typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const record = value as Record<string, unknown>;
  for (const [key, child] of Object.entries(properties)) {
    const filled = fillDefaults(child, record[key]);
    if (filled !== undefined) record[key] = filled;
  }
  return record;
}

/** Freezes a value and everything reachable from it; returns it. For validated configuration and options. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Dotted paths of the properties whose schema, or any schema below it, says `secret: true` (objects recursed into). */
export function secretPaths(schema: TSchema, prefix = ''): Set<string> {
  const out = new Set<string>();
  const props = schema[Kind] === 'Object' ? (schema.properties as Record<string, TSchema> | undefined) : undefined;
  if (props) {
    for (const [key, child] of Object.entries(props)) for (const p of secretPaths(child, prefix ? `${prefix}.${key}` : key)) out.add(p);
  } else if (holdsSecret(schema) && prefix) {
    out.add(prefix);
  }
  return out;
}

/** True when `schema` or any schema inside it (array items, union members) says `secret: true`. */
export function holdsSecret(schema: TSchema): boolean {
  const s = schema as TSchema & ScanlineSchemaOptions;
  if (s.secret === true) return true;
  if (s.items && !Array.isArray(s.items) && holdsSecret(s.items as TSchema)) return true;
  if (Array.isArray(s.items) && (s.items as TSchema[]).some(holdsSecret)) return true;
  if (Array.isArray(s.anyOf) && (s.anyOf as TSchema[]).some(holdsSecret)) return true;
  if (s.properties) return Object.values(s.properties as Record<string, TSchema>).some(holdsSecret);
  return false;
}

/**
 * A copy-safe walk of `value` along `schema` that replaces every value whose schema says `secret: true` with
 * "<redacted>" (each item of an array of secrets), in place; returns `value`.
 */
export function redactSecrets(schema: TSchema, value: unknown): unknown {
  const s = schema as TSchema & ScanlineSchemaOptions;
  if (s.secret === true) return value === undefined ? value : '<redacted>';
  if (Array.isArray(value) && s[Kind] === 'Array') {
    for (let i = 0; i < value.length; i++) value[i] = redactSecrets(s.items as TSchema, value[i]);
  } else if (typeof value === 'object' && value !== null && s.properties) {
    const record = value as Record<string, unknown>;
    for (const [key, child] of Object.entries(s.properties as Record<string, TSchema>)) {
      if (key in record) record[key] = redactSecrets(child, record[key]);
    }
  }
  return value;
}

/** "Expected X for name but received V of type T", the one shape of every caller error. */
export function expectedMessage(expected: string, name: string, value: unknown, secret = false): string {
  return `Expected ${expected} for ${name || 'the value'} but received ${describeValue(value, secret)}`;
}

/** A value as the messages show it: JSON cut at 40 characters, then its type; `<redacted>` for secrets. */
export function describeValue(value: unknown, secret = false): string {
  const type = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
  if (secret && value !== undefined) return `<redacted> of type ${type}`;
  if (typeof value === 'number') return `${value} of type number`;
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    json = undefined;
  }
  const shown = json === undefined ? String(value) : json.length > 40 ? `${json.slice(0, 37)}...` : json;
  return `${shown} of type ${type}`;
}

/** What a schema expects, in words: its `expected` keyword, or derived from its type and range. */
export function expectationOf(schema: TSchema & ScanlineSchemaOptions): string {
  if (typeof schema.expected === 'string') return schema.expected;
  const kind = schema[Kind] as string;
  switch (kind) {
    case 'Integer':
    case 'Number':
      return numberExpectation(schema, kind === 'Integer' ? 'an integer' : 'a number');
    case 'Boolean':
      return 'a boolean';
    case 'String':
      if (typeof schema.maxLength === 'number') return `a string of ${schema.minLength ? `${schema.minLength} to ` : 'at most '}${schema.maxLength} characters`;
      if (typeof schema.minLength === 'number' && schema.minLength > 1) return `a string of at least ${schema.minLength} characters`;
      return schema.minLength ? 'a non-empty string' : 'a string';
    case 'Literal':
      return JSON.stringify(schema.const);
    case 'Union': {
      const variants = schema.anyOf as TSchema[];
      if (variants.every((v) => v[Kind] === 'Literal')) {
        const values = variants.map((v) => (typeof v.const === 'string' ? v.const : JSON.stringify(v.const)));
        return values.length === 2 && variants.every((v) => typeof v.const === 'number') ? `${values[0]} or ${values[1]}` : `one of ${values.join(', ')}`;
      }
      return variants.map((v) => expectationOf(v)).join(' or ');
    }
    case 'Object':
      return 'an object';
    case 'Array': {
      const parts: string[] = [];
      if (typeof schema.minItems === 'number' && schema.minItems > 0) parts.push(schema.minItems === 1 ? 'non-empty' : `at least ${schema.minItems} items`);
      if (typeof schema.maxItems === 'number') parts.push(`at most ${schema.maxItems} items`);
      if (schema.uniqueItems === true) parts.push('distinct items');
      return parts.length === 0 ? 'an array' : `an array (${parts.join(', ')})`;
    }
    case 'Null':
      return 'null';
    default:
      return `a value of kind ${kind}`;
  }
}

function numberExpectation(s: TSchema, noun: string): string {
  const lo = typeof s.minimum === 'number' ? s.minimum : undefined;
  const hi = typeof s.maximum === 'number' ? s.maximum : undefined;
  const xlo = typeof s.exclusiveMinimum === 'number' ? s.exclusiveMinimum : undefined;
  const xhi = typeof s.exclusiveMaximum === 'number' ? s.exclusiveMaximum : undefined;
  if (xlo !== undefined && xhi === undefined && hi === undefined) return `${noun} above ${xlo}`;
  if (xhi !== undefined && xlo === undefined && lo === undefined) return `${noun} below ${xhi}`;
  if (xlo !== undefined || xhi !== undefined) {
    const left = xlo !== undefined ? `(${xlo}` : lo !== undefined ? `[${lo}` : '(-Infinity';
    const right = xhi !== undefined ? `${xhi})` : hi !== undefined ? `${hi}]` : 'Infinity)';
    return `${noun} in ${left}, ${right}`;
  }
  if (lo !== undefined && hi !== undefined) return `${noun} ${lo}..${hi}`;
  if (lo !== undefined) return `${noun} of at least ${lo}`;
  if (hi !== undefined) return `${noun} of at most ${hi}`;
  return noun;
}

/**
 * Most problems listed for one value. Every problem at once is the rule for a person fixing a config file or a
 * request; the cap keeps a hostile value (thousands of bad items) from costing CPU and a megabyte-sized error.
 */
export const MAX_PROBLEMS = 32;

/** True when `path` is strictly below `parent` (`a.b` and `a[0]` are below `a`). */
function isBelow(path: string, parent: string): boolean {
  return path.length > parent.length && path.startsWith(parent) && (path[parent.length] === '.' || path[parent.length] === '[');
}

/** The dotted paths above `path`: `a.b[2].c` → `a`, `a.b`, `a.b[2]`. */
function ancestorsOf(path: string): string[] {
  const out: string[] = [];
  for (let i = 1; i < path.length; i++) if (path[i] === '.' || path[i] === '[') out.push(path.slice(0, i));
  return out;
}

interface Problem {
  /** Dotted path inside the validated value. */
  path: string;
  order: number[];
  /** The message, given the name to show (the path with the caller's prefix). */
  render: (name: string) => string;
}

function joinPath(prefix: string, path: string): string {
  if (!prefix) return path;
  if (!path) return prefix;
  return path.startsWith('[') ? `${prefix}${path}` : `${prefix}.${path}`;
}

/** JSON pointer (`/declaration/hsCodes/3`) → dotted path (`declaration.hsCodes[3]`). */
function dottedPath(pointer: string): string {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(key) ? `[${key}]` : out ? `.${key}` : key;
  }
  return out;
}

/** Position of a dotted path in the schema's property order (depth first), for sorting problems. */
function orderOf(schema: TSchema, path: string): number[] {
  const order: number[] = [];
  let node: TSchema | undefined = schema;
  for (const part of path.match(/[^.[\]]+/g) ?? []) {
    if (node && /^\d+$/.test(part) && node[Kind] === 'Array') {
      order.push(Number(part));
      node = node.items as TSchema;
    } else if (node?.properties) {
      const keys = Object.keys(node.properties);
      const i = keys.indexOf(part);
      order.push(i < 0 ? keys.length : i);
      node = node.properties[part] as TSchema | undefined;
    } else {
      order.push(Number.MAX_SAFE_INTEGER);
      node = undefined;
    }
  }
  return order;
}

function compareOrder(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
