/**
 * The fit stage's public door: `scanline fit-opinion` fits the goods temperature, the alert calibration and the
 * out-of-distribution statistics on simulator datasets and writes them into the model manifests.
 */
export { fitOpinion, plattScaling, reliability, type FitOpinionOptions, type FitOpinionResult, type Reliability } from './fit-opinion.js';
