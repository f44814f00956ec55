/**
 * Control messages of portal protocol v1 (JSON text frames), as documented in docs/protocol.md.
 * Every message is an object with a string `type`. `parsePortalMessage` validates portal→gateway messages and
 * reports every problem at once; gateway→portal messages are built with the types below.
 */
import { ScanlineError } from '../errors/index.js';

export const PROTOCOL_VERSION = 1;

export interface DetectorInfo {
  /** Detector elements per line. */
  pixels: number;
  /** 1 or 2; with 2, each line carries the high energy then the low energy. */
  energies: 1 | 2;
  bitDepth: 16;
  /** Detector element pitch, millimetres. */
  pitchMm: number;
  /** Nominal line rate, lines per second. */
  lineRateHz: number;
}

export interface HelloMessage {
  type: 'hello';
  portalId: string;
  token?: string;
  /** Protocol version the portal speaks; absent means 1. */
  protocol?: number;
  detector: DetectorInfo;
}

export interface VehicleInfo {
  plate?: string;
  kind?: string;
  [key: string]: unknown;
}

export interface Declaration {
  /** Harmonized System codes declared for the cargo (2 to 10 digits). */
  hsCodes: string[];
  [key: string]: unknown;
}

export interface ScanStartMessage {
  type: 'scan.start';
  streamId: number;
  scanId?: string;
  vehicle?: VehicleInfo;
  declaration?: Declaration;
}

export interface ScanEndMessage {
  type: 'scan.end';
  streamId: number;
  totalLines: number;
}

export interface ScanAbortMessage {
  type: 'scan.abort';
  streamId: number;
  reason: string;
}

export interface ScanResumeMessage {
  type: 'scan.resume';
  streamId: number;
  scanId: string;
}

export type PortalMessage = HelloMessage | ScanStartMessage | ScanEndMessage | ScanAbortMessage | ScanResumeMessage;

// gateway → portal
export interface WelcomeMessage {
  type: 'welcome';
  protocol: number;
  gateway: string;
  portalId: string;
  limits: { maxOpenScans: number; maxLines: number; reorderWindowSlices: number; maxMessageBytes: number };
}
export interface ScanAcceptedMessage {
  type: 'scan.accepted';
  streamId: number;
  scanId: string;
}
export interface AckMessage {
  type: 'ack';
  streamId: number;
  /** Cumulative: every frame of the stream with seq <= this one is stored. */
  seq: number;
}
export interface ResumeMessage {
  type: 'resume';
  streamId: number;
  scanId: string;
  /** The first seq the gateway has not stored; the portal resends from here. */
  nextSeq: number;
}
export interface ScanCompletedMessage {
  type: 'scan.completed';
  streamId: number;
  scanId: string;
  lines: number;
  /** Line ranges [start, end) that never arrived. */
  gaps: Array<[number, number]>;
}
export interface ScanAbortedMessage {
  type: 'scan.aborted';
  streamId: number;
  scanId: string;
  reason: string;
}
export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
  streamId?: number;
  seq?: number;
  /** For SCANLINE_ERR_SLICE_SEQ_AHEAD and SCANLINE_ERR_SCAN_INCOMPLETE: where to resend from. */
  nextSeq?: number;
}
export interface DrainingMessage {
  type: 'draining';
  /** Milliseconds the gateway still waits for open scans to finish. */
  deadlineMs: number;
}

export type GatewayMessage =
  | WelcomeMessage
  | ScanAcceptedMessage
  | AckMessage
  | ResumeMessage
  | ScanCompletedMessage
  | ScanAbortedMessage
  | ErrorMessage
  | DrainingMessage;

const MAX_U32 = 0xffff_ffff;
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const HS_PATTERN = /^[0-9]{2,10}$/;

type Problems = string[];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return `${s === undefined ? String(v) : s.length > 40 ? `${s.slice(0, 37)}...` : s} of type ${Array.isArray(v) ? 'array' : typeof v}`;
}
function expectU32(p: Problems, obj: Record<string, unknown>, key: string): void {
  const v = obj[key];
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > MAX_U32) {
    p.push(`Expected an integer 0..4294967295 for ${key} but received ${describe(v)}`);
  }
}
function expectId(p: Problems, obj: Record<string, unknown>, key: string, required: boolean): void {
  const v = obj[key];
  if (v === undefined && !required) return;
  if (typeof v !== 'string' || !ID_PATTERN.test(v)) {
    p.push(`Expected an id of 1-64 letters, digits, '.', '_', ':' or '-' for ${key} but received ${describe(v)}`);
  }
}

