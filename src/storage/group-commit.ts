/**
 * Group commit: makes what many scans wrote durable with as few syncs as the disk needs, however many frames arrive.
 *
 * Participants (the open scans) say when they have written something that is not yet durable (markDirty). A commit
 * cycle then takes every dirty participant at once; each hands over what it has written so far (beginCommit) and
 * syncs it (its journal and its raw file, on the libuv thread pool); the participant is told when its own syncs are
 * done and acknowledges everything they covered. Whatever is written while a cycle runs waits for the next cycle,
 * which starts as soon as this one ends: under load one fdatasync per file covers all the frames that arrived during
 * the previous one, so the number of syncs per second stays bounded by the disk's latency, not by the frame rate.
 *
 * `maxDelayMs` is how long a cycle may wait before it starts, to gather more (0: at once). A frame therefore waits
 * for its acknowledgement at most maxDelayMs + the cycle it missed + its own cycle.
 *
 * Threads: JS thread only; the syncs themselves run on the thread pool.
 */
import { observe, createHistogram, type HistogramCounts } from '../metrics/index.js';

/** What a participant hands to one commit cycle. */
export interface CommitWork {
  /** Makes durable what the participant had written when beginCommit was called. */
  run(): Promise<void>;
  /** Called once with the outcome of run() (JS thread); err is what run() rejected with. */
  done(err: unknown): void;
}

export interface CommitParticipant {
  /** Takes what is written and not yet durable; null when there is nothing. Called on the JS thread. */
  beginCommit(): CommitWork | null;
}

/** Upper bounds of the commit cycle duration buckets, seconds. */
export const COMMIT_SECONDS_BUCKETS: readonly number[] = Object.freeze([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]);

export interface GroupCommitStats {
  cycles: number;
  /** Participant commits (a scan's journal + raw file synced once). */
  commits: number;
  failures: number;
  /** Per cycle, from its start to its last participant done, seconds. */
  cycleSeconds: HistogramCounts;
}

export function createGroupCommitStats(): GroupCommitStats {
  return { cycles: 0, commits: 0, failures: 0, cycleSeconds: createHistogram(COMMIT_SECONDS_BUCKETS) };
}

export class GroupCommitter {
  private dirty = new Set<CommitParticipant>();
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private idleWaiters: Array<() => void> = [];
  readonly stats: GroupCommitStats;

  constructor(
    private readonly maxDelayMs: number,
    stats: GroupCommitStats = createGroupCommitStats(),
    /** Where an exception thrown by a participant goes (logged by the gateway). */
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {
    this.stats = stats;
  }

  /** `p` has written something not yet durable: it takes part in the next cycle. */
  markDirty(p: CommitParticipant): void {
    this.dirty.add(p);
    this.schedule();
  }

  /** Resolves once no cycle runs and nothing is dirty (tests, shutdown). */
  whenIdle(): Promise<void> {
    if (!this.running && this.dirty.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.running || this.timer || this.immediate || this.dirty.size === 0) return;
    if (this.maxDelayMs > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.cycle();
      }, this.maxDelayMs);
    } else {
      this.immediate = setImmediate(() => {
        this.immediate = null;
        this.cycle();
      });
    }
  }

  private cycle(): void {
    const participants = this.dirty;
    this.dirty = new Set();
    const works: CommitWork[] = [];
    for (const p of participants) {
      const w = p.beginCommit();
      if (w) works.push(w);
    }
    if (works.length === 0) {
      this.settled();
      return;
    }
    this.running = true;
    this.stats.cycles++;
    const started = process.hrtime.bigint();
    let left = works.length;
    for (const w of works) {
      let outcome: unknown = null;
      w.run()
        .catch((err: unknown) => {
          outcome = err ?? new Error('commit failed');
          this.stats.failures++;
        })
        .then(() => {
          this.stats.commits++;
          try {
            w.done(outcome);
          } catch (err) {
            // A participant's bug must not stop the others' acknowledgements (nor reject unhandled).
            this.stats.failures++;
            this.onError(err);
          }
          if (--left === 0) {
            observe(this.stats.cycleSeconds, Number(process.hrtime.bigint() - started) / 1e9);
            this.running = false;
            // What arrived during this cycle was gathered meanwhile: no further wait.
            try {
              if (this.dirty.size > 0) this.cycle();
              else this.settled();
            } catch (err) {
              this.onError(err);
            }
          }
        });
    }
  }

  private settled(): void {
    if (this.running || this.dirty.size > 0) {
      this.schedule();
      return;
    }
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
