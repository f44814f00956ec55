/** Configuration of DICOS push (config keys `dicos.destinations` and `dicos.push`). */
import { AeTitleSchema } from '../dicos/index.js';
import { literalUnion, type Static, Type } from '../schema/index.js';

const AE_TITLE = AeTitleSchema;

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
