/**
 * Small helpers for answering HTTP requests on uWS: JSON bodies, error bodies with stable codes, and the
 * onAborted/cork dance for responses that are answered after an await.
 */
import { ScanlineError, toScanlineErrorOrInternal } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { SECURITY_HEADERS, clientAddress } from './guard.js';
import type { ByteRate } from './limits.js';
import type { HttpRequest, HttpResponse } from './uws.js';

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  302: 'Found',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  421: 'Misdirected Request',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function statusLine(status: number): string {
  return `${status} ${STATUS_TEXT[status] ?? 'Status'}`;
}

/**
 * Writes a whole response now, inside the handler (or later, after onAborted): the status, the headers every response
 * carries (no-store, SECURITY_HEADERS), `headers` (an array value writes the header once per item: Set-Cookie), the
 * body. The one place responses are written.
 */
export function answerNow(
  res: HttpResponse,
  status: number,
  contentType: string,
  body: string | Uint8Array,
  headers: Record<string, string | readonly string[]> = {},
): void {
  res.cork(() => {
    writeHead(res, status, contentType, headers);
    res.end(body);
  });
}

/** The status and every header of a response (answerNow's), inside a cork. */
function writeHead(res: HttpResponse, status: number, contentType: string, headers: Record<string, string | readonly string[]>): void {
  res.writeStatus(statusLine(status)).writeHeader('Content-Type', contentType).writeHeader('Cache-Control', 'no-store');
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.writeHeader(k, v);
  for (const [k, v] of Object.entries(headers)) for (const one of typeof v === 'string' ? [v] : v) res.writeHeader(k, one);
}

/** Bodies above this are written as the client reads them (PendingResponse.sendLarge), not copied into uWS' buffer. */
export const STREAM_BODY_ABOVE_BYTES = 256 * 1024;

/** What a large body writes at a time (PendingResponse.sendLarge). */
const WRITE_CHUNK_BYTES = 256 * 1024;

/** Answers `err` now with its code's status and body (a refused WebSocket upgrade, answered inside its handler). */
export function refuseNow(res: HttpResponse, err: ScanlineError): void {
  answerNow(res, err.status, JSON_TYPE, JSON.stringify({ error: err.toJSON() }));
}

export const JSON_TYPE = 'application/json; charset=utf-8';

/** What runs once a response is answered or its client went away (the request-per-address count; limits.ts). */
const settleHooks = new WeakMap<HttpResponse, () => void>();

/** Runs `hook` once, when `res` is answered (PendingResponse.send) or aborted. */
export function onSettled(res: HttpResponse, hook: () => void): void {
  settleHooks.set(res, hook);
}

function settle(res: HttpResponse): void {
  const hook = settleHooks.get(res);
  if (!hook) return;
  settleHooks.delete(res);
  hook();
}

/** A response that may be answered later; `aborted` turns true if the client went away first. */
export class PendingResponse {
  aborted = false;
  private answered = false;
  private readonly abortHooks: Array<() => void> = [];

  /** `request` is the request line ("GET /v1/scans"), read while the request was valid, for the log. */
  constructor(
    private readonly res: HttpResponse,
    private readonly log: Logger,
    private readonly request: string,
  ) {
    res.onAborted(() => {
      this.aborted = true;
      settle(res);
      for (const hook of this.abortHooks.splice(0)) hook();
    });
  }

  /** Runs `hook` if the client goes away before the answer (e.g. to free what a body being read holds). */
  onAbort(hook: () => void): void {
    if (this.aborted) hook();
    else this.abortHooks.push(hook);
  }

  /** 302 to `location` (a path of this gateway or the OpenID provider's URL). */
  redirect(location: string, headers: Record<string, string | readonly string[]> = {}): void {
    this.send(302, 'text/plain; charset=utf-8', '', { Location: location, ...headers });
  }

  json(status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.send(status, JSON_TYPE, JSON.stringify(body), headers);
  }

