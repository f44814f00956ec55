/**
 * Image statistics of a raw tile that describe the scanner more than the cargo (image-features.ts). Their own folder
 * with no imports: the inference workers compute them beside the model (src/inference), the opinion stage scores
 * them (src/opinion), and the fitting tool fits them (tools/fit), all with this one implementation.
 */
export { IMAGE_FEATURE_COUNT, IMAGE_FEATURES, tileImageFeatures } from './image-features.js';
