// BufferPool: buffers come back by exact length, are zeroed only when asked, the pool keeps no more than its limit,
// and an allocator that cannot allocate yields null.
import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../src/memory/index.js';

describe('BufferPool', () => {
  it('reuses a given-back buffer of the same length, zeroing it only on request', () => {
    const pool = new BufferPool(1 << 20);
    const a = pool.take(64)!;
    new Uint8Array(a).fill(9);
    pool.give(a);
    expect(pool.pooledBytes).toBe(64);
    expect(pool.take(32)).not.toBe(a); // another length: a new buffer
    const again = pool.take(64)!;
    expect(again).toBe(a);
    expect(new Uint8Array(again)[0]).toBe(9);
    pool.give(again);
    const zeroed = pool.take(64, true)!;
    expect(zeroed).toBe(a);
    expect(new Uint8Array(zeroed).every((v) => v === 0)).toBe(true);
    expect(pool.pooledBytes).toBe(0);
  });

  it('keeps at most limitBytes', () => {
    const pool = new BufferPool(100);
    pool.give(new ArrayBuffer(60));
    pool.give(new ArrayBuffer(60)); // over the limit: dropped
    expect(pool.pooledBytes).toBe(60);
    expect(pool.take(60)).not.toBeNull();
    expect(pool.pooledBytes).toBe(0);
  });

  it('returns null when its allocator cannot allocate and nothing is free', () => {
    const pool = new BufferPool(1 << 20, () => null);
    expect(pool.take(16)).toBeNull();
    const b = new ArrayBuffer(16);
    pool.give(b);
    expect(pool.take(16)).toBe(b);
  });
});
