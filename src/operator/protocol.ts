/**
 * Operator feed protocol v1 (WS /v1/operator; docs/protocol.md, "Operator feed v1"): what screens send, what the
 * gateway sends, and the binary image frame. Pure data and validation; no sockets here.
 */
import { ScanlineError } from '../errors/index.js';
import type { DeclarationCheck, ScanResultsReport, SuggestionSegment, ThreatAlert } from '../results/index.js';
import type { ScanState, StoredDecision } from '../storage/index.js';

export const OPERATOR_PROTOCOL_VERSION = 1;

/** Operator ids: 1-64 of A-Za-z0-9._@- starting with a letter or digit (an officer's login or badge number). */
const OPERATOR_ID = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

/** Checks an operator id from a header or query parameter; throws SCANLINE_ERR_OPERATOR_ID. */
export function validateOperatorId(value: string | null | undefined): string {
  if (typeof value === 'string' && OPERATOR_ID.test(value)) return value;
  const shown = value === null || value === undefined || value === '' ? 'nothing' : JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  throw new ScanlineError(
    'SCANLINE_ERR_OPERATOR_ID',
    `Expected an operator id of 1-64 characters A-Za-z0-9._@- (starting with a letter or digit) in the X-Scanline-Operator header or the operator query parameter but received ${shown}`,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Screen -> gateway

/**
 * What a screen watches. `portals: ["*"]` = every lane; `scans` = single scans (live or from history). Subscribing
 * is additive; unsubscribe removes the named entries.
 */
export interface Subscription {
  portals: string[];
  scans: string[];
}

export type OperatorClientMessage =
  | { type: 'hello'; protocol: number }
  | ({ type: 'subscribe' } & Subscription)
  | ({ type: 'unsubscribe' } & Subscription)
  | { type: 'resync'; scanId: string };

const PORTAL_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const MAX_SUBSCRIPTION_ENTRIES = 256;

/**
 * Most lanes and most single scans one screen may watch at once (subscriptions are additive; further entries are
 * refused with SCANLINE_ERR_OPERATOR_MESSAGE), so what the gateway keeps per screen stays bounded.
 */
export const MAX_WATCHED_PORTALS = 256;
export const MAX_WATCHED_SCANS = 256;

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return `${s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s} of type ${Array.isArray(v) ? 'array' : typeof v}`;
}

/** Parses one text message from a screen; throws SCANLINE_ERR_OPERATOR_MESSAGE (every problem listed). */
export function parseClientMessage(text: string): OperatorClientMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ScanlineError('SCANLINE_ERR_OPERATOR_MESSAGE', `operator message is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ScanlineError('SCANLINE_ERR_OPERATOR_MESSAGE', `Expected a JSON object for the message but received ${describe(value)}`);
  }
  const m = value as Record<string, unknown>;
  const p: string[] = [];
  const fields = (allowed: string[]): void => {
    for (const k of Object.keys(m)) if (k !== 'type' && !allowed.includes(k)) p.push(`Unknown field ${k}`);
  };
  let out: OperatorClientMessage;
  switch (m.type) {
    case 'hello':
      fields(['protocol']);
      if (!Number.isInteger(m.protocol)) p.push(`Expected an integer for protocol but received ${describe(m.protocol)}`);
      out = { type: 'hello', protocol: m.protocol as number };
      break;
    case 'subscribe':
    case 'unsubscribe': {
      fields(['portals', 'scans']);
      const list = (name: 'portals' | 'scans', ok: (x: unknown) => boolean, what: string): string[] => {
        const v = m[name];
        if (v === undefined) return [];
        if (!Array.isArray(v) || v.length > MAX_SUBSCRIPTION_ENTRIES || !v.every(ok)) {
          p.push(`Expected an array of at most ${MAX_SUBSCRIPTION_ENTRIES} ${what} for ${name} but received ${describe(v)}`);
          return [];
        }
        return [...new Set(v as string[])];
      };
      const portals = list('portals', (x) => typeof x === 'string' && (x === '*' || PORTAL_ID.test(x)), 'portal ids (or "*")');
      const scans = list('scans', (x) => typeof x === 'string' && x.length > 0 && x.length <= 256, 'scan ids');
      if (p.length === 0 && portals.length === 0 && scans.length === 0) p.push('Expected at least one entry in portals or scans');
      out = { type: m.type, portals, scans };
      break;
    }
    case 'resync':
      fields(['scanId']);
      if (typeof m.scanId !== 'string' || m.scanId.length === 0) p.push(`Expected a scan id for scanId but received ${describe(m.scanId)}`);
      out = { type: 'resync', scanId: m.scanId as string };
      break;
    default:
      throw new ScanlineError(
        'SCANLINE_ERR_OPERATOR_MESSAGE',
        `Expected one of hello, subscribe, unsubscribe, resync for type but received ${describe(m.type)}`,
      );
  }
  if (p.length > 0) {
    throw new ScanlineError('SCANLINE_ERR_OPERATOR_MESSAGE', `invalid ${String(m.type)} message:\n  - ${p.join('\n  - ')}`, { problems: p });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Gateway -> screen (text frames, JSON)

/** What a screen knows about a scan without its image and results. */
export interface ScanSummary {
  scanId: string;
  portalId: string;
  state: ScanState;
  lines: number;
  detector: { pixels: number; energies: number; pitchMm: number; lineRateHz: number };
  vehicle: Record<string, unknown> | null;
  declaration: { hsCodes: string[] } | null;
  startedAt: string;
  endedAt: string | null;
}

/** A lane (portal) and what it is doing. */
export interface LaneStatus {
  portalId: string;
  /** The scan being received, or null when the lane is idle. */
  liveScanId: string | null;
  /** The most recent scan of the lane (live or ended). */
  lastScanId: string | null;
  lastState: ScanState | null;
  lines: number;
  /** The machine's advice on the last scan, when known. */
  alarmDecision: string | null;
  updatedAt: string;
}

/** Geometry of the preview image: one sample per `downsample` x `downsample` raw block. */
export interface PreviewGeometry {
  downsample: number;
  /** Preview samples along the scan and down the detector. */
  width: number;
  height: number;
}

export type OperatorServerMessage =
  | { type: 'welcome'; protocol: number; gateway: string; operatorId: string; lanes: LaneStatus[]; limits: { maxMessageBytes: number } }
  | { type: 'subscribed'; portals: string[]; scans: string[] }
  | { type: 'lane'; lane: LaneStatus }
  | {
      type: 'scan.snapshot';
      scan: ScanSummary;
      preview: PreviewGeometry & { seq: number };
      /** The machine report so far (null: the gateway runs without inference). */
      results: ScanResultsReport | null;
      decisions: StoredDecision[];
      /** True when sent to catch up after strips were coalesced (or on request), false for a first view. */
      resync: boolean;
    }
  | { type: 'scan.started'; scan: ScanSummary; preview: PreviewGeometry }
  | { type: 'suggestions'; scanId: string; portalId: string; segments: SuggestionSegment[] }
  | { type: 'alert'; scanId: string; portalId: string; alert: ThreatAlert }
  | { type: 'declaration'; scanId: string; portalId: string; check: DeclarationCheck }
  | { type: 'scan.completed'; scan: ScanSummary }
  | { type: 'results.final'; scanId: string; portalId: string; report: ScanResultsReport }
  | { type: 'decision'; scanId: string; portalId: string; decision: StoredDecision }
  | { type: 'error'; code: string; message: string; [k: string]: unknown };

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
