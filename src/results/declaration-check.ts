/**
 * Declaration check: the HS codes a driver declared against the goods the image suggests (the main customs use:
 * declared timber, image looks like cigarettes). Codes are compared on their 4-digit HS heading, so a declared
 * 6- or 10-digit subheading matches the category's heading.
 */
import type { DeclarationCheck, SuggestionSegment } from '../protocol/index.js';

const heading = (code: string): string => code.slice(0, 4);

/**
 * @param uncertainLines lines of cargo the goods suggestions withheld as below their threshold (GoodsSuggestions
 *   .withheldLines); they keep an empty-looking vehicle from being called empty.
 * @param complete the scan ended with every line received: only then can "the declared goods are not there" be said.
 */
export function checkDeclaration(
  declared: readonly string[] | null,
  segments: readonly SuggestionSegment[],
  uncertainLines = 0,
  complete = true,
): DeclarationCheck {
  const declaredCodes = [...(declared ?? [])];
  const declaredHeadings = new Set(declaredCodes.map(heading));
  const byLabel = new Map<string, DeclarationCheck['undeclared'][number]>();
  const seenHeadings = new Set<string>();
  for (const s of segments) {
    const top = s.top3[0];
    // A category without HS code (an empty cargo bay) needs no declaration: it can only leave declared goods unseen.
    if (!top || top.hsCodes.length === 0) continue;
    for (const c of top.hsCodes) seenHeadings.add(heading(c));
    if (top.hsCodes.some((c) => declaredHeadings.has(heading(c)))) continue;
    const entry = byLabel.get(top.label) ?? { label: top.label, name: top.name, hsCodes: top.hsCodes, lines: 0, confidence: 0 };
    entry.lines += s.endLine - s.startLine;
    entry.confidence = Math.max(entry.confidence, s.confidence);
    byLabel.set(top.label, entry);
  }
  // Suggestions exist but none is goods (all without an HS code: an empty bay) while goods were declared.
  let emptyLines = 0;
  for (const s of segments) if (s.top3[0] && s.top3[0].hsCodes.length === 0) emptyLines += s.endLine - s.startLine;
  const emptyButDeclared = complete && declaredCodes.length > 0 && segments.length > 0 && seenHeadings.size === 0 && emptyLines > 2 * uncertainLines;
  let status: DeclarationCheck['status'];
  if (declared === null || segments.length === 0) status = 'unknown';
  else if (byLabel.size > 0 || emptyButDeclared) status = 'mismatch';
  // Goods declared, no goods confidently seen and the bay not clearly empty: nothing to compare yet.
  else if (declaredCodes.length > 0 && seenHeadings.size === 0) status = 'unknown';
  else status = 'match';
  return {
    status,
    declared: declaredCodes,
    undeclared: [...byLabel.values()],
    notSeen: [...declaredHeadings].filter((h) => !seenHeadings.has(h)),
    emptyButDeclared,
  };
}
