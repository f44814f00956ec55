/**
 * LoginThrottle (src/identity/login-throttle.ts) on an injected clock: no wait until maxFailures failures in a row,
 * then 1 s, 2 s, 4 s ... per further failure up to maxLockoutMs; accounts and client addresses counted apart (a
 * locked address locks every account tried from it, a locked account every address); a success clears both; the
 * waits run out with the clock; and the map of keys stays bounded, forgetting the least recently failed first.
 */
import { describe, expect, it } from 'vitest';
import { LoginThrottle } from '../../src/identity/index.js';

/** A clock the test moves by hand. */
function manualClock(start = Date.parse('2026-03-01T08:00:00.000Z')): { now: () => number; advance(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    advance(ms) {
      t += ms;
    },
  };
}

describe('LoginThrottle', () => {
  it('waits nothing before maxFailures failures, then 1 s, 2 s, 4 s ... capped at maxLockoutMs', () => {
    const clock = manualClock();
    const throttle = new LoginThrottle(3, 20_000, clock.now);
    expect(throttle.waitMs('alice', '10.0.0.1')).toBe(0);
    throttle.failed('alice', '10.0.0.1');
    expect(throttle.waitMs('alice', '10.0.0.1')).toBe(0);
    throttle.failed('alice', '10.0.0.1');
    expect(throttle.waitMs('alice', '10.0.0.1')).toBe(0);
    const waits: number[] = [];
    for (let i = 0; i < 7; i++) {
      throttle.failed('alice', '10.0.0.1');
      const wait = throttle.waitMs('alice', '10.0.0.1');
      waits.push(wait);
      clock.advance(wait); // the next try comes when it is allowed
      expect(throttle.waitMs('alice', '10.0.0.1')).toBe(0);
    }
    expect(waits).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 20_000, 20_000]);
  });

  it('counts down with the clock: a 4 s wait is 2.5 s after 1.5 s and 0 after 4 s', () => {
    const clock = manualClock();
    const throttle = new LoginThrottle(1, 60_000, clock.now);
    for (let i = 0; i < 3; i++) throttle.failed('bob', '10.0.0.2');
    expect(throttle.waitMs('bob', '10.0.0.2')).toBe(4_000);
    clock.advance(1_500);
    expect(throttle.waitMs('bob', '10.0.0.2')).toBe(2_500);
    clock.advance(2_499);
    expect(throttle.waitMs('bob', '10.0.0.2')).toBe(1);
    clock.advance(1);
    expect(throttle.waitMs('bob', '10.0.0.2')).toBe(0);
  });

  it('does not overflow on a long run of failures: the wait stays maxLockoutMs', () => {
    const clock = manualClock();
    const throttle = new LoginThrottle(1, 900_000, clock.now);
    for (let i = 0; i < 2_000; i++) throttle.failed('mallory', '203.0.113.9');
    expect(throttle.waitMs('mallory', '203.0.113.9')).toBe(900_000);
  });

  it('locks per address: after the address fails maxFailures times, another account tried from it waits too', () => {
    const clock = manualClock();
    const throttle = new LoginThrottle(3, 60_000, clock.now);
    throttle.failed('alice', '10.0.0.1');
    throttle.failed('bob', '10.0.0.1');
    expect(throttle.waitMs('carol', '10.0.0.1')).toBe(0);
    throttle.failed('carol', '10.0.0.1');
    // three failures from one address, one per account: the address is locked, the accounts are not
    expect(throttle.waitMs('dave', '10.0.0.1')).toBe(1_000);
    expect(throttle.waitMs('alice', '10.0.0.9')).toBe(0);
    expect(throttle.waitMs('carol', '10.0.0.9')).toBe(0);
  });

  it('locks per account: after the account fails maxFailures times, it waits from any address', () => {
    const clock = manualClock();
    const throttle = new LoginThrottle(3, 60_000, clock.now);
    throttle.failed('alice', '10.0.0.1');
    throttle.failed('alice', '10.0.0.2');
    throttle.failed('alice', '10.0.0.3');
    expect(throttle.waitMs('alice', '192.168.1.1')).toBe(1_000);
    // none of the three addresses reached three failures
    expect(throttle.waitMs('bob', '10.0.0.1')).toBe(0);
    expect(throttle.waitMs('bob', '10.0.0.3')).toBe(0);
  });

  it('waits the longer of the account and the address lock', () => {
    const clock = manualClock();
    const throttle = new LoginThrottle(1, 60_000, clock.now);
    for (let i = 0; i < 4; i++) throttle.failed('alice', '10.0.0.1'); // both at 8 s
    throttle.failed('bob', '10.0.0.2'); // both at 1 s
    expect(throttle.waitMs('alice', '10.0.0.2')).toBe(8_000);
    expect(throttle.waitMs('bob', '10.0.0.1')).toBe(8_000);
    expect(throttle.waitMs('bob', '10.0.0.2')).toBe(1_000);
  });

  it('a success clears the account and the address: the count starts again from zero', () => {
    const clock = manualClock();
    const throttle = new LoginThrottle(3, 60_000, clock.now);
    for (let i = 0; i < 4; i++) throttle.failed('alice', '10.0.0.1');
    expect(throttle.waitMs('alice', '10.0.0.1')).toBe(2_000);
    expect(throttle.size).toBe(2);
    throttle.succeeded('alice', '10.0.0.1');
    expect(throttle.size).toBe(0);
    expect(throttle.waitMs('alice', '10.0.0.1')).toBe(0);
    throttle.failed('alice', '10.0.0.1');
    throttle.failed('alice', '10.0.0.1');
    expect(throttle.waitMs('alice', '10.0.0.1')).toBe(0);
    throttle.failed('alice', '10.0.0.1');
    expect(throttle.waitMs('alice', '10.0.0.1')).toBe(1_000);
  });

  it("a success clears only its own account and address: another account's lock stays", () => {
    const clock = manualClock();
    const throttle = new LoginThrottle(2, 60_000, clock.now);
    throttle.failed('alice', '10.0.0.1');
    throttle.failed('alice', '10.0.0.2');
    throttle.succeeded('bob', '10.0.0.3');
    expect(throttle.waitMs('alice', '10.0.0.3')).toBe(1_000);
    expect(throttle.size).toBe(3);
  });

  it('keeps at most 10 000 keys, forgetting the least recently failed first', () => {
    const clock = manualClock();
    const throttle = new LoginThrottle(1, 60_000, clock.now);
    // Each failure adds two keys (its account and its address): 10 050 failures would be 20 100 keys.
    for (let i = 0; i < 10_050; i++) {
      throttle.failed(`user-${i}`, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
      expect(throttle.size).toBeLessThanOrEqual(10_000);
    }
    expect(throttle.size).toBe(10_000);
    // the last 5 000 failures are remembered (both of their keys), the first ones forgotten
    expect(throttle.waitMs('user-10049', '203.0.113.1')).toBe(1_000);
    expect(throttle.waitMs('user-5050', '203.0.113.1')).toBe(1_000);
    expect(throttle.waitMs('user-5049', '203.0.113.1')).toBe(0);
    expect(throttle.waitMs('user-0', '203.0.113.1')).toBe(0);
    expect(throttle.waitMs('nobody', '10.0.39.65')).toBe(1_000); // user-10049's address
    expect(throttle.waitMs('nobody', '10.0.0.0')).toBe(0); // user-0's address
  });

  it('a key that fails again moves to the back of the line and outlives keys that failed before it', () => {
    const clock = manualClock();
    const throttle = new LoginThrottle(1, 60_000, clock.now);
    throttle.failed('early', 'addr-early');
    for (let i = 0; i < 4_000; i++) throttle.failed(`user-${i}`, `addr-${i}`);
    throttle.failed('early', 'addr-early'); // now the most recent
    for (let i = 4_000; i < 5_500; i++) throttle.failed(`user-${i}`, `addr-${i}`);
    expect(throttle.size).toBe(10_000);
    expect(throttle.waitMs('early', 'elsewhere')).toBe(2_000);
    expect(throttle.waitMs('user-0', 'elsewhere')).toBe(0);
  });
});
