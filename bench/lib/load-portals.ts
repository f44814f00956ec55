/**
 * Load generator of the ingest bench; runs in its own process (forked by bench/ingest.bench.ts, plan as JSON in
 * argv[2], IPC as in load-protocol.ts) so the gateway's event loop and CPU accounting are its own.
 *
 * Each of N simulated portals is one `ws` client connection: hello → welcome, then trucks back to back:
 * scan.start → scan.accepted → dark frame, air frame, image frames (seq 0..) with at most `window` frames not yet
 * covered by a cumulative ack → scan.end → scan.completed → next truck.
 *   max:   frames go out as fast as the ack window allows (throughput).
 *   paced: each portal's line clock runs at `lineRateHz` from its start, continuously across trucks (trucks back to
 *          back, the worst case); a frame goes out once its lines are due. A portal holds at most `bufferLines`
 *          lines that are due but not sent (time between trucks is caught up from there); beyond that, lines are
 *          lost and counted as dropped, as on a real portal whose acquisition buffer overflows.
 *
 * Client cost kept low on purpose (the gateway shares the machine with this process): frames are built once and
 * sent as they are by every portal, with no copy or patch per send. That works because seq is the frame's index in
 * the truck and every portal's trucks alternate between the two streamIds of STREAM_IDS (one frame set each): the
 * protocol asks only that a streamId be unique among the portal's open scans, and a message about the previous
 * truck (a late error, scan.aborted) still carries the other id and is ignored. The WebSocket masking key is all
 * zeros, which `ws` documents as "no masking work" (RFC 6455 requires a mask, not a random one, for non-browser
 * clients), so `ws` never writes into the shared frames. On the server side `ws` then skips its unmask loop too,
 * which flatters the baseline (b); uWS unmasks regardless.
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { SLICE_HEADER_BYTES, SliceKind, encodeSliceFrame, type GatewayMessage } from '../../src/protocol/index.js';
import type { ChildMessage, LoadCounters, LoadPlan, ParentMessage } from './load-protocol.js';
import { readTruckFile, type Truck } from './truck.js';

interface Frame {
  bytes: Buffer;
  kind: number;
  lineCount: number;
  payloadBytes: number;
}

/** The streamIds a portal's trucks alternate between (see the file comment). */
const STREAM_IDS = [1, 2] as const;

/** Frames of one truck in send order, shared by every portal: `streamId`, seq = index. Never written after. */
function buildFrames(truck: Truck, linesPerFrame: number, streamId: number): Frame[] {
  const { pixels, energies } = truck.detector;
  const values = pixels * energies;
  const frames: Frame[] = [];
  const add = (kind: 1 | 2 | 3, firstLine: number, data: Uint16Array) => {
    const lineCount = data.length / values;
    const bytes = encodeSliceFrame({ kind, energies, pixels, streamId, seq: frames.length, firstLine, acquiredAtUs: 0n }, data);
    frames.push({ bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), kind, lineCount, payloadBytes: bytes.byteLength - SLICE_HEADER_BYTES });
  };
  if (truck.darkLines > 0) add(SliceKind.Dark, 0, truck.dark);
  if (truck.airLines > 0) add(SliceKind.Air, 0, truck.air);
  for (let first = 0; first < truck.lines; first += linesPerFrame) {
    const count = Math.min(linesPerFrame, truck.lines - first);
    add(SliceKind.Image, first, truck.image.subarray(first * values, (first + count) * values));
  }
  return frames;
}

/** Counters of the measured window, shared by every portal. */
class Meter {
  measuring = false;
  slicesAcked = 0;
  linesAcked = 0;
  payloadBytesAcked = 0;
  linesSent = 0;
  linesDropped = 0;
  scansCompleted = 0;
  scansAborted = 0;
  latencies: number[] = [];
  readonly errorsByCode: Record<string, number> = {};
  unexpectedCloses = 0;
}

const zeroMask = (mask: Uint8Array): void => {
  mask.fill(0);
};

