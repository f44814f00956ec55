/**
 * The simulator stage's public door: a physically plausible dual-energy MeV cargo portal (trucks, goods, threats,
 * declarations, detector), a portal client speaking protocol v1, a multi-portal load generator and a disk writer.
 */
export { Rng, hashSeed, POISSON_EXACT_MAX_MEAN } from './random.js';
export {
  ATTENUATION_ANCHORS,
  EFFECTIVE_ENERGY_MEV,
  Energy,
  MATERIALS,
  MATERIAL_IDS,
  energyRatio,
  linearAttenuation,
  massAttenuation,
  rayAttenuation,
  slabAttenuation,
  type AttenuationAnchor,
  type Material,
  type MaterialId,
  type RayPath,
} from './physics.js';
export {
  DEFAULT_DETECTOR_OPTIONS,
  airSignal,
  createDetector,
  detectorInfo,
  pixelCentreHeight,
  pixelCoordinate,
  toWire,
  valuesPerLine,
  type Detector,
  type DetectorOptions,
} from './detector.js';
export { SceneBuilder, type Primitive, type PrimitiveTag } from './primitives.js';
export { BODY_LENGTH_RANGE_MM, DEFAULT_BODY_LENGTH_MM, VEHICLE_KINDS, type CargoBay, type VehicleKind } from './vehicle.js';
export { CARGO_CATEGORIES, CARGO_CATEGORY_INFO, DEFAULT_CARGO_MIX, type CargoCategory, type CargoCategoryInfo } from './cargo.js';
export { THREAT_KINDS, type ThreatKind } from './threats.js';
export {
  DEFAULT_TRUCK_OPTIONS,
  declarationMessage,
  generateStepWedge,
  generateTruck,
  lineAt,
  sceneFromPrimitives,
  vehicleInfo,
  xOfLine,
  type CargoSegmentTruth,
  type CustomSceneOptions,
  type DeclarationTruth,
  type GenerateTruckOptions,
  type Scene,
  type StepWedgeOptions,
  type StepWedgeStep,
  type ThreatTruth,
  type VehicleSummary,
} from './scene.js';
export { renderAir, renderDark, renderLines, trueAttenuation, trueAttenuationLines } from './render.js';
export { truthLabels, type CargoSegmentLabel, type ThreatLabel, type TruthLabels } from './truth.js';
export {
  DEFAULT_PORTAL_CLIENT_OPTIONS,
  PortalClient,
  type CalibrationFrames,
  type FrameSent,
  type PortalClientOptions,
  type PortalClientStats,
  type ScanOptions,
  type ScanResult,
  type SimLog,
  type SimLogLevel,
} from './portal-client.js';
export {
  DEFAULT_SIMULATION_OPTIONS,
  abortableDelay,
  simulatePortals,
  type SimulatePortalsOptions,
  type SimulatedScan,
  type SimulationFailure,
  type SimulationSummary,
} from './simulate.js';
export { writeScanToDisk, type WriteScanOptions, type WrittenScan } from './write-scan.js';
export { FOREIGN_SCANNER_PROFILES, foreignScannerTransform, type ForeignScannerProfile, type ImageSliceTransform } from './foreign-scanner.js';
export {
  REALISM_LEVELS,
  hardDetectorOptions,
  realismDetectorOptions,
  type Concealment,
  type Realism,
} from './realism.js';