function validateHello(m: Record<string, unknown>, p: Problems): void {
  expectId(p, m, 'portalId', true);
  if (m.token !== undefined && typeof m.token !== 'string') p.push(`Expected a string for token but received ${describe(m.token)}`);
  if (m.protocol !== undefined && !Number.isInteger(m.protocol)) {
    p.push(`Expected an integer for protocol but received ${describe(m.protocol)}`);
  }
  const d = m.detector;
  if (!isObject(d)) {
    p.push(`Expected an object for detector but received ${describe(d)}`);
    return;
  }
  if (!Number.isInteger(d.pixels) || (d.pixels as number) < 1 || (d.pixels as number) > 4096) {
    p.push(`Expected an integer 1..4096 for detector.pixels but received ${describe(d.pixels)}`);
  }
  if (d.energies !== 1 && d.energies !== 2) p.push(`Expected 1 or 2 for detector.energies but received ${describe(d.energies)}`);
  if (d.bitDepth !== 16) p.push(`Expected 16 for detector.bitDepth but received ${describe(d.bitDepth)}`);
  if (typeof d.pitchMm !== 'number' || !(d.pitchMm > 0) || d.pitchMm > 100) {
    p.push(`Expected a number in (0, 100] for detector.pitchMm but received ${describe(d.pitchMm)}`);
  }
  if (typeof d.lineRateHz !== 'number' || !(d.lineRateHz > 0) || d.lineRateHz > 20_000) {
    p.push(`Expected a number in (0, 20000] for detector.lineRateHz but received ${describe(d.lineRateHz)}`);
  }
}

function validateScanStart(m: Record<string, unknown>, p: Problems): void {
  expectU32(p, m, 'streamId');
  expectId(p, m, 'scanId', false);
  if (m.vehicle !== undefined && !isObject(m.vehicle)) p.push(`Expected an object for vehicle but received ${describe(m.vehicle)}`);
  if (m.declaration !== undefined) {
    const d = m.declaration;
    if (!isObject(d) || !Array.isArray(d.hsCodes)) {
      p.push(`Expected an object with an hsCodes array for declaration but received ${describe(d)}`);
    } else {
      if (d.hsCodes.length > 64) p.push(`Expected at most 64 entries in declaration.hsCodes but received ${d.hsCodes.length}`);
      d.hsCodes.forEach((c, i) => {
        if (typeof c !== 'string' || !HS_PATTERN.test(c)) {
          p.push(`Expected an HS code of 2-10 digits for declaration.hsCodes[${i}] but received ${describe(c)}`);
        }
      });
    }
  }
}

function validateScanEnd(m: Record<string, unknown>, p: Problems): void {
  expectU32(p, m, 'streamId');
  expectU32(p, m, 'totalLines');
}

function validateScanAbort(m: Record<string, unknown>, p: Problems): void {
  expectU32(p, m, 'streamId');
  if (typeof m.reason !== 'string' || m.reason.length > 500) {
    p.push(`Expected a string of at most 500 characters for reason but received ${describe(m.reason)}`);
  }
}

function validateScanResume(m: Record<string, unknown>, p: Problems): void {
  expectU32(p, m, 'streamId');
  expectId(p, m, 'scanId', true);
}

const VALIDATORS: Record<PortalMessage['type'], (m: Record<string, unknown>, p: Problems) => void> = {
  hello: validateHello,
  'scan.start': validateScanStart,
  'scan.end': validateScanEnd,
  'scan.abort': validateScanAbort,
  'scan.resume': validateScanResume,
};

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
  if (!isObject(value)) {
    throw new ScanlineError('SCANLINE_ERR_PROTO_INVALID', `Expected a JSON object but received ${describe(value)}`);
  }
  const type = value.type;
  const streamId = Number.isInteger(value.streamId) ? (value.streamId as number) : undefined;
  if (typeof type !== 'string' || !Object.hasOwn(VALIDATORS, type)) {
    throw new ScanlineError(
      'SCANLINE_ERR_PROTO_UNKNOWN_TYPE',
      `unknown control message type ${describe(type)}; expected one of ${Object.keys(VALIDATORS).join(', ')}`,
      streamId === undefined ? {} : { streamId },
    );
  }
  const problems: Problems = [];
  VALIDATORS[type as PortalMessage['type']](value, problems);
  if (problems.length > 0) {
    throw new ScanlineError('SCANLINE_ERR_PROTO_INVALID', `${type}: ${problems.join('; ')}`, {
      ...(streamId === undefined ? {} : { streamId }),
      problems,
    });
  }
  return value as unknown as PortalMessage;
}
