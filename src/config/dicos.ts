/**
 * Configuration of DICOS imports and exports (config keys `import`, `dicos.listener`, `dicos.destinations`,
 * `dicos.push`). Kept here, beside the other sections, rather than in src/imports and src/push: those stages load
 * dcmjs and dcmjs-dimse, which every command that reads the configuration would otherwise pay for at start.
 */
import { PortalIdSchema } from '../protocol/index.js';
import { literalUnion, type Static, Type } from '../schema/index.js';

/** An Application Entity title (PS3.5 6.2, AE): 1-16 characters of the default repertoire, no backslash. */
const AE_TITLE = Type.String({ pattern: '^[ -[\\]-~]{1,16}$', expected: 'an AE title: 1-16 printable ASCII characters, no backslash' });

export const ImportConfigSchema = Type.Object(
  {
    portalId: Type.String({
      ...PortalIdSchema,
      default: 'import',
      description:
        "The portal id imported scans are filed under (scan ids, per-portal metrics, the operator screen lanes). The sending station and sender are kept in each scan's origin.",
    }),
    maxBytes: Type.Integer({
      minimum: 1024,
      maximum: 4 * 1024 ** 3,
      default: 512 * 1024 ** 2,
      unit: 'bytes',
      description: 'Largest import request (all its files together); larger is refused with SCANLINE_ERR_HTTP_BODY_TOO_LARGE before it is read whole.',
    }),
    maxConcurrent: Type.Integer({
      minimum: 1,
      maximum: 64,
      default: 2,
      description:
        'Imports decoded and fed to the pipeline at once. An HTTP import beyond it gets SCANLINE_ERR_IMPORT_BUSY before its body is read (bodies in memory are bounded by maxConcurrent x maxBytes); a DICOS association waits (up to maxQueued).',
    }),
    maxQueued: Type.Integer({
      minimum: 0,
      maximum: 1024,
      default: 8,
      description: 'Images received by the DICOS listener waiting for a free slot beyond maxConcurrent; more are refused (out of resources).',
    }),
    airReference: literalUnion(['full-scale', 'first-lines'] as const, {
      default: 'full-scale',
      description:
        "Flat field of an imported image without Scanline's own calibration: full-scale takes 2^BitsStored - 1 as unattenuated (images already gain- and offset-corrected, as DX images are); first-lines averages the first stitch.airLines lines, as for a portal that sends no air frame.",
    }),
    lineRateHz: Type.Number({
      exclusiveMinimum: 0,
      maximum: 20_000,
      default: 1_000,
      unit: 'Hz',
      description: 'Line rate recorded for an imported image (a DX does not say how fast it was acquired); only times along the scan depend on it.',
    }),
    pitchMm: Type.Number({
      exclusiveMinimum: 0,
      maximum: 100,
      default: 5,
      unit: 'mm',
      description: 'Detector pitch assumed for an imported image that gives no pixel spacing.',
    }),
    watchDir: Type.Union([Type.String({ minLength: 1 }), Type.Null()], {
      default: null,
      description:
        'A folder scanners export to (DICOS files, or 16-bit TIFF/PNG with a JSON sidecar): each inspection in it becomes a scan and its files are removed. null: none.',
    }),
    watchIntervalMs: Type.Integer({ minimum: 100, maximum: 600_000, default: 1_000, unit: 'ms', description: 'How often the watched folder is looked at.' }),
    watchPairWaitMs: Type.Integer({
      minimum: 0,
      maximum: 3_600_000,
      default: 60_000,
      unit: 'ms',
      description: 'How long one energy of a DICOS pair in the watched folder waits for the other before it is imported alone.',
    }),
    quarantineMaxBytes: Type.Integer({
      minimum: 0,
      maximum: 2 ** 53 - 1,
      default: 1024 ** 3,
      unit: 'bytes',
      description:
        'Refused files are kept in <storage.dataDir>/quarantine with their reason, up to this many bytes in all; beyond it a refused file is logged and counted, not kept. 0 keeps none.',
    }),
  },
  { additionalProperties: false, default: {}, description: 'Imports of DICOS images (POST /v1/imports, docs/dicos.md).' },
);
export type ImportConfig = Static<typeof ImportConfigSchema>;

