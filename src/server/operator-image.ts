/**
 * Images for people: GET /v1/scans/:scanId/image?view=material|grey&format=webp|jpeg|png[&overlays=0]
 * The scan's material preview (stitch.previewDownsample, the operator screen's image) in pseudo-colour or grey,
 * with the machine's suggestions (goods segments with their top-3) and threat boxes burned in, for reports.
 * Live scans give the image so far. Without `view` the route keeps serving the raw 16-bit PNG (scans-api.ts).
 */
import sharp from 'sharp';
import { ScanlineError } from '../errors/index.js';
import type { OperatorHub, ResultsReader } from '../operator/index.js';
import { PREVIEW_PALETTE } from '../stitch/index.js';
import { literalUnion, SchemaValidator, Type } from '../schema/index.js';
import type { ScanRecord } from '../storage/index.js';
import { parseQuery } from './body.js';
import type { ScanImageRenderer } from './scans-api.js';

/** GET /v1/scans/:scanId/image?view=&format=&overlays= (with view=: the image for people). */
export const OperatorImageQuerySchema = Type.Object({
  view: literalUnion(['material', 'grey'], { expected: '"material" or "grey"', description: 'Pseudo-colour by material, or grey.' }),
  format: literalUnion(['webp', 'jpeg', 'png'], { default: 'png', expected: '"webp", "jpeg" or "png" (with view=)' }),
  overlays: literalUnion(['0', '1'], { default: '1', expected: '"0" or "1"', description: "1: the machine's suggestions and threats burned in." }),
});
const OPERATOR_IMAGE_QUERY = new SchemaValidator(OperatorImageQuerySchema);
const CONTENT_TYPES = { webp: 'image/webp', jpeg: 'image/jpeg', png: 'image/png' } as const;

/** Brightness (0..255) of a preview sample: its colour is round(palette base x s), s in 0.15..1 (stitch types). */
function brightnessOf(r: number, g: number, b: number): number {
  if (r === g && g === b) return r; // background / single energy grey, or impenetrable (24)
  if (r === 255 && g === 0 && b === 0) return 128; // gap lines: mid grey
  let best = 0;
  let bestErr = Infinity;
  for (let c = 1; c <= 4; c++) {
    const [br, bg, bb] = PREVIEW_PALETTE[c];
    const s = (r * br + g * bg + b * bb) / (br * br + bg * bg + bb * bb);
    const err = (r - s * br) ** 2 + (g - s * bg) ** 2 + (b - s * bb) ** 2;
    if (err < bestErr) {
      bestErr = err;
      best = s;
    }
  }
  return Math.max(0, Math.min(255, Math.round(best * 255)));
}

/** Grey view of an RGB preview: each sample's brightness (attenuation shading) without its material colour. */
function toGrey(rgb: Buffer, pixels: number): Buffer {
  const out = Buffer.allocUnsafe(pixels);
  const cache = new Map<number, number>();
  for (let i = 0; i < pixels; i++) {
    const r = rgb[i * 3];
    const g = rgb[i * 3 + 1];
    const b = rgb[i * 3 + 2];
    const key = (r << 16) | (g << 8) | b;
    let v = cache.get(key);
    if (v === undefined) {
      v = brightnessOf(r, g, b);
      cache.set(key, v);
    }
    out[i] = v;
  }
  return out;
}

const escapeXml = (s: string): string => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
const pct = (p: number): string => `${Math.round(p * 100)}%`;

/**
 * Rows for labels laid along one axis: each label goes to the first row where it does not overlap the labels already
 * there (spans are [x, x + width), in order of x), so a long top-3 never hides the next segment's.
 */
export function labelRows(spans: ReadonlyArray<{ x: number; width: number }>): number[] {
  const rowEnds: number[] = [];
  return spans.map(({ x, width }) => {
    let row = rowEnds.findIndex((end) => end <= x);
    if (row < 0) row = rowEnds.push(0) - 1;
    rowEnds[row] = x + width;
    return row;
  });
}

