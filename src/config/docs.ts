/**
 * docs/config.md, generated from the configuration schema: every key with its type and range, default, unit,
 * environment variable and description. `npm run docs:config` writes it; test/config/docs.test.ts fails when the
 * committed file differs from what the schema says.
 */
import { expectationOf, Kind, type TSchema } from '../schema/index.js';
import { envVariableName } from './env.js';

interface DocumentedSchema extends TSchema {
  description?: string;
  unit?: string;
  secret?: boolean;
}

/** The Markdown page for `schema` (the gateway configuration's, from src/config/index.ts). */
export function renderConfigDocs(schema: TSchema): string {
  const out: string[] = [
    '# Configuration',
    '',
    '<!-- Generated from the configuration schema (src/config/index.ts and the sections it embeds) by `npm run docs:config`;',
    '     test/config/docs.test.ts keeps it in sync. Edit the schema, not this file. -->',
    '',
    'Sources, lowest precedence first: the defaults below, a config file (`scanline serve --config FILE`, JSON, or YAML for a',
    'name ending in .yaml/.yml), `SCANLINE_*` environment variables, command-line flags. Every problem is reported at once',
    '(`SCANLINE_ERR_CONFIG_INVALID`, exit status 2); unknown keys and variables are problems too. `scanline serve',
    '--print-config` shows the effective configuration, secrets redacted and paths resolved.',
    '',
    'Environment values are read by the type of the key: numbers as decimals, booleans as `true`/`false`, lists as a JSON',
    'array or a comma-separated list.',
    '',
  ];
  for (const [section, sub] of Object.entries(schema.properties as Record<string, DocumentedSchema>)) {
    out.push(`## \`${section}\``, '');
    if (sub.description) out.push(sub.description, '');
    out.push('| key | accepts | default | variable | meaning |', '|---|---|---|---|---|');
    for (const row of leaves(sub, section)) out.push(row);
    out.push('');
  }
  return `${out.join('\n').trimEnd()}\n`;
}

function leaves(schema: DocumentedSchema, path: string): string[] {
  if (schema[Kind] === 'Object' && schema.properties) {
    return Object.entries(schema.properties as Record<string, DocumentedSchema>).flatMap(([key, child]) => leaves(child, `${path}.${key}`));
  }
  const items = schema.items as DocumentedSchema | undefined;
  const what = schema[Kind] === 'Array' && !('expected' in schema) && items ? `an array; each item ${expectationOf(items)}` : expectationOf(schema);
  const accepts = what + (schema.unit ? `, ${schema.unit}` : '');
  const value = schema.secret ? '(secret)' : JSON.stringify(schema.default);
  return [`| \`${path}\` | ${cell(accepts)} | \`${cell(value ?? '')}\` | \`${envVariableName(path)}\` | ${cell(schema.description ?? '')} |`];
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}
