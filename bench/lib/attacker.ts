/**
 * The attacker of bench:security, in a process of its own (forked, plan as JSON in argv[2]) so that its CPU and
 * memory are not the gateway's. Between `start` and `stop` it keeps up, all at once:
 *   - a compromised portal (a valid credential) sending sparse frames: each claims lines far beyond what it sent;
 *   - `images` concurrent png16 requests for a stored scan, each sent again as soon as it is answered;
 *   - `connections` WebSockets to the operator feed from this one address, each opened again once refused or closed.
 * It counts every answer by status or error code and reports them with `done`.
 *
 * IPC: child sends `ready` → parent `start` → parent `stop` → child `done {counts}` and exits.
 */
import { request } from 'node:http';
import WebSocket from 'ws';
import { SliceKind, encodeSliceFrame } from '../../src/protocol/index.js';

export interface AttackPlan {
  httpUrl: string;
  portalUrl: string;
  /** A viewer's API token (image requests, feed connections). */
  token: string;
  /** The compromised portal's id and credential. */
  portalId: string;
  credential: string;
  /** A completed scan to request images of. */
  scanId: string;
  images: number;
  connections: number;
  /** Run the compromised portal's sparse frames. */
  sparse: boolean;
  /**
   * The control: touch nothing, only keep one CPU core busy, as much as the attacker's own client work takes. What the
   * good portal loses then is the shared machine's, not the gateway's defences'.
   */
  burnOnly?: boolean;
  pixels: number;
  /**
   * Loopback addresses the attack comes from (Linux answers all of 127/8): the feed connections and image requests
   * from `address`, the compromised portal from `portalAddress`, so that the gateway's per-address limits meet them
   * as separate clients, and neither shares the good portal's 127.0.0.1.
   */
  address: string;
  portalAddress: string;
}

export type AttackerChildMessage = { type: 'ready' } | { type: 'done'; counts: Record<string, number> } | { type: 'failed'; message: string };
export type AttackerParentMessage = { type: 'start' } | { type: 'stop' };

const plan = JSON.parse(process.argv[2] ?? '{}') as AttackPlan;
const counts: Record<string, number> = {};
const count = (key: string): void => {
  counts[key] = (counts[key] ?? 0) + 1;
};
let running = false;
let cpuAtStart: NodeJS.CpuUsage | null = null;

function image(): void {
  if (!running) return;
  const req = request(
    `${plan.httpUrl}/v1/scans/${encodeURIComponent(plan.scanId)}/image?energy=high&format=png16`,
    { headers: { authorization: `Bearer ${plan.token}` }, localAddress: plan.address },
    (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        count(status === 200 ? 'image 200' : `image ${status} ${/"code":"([A-Z_]+)"/.exec(Buffer.concat(chunks).toString())?.[1] ?? ''}`);
        setImmediate(image);
      });
    },
  );
  req.on('error', () => {
    count('image error');
    setTimeout(image, 50);
  });
  req.end();
}

function connection(): void {
  if (!running) return;
  const ws = new WebSocket(`${plan.portalUrl.replace('/v1/portal', '/v1/operator')}`, {
    headers: { authorization: `Bearer ${plan.token}` },
    perMessageDeflate: false,
    localAddress: plan.address,
  });
  ws.on('unexpected-response', (_req, res) => {
    res.resume();
    count(`feed ${res.statusCode}`);
    setTimeout(connection, 100);
  });
  ws.on('open', () => count('feed open'));
  ws.on('close', () => {
    if (running) setTimeout(connection, 100);
  });
  ws.on('error', () => undefined);
}

function sparsePortal(): void {
  const ws = new WebSocket(plan.portalUrl, { perMessageDeflate: false, localAddress: plan.portalAddress });
  let n = 0;
  const frame = new Uint16Array(16 * 2 * plan.pixels).fill(20_000);
  // Each frame claims lines 5000..15000 while none were sent: what cost ~800 MiB and 1.9 GB of disk before. Seqs stay
  // inside the reorder window (a refused frame is not recorded, so its seq may come again).
  const send = (): void => {
    if (!running || ws.readyState !== WebSocket.OPEN) return;
    const seq = 1 + (n % 200);
    const firstLine = 5000 + (n % 10) * 1000;
    n++;
    ws.send(encodeSliceFrame({ kind: SliceKind.Image, energies: 2, streamId: 1, seq, firstLine, pixels: plan.pixels, acquiredAtUs: 0n }, frame));
  };
  ws.on('open', () => {
    ws.send(
      JSON.stringify({
        type: 'hello',
        portalId: plan.portalId,
        token: plan.credential,
        detector: { pixels: plan.pixels, energies: 2, bitDepth: 16, pitchMm: 4, lineRateHz: 1000 },
      }),
    );
  });
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as { type: string; code?: string };
    if (m.type === 'welcome') ws.send(JSON.stringify({ type: 'scan.start', streamId: 1 }));
    else if (m.type === 'scan.accepted') send();
    else if (m.type === 'error' || m.type === 'ack') {
      count(`sparse ${m.type === 'ack' ? 'ack' : m.code}`);
      setImmediate(send);
    }
  });
  ws.on('error', () => count('sparse error'));
  // Refused or dropped (its upgrade may meet the address's limits while the feed connections hold them): again.
  ws.on('close', () => {
    if (running) setTimeout(sparsePortal, 100);
  });
}

process.on('message', (m: AttackerParentMessage) => {
  if (m.type === 'start' && !running) {
    running = true;
    cpuAtStart = process.cpuUsage();
    if (plan.burnOnly) {
      const burn = (): void => {
        const until = Date.now() + 20;
        while (Date.now() < until) {
          // busy: one core's worth of CPU, yielding every 20 ms so that `stop` is heard
        }
        if (running) setImmediate(burn);
      };
      burn();
      return;
    }
    for (let i = 0; i < plan.images; i++) image();
    for (let i = 0; i < plan.connections; i++) connection();
    if (plan.sparse) sparsePortal();
  } else if (m.type === 'stop') {
    running = false;
    // What the attack took of this machine's CPU (the gateway shares it here): ms of user + system time.
    const cpu = process.cpuUsage(cpuAtStart ?? undefined);
    counts['attacker cpu ms'] = Math.round((cpu.user + cpu.system) / 1000);
    process.send?.({ type: 'done', counts } satisfies AttackerChildMessage, () => process.exit(0));
  }
});
process.send?.({ type: 'ready' } satisfies AttackerChildMessage);
