/**
 * Slows guessing of passwords: failed sign-ins are counted per account and per client address; after
 * `maxFailures` in a row the key is locked for 1 s, then 2 s, 4 s ... up to `maxLockoutMs` per further failure.
 * A success clears the account's and the address's count. In memory (a restart forgets, which costs an attacker a
 * restart they cannot cause); at most MAX_KEYS keys, the least recently failed forgotten first.
 *
 * Threads: gateway JS thread.
 */
import { setRecent } from '../memory/index.js';

const MAX_KEYS = 10_000;

interface Failures {
  count: number;
  lockedUntil: number;
}

export class LoginThrottle {
  private readonly keys = new Map<string, Failures>();

  constructor(
    private readonly maxFailures: number,
    private readonly maxLockoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds until `account` and `address` may try again (0: now). */
  waitMs(account: string, address: string): number {
    const t = this.now();
    return Math.max(0, ...[`account:${account}`, `address:${address}`].map((k) => (this.keys.get(k)?.lockedUntil ?? 0) - t));
  }

  failed(account: string, address: string): void {
    const t = this.now();
    for (const key of [`account:${account}`, `address:${address}`]) {
      const f = this.keys.get(key) ?? { count: 0, lockedUntil: 0 };
      f.count++;
      const over = f.count - this.maxFailures;
      if (over >= 0) f.lockedUntil = t + Math.min(this.maxLockoutMs, 1000 * 2 ** Math.min(over, 30));
      setRecent(this.keys, key, f, MAX_KEYS); // least recently failed forgotten first
    }
  }

  succeeded(account: string, address: string): void {
    this.keys.delete(`account:${account}`);
    this.keys.delete(`address:${address}`);
  }

  /** Keys currently counting failures (for metrics). */
  get size(): number {
    return this.keys.size;
  }
}