/** The DICOS network service (config key `dicos.listener`): C-ECHO and C-STORE SCP for installed scanners. */
export const DicosListenerConfigSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: false, description: 'Listen for DICOS associations (C-ECHO, C-STORE of DX images). Off by default.' }),
    host: Type.String({
      minLength: 1,
      default: '127.0.0.1',
      description: 'Address to listen on. 127.0.0.1 by default: set the address of the scanner network to take images from scanners.',
    }),
    port: Type.Integer({ minimum: 0, maximum: 65_535, default: 11_112, description: 'TCP port (11112 is the registered DICOM port; 0 picks a free one).' }),
    aeTitle: Type.String({ ...AE_TITLE, default: 'SCANLINE', description: "The gateway's AE title: associations calling another one are rejected." }),
    sources: Type.Array(
      Type.Object(
        {
          aeTitle: Type.String({ ...AE_TITLE, description: "The scanner's (calling) AE title." }),
          portalId: Type.String({
            ...PortalIdSchema,
            description:
              'The portal identity this scanner is (`scanline portal add ID`): its scans are filed under it, and revoking the portal refuses the scanner.',
          }),
          addresses: Type.Array(Type.String({ minLength: 1 }), {
            default: [],
            maxItems: 64,
            description: 'IP addresses the scanner may connect from; empty: any (the AE title alone is not authentication: prefer listing them).',
          }),
        },
        { additionalProperties: false },
      ),
      {
        default: [],
        maxItems: 1024,
        description: 'The scanners allowed to send images: an association from any other calling AE title (or address) is rejected.',
      },
    ),
    maxAssociations: Type.Integer({
      minimum: 1,
      maximum: 1024,
      default: 16,
      description: 'Connections open at once; a connection beyond them is closed at once (no association reply).',
    }),
    maxObjectBytes: Type.Integer({
      minimum: 1024,
      maximum: 4 * 1024 ** 3,
      default: 512 * 1024 ** 2,
      unit: 'bytes',
      description: 'Largest object a C-STORE may carry; a larger one is discarded as it arrives and refused (out of resources).',
    }),
    pairWaitMs: Type.Integer({
      minimum: 0,
      maximum: 3_600_000,
      default: 60_000,
      unit: 'ms',
      description: 'How long one energy of a dual-energy inspection waits for the other after it arrived; then it is imported alone, as a single-energy scan.',
    }),
    associationTimeoutMs: Type.Integer({
      minimum: 1_000,
      maximum: 3_600_000,
      default: 60_000,
      unit: 'ms',
      description: 'An association idle this long is aborted.',
    }),
  },
  { additionalProperties: false, default: {}, description: 'DICOS network service for installed scanners (docs/dicos.md, "Network service").' },
);
export type DicosListenerConfig = Static<typeof DicosListenerConfigSchema>;

export const PUSH_OBJECTS = ['dx-processing', 'dx-presentation', 'tdr-machine', 'tdr-operator'] as const;

export const DicosDestinationSchema = Type.Object(
  {
    name: Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
      expected: "a name of 1-64 letters, digits, '.', '_' or '-'",
      description: 'Names the destination in the queue, the logs and the metrics.',
    }),
    host: Type.String({ minLength: 1, description: 'Host of the destination (a DICOS/DICOM C-STORE SCP).' }),
    port: Type.Integer({ minimum: 1, maximum: 65_535 }),
    calledAeTitle: Type.String({ ...AE_TITLE, description: "The destination's AE title." }),
    callingAeTitle: Type.Optional(Type.String({ ...AE_TITLE, description: "The gateway's AE title towards it (default dicos.listener.aeTitle)." })),
    objects: Type.Array(literalUnion(PUSH_OBJECTS), {
      default: [...PUSH_OBJECTS],
      maxItems: 4,
      description: 'What it receives: dx-processing (raw lines per energy), dx-presentation, tdr-machine, tdr-operator (one per decision).',
    }),
    enabled: Type.Boolean({ default: true, description: 'false: nothing new is queued for it (what is queued stays).' }),
  },
  { additionalProperties: false },
);
export type DicosDestination = Static<typeof DicosDestinationSchema>;

export const DicosPushConfigSchema = Type.Object(
  {
    retryInitialMs: Type.Integer({
      minimum: 100,
      maximum: 3_600_000,
      default: 5_000,
      unit: 'ms',
      description: 'Wait before the first retry of a failed push; doubles each time.',
    }),
    retryMaxMs: Type.Integer({ minimum: 1_000, maximum: 86_400_000, default: 600_000, unit: 'ms', description: 'Longest wait between retries.' }),
    pollIntervalMs: Type.Integer({
      minimum: 100,
      maximum: 600_000,
      default: 2_000,
      unit: 'ms',
      description: 'How often the queue is looked at for retries that came due.',
    }),
    backfillHours: Type.Integer({
      minimum: 0,
      maximum: 8_760,
      default: 24,
      unit: 'h',
      description:
        'At start, final scans that ended this long ago or less and were never queued for a destination are queued (a crash between a final report and its queueing, or a destination just added). 0: none.',
    }),
    timeoutMs: Type.Integer({
      minimum: 1_000,
      maximum: 600_000,
      default: 30_000,
      unit: 'ms',
      description: 'Connect, association and PDU timeout towards a destination.',
    }),
  },
  { additionalProperties: false, default: {}, description: 'How DICOS objects are pushed to dicos.destinations.' },
);
export type DicosPushConfig = Static<typeof DicosPushConfigSchema>;
