/**
 * TLS (server.tls) through uWebSockets.js' SSLApp with certificates made here by openssl (a test CA and two server
 * certificates it signed): every route over https and wss, TLS 1.0 and 1.1 refused, Secure session cookies and HSTS,
 * unusable files refused with SCANLINE_ERR_SERVER_TLS, and a certificate reloaded while a portal streams a scan: new
 * connections get the new certificate, the open scan completes bit-exact on its old connection.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SliceKind, encodeSliceFrame } from '../../src/protocol/index.js';
import { TEST_PERSON_PASSWORD, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { RawPortal } from '../helpers/raw-portal.js';
import { freePort } from '../helpers/free-port.js';
import { skipWithout } from '../helpers/tools.js';

const OPENSSL = '/usr/bin/openssl';
const PIXELS = 32;
const LINES = 256;
const PER_SLICE = 16;

function openssl(dir: string, ...args: string[]): void {
  execFileSync(OPENSSL, args, { cwd: dir, stdio: 'pipe' });
}

/** A CA and server certificates `a` and `b` for 127.0.0.1 and localhost, signed by it. */
function makeCertificates(dir: string): void {
  openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Scanline test CA');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const name of ['a', 'b']) {
    openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=gateway-${name}`);
    openssl(
      dir,
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-extfile',
      'san.ext',
    );
  }
}

/** The certificate a fresh TLS connection to the gateway is given (or the handshake error). */
function peerCertificate(port: number, ca: Buffer, versions: { minVersion?: 'TLSv1'; maxVersion?: 'TLSv1.1' } = {}): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port, ca, servername: 'localhost', ...versions, ...(versions.maxVersion ? { ciphers: 'DEFAULT@SECLEVEL=0' } : {}) },
      () => {
        const cert = socket.getPeerCertificate();
        socket.end();
        resolve(cert);
      },
    );
    socket.on('error', reject);
  });
}

function httpsGet(url: string, ca: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

function httpsPost(url: string, ca: Buffer, body: unknown): Promise<{ status: number; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

function lines(seed: number): Uint16Array {
  const out = new Uint16Array(LINES * 2 * PIXELS);
  let s = seed;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = 20_000 + (s % 30_000);
  }
  return out;
}

describe.skipIf(skipWithout(OPENSSL))('server.tls', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scanline-tls-'));
  let gw: TestGateway;
  let ca: Buffer;
  let port = 0;
  // A fixed port, as in production: uWS shares a fixed port with the app a reload starts (SO_REUSEPORT).
  const tlsConfig = () => ({ server: { port, tls: { cert: join(dir, 'server.pem'), key: join(dir, 'server.key') } } });

  beforeAll(async () => {
    makeCertificates(dir);
    copyFileSync(join(dir, 'a.pem'), join(dir, 'server.pem'));
    copyFileSync(join(dir, 'a.key'), join(dir, 'server.key'));
    ca = readFileSync(join(dir, 'ca.pem'));
    port = await freePort();
    gw = await startTestGateway(tlsConfig());
  }, 60_000);

  afterAll(async () => {
    await gw?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves https and wss, with HSTS and a Secure session cookie, and refuses TLS 1.0 and 1.1', async () => {
    expect(gw.httpUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(gw.portalUrl).toMatch(/^wss:\/\//);
    const live = await httpsGet(`${gw.httpUrl}/livez`, ca);
    expect(live.status).toBe(200);
    expect(live.headers['strict-transport-security']).toBe('max-age=31536000');
    expect((await httpsGet(`${gw.httpUrl}/v1/scans`, ca, gw.authHeaders())).status).toBe(200);
    await gw.identity.addAccount('tls-officer', 'officer', TEST_PERSON_PASSWORD, { name: 'test', address: null });
    const signIn = await httpsPost(`${gw.httpUrl}/v1/session`, ca, { username: 'tls-officer', password: TEST_PERSON_PASSWORD });
    expect(signIn.status).toBe(201);
    expect(String(signIn.headers['set-cookie'])).toMatch(/; HttpOnly; SameSite=Strict; Secure$/);
    expect((await peerCertificate(gw.port, ca)).subject.CN).toBe('gateway-a');
    for (const maxVersion of ['TLSv1.1'] as const) {
      await expect(peerCertificate(gw.port, ca, { minVersion: 'TLSv1', maxVersion })).rejects.toThrow(/protocol version|unsupported protocol|handshake/i);
    }
  });

  it('reloads the certificate while a portal streams a scan: new connections get it, the scan completes bit-exact', async () => {
    const data = lines(7);
    const portal = await RawPortal.hello(gw.portalUrl, 'tls-lane', { pixels: PIXELS, energies: 2 }, {}, { ca });
    expect(portal.messages[0]?.type).toBe('welcome');
    portal.json({ type: 'scan.start', streamId: 1, scanId: 'tls-scan-1' });
    await portal.next((m) => m.type === 'scan.accepted');
    const send = async (seq: number): Promise<void> => {
      const first = seq * PER_SLICE;
      const frame = encodeSliceFrame(
        { kind: SliceKind.Image, energies: 2, streamId: 1, seq, firstLine: first, pixels: PIXELS, acquiredAtUs: 0n },
        data.subarray(first * 2 * PIXELS, (first + PER_SLICE) * 2 * PIXELS),
      );
      portal.binary(frame);
      await portal.next((m) => m.type === 'ack' && m.seq >= seq);
    };
    const slices = LINES / PER_SLICE;
    for (let seq = 0; seq < slices / 2; seq++) await send(seq);

    // The renewed certificate is put in place, then read again (what SIGHUP does).
    copyFileSync(join(dir, 'b.pem'), join(dir, 'server.pem'));
    copyFileSync(join(dir, 'b.key'), join(dir, 'server.key'));
    const info = await gw.reloadTls();
    expect(info.subject).toContain('gateway-b');
    expect((await peerCertificate(gw.port, ca)).subject.CN).toBe('gateway-b');

    for (let seq = slices / 2; seq < slices; seq++) await send(seq);
    portal.json({ type: 'scan.end', streamId: 1, totalLines: LINES });
    expect(await portal.next((m) => m.type === 'scan.completed')).toMatchObject({ scanId: 'tls-scan-1', lines: LINES, gaps: [] });
    portal.close();
    const image = await httpsGet(`${gw.httpUrl}/v1/scans/tls-scan-1/image?energy=low&format=png16`, ca, gw.authHeaders());
    expect(image.status).toBe(200);
    const { data: png, info: meta } = await sharp(image.body).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
    expect([meta.width, meta.height]).toEqual([LINES, PIXELS]);
    const got = new Uint16Array(png.buffer, png.byteOffset, png.byteLength / 2);
    // The PNG is pixels (rows) x lines (columns) of the low energy.
    const want = new Uint16Array(LINES * PIXELS);
    for (let l = 0; l < LINES; l++) for (let p = 0; p < PIXELS; p++) want[p * LINES + l] = data[(l * 2 + 1) * PIXELS + p];
    expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer))).toBe(true);
  });

  it('keeps the certificate it has when the new files are unusable, and refuses to start with them', async () => {
    writeFileSync(join(dir, 'server.pem'), 'not a certificate');
    await expect(gw.reloadTls()).rejects.toMatchObject({ code: 'SCANLINE_ERR_SERVER_TLS', message: expect.stringContaining('is not a PEM certificate') });
    expect((await peerCertificate(gw.port, ca)).subject.CN).toBe('gateway-b');
    // A key that belongs to another certificate.
    copyFileSync(join(dir, 'a.pem'), join(dir, 'server.pem'));
    copyFileSync(join(dir, 'b.key'), join(dir, 'server.key'));
    await expect(startTestGateway({ ...tlsConfig(), server: { ...tlsConfig().server, port: 0 } })).rejects.toMatchObject({
      code: 'SCANLINE_ERR_SERVER_TLS',
      message: expect.stringContaining('does not belong'),
    });
    await expect(startTestGateway({ server: { tls: { cert: join(dir, 'missing.pem'), key: join(dir, 'a.key') } } })).rejects.toMatchObject({
      code: 'SCANLINE_ERR_SERVER_TLS',
      message: expect.stringContaining('ENOENT'),
    });
  });
});
