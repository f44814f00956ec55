/**
 * RenderedImageCache and RefusalPacer on their own, with a clock the test moves: sharing, eviction by size and age,
 * a failed render reaching every request that joined it; refusals answered in order, after the delay, or at once.
 */
import { describe, expect, it } from 'vitest';
import { IMAGE_CACHE_MAX_AGE_MS, RenderedImageCache, type RenderedImage } from '../../src/server/image-cache.js';
import { ByteRate, RefusalPacer } from '../../src/server/limits.js';
import type { HttpResponse } from '../../src/server/uws.js';

const image = (bytes: number, lines = 1): RenderedImage => ({ png: Buffer.alloc(bytes, 7), lines });

describe('RenderedImageCache', () => {
  it('shares a running render, keeps the result, and evicts the least recently used past maxBytes', async () => {
    let now = 0;
    const cache = new RenderedImageCache(400, () => now);
    let renders = 0;
    const render = (bytes: number) => async (): Promise<RenderedImage> => {
      renders++;
      return image(bytes);
    };
    const [a1, a2] = await Promise.all([cache.get('a', render(100)), cache.get('a', render(100))]);
    expect(a1).toBe(a2);
    expect(renders).toBe(1);
    await cache.get('b', render(100));
    await cache.get('c', render(100));
    expect(cache.bytes).toBe(300);
    // 'a' used again: 'b' is now the least recently used, and goes first when 'd' does not fit.
    expect(await cache.get('a', render(100))).toBe(a1);
    await cache.get('d', render(100));
    await cache.get('e', render(100));
    expect(cache.bytes).toBe(400);
    renders = 0;
    await cache.get('b', render(100));
    expect(renders).toBe(1);
    // Over a quarter of maxBytes: served, not kept.
    await cache.get('big', render(101));
    await cache.get('big', render(101));
    expect(renders).toBe(3);
    expect(cache.stats).toMatchObject({ shared: 1, hits: 1 });
    // Old entries are dropped whatever their use.
    now += IMAGE_CACHE_MAX_AGE_MS + 1;
    await cache.get('x', render(10));
    expect(cache.bytes).toBe(10);
  });

  it('gives a failed render to every request that joined it, and keeps nothing', async () => {
    const cache = new RenderedImageCache(1000);
    const failing = async (): Promise<RenderedImage> => {
      await new Promise((r) => setTimeout(r, 10));
      throw new Error('render refused');
    };
    const results = await Promise.allSettled([cache.get('k', failing), cache.get('k', failing)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(cache.bytes).toBe(0);
    expect(await cache.get('k', async () => image(5))).toMatchObject({ lines: 1 });
  });
});

/** The part of a uWS response the pacer uses. */
function fakeResponse(): HttpResponse & { abort(): void } {
  let onAborted: (() => void) | null = null;
  return {
    onAborted(cb: () => void) {
      onAborted = cb;
      return this;
    },
    abort() {
      onAborted?.();
    },
  } as unknown as HttpResponse & { abort(): void };
}

describe('RefusalPacer', () => {
  it('answers held refusals in order after the delay, skips aborted ones, and answers at once past maxHeld', async () => {
    const pacer = new RefusalPacer(30, 2);
    const answered: string[] = [];
    const a = fakeResponse();
    const b = fakeResponse();
    const c = fakeResponse();
    pacer.answerLater(a, () => answered.push('a'));
    pacer.answerLater(b, () => answered.push('b'));
    pacer.answerLater(c, () => answered.push('c')); // a third while two are held: at once
    expect(answered).toEqual(['c']);
    expect(pacer.held).toBe(2);
    b.abort();
    await new Promise((r) => setTimeout(r, 60));
    expect(answered).toEqual(['c', 'a']);
    expect(pacer.held).toBe(0);
    expect(pacer.delayedTotal).toBe(2);
    // delay(): for async handlers; flush() answers everything now.
    let resolved = false;
    void pacer.delay().then(() => {
      resolved = true;
    });
    pacer.flush();
    await Promise.resolve();
    expect(resolved).toBe(true);
  });

  it('answers at once with a delay of 0', () => {
    const pacer = new RefusalPacer(0, 100);
    const answered: string[] = [];
    pacer.answerLater(fakeResponse(), () => answered.push('now'));
    expect(answered).toEqual(['now']);
    expect(pacer.delayedTotal).toBe(0);
  });
});

describe('ByteRate', () => {
  it('grants up to the burst at once, then bytes as time passes, per address', () => {
    let now = 0;
    const rate = new ByteRate(1000, 1000, () => now);
    expect(rate.take('a', 1500)).toBe(1000);
    expect(rate.take('a', 10)).toBe(0);
    expect(rate.waitMs('a', 500)).toBe(500);
    expect(rate.take('b', 600)).toBe(600);
    now += 250;
    expect(rate.take('a', 1000)).toBe(250);
    now += 10_000;
    expect(rate.take('a', 5000)).toBe(1000);
  });
});
