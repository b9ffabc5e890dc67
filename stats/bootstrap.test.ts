import { describe, expect, it } from 'vitest';
import { bootstrapDiffCI } from './bootstrap.js';
import { Mulberry32 } from './random.js';

/** Per-example correctness of two models on the same n rows, with accuracies pa and pb. */
function paired(n: number, seed: number, pa: number, pb: number): { a: number[]; b: number[] } {
  const r = new Mulberry32(seed);
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < n; i++) {
    a.push(r.next() < pa ? 1 : 0);
    b.push(r.next() < pb ? 1 : 0);
  }
  return { a, b };
}

describe('bootstrapDiffCI', () => {
  it('contains the true difference and excludes 0 when the difference is large', () => {
    const { a, b } = paired(2000, 1, 0.8, 0.6);
    const ci = bootstrapDiffCI(a, b, { seed: 7 });
    expect(ci?.lower).toBeLessThan(0.2);
    expect(ci?.upper).toBeGreaterThan(0.2);
    expect(ci?.lower).toBeGreaterThan(0);
    expect(ci?.meanDiff).toBeGreaterThan(ci?.lower ?? 1);
    expect(ci?.meanDiff).toBeLessThan(ci?.upper ?? 0);
  });

  it('covers a true difference of 0 in about 95 % of datasets when both models are equally good', () => {
    let covered = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const { a, b } = paired(500, seed, 0.7, 0.7);
      const ci = bootstrapDiffCI(a, b, { seed, iterations: 500 });
      if ((ci?.lower ?? 1) <= 0 && (ci?.upper ?? -1) >= 0) covered++;
    }
    expect(covered).toBeGreaterThanOrEqual(52);
  });

  it('narrows with the confidence level and has a plausible width', () => {
    const { a, b } = paired(2000, 3, 0.8, 0.6);
    const wide = bootstrapDiffCI(a, b, { seed: 1, confidence: 0.99 });
    const narrow = bootstrapDiffCI(a, b, { seed: 1, confidence: 0.8 });
    expect((wide?.upper ?? 0) - (wide?.lower ?? 0)).toBeGreaterThan((narrow?.upper ?? 0) - (narrow?.lower ?? 0));
    // sd of the mean difference ≈ √((.16 + .24)/2000) ≈ 0.0141; 95 % width ≈ 0.055
    const ci = bootstrapDiffCI(a, b, { seed: 1 });
    expect((ci?.upper ?? 0) - (ci?.lower ?? 0)).toBeCloseTo(0.055, 2);
  });

  it('is deterministic for a seed', () => {
    const { a, b } = paired(300, 4, 0.6, 0.5);
    expect(bootstrapDiffCI(a, b, { seed: 11, iterations: 200 })).toEqual(bootstrapDiffCI(a, b, { seed: 11, iterations: 200 }));
    expect(bootstrapDiffCI(a, b, { seed: 11, iterations: 200 })).not.toEqual(bootstrapDiffCI(a, b, { seed: 12, iterations: 200 }));
  });

  it('collapses to the point estimate when every pair has the same difference', () => {
    expect(bootstrapDiffCI([1, 1, 1], [0, 0, 0])).toEqual({ meanDiff: 1, lower: 1, upper: 1 });
  });

  it('is null on empty input and validates its arguments', () => {
    expect(bootstrapDiffCI([], [])).toBeNull();
    expect(() => bootstrapDiffCI([1], [1, 2])).toThrow(RangeError);
    expect(() => bootstrapDiffCI([1], [Number.NaN])).toThrow(RangeError);
    expect(() => bootstrapDiffCI([1], [1], { iterations: 0 })).toThrow(RangeError);
    expect(() => bootstrapDiffCI([1], [1], { confidence: 1 })).toThrow(RangeError);
  });
});
