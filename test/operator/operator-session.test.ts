/**
 * One screen's backpressure policy, driven directly with a transport whose buffered amount the test sets: which
 * strips are sent, coalesced or replaced by a resync, and that each strip offered to an open screen is counted
 * exactly once (stripsSent or stripsCoalesced), whatever the timing of the screen's reads.
 */
import { describe, expect, it } from 'vitest';
import { CLOSE_TOO_SLOW, OperatorSession, type OperatorTransport, type SendStatus } from '../../src/operator/index.js';

const BUDGET = 1000;

class FakeTransport implements OperatorTransport {
  buffered = 0;
  /** What send() answers for the next messages. */
  status: SendStatus = 'sent';
  readonly sent: Array<{ data: string | Uint8Array; binary: boolean }> = [];
  closedWith: { code: number; reason: string } | null = null;

  send(data: string | Uint8Array, binary: boolean): SendStatus {
    if (this.status !== 'dropped') this.sent.push({ data, binary });
    return this.status;
  }

  bufferedAmount(): number {
    return this.buffered;
  }

  close(code: number, reason: string): void {
    this.closedWith = { code, reason };
  }
}

function session(): { s: OperatorSession; t: FakeTransport; tooSlow: OperatorSession[] } {
  const t = new FakeTransport();
  const tooSlow: OperatorSession[] = [];
  const s = new OperatorSession(1, 'officer-1', t, BUDGET, (x) => tooSlow.push(x));
  return { s, t, tooSlow };
}

const frame = new Uint8Array([1, 2, 3]);

describe('OperatorSession.offerStrip', () => {
  it('sends strips while the buffer is within the strip budget', () => {
    const { s, t } = session();
    t.buffered = BUDGET; // at the budget, not over it
    expect(s.offerStrip('a', frame)).toBe('sent');
    expect(t.sent).toEqual([{ data: frame, binary: true }]);
    expect({ sent: s.stripsSent, coalesced: s.stripsCoalesced, stale: [...s.stale] }).toEqual({ sent: 1, coalesced: 0, stale: [] });
  });

  it('coalesces over the budget, marks the scan stale, and keeps coalescing it until the buffer is below half', () => {
    const { s, t } = session();
    t.buffered = BUDGET + 1;
    expect(s.offerStrip('a', frame)).toBe('coalesced');
    expect([...s.stale]).toEqual(['a']);
    t.buffered = BUDGET / 2; // drained, but not below half
    expect(s.offerStrip('a', frame)).toBe('coalesced');
    // Another scan of the same screen is not stale: its strips go while the buffer allows.
    expect(s.offerStrip('b', frame)).toBe('sent');
    expect(t.sent).toHaveLength(1);
    expect({ sent: s.stripsSent, coalesced: s.stripsCoalesced }).toEqual({ sent: 1, coalesced: 2 });
  });

  it('answers resync for the first strip of a stale scan once the buffer drained, and counts that strip as coalesced', () => {
    const { s, t } = session();
    t.buffered = BUDGET + 1;
    expect(s.offerStrip('a', frame)).toBe('coalesced');
    t.buffered = BUDGET / 2 - 1;
    expect(s.drainedStale()).toEqual(['a']);
    // The hub sends a snapshot instead of this strip (and clears the stale mark); the strip itself is not sent.
    expect(s.offerStrip('a', frame)).toBe('resync');
    expect(t.sent).toEqual([]);
    expect({ sent: s.stripsSent, coalesced: s.stripsCoalesced }).toEqual({ sent: 0, coalesced: 2 });
    s.stale.delete('a');
    expect(s.offerStrip('a', frame)).toBe('sent');
    expect({ sent: s.stripsSent, coalesced: s.stripsCoalesced }).toEqual({ sent: 1, coalesced: 2 });
  });

  it('counts every strip offered to an open screen exactly once, for any sequence of buffer levels', () => {
    const { s, t } = session();
    // A deterministic walk of buffer levels across the thresholds (0, half, budget) and two scans.
    let x = 12345;
    const next = (): number => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x / 2 ** 31;
    };
    const outcomes = { sent: 0, coalesced: 0, resync: 0, closed: 0 };
    for (let i = 0; i < 2000; i++) {
      t.buffered = Math.floor(next() * 1.5 * BUDGET);
      const scan = next() < 0.5 ? 'a' : 'b';
      const r = s.offerStrip(scan, frame);
      outcomes[r]++;
      // As the hub does on 'resync' (sendSnapshot clears the stale mark) and on drain.
      if (r === 'resync') s.stale.delete(scan);
      if (next() < 0.1) for (const id of s.drainedStale()) s.stale.delete(id);
    }
    expect(outcomes.resync).toBeGreaterThan(0);
    expect(outcomes.coalesced).toBeGreaterThan(0);
    expect(outcomes.closed).toBe(0);
    expect(s.stripsSent).toBe(outcomes.sent);
    expect(t.sent).toHaveLength(outcomes.sent);
    expect(s.stripsCoalesced).toBe(outcomes.coalesced + outcomes.resync);
    expect(s.stripsSent + s.stripsCoalesced).toBe(2000);
  });

  it('closes the screen as too slow when the transport drops a strip; later offers say closed and count nothing', () => {
    const { s, t, tooSlow } = session();
    t.status = 'dropped';
    expect(s.offerStrip('a', frame)).toBe('closed');
    expect(t.closedWith).toEqual({ code: CLOSE_TOO_SLOW, reason: 'SCANLINE_ERR_OPERATOR_TOO_SLOW' });
    expect(tooSlow).toEqual([s]);
    t.status = 'sent';
    expect(s.offerStrip('a', frame)).toBe('closed');
    expect({ sent: s.stripsSent, coalesced: s.stripsCoalesced }).toEqual({ sent: 0, coalesced: 0 });
    expect(s.drainedStale()).toEqual([]);
  });
});

describe('OperatorSession.sendControl', () => {
  it('hands control messages to the socket whatever the strip budget, and closes the screen when even that is dropped', () => {
    const { s, t, tooSlow } = session();
    t.buffered = 10 * BUDGET;
    expect(s.sendControl({ type: 'subscribed', portals: [], scans: [] })).toBe(true);
    expect(s.controlSent).toBe(1);
    t.status = 'dropped';
    expect(s.sendControl('{"type":"lane"}')).toBe(false);
    expect(s.closed).toBe(true);
    expect(tooSlow).toEqual([s]);
    expect(s.sendControl('{"type":"lane"}')).toBe(false);
    expect(s.controlSent).toBe(1);
  });
});
