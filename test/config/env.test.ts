/**
 * Environment overrides (SCANLINE_* derived from the schema), the precedence of config sources, the problem list
 * they feed, and `scanline serve --print-config` as a user runs it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NON_CONFIG_VARIABLES, closestVariable, editDistance } from '../../src/config/env.js';
import { DEFAULT_CONFIG, configLeaves, envVariableName, envVariables, loadConfig, printableConfig, readConfigEnv } from '../../src/config/index.js';
import type { ScanlineError } from '../../src/errors/index.js';

const BIN = new URL('../../bin/scanline.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'scanline-config-env-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect((err as ScanlineError).code).toBe('SCANLINE_ERR_CONFIG_INVALID');
    return (err as ScanlineError).details.problems ?? [];
  }
  throw new Error('expected a throw');
}

describe('environment overrides', () => {
  it('derives one variable per schema key, with no two keys on one name', () => {
    const vars = envVariables(DEFAULT_CONFIG);
    expect(vars.size).toBe(configLeaves(DEFAULT_CONFIG).length);
    expect(vars.get('SCANLINE_SERVER_PORT')?.path).toBe('server.port');
    expect(vars.get('SCANLINE_INFERENCE_BATCHING_MAX_BATCH_SIZE')?.path).toBe('inference.batching.maxBatchSize');
    expect(vars.get('SCANLINE_INFERENCE_BATCHING_DEFAULT_DEADLINE_MS_LIVE')?.path).toBe('inference.batching.defaultDeadlineMs.live');
    expect(vars.get('SCANLINE_SHUTDOWN_DRAIN_TIMEOUT_MS')?.path).toBe('shutdown.drainTimeoutMs');
    expect(envVariableName('stitch.material.ratioThresholds')).toBe('SCANLINE_STITCH_MATERIAL_RATIO_THRESHOLDS');
  });

  it('parses values by the type of their default', () => {
    const c = loadConfig({
      env: {
        SCANLINE_SERVER_PORT: '9100',
        SCANLINE_SERVER_HOST: '0.0.0.0',
        SCANLINE_INFERENCE_ENABLED: 'false',
        SCANLINE_SERVER_ALLOWED_HOSTS: 'scanline.example, 10.0.0.5',
        SCANLINE_INFERENCE_BATCHING_PREFERRED_BATCH_SIZES: '4,8',
        SCANLINE_STITCH_MATERIAL_RATIO_THRESHOLDS: '[1.5, 1.2, 1.0]',
        SCANLINE_INFERENCE_MODELS: '',
        SCANLINE_LOG_LEVEL: 'warn',
        SCANLINE_TRAIN_DIR: '/not/ours', // read by models/train/run.sh, not a configuration key: not reported
        PATH: process.env.PATH,
      },
    });
    expect(c.server).toMatchObject({ host: '0.0.0.0', port: 9100, allowedHosts: ['scanline.example', '10.0.0.5'], allowedOrigins: [] });
    expect(c.inference.enabled).toBe(false);
    expect(c.inference.batching.preferredBatchSizes).toEqual([4, 8]);
    expect(c.stitch.material.ratioThresholds).toEqual([1.5, 1.2, 1.0]);
    expect(c.inference.models).toEqual([]);
    expect(c.log.level).toBe('warn');
    expect(Object.isFrozen(c.server)).toBe(true);
  });

  it('ranks defaults < file < environment < flags', () => {
    const file = join(dir, 'precedence.json');
    writeFileSync(file, JSON.stringify({ server: { port: 7001, host: '127.0.0.2' }, storage: { dataDir: '/from/file' }, log: { level: 'debug' } }));
    const c = loadConfig({ file, env: { SCANLINE_SERVER_PORT: '7002', SCANLINE_STORAGE_DATA_DIR: '/from/env' }, layers: [{ server: { port: 7003 } }] });
    expect(c.server).toMatchObject({ host: '127.0.0.2', port: 7003 });
    expect(c.storage.dataDir).toBe('/from/env');
    expect(c.log.level).toBe('debug');
    expect(c.metrics.portalLabelLimit).toBe(DEFAULT_CONFIG.metrics.portalLabelLimit);
  });

  it('lists every problem at once, naming the variable that set a bad value', () => {
    const p = problems(() =>
      loadConfig({
        env: {
          SCANLINE_SERVER_PORT: '70000',
          SCANLINE_SERVER_PROT: '1', // typo inside a config section
          SCANLINE_METRICS_ENABLED: 'yes',
          SCANLINE_PORTAL_MAX_OPEN_SCANS: 'four',
          SCANLINE_INFERENCE_BATCHING_PREFERRED_BATCH_SIZES: '8,x',
          SCANLINE_SHUTDOWN_DRAIN_TIMEOUT_MS: '20000',
        },
        layers: [{ storage: { dataDir: '' } }],
      }),
    );
    expect(p).toEqual([
      'Expected a comma-separated list of numbers for SCANLINE_INFERENCE_BATCHING_PREFERRED_BATCH_SIZES (inference.batching.preferredBatchSizes) but received "8,x"',
      'Expected true or false for SCANLINE_METRICS_ENABLED (metrics.enabled) but received "yes"',
      'Expected a number for SCANLINE_PORTAL_MAX_OPEN_SCANS (portal.maxOpenScans) but received "four"',
      'Unknown configuration variable SCANLINE_SERVER_PROT (no configuration key maps to it; did you mean SCANLINE_SERVER_PORT?)',
      'Expected an integer 0..65535 for server.port but received 70000 of type number (from SCANLINE_SERVER_PORT)',
      'Expected a directory path for storage.dataDir but received "" of type string',
      'Expected an integer of at least shutdown.drainTimeoutMs + 1000 (21000) for shutdown.exitTimeoutMs but received 15000 of type number',
    ]);
  });

  it('reads nothing with env: false, and readConfigEnv never throws', () => {
    expect(loadConfig({ env: false }).server.port).toBe(8080);
    const r = readConfigEnv(DEFAULT_CONFIG as unknown as Record<string, unknown>, { SCANLINE_LOG_LEVEL: 'info', SCANLINE_LOG_COLOUR: 'x' });
    expect(r.layer).toEqual({ log: { level: 'info' } });
    expect(r.sources.get('log.level')).toBe('SCANLINE_LOG_LEVEL');
    expect(r.problems).toEqual(['Unknown configuration variable SCANLINE_LOG_COLOUR (no configuration key maps to it)']);
  });

  it('reports every SCANLINE_* variable that names no key, suggesting a close one, in the one list of problems', () => {
    const p = problems(() =>
      loadConfig({
        env: {
          SCANLINE_SERVR_PORT: '9000', // misspelt section: was ignored silently
          SCANLINE_INFERENCE_BATCHING_MAX_BATCH_SIZ: '16', // long name, one letter short
          SCANLINE_PORTAL_MAX_OPNE_SCANS: '4', // two letters swapped
          SCANLINE_DATA_DIR: '/srv/scans', // section left out: the only key ending with its words
          SCANLINE_TELEPORT: 'yes', // nothing like it
          SCANLINE_STORAGE_DATA_DIR: '/srv/ok',
          SCANLINE_LOG_FORMAT: 'json', // read by the CLI, not a configuration key
          SCANLINE_TRAIN_DIR: '/srv/train',
          SCANLINE_DOCS_SCREENSHOT: '1',
          SCANLINE_EXPORT_SHARD: '{}',
          SCANNER_PORT: '1', // not ours
        },
      }),
    );
    expect(p).toEqual([
      'Unknown configuration variable SCANLINE_DATA_DIR (no configuration key maps to it; did you mean SCANLINE_STORAGE_DATA_DIR?)',
      'Unknown configuration variable SCANLINE_INFERENCE_BATCHING_MAX_BATCH_SIZ (no configuration key maps to it; did you mean SCANLINE_INFERENCE_BATCHING_MAX_BATCH_SIZE?)',
      'Unknown configuration variable SCANLINE_PORTAL_MAX_OPNE_SCANS (no configuration key maps to it; did you mean SCANLINE_PORTAL_MAX_OPEN_SCANS?)',
      'Unknown configuration variable SCANLINE_SERVR_PORT (no configuration key maps to it; did you mean SCANLINE_SERVER_PORT?)',
      'Unknown configuration variable SCANLINE_TELEPORT (no configuration key maps to it)',
    ]);
  });

  it('suggests a variable only when one is clearly closest', () => {
    expect(editDistance('SERVER_PROT', 'SERVER_PORT')).toBe(1);
    expect(editDistance('SERVR_PORT', 'SERVER_PORT')).toBe(1);
    expect(editDistance('', 'ABC')).toBe(3);
    const names = ['SCANLINE_A_PORT', 'SCANLINE_B_PORT', 'SCANLINE_SERVER_HOST'];
    expect(closestVariable('SCANLINE_SERVER_HOTS', names)).toBe('SCANLINE_SERVER_HOST');
    expect(closestVariable('SCANLINE_C_PORT', names)).toBeUndefined(); // A and B are equally close
    expect(closestVariable('SCANLINE_HOST', names)).toBe('SCANLINE_SERVER_HOST'); // the only one ending with HOST
    const listeners = ['SCANLINE_SERVER_LISTEN_PORT', 'SCANLINE_METRICS_LISTEN_PORT'];
    expect(closestVariable('SCANLINE_LISTEN_PORT', listeners)).toBeUndefined(); // two end with LISTEN_PORT
  });

  it('lists every SCANLINE_* variable the code reads that is not a configuration key', () => {
    // Reads in code and scripts: process.env.<NAME>, process.env['<NAME>'], and $<NAME> or ${<NAME>} in shell.
    const root = new URL('../../', import.meta.url).pathname;
    const read = new Set<string>();
    const walk = (dir: string): void => {
      for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
        const rel = join(dir, entry.name);
        if (entry.isDirectory()) {
          if (entry.name !== 'node_modules' && entry.name !== 'fixtures') walk(rel);
        } else if (/\.(ts|js|mjs|cjs|sh)$/.test(entry.name) || dir === '.ci') {
          const text = readFileSync(join(root, rel), 'utf8');
          for (const m of text.matchAll(/process\.env(?:\.|\[['"])(SCANLINE_[A-Z0-9_]+)|\$\{?(SCANLINE_[A-Z0-9_]+)/g)) read.add(m[1] ?? m[2]);
        }
      }
    };
    for (const dir of ['src', 'bin', 'bench', 'test', 'models', '.ci']) if (existsSync(join(root, dir))) walk(dir);
    const config = envVariables(DEFAULT_CONFIG);
    expect([...read].filter((v) => !config.has(v) && !NON_CONFIG_VARIABLES.has(v)).sort()).toEqual([]);
    expect([...read].sort()).toEqual(
      expect.arrayContaining(['SCANLINE_DOCS_SCREENSHOT', 'SCANLINE_EXPORT_SHARD', 'SCANLINE_LOG_FORMAT', 'SCANLINE_TRAIN_DIR']),
    );
  });

  it('redacts secrets in the printable config', () => {
    const c = loadConfig({ env: false, layers: [{ auth: { oidc: { clientSecret: 'secret-client-1' } } }] });
    const printed = printableConfig(c) as { auth: { oidc: { clientSecret: string } }; server: unknown };
    expect(printed.auth.oidc.clientSecret).toBe('<redacted>');
    expect(printed.server).toMatchObject({ host: c.server.host, port: c.server.port, allowedHosts: [] });
    expect(c.auth.oidc.clientSecret).toBe('secret-client-1');
  });
});

describe('scanline serve --print-config', () => {
  it('prints the effective config (file, environment, flags) and exits 0 without starting', () => {
    const file = join(dir, 'print.json');
    writeFileSync(file, JSON.stringify({ results: { machineId: 'lane-3' }, auth: { oidc: { clientSecret: 'a-secret-token' } } }));
    const r = spawnSync(process.execPath, [BIN, 'serve', '--config', file, '--port', '0', '--print-config'], {
      encoding: 'utf8',
      env: { ...process.env, SCANLINE_INFERENCE_WORKERS: '2', SCANLINE_SHUTDOWN_DRAIN_TIMEOUT_MS: '5000' },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const printed = JSON.parse(r.stdout) as Record<string, any>;
    expect(Object.keys(printed).sort()).toEqual(Object.keys(DEFAULT_CONFIG).sort());
    expect(printed.server.port).toBe(0);
    expect(printed.results.machineId).toBe('lane-3');
    expect(printed.inference.workers).toBe(2);
    expect(printed.shutdown).toEqual({ drainTimeoutMs: 5000, exitTimeoutMs: 15000 });
    expect(printed.auth.oidc.clientSecret).toBe('<redacted>');
    expect(r.stdout).not.toContain('a-secret-token');
  });

  it('exits 2 with every problem listed', () => {
    const r = spawnSync(process.execPath, [BIN, 'serve', '--print-config'], {
      encoding: 'utf8',
      env: { ...process.env, SCANLINE_SERVER_PORT: 'eighty', SCANLINE_LOG_LEVEL: 'loud' },
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('SCANLINE_ERR_CONFIG_INVALID');
    expect(r.stderr).toContain('Expected a number for SCANLINE_SERVER_PORT (server.port) but received "eighty"');
    expect(r.stderr).toContain('for log.level but received "loud" of type string (from SCANLINE_LOG_LEVEL)');
  });
});
