/**
 * Reference library: goods categories enrolled from reference tiles, without retraining (nearest-prototype
 * matching on the goods model's embedding), so the category list can grow like a customs service's does.
 *
 * - A reference category is a prototype: the L2-normalised mean of the L2-normalised embeddings of its sample tiles
 *   (tiles the goods model scored in regions of stored or live scans that an officer marked as this category).
 * - A tile matches the nearest prototype (cosine similarity) when the similarity reaches that reference's
 *   `minSimilarity`. A matching tile's cargo probability mass is split: `similarity` of it goes to the reference
 *   category, the rest stays with the model's categories. So a good match (similarity ≥ the suggest threshold)
 *   becomes the suggestion, with the similarity as its confidence, and the declaration check uses the reference's
 *   HS codes.
 * - Prototypes belong to one goods model (name): embeddings of another model live in another space and are ignored.
 * - Persisted in the scan store (SQLite `reference_categories`); scans started after an enrolment use it.
 */
import type { ModelLabel } from '../inference/index.js';
import type { StoredReference } from '../storage/index.js';

/**
 * One enrolled category: id and name, HS codes (declaration check), the goods model whose embedding space the
 * L2-normalised `prototype` lives in, the `minSimilarity` a tile needs, how many sample tiles were averaged, where
 * they came from and how tight they are (`sampleSimilarity`: min and mean similarity of the samples to the
 * prototype). The same record the scan store persists.
 */
export type ReferenceCategory = StoredReference;
export type ReferenceSource = StoredReference['sources'][number];

export interface ReferenceMatch {
  /** Index into the library snapshot's categories. */
  index: number;
  similarity: number;
}

/** L2-normalises `v` in place; returns it (zero vectors stay zero). */
export function normalizeL2(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const n = Math.sqrt(s);
  if (n > 0) for (let i = 0; i < v.length; i++) v[i] /= n;
  return v;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Builds a prototype from normalised sample embeddings (rows of `dim` floats). */
export function prototypeOf(samples: Float32Array[], dim: number): { prototype: Float32Array; min: number; mean: number } {
  const p = new Float32Array(dim);
  for (const e of samples) for (let i = 0; i < dim; i++) p[i] += e[i];
  normalizeL2(p);
  let min = 1;
  let sum = 0;
  for (const e of samples) {
    const s = dot(e, p);
    min = Math.min(min, s);
    sum += s;
  }
  return { prototype: p, min: round4(min), mean: round4(sum / Math.max(1, samples.length)) };
}

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/** An immutable view of the references of one goods model, taken when a scan starts. */
export class ReferenceSnapshot {
  constructor(readonly categories: readonly ReferenceCategory[]) {}

  get size(): number {
    return this.categories.length;
  }

  /** Labels to append after the model's own (same order as `categories`). */
  labels(): ModelLabel[] {
    return this.categories.map((c) => ({ id: c.id, name: c.name, hsCodes: [...c.hsCodes] }));
  }

  /** The nearest reference reaching its minSimilarity, or null. `embedding` must be L2-normalised. */
  match(embedding: Float32Array): ReferenceMatch | null {
    let best: ReferenceMatch | null = null;
    this.categories.forEach((c, index) => {
      if (c.prototype.length !== embedding.length) return;
      const similarity = dot(c.prototype, embedding);
      if (similarity >= c.minSimilarity && (best === null || similarity > best.similarity)) best = { index, similarity };
    });
    return best;
  }
}

/** The live library: what enrolment changes and new scans snapshot. */
export class ReferenceLibrary {
  private categories: ReferenceCategory[] = [];

  constructor(
    /** The goods model name whose references are served. */
    readonly model: string,
    initial: readonly ReferenceCategory[] = [],
  ) {
    this.categories = initial.filter((c) => c.model === model);
  }

  list(): ReferenceCategory[] {
    return [...this.categories];
  }

  get(id: string): ReferenceCategory | undefined {
    return this.categories.find((c) => c.id === id);
  }

  add(category: ReferenceCategory): void {
    this.categories = [...this.categories.filter((c) => c.id !== category.id), category];
  }

  remove(id: string): boolean {
    const before = this.categories.length;
    this.categories = this.categories.filter((c) => c.id !== id);
    return this.categories.length !== before;
  }

  snapshot(): ReferenceSnapshot {
    return new ReferenceSnapshot(this.categories);
  }
}
