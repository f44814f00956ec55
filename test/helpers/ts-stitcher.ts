/**
 * The pure-TypeScript stitcher: the reference implementation of src/stitch/types.ts, the test oracle for the
 * native addon and the benchmark baseline. Clear rather than fast. Job planning (frontier, gaps, tile columns,
 * preview strips) is native/stitcher.cc's BeginJob line for line; the pixel work is the plain definition: calibrated
 * lines go to a window (ring) of full-resolution lines, and tiles and strips are block averages read from it. The
 * maths is double precision with Math.log (the addon: float with a polynomial log), hence the 1e-4 tolerance.
 *
 * Threads: everything runs on the calling thread. process() plans the job synchronously (like the native
 * BeginJob), then yields once to the event loop before doing the pixel work, so pushes made "during" a job and
 * STITCH_BUSY behave as with the addon.
 */
import { type ErrorCode, invalidArgument, ScanlineError } from '../../src/errors/index.js';
import {
  PREVIEW_GAP_COLOUR,
  PREVIEW_PALETTE,
  type PreviewStrip,
  type ProcessBuffers,
  type ProcessResult,
  previewBytesOf,
  type PushResult,
  nativeStitcher,
  type Stitcher,
  type StitcherFactory,
  type StitcherOptions,
  type StitcherStats,
  type TileInfo,
  tileFloatsOf,
  tileRowPixels,
} from '../../src/stitch/index.js';

interface DeadPixelFix {
  pixel: number;
  /** Live neighbour below (or the only one); -1 when the energy has no live pixel. */
  left: number;
  right: number;
  leftWeight: number;
  rightWeight: number;
}

interface Segment {
  start: number;
  end: number;
  gap: boolean;
}

interface TileSpec {
  line: number;
  pixel: number;
  validLines: number;
}

interface PlannedJob {
  start: number;
  end: number;
  segments: Segment[];
  gaps: Array<[number, number]>;
  tiles: TileInfo[];
  specs: TileSpec[];
  preview: PreviewStrip | null;
  more: boolean;
  done: boolean;
  tilesOut: Float32Array;
  previewOut: Uint8Array;
}

function fail(code: ErrorCode, message: string): never {
  throw new ScanlineError(code, message);
}

function integerArg(value: unknown, name: string, code: ErrorCode): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw invalidArgument(code, 'an integer', name, value);
  return value;
}

