/**
 * Imports over HTTP:
 *   POST /v1/imports[?plate=&hsCodes=0803,2402]   (role officer, or a portal's own credential with X-Scanline-Portal:
 *                                                 the scan is then filed under that portal)
 *     Content-Type: application/dicom                          one DX image (one energy)
 *     Content-Type: multipart/related; type="application/dicom"; boundary=...
 *                                                              a dual-energy pair: two application/dicom parts
 *   -> 201 {scanId, portalId, lines, pixels, energies, gaps, origin, warnings} with Location: /v1/scans/:scanId,
 *      once the scan is completed (its lines stored); its results follow as for any scan.
 * Bad files get the reader's error code (docs/errors.md, DICOS files) and are kept in quarantine (src/imports).
 * The body is read up to import.maxBytes (a Content-Length above it is refused before any byte is read).
 */
import { ScanlineError } from '../errors/index.js';
import type { ImportService } from '../imports/index.js';
import type { Logger } from '../log/index.js';
import type { Declaration } from '../protocol/index.js';
import { handleAsync, readBody } from './http.js';
import { principalOf, type Routes } from './routes.js';
import type { HttpRequest, HttpResponse } from './uws.js';

export interface ImportRouteOptions {
  imports: ImportService;
  maxBytes: number;
  log: Logger;
}

/** A media type parameter (RFC 9110 5.6.6), quoted or not; null when absent. */
function mediaParameter(contentType: string, name: string): string | null {
  const re = new RegExp(`;\\s*${name}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]+))`, 'i');
  const m = contentType.match(re);
  if (!m) return null;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2];
}

/**
 * The parts of a multipart/related body (RFC 2387, framed as RFC 2046 5.1): each part's bytes between its headers
 * and the CRLF before the next delimiter. Every part must be application/dicom.
 */
export function multipartParts(body: Buffer, boundary: string): Buffer[] {
  const bad = (why: string): ScanlineError => new ScanlineError('SCANLINE_ERR_HTTP_BAD_BODY', `multipart body: ${why}`);
  if (boundary.length === 0 || boundary.length > 70) throw bad('the boundary parameter must have 1-70 characters');
  const delimiter = Buffer.from(`--${boundary}`);
  // The first delimiter starts the body or a line (anything before it is a preamble, ignored).
  let at = body.subarray(0, delimiter.length).equals(delimiter) ? 0 : body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]));
  if (at < 0) throw bad(`no delimiter --${boundary} at the start of a line`);
  if (at > 0) at += 2;
  const parts: Buffer[] = [];
  for (;;) {
    let cursor = at + delimiter.length;
    if (body[cursor] === 0x2d && body[cursor + 1] === 0x2d) break; // "--": the closing delimiter
    // Transport padding, then CRLF.
    while (body[cursor] === 0x20 || body[cursor] === 0x09) cursor++;
    if (body[cursor] !== 0x0d || body[cursor + 1] !== 0x0a) throw bad('a delimiter is not followed by CRLF');
    cursor += 2;
    const headersEnd = body.indexOf('\r\n\r\n', cursor);
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), cursor);
    if (next < 0) throw bad('a part is not closed by a delimiter (a truncated body?)');
    let content: Buffer;
    if (body.subarray(cursor, cursor + 2).equals(Buffer.from('\r\n'))) content = body.subarray(cursor + 2, next);
    else {
      if (headersEnd < 0 || headersEnd > next) throw bad("a part's headers do not end with an empty line");
      const headers = body.subarray(cursor, headersEnd).toString('latin1');
      // Header lines are printable text "Name: value"; anything else means the headers did not end where they should.
      if (!headers.split('\r\n').every((line) => /^[!-9;-~]+:[\t -~]*$/.test(line))) throw bad("a part's headers are not text lines ending with CRLF");
      if (/^content-transfer-encoding\s*:\s*(?!binary\b|8bit\b)/im.test(headers)) throw bad('only binary parts are read (Content-Transfer-Encoding)');
      const type =
        headers
          .match(/^content-type\s*:\s*([^\r\n;]+)/im)?.[1]
          .trim()
          .toLowerCase() ?? null;
      if (type !== null && type !== 'application/dicom') throw bad(`a part is ${type}; every part must be application/dicom`);
      content = body.subarray(headersEnd + 4, next);
    }
    parts.push(content);
    at = next + 2;
    if (parts.length > 16) throw bad('more than 16 parts');
  }
  return parts;
}

