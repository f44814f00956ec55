/**
 * Binary slice frames of portal protocol v1 (docs/protocol.md, "Binary frames").
 *
 * Layout, little-endian, 32-byte header then payload:
 *   0 u32 magic 0x314C5358 ("XSL1")   4 u16 headerBytes (32)   6 u8 kind   7 u8 energies
 *   8 u32 streamId   12 u32 seq   16 u32 firstLine   20 u16 lineCount   22 u16 pixels
 *   24 u64 acquisition time of the first line, microseconds since the Unix epoch
 *   32 payload: for each line, for each energy (high first), `pixels` u16 values
 * Any change to this layout needs a protocol version bump.
 */
import { ScanlineError } from '../errors/index.js';

export const SLICE_MAGIC = 0x314c5358;
export const SLICE_HEADER_BYTES = 32;

export const SliceKind = {
  Image: 1,
  Dark: 2,
  Air: 3,
} as const;
export type SliceKind = (typeof SliceKind)[keyof typeof SliceKind];

export interface SliceHeader {
  kind: SliceKind;
  energies: number;
  streamId: number;
  seq: number;
  firstLine: number;
  lineCount: number;
  pixels: number;
  /** Acquisition time of the first line, microseconds since the Unix epoch. */
  acquiredAtUs: bigint;
}

/** Bytes of payload a frame with this geometry carries. */
export function slicePayloadBytes(lineCount: number, energies: number, pixels: number): number {
  return lineCount * energies * pixels * 2;
}

/**
 * Reads and checks the header of one binary frame. Throws ScanlineError with the code the protocol defines for
 * each kind of malformed frame. Does not copy: the caller decides what to do with the payload bytes
 * (`bytes.subarray(SLICE_HEADER_BYTES)`), which stay valid only as long as `bytes` does.
 */
export function decodeSliceHeader(bytes: Uint8Array): SliceHeader {
  if (bytes.byteLength < SLICE_HEADER_BYTES) {
    throw new ScanlineError('SCANLINE_ERR_SLICE_TRUNCATED', `binary frame has ${bytes.byteLength} bytes, fewer than the ${SLICE_HEADER_BYTES}-byte header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  if (magic !== SLICE_MAGIC) {
    throw new ScanlineError(
      'SCANLINE_ERR_SLICE_MAGIC',
      `binary frame magic is 0x${magic.toString(16).padStart(8, '0')}, expected 0x${SLICE_MAGIC.toString(16)} ("XSL1")`,
    );
  }
  const headerBytes = view.getUint16(4, true);
  if (headerBytes !== SLICE_HEADER_BYTES) {
    throw new ScanlineError('SCANLINE_ERR_SLICE_HEADER', `binary frame headerBytes is ${headerBytes}; protocol v1 defines ${SLICE_HEADER_BYTES}`);
  }
  const kind = view.getUint8(6);
  const streamId = view.getUint32(8, true);
  const seq = view.getUint32(12, true);
  if (kind !== SliceKind.Image && kind !== SliceKind.Dark && kind !== SliceKind.Air) {
    throw new ScanlineError('SCANLINE_ERR_SLICE_HEADER', `binary frame kind ${kind} is not 1 (slice), 2 (dark) or 3 (air)`, {
      streamId,
      seq,
    });
  }
  const header: SliceHeader = {
    kind: kind as SliceKind,
    energies: view.getUint8(7),
    streamId,
    seq,
    firstLine: view.getUint32(16, true),
    lineCount: view.getUint16(20, true),
    pixels: view.getUint16(22, true),
    acquiredAtUs: view.getBigUint64(24, true),
  };
  const expected = SLICE_HEADER_BYTES + slicePayloadBytes(header.lineCount, header.energies, header.pixels);
  if (header.lineCount === 0 || bytes.byteLength !== expected) {
    throw new ScanlineError(
      'SCANLINE_ERR_SLICE_SIZE',
      header.lineCount === 0
        ? 'binary frame has lineCount 0'
        : `binary frame has ${bytes.byteLength} bytes; header says ${header.lineCount} lines x ${header.energies} energies x ${header.pixels} pixels = ${expected} bytes`,
      { streamId, seq },
    );
  }
  return header;
}

/** Writes a header into the first 32 bytes of `target`. */
export function writeSliceHeader(target: Uint8Array, header: SliceHeader): void {
  if (target.byteLength < SLICE_HEADER_BYTES) throw new RangeError('target shorter than a slice header');
  const view = new DataView(target.buffer, target.byteOffset, SLICE_HEADER_BYTES);
  view.setUint32(0, SLICE_MAGIC, true);
  view.setUint16(4, SLICE_HEADER_BYTES, true);
  view.setUint8(6, header.kind);
  view.setUint8(7, header.energies);
  view.setUint32(8, header.streamId, true);
  view.setUint32(12, header.seq, true);
  view.setUint32(16, header.firstLine, true);
  view.setUint16(20, header.lineCount, true);
  view.setUint16(22, header.pixels, true);
  view.setBigUint64(24, header.acquiredAtUs, true);
}

/**
 * Builds one complete frame: header plus payload copied from `lines` (line-major, energies interleaved per line,
 * high energy first, as the wire wants). The result owns its memory.
 */
export function encodeSliceFrame(header: Omit<SliceHeader, 'lineCount'> & { lineCount?: number }, lines: Uint16Array): Uint8Array {
  const valuesPerLine = header.energies * header.pixels;
  const lineCount = header.lineCount ?? lines.length / valuesPerLine;
  if (!Number.isInteger(lineCount) || lineCount * valuesPerLine !== lines.length) {
    throw new RangeError(`payload of ${lines.length} values is not lineCount x energies x pixels`);
  }
  const frame = new Uint8Array(SLICE_HEADER_BYTES + lines.byteLength);
  writeSliceHeader(frame, { ...header, lineCount });
  // Copy as bytes; the host is little-endian (checked below), matching the wire.
  frame.set(new Uint8Array(lines.buffer, lines.byteOffset, lines.byteLength), SLICE_HEADER_BYTES);
  return frame;
}

/** Scanline assumes a little-endian host so payloads can be used as Uint16Array without swapping. */
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
if (!HOST_IS_LITTLE_ENDIAN) {
  throw new Error('Scanline requires a little-endian host (x86-64, arm64)');
}