function median(values: Float64Array): number {
  const n = values.length;
  if (n === 0) return 0;
  const sorted = Float64Array.from(values).sort();
  return n % 2 === 1 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/** Material class of one sample (R = low / high >= t compared as low >= t * high, as in native/calibration.h). */
export function classifyMaterial(high: number, low: number, options: StitcherOptions): number {
  const m = options.material;
  if (high < m.minAttenuation) return 0;
  if (high > m.maxAttenuation) return 5;
  const [t0, t1, t2] = m.ratioThresholds;
  if (low >= t0 * high) return 1;
  if (low >= t1 * high) return 2;
  if (low >= t2 * high) return 3;
  return 4;
}

/** Per-pixel calibration, fixed once per scan (see native/calibration.h for the definitions). */
class Calibration {
  readonly dark: Float64Array;
  readonly lnAirDark: Float64Array;
  readonly fixes: DeadPixelFix[][] = [];
  readonly deadPixels: number;

  constructor(
    readonly pixels: number,
    readonly energies: number,
    dark: Float64Array,
    air: Float64Array,
    deadPixelFraction: number,
    readonly attenuationMax: number,
  ) {
    this.dark = dark;
    this.lnAirDark = new Float64Array(pixels * energies);
    let deadPixels = 0;
    for (let e = 0; e < energies; e++) {
      const base = e * pixels;
      const airDark = new Float64Array(pixels);
      for (let p = 0; p < pixels; p++) airDark[p] = air[base + p] - dark[base + p];
      const threshold = deadPixelFraction * median(airDark);
      const dead = new Uint8Array(pixels);
      for (let p = 0; p < pixels; p++) {
        dead[p] = !(airDark[p] > 0) || airDark[p] < threshold ? 1 : 0;
        this.lnAirDark[base + p] = dead[p] ? 0 : Math.log(airDark[p]);
      }
      const fixes: DeadPixelFix[] = [];
      for (let p = 0; p < pixels; p++) {
        if (!dead[p]) continue;
        deadPixels++;
        let left = p - 1;
        while (left >= 0 && dead[left]) left--;
        let right = p + 1;
        while (right < pixels && dead[right]) right++;
        if (right >= pixels) right = -1;
        if (left >= 0 && right >= 0) {
          fixes.push({ pixel: p, left, right, leftWeight: (right - p) / (right - left), rightWeight: (p - left) / (right - left) });
        } else {
          const only = left >= 0 ? left : right; // -1 when no pixel is live
          fixes.push({ pixel: p, left: only, right: only, leftWeight: 1, rightWeight: 0 });
        }
      }
      this.fixes.push(fixes);
    }
    this.deadPixels = deadPixels;
  }

  /** Attenuation of one raw line (energies * pixels at raw[offset..]) into out[outOffset..]. */
  calibrateLine(raw: Uint16Array, offset: number, out: Float32Array | Float64Array, outOffset: number): void {
    const { pixels, attenuationMax } = this;
    for (let e = 0; e < this.energies; e++) {
      const base = e * pixels;
      for (let p = 0; p < pixels; p++) {
        const x = raw[offset + base + p] - this.dark[base + p];
        out[outOffset + base + p] = x > 0 ? Math.min(Math.max(this.lnAirDark[base + p] - Math.log(x), 0), attenuationMax) : attenuationMax;
      }
      for (const fix of this.fixes[e]) {
        out[outOffset + base + fix.pixel] =
          fix.left < 0 ? 0 : Math.min(fix.leftWeight * out[outOffset + base + fix.left] + fix.rightWeight * out[outOffset + base + fix.right], attenuationMax);
      }
    }
  }

  memoryBytes(): number {
    let fixes = 0;
    for (const f of this.fixes) fixes += f.length * 20;
    return this.pixels * this.energies * 12 + fixes;
  }
}

export class TsStitcher implements Stitcher {
  readonly options: Readonly<StitcherOptions>;
  readonly tileFloats: number;
  readonly previewBytes: number;

  readonly #lineSamples: number;
  readonly #span: number;
  readonly #ringLines: number;
  readonly #tileRows: number[];

  // Raw store: chunk table sized for maxLines up front; chunks allocated on first write.
  #chunks: Array<Uint16Array | undefined>;
  #chunksAllocated = 0;
  #stored: Uint8Array;
  #gapFlag: Uint8Array;
  #storedLines = 0;
  #highestLine = 0;
  #duplicateLines = 0;
  #lateLines = 0;
  #imageSeen = false;

  #darkSum: Float64Array;
  #airSum: Float64Array;
  #darkCount = 0;
  #airCount = 0;
  #calibration: Calibration | null = null;

  #finished = false;
  #totalLines = 0;
  #frontier = 0;
  #gapUntil = 0;
  #gapLines = 0;

  #nextColumn = 0;
  #hasColumn = false;
  #columnLine = 0;
  #columnLines = 0;
  #columnRow = 0;
  #lastColumnLine = -1;
  #finalDone = false;
  #tilesEmitted = 0;

  #previewEnd = 0;

  #ring = new Float32Array(0);
  #busy = false;
  #closed = false;
  #closePending = false;

  /** `options` must come from validateStitcherOptions. */
  constructor(options: StitcherOptions) {
    this.options = options;
    const o = options;
    this.#lineSamples = o.energies * o.pixels;
    this.#span = o.tile.size * o.tile.downsample;
    this.tileFloats = tileFloatsOf(o);
    this.previewBytes = previewBytesOf(o);
    this.#ringLines = this.#span + o.maxLinesPerJob + o.previewDownsample;
    this.#tileRows = tileRowPixels(o.pixels, this.#span, o.tile.overlapPixels);
    this.#chunks = new Array<Uint16Array | undefined>(Math.ceil(o.maxLines / o.chunkLines)).fill(undefined);
    this.#stored = new Uint8Array(o.maxLines);
    this.#gapFlag = new Uint8Array(o.maxLines);
    this.#darkSum = new Float64Array(this.#lineSamples);
    this.#airSum = new Float64Array(this.#lineSamples);
  }

  #assertOpen(): void {
    if (this.#closed) fail('SCANLINE_ERR_STITCH_CLOSED', 'the stitcher was closed; create a new one for the next scan');
  }

  #chunkOf(line: number): Uint16Array {
    return this.#chunks[Math.floor(line / this.options.chunkLines)] as Uint16Array;
  }

  #lineOffset(line: number): number {
    return (line % this.options.chunkLines) * this.#lineSamples;
  }

  #lineEquals(line: number, payload: Uint16Array, offset: number): boolean {
    const chunk = this.#chunkOf(line);
    const base = this.#lineOffset(line);
    for (let i = 0; i < this.#lineSamples; i++) if (chunk[base + i] !== payload[offset + i]) return false;
    return true;
  }

  push(kind: 1 | 2 | 3, firstLine: number, lineCount: number, payload: Uint16Array): PushResult {
    this.#assertOpen();
    integerArg(kind, 'kind', 'SCANLINE_ERR_SLICE_HEADER');
    integerArg(firstLine, 'firstLine', 'SCANLINE_ERR_SLICE_LINE_RANGE');
    integerArg(lineCount, 'lineCount', 'SCANLINE_ERR_SLICE_LINE_RANGE');
    if (!(payload instanceof Uint16Array)) {
      throw invalidArgument('SCANLINE_ERR_STITCH_BUFFER', 'a Uint16Array', 'payload', payload);
    }
    if (kind < 1 || kind > 3) fail('SCANLINE_ERR_SLICE_HEADER', `Expected 1, 2 or 3 for kind but received ${kind}`);
    if (firstLine < 0 || lineCount < 0) {
      fail('SCANLINE_ERR_SLICE_LINE_RANGE', `slice lines [${firstLine}, ${firstLine + lineCount}) are not valid`);
    }
    const o = this.options;
    const expected = lineCount * this.#lineSamples;
    if (payload.length !== expected) {
      fail(
        'SCANLINE_ERR_SLICE_SIZE',
        `slice payload has ${payload.length} samples, expected ${lineCount} lines x ${o.energies} energies x ` + `${o.pixels} pixels = ${expected}`,
      );
    }
    if (kind !== 1) {
      if (this.#imageSeen || this.#calibration || this.#finished) {
        fail('SCANLINE_ERR_SLICE_CALIBRATION_LATE', `${kind === 2 ? 'dark' : 'air'} frame received after image slices of the scan`);
      }
      const sum = kind === 2 ? this.#darkSum : this.#airSum;
      for (let l = 0; l < lineCount; l++) {
        for (let i = 0; i < this.#lineSamples; i++) sum[i] += payload[l * this.#lineSamples + i];
      }
      if (kind === 2) this.#darkCount += lineCount;
      else this.#airCount += lineCount;
      return { newLines: lineCount, duplicateLines: 0 };
    }
    const limit = this.#finished ? this.#totalLines : o.maxLines;
    if (firstLine + lineCount > limit) {
      fail(
        'SCANLINE_ERR_SLICE_LINE_RANGE',
        `slice lines [${firstLine}, ${firstLine + lineCount}) exceed the scan's ${limit} lines${this.#finished ? ' (finish() was called)' : ' (maxLines)'}`,
      );
    }
    for (let i = 0; i < lineCount; i++) {
      const l = firstLine + i;
      if (this.#stored[l] && !this.#lineEquals(l, payload, i * this.#lineSamples)) {
        fail('SCANLINE_ERR_SLICE_REPLAY_MISMATCH', `line ${l} was already stored with different values`);
      }
    }
    const declared = Math.max(this.#frontier, this.#gapUntil);
    const result: PushResult = { newLines: 0, duplicateLines: 0 };
    for (let i = 0; i < lineCount; i++) {
      const l = firstLine + i;
      if (this.#stored[l]) {
        result.duplicateLines++;
        continue;
      }
      const c = Math.floor(l / o.chunkLines);
      if (!this.#chunks[c]) {
        this.#chunks[c] = new Uint16Array(o.chunkLines * this.#lineSamples);
        this.#chunksAllocated++;
      }
      this.#chunkOf(l).set(payload.subarray(i * this.#lineSamples, (i + 1) * this.#lineSamples), this.#lineOffset(l));
      this.#stored[l] = 1;
      result.newLines++;
      if (l < declared) this.#lateLines++;
      this.#highestLine = Math.max(this.#highestLine, l + 1);
    }
    this.#storedLines += result.newLines;
    this.#duplicateLines += result.duplicateLines;
    if (lineCount > 0) this.#imageSeen = true;
    return result;
  }

  finish(totalLines: number): void {
    this.#assertOpen();
    integerArg(totalLines, 'totalLines', 'SCANLINE_ERR_SLICE_LINE_RANGE');
    if (totalLines < this.#highestLine || totalLines > this.options.maxLines) {
      fail(
        'SCANLINE_ERR_SLICE_LINE_RANGE',
        `totalLines ${totalLines} must be within [${this.#highestLine}, ${this.options.maxLines}] (stored lines .. maxLines)`,
      );
    }
    if (this.#finished) {
      if (totalLines === this.#totalLines) return;
      fail('SCANLINE_ERR_SLICE_LINE_RANGE', `finish() was already called with totalLines ${this.#totalLines}`);
    }
    this.#finished = true;
    this.#totalLines = totalLines;
  }

  #calibrationReady(): boolean {
    if (this.#airCount > 0 || this.#finished) return true;
    const a = Math.min(this.options.airLines, this.options.maxLines);
    for (let l = a - 1; l >= 0; l--) {
      if (!this.#stored[l]) return this.#highestLine - l > this.options.reorderWindowLines;
    }
    return true;
  }

  #fixCalibrationIfReady(): void {
    if (this.#calibration || !(this.#storedLines > 0 || this.#finished) || !this.#calibrationReady()) return;
    const n = this.#lineSamples;
    const dark = new Float64Array(n);
    const air = new Float64Array(n);
    if (this.#darkCount > 0) for (let i = 0; i < n; i++) dark[i] = this.#darkSum[i] / this.#darkCount;
    if (this.#airCount > 0) {
      for (let i = 0; i < n; i++) air[i] = this.#airSum[i] / this.#airCount;
    } else {
      const sum = new Float64Array(n);
      let count = 0;
      const a = Math.min(this.options.airLines, this.options.maxLines);
      for (let l = 0; l < a; l++) {
        if (!this.#stored[l]) continue;
        const chunk = this.#chunkOf(l);
        const base = this.#lineOffset(l);
        for (let i = 0; i < n; i++) sum[i] += chunk[base + i];
        count++;
      }
      for (let i = 0; i < n; i++) air[i] = count > 0 ? sum[i] / count : 65535;
    }
    const o = this.options;
    this.#calibration = new Calibration(o.pixels, o.energies, dark, air, o.deadPixelFraction, o.attenuationMax);
    this.#ring = new Float32Array(this.#ringLines * n);
  }

  async process(buffers: ProcessBuffers): Promise<ProcessResult> {
    this.#assertOpen();
    const tiles = buffers?.tiles;
    const preview = buffers?.preview;
    if (!(tiles instanceof Float32Array)) throw invalidArgument('SCANLINE_ERR_STITCH_BUFFER', 'a Float32Array', 'tiles', tiles);
    if (!(preview instanceof Uint8Array)) {
      throw invalidArgument('SCANLINE_ERR_STITCH_BUFFER', 'a Uint8Array', 'preview', preview);
    }
    const job = this.#beginJob(tiles, preview);
    try {
      await new Promise<void>((resolve) => setImmediate(resolve));
      this.#execute(job);
    } finally {
      this.#busy = false;
      if (this.#closePending) this.#free();
    }
    return {
      calibrated: [job.start, job.end],
      frontier: job.end,
      gaps: job.gaps,
      tiles: job.tiles,
      preview: job.preview,
      more: job.more,
      done: job.done,
    };
  }

  /** All bookkeeping of one job, on the calling thread (mirrors Stitcher::BeginJob). */
  #beginJob(tilesOut: Float32Array, previewOut: Uint8Array): PlannedJob {
    if (this.#busy) fail('SCANLINE_ERR_STITCH_BUSY', 'a processing job is already running on this stitcher');
    if (tilesOut.length < this.tileFloats) {
      fail('SCANLINE_ERR_STITCH_BUFFER', `tiles buffer holds ${tilesOut.length} floats, at least one tile (${this.tileFloats} floats) is needed`);
    }
    if (previewOut.length < this.previewBytes) {
      fail('SCANLINE_ERR_STITCH_BUFFER', `preview buffer holds ${previewOut.length} bytes, previewBytes is ${this.previewBytes}`);
    }
    this.#fixCalibrationIfReady();
    const o = this.options;
    const job: PlannedJob = {
      start: this.#frontier,
      end: this.#frontier,
      segments: [],
      gaps: [],
      tiles: [],
      specs: [],
      preview: null,
      more: false,
      done: false,
      tilesOut,
      previewOut,
    };
    const endLimit = this.#finished ? this.#totalLines : o.maxLines;
    const window = o.reorderWindowLines;
    let moreLines = false;
    if (this.#calibration) {
      const old = this.#frontier;
      let ringStart = Math.min(this.#previewEnd, Math.max(0, old - this.#span));
      if (this.#hasColumn) ringStart = Math.min(ringStart, this.#columnLine);
      else if (!this.#finalDone) ringStart = Math.min(ringStart, this.#nextColumn * o.tile.strideLines);
      const limit = Math.min(old + o.maxLinesPerJob, ringStart + this.#ringLines, endLimit);
      let f = old;
      while (f < limit) {
        if (f < this.#gapUntil) {
          const g = Math.min(this.#gapUntil, limit);
          job.segments.push({ start: f, end: g, gap: true });
          this.#gapFlag.fill(1, f, g);
          f = g;
        } else if (this.#stored[f]) {
          let g = f;
          while (g < limit && this.#stored[g]) g++;
          job.segments.push({ start: f, end: g, gap: false });
          f = g;
        } else if (this.#finished || this.#highestLine - f > window) {
          let g = f + 1;
          while (g < endLimit && !this.#stored[g]) g++;
          this.#gapUntil = g;
          this.#gapLines += g - f;
          job.gaps.push([f, g]);
        } else {
          break;
        }
      }
      this.#frontier = f;
      job.end = f;
      moreLines = f < endLimit && (f < this.#gapUntil || this.#stored[f] === 1 || this.#finished || this.#highestLine - f > window);
    }

    const tilesPending = this.#planTiles(job, Math.floor(tilesOut.length / this.tileFloats));

    const d = o.previewDownsample;
    const atEnd = this.#finished && this.#frontier === this.#totalLines;
    const target = atEnd ? this.#totalLines : Math.floor(this.#frontier / d) * d;
    // The frontier moves at most maxLinesPerJob lines per job, so the strip is at most ceil(maxLinesPerJob / d) + 1
    // samples wide: previewBytes always suffices.
    const p1 = target;
    if (p1 > this.#previewEnd) {
      const lines = p1 - this.#previewEnd;
      job.preview = { line: this.#previewEnd, lines, width: Math.ceil(lines / d), height: Math.ceil(o.pixels / d) };
      this.#previewEnd = p1;
    }
    job.more = moreLines || tilesPending;
    job.done = atEnd && this.#finalDone && !this.#hasColumn && this.#previewEnd === this.#totalLines;
    this.#tilesEmitted += job.tiles.length;
    this.#busy = true;
    return job;
  }

  /** Returns true when tiles are ready but the buffer is full (mirrors Stitcher::PlanTiles). */
  #planTiles(job: PlannedJob, capacity: number): boolean {
    const span = this.#span;
    const stride = this.options.tile.strideLines;
    for (;;) {
      if (this.#hasColumn) {
        while (this.#columnRow < this.#tileRows.length && job.tiles.length < capacity) {
          const pixel = this.#tileRows[this.#columnRow++];
          job.tiles.push({
            slot: job.tiles.length,
            line: this.#columnLine,
            pixel,
            lines: this.#columnLines,
            pixels: Math.min(span, this.options.pixels),
          });
          job.specs.push({ line: this.#columnLine, pixel, validLines: this.#columnLines });
        }
        if (this.#columnRow < this.#tileRows.length) return true;
        this.#hasColumn = false;
      }
      const c = this.#nextColumn * stride;
      if (c + span <= this.#frontier) {
        this.#startColumn(c, span);
        this.#nextColumn++;
        continue;
      }
      if (this.#finished && this.#frontier === this.#totalLines && !this.#finalDone) {
        this.#finalDone = true;
        const t = this.#totalLines;
        if (t > 0 && (this.#lastColumnLine < 0 || this.#lastColumnLine + span < t)) {
          this.#startColumn(Math.max(0, t - span), Math.min(span, t));
          continue;
        }
      }
      return false;
    }
  }

  #startColumn(line: number, lines: number): void {
    this.#hasColumn = true;
    this.#columnLine = line;
    this.#columnLines = lines;
    this.#columnRow = 0;
    this.#lastColumnLine = line;
  }

  #ringOffset(line: number): number {
    return (line % this.#ringLines) * this.#lineSamples;
  }

  /** The pixel work of a planned job (the native worker thread's part). */
  #execute(job: PlannedJob): void {
    const calibration = this.#calibration;
    const n = this.#lineSamples;
    for (const s of job.segments) {
      for (let l = s.start; l < s.end; l++) {
        const at = this.#ringOffset(l);
        if (s.gap || !calibration) this.#ring.fill(0, at, at + n);
        else calibration.calibrateLine(this.#chunkOf(l), this.#lineOffset(l), this.#ring, at);
      }
    }
    for (let i = 0; i < job.specs.length; i++) this.#computeTile(job.specs[i], job.tilesOut, i * this.tileFloats);
    if (job.preview) this.#computePreview(job.preview, job.previewOut);
  }

  #computeTile(spec: TileSpec, out: Float32Array, outOffset: number): void {
    const { size, downsample: ds } = this.options.tile;
    const { pixels, energies } = this.options;
    const acc = new Float64Array(size);
    for (let e = 0; e < energies; e++) {
      for (let w = 0; w < size; w++) {
        acc.fill(0);
        for (let j = 0; j < ds; j++) {
          const offset = w * ds + j;
          if (offset >= spec.validLines) break;
          const row = this.#ringOffset(spec.line + offset) + e * pixels;
          for (let h = 0; h < size; h++) {
            let s = 0;
            for (let i = 0; i < ds; i++) {
              const p = spec.pixel + h * ds + i;
              if (p < pixels) s += this.#ring[row + p];
            }
            acc[h] += s;
          }
        }
        for (let h = 0; h < size; h++) out[outOffset + (e * size + h) * size + w] = acc[h] / (ds * ds);
      }
    }
  }

  #computePreview(strip: PreviewStrip, out: Uint8Array): void {
    const o = this.options;
    const d = o.previewDownsample;
    const pixels = o.pixels;
    const dual = o.energies === 2;
    const end = strip.line + strip.lines;
    const sumHigh = new Float64Array(strip.height);
    const sumLow = new Float64Array(strip.height);
    for (let x = 0; x < strip.width; x++) {
      const l0 = strip.line + x * d;
      const l1 = Math.min(l0 + d, end);
      let gap = false;
      for (let l = l0; l < l1; l++) gap ||= this.#gapFlag[l] === 1;
      if (gap) {
        for (let y = 0; y < strip.height; y++) {
          out.set([...PREVIEW_GAP_COLOUR, 255], (y * strip.width + x) * 4);
        }
        continue;
      }
      sumHigh.fill(0);
      sumLow.fill(0);
      for (let l = l0; l < l1; l++) {
        const high = this.#ringOffset(l);
        const low = dual ? high + pixels : high;
        for (let y = 0; y < strip.height; y++) {
          for (let p = y * d; p < Math.min((y + 1) * d, pixels); p++) {
            sumHigh[y] += this.#ring[high + p];
            sumLow[y] += this.#ring[low + p];
          }
        }
      }
      for (let y = 0; y < strip.height; y++) {
        const n = (l1 - l0) * (Math.min((y + 1) * d, pixels) - y * d);
        previewColour(sumHigh[y] / n, sumLow[y] / n, dual, o, out, (y * strip.width + x) * 4);
      }
    }
  }

  #checkReadRange(firstLine: number, lineCount: number): void {
    integerArg(firstLine, 'firstLine', 'SCANLINE_ERR_SLICE_LINE_RANGE');
    integerArg(lineCount, 'lineCount', 'SCANLINE_ERR_SLICE_LINE_RANGE');
    if (firstLine < 0 || lineCount < 0 || firstLine + lineCount > this.options.maxLines) {
      fail('SCANLINE_ERR_SLICE_LINE_RANGE', `Expected lines within [0, ${this.options.maxLines}) but received [${firstLine}, ${firstLine + lineCount})`);
    }
  }

  #requireCalibration(): Calibration {
    this.#fixCalibrationIfReady();
    if (!this.#calibration) {
      fail('SCANLINE_ERR_IMAGE_UNAVAILABLE', 'calibration is not ready yet (waiting for air lines or an air frame)');
    }
    return this.#calibration;
  }

  readRaw(firstLine: number, lineCount: number, out: Uint16Array): void {
    this.#assertOpen();
    this.#checkReadRange(firstLine, lineCount);
    if (!(out instanceof Uint16Array)) throw invalidArgument('SCANLINE_ERR_STITCH_BUFFER', 'a Uint16Array', 'out', out);
    const n = this.#lineSamples;
    if (out.length < lineCount * n) {
      fail('SCANLINE_ERR_STITCH_BUFFER', `readRaw output holds ${out.length} samples, ${lineCount * n} needed`);
    }
    for (let i = 0; i < lineCount; i++) {
      const l = firstLine + i;
      if (this.#stored[l]) {
        const base = this.#lineOffset(l);
        out.set(this.#chunkOf(l).subarray(base, base + n), i * n);
      } else {
        out.fill(0, i * n, (i + 1) * n);
      }
    }
  }

  missingRanges(firstLine: number, lineCount: number): Array<[number, number]> {
    this.#assertOpen();
    this.#checkReadRange(firstLine, lineCount);
    const ranges: Array<[number, number]> = [];
    let start = -1;
    for (let l = firstLine; l < firstLine + lineCount; l++) {
      if (!this.#stored[l] && start < 0) start = l;
      if (this.#stored[l] && start >= 0) {
        ranges.push([start, l]);
        start = -1;
      }
    }
    if (start >= 0) ranges.push([start, firstLine + lineCount]);
    return ranges;
  }

  readAttenuation(energy: number, firstLine: number, lineCount: number, out: Float32Array): void {
    this.#assertOpen();
    integerArg(energy, 'energy', 'SCANLINE_ERR_SLICE_GEOMETRY');
    if (energy < 0 || energy >= this.options.energies) {
      fail('SCANLINE_ERR_SLICE_GEOMETRY', `Expected an energy index 0..${this.options.energies - 1} but received ${energy}`);
    }
    this.#checkReadRange(firstLine, lineCount);
    if (!(out instanceof Float32Array)) throw invalidArgument('SCANLINE_ERR_STITCH_BUFFER', 'a Float32Array', 'out', out);
    const pixels = this.options.pixels;
    if (out.length < lineCount * pixels) {
      fail('SCANLINE_ERR_STITCH_BUFFER', `readAttenuation output holds ${out.length} floats, ${lineCount * pixels} needed`);
    }
    this.#eachCalibratedLine(firstLine, lineCount, out, (i, line) => out.set(line.subarray(energy * pixels, (energy + 1) * pixels), i * pixels));
  }

  readMaterial(firstLine: number, lineCount: number, out: Uint8Array): void {
    this.#assertOpen();
    if (this.options.energies !== 2) fail('SCANLINE_ERR_SLICE_GEOMETRY', 'readMaterial needs a dual-energy scan (energies is 1)');
    this.#checkReadRange(firstLine, lineCount);
    if (!(out instanceof Uint8Array)) throw invalidArgument('SCANLINE_ERR_STITCH_BUFFER', 'a Uint8Array', 'out', out);
    const pixels = this.options.pixels;
    if (out.length < lineCount * pixels) {
      fail('SCANLINE_ERR_STITCH_BUFFER', `readMaterial output holds ${out.length} bytes, ${lineCount * pixels} needed`);
    }
    this.#eachCalibratedLine(firstLine, lineCount, out, (i, line) => {
      for (let p = 0; p < pixels; p++) out[i * pixels + p] = classifyMaterial(line[p], line[pixels + p], this.options);
    });
  }

  /** Calls `visit` with each stored line calibrated (all energies); rows of `out` for lines never stored read 0. */
  #eachCalibratedLine(firstLine: number, lineCount: number, out: Float32Array | Uint8Array, visit: (i: number, line: Float64Array) => void): void {
    const pixels = this.options.pixels;
    const calibration = this.#requireCalibration();
    const line = new Float64Array(this.#lineSamples);
    for (let i = 0; i < lineCount; i++) {
      const l = firstLine + i;
      if (!this.#stored[l]) {
        out.fill(0, i * pixels, (i + 1) * pixels);
        continue;
      }
      calibration.calibrateLine(this.#chunkOf(l), this.#lineOffset(l), line, 0);
      visit(i, line);
    }
  }

  stats(): StitcherStats {
    this.#assertOpen();
    const o = this.options;
    const chunkBytes = o.chunkLines * this.#lineSamples * 2;
    const memoryBytes =
      this.#chunksAllocated * chunkBytes +
      this.#chunks.length * 8 +
      this.#stored.length +
      this.#gapFlag.length +
      this.#lineSamples * 2 * 8 +
      this.#ring.byteLength +
      (this.#calibration ? this.#calibration.memoryBytes() : 0);
    return {
      storedLines: this.#storedLines,
      highestLine: this.#highestLine,
      frontier: this.#frontier,
      gapLines: this.#gapLines,
      lateLines: this.#lateLines,
      duplicateLines: this.#duplicateLines,
      calibrated: this.#calibration !== null,
      deadPixels: this.#calibration ? this.#calibration.deadPixels : 0,
      tilesEmitted: this.#tilesEmitted,
      memoryBytes,
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#busy) this.#closePending = true;
    else this.#free();
  }

  #free(): void {
    this.#chunks = [];
    this.#ring = new Float32Array(0);
    this.#calibration = null;
    this.#closePending = false;
  }
}

/** RGBA of one preview sample into out[offset..offset + 4) (palette: PREVIEW_PALETTE). */
export function previewColour(high: number, low: number, dual: boolean, options: StitcherOptions, out: Uint8Array, offset: number): void {
  const m = options.material.maxAttenuation;
  const s = 0.15 + 0.85 * (1 - Math.min(Math.max(high, 0), m) / m);
  out[offset + 3] = 255;
  if (!dual) {
    out[offset] = out[offset + 1] = out[offset + 2] = Math.floor(255 * s + 0.5);
    return;
  }
  const cls = classifyMaterial(high, low, options);
  const base = PREVIEW_PALETTE[cls];
  for (let c = 0; c < 3; c++) out[offset + c] = cls === 5 ? base[c] : Math.floor(base[c] * s + 0.5);
}

/** Which stitcher a test or benchmark runs: the production addon or this reference. */
export type StitcherImplementation = 'native' | 'typescript';

/** The reference as a StitcherFactory (createStitcher's second argument, the gateway's `stitcher` option). */
export const tsStitcher: StitcherFactory = (options) => new TsStitcher(options);

/** The factory of a StitcherImplementation. */
export function stitcherOf(implementation: StitcherImplementation): StitcherFactory {
  return implementation === 'native' ? nativeStitcher : tsStitcher;
}
