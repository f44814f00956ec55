/**
 * 16-bit TIFF or PNG images with a JSON sidecar, from scanners that export plain images to a share (docs/dicos.md,
 * "Watched folder"). The sidecar says what the image cannot: which energy each file is, the pixel pitch, how the
 * image lies, the station, the vehicle and the declaration. sharp (libvips) decodes the images.
 *
 * The result has the shape of a read DX (DicosDx), so that ImportService takes it through the same path; its origin
 * is `source: "file"`.
 */
import { basename } from 'node:path';
import sharp, { type Metadata } from 'sharp';
import type { DicosDx } from '../dicos/index.js';
import { ScanlineError } from '../errors/index.js';
import { type Declaration, DeclarationSchema, type VehicleInfo, VehicleInfoSchema } from '../protocol/index.js';
import { literalUnion, SchemaValidator, type Static, Type } from '../schema/index.js';

const FILE_NAME = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\\.(png|PNG|tif|TIF|tiff|TIFF)$',
  expected: 'a file name (no directory) ending in .png, .tif or .tiff',
});

export const ImageSidecarSchema = Type.Object(
  {
    images: Type.Union([Type.Tuple([FILE_NAME]), Type.Tuple([FILE_NAME, FILE_NAME])], {
      expected: 'one file name (single energy) or two (high energy, then low energy)',
      description: 'The image files, next to the sidecar: one (single energy) or two (high, then low energy).',
    }),
    lineAxis: literalUnion(['columns', 'rows'] as const, {
      default: 'columns',
      description: 'columns: each image column is one scan line (the vehicle lies horizontally); rows: each row is one.',
    }),
    pixelPitchMm: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 100, description: 'Detector pitch; default import.pitchMm.' })),
    bitsStored: Type.Integer({ minimum: 1, maximum: 16, default: 16, description: 'Significant bits of each sample (its full scale is the flat field).' }),
    station: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    acquiredAt: Type.Optional(Type.String({ maxLength: 40, description: 'When it was acquired, ISO 8601 (kept in the origin).' })),
    vehicle: Type.Optional(VehicleInfoSchema),
    declaration: Type.Optional(DeclarationSchema),
  },
  { additionalProperties: false },
);
export type ImageSidecar = Static<typeof ImageSidecarSchema>;

const SIDECAR = new SchemaValidator(ImageSidecarSchema, { unknownKey: (path) => `Unknown field ${path}` });

/** Reads a sidecar's JSON; throws SCANLINE_ERR_IMPORT_SIDECAR with every problem. */
export function parseSidecar(text: string, name: string): ImageSidecar {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ScanlineError('SCANLINE_ERR_IMPORT_SIDECAR', `${name} is not JSON: ${(err as Error).message}`);
  }
  if (SIDECAR.check(value)) return value;
  const withDefaults = typeof value === 'object' && value !== null ? { lineAxis: 'columns', bitsStored: 16, ...value } : value;
  if (SIDECAR.check(withDefaults)) return withDefaults;
  throw new ScanlineError('SCANLINE_ERR_IMPORT_SIDECAR', `${name}:\n  - ${SIDECAR.problems(withDefaults).join('\n  - ')}`);
}

/**
 * Decodes one image file into a DX-shaped image: 16-bit grey only (an 8-bit or colour image is a rendering for
 * display, refused with SCANLINE_ERR_DICOS_IMAGE), rows = detector elements once turned per `lineAxis`.
 */
