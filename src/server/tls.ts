/**
 * The certificate and key of server.tls, checked with node:crypto before uWebSockets.js gets them (uWS would
 * otherwise start without a usable context and refuse handshakes, or abort): each file must be readable PEM, the
 * key must open with its passphrase, and it must belong to the certificate. What is learnt (subject, expiry,
 * fingerprint) goes to the log at start and at each reload.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ScanlineError } from '../errors/index.js';

export interface TlsFiles {
  cert: string;
  key: string;
  keyPassphrase: string;
}

export interface TlsCertificateInfo {
  subject: string;
  /** ISO time the certificate expires. */
  validTo: string;
  /** SHA-256 fingerprint, as openssl prints it. */
  fingerprint256: string;
}

function fail(message: string, cause?: unknown): never {
  throw new ScanlineError('SCANLINE_ERR_SERVER_TLS', message, {}, cause === undefined ? undefined : { cause });
}

/** Reads and checks the files; throws SCANLINE_ERR_SERVER_TLS saying what is wrong (never the passphrase). */
export function checkTlsFiles(files: TlsFiles): TlsCertificateInfo {
  let certPem: Buffer;
  let keyPem: Buffer;
  try {
    certPem = readFileSync(files.cert);
  } catch (err) {
    fail(`cannot read server.tls.cert ${files.cert}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, err);
  }
  try {
    keyPem = readFileSync(files.key);
  } catch (err) {
    fail(`cannot read server.tls.key ${files.key}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, err);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    fail(`server.tls.cert ${files.cert} is not a PEM certificate`, err);
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey({ key: keyPem, ...(files.keyPassphrase !== '' ? { passphrase: files.keyPassphrase } : {}) });
  } catch (err) {
    fail(
      `server.tls.key ${files.key} is not a PEM private key${files.keyPassphrase === '' ? ' (or it is encrypted: set server.tls.keyPassphrase)' : ', or server.tls.keyPassphrase does not open it'}`,
      err,
    );
  }
  if (!cert.checkPrivateKey(key)) fail(`server.tls.key ${files.key} does not belong to the certificate in ${files.cert}`);
  return { subject: cert.subject.replace(/\n/g, ', '), validTo: new Date(cert.validTo).toISOString(), fingerprint256: cert.fingerprint256 };
}
