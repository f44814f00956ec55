import { describe, expect, it } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';
import { DEFAULT_INFERENCE_CONFIG, effectiveIntraOpThreads, resolveInferenceConfig, validateInferenceConfig } from '../../src/inference/index.js';

describe('inference configuration', () => {
  it('defaults are valid, and resolve to a frozen copy', () => {
    expect(validateInferenceConfig(DEFAULT_INFERENCE_CONFIG)).toEqual([]);
    const c = resolveInferenceConfig();
    expect(c).toEqual(DEFAULT_INFERENCE_CONFIG);
    expect(Object.isFrozen(c.batching.defaultDeadlineMs)).toBe(true);
    expect(c.executionProviders).toEqual(['tensorrt', 'cuda', 'cpu']);
  });

  it('lists every problem in one shape', () => {
    const c = structuredClone(DEFAULT_INFERENCE_CONFIG) as any;
    c.executionProviders = ['cuda', 'rocm'];
    c.workers = 0;
    c.batching.maxBatchSize = 16;
    c.batching.preferredBatchSizes = [8, 32];
    c.batching.queueFullPolicy = 'drop-live';
    c.batching.defaultDeadlineMs.live = -1;
    expect(validateInferenceConfig(c)).toEqual([
      'Expected one of tensorrt, cuda, webgpu, cpu for inference.executionProviders[1] but received "rocm" of type string',
      'Expected an integer 1..64 for inference.workers but received 0 of type number',
      'Expected an array of distinct integers 1..16 (batching.maxBatchSize) for inference.batching.preferredBatchSizes but received [8,32] of type array',
      'Expected one of reject-newest, shed-oldest-reanalysis for inference.batching.queueFullPolicy but received "drop-live" of type string',
      'Expected an integer 1..3600000 for inference.batching.defaultDeadlineMs.live but received -1 of type number',
    ]);
  });

  it('resolve merges partial input, reports unknown keys and throws the config code', () => {
    expect(resolveInferenceConfig({ batching: { maxBatchSize: 8, preferredBatchSizes: [4] } }).batching.maxQueueDelayMicros).toBe(2_000);
    try {
      resolveInferenceConfig({ batching: { maxBatch: 8 } } as never);
      throw new Error('expected a throw');
    } catch (err) {
      expect(err).toBeInstanceOf(ScanlineError);
      expect((err as ScanlineError).code).toBe('SCANLINE_ERR_CONFIG_INVALID');
      expect((err as ScanlineError).details.problems).toEqual(['Unknown configuration key inference.batching.maxBatch']);
    }
  });

  it('auto intra-op threads share the CPUs between workers', () => {
    expect(effectiveIntraOpThreads({ intraOpThreads: 3, workers: 2 })).toBe(3);
    expect(effectiveIntraOpThreads({ intraOpThreads: 0, workers: 1024 })).toBe(1);
  });
});
