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

  it("drops a deleted scan's images at once, and expired ones when swept without a request", async () => {
    let now = 0;
    const cache = new RenderedImageCache(1000, () => now);
    await cache.get('scan-1\n0\n10\n2026', async () => image(100));
    await cache.get('scan-1\n1\n10\n2026', async () => image(100));
    // Another scan whose id starts the same: kept.
    await cache.get('scan-10\n0\n10\n2026', async () => image(50));
    cache.dropScan('scan-1');
    expect(cache.bytes).toBe(50);
    now += IMAGE_CACHE_MAX_AGE_MS + 1;
    cache.dropExpired();
    expect(cache.bytes).toBe(0);
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
    pacer.answerLater(a, '10.0.0.1', () => answered.push('a'));
    pacer.answerLater(b, '10.0.0.1', () => answered.push('b'));
    pacer.answerLater(c, '10.0.0.1', () => answered.push('c')); // a third while two are held: at once
    expect(answered).toEqual(['c']);
    expect(pacer.held).toBe(2);
    b.abort();
    await new Promise((r) => setTimeout(r, 60));
    expect(answered).toEqual(['c', 'a']);
    expect(pacer.held).toBe(0);
    expect(pacer.delayedTotal).toBe(2);
    // delay(): for async handlers; flush() answers everything now.
    let resolved = false;
    void pacer.delay('10.0.0.1').then(() => {
      resolved = true;
    });
    pacer.flush();
    await Promise.resolve();
    expect(resolved).toBe(true);
  });

  it('answers at once with a delay of 0', () => {
    const pacer = new RefusalPacer(0, 100);
    const answered: string[] = [];
    pacer.answerLater(fakeResponse(), '10.0.0.1', () => answered.push('now'));
    expect(answered).toEqual(['now']);
    expect(pacer.delayedTotal).toBe(0);
  });
});

describe('RefusalPacer escalation', () => {
  it('holds a repeat offender longer, doubling per ESCALATE_EVERY held, up to maxDelayMs; other addresses keep the base delay', async () => {
    const pacer = new RefusalPacer(20, 10_000, 70);
    const step = RefusalPacer.ESCALATE_EVERY;
    expect(pacer.delayFor('flood')).toBe(20);
    const doneAt: Record<string, number[]> = { flood: [], quiet: [] };
    const t0 = performance.now();
    const hold = (address: string): void => pacer.answerLater(fakeResponse(), address, () => doneAt[address].push(performance.now() - t0));
    for (let i = 0; i < step; i++) hold('flood');
    expect(pacer.delayFor('flood')).toBe(40);
    for (let i = 0; i < step; i++) hold('flood');
    // 4x would be 80: capped at maxDelayMs.
    expect(pacer.delayFor('flood')).toBe(70);
    for (let i = 0; i < step; i++) hold('flood');
    expect(pacer.delayFor('quiet')).toBe(20);
    hold('quiet');
    expect(pacer.escalatedTotal).toBe(2 * step);
    await new Promise((r) => setTimeout(r, 150));
    expect(pacer.held).toBe(0);
    // The quiet address was answered after ~20 ms, before the flood's escalated refusals.
    expect(doneAt.quiet[0]).toBeLessThan(Math.min(...doneAt.flood.slice(step)));
    expect(doneAt.flood.slice(2 * step).every((t) => t >= 65)).toBe(true);
    // Answered, the address is back to the base delay.
    expect(pacer.delayFor('flood')).toBe(20);
  });

  it("answers a quiet address's refusal after the base delay while only a flood's long ones are held", async () => {
    const pacer = new RefusalPacer(20, 10_000, 640);
    // 16 refusals at each delay, 20 ms to 640 ms.
    for (let i = 0; i < 6 * RefusalPacer.ESCALATE_EVERY; i++) pacer.answerLater(fakeResponse(), 'flood', () => undefined);
    expect(pacer.delayFor('flood')).toBe(640);
    await new Promise((r) => setTimeout(r, 400));
    // Only the 640 ms ones are left, their timer set for ~240 ms from now.
    expect(pacer.held).toBe(RefusalPacer.ESCALATE_EVERY);
    const t0 = performance.now();
    const quietMs = await new Promise<number>((resolve) => pacer.answerLater(fakeResponse(), 'quiet', () => resolve(performance.now() - t0)));
    expect(quietMs).toBeGreaterThanOrEqual(15);
    expect(quietMs).toBeLessThan(150);
  });

  it('counts aborted refusals against their address until they fall due', async () => {
    const pacer = new RefusalPacer(20, 10_000, 80);
    const answered: number[] = [];
    const responses = Array.from({ length: RefusalPacer.ESCALATE_EVERY }, () => fakeResponse());
    for (const [i, res] of responses.entries()) pacer.answerLater(res, 'a', () => answered.push(i));
    for (const res of responses) res.abort();
    // A client that hangs up and comes back at once is still a repeat offender.
    expect(pacer.delayFor('a')).toBe(40);
    await new Promise((r) => setTimeout(r, 50));
    expect(answered).toEqual([]);
    expect(pacer.held).toBe(0);
    expect(pacer.delayFor('a')).toBe(20);
  });

  it('answers a wave that falls due together over several event-loop turns, letting other work in between', async () => {
    // The clock stands still while the wave is held, so that all of it falls due at the same instant.
    let frozen: number | null = performance.now();
    const pacer = new RefusalPacer(10, 10_000, 10, () => frozen ?? performance.now());
    const n = 3 * RefusalPacer.ANSWERS_PER_TURN;
    const order: string[] = [];
    // Each from its own address: no escalation, all due together.
    let otherWork: Promise<void> | null = null;
    for (let i = 0; i < n; i++)
      pacer.answerLater(fakeResponse(), `10.0.0.${i}`, () => {
        order.push('answer');
        // Something else the loop has to do meanwhile (an ack, a frame), arriving as the wave starts: it gets in
        // before the wave is through.
        otherWork ??= new Promise<void>((resolve) =>
          setImmediate(() => {
            order.push('other');
            resolve();
          }),
        );
      });
    frozen = null;
    for (let i = 0; i < 200 && pacer.held > 0; i++) await new Promise((r) => setTimeout(r, 10));
    await otherWork;
    expect(order.filter((x) => x === 'answer')).toHaveLength(n);
    const other = order.indexOf('other');
    expect(other).toBeGreaterThan(0);
    expect(other).toBeLessThan(n);
  });
});

