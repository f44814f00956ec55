/**
 * Operator feed protocol v1 (WS /v1/operator; docs/protocol.md, "Operator feed v1"): what screens send, what the
 * gateway sends, and the binary image frame. Pure data and validation; no sockets here. Each JSON message has one
 * schema here, from which its type comes; the gateway checks what screens send (parseClientMessage), not what it
 * sends itself.
 */
import { ScanlineError } from '../errors/index.js';
import { type RefineContext, SchemaValidator, type Static, type TSchema, Type, describeValue } from '../schema/index.js';
import {
  DeclarationCheckSchema,
  DecisionRecordSchema,
  ScanResultsReportSchema,
  ScanStateSchema,
  SuggestionSegmentSchema,
  ThreatAlertSchema,
} from './results.js';

export const OPERATOR_PROTOCOL_VERSION = 1;

/** Operator ids: the signed-in account's name (src/identity AccountNameSchema is stricter: lower case). */
export const OperatorIdSchema = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$',
  expected: 'an operator id of 1-64 characters A-Za-z0-9._@- (starting with a letter or digit)',
});
// ---------------------------------------------------------------------------------------------------------------
// Screen -> gateway

/** Most entries one subscribe or unsubscribe message may list per kind. */
const MAX_SUBSCRIPTION_ENTRIES = 256;

/**
 * Most lanes and most single scans one screen may watch at once (subscriptions are additive; further entries are
 * refused with SCANLINE_ERR_OPERATOR_MESSAGE), so what the gateway keeps per screen stays bounded.
 */
export const MAX_WATCHED_PORTALS = 256;
export const MAX_WATCHED_SCANS = 256;

export const OperatorHelloSchema = Type.Object(
  {
    type: Type.Literal('hello'),
    protocol: Type.Integer({ description: 'Operator feed protocol version the screen speaks.' }),
  },
  { additionalProperties: false },
);

const SubscriptionLists = {
  portals: Type.Optional(
    Type.Array(Type.String({ pattern: '^(\\*|[A-Za-z0-9._:-]{1,64})$', expected: 'a portal id of 1-64 characters A-Za-z0-9._:- or "*"' }), {
      maxItems: MAX_SUBSCRIPTION_ENTRIES,
      expected: `an array of at most ${MAX_SUBSCRIPTION_ENTRIES} portal ids (or "*")`,
      description: 'Lanes to watch; "*" = every lane.',
    }),
  ),
  scans: Type.Optional(
    Type.Array(Type.String({ minLength: 1, maxLength: 256, expected: 'a scan id of 1-256 characters' }), {
      maxItems: MAX_SUBSCRIPTION_ENTRIES,
      expected: `an array of at most ${MAX_SUBSCRIPTION_ENTRIES} scan ids`,
      description: 'Single scans to watch (live or from history).',
    }),
  ),
};

/** Subscribing is additive. At least one entry in portals or scans. */
export const SubscribeSchema = Type.Object({ type: Type.Literal('subscribe'), ...SubscriptionLists }, { additionalProperties: false });
/** Removes the named entries. At least one entry in portals or scans. */
export const UnsubscribeSchema = Type.Object({ type: Type.Literal('unsubscribe'), ...SubscriptionLists }, { additionalProperties: false });

/** Asks again for a scan's snapshot (the screen must watch the scan or its lane). */
export const ResyncSchema = Type.Object(
  { type: Type.Literal('resync'), scanId: Type.String({ minLength: 1, expected: 'a scan id' }) },
  { additionalProperties: false },
);

/** The schema of each screen->gateway message, by type. */
export const OPERATOR_CLIENT_MESSAGE_SCHEMAS = {
  hello: OperatorHelloSchema,
  subscribe: SubscribeSchema,
  unsubscribe: UnsubscribeSchema,
  resync: ResyncSchema,
} as const;

/**
 * What a screen watches. `portals: ["*"]` = every lane; `scans` = single scans (live or from history). Subscribing
 * is additive; unsubscribe removes the named entries.
 */
export type Subscription = Required<Omit<Static<typeof SubscribeSchema>, 'type'>>;