  /**
   * Answers with the error's code. A failure that carries no code is SCANLINE_ERR_INTERNAL: the client gets the
   * code and a generic message, the log gets the error with its stack (once, here). Other 500s are logged too;
   * caller errors and expected refusals (404, 409, 503 ...) are the client's to read, not the log's.
   */
  error(err: unknown): void {
    const e = toScanlineErrorOrInternal(err);
    if (e.status === 500) this.log.error({ err: e, request: this.request }, 'HTTP request failed');
    const retry = e.details.retryAfterSec;
    this.send(
      e.status,
      'application/json; charset=utf-8',
      JSON.stringify({ error: e.toJSON() }),
      typeof retry === 'number' ? { 'Retry-After': String(retry) } : {},
    );
  }

  /**
   * `headers`: extra headers; an array value writes the header once per item (Set-Cookie). A body over
   * STREAM_BODY_ABOVE_BYTES goes out through sendLarge, no faster than `pace` allows (none: as the client reads it).
   */
  send(
    status: number,
    contentType: string,
    body: string | Uint8Array,
    headers: Record<string, string | readonly string[]> = {},
    pace: ByteRate | null = null,
  ): void {
    if (typeof body !== 'string' && body.byteLength > STREAM_BODY_ABOVE_BYTES) {
      this.sendLarge(status, contentType, body, headers, pace);
      return;
    }
    if (this.aborted || this.answered) return;
    this.answered = true;
    answerNow(this.res, status, contentType, body, headers);
    settle(this.res);
  }

  /**
   * A large body (a scan image, a DICOS file: tens of MB) written as the client reads it and, with `pace`, no faster
   * than its address's byte rate: WRITE_CHUNK_BYTES at a time, the next on the next turn of the event loop, when the
   * socket is writable again, or when the rate allows. res.end() would copy all of it into uWS' buffer at once on the
   * event loop (and hold the copy for a slow client); cached images sent that way stalled the loop for over a second
   * (bench:security). Written a whole grant at a time, one write of megabytes into a loopback socket ran the
   * receiver's TCP stack in this thread for milliseconds (bench:security, 'Under attack, escalated'). Each chunk takes
   * its bytes from the address's rate when it is written, so downloads of one address take turns.
   * The request's slot (server.maxRequestsPerAddress) is held until the last byte is out or the client goes away.
   */
  sendLarge(status: number, contentType: string, body: Uint8Array, headers: Record<string, string | readonly string[]>, pace: ByteRate | null): void {
    if (this.aborted || this.answered) return;
    this.answered = true;
    const res = this.res;
    const address = pace ? clientAddress(res) : '';
    const total = body.byteLength;
    let bodyStart = 0;
    /** Body bytes the rate has allowed so far (all of them without a rate). */
    let allowed = pace ? 0 : total;
    let done = false;
    /** Waiting for the rate, or for the next turn of the event loop (the next chunk): at most one at a time. */
    let cancelWait: (() => void) | null = null;
    let next: NodeJS.Immediate | null = null;
    /**
     * Writes the next chunk, inside a cork. Returns false only when the socket took less than the chunk (uWS calls
     * onWritable when it drains); otherwise it has arranged what comes next itself (an immediate or a rate timer), or
     * the body is out.
     */
    const step = (): boolean => {
      const from = res.getWriteOffset() - bodyStart;
      const end = Math.min(from + WRITE_CHUNK_BYTES, total);
      if (pace && allowed < end) {
        const n = pace.take(address, end - allowed);
        allowed += n;
        if (n === 0 && allowed <= from) {
          // Nothing allowed now: wait for the rate, in turn with the address's other bodies.
          cancelWait = pace.wait(address, end - allowed, (granted) => {
            cancelWait = null;
            allowed += granted;
            if (!this.aborted && !done) res.cork(step);
          });
          return true;
        }
      }
      const [ok, finished] = res.tryEnd(body.subarray(from, Math.min(end, allowed)), total);
      if (finished) {
        done = true;
        settle(res);
        return true;
      }
      if (!ok) return false;
      next = setImmediate(() => {
        next = null;
        // The response may have ended meanwhile (the client went away): uWS reuses it for the next request.
        if (this.aborted || done) return;
        res.cork(step);
      });
      return true;
    };
    this.onAbort(() => {
      cancelWait?.();
      if (next) clearImmediate(next);
      cancelWait = null;
      next = null;
    });
    res.cork(() => {
      writeHead(res, status, contentType, headers);
      bodyStart = res.getWriteOffset();
      step();
    });
    // Only after a partial write is a step due from here: uWS may call onWritable spuriously (under TLS), and a second
    // step beside a pending one would start a second chain of writes.
    if (!done) res.onWritable(() => (this.aborted || done || next !== null || cancelWait !== null ? true : step()));
  }
}

