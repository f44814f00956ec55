/**
 * The ingest stage's configuration: the `portal` section (limits and timing of portal connections) is defined here
 * and embedded by the gateway configuration (src/config); the stage also reads the stitcher's section and the
 * metrics label limit, so it takes the part of the gateway configuration it needs.
 */
import { literalUnion, type Static, Type, uwsIdleTimeoutSchema } from '../schema/index.js';
import type { StitcherTuning } from '../stitch/index.js';

export const PortalConfigSchema = Type.Object(
  {
    maxOpenScans: Type.Integer({ minimum: 1, maximum: 64, default: 4, unit: 'scans', description: 'Open scans per portal connection.' }),
    helloTimeoutMs: Type.Integer({
      minimum: 1000,
      maximum: 600_000,
      default: 10_000,
      unit: 'ms',
      description:
        'A connection that has not said a hello the gateway accepts within this long is closed (1008, SCANLINE_ERR_PROTO_NOT_HELLO): ' +
        'sockets without a credential must not hold the slots of portal.maxConnections.',
    }),
    maxConnections: Type.Integer({
      minimum: 1,
      maximum: 100_000,
      default: 256,
      unit: 'connections',
      description: 'Portal connections in total; more are refused at the upgrade (SCANLINE_ERR_LIMIT_CONNECTIONS).',
    }),
    maxOpenScansTotal: Type.Integer({
      minimum: 1,
      maximum: 100_000,
      default: 256,
      unit: 'scans',
      description: 'Open scans over all portals; a scan.start beyond it is refused (SCANLINE_ERR_LIMIT_SCANS).',
    }),
    maxMissingLines: Type.Integer({
      minimum: 1,
      maximum: 16_777_216,
      default: 4096,
      unit: 'lines',
      description:
        'Lines a scan may claim beyond those it sent: a frame whose last line is further than this past the lines received so far is refused ' +
        '(SCANLINE_ERR_LIMIT_SPARSE) before it costs memory or disk. A lost frame leaves its lines missing until resent; sparse frames are how ' +
        'one connection claimed ~800 MiB with 8 MiB sent.',
    }),
    maxSparseRefusals: Type.Integer({
      minimum: 1,
      maximum: 1_000_000,
      default: 16,
      unit: 'frames',
      description:
        'Frames of one connection refused SCANLINE_ERR_LIMIT_SPARSE, with no frame bringing new lines between them (replays do not count), ' +
        'before the gateway closes it (1008): a working portal never ' +
        'sends one, and a hostile one would otherwise have every frame read and refused for as long as it likes.',
    }),
    sparseCutOffSec: Type.Integer({
      minimum: 0,
      maximum: 86_400,
      default: 60,
      unit: 's',
      description:
        'How long a portal closed for portal.maxSparseRefusals is refused at hello (SCANLINE_ERR_LIMIT_SPARSE, 1008) before it may connect again. 0: at once.',
    }),
    scanBufferBudgetBytes: Type.Integer({
      minimum: 16 * 1024 * 1024,
      maximum: 2 ** 45,
      default: 2 * 1024 * 1024 * 1024,
      unit: 'bytes',
      description:
        'Memory all open scans may hold together: each is charged its lines x pixels x energies x 2 B up to its highest line. A frame that would pass it is refused (SCANLINE_ERR_LIMIT_SCAN_MEMORY). A 4000-line truck of 2048 px x 2 energies holds 32 MiB.',
    }),
    maxMessageBytes: Type.Integer({
      minimum: 1024,
      maximum: 64 * 1024 * 1024,
      default: 8 * 1024 * 1024,
      unit: 'bytes',
      description:
        'Largest message the protocol accepts (1000 lines x 2048 px x 2 energies x 2 B fits the default); larger ones get SCANLINE_ERR_PROTO_OVERSIZE.',
    }),
    maxControlBytes: Type.Integer({
      minimum: 1024,
      maximum: 1024 * 1024,
      default: 64 * 1024,
      unit: 'bytes',
      description: 'Largest control (text) message.',
    }),
    reorderWindowSlices: Type.Integer({
      minimum: 1,
      maximum: 65_536,
      default: 256,
      unit: 'frames',
      description: 'How far ahead of the first missing seq a frame may be.',
    }),
    resumeGraceMs: Type.Integer({
      minimum: 0,
      maximum: 3_600_000,
      default: 30_000,
      unit: 'ms',
      description: 'How long a scan whose connection dropped waits for scan.resume before it is aborted.',
    }),
    ackDurability: literalUnion(['disk', 'memory'], {
      default: 'disk',
      description:
        "When a frame is acknowledged. 'disk': once its lines and the scan's journal are written and fsync'd (group commit, storage.ackMaxDelayMs), " +
        "so an ack survives a crash or a power cut. 'memory': as soon as it is in the gateway's memory; a crash loses what was not yet written " +
        "(the portal has already dropped it). Only for a site that accepts that loss for lower ack latency (bench/RESULTS.md, 'Durable acks').",
    }),
    idleTimeoutSec: uwsIdleTimeoutSchema('Idle timeout of portal sockets (uWebSockets.js pings automatically; 0 disables; 1-7 is not allowed).'),
    maxBackpressureBytes: Type.Integer({
      minimum: 64 * 1024,
      maximum: 1 << 30,
      default: 4 * 1024 * 1024,
      unit: 'bytes',
      description: 'Bytes buffered towards one portal before it is considered stuck and disconnected.',
    }),
    stitchMaxDelayMs: Type.Integer({
      minimum: 0,
      maximum: 1000,
      default: 50,
      unit: 'ms',
      description:
        'Longest a received line waits before it is stitched. A frame that completes a tile column (or a scan.end) is stitched at once, ' +
        'so tile latency does not depend on this; other frames wait up to this long and are stitched together, and the preview strips ' +
        'and raw-archive writes follow those jobs. 0 = one stitcher job per frame. Each job costs a thread hand-off, a promise, a strip ' +
        "and a file write whatever its size, so fewer, larger jobs cost the gateway less CPU (bench/RESULTS.md, 'Stitcher jobs batched').",
    }),
  },
  { additionalProperties: false, default: {}, description: 'Portal connections (WS /v1/portal): limits and timing.' },
);

export type PortalConfig = Static<typeof PortalConfigSchema>;

/** What IngestService reads of the gateway configuration (the whole GatewayConfig fits). */
export interface IngestConfig {
  readonly portal: PortalConfig;
  readonly stitch: StitcherTuning;
  readonly metrics: { readonly portalLabelLimit: number };
  readonly storage: { readonly ackMaxDelayMs: number };
}
