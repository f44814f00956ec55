import { describe, expect, it } from 'vitest';
import { ResourceStack } from '../../src/lifecycle/index.js';
import { silentLogger } from '../../src/log/index.js';

describe('ResourceStack', () => {
  it('closes the last created first, once, whatever the number of calls', async () => {
    const closed: string[] = [];
    const stack = new ResourceStack(silentLogger());
    const a = stack.defer('a', { id: 'a' }, (r) => void closed.push(r.id));
    stack.defer('b', { id: 'b' }, async (r) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      closed.push(r.id);
    });
    stack.defer('c', { id: 'c' }, (r) => void closed.push(r.id));
    expect(a.id).toBe('a');
    expect(stack.closeOrder()).toEqual(['c', 'b', 'a']);
    const first = stack.closeAll();
    expect(stack.closeAll()).toBe(first);
    await first;
    expect(closed).toEqual(['c', 'b', 'a']);
  });

  it('runs every closer when one fails and rethrows the first failure', async () => {
    const closed: string[] = [];
    const stack = new ResourceStack(silentLogger());
    stack.defer('a', 'a', (r) => void closed.push(r));
    stack.defer('b', 'b', () => {
      throw new Error('b failed');
    });
    stack.defer('c', 'c', async () => {
      throw new Error('c failed');
    });
    await expect(stack.closeAll()).rejects.toThrow('c failed');
    expect(closed).toEqual(['a']);
  });

  it('closes at once a resource registered after closing began', async () => {
    const closed: string[] = [];
    const stack = new ResourceStack(silentLogger());
    await stack.closeAll();
    stack.defer('late', 'late', (r) => void closed.push(r));
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toEqual(['late']);
  });
});
