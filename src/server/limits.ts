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

interface RateWaiter {
  bytes: number;
  granted: (bytes: number) => void;
  cancelled: boolean;
}

/**
 * Bytes per second per client address for large response bodies (scan images, DICOS files), `bytesPerSecond` with
 * bursts of `burst`. One viewer pulling a cached 15 MB image as fast as loopback goes took ~330 MB/s and the shared
 * cores with it (bench:security); paced, a client gets its images as fast as a screen needs them and the portals keep
 * theirs.
 *
 * The bodies of one address take turns: a body takes a chunk at once only when nobody of its address waits, and
 * waiters are served in order, one timer per address. Without the queue, the download whose timer happened to fire
 * first after each refill took every chunk, and the other ended when the first was done (test/server/limits.test.ts).
 *
 * Threads: gateway JS thread.
 */
export class ByteRate {
  private readonly buckets: TokenBuckets;
  private readonly waiting = new Map<string, { queue: RateWaiter[]; timer: NodeJS.Timeout | null }>();

  constructor(
    readonly bytesPerSecond: number,
    readonly burst: number,
    now: () => number = () => performance.now(),
  ) {
    this.buckets = new TokenBuckets(bytesPerSecond, burst, now);
  }

  /**
   * Takes `want` bytes (at most the burst) for `address` now, if its bucket holds them and no other body of the
   * address is waiting: returns how many it may write, all of them or 0 (then call `wait`).
   */
  take(address: string, want: number): number {
    if (this.waiting.has(address)) return 0;
    return this.takeNow(address, want);
  }

  /**
   * Queues for `want` bytes (at most the burst) behind the address's other waiters: `granted(n)` is called once, from
   * a timer, with the bytes taken for this caller. Returns a cancel function (the client went away).
   */
  wait(address: string, want: number, granted: (bytes: number) => void): () => void {
    const waiter: RateWaiter = { bytes: Math.min(want, this.burst), granted, cancelled: false };
    let w = this.waiting.get(address);
    if (!w) {
      w = { queue: [], timer: null };
      this.waiting.set(address, w);
    }
    w.queue.push(waiter);
    this.schedule(address);
    return () => {
      waiter.cancelled = true;
    };
  }

  /** How long until `address` may write `bytes` (at most the burst), ms. */
  waitMs(address: string, bytes: number): number {
    const need = Math.min(bytes, this.burst) - this.buckets.of(address).tokens;
    return need <= 0 ? 0 : Math.ceil((need / this.bytesPerSecond) * 1000);
  }

  private takeNow(address: string, want: number): number {
    const b = this.buckets.of(address);
    const n = Math.min(want, this.burst);
    if (b.tokens < n) return 0;
    b.tokens -= n;
    return n;
  }

  private schedule(address: string): void {
    const w = this.waiting.get(address);
    if (!w || w.timer) return;
    while (w.queue.length > 0 && w.queue[0].cancelled) w.queue.shift();
    if (w.queue.length === 0) {
      this.waiting.delete(address);
      return;
    }
    w.timer = setTimeout(
      () => {
        w.timer = null;
        this.serve(address);
      },
      Math.max(1, this.waitMs(address, w.queue[0].bytes)),
    );
    // A download in progress holds its socket open; this timer alone never keeps a process alive.
    w.timer.unref();
  }

