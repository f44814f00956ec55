import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, readConfigFile, resolveConfig } from '../../src/config/index.js';
import type { ScanlineError } from '../../src/errors/index.js';

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect((err as ScanlineError).code).toBe('SCANLINE_ERR_CONFIG_INVALID');
    return (err as ScanlineError).details.problems ?? [];
  }
  throw new Error('expected a throw');
}

describe('configuration', () => {
  it('defaults are valid and frozen', () => {
    const c = resolveConfig();
    expect(c.server.port).toBe(8080);
    expect(c.stitch.tile).toEqual(DEFAULT_CONFIG.stitch.tile);
    expect(Object.isFrozen(c.stitch.tile)).toBe(true);
    expect(() => ((c.server as { port: number }).port = 1)).toThrow();
  });

  it('later layers win and nested objects merge', () => {
    const c = resolveConfig({ server: { port: 9000 } }, { server: { host: '0.0.0.0' }, stitch: { tile: { size: 32 } } });
    expect(c.server).toEqual({ host: '0.0.0.0', port: 9000 });
    expect(c.stitch.tile.size).toBe(32);
    expect(c.stitch.tile.downsample).toBe(DEFAULT_CONFIG.stitch.tile.downsample);
  });

  it('lists every problem, unknown keys included', () => {
    const p = problems(() =>
      resolveConfig({
        server: { port: 70000 },
        portal: { idleTimeoutSec: 5 },
        stitch: { material: { ratioThresholds: [1.2, 1.3, 1.4] } },
        storage: { dataDir: '' },
        // @ts-expect-error unknown key on purpose
        colour: 'blue',
      }),
    );
    expect(p).toEqual([
      'Unknown configuration key colour',
      'Expected an integer 0..65535 for server.port but received 70000 of type number',
      'Expected 0 or an integer 8..960 (uWebSockets.js aborts on 1..7) for portal.idleTimeoutSec but received 5 of type number',
      'Expected three decreasing numbers in 0..10 for stitch.material.ratioThresholds but received [1.2,1.3,1.4] of type array',
      'Expected a directory path for storage.dataDir but received "" of type string',
    ]);
  });

  it('reads a JSON config file and reports a broken one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scanline-config-'));
    writeFileSync(join(dir, 'ok.json'), '{"server":{"port":0}}');
    writeFileSync(join(dir, 'bad.json'), '{"server":');
    expect(resolveConfig(readConfigFile(join(dir, 'ok.json'))).server.port).toBe(0);
    expect(() => readConfigFile(join(dir, 'bad.json'))).toThrow(/not valid JSON/);
    expect(() => readConfigFile(join(dir, 'missing.json'))).toThrow(/cannot read/);
  });
});