/** A screen's message as parseClientMessage returns it: subscription lists present (maybe empty) and distinct. */
export type OperatorClientMessage =
  | Static<typeof OperatorHelloSchema>
  | Required<Static<typeof SubscribeSchema>>
  | Required<Static<typeof UnsubscribeSchema>>
  | Static<typeof ResyncSchema>;

/** A subscribe or unsubscribe with no entry says nothing: at least one entry in either list (once both passed). */
function atLeastOneEntry(m: { portals?: unknown[]; scans?: unknown[] }, ctx: RefineContext): void {
  if (ctx.ok('portals', 'scans') && (m.portals?.length ?? 0) + (m.scans?.length ?? 0) === 0) {
    ctx.fail('portals', 'at least one entry here or in scans', m.portals);
  }
}

const unknownField = (path: string): string => `Unknown field ${path}`;
/** Compiled once at module load. */
const CLIENT_VALIDATORS: { readonly [T in keyof typeof OPERATOR_CLIENT_MESSAGE_SCHEMAS]: Checker } = {
  hello: new SchemaValidator(OperatorHelloSchema, { unknownKey: unknownField }),
  subscribe: new SchemaValidator(SubscribeSchema, { unknownKey: unknownField, refine: atLeastOneEntry }),
  unsubscribe: new SchemaValidator(UnsubscribeSchema, { unknownKey: unknownField, refine: atLeastOneEntry }),
  resync: new SchemaValidator(ResyncSchema, { unknownKey: unknownField }),
};
/** A SchemaValidator of any of those schemas (the class is invariant in its schema). */
type Checker = Pick<SchemaValidator<TSchema>, 'problems'> & { check(value: unknown): boolean };
/** What every message is before its type is known. */
const ANY_OBJECT = new SchemaValidator(Type.Object({}));

/** Parses one text message from a screen; throws SCANLINE_ERR_OPERATOR_MESSAGE (every problem listed). */
export function parseClientMessage(text: string): OperatorClientMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ScanlineError('SCANLINE_ERR_OPERATOR_MESSAGE', `operator message is not valid JSON: ${(err as Error).message}`);
  }
  if (!ANY_OBJECT.check(value)) {
    throw new ScanlineError('SCANLINE_ERR_OPERATOR_MESSAGE', `Expected a JSON object for the message but received ${describeValue(value)}`);
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string' || !Object.hasOwn(CLIENT_VALIDATORS, type)) {
    throw new ScanlineError(
      'SCANLINE_ERR_OPERATOR_MESSAGE',
      `Expected one of ${Object.keys(CLIENT_VALIDATORS).join(', ')} for type but received ${describeValue(type)}`,
    );
  }
  const validator = CLIENT_VALIDATORS[type as keyof typeof CLIENT_VALIDATORS];
  if (!validator.check(value)) {
    const problems = validator.problems(value);
    throw new ScanlineError('SCANLINE_ERR_OPERATOR_MESSAGE', `invalid ${type} message:\n  - ${problems.join('\n  - ')}`, { problems });
  }
  const m = value as Static<(typeof OPERATOR_CLIENT_MESSAGE_SCHEMAS)[keyof typeof OPERATOR_CLIENT_MESSAGE_SCHEMAS]>;
  if (m.type === 'subscribe' || m.type === 'unsubscribe') return { type: m.type, portals: [...new Set(m.portals ?? [])], scans: [...new Set(m.scans ?? [])] };
  return m;
}

// ---------------------------------------------------------------------------------------------------------------
// Gateway -> screen (text frames, JSON; types only: the gateway does not check what it sends)

/** The scan states of the store (src/storage), as they go on the wire. */
/** What a screen knows about a scan without its image and results. */
export const ScanSummarySchema = Type.Object({
  scanId: Type.String(),
  portalId: Type.String(),
  state: ScanStateSchema,
  lines: Type.Integer(),
  detector: Type.Object({ pixels: Type.Integer(), energies: Type.Integer(), pitchMm: Type.Number({ unit: 'mm' }), lineRateHz: Type.Number({ unit: 'Hz' }) }),
  vehicle: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  declaration: Type.Union([Type.Object({ hsCodes: Type.Array(Type.String()) }), Type.Null()]),
  startedAt: Type.String({ description: 'ISO 8601.' }),
  endedAt: Type.Union([Type.String(), Type.Null()]),
});
export type ScanSummary = Static<typeof ScanSummarySchema>;

