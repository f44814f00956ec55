/**
 * The `portal` label of every per-portal series, bounded: a gateway that accepts any portal id must not let portal
 * ids grow the label set without limit.
 */

/** Portal key of frames received on a connection before its hello (the portal is not known yet). */
export const NO_PORTAL = '(none)';
/** Portal key shared by every portal beyond `portalLimit` distinct ones. */
export const OTHER_PORTALS = '(other)';

/**
 * The entry of `portalId` in a per-portal map with a bounded key set (metrics label values), created on first use:
 * at most `limit` portal ids get their own entry, later ones share OTHER_PORTALS; NO_PORTAL always has its own and
 * counts against no limit. Every per-portal series of the gateway (ingest counters, line-to-result, line-to-screen)
 * uses it, so one portal is bounded the same way everywhere.
 */
export function portalEntry<T>(map: Map<string, T>, portalId: string, limit: number, create: () => T): T {
  let entry = map.get(portalId);
  if (entry !== undefined) return entry;
  const tracked = map.size - (map.has(NO_PORTAL) ? 1 : 0) - (map.has(OTHER_PORTALS) ? 1 : 0);
  const key = portalId === NO_PORTAL || tracked < limit ? portalId : OTHER_PORTALS;
  entry = map.get(key);
  if (entry === undefined) {
    entry = create();
    map.set(key, entry);
  }
  return entry;
}
