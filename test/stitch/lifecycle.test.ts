/**
 * Lifecycle guards: one job at a time (STITCH_BUSY), close() while a job runs, STITCH_CLOSED afterwards, caller
 * buffers checked (STITCH_BUFFER). Both implementations.
 */
import { describe, expect, it } from 'vitest';
import { type ErrorCode, ScanlineError } from '../../src/errors/index.js';
import { createStitcher } from '../../src/stitch/index.js';
import { type StitcherImplementation, stitcherOf } from '../helpers/ts-stitcher.js';
import { buffersFor, makeScene, slice } from './helpers.js';

const scene = makeScene({
  pixels: 256,
  energies: 2,
  lines: 512,
  seed: 21,
  noise: 1,
  rects: [{ line0: 50, line1: 400, pixel0: 30, pixel1: 200, high: 1, low: 1.4 }],
});

function loaded(impl: StitcherImplementation) {
  const st = createStitcher({ pixels: 256, energies: 2, maxLines: 1024, airLines: 16 }, stitcherOf(impl));
  st.push(1, 0, 512, slice(scene, 0, 512));
  st.finish(512);
  return { st, buffers: buffersFor(st, 32) };
}

async function rejection(promise: Promise<unknown>): Promise<ScanlineError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ScanlineError);
    return err as ScanlineError;
  }
  throw new Error('expected a rejection');
}

function code(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ScanlineError);
    return (err as ScanlineError).code;
  }
  return undefined;
}

describe.each(['native', 'typescript'] as const)('%s stitcher lifecycle', (impl) => {
  it('a second process() while one runs rejects with STITCH_BUSY; the first completes', async () => {
    const { st, buffers } = loaded(impl);
    const first = st.process(buffers);
    const second = st.process({ tiles: new Float32Array(st.tileFloats), preview: new Uint8Array(st.previewBytes) });
    const err = await rejection(second);
    expect(err.code).toBe('SCANLINE_ERR_STITCH_BUSY');
    const r = await first;
    expect(r.calibrated).toEqual([0, 512]);
    const third = await st.process(buffers); // free again
    expect(third.done).toBe(true);
  });

  it('close() during a job lets it finish, then every call throws STITCH_CLOSED', async () => {
    const { st, buffers } = loaded(impl);
    const job = st.process(buffers);
    st.close();
    const r = await job;
    expect(r.calibrated).toEqual([0, 512]);
    expect(r.tiles.length).toBeGreaterThan(0);
    expect(code(() => st.push(1, 0, 1, slice(scene, 0, 1)))).toBe('SCANLINE_ERR_STITCH_CLOSED');
    expect(code(() => st.finish(512))).toBe('SCANLINE_ERR_STITCH_CLOSED');
    expect(code(() => st.stats())).toBe('SCANLINE_ERR_STITCH_CLOSED');
    expect(code(() => st.readRaw(0, 1, new Uint16Array(512)))).toBe('SCANLINE_ERR_STITCH_CLOSED');
    expect(code(() => st.readAttenuation(0, 0, 1, new Float32Array(256)))).toBe('SCANLINE_ERR_STITCH_CLOSED');
    expect(code(() => st.readMaterial(0, 1, new Uint8Array(256)))).toBe('SCANLINE_ERR_STITCH_CLOSED');
    expect((await rejection(st.process(buffers))).code).toBe('SCANLINE_ERR_STITCH_CLOSED');
    st.close(); // safe twice
  });

  it('close() when idle frees at once', async () => {
    const { st, buffers } = loaded(impl);
    await st.process(buffers);
    st.close();
    expect(code(() => st.stats())).toBe('SCANLINE_ERR_STITCH_CLOSED');
  });

  it('buffers are checked: at least one tile, previewBytes, the right types', async () => {
    const { st } = loaded(impl);
    const ok = { tiles: new Float32Array(st.tileFloats), preview: new Uint8Array(st.previewBytes) };
    const short1 = await rejection(st.process({ ...ok, tiles: new Float32Array(st.tileFloats - 1) }));
    expect(short1.code).toBe('SCANLINE_ERR_STITCH_BUFFER');
    const short2 = await rejection(st.process({ ...ok, preview: new Uint8Array(st.previewBytes - 1) }));
    expect(short2.code).toBe('SCANLINE_ERR_STITCH_BUFFER');
    const wrong = await rejection(st.process({ ...ok, tiles: new Float64Array(st.tileFloats) as unknown as Float32Array }));
    expect(wrong.code).toBe('SCANLINE_ERR_STITCH_BUFFER');
    expect(wrong.callerError).toBe(true);
    // Nothing was started by the refused calls.
    expect((await st.process(ok)).calibrated).toEqual([0, 512]);
  });
});

describe('native process() rejections', () => {
  it('carry the caller stack', async () => {
    const { st } = loaded('native');
    const err = await rejection(st.process({ tiles: new Float32Array(1), preview: new Uint8Array(1) }));
    expect(err.stack).toContain('lifecycle.test.ts');
  });
});