class Portal {
  private ws!: WebSocket;
  private state: 'connecting' | 'starting' | 'streaming' | 'ending' | 'aborting' | 'stopped' = 'connecting';
  /** STREAM_IDS[k] of the current truck; `frames` is frameSets[k]. */
  private streamId: number = STREAM_IDS[1];
  private frames: Frame[];
  private next = 0;
  private acked = -1;
  /** Per window position (seq % window): when that frame was sent. */
  private readonly sentAt: Float64Array;
  /** Per window position (seq % window): the portal's stream position (lines consumed) just after that frame. */
  private readonly sentStreamEnd: Float64Array;
  /** Stream position up to which every line was acked or dropped (paced bookkeeping). */
  ackedThrough = 0;
  /** Stream ranges [from, to) of dropped lines. */
  readonly dropped: Array<[number, number]> = [];
  /** Image lines sent or dropped since the portal started (paced mode's line clock counts against this). */
  linesConsumed = 0;
  clockStart = 0;

  constructor(
    readonly index: number,
    private readonly plan: LoadPlan,
    private readonly truck: Truck,
    /** Frames of the truck for each of STREAM_IDS, in that order. */
    private readonly frameSets: readonly Frame[][],
    private readonly meter: Meter,
  ) {
    this.frames = frameSets[1];
    this.sentAt = new Float64Array(plan.window);
    this.sentStreamEnd = new Float64Array(plan.window);
  }

  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.plan.url, { perMessageDeflate: false, generateMask: zeroMask });
      this.ws = ws;
      ws.once('error', reject);
      ws.once('open', () => {
        const portalId = `bench-portal-${this.index}`;
        const token = this.plan.credentials[portalId];
        ws.send(JSON.stringify({ type: 'hello', portalId, ...(token ? { token } : {}), detector: this.plan.detector }));
      });
      ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        const m = JSON.parse(String(data)) as GatewayMessage;
        if (m.type === 'welcome' && this.state === 'connecting') {
          this.state = 'stopped';
          ws.off('error', reject);
          ws.on('error', () => undefined);
          resolve();
          return;
        }
        this.onMessage(m);
      });
      ws.on('close', () => {
        if (this.state !== 'stopped') this.meter.unexpectedCloses++;
        if (this.state === 'connecting') reject(new Error(`portal ${this.index}: closed before welcome`));
        this.state = 'stopped';
      });
    });
  }

  start(now: number): void {
    this.clockStart = now;
    this.startScan();
  }

  stop(): void {
    this.state = 'stopped';
    this.ws.close(1000, 'bench over');
  }

  /**
   * Paced: of the lines due between `from` and `to` (ms, performance.now()), how many were acked by now (lines
   * dropped in that range do not count), and how many were due.
   */
  deliveredBetween(from: number, to: number): { delivered: number; due: number } {
    const k0 = Math.max(0, this.dueLines(from));
    const k1 = Math.max(k0, this.dueLines(to));
    const upTo = Math.min(this.ackedThrough, k1);
    let delivered = Math.max(0, upTo - k0);
    for (const [a, b] of this.dropped) delivered -= Math.max(0, Math.min(b, upTo) - Math.max(a, k0));
    return { delivered, due: k1 - k0 };
  }

  /** Paced: image lines due now. */
  dueLines(now: number): number {
    return ((now - this.clockStart) * this.plan.lineRateHz) / 1000;
  }

  private startScan(): void {
    const k = this.streamId === STREAM_IDS[0] ? 1 : 0;
    this.streamId = STREAM_IDS[k];
    this.frames = this.frameSets[k];
    this.next = 0;
    this.acked = -1;
    this.state = 'starting';
    this.ws.send(
      JSON.stringify({
        type: 'scan.start',
        streamId: this.streamId,
        ...(this.truck.vehicle ? { vehicle: this.truck.vehicle } : {}),
        ...(this.truck.declaration ? { declaration: this.truck.declaration } : {}),
      }),
    );
  }

  private onMessage(m: GatewayMessage): void {
    const meter = this.meter;
    switch (m.type) {
      case 'scan.accepted':
        if (m.streamId === this.streamId && this.state === 'starting') {
          this.state = 'streaming';
          this.pump(performance.now());
        }
        return;
      case 'ack': {
        if (m.streamId !== this.streamId || m.seq <= this.acked) return;
        if (meter.measuring) {
          const now = performance.now();
          for (let s = this.acked + 1; s <= m.seq; s++) {
            const f = this.frames[s];
            if (f.kind !== SliceKind.Image) continue;
            meter.slicesAcked++;
            meter.linesAcked += f.lineCount;
            meter.payloadBytesAcked += f.payloadBytes;
            meter.latencies.push(now - this.sentAt[s % this.plan.window]);
          }
        }
        this.acked = m.seq;
        this.ackedThrough = Math.max(this.ackedThrough, this.sentStreamEnd[m.seq % this.plan.window]);
        if (this.state === 'streaming') this.pump(performance.now());
        return;
      }
      case 'scan.completed':
        if (m.streamId !== this.streamId) return;
        if (meter.measuring) meter.scansCompleted++;
        if (this.state === 'ending' || this.state === 'aborting') this.startScan();
        return;
      case 'scan.aborted':
        if (m.streamId !== this.streamId) return;
        if (meter.measuring) meter.scansAborted++;
        // Restart only once the gateway is done with the stream (the next truck takes the other streamId).
        if (this.state !== 'stopped') this.startScan();
        return;
      case 'error':
        meter.errorsByCode[m.code] = (meter.errorsByCode[m.code] ?? 0) + 1;
        if (m.streamId !== this.streamId) return;
        if (this.state === 'streaming' || this.state === 'ending') {
          // Give the scan up; the next truck starts on scan.aborted.
          this.state = 'aborting';
          this.ws.send(JSON.stringify({ type: 'scan.abort', streamId: this.streamId, reason: `bench: ${m.code}` }));
        } else if (this.state === 'starting' || this.state === 'aborting') {
          // scan.start refused, or the stream is already gone: try a new truck shortly.
          this.state = 'aborting';
          setTimeout(() => {
            if (this.state === 'aborting') this.startScan();
          }, 100);
        }
        return;
      default:
        return;
    }
  }

  /** Sends every frame the window (and, paced, the line clock) allows; then scan.end once all are out. */
  pump(now: number): void {
    const { window, mode } = this.plan;
    const due = mode === 'paced' ? this.dueLines(now) : Infinity;
    if (mode === 'paced' && this.state !== 'connecting' && this.state !== 'stopped') {
      const overflow = due - this.linesConsumed - this.plan.bufferLines;
      if (overflow > 0) {
        const last = this.dropped[this.dropped.length - 1];
        if (last && last[1] === this.linesConsumed) last[1] += overflow;
        else this.dropped.push([this.linesConsumed, this.linesConsumed + overflow]);
        this.linesConsumed += overflow;
        if (this.meter.measuring) this.meter.linesDropped += overflow;
      }
    }
    if (this.state !== 'streaming') return;
    const frames = this.frames;
    while (this.next < frames.length && this.next - this.acked <= window) {
      const f = frames[this.next];
      if (f.kind === SliceKind.Image && this.linesConsumed + f.lineCount > due) break;
      this.sentAt[this.next % window] = now;
      this.sentStreamEnd[this.next % window] = this.linesConsumed;
      this.ws.send(f.bytes, { binary: true });
      if (f.kind === SliceKind.Image) {
        this.linesConsumed += f.lineCount;
        this.sentStreamEnd[this.next % window] = this.linesConsumed;
        if (this.meter.measuring) this.meter.linesSent += f.lineCount;
      }
      this.next++;
    }
    if (this.next === frames.length) {
      // TCP keeps order: the gateway has every frame before it reads scan.end.
      this.state = 'ending';
      this.ws.send(JSON.stringify({ type: 'scan.end', streamId: this.streamId, totalLines: this.truck.lines }));
    }
  }
}

