import { describe, expect, it } from 'vitest';
import { ConfigError } from '../core/errors.js';
import { copartitionedAssignment } from './assigner.js';
import { compileWorkerConfig, envKey, setting } from './definition.js';
import { backoffMs, RetryState } from './retry.js';

const def = { name: 'model-builder', settings: { minRows: setting.integer(100, 2, 1000, 'rows'), mode: setting.choice('a', ['a', 'b'] as const, 'mode'), on: setting.boolean(false, 'flag') }, runtime: { sessionTimeoutMs: 60_000 } };

describe('worker settings', () => {
  it('names env keys by worker and setting', () => {
    expect(envKey('model-builder', 'minRows')).toBe('LOOPLINE_MODEL_BUILDER_MIN_ROWS');
    expect(envKey('worker', 'batchMax')).toBe('LOOPLINE_WORKER_BATCH_MAX');
  });

  it('compiles defaults, the definition\'s runtime defaults, per-worker and all-worker overrides', () => {
    const c = compileWorkerConfig(def, { LOOPLINE_MODEL_BUILDER_MIN_ROWS: '250', LOOPLINE_MODEL_BUILDER_ON: 'yes', LOOPLINE_WORKER_BATCH_MAX: '50', LOOPLINE_MODEL_BUILDER_BATCH_MAX: '20' });
    expect(c.settings).toEqual({ minRows: 250, mode: 'a', on: true });
    expect(c.runtime).toMatchObject({ batchMax: 20, sessionTimeoutMs: 60_000, commitIntervalMs: 100, retry: { budgetMs: 300_000 } });
    expect(compileWorkerConfig(def, {}, { batchMax: 7 }).runtime.batchMax).toBe(7);
  });

  it('fails at start naming every bad key and the values it accepts', () => {
    const bad = () => compileWorkerConfig(def, { LOOPLINE_MODEL_BUILDER_MIN_ROWS: 'abc', LOOPLINE_MODEL_BUILDER_MODE: 'c', LOOPLINE_WORKER_BATCH_MAX: '0' });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/LOOPLINE_MODEL_BUILDER_MIN_ROWS must be an integer in 2\.\.1000 \(got "abc"\)/);
    expect(bad).toThrow(/LOOPLINE_MODEL_BUILDER_MODE must be one of a, b/);
    expect(bad).toThrow(/LOOPLINE_WORKER_BATCH_MAX must be an integer in 1\.\.10000/);
  });
});

describe('co-partitioned assignment', () => {
  it('gives partition i of every topic to the same member, round-robin over members in id order', () => {
    const a = copartitionedAssignment(['m2', 'm1'], { labels: [0, 1, 2], preds: [0, 1, 2] });
    expect(a).toEqual({ m1: { labels: [0, 2], preds: [0, 2] }, m2: { labels: [1], preds: [1] } });
    expect(copartitionedAssignment([], { t: [0] })).toEqual({});
  });
});

describe('retry backoff', () => {
  it('doubles from the initial backoff up to the maximum, with jitter', () => {
    const p = { initialMs: 10, maxMs: 100, budgetMs: 1000 };
    expect([1, 2, 3, 4, 5].map((n) => backoffMs(p, n, () => 0.5))).toEqual([10, 20, 40, 80, 100]);
    expect(backoffMs(p, 1, () => 0)).toBe(8);
  });

  it('spends the budget by time failing, not by attempts, and resets on success', () => {
    let now = 0;
    const s = new RetryState({ initialMs: 10, maxMs: 100, budgetMs: 1000 }, () => now);
    expect(s.failed()).not.toBeNull();
    now = 900;
    expect(s.failed()).not.toBeNull();
    now = 1001;
    expect(s.failed()).toBeNull();
    s.succeeded();
    expect(s.failed()).not.toBeNull();
  });
});
