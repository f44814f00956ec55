/**
 * Configuration of the operator stage (config key `operator`): how many screens may connect and the per-screen
 * backpressure policy. Its schema is part of the gateway configuration's (src/config), validated once, then frozen.
 */
import { defaultsOf, type RefineContext, type Static, Type, uwsIdleTimeoutSchema } from '../schema/index.js';

export const OperatorConfigSchema = Type.Object(
  {
    maxOperators: Type.Integer({
      minimum: 1,
      maximum: 10_000,
      default: 256,
      unit: 'screens',
      description: 'Operator screens connected at once; further WebSocket upgrades are refused (SCANLINE_ERR_OPERATOR_TOO_MANY).',
    }),
    maxScreensPerUser: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 8,
      unit: 'screens',
      description:
        'Screens one account may have open at once; more are refused (SCANLINE_ERR_LIMIT_SCREENS), so one account cannot take every slot of maxOperators.',
    }),
    stripBufferBytes: Type.Integer({
      minimum: 16 * 1024,
      maximum: 1 << 30,
      default: 1024 * 1024,
      unit: 'bytes',
      description:
        'Preview strips are not sent to a screen while more than this many bytes wait in its socket buffer; they are coalesced (counted) ' +
        'and the screen is resynced from a snapshot once the buffer drains below half of this.',
    }),
    maxBufferedBytes: Type.Integer({
      minimum: 64 * 1024,
      maximum: 1 << 30,
      default: 32 * 1024 * 1024,
      unit: 'bytes',
      description:
        'Bytes buffered towards one screen beyond which even a control message (alert, results, decision) cannot be queued: the screen is ' +
        'disconnected (SCANLINE_ERR_OPERATOR_TOO_SLOW) rather than miss it; on reconnecting it gets a snapshot that holds every alert. ' +
        'At least 4 x stripBufferBytes.',
    }),
    maxMessageBytes: Type.Integer({
      minimum: 1024,
      maximum: 1024 * 1024,
      default: 16 * 1024,
      unit: 'bytes',
      description: 'Largest message a screen may send (subscriptions).',
    }),
    idleTimeoutSec: uwsIdleTimeoutSchema('Idle timeout of operator sockets (pings are automatic; 0 disables; 1..7 is not allowed by uWebSockets.js).'),
    laneHistoryHours: Type.Integer({
      minimum: 0,
      maximum: 24 * 365,
      default: 24,
      unit: 'h',
      description: 'Lanes the feed lists at connection time are the portals of the scans started within this many hours.',
    }),
  },
  { additionalProperties: false, default: {}, description: 'Operator screens: connection limit and per-screen backpressure.' },
);

export type OperatorConfig = Static<typeof OperatorConfigSchema>;

export const DEFAULT_OPERATOR_CONFIG: Readonly<OperatorConfig> = Object.freeze(defaultsOf(OperatorConfigSchema));

/** Rules across the section's keys; `ctx` is positioned at the section. */
export function refineOperatorConfig(c: OperatorConfig, ctx: RefineContext): void {
  if (ctx.ok('stripBufferBytes', 'maxBufferedBytes') && c.maxBufferedBytes < 4 * c.stripBufferBytes) {
    ctx.fail('maxBufferedBytes', `an integer of at least 4 x operator.stripBufferBytes (${4 * c.stripBufferBytes})`, c.maxBufferedBytes);
  }
}
