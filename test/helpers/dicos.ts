/** DICOS fixtures the tests write with Scanline's own writer (src/dicos): an inspection and DX images of it. */
import { type DicosInspection, type DxEnergy, newUid, writeDx } from '../../src/dicos/index.js';

/** The identity of a test inspection; `overrides` replace fields. */
export function testInspection(overrides: Partial<DicosInspection> = {}): DicosInspection {
  const study = overrides.studyInstanceUid ?? newUid();
  return {
    studyInstanceUid: study,
    frameOfReferenceUid: `${study}.1`,
    scanId: 'test-export',
    ooiId: 'TEST 1',
    ooiIdType: 'TEXT',
    stationName: 'TEST-SCANNER',
    institution: null,
    manufacturer: 'vendor',
    modelName: 'model',
    softwareVersion: '1',
    deviceSerialNumber: '1',
    startedAt: new Date(),
    ...overrides,
  };
}

/** A DX For Processing of `rows` detector elements x `columns` lines; pixels from `fill(i)` (default a bright ramp). */
export function testDx(options: {
  energy: DxEnergy;
  rows: number;
  columns: number;
  inspection?: Partial<DicosInspection>;
  fill?: (i: number) => number;
  pixelSpacingMm?: number;
}): { bytes: Uint8Array; pixels: Uint16Array } {
  const { rows, columns } = options;
  const fill = options.fill ?? ((i: number) => 30_000 + ((i * 31) % 30_000));
  const pixels = new Uint16Array(rows * columns).map((_, i) => fill(i));
  const spacing = options.pixelSpacingMm ?? 5;
  const bytes = writeDx({
    inspection: testInspection(options.inspection),
    sopInstanceUid: newUid(),
    seriesInstanceUid: newUid(),
    seriesNumber: options.energy === 'low' ? 2 : 1,
    intent: 'FOR PROCESSING',
    energy: options.energy,
    rows,
    columns,
    pixels,
    pixelSpacingMm: [spacing, spacing],
    acquiredAt: new Date(),
  });
  return { bytes, pixels };
}