/** A lane (portal) and what it is doing. */
export const LaneStatusSchema = Type.Object({
  portalId: Type.String(),
  liveScanId: Type.Union([Type.String(), Type.Null()], { description: 'The scan being received, or null when the lane is idle.' }),
  lastScanId: Type.Union([Type.String(), Type.Null()], { description: 'The most recent scan of the lane (live or ended).' }),
  lastState: Type.Union([ScanStateSchema, Type.Null()]),
  lines: Type.Integer(),
  alarmDecision: Type.Union([Type.String(), Type.Null()], { description: "The machine's advice on the last scan, when known." }),
  updatedAt: Type.String(),
});
export type LaneStatus = Static<typeof LaneStatusSchema>;

/** Geometry of the preview image: one sample per `downsample` x `downsample` raw block. */
export const PreviewGeometrySchema = Type.Object({
  downsample: Type.Integer(),
  width: Type.Integer({ description: 'Preview samples along the scan.' }),
  height: Type.Integer({ description: 'Preview samples down the detector.' }),
});
export type PreviewGeometry = Static<typeof PreviewGeometrySchema>;

const scanRef = { scanId: Type.String(), portalId: Type.String() };

export const OperatorServerMessageSchema = Type.Union([
  Type.Object({
    type: Type.Literal('welcome'),
    protocol: Type.Integer(),
    gateway: Type.String(),
    operatorId: Type.String(),
    lanes: Type.Array(LaneStatusSchema),
    limits: Type.Object({ maxMessageBytes: Type.Integer({ unit: 'bytes' }) }),
  }),
  Type.Object({ type: Type.Literal('subscribed'), portals: Type.Array(Type.String()), scans: Type.Array(Type.String()) }),
  Type.Object({ type: Type.Literal('lane'), lane: LaneStatusSchema }),
  Type.Object({
    type: Type.Literal('scan.snapshot'),
    scan: ScanSummarySchema,
    preview: Type.Composite([PreviewGeometrySchema, Type.Object({ seq: Type.Integer() })]),
    results: Type.Union([ScanResultsReportSchema, Type.Null()], { description: 'The machine report so far (null: the gateway runs without inference).' }),
    decisions: Type.Array(DecisionRecordSchema),
    resync: Type.Boolean({ description: 'True when sent to catch up after strips were coalesced (or on request), false for a first view.' }),
  }),
  Type.Object({ type: Type.Literal('scan.started'), scan: ScanSummarySchema, preview: PreviewGeometrySchema }),
  Type.Object({ type: Type.Literal('suggestions'), ...scanRef, segments: Type.Array(SuggestionSegmentSchema) }),
  Type.Object({ type: Type.Literal('alert'), ...scanRef, alert: ThreatAlertSchema }),
  Type.Object({
    type: Type.Literal('distribution'),
    ...scanRef,
    outOfDistribution: Type.Boolean({ description: "Whether the scan is unlike the model's training data now." }),
    withdrawnAlertIds: Type.Array(Type.String(), { description: 'Alerts sent earlier for this scan that are no longer alerts (hints now).' }),
    hints: Type.Array(ThreatAlertSchema, {
      description: "Every threat box of an out-of-distribution scan, as low-confidence hints (the report's hints); [] when in.",
    }),
  }),
  Type.Object({ type: Type.Literal('declaration'), ...scanRef, check: DeclarationCheckSchema }),
  Type.Object({ type: Type.Literal('scan.completed'), scan: ScanSummarySchema }),
  Type.Object({ type: Type.Literal('results.final'), ...scanRef, report: ScanResultsReportSchema }),
  Type.Object({ type: Type.Literal('decision'), ...scanRef, decision: DecisionRecordSchema }),
  // An error's details (e.g. `refused`, `scanIds`) travel beside its code and message.
  Type.Intersect([Type.Object({ type: Type.Literal('error'), code: Type.String(), message: Type.String() }), Type.Record(Type.String(), Type.Unknown())]),
]);
export type OperatorServerMessage = Static<typeof OperatorServerMessageSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Gateway -> screen (binary frames): images

