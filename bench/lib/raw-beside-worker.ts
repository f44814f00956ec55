/**
 * Worker thread of bench/lib/raw-beside.ts: raw ONNX Runtime in a loop, at the gateway's worker priority, while the
 * bench's portals keep an ingest-only gateway busy. One session per model (the fp32 file, CPU provider, the
 * intra-op threads a gateway worker gets); a "pair" is one batch of the goods model and one of the threats model on
 * the same pre-normalised tiles, as every tile goes through both models in the gateway. No batcher, no
 * normalisation, no transfers, no results: only session.run().
 *
 * Messages: posts {type: 'ready'} once the sessions are open and warm, then {type: 'pair', at, tiles} after every
 * pair (at = performance.timeOrigin + performance.now(), comparable across threads); on {type: 'stop'} it finishes
 * the current run, releases the sessions and posts {type: 'stopped'}.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { createSession, ort, setOrtLogLevel, type OrtSession } from '../../src/inference/ort.js';
import { setThreadIdleScheduling } from '../../src/addon/index.js';

export interface RawBesideModel {
  path: string;
  inputName: string;
  /** Input shape without the batch dimension. */
  tileDims: number[];
  outputNames: string[];
  /** batchSize pre-normalised tiles, packed. */
  batch: Float32Array;
}

export interface RawBesideWorkerData {
  models: RawBesideModel[];
  batchSize: number;
  intraOpThreads: number;
  /** Niceness of this thread (and the ONNX Runtime threads it starts), as inference.workerNice. */
  nice: number;
  /** SCHED_IDLE for this thread (and ONNX Runtime's), as inference.workerSchedIdle; nice applies where it cannot. */
  schedIdle: boolean;
}

if (!parentPort) throw new Error('raw-beside-worker must run in a worker thread');
const port = parentPort;
const spec = workerData as RawBesideWorkerData;
let stopping = false;
port.on('message', (m: { type: string }) => {
  if (m.type === 'stop') stopping = true;
});

async function main(): Promise<void> {
  // The same scheduling as a gateway inference worker (src/inference/inference-worker.ts lowerPriority).
  const idle = spec.schedIdle && setThreadIdleScheduling() === 'idle';
  if (!idle && spec.nice !== 0 && process.platform === 'linux') setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), spec.nice);
  setOrtLogLevel('fatal');
  const sessions: OrtSession[] = [];
  try {
    for (const m of spec.models)
      sessions.push(await createSession(m.path, { provider: 'cpu', deviceId: 0, intraOpThreads: spec.intraOpThreads, allowSpinning: false }));
    const run = (i: number): Promise<unknown> => {
      const m = spec.models[i];
      return sessions[i].run({ [m.inputName]: new ort.Tensor('float32', m.batch, [spec.batchSize, ...m.tileDims]) }, m.outputNames);
    };
    for (let k = 0; k < 2; k++) for (let i = 0; i < sessions.length; i++) await run(i); // first runs of a shape allocate
    port.postMessage({ type: 'ready' });
    while (!stopping) {
      for (let i = 0; i < sessions.length; i++) await run(i);
      port.postMessage({ type: 'pair', at: performance.timeOrigin + performance.now(), tiles: spec.batchSize });
    }
  } finally {
    for (const s of sessions) await s.release().catch(() => undefined);
  }
  port.postMessage({ type: 'stopped' });
}

main().catch((err: unknown) => {
  port.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) });
});