/** SVG of the overlays in preview coordinates (lines / d across, pixels / d down). */
export function overlaySvg(width: number, height: number, d: number, report: NonNullable<ReturnType<ResultsReader['report']>>): string {
  const colours = ['#1f6feb', '#bf8700', '#1a7f37', '#cf222e', '#8250df'];
  const font = Math.max(10, Math.round(height / 40));
  const parts: string[] = [];
  const labels = report.goods.segments.map((s) => s.top3.map((t) => `${t.name} ${pct(t.probability)}`).join(' | '));
  // DejaVu Sans averages about 0.6 em per character; a little margin keeps neighbours apart.
  const rows = labelRows(report.goods.segments.map((s, i) => ({ x: s.startLine / d, width: labels[i].length * font * 0.6 + 8 + font })));
  report.goods.segments.forEach((s, i) => {
    const x0 = s.startLine / d;
    const w = (s.endLine - s.startLine) / d;
    const c = colours[i % colours.length];
    parts.push(
      `<rect x="${x0}" y="0" width="${w}" height="${height}" fill="${c}" fill-opacity="0.12"/>`,
      `<rect x="${x0}" y="0" width="${w}" height="${Math.max(3, font / 3)}" fill="${c}"/>`,
      `<text x="${x0 + 4}" y="${font * (1.5 + 1.3 * rows[i])}" font-family="DejaVu Sans, sans-serif" font-size="${font}" fill="${c}" stroke="white" stroke-width="3" paint-order="stroke">${escapeXml(labels[i])}</text>`,
    );
  });
  for (const a of report.threats) {
    const b = a.box;
    parts.push(
      `<rect x="${b.lineStart / d}" y="${b.pixelStart / d}" width="${(b.lineEnd - b.lineStart) / d}" height="${(b.pixelEnd - b.pixelStart) / d}" fill="none" stroke="#ff0000" stroke-width="${Math.max(2, font / 5)}"/>`,
      `<text x="${b.lineStart / d}" y="${b.pixelEnd / d + font * 1.1}" font-family="DejaVu Sans, sans-serif" font-size="${font}" font-weight="bold" fill="#ff0000" stroke="white" stroke-width="3" paint-order="stroke">${escapeXml(`${a.name} ${pct(a.probability)}`)}</text>`,
    );
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`;
}

export function operatorImageRenderer(hub: OperatorHub, results: ResultsReader | null, previewDownsample: number): ScanImageRenderer {
  return {
    async render(record: ScanRecord, q: URLSearchParams) {
      const { view: viewName, format, overlays: overlaysText } = parseQuery(OPERATOR_IMAGE_QUERY, q);
      const png = await hub.previewPng(record.scanId);
      if (!png) {
        throw new ScanlineError(
          'SCANLINE_ERR_IMAGE_UNAVAILABLE',
          `scan ${record.scanId} has no preview image (no line yet, or it ended without one being stored: interrupted, or from before previews were kept)`,
          { scanId: record.scanId },
        );
      }
      const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const { width, height } = info;
      let image =
        viewName === 'grey'
          ? sharp(toGrey(data, width * height), { raw: { width, height, channels: 1 } }).toColourspace('srgb')
          : sharp(data, { raw: { width, height, channels: 3 } });
      const report = overlaysText === '1' ? results?.report(record.scanId) : undefined;
      if (report) {
        // Composite needs a materialised base: render the base first, then burn the overlays in.
        const base = await image.png({ compressionLevel: 1 }).toBuffer();
        image = sharp(base).composite([{ input: Buffer.from(overlaySvg(width, height, previewDownsample, report)), top: 0, left: 0 }]);
      }
      const body =
        format === 'webp'
          ? await image.webp({ quality: 90 }).toBuffer()
          : format === 'jpeg'
            ? await image.jpeg({ quality: 90 }).toBuffer()
            : await image.png().toBuffer();
      return {
        contentType: CONTENT_TYPES[format],
        body,
        headers: {
          'X-Scanline-View': viewName,
          // The last preview column may cover fewer than previewDownsample lines.
          'X-Scanline-Lines': String(Math.min(record.lines, width * previewDownsample)),
          'X-Scanline-Overlays': report ? 'burned-in' : 'none',
        },
      };
    },
  };
}
