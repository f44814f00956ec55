/**
 * Identity stage: who may do what. Accounts and roles of people and programs, browser sessions with their CSRF
 * tokens, API tokens, portal credentials, failed sign-in lockout, and the audit trail every act of a person goes to.
 * Rows live in the database (src/storage IdentityStore); the HTTP and WebSocket doors that read credentials are in
 * src/server (guard.ts). docs/security.md is the threat model and the list of controls.
 */
export { AuthConfigSchema, OidcConfigSchema, type AuthConfig, type OidcConfig } from './config.js';
export { OidcSignIn } from './oidc.js';
export { ROLES, ROLE_DESCRIPTIONS, isRole, roleAllows, type Access, type Role } from './roles.js';
export { hashPassword, verifyPassword } from './passwords.js';
export { csrfTokenOf, hashSecret, newSecret, sameSecret } from './secrets.js';
export { LoginThrottle } from './login-throttle.js';
export {
  AccountNameSchema,
  IdentityService,
  MAX_TOKEN_DAYS,
  SECRET_PREFIX,
  type Actor,
  type AuditTrail,
  type CreatedToken,
  type IdentityServiceOptions,
  type Principal,
  type SignedIn,
} from './identity-service.js';
export { ReadAudit, type ScanReadKind } from './read-audit.js';
