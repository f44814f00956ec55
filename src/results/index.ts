/**
 * Results stage: turns per-tile model outputs into what an officer reads: goods suggestions along the vehicle,
 * threat alerts in scan coordinates, and the declaration check. Not wired into the gateway yet (issue 3).
 */
export { GoodsSuggestions, softmaxInto, type GoodsTile, type RankedCategory, type SuggestionSegment } from './goods-suggestions.js';
export { ThreatAlerts, type ScanBox, type ThreatAlert, type ThreatTile } from './threat-alerts.js';
export { checkDeclaration, type DeclarationCheck } from './declaration-check.js';
