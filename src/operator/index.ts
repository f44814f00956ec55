/**
 * Operator stage: the live feed to officers' screens (WS /v1/operator, protocol v1), their backpressure policy,
 * the material preview images, and officers' decisions. The server stage provides the sockets and HTTP routes;
 * src/main.ts wires the hub to ingest and results.
 */
export { DEFAULT_OPERATOR_CONFIG, type OperatorConfig, OperatorConfigSchema, refineOperatorConfig } from './config.js';
export {
  OperatorHub,
  type OperatorHubOptions,
  type OperatorHubStats,
  type ResultsReader,
} from './operator-hub.js';
export { CLOSE_TOO_SLOW, OperatorSession, type OperatorTransport, type SendStatus } from './operator-session.js';
export { BLOCK_COLUMNS, PreviewCanvas, encodeRgbPng, PREVIEW_PNG_COMPRESSION, stripToRgb } from './preview-canvas.js';
export { DecisionRequestSchema, MAX_DECISION_COMMENT, MAX_DECISION_SUGGESTIONS, recordDecision, suggestionIds, type DecisionRequest } from './decisions.js';