  /** Grants the waiters of `address` in order while the bucket holds their bytes, then waits for the next. */
  private serve(address: string): void {
    const w = this.waiting.get(address);
    if (!w) return;
    while (w.queue.length > 0) {
      const head = w.queue[0];
      if (head.cancelled) {
        w.queue.shift();
        continue;
      }
      const n = this.takeNow(address, head.bytes);
      if (n === 0) break;
      w.queue.shift();
      try {
        // May queue the same body again (its next chunk): it goes behind the others.
        head.granted(n);
      } catch {
        // A body that cannot be written any more: the others are served all the same.
      }
    }
    this.schedule(address);
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
  /** The client address it is charged to (RefusalPacer.heldBy). */
  address: string;
  answer: () => void;
  cancelled: boolean;
}

/** What a taken queue slot holds until compaction. */
const TAKEN: HeldRefusal = { due: 0, address: '', answer: () => undefined, cancelled: true };

/** Held refusals of one delay, in arrival order (so in due order): an array with a moving head, compacted now and then. */
class HeldQueue {
  private items: HeldRefusal[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  /** The due time of the first, or +Infinity when empty. */
  get firstDue(): number {
    return this.head < this.items.length ? this.items[this.head].due : Number.POSITIVE_INFINITY;
  }

  push(entry: HeldRefusal): void {
    this.items.push(entry);
  }

  shift(): HeldRefusal {
    const entry = this.items[this.head];
    // Taken out at once: a finished entry must not keep its response alive until the queue is compacted.
    this.items[this.head++] = TAKEN;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return entry;
  }
}

/**
 * Answers the refusals of over-limit clients late (a tarpit): `delayMs` after the request, not at once. A client that
 * retries on each answer (every HTTP client, every WebSocket reconnect loop) then makes one attempt per delay per
 * connection instead of as many as the gateway can refuse: refused at once, 50 image requests and 500 feed connections
 * from one address came back ~2,800 times a second and took the event loop, and the good portal's ack p99 went from
 * ~20 to 110-300 ms (bench:security, 'Under attack').
 *
 * Repeat offenders wait longer: an address that already has ESCALATE_EVERY refusals held waits twice the delay, with
 * 2 x ESCALATE_EVERY four times, and so on up to `maxDelayMs`. A client that runs into a limit now and then (a screen
 * reconnecting, a script a little too fast) never has that many held and waits `delayMs`; 500 sockets of one address
 * wait `maxDelayMs` each and come back that much less often (bench:security, 'Under attack, escalated').
 *
 * Answers go out at most ANSWERS_PER_TURN per event-loop turn; the rest follow on the next turn, so that a wave of
 * refusals falling due together (an attacker's sockets, refused together, come back together) never holds up a
 * portal's acks for the whole wave. A held refusal costs its socket and an entry here, no timer of its own (one timer
 * serves them all). At most `maxHeld` are held; beyond that, and with `delayMs` 0, refusals are answered at once. A
 * client that goes away while held costs nothing more. What a tarpit cannot slow is a client that does not wait for
 * answers: that is the firewall's (docs/security.md).
 *
 * Threads: gateway JS thread.
 */
export class RefusalPacer {
  /** Refusals one address may have held before its next one waits twice as long (then 4x at twice this, ...). */
  static readonly ESCALATE_EVERY = 16;
  /** Answers written per event-loop turn, at most. */
  static readonly ANSWERS_PER_TURN = 64;
  /** One queue per delay: delayMs x 2^i, the last one maxDelayMs. */
  private readonly queues: HeldQueue[];
  /** Held refusals per client address (aborted ones included until they fall due: the client may already be back). */
  private readonly heldBy = new Map<string, number>();
  private heldCount = 0;
  private timer: NodeJS.Timeout | null = null;
  /** When `timer` fires: a refusal held later that falls due sooner (a shorter delay) brings it forward. */
  private timerDue = Number.POSITIVE_INFINITY;
  private immediate: NodeJS.Immediate | null = null;
  /** Refusals answered late since the start (scanline_http_refusals_delayed_total). */
  delayedTotal = 0;
  /** Of those, held longer than delayMs because their address had many held (scanline_http_refusals_escalated_total). */
  escalatedTotal = 0;

  constructor(
    readonly delayMs: number,
    readonly maxHeld: number,
    /** The longest delay a repeat offender gets; at most delayMs (or 0): no escalation. */
    readonly maxDelayMs: number = delayMs,
    private readonly now: () => number = () => performance.now(),
  ) {
    const levels = delayMs > 0 && maxDelayMs > delayMs ? 1 + Math.ceil(Math.log2(maxDelayMs / delayMs)) : 1;
    this.queues = Array.from({ length: levels }, () => new HeldQueue());
  }

  /** Refusals held now (scanline_http_refusals_held). */
  get held(): number {
    return this.heldCount;
  }

  /** How long a refusal for `address` would be held now, ms. */
  delayFor(address: string): number {
    return this.delayOfLevel(this.levelFor(address));
  }

  /**
   * For a synchronous uWS handler (a route before its body is read, a WebSocket upgrade): runs `answer` (which writes
   * the refusal to `res`) after the delay for `address`, or now. Registers `res.onAborted` itself, so call it before
   * returning from the handler and only for a response nothing else answers.
   */
  answerLater(res: HttpResponse, address: string, answer: () => void): void {
    if (!this.canHold()) {
      answer();
      return;
    }
    const entry = this.hold(address, answer);
    res.onAborted(() => {
      entry.cancelled = true;
    });
  }

