/**
 * What keeps one client from starving the others at the transport: WebSockets and HTTP requests in flight per client
 * address, and a bounded queue for rendering images (each render holds the scan's raw lines, a plane and the encoded
 * image in memory, and its encoding occupies libuv's thread pool, which the raw archive's writes share: unbounded,
 * six png16 requests took the gateway from 0.5 to 2.3 GiB and held another portal's acks back 2.7 s).
 * Refusals are counted by error code in the server's refusal map (scanline_http_refusals_total).
 *
 * Threads: gateway JS thread.
 */
import { setRecent } from '../memory/index.js';
import { ScanlineError } from '../errors/index.js';

/** Counts per key (client address, account), refusing beyond a limit. */
export class KeyedCounter {
  private readonly counts = new Map<string, number>();

  constructor(readonly limit: number) {}

  /** Takes one for `key`; false (nothing taken) when `key` is at the limit. */
  acquire(key: string): boolean {
    const n = this.counts.get(key) ?? 0;
    if (n >= this.limit) return false;
    this.counts.set(key, n + 1);
    return true;
  }

  release(key: string): void {
    const n = this.counts.get(key) ?? 0;
    if (n <= 1) this.counts.delete(key);
    else this.counts.set(key, n - 1);
  }
}

/**
 * Runs at most `maxConcurrent` renders at once and queues at most `maxQueued` more, in arrival order; beyond that a
 * render is refused at once with SCANLINE_ERR_LIMIT_IMAGES (503), which costs the gateway nothing.
 */
export class RenderQueue {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    readonly maxConcurrent: number,
    readonly maxQueued: number,
    private readonly refused: (code: string) => void,
  ) {}

  async run<T>(render: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxConcurrent) {
      if (this.waiting.length >= this.maxQueued) {
        this.refused('SCANLINE_ERR_LIMIT_IMAGES');
        throw new ScanlineError(
          'SCANLINE_ERR_LIMIT_IMAGES',
          `${this.running} images are being rendered and ${this.waiting.length} wait (server.maxConcurrentImages, server.maxQueuedImages); try again shortly`,
          { retryAfterSec: 1 },
        );
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await render();
    } finally {
      const next = this.waiting.shift();
      // The slot passes to the next render as it is; otherwise it is freed.
      if (next) next();
      else this.running--;
    }
  }

  get queued(): number {
    return this.waiting.length;
  }

  get active(): number {
    return this.running;
  }
}

/**
 * Requests (and WebSocket upgrades) per second per client address, as a token bucket: `ratePerSecond` sustained,
 * bursts of up to `burst`. Checked before anything else, authentication included, so that a flood costs the gateway
 * a map lookup per request, not a token check or a render (SCANLINE_ERR_LIMIT_RATE). At most MAX_ADDRESSES buckets;
 * the least recently used are forgotten first.
 */
export class RateLimiter {
  private static readonly MAX_ADDRESSES = 10_000;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes a token for `address`; false when its bucket is empty. */
  take(address: string): boolean {
    const t = this.now();
    const b = this.buckets.get(address) ?? { tokens: this.burst, at: t };
    b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.ratePerSecond);
    b.at = t;
    const ok = b.tokens >= 1;
    if (ok) b.tokens -= 1;
    setRecent(this.buckets, address, b, RateLimiter.MAX_ADDRESSES); // least recently used forgotten first
    return ok;
  }
}
