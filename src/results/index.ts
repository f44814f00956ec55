/**
 * Results stage: turns per-tile model outputs into what an officer reads: goods suggestions along the vehicle,
 * threat alerts in scan coordinates, and the declaration check.
 */
export { GoodsSuggestions, softmaxInto, type GoodsTile } from './goods-suggestions.js';
export { ThreatAlerts, logitThreshold, probabilityOf, type ThreatTile } from './threat-alerts.js';
export { checkDeclaration } from './declaration-check.js';
export { ScanResults, type DistributionChange, type ResultsChange, type ScanResultsInit, type TileChange } from './scan-results.js';
export { EnrolmentRegionSchema, EnrolmentRequestSchema, MAX_ENROLMENT_REGIONS, refineEnrolmentRequest, type EnrolmentRequest } from './enrolment.js';
export {
  LINE_TO_RESULT_BUCKETS_SECONDS,
  ResultsService,
  type ResultsListeners,
  type ResultsServiceOptions,
  type ResultsStats,
} from './results-service.js';
export {
  ReferenceLibrary,
  ReferenceSnapshot,
  normalizeL2,
  prototypeOf,
  type ReferenceCategory,
  type ReferenceMatch,
  type ReferenceSource,
} from './reference-library.js';
export {
  ReferenceChanges,
  type ReferenceActor,
  type ReferenceAudit,
  type ReferenceChangeOutcome,
  type ReferenceChangesOptions,
} from './reference-changes.js';
