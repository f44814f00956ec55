/**
 * `scanline dicos inspect FILE... [--json]`: what Scanline reads from DICOS files, for people debugging an
 * integration. Reads files only; needs no gateway, configuration or data directory. A file that cannot be read
 * prints its error code and message; the command then exits non-zero after the other files.
 */
import { readFile } from 'node:fs/promises';
import { type Command, parseCommandLine } from './cli-support.js';
import { type DicosObject, readDicos } from './dicos/index.js';
import { ScanlineError, toScanlineErrorOrInternal } from './errors/index.js';
import { print } from './identity-commands.js';

const DICOS_USAGE = `scanline dicos inspect FILE... [--json]
  Prints what Scanline reads from each DICOS file: SOP class, transfer syntax, UIDs, object of inspection, station;
  for a DX its size, energy, bit depth, pixel spacing and pixel statistics; for a Threat Detection Report its type,
  alarm decision, algorithm, operator and each potential threat object with its assessment and boxes. Problems the
  reader tolerated (invalid UIDs, missing attributes) are listed as warnings. --json prints one JSON object per file.
`;

function pixelStats(pixels: Uint16Array): { min: number; max: number; mean: number } {
  let min = 65_535;
  let max = 0;
  let sum = 0;
  for (let i = 0; i < pixels.length; i++) {
    const v = pixels[i];
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  return { min: pixels.length > 0 ? min : 0, max, mean: pixels.length > 0 ? sum / pixels.length : 0 };
}

/** The object as printed with --json: pixel data replaced by its statistics. */
export function describeDicos(file: string, o: DicosObject): Record<string, unknown> {
  if (o.kind === 'dx') {
    const { pixels, ...rest } = o;
    return { file, ...rest, pixelStats: pixelStats(pixels) };
  }
  return { file, ...o };
}

function text(file: string, o: DicosObject): string {
  const lines = [
    `${file}`,
    `  class        ${o.sopClassName} (${o.sopClassUid})`,
    `  syntax       ${o.transferSyntaxName} (${o.transferSyntaxUid})`,
    `  instance     ${o.sopInstanceUid}`,
    `  scan         ${o.studyInstanceUid ?? '-'}   series ${o.seriesInstanceUid ?? '-'}`,
    `  DICOS        ${o.dicosVersion ?? '-'}   object ${o.ooiType ?? '-'} ${o.ooiId ?? '-'}`,
    `  station      ${o.stationName ?? '-'} (${o.manufacturer ?? '-'} ${o.modelName ?? '-'}), ${o.institution ?? '-'}`,
    `  time         ${o.contentTime ?? '-'}`,
  ];
  if (o.kind === 'dx') {
    const s = pixelStats(o.pixels);
    lines.push(
      `  image        ${o.rows} rows x ${o.columns} columns, ${o.bitsStored} bits stored, ${o.photometricInterpretation}, ${o.presentationIntent}`,
      `  energy       ${o.energy} (Image Type ${o.imageType.join('\\')})${o.kvp !== null ? `, ${o.kvp} kVp` : ''}`,
      `  spacing      ${o.pixelSpacingMm ? `${o.pixelSpacingMm[0]} x ${o.pixelSpacingMm[1]} mm` : '-'}`,
      `  pixels       min ${s.min}  max ${s.max}  mean ${s.mean.toFixed(1)}`,
    );
  } else {
    lines.push(
      `  report       ${o.tdrType ?? '-'}   decision ${o.alarmDecision ?? '-'} at ${o.alarmDecisionTime ?? '-'}`,
      `  algorithm    ${o.algorithm.length > 0 ? o.algorithm.join(' / ') : '-'}${o.totalProcessingTimeMs !== null ? `   ${o.totalProcessingTimeMs} ms` : ''}`,
    );
    if (o.operator) lines.push(`  operator     ${o.operator.id ?? '-'} (${o.operator.name ?? '-'})`);
    lines.push(`  threats      ${o.ptos.length}`);
    for (const p of o.ptos) {
      lines.push(
        `    PTO ${p.id}: ${p.category ?? '-'}${p.description ? ` "${p.description}"` : ''}, ${p.assessmentFlag ?? '-'}, ${p.abilityAssessment ?? '-'}${p.probability !== null ? `, p=${p.probability}` : ''}`,
      );
      for (const b of p.boxes) {
        lines.push(`      box at (${b.base.join(', ')}) size ${b.extents.join(' x ')} on ${b.referencedSopInstanceUid ?? '-'}`);
      }
    }
  }
  for (const w of o.warnings) lines.push(`  warning      ${w}`);
  return lines.join('\n');
}

async function inspect(args: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(args, { json: { type: 'boolean' } }, { min: 1, max: 10_000, what: 'one or more DICOS files' });
  let failed = 0;
  for (const file of positionals) {
    try {
      const bytes = await readFile(file).catch((err: NodeJS.ErrnoException) => {
        throw new ScanlineError('SCANLINE_ERR_CLI_USAGE', `cannot read ${file}: ${err.code ?? err.message}`);
      });
      const o = await readDicos(bytes);
      print(values.json === true ? JSON.stringify(describeDicos(file, o)) : text(file, o));
    } catch (err) {
      const e = toScanlineErrorOrInternal(err);
      failed++;
      print(values.json === true ? JSON.stringify({ file, error: { code: e.code, message: e.message } }) : `${file}\n  ERROR ${e.code}: ${e.message}`);
    }
  }
  if (failed > 0) throw new ScanlineError('SCANLINE_ERR_DICOS_PARSE', `${failed} of ${positionals.length} files could not be read (listed above)`);
}

async function dicos(args: string[]): Promise<void> {
  if (args[0] === 'inspect') return inspect(args.slice(1));
  throw new ScanlineError(
    'SCANLINE_ERR_CLI_USAGE',
    args[0] === undefined ? 'dicos needs a subcommand: inspect' : `unknown dicos subcommand "${args[0]}"; expected inspect`,
  );
}

export function dicosCommands(): Command[] {
  return [{ name: 'dicos', summary: 'inspect DICOS files', usage: DICOS_USAGE, run: dicos }];
}