export async function readImageFile(
  bytes: Uint8Array,
  name: string,
  energy: 'high' | 'low' | 'single',
  sidecar: ImageSidecar,
  limits: { maxRows: number; maxColumns: number },
): Promise<DicosDx> {
  const image = (problem: string): ScanlineError => new ScanlineError('SCANLINE_ERR_DICOS_IMAGE', `${name}: ${problem}`);
  let meta: Metadata;
  try {
    meta = await sharp(bytes).metadata();
  } catch (err) {
    throw new ScanlineError('SCANLINE_ERR_DICOS_PARSE', `${name} cannot be read as PNG or TIFF: ${(err as Error).message}`);
  }
  if (meta.format !== 'png' && meta.format !== 'tiff') throw image(`is ${meta.format ?? 'of an unknown format'}; PNG or TIFF is read`);
  if (meta.depth !== 'ushort')
    throw image(`has ${meta.depth ?? 'unknown'} samples; 16-bit (ushort) detector data is read, an 8-bit image is a display rendering`);
  if ((meta.channels ?? 0) !== 1 || meta.hasAlpha) throw image(`has ${meta.channels} channels; one grey channel is read`);
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  const [rows, columns] = sidecar.lineAxis === 'columns' ? [height, width] : [width, height];
  if (rows < 1 || columns < 1) throw image('is empty');
  if (rows > limits.maxRows) throw image(`has ${rows} detector elements per line; a detector has at most ${limits.maxRows} (check lineAxis)`);
  if (columns > limits.maxColumns) throw image(`has ${columns} lines; a scan has at most ${limits.maxColumns} (stitch.maxLines)`);
  let raw: Buffer;
  try {
    // grey16: libvips would otherwise turn one grey channel into three sRGB ones on output.
    raw = await sharp(bytes, { limitInputPixels: false }).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer();
  } catch (err) {
    throw new ScanlineError('SCANLINE_ERR_DICOS_PARSE', `${name} cannot be decoded: ${(err as Error).message}`);
  }
  if (raw.byteLength !== width * height * 2)
    throw new ScanlineError('SCANLINE_ERR_DICOS_PARSE', `${name} decoded to ${raw.byteLength} bytes, not ${width} x ${height} x 2`);
  const decoded = new Uint16Array(raw.buffer, raw.byteOffset, width * height);
  // As a DX: rows x columns row-major, a column per line. An image whose rows are lines is transposed.
  let pixels: Uint16Array;
  if (sidecar.lineAxis === 'columns') pixels = new Uint16Array(decoded);
  else {
    pixels = new Uint16Array(rows * columns);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) pixels[x * columns + y] = decoded[y * width + x];
  }
  if (sidecar.bitsStored < 16) {
    const max = 2 ** sidecar.bitsStored - 1;
    for (const v of pixels) if (v > max) throw image(`has a sample of ${v}, above the ${sidecar.bitsStored} bits the sidecar declares`);
  }
  const pitch = sidecar.pixelPitchMm ?? null;
  return {
    kind: 'dx',
    sopClassUid: '',
    sopClassName: meta.format === 'png' ? 'PNG image' : 'TIFF image',
    sopInstanceUid: basename(name),
    transferSyntaxUid: '',
    transferSyntaxName: meta.format === 'png' ? 'PNG' : 'TIFF',
    studyInstanceUid: null,
    seriesInstanceUid: null,
    frameOfReferenceUid: null,
    dicosVersion: null,
    ooiId: typeof sidecar.vehicle?.plate === 'string' ? sidecar.vehicle.plate.slice(0, 64) : null,
    ooiType: null,
    stationName: sidecar.station ?? null,
    manufacturer: null,
    modelName: null,
    institution: null,
    contentTime: sidecar.acquiredAt ?? null,
    warnings: [],
    presentationIntent: 'FOR PROCESSING',
    imageType: ['ORIGINAL', energy === 'high' ? 'HIGH ENERGY' : energy === 'low' ? 'LOW ENERGY' : 'INTENSITY'],
    energy,
    rows,
    columns,
    bitsStored: sidecar.bitsStored,
    photometricInterpretation: 'MONOCHROME2',
    pixelSpacingMm: pitch !== null ? [pitch, pitch] : null,
    kvp: null,
    pixels,
    scanlinePrivate: null,
  };
}

export type { Declaration, VehicleInfo };
