/**
 * The `auth` section of the gateway configuration: how long sessions last, how failed sign-ins are slowed, what a
 * password must be. Identities themselves live in the database (`scanline user|token|portal`), never in config.
 */
import { type Static, Type, literalUnion } from '../schema/index.js';
import { ROLES } from './roles.js';

/** OpenID Connect sign-in through the customs identity provider (authorization code flow with PKCE). */
export const OidcConfigSchema = Type.Object(
  {
    issuer: Type.String({
      maxLength: 512,
      default: '',
      description: "The provider's issuer URL (its /.well-known/openid-configuration is read at start). '' = no OIDC sign-in.",
    }),
    clientId: Type.String({ maxLength: 256, default: '', description: 'The client id the provider registered for this gateway.' }),
    clientSecret: Type.String({ maxLength: 1024, default: '', secret: true, description: "The client's secret ('' for a public client)." }),
    redirectUri: Type.String({
      maxLength: 512,
      default: '',
      description:
        "Where the provider sends the browser back: this gateway's /v1/session/oidc/callback as officers reach it, e.g. https://scanline.customs.example/v1/session/oidc/callback.",
    }),
    scopes: Type.String({ maxLength: 512, default: 'openid profile', description: 'Scopes asked for (space separated); openid is required.' }),
    usernameClaim: Type.String({
      minLength: 1,
      maxLength: 128,
      default: 'preferred_username',
      description: 'ID token claim that names the account (lower-cased; must fit the account name rules), e.g. preferred_username or sub.',
    }),
    roleClaim: Type.String({
      minLength: 1,
      maxLength: 128,
      default: 'roles',
      description: "ID token claim holding the user's groups or roles (a string or an array of strings).",
    }),
    roleMap: Type.Record(
      Type.String({ minLength: 1, maxLength: 256 }),
      literalUnion(ROLES, { expected: 'a role (metrics, viewer, officer, supervisor or admin)' }),
      {
        default: {},
        description:
          'Claim value → Scanline role, e.g. {"customs-officers": "officer"}. A user with several mapped values gets the highest role; one with none is refused.',
      },
    ),
    label: Type.String({ maxLength: 128, default: '', description: "Text of the sign-in button ('' = \"Sign in with\" and the issuer's host)." }),
  },
  { additionalProperties: false, default: {}, description: 'OpenID Connect sign-in (docs/security.md).' },
);
export type OidcConfig = Static<typeof OidcConfigSchema>;

export const AuthConfigSchema = Type.Object(
  {
    sessionIdleMinutes: Type.Integer({
      minimum: 1,
      maximum: 24 * 60,
      default: 60,
      unit: 'min',
      description: 'A browser session unused this long ends; each request extends it (up to sessionMaxHours).',
    }),
    sessionMaxHours: Type.Integer({
      minimum: 1,
      maximum: 7 * 24,
      default: 12,
      unit: 'h',
      description: 'A session ends this long after sign-in however active it is (a shift): the officer signs in again.',
    }),
    loginMaxFailures: Type.Integer({
      minimum: 1,
      maximum: 100,
      default: 5,
      unit: 'attempts',
      description:
        'Failed sign-ins in a row, per account and per client address, before further attempts are refused (SCANLINE_ERR_AUTH_LOCKED) for a ' +
        'wait that doubles with each further failure (1 s, 2 s, 4 s ... up to loginLockoutMaxSec).',
    }),
    loginLockoutMaxSec: Type.Integer({ minimum: 1, maximum: 86_400, default: 900, unit: 's', description: 'Longest wait after failed sign-ins.' }),
    minPasswordLength: Type.Integer({
      minimum: 8,
      maximum: 128,
      default: 12,
      unit: 'characters',
      description: 'Shortest password `scanline user add|passwd` accepts (NIST SP 800-63B: length over composition rules).',
    }),
    oidc: OidcConfigSchema,
  },
  { additionalProperties: false, default: {}, description: 'Accounts, sessions and sign-in (docs/security.md).' },
);
export type AuthConfig = Static<typeof AuthConfigSchema>;
