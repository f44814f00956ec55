/**
 * The enrolment request of a reference category (POST /v1/references; docs/protocol.md, "Reference categories"):
 * its schema gives the type and, with refineEnrolmentRequest, the check the HTTP door (src/server/references-api.ts)
 * applies. ResultsService.enrol takes the checked request.
 */
import { type RefineContext, type Static, Type } from '../schema/index.js';

/** Largest number of regions one enrolment may list. */
export const MAX_ENROLMENT_REGIONS = 64;

/** A region of a scored scan: lines [lineStart, lineEnd) along the scan, detector pixels [pixelStart, pixelEnd). */
export const EnrolmentRegionSchema = Type.Object(
  {
    scanId: Type.String({ minLength: 1, expected: 'a scan id' }),
    lineStart: Type.Integer({ minimum: 0, expected: 'an integer >= 0' }),
    lineEnd: Type.Integer({ minimum: 1, expected: 'an integer above lineStart' }),
    pixelStart: Type.Optional(Type.Integer({ minimum: 0, expected: 'an integer >= 0', description: 'Default 0.' })),
    pixelEnd: Type.Optional(Type.Integer({ minimum: 1, expected: 'an integer above pixelStart', description: 'Default: the detector height.' })),
  },
  { expected: 'a scan region {scanId, lineStart, lineEnd}' },
);

export const EnrolmentRequestSchema = Type.Object(
  {
    id: Type.String({
      pattern: '^[a-z0-9][a-z0-9._-]{0,63}$',
      expected: 'an id of 1-64 characters a-z 0-9 . _ - (starting with a letter or digit)',
    }),
    // At least one character that is not white space.
    name: Type.String({ pattern: '\\S', maxLength: 128, expected: 'a name of 1-128 characters' }),
    hsCodes: Type.Array(Type.String({ pattern: '^[0-9]{4,10}$', expected: 'an HS code of 4-10 digits' }), {
      maxItems: 32,
      expected: 'an array of at most 32 HS codes of 4-10 digits',
    }),
    minSimilarity: Type.Optional(
      Type.Number({
        minimum: 0.5,
        exclusiveMaximum: 1,
        expected: 'a number 0.5..<1',
        description: 'Cosine similarity a tile needs to match; default results.referenceMinSimilarity.',
      }),
    ),
    samples: Type.Array(EnrolmentRegionSchema, {
      minItems: 1,
      maxItems: MAX_ENROLMENT_REGIONS,
      expected: `an array of 1..${MAX_ENROLMENT_REGIONS} scan regions`,
    }),
  },
  { additionalProperties: false },
);
export type EnrolmentRequest = Static<typeof EnrolmentRequestSchema>;

/** Rules across the fields of each region: a region ends after it starts, along the scan and down the detector. */
export function refineEnrolmentRequest(request: EnrolmentRequest, ctx: RefineContext): void {
  // A list over its limit is one problem already: ctx.ok() is false below it, so no rule fires on its items.
  if (!Array.isArray(request.samples)) return;
  request.samples.forEach((region, i) => {
    const at = `samples[${i}]`;
    if (typeof region !== 'object' || region === null) return;
    if (ctx.ok(`${at}.lineStart`, `${at}.lineEnd`) && region.lineEnd <= region.lineStart) {
      ctx.fail(`${at}.lineEnd`, 'an integer above lineStart', region.lineEnd);
    }
    if (region.pixelStart !== undefined && region.pixelEnd !== undefined && ctx.ok(`${at}.pixelStart`, `${at}.pixelEnd`)) {
      if (region.pixelEnd <= region.pixelStart) ctx.fail(`${at}.pixelEnd`, 'an integer above pixelStart', region.pixelEnd);
    }
  });
}
