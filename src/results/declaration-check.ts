/**
 * Declaration check: the HS codes a driver declared against the goods the image suggests (the main customs use:
 * declared timber, image looks like cigarettes). Codes are compared on their 4-digit HS heading, so a declared
 * 6- or 10-digit subheading matches the category's heading.
 */
import type { SuggestionSegment } from './goods-suggestions.js';

export interface DeclarationCheck {
  /**
   * unknown: no declaration came with the scan, or nothing is suggested yet; match: every suggested goods category
   * is declared (a declaration with no codes declares an empty vehicle); mismatch: some are not, or goods were
   * declared and the image shows only an empty cargo bay (`emptyButDeclared`).
   */
  status: 'unknown' | 'match' | 'mismatch';
  declared: string[];
  /** Suggested categories whose headings are not declared: the finding an officer needs. */
  undeclared: Array<{ label: string; name: string; hsCodes: string[]; lines: number; confidence: number }>;
  /** Declared headings no suggested category covers (informative: small consignments may hide behind others). */
  notSeen: string[];
  /** Goods were declared, but every suggestion is an empty cargo bay: the declared goods are not there. */
  emptyButDeclared: boolean;
}

const heading = (code: string): string => code.slice(0, 4);

export function checkDeclaration(declared: readonly string[] | null, segments: readonly SuggestionSegment[]): DeclarationCheck {
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
  const emptyButDeclared = declaredCodes.length > 0 && segments.length > 0 && seenHeadings.size === 0;
  const status = declared === null || segments.length === 0 ? 'unknown' : byLabel.size > 0 || emptyButDeclared ? 'mismatch' : 'match';
  return {
    status,
    declared: declaredCodes,
    undeclared: [...byLabel.values()],
    notSeen: [...declaredHeadings].filter((h) => !seenHeadings.has(h)),
    emptyButDeclared,
  };
}
