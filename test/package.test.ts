/**
 * The package as npm sees it: main, types, exports and bin name files that exist once built (`npm test` builds
 * first); the programmatic entry resolves by the package's own name; every runtime dependency is used by the
 * shipped code and everything the shipped code imports is a runtime dependency (so `npm ci --omit=dev` runs it);
 * package-lock.json agrees with package.json (so `npm ci` does not refuse); `npm pack` ships what the CLI, the
 * workers, the UI and the native build need, and no tests or benchmarks.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  main: string;
  types: string;
  exports: Record<string, string | Record<string, string>>;
  bin: Record<string, string>;
  files: string[];
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** Package names of the bare imports of every .ts/.js file under `dir` (type-only imports excluded). */
function importedPackages(dir: string): Set<string> {
  const out = new Set<string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|js|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts')) {
        const text = readFileSync(p, 'utf8');
        for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^;]*?from\s+'([^']+)'|import\('([^']+)'\)/gm)) {
          if (m[2]) continue;
          const spec = m[3] ?? m[4];
          if (spec.startsWith('.') || spec.startsWith('node:') || builtinModules.includes(spec)) continue;
          const parts = spec.split('/');
          out.add(spec.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]);
        }
      }
    }
  };
  walk(join(ROOT, dir));
  return out;
}

describe('package.json', () => {
  it('main, types, exports and bin name files that exist', () => {
    const dot = pkg.exports['.'] as Record<string, string>;
    for (const f of [pkg.main, pkg.types, dot.default, dot.types, pkg.bin.scanline]) {
      expect(existsSync(join(ROOT, f)), `${f} (run npm run build)`).toBe(true);
    }
    expect(join(ROOT, dot.default)).toBe(join(ROOT, pkg.main));
    const bin = join(ROOT, pkg.bin.scanline);
    expect(readFileSync(bin, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(statSync(bin).mode & 0o111).not.toBe(0);
  });

  it('the programmatic entry resolves by the package name and exports startGateway and loadConfig', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import('${pkg.name}').then((m) => console.log(Object.keys(m).sort().join(',')))`], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split(',')).toEqual(
      expect.arrayContaining(['DEFAULT_CONFIG', 'ERROR_CODES', 'ScanlineError', 'createRootLogger', 'loadConfig', 'resolveConfig', 'startGateway']),
    );
  });

  it('every runtime dependency is used by the shipped code, and the shipped code imports only runtime dependencies', () => {
    const shipped = new Set([...importedPackages('src'), ...importedPackages('tools'), ...importedPackages('bin')]);
    // node-addon-api is used by the native build at install time (binding.gyp), not imported.
    const gyp = readFileSync(join(ROOT, 'binding.gyp'), 'utf8');
    const unused = Object.keys(pkg.dependencies).filter((d) => !shipped.has(d) && !gyp.includes(d));
    expect(unused).toEqual([]);
    const notRuntime = [...shipped].filter((d) => !(d in pkg.dependencies)).sort();
    expect(notRuntime).toEqual([]);
  });

  it('package-lock.json records the same dependencies (npm ci refuses a lock out of step)', () => {
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dependencies?: Record<string, string>; devDependencies?: Record<string, string> }>;
    };
    expect(lock.packages[''].dependencies).toEqual(pkg.dependencies);
    expect(lock.packages[''].devDependencies).toEqual(pkg.devDependencies);
  });

  it('npm pack ships the CLI, the compiled sources and tools, the UI, the models and the native sources; no tests or benches', () => {
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status).toBe(0);
    const files = new Set((JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>)[0].files.map((f) => f.path));
    for (const f of [
      'bin/scanline.js',
      'dist/src/index.js',
      'dist/src/cli.js',
      'dist/tools/cli.js',
      'dist/src/inference/inference-worker.js',
      'web/index.html',
      'models/goods-v1/model.json',
      'models/threats-v1/model.onnx',
      'binding.gyp',
      'native/addon.cc',
      'ops/scanline.service',
    ]) {
      expect(files.has(f), f).toBe(true);
    }
    expect([...files].filter((f) => /^(test|bench|dist\/bench|dist\/test|build|node_modules|data)\//.test(f))).toEqual([]);
  }, 60_000);
});
