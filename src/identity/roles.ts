/**
 * Roles and what each may reach. Five roles: four for people, in a line where each adds to the one before
 * (viewer < officer < supervisor < admin), and `metrics` for the program that scrapes /metrics, which may do
 * nothing else. Every HTTP route and WebSocket declares the Access it needs (src/server/routes.ts); the role matrix
 * test (test/server/access-matrix.test.ts) holds the whole table.
 */
import type { AccountRole } from '../storage/index.js';

export type Role = AccountRole;

export const ROLES: readonly Role[] = ['metrics', 'viewer', 'officer', 'supervisor', 'admin'];

/** What a role may do, in words (CLI help, docs/security.md). */
export const ROLE_DESCRIPTIONS: Readonly<Record<Role, string>> = {
  metrics: 'reads GET /metrics only (a Prometheus scraper)',
  viewer: 'sees scans, images, results, decisions and the live feed',
  officer: 'viewer, and records decisions on scans',
  supervisor: 'officer, and proposes and approves reference categories',
  admin: 'supervisor, and manages accounts, tokens, portals and the audit trail',
};

/**
 * What a route needs: `public` (anyone, no credentials read), `signedIn` (any valid credentials), `metrics`, or a
 * role of people, which its betters have too.
 */
export type Access = 'public' | 'signedIn' | 'metrics' | 'viewer' | 'officer' | 'supervisor' | 'admin';

const PEOPLE_RANK: Readonly<Record<Role, number>> = { metrics: -1, viewer: 0, officer: 1, supervisor: 2, admin: 3 };

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** True when `role` may use a route of `access` (`public` aside, which needs no role). */
export function roleAllows(role: Role, access: Access): boolean {
  switch (access) {
    case 'public':
    case 'signedIn':
      return true;
    case 'metrics':
      return role === 'metrics' || role === 'admin';
    default:
      return PEOPLE_RANK[role] >= PEOPLE_RANK[access];
  }
}
