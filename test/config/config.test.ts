import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, loadConfig, printableConfig, readConfigFile, resolveConfig } from '../../src/config/index.js';
import { defaultModelsDir } from '../../src/inference/index.js';
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
    expect(c.server).toMatchObject({ host: '0.0.0.0', port: 9000 });
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
    // Schema order: a key the schema does not know comes after the known keys of its object.
    expect(p).toEqual([
      'Expected an integer 0..65535 for server.port but received 70000 of type number',
      'Expected 0 or an integer 8..960 (uWebSockets.js aborts on 1..7) for portal.idleTimeoutSec but received 5 of type number',
      'Expected an array of 3 strictly decreasing positive numbers for stitch.material.ratioThresholds but received [1.2,1.3,1.4] of type array',
      'Expected a directory path for storage.dataDir but received "" of type string',
      'Unknown configuration key colour',
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

  it('reads a YAML config file (.yaml or .yml, YAML 1.2 core schema) and reports a broken one with its line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scanline-config-'));
    writeFileSync(
      join(dir, 'lane.yaml'),
      [
        '# lane 3 of the border post',
        'server:',
        '  host: 0.0.0.0',
        '  port: 9000',
        '  allowedHosts: [scanline.post-7.example, 10.0.0.5]',
        'portal:',
        '  stitchMaxDelayMs: 40',
        'inference:',
        '  batching:',
        '    preferredBatchSizes: [8, 16]',
        '    idleDispatch: false',
        'results:',
        '  machineId: lane-3.post-7',
        '',
      ].join('\n'),
    );
    const c = resolveConfig(readConfigFile(join(dir, 'lane.yaml')));
    expect(c.server).toMatchObject({ host: '0.0.0.0', port: 9000, allowedHosts: ['scanline.post-7.example', '10.0.0.5'], allowedOrigins: [] });
    expect(c.portal.stitchMaxDelayMs).toBe(40);
    expect(c.inference.batching.idleDispatch).toBe(false);
    expect(c.results.machineId).toBe('lane-3.post-7');
    // YAML 1.1's "no" is a string in YAML 1.2: it reaches validation as one (not a silent false).
    writeFileSync(join(dir, 'yes-no.yml'), 'inference:\n  batching:\n    idleDispatch: no\n');
    expect(() => resolveConfig(readConfigFile(join(dir, 'yes-no.yml')))).toThrow(/Expected a boolean for inference.batching.idleDispatch but received "no"/);
    writeFileSync(join(dir, 'dup.yaml'), 'server:\n  port: 1\n  port: 2\n');
    expect(() => readConfigFile(join(dir, 'dup.yaml'))).toThrow(
      expect.objectContaining({ code: 'SCANLINE_ERR_CONFIG_INVALID', message: expect.stringMatching(/not valid YAML.*unique/is) }),
    );
    writeFileSync(join(dir, 'bad.yaml'), 'server:\n  port: [1\n');
    expect(() => readConfigFile(join(dir, 'bad.yaml'))).toThrow(/not valid YAML.*at line \d+, column \d+/is);
    writeFileSync(join(dir, 'list.yaml'), '- server\n');
    expect(() => readConfigFile(join(dir, 'list.yaml'))).toThrow(/top level is not an object/);
  });
});

describe('configuration secrets and paths', () => {
  it('never shows a rejected secret in an error', () => {
    let message = '';
    try {
      resolveConfig({ auth: { oidc: { clientSecret: `correct-horse-battery-${'x'.repeat(1100)}` } } });
    } catch (err) {
      message = (err as ScanlineError).message;
    }
    expect(message).toContain('Expected a string of at most 1024 characters for auth.oidc.clientSecret but received <redacted> of type string');
    expect(message).not.toContain('correct-horse');
  });

  it('prints resolved paths: the data directory absolute, the default models directory named', () => {
    const printed = printableConfig(resolveConfig({ storage: { dataDir: 'data/x' } }), '/srv/scanline') as {
      storage: { dataDir: string };
      inference: { modelsDir: string };
    };
    expect(printed.storage.dataDir).toBe('/srv/scanline/data/x');
    expect(printed.inference.modelsDir).toBe(defaultModelsDir());
    expect(printableConfig(resolveConfig({ inference: { modelsDir: '/opt/models' } })).inference).toMatchObject({ modelsDir: '/opt/models' });
  });
});

describe('configuration from hostile or foreign sources', () => {
  it('refuses __proto__ as an unknown key instead of swapping the prototype', () => {
    const layer = JSON.parse('{"__proto__":{"x":1},"server":{"port":0}}');
    let problems: string[] = [];
    try {
      resolveConfig(layer);
    } catch (err) {
      problems = (err as ScanlineError).details.problems as string[];
    }
    expect(problems).toEqual(['Unknown configuration key __proto__']);
  });

  it('leaves alone the variables Kubernetes injects for a Service named scanline', () => {
    const env = {
      SCANLINE_PORT: 'tcp://10.0.0.1:8080',
      SCANLINE_PORT_8080_TCP: 'tcp://10.0.0.1:8080',
      SCANLINE_PORT_8080_TCP_PROTO: 'tcp',
      SCANLINE_PORT_8080_TCP_PORT: '8080',
      SCANLINE_PORT_8080_TCP_ADDR: '10.0.0.1',
      SCANLINE_SERVICE_HOST: '10.0.0.1',
      SCANLINE_SERVICE_PORT: '8080',
      SCANLINE_SERVICE_PORT_HTTP: '8080',
      SCANLINE_PORTAL_MAX_OPEN_SCANS: '2',
    };
    expect(loadConfig({ env }).portal.maxOpenScans).toBe(2);
  });

  it('does not echo a secret variable whose value does not parse', () => {
    let message = '';
    try {
      loadConfig({ env: { SCANLINE_AUTH_OIDC_CLIENT_SECRET: `supersecret-${'x'.repeat(1100)}` } });
    } catch (err) {
      message = (err as ScanlineError).message;
    }
    expect(message).toContain('for auth.oidc.clientSecret but received <redacted> of type string (from SCANLINE_AUTH_OIDC_CLIENT_SECRET)');
    expect(message).not.toContain('supersecret');
  });
});
