import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, ScanlineError, invalidArgument, isErrorCode, toScanlineError } from '../../src/errors/index.js';

const docs = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const documented = new Set([...docs.matchAll(/^\| `(SCANLINE_ERR_[A-Z0-9_]+)` \|/gm)].map((m) => m[1]));
const sourceFiles = ['src', 'native'];

describe('error registry', () => {
  it('every registered code is documented in docs/errors.md', () => {
    const missing = Object.keys(ERROR_CODES).filter((c) => !documented.has(c));
    expect(missing).toEqual([]);
  });

  it('every documented code is registered (retired codes stay registered)', () => {
    const unknown = [...documented].filter((c) => !isErrorCode(c));
    expect(unknown).toEqual([]);
  });

  it('codes follow SCANLINE_ERR_<AREA>_<WHAT> (the one generic SCANLINE_ERR_INTERNAL aside) and carry a valid HTTP status', () => {
    for (const [code, spec] of Object.entries(ERROR_CODES)) {
      if (code !== 'SCANLINE_ERR_INTERNAL') expect(code).toMatch(/^SCANLINE_ERR_[A-Z]+_[A-Z0-9_]+$/);
      expect(spec.status).toBeGreaterThanOrEqual(400);
      expect(spec.status).toBeLessThan(600);
    }
  });

  it('every code string used in the sources (TS and C++) is registered', async () => {
    const { readdirSync, statSync } = await import('node:fs');
    const { join } = await import('node:path');
    const root = new URL('../../', import.meta.url).pathname;
    const used = new Set<string>();
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (/\.(ts|cc|h)$/.test(name)) for (const m of readFileSync(p, 'utf8').matchAll(/SCANLINE_ERR_[A-Z0-9_]+/g)) used.add(m[0]);
      }
    };
    for (const d of sourceFiles) walk(join(root, d));
    expect([...used].filter((c) => !isErrorCode(c))).toEqual([]);
  });
});

describe('ScanlineError', () => {
  it('carries code, status and details onto the wire shape', () => {
    const e = new ScanlineError('SCANLINE_ERR_SLICE_SEQ_AHEAD', 'too far', { streamId: 3, seq: 99, nextSeq: 4 });
    expect(e).toBeInstanceOf(Error);
    expect(e.status).toBe(400);
    expect(e.callerError).toBe(true);
    expect(e.toJSON()).toEqual({ code: 'SCANLINE_ERR_SLICE_SEQ_AHEAD', message: 'too far', streamId: 3, seq: 99, nextSeq: 4 });
  });

  it('maps errors that carry a registered code (as the addon throws them) and wraps others', () => {
    const native = Object.assign(new Error('closed'), { code: 'SCANLINE_ERR_STITCH_CLOSED' });
    expect(toScanlineError(native, 'SCANLINE_ERR_STITCH_FAILED').code).toBe('SCANLINE_ERR_STITCH_CLOSED');
    expect(toScanlineError(new Error('x'), 'SCANLINE_ERR_STITCH_FAILED').code).toBe('SCANLINE_ERR_STITCH_FAILED');
  });

  it('formats invalid arguments in one shape', () => {
    expect(invalidArgument('SCANLINE_ERR_STITCH_OPTIONS', 'an integer 1..4096', 'pixels', 5000).message).toBe(
      'Expected an integer 1..4096 for pixels but received 5000 of type number',
    );
  });
});
