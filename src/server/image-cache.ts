/**
 * The rendered png16 images of ended scans, kept for a while (GET /v1/scans/:scanId/image).
 *
 * An ended scan's image never changes, and it is asked for again and again: the lane's screen, a second officer, the
 * review workstation, a client retrying. Each render reads the whole raw archive (tens of MB) and encodes it on
 * libvips' thread (~0.5 s of a core for a 2048 px truck); 50 concurrent requests for one stored truck kept a render
 * running all the time and pushed a good portal's ack p99 from ~20 ms to 60-100 ms (bench:security, 'Under attack').
 * Here concurrent requests for the same image share one render, and later ones get its bytes.
 *
 * The key names the scan, the energy and the record as it was read (lines, updatedAt), so a changed record renders
 * again (the scan's id first, then a newline: dropScan). The route looks a scan up before it asks here: a deleted scan
 * is 404 whatever this holds, and retention drops its images at once (dropScan). An image is dropped once older than
 * IMAGE_CACHE_MAX_AGE_MS (checked at every request and every minute by the server's timer) or when evicted (least
 * recently used first, past `maxBytes`); one over a quarter of `maxBytes` is served and not kept. A live scan's image is never asked
 * for here (it grows).
 *
 * Threads: gateway JS thread.
 */

/** How long a rendered image is kept at most, ms. */
export const IMAGE_CACHE_MAX_AGE_MS = 5 * 60_000;

export interface ImageCacheStats {
  /** Served from the cache. */
  hits: number;
  /** Joined a render already running for the same image. */
  shared: number;
  /** Rendered (not in the cache, or not cacheable). */
  rendered: number;
}

/** A rendered image and the line count it shows. */
export interface RenderedImage {
  png: Buffer;
  lines: number;
}

interface Entry {
  image: RenderedImage;
  at: number;
}

export class RenderedImageCache {
  /** Least recently used first (Map keeps insertion order; a hit moves its entry to the end). */
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<RenderedImage>>();
  private held = 0;
  readonly stats: ImageCacheStats = { hits: 0, shared: 0, rendered: 0 };

  constructor(
    /** Bytes of PNG kept at most (server.imageCacheBytes); 0: nothing is kept, concurrent requests still share. */
    readonly maxBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Bytes of PNG held now (scanline_image_cache_bytes). */
  get bytes(): number {
    return this.held;
  }

  /**
   * The image under `key`: from the cache, from a render of the same key already running, or from `render()` (whose
   * rejection reaches every request that joined it).
   */
  get(key: string, render: () => Promise<RenderedImage>): Promise<RenderedImage> {
    this.dropExpired();
    const entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      this.entries.set(key, entry);
      this.stats.hits++;
      return Promise.resolve(entry.image);
    }
    const running = this.inFlight.get(key);
    if (running) {
      this.stats.shared++;
      return running;
    }
    this.stats.rendered++;
    const rendering = render().then(
      (image) => {
        this.inFlight.delete(key);
        this.keep(key, image);
        return image;
      },
      (err: unknown) => {
        this.inFlight.delete(key);
        throw err;
      },
    );
    this.inFlight.set(key, rendering);
    return rendering;
  }

  /** Drops every image of `scanId` (the scan was deleted). */
  dropScan(scanId: string): void {
    const prefix = `${scanId}\n`;
    for (const [k, e] of this.entries) {
      if (!k.startsWith(prefix)) continue;
      this.entries.delete(k);
      this.held -= e.image.png.byteLength;
    }
  }

  /** Drops what is older than IMAGE_CACHE_MAX_AGE_MS; also run by a timer (sweepEvery), not only at requests. */
  dropExpired(): void {
    const oldest = this.now() - IMAGE_CACHE_MAX_AGE_MS;
    for (const [k, e] of this.entries) {
      if (e.at >= oldest) continue;
      this.entries.delete(k);
      this.held -= e.image.png.byteLength;
    }
  }

  private keep(key: string, image: RenderedImage): void {
    if (image.png.byteLength > this.maxBytes / 4) return;
    this.entries.set(key, { image, at: this.now() });
    this.held += image.png.byteLength;
    for (const [k, e] of this.entries) {
      if (this.held <= this.maxBytes) break;
      this.entries.delete(k);
      this.held -= e.image.png.byteLength;
    }
  }
}
