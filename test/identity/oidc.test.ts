/**
 * Sign-in through a real OpenID Provider (the `oidc-provider` package, started here on 127.0.0.1 with its development
 * login and consent pages) in real Chromium: the operator screen offers "Sign in with …", the authorization code
 * flow with PKCE runs through the provider, and the officer lands signed in with the role mapped from the
 * provider's `groups` claim (the highest mapped value wins). A user whose groups map to no role, or whose name is a
 * local account, is refused and audited; a callback not started in the same browser is refused; a role changed at
 * the provider follows at the next sign-in.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import Provider from 'oidc-provider';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/free-port.js';
import { skipWithout } from '../helpers/tools.js';

const CHROMIUM = '/usr/bin/chromium';
const CLIENT_SECRET = 'scanline-client-secret-0123456789abcdef';

/** The provider's users and their groups (the claim the gateway maps to roles). */
const GROUPS: Record<string, string[]> = {
  'ivan.petrov': ['customs-officers'],
  'anna.s': ['staff', 'customs-officers', 'customs-supervisors'],
  visitor: ['visitors'],
  admin: ['customs-supervisors'],
};

describe.skipIf(skipWithout(CHROMIUM))('sign-in through an OpenID provider', () => {
  let gw: TestGateway;
  let op: Server;
  let browser: Browser;
  let issuer = '';

  beforeAll(async () => {
    const [gwPort, opPort] = [await freePort(), await freePort()];
    issuer = `http://127.0.0.1:${opPort}`;
    const redirect = `http://127.0.0.1:${gwPort}/v1/session/oidc/callback`;
    // Its own signing key (else it warns that it signs with development keys).
    const signing = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
    const provider = new Provider(issuer, {
      jwks: { keys: [{ ...signing, kid: 'test-signing-key', use: 'sig', alg: 'RS256' }] as never },
      clients: [
        {
          client_id: 'scanline',
          client_secret: CLIENT_SECRET,
          redirect_uris: [redirect],
          response_types: ['code'],
          grant_types: ['authorization_code'],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      claims: { openid: ['sub'], profile: ['preferred_username', 'groups'] },
      // The groups go into the ID token itself (the gateway reads the ID token's claims).
      conformIdTokenClaims: false,
      pkce: { methods: ['S256'], required: () => true },
      features: { devInteractions: { enabled: true } },
      cookies: { keys: ['oidc-test-cookie-key-0123456789'] },
      findAccount: async (_ctx: unknown, id: string) => ({
        accountId: id,
        claims: async () => ({ sub: id, preferred_username: id, groups: GROUPS[id] ?? [] }),
      }),
    });
    op = createServer(provider.callback());
    await new Promise<void>((resolve) => op.listen(opPort, '127.0.0.1', resolve));
    gw = await startTestGateway({
      server: { port: gwPort },
      auth: {
        oidc: {
          issuer,
          clientId: 'scanline',
          clientSecret: CLIENT_SECRET,
          redirectUri: redirect,
          scopes: 'openid profile',
          usernameClaim: 'preferred_username',
          roleClaim: 'groups',
          roleMap: { 'customs-officers': 'officer', 'customs-supervisors': 'supervisor' },
          label: 'Sign in with Customs ID',
        },
      },
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await gw?.dispose();
    await new Promise((r) => op?.close(r));
  });

  /** Signs `user` in at the provider from a fresh browser, starting at the screen's "Sign in with" link. */
  async function providerSignIn(user: string): Promise<Page> {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${gw.httpUrl}/`);
    const link = await page.waitForSelector('#sign-in-oidc:not([hidden])');
    expect(await link.textContent()).toBe('Sign in with Customs ID');
    await link.click();
    // The provider's own pages: its login form (any password), then its consent page.
    await page.waitForURL(new RegExp(`^${issuer}/interaction/`));
    await page.fill('input[name="login"]', user);
    await page.fill('input[name="password"]', 'whatever the provider checks');
    await page.click('button[type="submit"]');
    await page.waitForSelector('button[type="submit"]');
    await page.click('button[type="submit"]');
    await page.waitForURL(new RegExp(`^${gw.httpUrl}/`));
    return page;
  }

  it('signs an officer in with the role the provider gives, making an oidc account on first sign-in', async () => {
    const page = await providerSignIn('ivan.petrov');
    await page.waitForSelector('#conn[data-state="open"]');
    expect(await page.textContent('#user-name')).toBe('ivan.petrov');
    expect(await page.textContent('#user-role')).toBe('officer');
    expect(gw.identity.listAccounts().find((a) => a.name === 'ivan.petrov')).toMatchObject({ role: 'officer', source: 'oidc', password: false });
    expect(gw.identity.listAudit({ limit: 1, action: 'session.login' })[0]).toMatchObject({
      actor: 'ivan.petrov',
      outcome: 'ok',
      details: { method: 'oidc', issuer, role: 'officer' },
    });
    // The session is the gateway's own: the API answers the cookie the callback set.
    expect(await page.evaluate(async () => (await fetch('/v1/session')).json())).toMatchObject({ user: 'ivan.petrov', role: 'officer', kind: 'session' });
    await page.context().close();
  }, 60_000);

  it('gives the highest mapped role, and follows a role changed at the provider at the next sign-in', async () => {
    const page = await providerSignIn('anna.s');
    await page.waitForSelector('#conn[data-state="open"]');
    expect(await page.textContent('#user-role')).toBe('supervisor');
    await page.context().close();
    GROUPS['anna.s'] = ['customs-officers'];
    const again = await providerSignIn('anna.s');
    await again.waitForSelector('#conn[data-state="open"]');
    expect(await again.textContent('#user-role')).toBe('officer');
    expect(gw.identity.listAudit({ limit: 1, action: 'account.role' })[0]).toMatchObject({
      actor: `oidc:${issuer}`,
      target: 'anna.s',
      details: { from: 'supervisor', to: 'officer' },
    });
    await again.context().close();
  }, 60_000);

  it('refuses a user with no mapped role, and one whose name is a local account, and says why on the screen', async () => {
    for (const user of ['visitor', 'admin']) {
      const page = await providerSignIn(user);
      await page.waitForSelector('#sign-in:not([hidden])');
      expect(await page.textContent('#sign-in-error')).toMatch(/no role in Scanline|taken by a local account/);
      expect(page.url()).toBe(`${gw.httpUrl}/`);
      await page.context().close();
    }
    const refused = gw.identity.listAudit({ limit: 2, action: 'session.login' });
    expect(refused.map((e) => [e.target, e.outcome, e.details.method])).toEqual([
      ['admin', 'refused', 'oidc'],
      ['visitor', 'refused', 'oidc'],
    ]);
    // The local admin is untouched and still signs in with its password only.
    expect(gw.identity.listAccounts().find((a) => a.name === 'admin')).toMatchObject({ source: 'local', role: 'admin' });
    expect(gw.identity.listAccounts().some((a) => a.name === 'visitor')).toBe(false);
  }, 60_000);

  it('refuses a callback that this browser did not start', async () => {
    const res = await fetch(`${gw.httpUrl}/v1/session/oidc/callback?code=stolen-code&state=guessed`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/?signInError=SCANLINE_ERR_AUTH_INVALID');
    expect(res.headers.get('set-cookie')).not.toContain('scanline_session=sls_');
  });
});
