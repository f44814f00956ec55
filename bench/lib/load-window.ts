/**
 * Runs the forked load generator (load-portals.ts) for one plan and measures around its window: `onStart` runs when
 * the generator's measured window opens, `onEnd` when it closes (both on the bench's thread, so they can snapshot
 * counters of an in-process gateway). Resolves once the child has exited, with both snapshots and the generator's
 * own counters; rejects on the generator's failure, an early exit, or no result within `timeoutMs`.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { DetectorInfo } from '../../src/protocol/index.js';
import type { ChildMessage, LoadCounters, LoadMode, LoadPlan, ParentMessage } from './load-protocol.js';

/** What a bench run says about its portals; loadPlan() turns it into the load generator's plan. */
export interface LoadShape {
  portals: number;
  mode: LoadMode;
  lineRateHz: number;
  window: number;
  /** Paced: how long a portal can hold lines the gateway does not take, milliseconds. */
  portalBufferMs: number;
  warmupMs: number;
  durationMs: number;
  linesPerFrame: number;
  startSpreadMs?: number;
}

/**
 * The load generator's plan for `shape`: every portal replays the pre-rendered truck in `truckFile`. `credentials`
 * (portal id `bench-portal-<i>` → credential) is required: a gateway on its defaults refuses a portal without one, and
 * a forgotten credential turned a whole bench into "closed before welcome".
 */
export function loadPlan(shape: LoadShape, url: string, truckFile: string, detector: DetectorInfo, credentials: Record<string, string>): LoadPlan {
  return {
    credentials,
    url,
    portals: shape.portals,
    mode: shape.mode,
    lineRateHz: shape.lineRateHz,
    window: shape.window,
    bufferLines: Math.round((shape.lineRateHz * shape.portalBufferMs) / 1000),
    warmupMs: shape.warmupMs,
    durationMs: shape.durationMs,
    truckFile,
    detector,
    linesPerFrame: shape.linesPerFrame,
    ...(shape.startSpreadMs === undefined ? {} : { startSpreadMs: shape.startSpreadMs }),
  };
}

const LOAD_PORTALS = fileURLToPath(new URL('./load-portals.js', import.meta.url));

export interface LoadWindow<S, E> {
  start: S;
  end: E;
  counters: LoadCounters;
  /** The load generator's pid (to exclude it from "other processes"). */
  childPid: number;
}

export async function runLoadWindow<S, E>(plan: LoadPlan, timeoutMs: number, label: string, hooks: { onStart(): S; onEnd(): E }): Promise<LoadWindow<S, E>> {
  // execArgv: [] so that profiling flags given to the bench (--cpu-prof) profile the gateway, not the portals.
  const child = fork(LOAD_PORTALS, [JSON.stringify(plan)], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const measured = await new Promise<{ start: S; end: E; counters: LoadCounters }>((resolve, reject) => {
    let start: { value: S } | null = null;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${label}: no result after ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'ready') child.send({ type: 'go' } satisfies ParentMessage);
      else if (m.type === 'window-start') start = { value: hooks.onStart() };
      else if (m.type === 'window-end') {
        const end = hooks.onEnd();
        clearTimeout(timer);
        if (!start) reject(new Error(`${label}: window-end before window-start`));
        else resolve({ start: start.value, end, counters: m.counters });
      } else if (m.type === 'failed') {
        clearTimeout(timer);
        reject(new Error(`${label}: load generator failed: ${m.message}`));
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${label}: load generator exited (code ${code}, signal ${signal}) before reporting`));
    });
  });
  await new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return { ...measured, childPid: child.pid ?? -1 };
}
