/**
 * `scanline import PATH... [--url URL] [--plate P] [--hs-codes C,C]`: sends DICOS DX files to a running gateway's
 * POST /v1/imports, for a person or a script at a scanner's export share. The token of an officer's account comes
 * from SCANLINE_API_TOKEN or --token-file (never the command line, which other users can read in the process list).
 * Files are grouped into inspections by Scan Instance UID, so the two energies of one go together as a pair.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { type Command, parseCommandLine, usageError } from './cli-support.js';
import { readDicos } from './dicos/index.js';
import { isErrorCode, ScanlineError, toScanlineErrorOrInternal } from './errors/index.js';
import { COMMON_OPTIONS, configOf, print } from './identity-commands.js';

const IMPORT_USAGE = `scanline import PATH... [--url URL] [--plate PLATE] [--hs-codes CODE,CODE] [--token-file FILE]
  Sends DICOS DX files (a directory: its *.dcm and *.dcs files) to a running gateway's POST /v1/imports. The two
  energies of one inspection (same Scan Instance UID) are sent together as a dual-energy pair; every other file on
  its own. Prints one line per inspection: the scan it became, or the error code and message.
  --url URL          the gateway (default: http://127.0.0.1:<server.port of the configuration>)
  --token-file FILE  a file holding an API token of an officer account (default: the SCANLINE_API_TOKEN variable)
  --plate, --hs-codes  the vehicle's plate and the declaration, for every inspection sent
  --config FILE      the gateway's configuration (for the default URL)
`;

async function filesOf(paths: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const st = await stat(p).catch(() => null);
    if (!st) throw usageError(`${p}: no such file or directory`);
    if (st.isDirectory()) {
      for (const name of (await readdir(p)).sort()) if (['.dcm', '.dcs'].includes(extname(name).toLowerCase())) out.push(join(p, name));
    } else out.push(p);
  }
  return out;
}

function multipart(parts: Uint8Array[], boundary: string): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), Buffer.from(part), Buffer.from('\r\n'));
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

async function importCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(
    args,
    { ...COMMON_OPTIONS, url: { type: 'string' }, plate: { type: 'string' }, 'hs-codes': { type: 'string' }, 'token-file': { type: 'string' } },
    { min: 1, max: 100_000, what: 'one or more DICOS files or directories' },
  );
  const tokenFile = typeof values['token-file'] === 'string' ? values['token-file'] : null;
  const token = (tokenFile ? await readFile(tokenFile, 'utf8') : (process.env.SCANLINE_API_TOKEN ?? '')).trim();
  if (token === '')
    throw usageError('set SCANLINE_API_TOKEN (or --token-file FILE) to an API token of an officer account (`scanline token create --user NAME`)');
  const url = typeof values.url === 'string' ? values.url.replace(/\/+$/, '') : `http://127.0.0.1:${configOf(values).server.port}`;
  const query = new URLSearchParams();
  if (typeof values.plate === 'string') query.set('plate', values.plate);
  if (typeof values['hs-codes'] === 'string') query.set('hsCodes', values['hs-codes']);

  // Group by inspection: a HIGH and a LOW ENERGY DX of one Scan Instance UID make one pair.
  const groups = new Map<string, Array<{ path: string; bytes: Uint8Array; energy: string }>>();
  const alone: Array<{ path: string; bytes: Uint8Array }> = [];
  for (const path of await filesOf(positionals)) {
    const bytes = new Uint8Array(await readFile(path));
    try {
      const o = await readDicos(bytes);
      if (o.kind === 'dx' && o.energy !== 'single' && o.studyInstanceUid !== null) {
        const g = groups.get(o.studyInstanceUid) ?? [];
        g.push({ path, bytes, energy: o.energy });
        groups.set(o.studyInstanceUid, g);
        continue;
      }
    } catch {
      // Sent as it is: the gateway refuses it with its code (and keeps it in quarantine), as for any sender.
    }
    alone.push({ path, bytes });
  }
  const sets: Array<{ paths: string[]; parts: Uint8Array[] }> = alone.map((f) => ({ paths: [f.path], parts: [f.bytes] }));
  for (const g of groups.values()) {
    const high = g.find((f) => f.energy === 'high');
    const low = g.find((f) => f.energy === 'low');
    if (g.length === 2 && high && low) sets.push({ paths: [high.path, low.path], parts: [high.bytes, low.bytes] });
    else for (const f of g) sets.push({ paths: [f.path], parts: [f.bytes] });
  }
  let failed = 0;
  let firstCode: string | null = null;
  for (const set of sets) {
    const boundary = `scanline-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    const pair = set.parts.length === 2;
    let line: string;
    try {
      const res = await fetch(`${url}/v1/imports${query.size > 0 ? `?${query}` : ''}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': pair ? `multipart/related; type="application/dicom"; boundary=${boundary}` : 'application/dicom',
        },
        body: new Uint8Array(pair ? multipart(set.parts, boundary) : set.parts[0]),
      });
      const body = (await res.json().catch(() => ({}))) as { scanId?: string; lines?: number; energies?: number; error?: { code: string; message: string } };
      if (res.status === 201 && body.scanId) line = `${set.paths.join(' + ')}: scan ${body.scanId} (${body.lines} lines, ${body.energies} energies)`;
      else {
        failed++;
        firstCode ??= body.error?.code ?? null;
        line = `${set.paths.join(' + ')}: ERROR ${body.error?.code ?? res.status}: ${body.error?.message ?? res.statusText}`;
      }
    } catch (err) {
      failed++;
      firstCode ??= 'SCANLINE_ERR_IMPORT_UNREACHABLE';
      line = `${set.paths.join(' + ')}: ERROR SCANLINE_ERR_IMPORT_UNREACHABLE: cannot reach ${url}: ${toScanlineErrorOrInternal(err).message}`;
    }
    print(line);
  }
  if (failed > 0) {
    const code = firstCode !== null && isErrorCode(firstCode) ? firstCode : 'SCANLINE_ERR_IMPORT_UNREACHABLE';
    throw new ScanlineError(code, `${failed} of ${sets.length} inspections were not imported (listed above)`);
  }
}

export function importCommands(): Command[] {
  return [{ name: 'import', summary: 'send DICOS files to a running gateway', usage: IMPORT_USAGE, run: importCommand }];
}
