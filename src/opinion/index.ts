/**
 * The opinion stage's public door: what makes the machine's advice honest. Calibrated probabilities, tile image
 * statistics, out-of-distribution scoring against the statistics a model's manifest carries, and triage.
 */
export { IMAGE_FEATURE_COUNT, IMAGE_FEATURES, tileImageFeatures } from '../image-stats/index.js';
export { OodModel, imageFeatureProblems, type TileOodScore } from './ood.js';
export { UNCALIBRATED_MAX_PROBABILITY, alertCalibration, inverseTemperature, maxProbability, segmentCalibration } from './calibration.js';
