/** docs/config.md is generated from the configuration schema: the committed file must be what the schema says. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configDocs, configLeaves, DEFAULT_CONFIG, envVariableName } from '../../src/config/index.js';

describe('docs/config.md', () => {
  const committed = readFileSync(new URL('../../docs/config.md', import.meta.url), 'utf8');

  it('is what `npm run docs:config` generates from the schema (run it after changing the schema)', () => {
    expect(committed).toBe(configDocs());
  });

  it('lists every key with its environment variable and a description', () => {
    for (const { path } of configLeaves(DEFAULT_CONFIG)) {
      const row = committed.split('\n').find((line) => line.startsWith(`| \`${path}\` |`));
      expect(row, path).toBeDefined();
      expect(row).toContain(`\`${envVariableName(path)}\``);
      expect(
        row
          ?.split(' | ')
          .at(-1)
          ?.replace(/\|\s*$/, '')
          .trim().length,
        `description of ${path}`,
      ).toBeGreaterThan(10);
    }
  });
});