  /** For an async handler whose response already watches for aborts: resolves after the delay for `address` (or now). */
  delay(address: string): Promise<void> {
    if (!this.canHold()) return Promise.resolve();
    return new Promise((resolve) => this.hold(address, resolve));
  }

  /** Answers every held refusal now (shutdown: the sockets are about to close). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = null;
    this.timerDue = Number.POSITIVE_INFINITY;
    this.immediate = null;
    this.run(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
  }

  private canHold(): boolean {
    return this.delayMs > 0 && this.heldCount < this.maxHeld;
  }

  private levelFor(address: string): number {
    return Math.min(this.queues.length - 1, Math.floor((this.heldBy.get(address) ?? 0) / RefusalPacer.ESCALATE_EVERY));
  }

  private delayOfLevel(level: number): number {
    return Math.min(Math.max(this.delayMs, this.maxDelayMs), this.delayMs * 2 ** level);
  }

  private hold(address: string, answer: () => void): HeldRefusal {
    const level = this.levelFor(address);
    const entry: HeldRefusal = { due: this.now() + this.delayOfLevel(level), address, answer, cancelled: false };
    this.queues[level].push(entry);
    this.heldBy.set(address, (this.heldBy.get(address) ?? 0) + 1);
    this.heldCount++;
    this.delayedTotal++;
    if (level > 0) this.escalatedTotal++;
    // The queues differ in delay: a refusal of a quiet address (1 s) may fall due before the timer set for a flood's
    // (8 s), and must not wait for it.
    if (this.timer && entry.due < this.timerDue) {
      clearTimeout(this.timer);
      this.timer = null;
      this.timerDue = Number.POSITIVE_INFINITY;
    }
    this.schedule();
    return entry;
  }

  /** The queue whose first refusal falls due first, or null when nothing is held. */
  private nextQueue(): HeldQueue | null {
    let next: HeldQueue | null = null;
    for (const q of this.queues) if (q.size > 0 && (next === null || q.firstDue < next.firstDue)) next = q;
    return next;
  }

  private schedule(): void {
    if (this.timer || this.immediate) return;
    const next = this.nextQueue();
    if (!next) return;
    this.timerDue = next.firstDue;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.timerDue = Number.POSITIVE_INFINITY;
        this.turn();
      },
      Math.max(0, next.firstDue - this.now()),
    );
    // Held refusals never keep a process alive that has nothing else to do.
    this.timer.unref();
  }

  /** Answers what is due, at most ANSWERS_PER_TURN; more due: again on the next turn of the event loop. */
  private turn(): void {
    const now = this.now();
    this.run(now, RefusalPacer.ANSWERS_PER_TURN);
    if ((this.nextQueue()?.firstDue ?? Number.POSITIVE_INFINITY) <= now) {
      this.immediate = setImmediate(() => {
        this.immediate = null;
        this.turn();
      });
      this.immediate.unref();
    } else {
      this.schedule();
    }
  }

  private run(until: number, maxAnswers: number): void {
    let answered = 0;
    while (answered < maxAnswers) {
      const q = this.nextQueue();
      if (!q || q.firstDue > until) break;
      const entry = q.shift();
      this.heldCount--;
      const n = (this.heldBy.get(entry.address) ?? 1) - 1;
      if (n <= 0) this.heldBy.delete(entry.address);
      else this.heldBy.set(entry.address, n);
      if (entry.cancelled) continue;
      answered++;
      try {
        entry.answer();
      } catch {
        // A response that cannot be written any more (its socket closed in between): nothing to answer. The other
        // held refusals are answered all the same.
      }
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

  /** Runs `render` for a client at `address` (whose refusal, if any, is paced for that address). */
  async run<T>(address: string, render: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxConcurrent) {
      if (this.waiting.length >= this.maxQueued) {
        this.refused('SCANLINE_ERR_LIMIT_IMAGES');
        const err = new ScanlineError(
          'SCANLINE_ERR_LIMIT_IMAGES',
          `${this.running} images are being rendered and ${this.waiting.length} wait (server.maxConcurrentImages, server.maxQueuedImages); try again shortly`,
          { retryAfterSec: 1 },
        );
        await this.pacer?.delay(address);
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
