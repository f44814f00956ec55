/**
 * The one error type of Scanline and the registry of its stable codes.
 *
 * Contract: every error that leaves a stage (to a portal, an operator, an HTTP client or a log) carries a code
 * from `ERROR_CODES`. Codes are never renamed or reused once released; a retired code stays listed as retired.
 * `docs/errors.md` lists every code with what it means and how to fix it; test/errors/registry.test.ts keeps the
 * two in sync. The same code travels on the wire (`error {code, message}` frames, HTTP problem bodies).
 */

export interface ErrorSpec {
  /** Short, stable description used as the default message. */
  readonly message: string;
  /** HTTP status when the error answers an HTTP request. */
  readonly status: number;
  /** True when the caller sent something wrong (TypeError family), false for runtime failures. */
  readonly callerError: boolean;
}

function spec(message: string, status: number, callerError: boolean): ErrorSpec {
  return { message, status, callerError };
}

export const ERROR_CODES = {
  // Portal protocol: control messages and framing.
  SCANLINE_ERR_PROTO_JSON: spec('control message is not valid JSON', 400, true),
  SCANLINE_ERR_PROTO_INVALID: spec('control message does not match the protocol schema', 400, true),
  SCANLINE_ERR_PROTO_UNKNOWN_TYPE: spec('unknown control message type', 400, true),
  SCANLINE_ERR_PROTO_NOT_HELLO: spec('the first message on a portal connection must be hello', 400, true),
  SCANLINE_ERR_PROTO_HELLO_REPEATED: spec('hello was already accepted on this connection', 400, true),
  SCANLINE_ERR_PROTO_OVERSIZE: spec('message is larger than the configured limit', 413, true),
  SCANLINE_ERR_PROTO_VERSION: spec('protocol version not supported', 400, true),
  SCANLINE_ERR_AUTH_TOKEN: spec('portal credential missing or not the credential of the portal id it names', 401, true),
  SCANLINE_ERR_AUTH_REVOKED: spec("the portal's credential was revoked; its connection is closed", 401, true),

  // Binary slice frames.
  SCANLINE_ERR_SLICE_TRUNCATED: spec('binary frame shorter than its header', 400, true),
  SCANLINE_ERR_SLICE_MAGIC: spec('binary frame does not start with the XSL1 magic', 400, true),
  SCANLINE_ERR_SLICE_HEADER: spec('binary frame header size or kind not supported', 400, true),
  SCANLINE_ERR_SLICE_SIZE: spec('binary frame length does not match lineCount x energies x pixels', 400, true),
  SCANLINE_ERR_SLICE_GEOMETRY: spec('slice geometry differs from the detector announced in hello', 400, true),
  SCANLINE_ERR_SLICE_LINE_RANGE: spec('slice lines fall outside the scan line limit', 400, true),
  SCANLINE_ERR_SLICE_SEQ_AHEAD: spec('slice seq is further ahead than the reorder window allows', 400, true),
  SCANLINE_ERR_SLICE_REPLAY_MISMATCH: spec('a replayed seq or line carries different data than the original', 409, true),
  SCANLINE_ERR_SLICE_CALIBRATION_LATE: spec('calibration frame sent after image slices of the scan', 400, true),

  // Scan lifecycle on a portal connection.
  SCANLINE_ERR_STREAM_UNKNOWN: spec('streamId does not name an open scan on this connection', 400, true),
  SCANLINE_ERR_STREAM_IN_USE: spec('streamId already names an open scan on this connection', 409, true),
  SCANLINE_ERR_SCAN_TOO_MANY: spec('too many open scans on this connection', 429, true),
  SCANLINE_ERR_SCAN_INCOMPLETE: spec('scan.end received while slices are still missing', 409, true),
  SCANLINE_ERR_SCAN_UNKNOWN: spec('no scan with this scanId', 404, true),
  SCANLINE_ERR_SCAN_ID_TAKEN: spec('scanId is already used by another scan', 409, true),
  SCANLINE_ERR_SCAN_NOT_RESUMABLE: spec('the scan cannot be resumed (finished, aborted or owned by another portal)', 409, true),
  SCANLINE_ERR_SCAN_TOO_LONG: spec('scan exceeds the configured maximum number of lines', 400, true),
  SCANLINE_ERR_GATEWAY_DRAINING: spec('gateway is shutting down and accepts no new scans', 503, false),

  // Native stitcher.
  SCANLINE_ERR_STITCH_ADDON_LOAD: spec('native stitcher addon could not be loaded', 500, false),
  SCANLINE_ERR_STITCH_OPTIONS: spec('stitcher options are invalid', 500, true),
  SCANLINE_ERR_STITCH_CLOSED: spec('stitcher was already closed', 500, false),
  SCANLINE_ERR_STITCH_BUSY: spec('a processing job is already running on this stitcher', 500, false),
  SCANLINE_ERR_STITCH_BUFFER: spec('caller-provided buffer is too small or of the wrong type', 500, true),
  SCANLINE_ERR_STITCH_FAILED: spec('native stitcher failed while processing', 500, false),

  // HTTP API.
  SCANLINE_ERR_HTTP_NOT_FOUND: spec('no such route', 404, true),
  SCANLINE_ERR_HTTP_BAD_QUERY: spec('query parameter is missing or invalid', 400, true),
  SCANLINE_ERR_HTTP_BAD_BODY: spec('request body is not valid JSON or does not match the expected shape', 400, true),
  SCANLINE_ERR_HTTP_BODY_TOO_LARGE: spec('request body is larger than the endpoint accepts', 413, true),
  SCANLINE_ERR_IMAGE_UNAVAILABLE: spec('scan image has no lines yet', 409, false),
  SCANLINE_ERR_REFERENCE_UNKNOWN: spec('no enrolled reference category with this id', 404, true),
  SCANLINE_ERR_REFERENCE_EXISTS: spec('a reference category or model label with this id already exists', 409, true),
  SCANLINE_ERR_REFERENCE_NO_TILES: spec('the reference regions hold no tiles scored by the goods model', 422, true),
  SCANLINE_ERR_REFERENCE_UNAVAILABLE: spec('reference enrolment needs a loaded goods model with an embedding output', 503, false),
  SCANLINE_ERR_REFERENCE_PROPOSAL_UNKNOWN: spec('no reference proposal with this id', 404, true),
  SCANLINE_ERR_REFERENCE_PROPOSAL_DECIDED: spec('the reference proposal was already approved or rejected', 409, true),
  SCANLINE_ERR_REFERENCE_SAME_SUPERVISOR: spec('a reference change must be approved by a supervisor other than its proposer', 403, true),
  SCANLINE_ERR_RESULTS_UNAVAILABLE: spec('scan has no machine results (received while no model was loaded)', 404, false),

  SCANLINE_ERR_HTTP_HOST: spec('the Host header names no host this gateway serves (server.allowedHosts)', 421, true),
  SCANLINE_ERR_HTTP_CONTENT_TYPE: spec('a JSON body was sent without Content-Type: application/json', 415, true),

  // Identity: people (sessions), programs (API tokens), their roles, and the browser protections.
  SCANLINE_ERR_AUTH_REQUIRED: spec('the request carries no credentials and the route needs them', 401, true),
  SCANLINE_ERR_AUTH_INVALID: spec('the credentials are wrong, expired, revoked or belong to a disabled account', 401, true),
  SCANLINE_ERR_AUTH_FORBIDDEN: spec("the account's role does not allow this", 403, true),
  SCANLINE_ERR_AUTH_LOCKED: spec('too many failed sign-ins for this account or address; wait and try again', 429, true),
  SCANLINE_ERR_AUTH_CSRF: spec('a state-changing request with a session cookie lacks the X-CSRF-Token of its session', 403, true),
  SCANLINE_ERR_AUTH_ORIGIN: spec("the request's Origin is not the gateway's own nor one in server.allowedOrigins", 403, true),
  SCANLINE_ERR_AUTH_OIDC: spec('signing in through the OpenID provider failed: it cannot be reached or its answer does not verify', 502, false),
  SCANLINE_ERR_AUDIT_TAMPERED: spec('the audit chain, a decision or a sealed scan does not hold: something was edited, removed or reordered', 500, false),
  SCANLINE_ERR_ACCOUNT_INVALID: spec('account name, role or password is not acceptable', 400, true),
  SCANLINE_ERR_ACCOUNT_UNKNOWN: spec('no account with this name', 404, true),
  SCANLINE_ERR_ACCOUNT_EXISTS: spec('an account with this name already exists', 409, true),
  SCANLINE_ERR_TOKEN_UNKNOWN: spec('no API token with this id', 404, true),
  SCANLINE_ERR_PORTAL_UNKNOWN: spec('no portal identity with this id', 404, true),
  SCANLINE_ERR_PORTAL_INVALID: spec('portal id is not acceptable', 400, true),

  // Limits: what keeps one client from starving the others.
  SCANLINE_ERR_LIMIT_CONNECTIONS: spec('too many WebSocket connections from this address, or portal connections in total', 429, false),
  SCANLINE_ERR_LIMIT_REQUESTS: spec('too many HTTP requests in progress from this address', 429, false),
  SCANLINE_ERR_LIMIT_RATE: spec('too many requests per second from this address', 429, false),
  SCANLINE_ERR_LIMIT_IMAGES: spec('too many images are being rendered; try again shortly', 503, false),
  SCANLINE_ERR_LIMIT_SCREENS: spec('this account has as many operator screens open as it may', 429, false),
  SCANLINE_ERR_LIMIT_SCANS: spec('as many scans are open on the gateway as it accepts', 503, false),
  SCANLINE_ERR_LIMIT_SPARSE: spec('a frame claims lines too far beyond those the scan received', 400, true),
  SCANLINE_ERR_LIMIT_SCAN_MEMORY: spec('the memory budget for open scans (portal.scanBufferBudgetBytes) is spent', 503, false),

  // Operator screens (WS /v1/operator) and officers' decisions.
  // Retired: the operator id is now the signed-in account, never a header or query parameter the client chooses.
  SCANLINE_ERR_OPERATOR_ID: spec('retired: operator id missing or invalid', 400, true),
  SCANLINE_ERR_OPERATOR_MESSAGE: spec('operator feed message is not valid JSON or does not match the protocol', 400, true),
  SCANLINE_ERR_OPERATOR_VERSION: spec('operator feed protocol version not supported', 400, true),
  SCANLINE_ERR_OPERATOR_TOO_MANY: spec('too many operator screens are connected', 503, false),
  SCANLINE_ERR_OPERATOR_TOO_SLOW: spec('operator screen did not read its messages; disconnected', 503, false),
  SCANLINE_ERR_DECISION_UNKNOWN_SUGGESTION: spec('a decision names a suggestion the scan does not have', 422, true),

  // Storage.
  SCANLINE_ERR_STORAGE_WRITE: spec('writing scan data to the data directory failed', 500, false),
  SCANLINE_ERR_STORAGE_READ: spec('reading scan data from the data directory failed', 500, false),
  SCANLINE_ERR_STORAGE_FULL: spec('the data directory has too little free space for new scans', 503, false),
  SCANLINE_ERR_STORAGE_SCHEMA: spec('the scan database has a schema version this gateway does not know', 500, false),

  // DICOS files (imports, `scanline dicos inspect`).
  SCANLINE_ERR_DICOS_PARSE: spec('the file is not a readable DICOM/DICOS file (not P10, truncated or damaged)', 400, true),
  SCANLINE_ERR_DICOS_SOP_CLASS: spec('the DICOS SOP class is not one Scanline reads', 415, true),
  SCANLINE_ERR_DICOS_TRANSFER_SYNTAX: spec('the DICOS transfer syntax is not one Scanline reads', 415, true),
  SCANLINE_ERR_DICOS_IMAGE: spec('the DICOS image cannot be scanned (bit depth, size, frames, photometric or energy)', 422, true),

  SCANLINE_ERR_DICOS_NOT_FINAL: spec('DICOS is written for ended scans whose results are final', 409, true),
  SCANLINE_ERR_IMPORT_SET: spec('the files of an import do not make one inspection (one DX, or a high- and a low-energy DX of one scan)', 422, true),
  SCANLINE_ERR_IMPORT_TIMEOUT: spec('an import did not finish in time; its scan was aborted', 504, false),
  SCANLINE_ERR_DICOS_EXPORT: spec('the scan cannot be written as DICOS', 422, true),
  SCANLINE_ERR_IMPORT_SIDECAR: spec('the JSON sidecar of an image file is missing, not JSON, or does not match its schema', 422, true),
  SCANLINE_ERR_IMPORT_UNREACHABLE: spec('`scanline import` could not reach the gateway', 503, false),
  SCANLINE_ERR_IMPORT_BUSY: spec('too many imports are running or waiting; send again shortly', 503, false),

  // Configuration and command line.
  SCANLINE_ERR_CONFIG_INVALID: spec('configuration is invalid', 500, true),
  SCANLINE_ERR_CLI_USAGE: spec('command line usage error', 400, true),
  SCANLINE_ERR_SERVER_LISTEN: spec('could not listen on the configured host and port', 500, false),
  SCANLINE_ERR_SERVER_TLS: spec('the TLS certificate or key (server.tls) cannot be read or does not fit', 500, true),
  SCANLINE_ERR_METRICS_COLLECT: spec('reading the metrics of a stage failed while answering GET /metrics', 500, false),

  // Models (manifests, files, ONNX sessions) and inference (batcher, workers).
  SCANLINE_ERR_MODEL_MANIFEST: spec('model manifest (model.json) is missing or invalid', 500, true),
  SCANLINE_ERR_MODEL_CHECKSUM: spec('model file does not match the sha256 in its manifest', 500, false),
  SCANLINE_ERR_MODEL_MISMATCH: spec('model inputs or outputs do not match its manifest', 500, false),
  SCANLINE_ERR_MODEL_LOAD: spec('model could not be loaded on any configured execution provider', 500, false),
  SCANLINE_ERR_MODEL_NOT_FOUND: spec('no model with this name in the models directory', 500, true),
  SCANLINE_ERR_INFER_UNKNOWN_MODEL: spec('tile submitted for a model that is not loaded', 400, true),
  SCANLINE_ERR_INFER_BAD_TILE: spec('tile request is invalid', 400, true),
  SCANLINE_ERR_INFER_QUEUE_FULL: spec('inference queue is full; the tile was rejected', 503, false),
  SCANLINE_ERR_INFER_SHED: spec('re-analysis tile was shed from a full queue to make room for live work', 503, false),
  SCANLINE_ERR_INFER_DEADLINE: spec('tile deadline passed before it could be run', 504, false),
  SCANLINE_ERR_INFER_FAILED: spec('inference failed for the batch holding this tile', 500, false),
  SCANLINE_ERR_INFER_BATCH_TIMEOUT: spec('a batch ran longer than the batch timeout; its worker was replaced', 504, false),
  SCANLINE_ERR_INFER_WORKER_CRASHED: spec('the inference worker running this batch crashed', 500, false),
  SCANLINE_ERR_INFER_WORKER_START: spec('an inference worker could not start', 500, false),
  SCANLINE_ERR_INFER_CLOSED: spec('inference is closed or shutting down and accepts no tiles', 503, false),

  // Simulator (as a portal client).
  SCANLINE_ERR_SIM_REJECTED: spec('the gateway answered the simulated portal with an error', 500, false),
  SCANLINE_ERR_SIM_CONNECTION: spec('the simulated portal lost its connection to the gateway', 500, false),

  // Failures nothing else names: a bug, answered without its details (see toScanlineErrorOrInternal).
  SCANLINE_ERR_INTERNAL: spec('internal error in the gateway; its log has the details', 500, false),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

export interface ScanlineErrorDetails {
  streamId?: number;
  seq?: number;
  scanId?: string;
  /** Every problem found, for validation errors that report more than one. */
  problems?: string[];
  [key: string]: unknown;
}

export class ScanlineError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly callerError: boolean;
  readonly details: ScanlineErrorDetails;

  constructor(code: ErrorCode, message?: string, details: ScanlineErrorDetails = {}, options?: { cause?: unknown }) {
    const s = ERROR_CODES[code];
    super(message ?? s.message, options);
    this.name = 'ScanlineError';
    this.code = code;
    this.status = s.status;
    this.callerError = s.callerError;
    this.details = details;
  }

  /** The shape that goes on the wire (portal and operator `error` frames, HTTP bodies). */
  toJSON(): { code: ErrorCode; message: string } & ScanlineErrorDetails {
    return { ...this.details, code: this.code, message: this.message };
  }
}