const HS_CODE = /^[0-9]{2,10}$/;

export function registerImportRoutes(routes: Routes, o: ImportRouteOptions): void {
  routes.post(
    '/v1/imports',
    'officer',
    (res: HttpResponse, req: HttpRequest, ctx) => {
      const principal = principalOf(ctx);
      const contentType = ctx.facts.contentType;
      const lengthHeader = req.getHeader('content-length');
      const declaredLength = /^[0-9]+$/.test(lengthHeader) ? Number(lengthHeader) : null;
      const query = new URLSearchParams(req.getQuery() ?? '');
      handleAsync(res, req, o.log, async (out) => {
        const type = contentType.split(';')[0].trim().toLowerCase();
        if (type !== 'application/dicom' && type !== 'multipart/related') {
          throw new ScanlineError(
            'SCANLINE_ERR_HTTP_CONTENT_TYPE',
            `send one DX as Content-Type: application/dicom, or a dual-energy pair as multipart/related; type="application/dicom" (received ${JSON.stringify(contentType.slice(0, 100) || 'none')})`,
          );
        }
        const plate = query.get('plate');
        const hsCodes = query.get('hsCodes');
        let declaration: Declaration | undefined;
        if (hsCodes !== null) {
          const codes = hsCodes === '' ? [] : hsCodes.split(',').map((c) => c.trim());
          const wrong = codes.filter((c) => !HS_CODE.test(c));
          if (wrong.length > 0 || codes.length > 64) {
            throw new ScanlineError(
              'SCANLINE_ERR_HTTP_BAD_QUERY',
              `hsCodes: expected up to 64 comma-separated HS codes of 2-10 digits (not ${JSON.stringify(wrong.slice(0, 3))})`,
            );
          }
          declaration = { hsCodes: codes };
        }
        if (plate !== null && (plate.length === 0 || plate.length > 64))
          throw new ScanlineError('SCANLINE_ERR_HTTP_BAD_QUERY', 'plate: expected 1-64 characters');
        // A place among the running imports before the body is read (or 503 now): the bodies in memory are bounded as
        // the imports are. Synchronous up to readBinaryBody, which must set onData in this tick.
        const slot = o.imports.takeSlotNow();
        let body: Buffer;
        try {
          body = await readBody(res, o.maxBytes, { out, declaredLength, what: 'import.maxBytes' });
        } catch (err) {
          slot.release();
          throw err;
        }
        let files: Buffer[];
        if (type === 'application/dicom') files = [body];
        else {
          const related = mediaParameter(contentType, 'type');
          if (related !== null && related.toLowerCase() !== 'application/dicom') {
            throw new ScanlineError(
              'SCANLINE_ERR_HTTP_CONTENT_TYPE',
              `multipart/related type must be "application/dicom" (received ${JSON.stringify(related)})`,
            );
          }
          try {
            files = multipartParts(body, mediaParameter(contentType, 'boundary') ?? '');
          } catch (err) {
            slot.release();
            throw err;
          }
        }
        const receivedAt = new Date();
        // A portal's own credential files the scan under that portal; a person or an API token under import.portalId.
        const outcome = await o.imports.importDicos(
          {
            files,
            sender: { actor: principal.account, address: ctx.facts.address },
            ...(principal.kind === 'portal' && principal.portalId ? { portalId: principal.portalId } : {}),
            receivedAt,
            ...(plate !== null ? { vehicle: { plate } } : {}),
            ...(declaration ? { declaration } : {}),
          },
          slot,
        );
        out.json(
          201,
          { ...outcome, links: { scan: `/v1/scans/${encodeURIComponent(outcome.scanId)}` } },
          { Location: `/v1/scans/${encodeURIComponent(outcome.scanId)}` },
        );
      });
    },
    { portalCredentials: true },
  );
}