describe('ByteRate', () => {
  it('grants a chunk whole or not at once, up to the burst, as time passes, per address', () => {
    let now = 0;
    const rate = new ByteRate(1000, 1000, () => now);
    expect(rate.take('a', 1500)).toBe(1000);
    expect(rate.take('a', 10)).toBe(0);
    expect(rate.waitMs('a', 500)).toBe(500);
    expect(rate.take('b', 600)).toBe(600);
    now += 250;
    // 250 held: 400 is not granted in part.
    expect(rate.take('a', 400)).toBe(0);
    expect(rate.take('a', 250)).toBe(250);
    now += 10_000;
    expect(rate.take('a', 5000)).toBe(1000);
  });

  it('serves the waiters of one address in turn, a body coming back goes behind the others, cancelled ones skipped', async () => {
    const rate = new ByteRate(100_000, 1000);
    expect(rate.take('a', 1000)).toBe(1000);
    const order: string[] = [];
    // Two bodies of 'a' wait for 1000 bytes each (10 ms apiece at this rate); each queues again after its grant.
    const body = (name: string, chunks: number): void => {
      rate.wait('a', 1000, (n) => {
        order.push(`${name}:${n}`);
        if (chunks > 1) body(name, chunks - 1);
      });
    };
    body('x', 3);
    body('y', 3);
    const cancel = rate.wait('a', 1000, () => order.push('gone'));
    cancel();
    // Someone waits: a take at once is refused even when the bucket refills, so nobody jumps the queue.
    await new Promise((r) => setTimeout(r, 15));
    expect(rate.take('a', 1)).toBe(0);
    // Another address is not held up by them.
    expect(rate.take('b', 1000)).toBe(1000);
    await new Promise((r) => setTimeout(r, 150));
    expect(order).toEqual(['x:1000', 'y:1000', 'x:1000', 'y:1000', 'x:1000', 'y:1000']);
    expect(rate.take('a', 1000)).toBe(1000);
  });
});
