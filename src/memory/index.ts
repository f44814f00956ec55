/**
 * Buffers kept across scans instead of allocated per scan, by exact byte length. Why: the kernel zero-fills every
 * page of fresh memory, on the JS thread when a scan starts or ends, and fresh ArrayBuffers add to V8's
 * external-memory pressure, which triggers mark-compacts (bench/RESULTS.md, 'Buffer pools').
 *
 * Threads: one pool belongs to one JS thread (pools are plain objects; nothing is shared between workers).
 */
export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  #pooledBytes = 0;

  /**
   * @param limitBytes most bytes kept; a buffer given back beyond it is left to the GC.
   * @param allocate makes a new buffer when none of that length is free; null = cannot (the caller falls back).
   */
  constructor(
    readonly limitBytes: number,
    private readonly allocate: (byteLength: number) => ArrayBuffer | null = (n) => new ArrayBuffer(n),
  ) {}

  /** Bytes held for reuse now. */
  get pooledBytes(): number {
    return this.#pooledBytes;
  }

  /**
   * A buffer of exactly `byteLength` bytes: a free one, else a new one (zero-filled, or null when `allocate` cannot).
   * A reused buffer holds what its last user wrote unless `zero` is true.
   */
  take(byteLength: number, zero = false): ArrayBuffer | null {
    const reused = this.free.get(byteLength)?.pop();
    if (!reused) return this.allocate(byteLength);
    this.#pooledBytes -= byteLength;
    if (zero) new Uint8Array(reused).fill(0);
    return reused;
  }

  /** Drops every pooled buffer (to the GC): the owner is closing. Buffers given back later are pooled again. */
  clear(): void {
    this.free.clear();
    this.#pooledBytes = 0;
  }

  /** Gives a buffer back; the caller must not use it (or a view of it) afterwards. */
  give(buffer: ArrayBuffer): void {
    if (this.#pooledBytes + buffer.byteLength > this.limitBytes) return;
    let list = this.free.get(buffer.byteLength);
    if (!list) this.free.set(buffer.byteLength, (list = []));
    list.push(buffer);
    this.#pooledBytes += buffer.byteLength;
  }
}

/**
 * Sets `key` to `value` as the most recent entry of `map` (a Map iterates in insertion order) and forgets the least
 * recent entries beyond `max`: the bound every per-client table (failed sign-ins, request rates, reads, pending
 * sign-ins) keeps, so that many clients cannot grow the gateway's memory.
 */
export function setRecent<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > max) map.delete(map.keys().next().value as K);
}
