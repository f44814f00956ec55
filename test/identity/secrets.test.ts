/**
 * Secrets never reach a log, an error or /metrics: a gateway logging at trace level into memory is driven through
 * every place a secret passes (sign-in with a wrong and a right password, a bad and a good bearer token, a portal
 * hello with a wrong and a right credential, a sign-in body that fails its schema, a configuration that fails with a
 * client secret in it), and then every log line, every answer and the metrics are searched for each secret. The
 * one secret the gateway shows by design, the first admin's password in the ready line, is checked to be shown
 * exactly once.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/index.js';
import { createRootLogger } from '../../src/log/index.js';
import { startTestGateway, TEST_PERSON_PASSWORD, type TestGateway } from '../helpers/gateway.js';
import { RawPortal } from '../helpers/raw-portal.js';

const WRONG_PASSWORD = 'wrong-horse-battery-staple-7731';
const WRONG_TOKEN = 'slt_notarealtoken0123456789abcdefghijklmnopqrstu';
const WRONG_CREDENTIAL = 'slp_notarealcredential0123456789abcdefghijklmno';
const BODY_SECRET = 'passwordInAnInvalidBody-5512';

describe('secrets in logs, errors and metrics', () => {
  let gw: TestGateway;
  const lines: string[] = [];
  const answers: string[] = [];
  let bootstrapPassword = '';

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    gw = await startTestGateway({ log: { level: 'trace' } }, { log: createRootLogger('trace', sink, 'json'), bootstrapAdminPassword: '' });
    const ready = JSON.parse(lines.find((l) => l.includes('"msg":"gateway ready"')) as string) as { signIn: { password: string } };
    bootstrapPassword = ready.signIn.password;
  }, 30_000);

  afterAll(async () => {
    await gw?.dispose();
  });

  async function record(res: Response): Promise<Response> {
    answers.push(`${res.status} ${res.headers.get('set-cookie') ?? ''} ${await res.clone().text()}`);
    return res;
  }

  it('never writes a password, token, session id or credential, and shows the first admin password once', async () => {
    const person = await gw.signIn('officer');
    const session = person.cookie.split('=')[1];
    const token = gw.tokenOf('viewer');
    const credential = gw.portalCredential('lane-secret');
    const post = (body: unknown) =>
      fetch(`${gw.httpUrl}/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(record);
    expect((await post({ username: 'officer-person', password: WRONG_PASSWORD })).status).toBe(401);
    expect((await post({ username: 'officer-person', password: BODY_SECRET, extra: true })).status).toBe(400);
    expect((await post({ username: 'officer-person', password: TEST_PERSON_PASSWORD })).status).toBe(201);
    expect((await record(await fetch(`${gw.httpUrl}/v1/scans`, { headers: { authorization: `Bearer ${WRONG_TOKEN}` } }))).status).toBe(401);
    expect((await record(await fetch(`${gw.httpUrl}/v1/scans`, { headers: { authorization: `Bearer ${token}` } }))).status).toBe(200);
    expect((await record(await fetch(`${gw.httpUrl}/v1/session`, { headers: { cookie: person.cookie } }))).status).toBe(200);
    const wrong = await RawPortal.connect(gw.portalUrl);
    const refused = await wrong.expectError(() =>
      wrong.json({
        type: 'hello',
        portalId: 'lane-secret',
        token: WRONG_CREDENTIAL,
        detector: { pixels: 16, energies: 2, bitDepth: 16, pitchMm: 4, lineRateHz: 500 },
      }),
    );
    answers.push(JSON.stringify(refused));
    const right = await RawPortal.hello(gw.portalUrl, 'lane-secret', { pixels: 16, energies: 2 }, { token: credential });
    answers.push(JSON.stringify(right.messages));
    right.close();
    const metrics = await (await fetch(`${gw.httpUrl}/metrics`, { headers: gw.authHeaders('metrics') })).text();
    let configError = '';
    try {
      resolveConfig({ auth: { oidc: { clientSecret: `${WRONG_PASSWORD}${'x'.repeat(1100)}` } } });
    } catch (err) {
      configError = `${(err as Error).message} ${JSON.stringify(err)}`;
    }
    expect(configError).toContain('<redacted>');
    await new Promise((r) => setTimeout(r, 100));

    const everything = [...lines, ...answers, metrics, configError].join('\n');
    for (const secret of [WRONG_PASSWORD, TEST_PERSON_PASSWORD, BODY_SECRET, WRONG_TOKEN, token, session, credential, WRONG_CREDENTIAL, person.csrfToken]) {
      // The session id and CSRF token are in the answers that hand them out (Set-Cookie, the sign-in body): only
      // there. Everything else must hold no secret at all.
      const where = [...lines, metrics, configError].filter((text) => text.includes(secret));
      expect(where, `a secret was written: ${secret.slice(0, 8)}...`).toEqual([]);
    }
    for (const secret of [WRONG_PASSWORD, TEST_PERSON_PASSWORD, BODY_SECRET, WRONG_TOKEN, token, credential, WRONG_CREDENTIAL]) {
      expect(answers.filter((a) => a.includes(secret))).toEqual([]);
    }
    expect(everything.split(bootstrapPassword).length - 1).toBe(1);
    expect(lines.length).toBeGreaterThan(10);
  });
});
