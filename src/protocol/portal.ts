/**
 * Control messages of portal protocol v1 (JSON text frames), as documented in docs/protocol.md. Every message is an
 * object with a string `type`; each type has one schema here, from which its TypeScript type comes.
 * `parsePortalMessage` checks portal→gateway messages against theirs and reports every problem at once;
 * gateway→portal messages are built with the types from their schemas (the gateway does not check what it sends).
 */
import { ScanlineError } from '../errors/index.js';
import { SchemaValidator, type Static, type TSchema, Type, describeValue } from '../schema/index.js';

export const PROTOCOL_VERSION = 1;

/** Stream ids, line counts and sequence numbers: unsigned 32-bit integers, as in the binary frames. */
const U32 = Type.Integer({ minimum: 0, maximum: 0xffff_ffff });
/** Portal and scan ids. */
const Id = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$',
  expected: "an id of 1-64 letters, digits, '.', '_', ':' or '-'",
});
/** A portal's id (hello.portalId), also the name of its identity (`scanline portal add`). */
export const PortalIdSchema = Id;

// ---------------------------------------------------------------------------------------------------------------
// Portal → gateway (checked by parsePortalMessage)

export const DetectorInfoSchema = Type.Object({
  pixels: Type.Integer({ minimum: 1, maximum: 4096, description: 'Detector elements per line.' }),
  energies: Type.Union([Type.Literal(1), Type.Literal(2)], { description: 'With 2, each line carries the high energy then the low energy.' }),
  bitDepth: Type.Literal(16),
  pitchMm: Type.Number({ exclusiveMinimum: 0, maximum: 100, unit: 'mm', description: 'Detector element pitch.' }),
  lineRateHz: Type.Number({ exclusiveMinimum: 0, maximum: 20_000, unit: 'Hz', description: 'Nominal line rate, lines per second.' }),
});
export type DetectorInfo = Static<typeof DetectorInfoSchema>;

export const HelloSchema = Type.Object({
  type: Type.Literal('hello'),
  portalId: Id,
  // The portal's own credential (`scanline portal add`); never shown in an error: the message is logged and sent back.
  token: Type.Optional(Type.String({ secret: true, maxLength: 256 })),
  protocol: Type.Optional(Type.Integer({ description: 'Protocol version the portal speaks; absent means 1.' })),
  detector: DetectorInfoSchema,
});
export type HelloMessage = Static<typeof HelloSchema>;

/**
 * Free-form (e.g. `{plate, kind}`): stored with the scan and shown to officers, never interpreted, so its fields are
 * not checked.
 */
export const VehicleInfoSchema = Type.Object({
  plate: Type.Optional(Type.Unknown({ description: 'Licence plate, as the portal reads it.' })),
  kind: Type.Optional(Type.Unknown({ description: 'Vehicle kind, e.g. "semi-trailer".' })),
});
export type VehicleInfo = Static<typeof VehicleInfoSchema> & { [key: string]: unknown };

/** Further fields are kept with the scan as they are. */
export const DeclarationSchema = Type.Object(
  {
    hsCodes: Type.Array(Type.String({ pattern: '^[0-9]{2,10}$', expected: 'an HS code of 2-10 digits' }), {
      maxItems: 64,
      expected: 'an array of at most 64 HS codes',
      description: 'Harmonized System codes declared for the cargo.',
    }),
  },
  { expected: 'an object with an hsCodes array' },
);
export type Declaration = Static<typeof DeclarationSchema> & { [key: string]: unknown };

export const ScanStartSchema = Type.Object({
  type: Type.Literal('scan.start'),
  streamId: U32,
  scanId: Type.Optional(Id),
  vehicle: Type.Optional(VehicleInfoSchema),
  declaration: Type.Optional(DeclarationSchema),
});
export type ScanStartMessage = Omit<Static<typeof ScanStartSchema>, 'vehicle' | 'declaration'> & { vehicle?: VehicleInfo; declaration?: Declaration };

export const ScanEndSchema = Type.Object({
  type: Type.Literal('scan.end'),
  streamId: U32,
  totalLines: U32,
});
export type ScanEndMessage = Static<typeof ScanEndSchema>;

export const ScanAbortSchema = Type.Object({
  type: Type.Literal('scan.abort'),
  streamId: U32,
  reason: Type.String({ maxLength: 500 }),
});
export type ScanAbortMessage = Static<typeof ScanAbortSchema>;

export const ScanResumeSchema = Type.Object({
  type: Type.Literal('scan.resume'),
  streamId: U32,
  scanId: Id,
});
export type ScanResumeMessage = Static<typeof ScanResumeSchema>;

export type PortalMessage = HelloMessage | ScanStartMessage | ScanEndMessage | ScanAbortMessage | ScanResumeMessage;

/** The schema of each portal→gateway message, by type. */
export const PORTAL_MESSAGE_SCHEMAS = {
  hello: HelloSchema,
  'scan.start': ScanStartSchema,
  'scan.end': ScanEndSchema,
  'scan.abort': ScanAbortSchema,
  'scan.resume': ScanResumeSchema,
} as const;

// ---------------------------------------------------------------------------------------------------------------
// Gateway → portal (types only: built by the gateway, not checked)

export const WelcomeSchema = Type.Object({
  type: Type.Literal('welcome'),
  protocol: Type.Integer(),
  gateway: Type.String(),
  portalId: Type.String(),
  limits: Type.Object({
    maxOpenScans: Type.Integer(),
    maxLines: Type.Integer(),
    reorderWindowSlices: Type.Integer(),
    maxMessageBytes: Type.Integer({ unit: 'bytes' }),
  }),
});
export type WelcomeMessage = Static<typeof WelcomeSchema>;

