/**
 * The dataset stage's public door: labelled tiles from simulated trucks through the gateway's own native stitcher
 * (`scanline dataset`), and the tile labelling rules shared with evaluation.
 */
export {
  DATASET_FILES,
  DATASET_FORMAT,
  DATASET_FORMAT_VERSION,
  exportDataset,
  simulatorFingerprint,
  type DatasetScanEntry,
  type DatasetSummary,
  type DatasetTileEntry,
  type ExportDatasetOptions,
} from './export.js';
export {
  GOODS_LABELS,
  GOODS_LABEL_RULES,
  NON_CARGO_LABELS,
  SceneRaster,
  THREAT_CELL_SAMPLES,
  THREAT_LABELS,
  TileLabeler,
  goodsLabelFromCounts,
  isCargoLabel,
  type GoodsLabel,
  type GoodsTileLabel,
  type TileGeometry,
  type TilePlacement,
} from './labels.js';
export {
  DATASET_SCAN_DEFAULTS,
  datasetDetectorSeed,
  gatewayStitchOptions,
  scanTruckTiles,
  type ScanTilesOptions,
  type ScannedTruck,
  type TileSink,
} from './scan-tiles.js';