/**
 * Wraps anything thrown into a ScanlineError, keeping a ScanlineError as it is and mapping errors that carry a
 * registered `code` (the native addon throws those) to the same code.
 */
export function toScanlineError(err: unknown, fallback: ErrorCode): ScanlineError {
  if (err instanceof ScanlineError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return new ScanlineError(isErrorCode(code) ? code : fallback, message, {}, { cause: err });
}

/** One message shape for invalid arguments: "Expected X for name but received V of type T". */
export function invalidArgument(code: ErrorCode, expected: string, name: string, received: unknown): ScanlineError {
  let shown: string;
  try {
    shown = typeof received === 'string' ? JSON.stringify(received) : String(received);
  } catch {
    shown = '[unprintable]';
  }
  if (shown.length > 80) shown = `${shown.slice(0, 77)}...`;
  return new ScanlineError(code, `Expected ${expected} for ${name} but received ${shown} of type ${typeof received}`);
}

/**
 * What a boundary answering a client (an HTTP route, a portal frame) makes of anything thrown: a ScanlineError, or
 * an error carrying a registered code (the native addon throws those), keeps its code and message; anything else is
 * a failure nobody anticipated and becomes SCANLINE_ERR_INTERNAL with the registry's generic message. The
 * original error is kept as `cause`, for the log only: its text, stack and any paths it names never reach a client.
 */
export function toScanlineErrorOrInternal(err: unknown): ScanlineError {
  if (err instanceof ScanlineError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (isErrorCode(code)) return toScanlineError(err, code);
  return new ScanlineError('SCANLINE_ERR_INTERNAL', undefined, {}, { cause: err });
}
