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
import type { HttpResponse } from './uws.js';

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
 * Token buckets per client address: `ratePerSecond` sustained, at most `burst` held, a new address starting full. At
 * most MAX_ADDRESSES buckets; the least recently used are forgotten first. The rate limits below are made of it.
 */
class TokenBuckets {
  private static readonly MAX_ADDRESSES = 10_000;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    private readonly now: () => number,
  ) {}

  /** The bucket of `address`, refilled up to now (the caller takes from `tokens`). */
  of(address: string): { tokens: number; at: number } {
    const t = this.now();
    const b = this.buckets.get(address) ?? { tokens: this.burst, at: t };
    b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.ratePerSecond);
    b.at = t;
    setRecent(this.buckets, address, b, TokenBuckets.MAX_ADDRESSES); // least recently used forgotten first
    return b;
  }
}

/**
 * Bytes per second per client address for large response bodies (scan images, DICOS files), `bytesPerSecond` with
 * bursts of `burst`. One viewer pulling a cached 15 MB image as fast as loopback goes took ~330 MB/s and the shared
 * cores with it (bench:security); paced, a client gets its images as fast as a screen needs them and the portals keep
 * theirs.
 */
export class ByteRate {
  private readonly buckets: TokenBuckets;

  constructor(
    readonly bytesPerSecond: number,
    readonly burst: number,
    now: () => number = () => performance.now(),
  ) {
    this.buckets = new TokenBuckets(bytesPerSecond, burst, now);
  }

  /** Takes up to `want` bytes for `address`; returns how many it may write now (0: none, see waitMs). */
  take(address: string, want: number): number {
    const b = this.buckets.of(address);
    const granted = Math.max(0, Math.min(want, Math.floor(b.tokens)));
    b.tokens -= granted;
    return granted;
  }

  /** How long until `address` may write `bytes` (at most the burst), ms. */
  waitMs(address: string, bytes: number): number {
    const need = Math.min(bytes, this.burst) - this.buckets.of(address).tokens;
    return need <= 0 ? 0 : Math.ceil((need / this.bytesPerSecond) * 1000);
  }
}

/** The refusals a client earns at the HTTP door by exceeding a limit: the ones RefusalPacer answers late. */
const LIMIT_REFUSALS: ReadonlySet<string> = new Set([
  'SCANLINE_ERR_LIMIT_RATE',
  'SCANLINE_ERR_LIMIT_REQUESTS',
  'SCANLINE_ERR_LIMIT_IMAGES',
  'SCANLINE_ERR_LIMIT_CONNECTIONS',
  'SCANLINE_ERR_LIMIT_SCREENS',
  'SCANLINE_ERR_OPERATOR_TOO_MANY',
]);

export function isLimitRefusal(err: ScanlineError): boolean {
  return LIMIT_REFUSALS.has(err.code);
}

interface HeldRefusal {
  due: number;
  answer: () => void;
  cancelled: boolean;
}

/** What a taken queue slot holds until compaction. */
const TAKEN: HeldRefusal = { due: 0, answer: () => undefined, cancelled: true };

/**
 * Answers the refusals of over-limit clients late (a tarpit): `delayMs` after the request, not at once. A client that
 * retries on each answer (every HTTP client, every WebSocket reconnect loop) then makes one attempt per delay per
 * connection instead of as many as the gateway can refuse: refused at once, 50 image requests and 500 feed connections
 * from one address came back ~2,800 times a second and took the event loop, and the good portal's ack p99 went from
 * ~20 to 110-300 ms (bench:security, 'Under attack'). A held refusal costs its socket and an entry here, no timer of
 * its own (one timer serves them all, in arrival order: the delay is the same for all). At most `maxHeld` are held;
 * beyond that, and with `delayMs` 0, refusals are answered at once. A client that goes away while held costs nothing
 * more. What a tarpit cannot slow is a client that does not wait for answers: that is the firewall's (docs/security.md).
 *
 * Threads: gateway JS thread.
 */
export class RefusalPacer {
  private queue: HeldRefusal[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Refusals answered late since the start (scanline_http_refusals_delayed_total). */
  delayedTotal = 0;

  constructor(
    readonly delayMs: number,
    readonly maxHeld: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Refusals held now (scanline_http_refusals_held). */
  get held(): number {
    return this.queue.length - this.head;
  }

  /**
   * For a synchronous uWS handler (a route before its body is read, a WebSocket upgrade): runs `answer` (which writes
   * the refusal to `res`) after the delay, or now. Registers `res.onAborted` itself, so call it before returning from
   * the handler and only for a response nothing else answers.
   */
  answerLater(res: HttpResponse, answer: () => void): void {
    if (!this.canHold()) {
      answer();
      return;
    }
    const entry: HeldRefusal = { due: this.now() + this.delayMs, answer, cancelled: false };
    res.onAborted(() => {
      entry.cancelled = true;
    });
    this.hold(entry);
  }

  /** For an async handler whose response already watches for aborts: resolves after the delay (or now). */
  delay(): Promise<void> {
    if (!this.canHold()) return Promise.resolve();
    return new Promise((resolve) => this.hold({ due: this.now() + this.delayMs, answer: resolve, cancelled: false }));
  }

  /** Answers every held refusal now (shutdown: the sockets are about to close). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.run(Number.POSITIVE_INFINITY);
  }

  private canHold(): boolean {
    return this.delayMs > 0 && this.held < this.maxHeld;
  }

  private hold(entry: HeldRefusal): void {
    this.queue.push(entry);
    this.delayedTotal++;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.held === 0) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.run(this.now());
        this.schedule();
      },
      Math.max(0, this.queue[this.head].due - this.now()),
    );
    // Held refusals never keep a process alive that has nothing else to do.
    this.timer.unref();
  }

  private run(until: number): void {
    while (this.head < this.queue.length && this.queue[this.head].due <= until) {
      const entry = this.queue[this.head];
      // Taken out at once: a finished entry must not keep its response alive until the queue is compacted.
      this.queue[this.head++] = TAKEN;
      if (entry.cancelled) continue;
      try {
        entry.answer();
      } catch {
        // A response that cannot be written any more (its socket closed in between): nothing to answer. The other
        // held refusals are answered all the same.
      }
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * Runs at most `maxConcurrent` renders at once and queues at most `maxQueued` more, in arrival order; beyond that a
 * render is refused with SCANLINE_ERR_LIMIT_IMAGES (503), which costs the gateway nothing (answered late through the
 * pacer, as every limit refusal).
 */
export class RenderQueue {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    readonly maxConcurrent: number,
    readonly maxQueued: number,
    private readonly refused: (code: string) => void,
    /** Answers the refusal late (the caller's response must already watch for aborts); none: at once. */
    private readonly pacer: RefusalPacer | null = null,
  ) {}

  async run<T>(render: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxConcurrent) {
      if (this.waiting.length >= this.maxQueued) {
        this.refused('SCANLINE_ERR_LIMIT_IMAGES');
        const err = new ScanlineError(
          'SCANLINE_ERR_LIMIT_IMAGES',
          `${this.running} images are being rendered and ${this.waiting.length} wait (server.maxConcurrentImages, server.maxQueuedImages); try again shortly`,
          { retryAfterSec: 1 },
        );
        await this.pacer?.delay();
        throw err;
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
  private readonly buckets: TokenBuckets;

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    now: () => number = Date.now,
  ) {
    this.buckets = new TokenBuckets(ratePerSecond, burst, now);
  }

  /** Takes a token for `address`; false when its bucket is empty. */
  take(address: string): boolean {
    const b = this.buckets.of(address);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
