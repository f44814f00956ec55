/** The PDU header check in front of dcmjs-dimse (DicosListener): what a peer may send, before and after acceptance. */
import { describe, expect, it } from 'vitest';
import { PduGuard, sameAddress } from '../../src/imports/dicos-listener.js';

const pdu = (type: number, length: number, body = 0): Buffer => {
  const b = Buffer.alloc(6 + body);
  b[0] = type;
  b.writeUInt32BE(length, 2);
  return b;
};

describe('PduGuard', () => {
  it('lets an association request through, in pieces, and P-DATA only once accepted', () => {
    const g = new PduGuard(1024 * 1024);
    const request = pdu(1, 200, 200);
    expect(g.feed(request.subarray(0, 3))).toBeNull();
    expect(g.feed(request.subarray(3, 150))).toBeNull();
    expect(g.feed(request.subarray(150))).toBeNull();
    g.accepted = true;
    expect(g.feed(Buffer.concat([pdu(4, 16, 16), pdu(4, 8, 8), pdu(5, 4, 4)]))).toBeNull();
  });

  it('refuses P-DATA before acceptance, an oversized association request or PDU, and unknown PDU types', () => {
    expect(new PduGuard(1024).feed(pdu(4, 10))).toMatch(/before the association was accepted/);
    expect(new PduGuard(1024).feed(pdu(1, 0xffff_ffff))).toMatch(/association request of 4294967295 bytes/);
    const g = new PduGuard(1024);
    g.accepted = true;
    expect(g.feed(pdu(4, 0xffff_ffff))).toMatch(/PDU of 4294967295 bytes/);
    expect(new PduGuard(1024).feed(pdu(9, 0))).toMatch(/unknown PDU type 9/);
  });
});

describe('sameAddress (dicos.listener.sources[].addresses)', () => {
  it('matches IPv4 in its IPv6-mapped form and IPv6 in any spelling, and nothing else', () => {
    expect(sameAddress('10.1.2.3', '::ffff:10.1.2.3')).toBe(true);
    expect(sameAddress('2001:DB8:0:0::1', '2001:db8::1')).toBe(true);
    expect(sameAddress('10.1.2.3', '10.1.2.4')).toBe(false);
    expect(sameAddress('2001:db8::1', '2001:db8::2')).toBe(false);
  });
});