export const ScanAcceptedSchema = Type.Object({
  type: Type.Literal('scan.accepted'),
  streamId: U32,
  scanId: Type.String(),
});
export type ScanAcceptedMessage = Static<typeof ScanAcceptedSchema>;

export const AckSchema = Type.Object({
  type: Type.Literal('ack'),
  streamId: U32,
  seq: Type.Integer({ description: 'Cumulative: every frame of the stream with seq <= this one is stored.' }),
});
export type AckMessage = Static<typeof AckSchema>;

export const ResumeSchema = Type.Object({
  type: Type.Literal('resume'),
  streamId: U32,
  scanId: Type.String(),
  nextSeq: Type.Integer({ description: 'The first seq the gateway has not stored; the portal resends from here.' }),
});
export type ResumeMessage = Static<typeof ResumeSchema>;

export const ScanCompletedSchema = Type.Object({
  type: Type.Literal('scan.completed'),
  streamId: U32,
  scanId: Type.String(),
  lines: Type.Integer(),
  gaps: Type.Array(Type.Tuple([Type.Integer(), Type.Integer()]), { description: 'Line ranges [start, end) that never arrived.' }),
});
export type ScanCompletedMessage = Static<typeof ScanCompletedSchema>;

export const ScanAbortedSchema = Type.Object({
  type: Type.Literal('scan.aborted'),
  streamId: U32,
  scanId: Type.String(),
  reason: Type.String(),
});
export type ScanAbortedMessage = Static<typeof ScanAbortedSchema>;

export const ErrorMessageSchema = Type.Object({
  type: Type.Literal('error'),
  code: Type.String(),
  message: Type.String(),
  streamId: Type.Optional(U32),
  seq: Type.Optional(Type.Integer()),
  nextSeq: Type.Optional(Type.Integer({ description: 'For SCANLINE_ERR_SLICE_SEQ_AHEAD and SCANLINE_ERR_SCAN_INCOMPLETE: where to resend from.' })),
});
export type ErrorMessage = Static<typeof ErrorMessageSchema>;

export const DrainingSchema = Type.Object({
  type: Type.Literal('draining'),
  deadlineMs: Type.Integer({ unit: 'ms', description: 'How long the gateway still waits for open scans to finish.' }),
});
export type DrainingMessage = Static<typeof DrainingSchema>;

export const GatewayMessageSchema = Type.Union([
  WelcomeSchema,
  ScanAcceptedSchema,
  AckSchema,
  ResumeSchema,
  ScanCompletedSchema,
  ScanAbortedSchema,
  ErrorMessageSchema,
  DrainingSchema,
]);
export type GatewayMessage = Static<typeof GatewayMessageSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Parsing

type PortalMessageType = keyof typeof PORTAL_MESSAGE_SCHEMAS;
/** A SchemaValidator of any of those schemas (the class is invariant in its schema). */
type Checker = Pick<SchemaValidator<TSchema>, 'problems'> & { check(value: unknown): boolean };

/** Compiled once at module load; one check per control message. */
const VALIDATORS: { readonly [T in PortalMessageType]: Checker } = {
  hello: new SchemaValidator(HelloSchema),
  'scan.start': new SchemaValidator(ScanStartSchema),
  'scan.end': new SchemaValidator(ScanEndSchema),
  'scan.abort': new SchemaValidator(ScanAbortSchema),
  'scan.resume': new SchemaValidator(ScanResumeSchema),
};
/** What every control message is before its type is known. */
const ANY_OBJECT = new SchemaValidator(Type.Object({}));

/**
 * Parses and validates one portal→gateway text frame.
 * Throws SCANLINE_ERR_PROTO_JSON, SCANLINE_ERR_PROTO_UNKNOWN_TYPE or SCANLINE_ERR_PROTO_INVALID (with every
 * problem listed in `details.problems`). `streamId` is copied into the error when it can be read.
 */
export function parsePortalMessage(text: string): PortalMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ScanlineError('SCANLINE_ERR_PROTO_JSON', `control message is not valid JSON: ${(err as Error).message}`);
  }
  // Hot path: one property read and the compiled check of the message's type. Only JSON objects have a `type`
  // property, so a known type implies an object; everything else is sorted out on the way to the error.
  const type = (value as { type?: unknown } | null)?.type;
  const known = typeof type === 'string' && Object.hasOwn(VALIDATORS, type);
  if (known && VALIDATORS[type as PortalMessageType].check(value)) return value as PortalMessage;
  if (!ANY_OBJECT.check(value)) {
    throw new ScanlineError('SCANLINE_ERR_PROTO_INVALID', `Expected a JSON object but received ${describeValue(value)}`);
  }
  const streamId = (value as { streamId?: unknown }).streamId;
  const details = Number.isInteger(streamId) ? { streamId: streamId as number } : {};
  if (!known) {
    throw new ScanlineError(
      'SCANLINE_ERR_PROTO_UNKNOWN_TYPE',
      `unknown control message type ${describeValue(type)}; expected one of ${Object.keys(VALIDATORS).join(', ')}`,
      details,
    );
  }
  const problems = VALIDATORS[type as PortalMessageType].problems(value);
  throw new ScanlineError('SCANLINE_ERR_PROTO_INVALID', `${type}: ${problems.join('; ')}`, { ...details, problems });
}
