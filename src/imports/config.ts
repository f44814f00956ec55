/** Configuration of imports (config key `import`): images from scanners already installed, as DICOS files. */
import { literalUnion, type Static, Type } from '../schema/index.js';

export const ImportConfigSchema = Type.Object(
  {
    portalId: Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$',
      expected: "an id of 1-64 letters, digits, '.', '_', ':' or '-'",
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
        'Imports decoded and fed to the pipeline at once; more wait (up to maxQueued), then get SCANLINE_ERR_IMPORT_BUSY. Bounds the memory imports take.',
    }),
    maxQueued: Type.Integer({ minimum: 0, maximum: 1024, default: 8, description: 'Imports waiting for a free slot beyond maxConcurrent.' }),
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
