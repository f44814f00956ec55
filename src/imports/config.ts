/** Configuration of imports (config key `import`): images from scanners already installed, as DICOS files. */
import { AeTitleSchema } from '../dicos/index.js';
import { PortalIdSchema } from '../protocol/index.js';
import { literalUnion, type Static, Type } from '../schema/index.js';

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

const AE_TITLE = AeTitleSchema;

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
