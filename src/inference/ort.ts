/**
 * The one module that loads onnxruntime-node (its native binding and libonnxruntime). Imported by the inference
 * worker thread (and by tests that run models directly); the gateway's main thread never loads it, because a
 * session's run() blocks the thread it is called on (synchronous work behind a setImmediate).
 */
import * as ort from 'onnxruntime-node';
import type { ExecutionProviderName, OrtLogLevel } from './config.js';

export { ort };
export type OrtSession = ort.InferenceSession;

/** onnxruntime-node's version, e.g. "1.30.0". */
export function ortVersion(): string {
  return ort.env.versions.node ?? ort.env.versions.common;
}

/** Execution providers this onnxruntime-node build can be asked for (whether their libraries load is another matter). */
export function supportedProviders(): string[] {
  return ort.listSupportedBackends().map((b) => b.name);
}

export interface SessionSettings {
  provider: ExecutionProviderName;
  deviceId: number;
  intraOpThreads: number;
  allowSpinning: boolean;
  /** The session's own log severity, as setOrtLogLevel's (inference.ortLogLevel); absent: the environment's. */
  logLevel?: OrtLogLevel;
}

/** ONNX Runtime's severities: 0 verbose .. 4 fatal. */
const ORT_SEVERITY: Record<OrtLogLevel, 0 | 1 | 2 | 3 | 4> = { verbose: 0, info: 1, warning: 2, error: 3, fatal: 4 };

/**
 * Sets ONNX Runtime's own log level (its native logger writes to stderr, bypassing pino); effective only before the
 * first session of the process is created (ONNX Runtime has one environment per process).
 */
export function setOrtLogLevel(level: OrtLogLevel): void {
  ort.env.logLevel = level;
}

/**
 * Opens a session on exactly one execution provider (ONNX Runtime still places nodes that provider cannot run on
 * the CPU). Rejects when the provider's libraries or device are not there, so the caller can try the next one.
 */
export async function createSession(path: string, s: SessionSettings): Promise<OrtSession> {
  const provider = s.provider === 'cpu' ? 'cpu' : { name: s.provider, deviceId: s.deviceId };
  return ort.InferenceSession.create(path, {
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: s.intraOpThreads,
    interOpNumThreads: 1,
    // Stated for the session too: it would otherwise follow the environment's level, which the first thread of the
    // process to load ONNX Runtime fixes (initOrtOnce), whatever this thread asked for.
    ...(s.logLevel ? { logSeverityLevel: ORT_SEVERITY[s.logLevel] } : {}),
    extra: { session: { intra_op: { allow_spinning: s.allowSpinning ? '1' : '0' } } },
  });
}
