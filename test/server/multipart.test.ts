/** The multipart/related parser of POST /v1/imports (RFC 2046 framing): what it takes and what it refuses. */
import { describe, expect, it } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';
import { multipartParts } from '../../src/server/imports-api.js';

const B = 'b0undary';
const body = (...pieces: Array<string | Buffer>): Buffer => Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));
const refused = (b: Buffer): string => {
  try {
    multipartParts(b, B);
  } catch (err) {
    expect(err).toBeInstanceOf(ScanlineError);
    expect((err as ScanlineError).code).toBe('SCANLINE_ERR_HTTP_BAD_BODY');
    return (err as ScanlineError).message;
  }
  throw new Error('not refused');
};

describe('multipartParts', () => {
  const binary = Buffer.from([0, 1, 2, 0x0d, 0x0a, 0x0d, 0x0a, 0x2d, 0x2d, 0xff, 0x0d]); // CRLFCRLF and "--" inside data

  it('returns each part, with or without headers, after a preamble, binary data intact', () => {
    const parts = multipartParts(
      body(
        `preamble with --${B} in the middle of a line\r\n--${B}\r\nContent-Type: application/dicom\r\n\r\n`,
        binary,
        `\r\n--${B}\r\n\r\n`,
        binary,
        `\r\n--${B}--\r\n`,
      ),
      B,
    );
    expect(parts.map((p) => [...p])).toEqual([[...binary], [...binary]]);
  });

  it('refuses parts of another type, encoded parts, headers not ended by CRLF CRLF, and a missing closing delimiter', () => {
    expect(refused(body(`--${B}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--${B}--`))).toMatch(/text\/plain/);
    expect(refused(body(`--${B}\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--${B}--`))).toMatch(/binary/);
    expect(refused(body(`--${B}\nContent-Type: application/dicom\n\n`, binary, `\r\n--${B}--`))).toMatch(/CRLF/);
    expect(refused(body(`--${B}\r\nContent-Type: application/dicom\r\n\r\n`, binary))).toMatch(/not closed/);
    expect(refused(body('no delimiter at all'))).toMatch(/no delimiter/);
  });
});
