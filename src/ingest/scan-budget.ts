/**
 * The memory open scans may hold together (portal.scanBufferBudgetBytes). A scan is charged as its highest line
 * grows (lines x pixels x energies x 2 B: what its stitcher keeps of the raw lines) and gives its charge back when it
 * ends. Charging the lines a frame claims, not the bytes it carries, is what makes sparse frames pay for what they
 * cost; together with portal.maxMissingLines (a frame may not claim far beyond what its scan received) one
 * connection cannot take memory the other lanes need.
 *
 * Threads: gateway JS thread.
 */
export class ScanBufferBudget {
  private usedBytes = 0;
  /** Charges refused, for metrics. */
  refusals = 0;

  constructor(readonly limitBytes: number) {}

  /** Charges `bytes`; false (nothing charged) when that would pass the limit. */
  charge(bytes: number): boolean {
    if (this.usedBytes + bytes > this.limitBytes) {
      this.refusals++;
      return false;
    }
    this.usedBytes += bytes;
    return true;
  }

  /**
   * Charges `bytes` even past the limit: a scan recovered after a crash holds what its stored lines cost, which was
   * within the budget when they arrived. Frames of any scan are refused until the total is back below the limit.
   */
  force(bytes: number): void {
    this.usedBytes += bytes;
  }

  release(bytes: number): void {
    this.usedBytes = Math.max(0, this.usedBytes - bytes);
  }

  get used(): number {
    return this.usedBytes;
  }
}
