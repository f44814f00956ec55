/**
 * portalEntry: the one rule that bounds every per-portal series (ingest counters, line-to-result, line-to-screen):
 * `limit` portal ids get their own entry, later ones share "(other)", "(none)" (before hello) is always its own.
 */
import { describe, expect, it } from 'vitest';
import { NO_PORTAL, OTHER_PORTALS, portalEntry } from '../../src/metrics/index.js';

describe('portalEntry', () => {
  it('gives the first `limit` portals their own entry and the rest one shared entry, created once', () => {
    const map = new Map<string, { n: number }>();
    let created = 0;
    const create = (): { n: number } => {
      created++;
      return { n: 0 };
    };
    const bump = (id: string): void => {
      portalEntry(map, id, 2, create).n++;
    };
    for (const id of ['lane-1', NO_PORTAL, 'lane-2', 'lane-3', 'lane-1', 'lane-4', NO_PORTAL, 'lane-3']) bump(id);
    expect([...map.keys()]).toEqual(['lane-1', NO_PORTAL, 'lane-2', OTHER_PORTALS]);
    expect(Object.fromEntries([...map].map(([k, v]) => [k, v.n]))).toEqual({ 'lane-1': 2, [NO_PORTAL]: 2, 'lane-2': 1, [OTHER_PORTALS]: 3 });
    expect(created).toBe(4);
  });

  it('keeps a portal that already has its entry after the limit is reached', () => {
    const map = new Map<string, number[]>();
    const a = portalEntry(map, 'a', 1, () => []);
    expect(portalEntry(map, 'b', 1, () => [])).toBe(portalEntry(map, 'c', 1, () => []));
    expect(portalEntry(map, 'a', 1, () => [])).toBe(a);
  });
});
