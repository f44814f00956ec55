/**
 * Scraper of the metrics bench; runs in its own process (forked by bench/lib/metrics-run.ts, URL and interval as
 * JSON in argv[2]) so that, as with a real Prometheus, the client side of a scrape (HTTP client, reading the body)
 * is neither on the gateway's event loop nor in its CPU accounting. Only the gateway's side of a scrape is
 * measured: uWS answering GET /metrics and the registry rendering it.
 *
 * IPC: child sends `ready` once started → parent sends `start` when the measured window opens → the child GETs
 * /metrics every `intervalMs` (one request at a time, one keep-alive connection) → parent sends `stop` → the child
 * answers `done` with what it measured and exits.
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface ScraperPlan {
  url: string;
  intervalMs: number;
  /** API token of a `metrics` account, sent as Prometheus would (`authorization` bearer): /metrics refuses the anonymous. */
  token: string;
}

export interface ScraperResult {
  /** GET /metrics, request sent to last byte of the body, ms (in scrape order). */
  httpMs: number[];
  /** Size of the last exposition, characters. */
  bytes: number;
  /** Sample lines (not comments) of the last exposition. */
  series: number;
  /** The scraper's own CPU over the measured window, % of one core. */
  cpuPercent: number;
}

export type ScraperChildMessage = { type: 'ready' } | { type: 'done'; result: ScraperResult } | { type: 'failed'; message: string };
export type ScraperParentMessage = { type: 'start' } | { type: 'stop' };

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function get(url: string, token: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  const plan = JSON.parse(process.argv[2] ?? '') as ScraperPlan;
  const result: ScraperResult = { httpMs: [], bytes: 0, series: 0, cpuPercent: 0 };
  let running = false;
  let loop: Promise<void> = Promise.resolve();
  let cpu0 = process.cpuUsage();
  let t0 = 0;
  /** The wait between two scrapes, cut short by `stop`. */
  let pause: { timer: NodeJS.Timeout; resolve: () => void } | null = null;
  const scrapeLoop = async (): Promise<void> => {
    while (running) {
      const t = performance.now();
      const res = await get(plan.url, plan.token);
      if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${res.text.slice(0, 200)}`);
      result.httpMs.push(performance.now() - t);
      result.bytes = res.text.length;
      result.series = res.text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
      const wait = plan.intervalMs - (performance.now() - t);
      if (wait > 0 && running) await new Promise<void>((r) => (pause = { timer: setTimeout(r, wait), resolve: r }));
      pause = null;
    }
  };
  process.on('message', (m: ScraperParentMessage) => {
    if (m.type === 'start' && !running) {
      running = true;
      cpu0 = process.cpuUsage();
      t0 = performance.now();
      loop = scrapeLoop();
      loop.catch((err: unknown) => {
        running = false;
        send({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
      });
    } else if (m.type === 'stop') {
      running = false;
      if (pause) {
        clearTimeout(pause.timer);
        pause.resolve();
      }
      const cpu = process.cpuUsage(cpu0);
      const ms = performance.now() - t0;
      // A failed loop already reported `failed`; the parent rejects on that.
      void loop
        .catch(() => undefined)
        .then(() => {
          result.cpuPercent = ms > 0 ? ((cpu.user + cpu.system) / 1000 / ms) * 100 : 0;
          send({ type: 'done', result });
          agent.destroy();
          process.disconnect();
        });
    }
  });
  send({ type: 'ready' });
}

function send(m: ScraperChildMessage): void {
  process.send?.(m);
}

main().catch((err: unknown) => {
  send({ type: 'failed', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exitCode = 1;
});