/**
 * Runs an async handler with the response protected by onAborted; any throw becomes an error body with its code
 * (PendingResponse.error). Call synchronously inside the route handler: the request line is read from `req` here.
 */
export function handleAsync(res: HttpResponse, req: HttpRequest, log: Logger, handler: (out: PendingResponse) => Promise<void> | void): void {
  const out = new PendingResponse(res, log, `${req.getMethod().toUpperCase()} ${req.getUrl()}`);
  try {
    const done = handler(out);
    if (done) done.catch((err: unknown) => out.error(err));
  } catch (err) {
    out.error(err);
  }
}

export function badQuery(message: string): ScanlineError {
  return new ScanlineError('SCANLINE_ERR_HTTP_BAD_QUERY', message);
}

/**
 * Reads a JSON request body of at most `maxBytes`. Must be called synchronously inside the route handler (uWS
 * delivers the body through res.onData, registered here; the response must already have onAborted, which
 * PendingResponse sets). Rejects with SCANLINE_ERR_HTTP_BODY_TOO_LARGE or SCANLINE_ERR_HTTP_BAD_BODY; never resolves
 * when the client goes away mid-body (the response is then aborted and not answered).
 */
export async function readJsonBody(res: HttpResponse, maxBytes: number): Promise<unknown> {
  const text = (await readBody(res, maxBytes)).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ScanlineError('SCANLINE_ERR_HTTP_BAD_BODY', `request body is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * Reads a whole request body of at most `maxBytes` (`what` names the limit in the error). Must be called
 * synchronously inside the route handler, as readJsonBody. With `out`, rejects when the client goes away mid-body
 * (so that what the caller holds for it is freed); without, never resolves then. `declaredLength` (Content-Length)
 * over the limit is refused before a byte is read.
 */
export function readBody(
  res: HttpResponse,
  maxBytes: number,
  options: { out?: PendingResponse; declaredLength?: number | null; what?: string } = {},
): Promise<Buffer> {
  const limit = options.what ? ` (${options.what})` : '';
  return new Promise((resolve, reject) => {
    if (options.declaredLength !== undefined && options.declaredLength !== null && options.declaredLength > maxBytes) {
      reject(
        new ScanlineError('SCANLINE_ERR_HTTP_BODY_TOO_LARGE', `request body of ${options.declaredLength} bytes exceeds ${maxBytes} bytes${limit}`, {
          maxBytes,
        }),
      );
      return;
    }
    options.out?.onAbort(() => reject(new ScanlineError('SCANLINE_ERR_HTTP_BAD_BODY', 'the client went away before the body was read')));
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    res.onData((chunk: ArrayBuffer, isLast: boolean) => {
      if (failed) return;
      size += chunk.byteLength;
      if (size > maxBytes) {
        failed = true;
        reject(new ScanlineError('SCANLINE_ERR_HTTP_BODY_TOO_LARGE', `request body exceeds ${maxBytes} bytes${limit}`, { maxBytes }));
        return;
      }
      // The chunk is only valid during this call: copy it.
      chunks.push(Buffer.from(new Uint8Array(chunk)));
      if (isLast) resolve(Buffer.concat(chunks, size));
    });
  });
}

/**
 * A path parameter, percent-decoded. A malformed escape (`%E0%A4%A`) is kept as it was sent: it names no scan or
 * file, so the route answers its usual 404, where decodeURIComponent would throw inside the uWS handler and take the
 * process down. Call synchronously inside the handler (the request is valid only then).
 */
export function pathParameter(req: HttpRequest, index: number): string {
  const raw = req.getParameter(index) ?? '';
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