function settled(portals: Portal[], plan: LoadPlan, from: number, to: number): { linesDueSettled: number; linesDeliveredSettled: number } {
  if (plan.mode !== 'paced') return { linesDueSettled: 0, linesDeliveredSettled: 0 };
  const bufferMs = (plan.bufferLines * 1000) / plan.lineRateHz;
  let due = 0;
  let delivered = 0;
  for (const p of portals) {
    const r = p.deliveredBetween(from, Math.max(from, to - bufferMs));
    due += r.due;
    delivered += r.delivered;
  }
  return { linesDueSettled: due, linesDeliveredSettled: delivered };
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))];
}

function send(message: ChildMessage): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  const plan = JSON.parse(process.argv[2] ?? '') as LoadPlan;
  const truck = readTruckFile(plan.truckFile);
  const frameSets = STREAM_IDS.map((id) => buildFrames(truck, plan.linesPerFrame, id));
  const meter = new Meter();
  const portals = Array.from({ length: plan.portals }, (_, i) => new Portal(i, plan, truck, frameSets, meter));
  await Promise.all(portals.map((p) => p.connect()));

  await new Promise<void>((resolve) => {
    process.once('message', (m: ParentMessage) => {
      if (m.type === 'go') resolve();
    });
    send({ type: 'ready' });
  });

  const t0 = performance.now();
  // Paced portals start spread over one frame period (or plan.startSpreadMs) so they do not all send in the same millisecond.
  const spreadMs = plan.startSpreadMs ?? (plan.linesPerFrame * 1000) / plan.lineRateHz;
  portals.forEach((p, i) => {
    const delay = plan.mode === 'paced' ? (i * spreadMs) / plan.portals : 0;
    setTimeout(() => p.start(performance.now()), delay);
  });
  let ticker: NodeJS.Timeout | null = null;
  if (plan.mode === 'paced') {
    let first = 0;
    ticker = setInterval(() => {
      const now = performance.now();
      for (let k = 0; k < portals.length; k++) portals[(first + k) % portals.length].pump(now);
      first = (first + 1) % portals.length;
    }, 1);
  }

  let cpuStart = process.cpuUsage();
  let windowStart = 0;
  await new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, t0 + plan.warmupMs - performance.now())));
  meter.measuring = true;
  windowStart = performance.now();
  cpuStart = process.cpuUsage();
  send({ type: 'window-start' });

  await new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, windowStart + plan.durationMs - performance.now())));
  meter.measuring = false;
  const windowEnd = performance.now();
  const cpu = process.cpuUsage(cpuStart);
  if (ticker) clearInterval(ticker);
  const windowMs = windowEnd - windowStart;
  const latencies = meter.latencies.sort((a, b) => a - b);
  const counters: LoadCounters = {
    windowMs,
    slicesAcked: meter.slicesAcked,
    linesAcked: meter.linesAcked,
    payloadBytesAcked: meter.payloadBytesAcked,
    linesSent: meter.linesSent,
    linesOffered: plan.mode === 'paced' ? (plan.portals * plan.lineRateHz * windowMs) / 1000 : 0,
    maxBacklogLines: plan.mode === 'paced' ? Math.max(0, ...portals.map((p) => p.dueLines(windowEnd) - p.linesConsumed)) : 0,
    linesDropped: meter.linesDropped,
    ...settled(portals, plan, windowStart, windowEnd),
    scansCompleted: meter.scansCompleted,
    scansAborted: meter.scansAborted,
    errorsByCode: meter.errorsByCode,
    unexpectedCloses: meter.unexpectedCloses,
    ackLatencyMs: {
      samples: latencies.length,
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      max: latencies.length > 0 ? latencies[latencies.length - 1] : NaN,
    },
    cpuPercent: ((cpu.user + cpu.system) / 1000 / windowMs) * 100,
  };
  await new Promise<void>((resolve) => process.send?.({ type: 'window-end', counters } satisfies ChildMessage, () => resolve()));
  for (const p of portals) p.stop();
  // Let the close frames go out, then leave.
  setTimeout(() => process.exit(0), 300);
}

main().catch((err: unknown) => {
  send({ type: 'failed', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
});
