/**
 * The eval stage's public door: `scanline eval` streams held-out simulated trucks through a real gateway and
 * scores its machine results (goods top-1 per tile, threat recall and false alarms, declaration mismatches, time
 * to the first correct suggestion) against the simulator's ground truth.
 */
export { DEFAULT_EVAL_OPTIONS, TRAINING_SEEDS, httpBaseOf, runEval, type EvalOptions } from './run-eval.js';
export {
  FirstSuggestionTracker,
  goodsConfidencePairs,
  NO_SUGGESTION,
  SCORED_GOODS,
  boxesOverlap,
  scoreGoodsTiles,
  scoreSuggestionPlacement,
  scoreThreats,
  type FirstSuggestion,
  type GoodsCategoryScore,
  type SuggestionPlacement,
  type ThreatScore,
} from './scoring.js';
export {
  EVAL_TARGETS,
  formatEvalTable,
  percentile,
  summarise,
  type DeclarationStatus,
  type EvalFailure,
  type EvalRunInfo,
  type EvalSummary,
  type Percentiles,
  type ScanEval,
} from './summary.js';
export { tileGrid, type GridTile, type TileGridGeometry } from './tile-grid.js';
export { MISMATCH_KINDS, evalTruck, mismatchKind, type EvalTruck, type EvalTruckOptions, type MismatchKind } from './trucks.js';