/** "XSO1" little-endian. */
export const IMAGE_FRAME_MAGIC = 0x314f5358;
export const IMAGE_FRAME_FIXED_BYTES = 32;

export const ImageFrameKind = {
  /** New preview columns of a live scan, appended at `line`. */
  Strip: 1,
  /** The preview image of the scan from line 0 up to `line + lines`: replaces what the screen had. */
  Snapshot: 2,
} as const;
export type ImageFrameKind = (typeof ImageFrameKind)[keyof typeof ImageFrameKind];

/** Image encodings in frames; only PNG (lossless, so the material class of each sample can be read back). */
export const ImageFormat = { Png: 1 } as const;

export interface ImageFrameHeader {
  kind: ImageFrameKind;
  format: number;
  downsample: number;
  /** Strip: its sequence number within the scan (1, 2, ...); snapshot: the last strip it includes (0: none). */
  seq: number;
  /** First raw line covered (a multiple of downsample). */
  line: number;
  /** Raw lines covered. */
  lines: number;
  /** Image size in preview samples (width along the scan). */
  width: number;
  height: number;
  scanId: string;
}

/**
 * Encodes a binary image frame (little-endian):
 *   0 u32 magic "XSO1" | 4 u8 kind | 5 u8 format | 6 u8 downsample | 7 u8 scanIdBytes | 8 u32 seq | 12 u32 line
 *   16 u32 lines | 20 u32 width | 24 u16 height | 26 u16 reserved (0) | 28 u32 imageBytes | 32 scanId (UTF-8) | image
 */
export function encodeImageFrame(h: ImageFrameHeader, image: Uint8Array): Buffer {
  const id = Buffer.from(h.scanId, 'utf8');
  if (id.byteLength === 0 || id.byteLength > 255) throw new RangeError(`scan id of ${id.byteLength} bytes does not fit an image frame`);
  const out = Buffer.allocUnsafe(IMAGE_FRAME_FIXED_BYTES + id.byteLength + image.byteLength);
  out.writeUInt32LE(IMAGE_FRAME_MAGIC, 0);
  out.writeUInt8(h.kind, 4);
  out.writeUInt8(h.format, 5);
  out.writeUInt8(h.downsample, 6);
  out.writeUInt8(id.byteLength, 7);
  out.writeUInt32LE(h.seq, 8);
  out.writeUInt32LE(h.line, 12);
  out.writeUInt32LE(h.lines, 16);
  out.writeUInt32LE(h.width, 20);
  out.writeUInt16LE(h.height, 24);
  out.writeUInt16LE(0, 26);
  out.writeUInt32LE(image.byteLength, 28);
  id.copy(out, IMAGE_FRAME_FIXED_BYTES);
  out.set(image, IMAGE_FRAME_FIXED_BYTES + id.byteLength);
  return out;
}

/** Decodes a binary image frame (for clients and tests); throws RangeError on a malformed frame. */
export function decodeImageFrame(frame: Uint8Array): { header: ImageFrameHeader; image: Uint8Array } {
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (b.byteLength < IMAGE_FRAME_FIXED_BYTES || b.readUInt32LE(0) !== IMAGE_FRAME_MAGIC) throw new RangeError('not an XSO1 image frame');
  const idBytes = b.readUInt8(7);
  const imageBytes = b.readUInt32LE(28);
  if (b.byteLength !== IMAGE_FRAME_FIXED_BYTES + idBytes + imageBytes) throw new RangeError('image frame length does not match its header');
  return {
    header: {
      kind: b.readUInt8(4) as ImageFrameKind,
      format: b.readUInt8(5),
      downsample: b.readUInt8(6),
      seq: b.readUInt32LE(8),
      line: b.readUInt32LE(12),
      lines: b.readUInt32LE(16),
      width: b.readUInt32LE(20),
      height: b.readUInt16LE(24),
      scanId: b.toString('utf8', IMAGE_FRAME_FIXED_BYTES, IMAGE_FRAME_FIXED_BYTES + idBytes),
    },
    image: frame.subarray(IMAGE_FRAME_FIXED_BYTES + idBytes),
  };
}
