/**
 * The part of dcmjs (https://github.com/dcmjs-org/dcmjs, no type declarations of its own) that Scanline uses: P10
 * read and write, and the dictionary that maps tags to keywords. Datasets are "denaturalized" (tag-keyed, the DICOM
 * JSON model: `{ '00280010': { vr: 'US', Value: [128] } }`) or "naturalized" (keyword-keyed, single values
 * unwrapped). Binary values (OB/OW/UN) are ArrayBuffers in `Value`.
 */
declare module 'dcmjs' {
  export interface DicomElement {
    vr: string;
    Value?: unknown[];
    InlineBinary?: string;
  }
  export type DenaturalizedDataset = Record<string, DicomElement>;
  export type NaturalizedDataset = Record<string, unknown> & { _vrMap?: Record<string, string> };
  export interface DictionaryEntry {
    tag: string;
    vr: string;
    vm: string;
    name: string;
    version: string;
  }
  export class DicomDict {
    constructor(meta: DenaturalizedDataset);
    meta: DenaturalizedDataset;
    dict: DenaturalizedDataset;
    /** The P10 byte stream (preamble, DICM, meta group, data set in the meta's transfer syntax). */
    write(options?: { allowInvalidVRLength?: boolean; fragmentMultiframe?: boolean }): ArrayBuffer;
  }
  export const data: {
    DicomDict: typeof DicomDict;
    DicomMessage: {
      readFile(buffer: ArrayBuffer, options?: { ignoreErrors?: boolean; untilTag?: string | null; forceStoreRaw?: boolean }): DicomDict;
    };
    DicomMetaDictionary: {
      dictionary: Record<string, DictionaryEntry | undefined>;
      nameMap: Record<string, DictionaryEntry | undefined>;
      _generateNameMap(): void;
      naturalizeDataset(dataset: DenaturalizedDataset): NaturalizedDataset;
      denaturalizeDataset(dataset: NaturalizedDataset): DenaturalizedDataset;
      punctuateTag(tag: string): string;
    };
  };
  export const log: { setLevel(level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'): void; getLogger(name: string): unknown };
  const dcmjs: { data: typeof data; log: typeof log };
  export default dcmjs;
}
