/**
 * Wire formats, defined once: portal protocol v1 (JSON control messages and binary slice frames), the operator feed
 * v1 (screen messages and image frames) and the machine results report they and the HTTP API carry. Used by the
 * gateway's stages (ingest, operator, results, storage, server), by the tools that speak to it (simulator, eval) and
 * by tests. Depends on nothing but the shared schema and error modules. docs/protocol.md describes them for people.
 */
export * from './operator.js';
export * from './portal.js';
export * from './results.js';
export * from './slice-frame.js';
