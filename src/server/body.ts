/**
 * Request bodies and query strings checked against their route's schema, so every route answers a bad request the
 * same way: 400 with a stable code and every problem in `details.problems`, each in the house shape. Body schemas
 * live beside the types they give (src/operator/decisions.ts, src/results); query schemas beside their routes.
 */
import { ScanlineError } from '../errors/index.js';
import { describeValue, Kind, type RefineContext, SchemaValidator, type Static, type TSchema, Type, withDefaults } from '../schema/index.js';

/** Any JSON object: what a body must be before its fields can be named. */
const ANY_OBJECT = new SchemaValidator(Type.Object({}));

/** A compiled check for one route's JSON body: unknown keys read "Unknown field x", as in every body error. */
export function bodyValidator<S extends TSchema>(schema: S, refine?: (value: Static<S>, ctx: RefineContext) => void): SchemaValidator<S> {
  return new SchemaValidator(schema, { unknownKey: (path) => `Unknown field ${path}`, ...(refine ? { refine } : {}) });
}

/**
 * The body as its schema's type; throws SCANLINE_ERR_HTTP_BAD_BODY ("invalid <what>:" and one line per problem)
 * when it does not match. `body` is what readJsonBody resolved to.
 */
export function parseBody<S extends TSchema>(validator: SchemaValidator<S>, body: unknown, what: string): Static<S> {
  if (validator.check(body)) return body;
  if (!ANY_OBJECT.check(body)) {
    throw new ScanlineError('SCANLINE_ERR_HTTP_BAD_BODY', `Expected a JSON object for the body but received ${describeValue(body)}`);
  }
  const problems = validator.problems(body);
  throw new ScanlineError('SCANLINE_ERR_HTTP_BAD_BODY', `invalid ${what}:\n  - ${problems.join('\n  - ')}`, { problems });
}

/**
 * A query string's parameters as its schema's type, defaults filled in; throws SCANLINE_ERR_HTTP_BAD_QUERY (the
 * problems joined by "; ") when they do not match. `validator.schema` must be an object schema. Only the schema's
 * parameters are read (the first of each name); others are ignored. A parameter whose schema is a number is read
 * as one when its text is a finite number (`Number(text)`), else kept as text so the problem shows what was sent.
 */
export function parseQuery<S extends TSchema>(validator: SchemaValidator<S>, query: URLSearchParams): Static<S> {
  const properties = (validator.schema.properties ?? {}) as Record<string, TSchema>;
  const raw: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(properties)) {
    const text = query.get(name);
    if (text === null) continue;
    const numeric = schema[Kind] === 'Integer' || schema[Kind] === 'Number';
    raw[name] = numeric && text.trim() !== '' && Number.isFinite(Number(text)) ? Number(text) : text;
  }
  const value = withDefaults(validator.schema, raw);
  if (validator.check(value)) return value;
  const problems = validator.problems(value);
  throw new ScanlineError('SCANLINE_ERR_HTTP_BAD_QUERY', problems.join('; '), { problems });
}
