/**
 * Process and event-loop metrics, read at scrape time. Written here rather than taken from prom-client's
 * collectDefaultMetrics() because those start process-wide observers (an event-loop delay histogram, a GC
 * observer) that nothing stops: a gateway that closes must leave nothing running, and tests start many.
 *
 * Event-loop delay comes from one perf_hooks histogram per gateway (resolution 10 ms), enabled while the metrics
 * are open; its quantiles cover the time since the previous scrape (the histogram is reset at each scrape), as
 * prom-client's own lag gauges do. Event-loop utilisation is exported as a counter of busy seconds, so
 * rate(scanline_event_loop_busy_seconds_total[1m]) is the utilisation whoever scrapes.
 */
import { readdirSync } from 'node:fs';
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import { CollectedMetric, type Sample } from './collected-metric.js';

const EVENT_LOOP_QUANTILES = [0.5, 0.9, 0.99] as const;

export class ProcessMetrics {
  private readonly delay: IntervalHistogram;
  private readonly startedAtSeconds = Math.round((Date.now() - performance.now()) / 1000);
  /** Cumulative over scrapes (the histogram itself is reset at each scrape). */
  private delaySum = 0;
  private delayCount = 0;
  private lastMax = 0;

  constructor() {
    this.delay = monitorEventLoopDelay({ resolution: 10 });
    this.delay.enable();
  }

  metrics(): CollectedMetric[] {
    return [
      new CollectedMetric('scanline_process_cpu_seconds_total', 'counter', 'CPU time of the gateway process, all threads, by mode.', ['mode'], () => {
        const u = process.cpuUsage();
        return [
          { labels: { mode: 'user' }, value: u.user / 1e6 },
          { labels: { mode: 'system' }, value: u.system / 1e6 },
        ];
      }),
      new CollectedMetric('scanline_process_resident_memory_bytes', 'gauge', 'Resident set size of the gateway process.', [], () => [
        { labels: {}, value: process.memoryUsage.rss() },
      ]),
      new CollectedMetric(
        'scanline_process_heap_bytes',
        'gauge',
        'V8 heap of the JS thread: used and total (allocated), and memory outside the heap held by JS objects (external, array buffers included).',
        ['kind'],
        () => {
          const m = process.memoryUsage();
          return [
            { labels: { kind: 'used' }, value: m.heapUsed },
            { labels: { kind: 'total' }, value: m.heapTotal },
            { labels: { kind: 'external' }, value: m.external },
          ];
        },
      ),
      new CollectedMetric('scanline_process_open_fds', 'gauge', 'Open file descriptors of the gateway process (Linux; absent elsewhere).', [], () => openFds()),
      new CollectedMetric('scanline_process_start_time_seconds', 'gauge', 'When the gateway process started, seconds since the Unix epoch.', [], () => [
        { labels: {}, value: this.startedAtSeconds },
      ]),
      new CollectedMetric(
        'scanline_event_loop_busy_seconds_total',
        'counter',
        'Time the JS thread spent running callbacks (not idle in the event loop); its rate is the event-loop utilisation, 0..1.',
        [],
        () => [{ labels: {}, value: performance.eventLoopUtilization().active / 1000 }],
      ),
      new CollectedMetric(
        'scanline_event_loop_delay_seconds',
        'summary',
        'Event-loop delay (perf_hooks monitorEventLoopDelay, 10 ms resolution): quantiles over the time since the previous scrape; _sum and _count since start.',
        [],
        () => this.readDelay(),
      ),
      new CollectedMetric('scanline_event_loop_delay_max_seconds', 'gauge', 'Largest event-loop delay since the previous scrape.', [], () => [
        { labels: {}, value: this.lastMax },
      ]),
    ];
  }

  /** Stops the event-loop delay histogram. */
  close(): void {
    this.delay.disable();
  }

  /**
   * Quantiles of the window since the previous scrape, then folds the window into the cumulative sum and count and
   * starts a new window. The max gauge is read in the same scrape (families are read in registration order).
   */
  private readDelay(): Sample[] {
    const d = this.delay;
    const samples: Sample[] = [];
    // Before its first sample the histogram's statistics are not numbers: read zero then.
    const ok = d.count > 0;
    for (const q of EVENT_LOOP_QUANTILES) samples.push({ labels: { quantile: String(q) }, value: ok ? d.percentile(q * 100) / 1e9 : 0 });
    if (ok) {
      this.delaySum += (d.mean * d.count) / 1e9;
      this.delayCount += d.count;
    }
    this.lastMax = ok ? d.max / 1e9 : 0;
    samples.push({ metricName: 'scanline_event_loop_delay_seconds_sum', labels: {}, value: this.delaySum });
    samples.push({ metricName: 'scanline_event_loop_delay_seconds_count', labels: {}, value: this.delayCount });
    d.reset();
    return samples;
  }
}

function openFds(): Sample[] {
  if (process.platform !== 'linux') return [];
  try {
    return [{ labels: {}, value: readdirSync('/proc/self/fd').length }];
  } catch {
    return [];
  }
}
