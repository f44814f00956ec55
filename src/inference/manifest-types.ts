/**
 * The model manifest (`models/<name>/model.json`): what a model expects and produces, so a customs service can drop
 * in its own trained model without code changes. Validated at start-up (inference/manifest.ts); a model whose ONNX
 * inputs or outputs do not match its manifest refuses to load. models/README.md documents the contract for people.
 */

export type ModelTask = 'goods' | 'threats';

export interface ModelFile {
  /** Path relative to the manifest's folder. */
  path: string;
  /** Lower-case hex sha256 of the file; checked at load. */
  sha256: string;
}

export interface ModelInput {
  /** ONNX input name. */
  name: string;
  /** [batch, channels, height, width]; batch is -1 (dynamic). */
  shape: [-1, number, number, number];
  dtype: 'float32';
  layout: 'NCHW';
  /** What each channel holds, in order; the stitcher's tiles carry attenuation per energy, high first. */
  channels: Array<'attenuation_high' | 'attenuation_low'>;
  /** Tile geometry the model was trained on; must equal the gateway's stitch.tile size and downsample. */
  tile: { size: number; downsample: number };
  /**
   * Applied by the gateway per channel before inference: x' = clamp((x - offset[c]) * scale[c], clampMin, clampMax).
   */
  normalization: { offset: number[]; scale: number[]; clampMin: number; clampMax: number };
}

/** What an output means; the results stage interprets outputs by meaning, not by name. */
export type OutputMeaning =
  /** goods: [batch, labels.length] unnormalised class scores (softmax is applied by the gateway). */
  | 'class_logits'
  /** goods: [batch, D] embedding, L2-normalised by the gateway, used for reference-sample matching. */
  | 'embedding'
  /** threats: [batch, labels.length, gh, gw] per-cell logits (sigmoid by the gateway); cells tile the input evenly. */
  | 'threat_heatmap_logits';

export interface ModelOutput {
  name: string;
  /** With -1 for the batch dimension. */
  shape: number[];
  dtype: 'float32';
  meaning: OutputMeaning;
}

export interface ModelLabel {
  /** Stable id used on the wire and in metrics, e.g. "timber", "firearm". */
  id: string;
  /** Human name for operator screens. */
  name: string;
  /** goods: HS headings this category covers (declaration check); threats: empty. */
  hsCodes: string[];
  /**
   * goods only: false for classes that are not cargo (e.g. "vehicle" structure, "air"): they never become a
   * suggestion and tiles predicted as such are not counted as cargo.
   */
  cargo?: boolean;
}

export interface ModelManifest {
  /** Manifest format version. */
  manifestVersion: 1;
  name: string;
  /** Semantic version of the trained model, reported with every result (DICOS algorithm version). */
  version: string;
  task: ModelTask;
  description: string;
  /** fp32 runs everywhere; fp16 is preferred on GPU execution providers when present. */
  files: { fp32: ModelFile; fp16?: ModelFile };
  input: ModelInput;
  outputs: ModelOutput[];
  labels: ModelLabel[];
  /**
   * goods: `suggest` = minimum top-1 probability for a suggestion segment;
   * threats: one threshold per threat label id = minimum cell probability for an alert.
   */
  thresholds: Record<string, number>;
  /** Provenance: how it was trained, for the record (seeds, recipe, date, metrics). */
  training?: Record<string, unknown>;
}
