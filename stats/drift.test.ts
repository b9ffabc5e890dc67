import { describe, expect, it } from 'vitest';
import {
  chiSquare,
  FeatureDriftAccumulator,
  histogram,
  ksStatisticFromQuantiles,
  psi,
  type FeatureBaseline,
  type FeatureDriftState,
} from './drift.js';
import { Mulberry32 } from './random.js';

function normals(n: number, seed: number, mean = 0): number[] {
  const r = new Mulberry32(seed);
  return Array.from({ length: n }, () => mean + Math.sqrt(-2 * Math.log(1 - r.next())) * Math.cos(2 * Math.PI * r.next()));
}

/** q0..q100 of a sample (type 7). */
function percentiles(values: readonly number[]): number[] {
  const s = [...values].sort((a, b) => a - b);
  return Array.from({ length: 101 }, (_, j) => {
    const pos = ((s.length - 1) * j) / 100;
    const lo = Math.floor(pos);
    const a = s[lo] ?? 0;
    return a + (pos - lo) * ((s[Math.min(lo + 1, s.length - 1)] ?? a) - a);
  });
}

const uniformQuantiles = Array.from({ length: 101 }, (_, j) => j / 100);
const normalBaseline = percentiles(normals(100_000, 99));

describe('psi', () => {
  it.each([
    ['identical distributions', [0.25, 0.25, 0.5], [25, 25, 50], 0],
    ['hand example', [0.5, 0.5], [30, 70], -0.2 * Math.log(0.6) + 0.2 * Math.log(1.4)],
    ['unnormalised expected proportions', [1, 1], [30, 70], -0.2 * Math.log(0.6) + 0.2 * Math.log(1.4)],
    ['empty actual bin floored at epsilon', [0.5, 0.5], [0, 10], (0.0001 - 0.5) * Math.log(0.0001 / 0.5) + 0.5 * Math.log(2)],
  ])('%s', (_, expected, actual, value) => {
    expect(psi(expected, actual)).toBeCloseTo(value, 10);
  });

  it('is null without observations and throws on bad input', () => {
    expect(psi([0.5, 0.5], [0, 0])).toBeNull();
    expect(() => psi([0.5, 0.5], [1])).toThrow(RangeError);
    expect(() => psi([0, 0], [1, 1])).toThrow(RangeError);
    expect(() => psi([0.5, 0.5], [-1, 2])).toThrow(RangeError);
  });
});

describe('histogram', () => {
  it('bins [e_i, e_i+1), closes the last bin and folds out-of-range values into the end bins', () => {
    expect(histogram([-5, 0, 0.5, 1, 1.5, 2, 2, 9, Number.NaN, -Infinity, Infinity], [0, 1, 2])).toEqual([4, 6]);
    expect(histogram([0.999, 1, 2.5], [0, 1, 2, 3])).toEqual([1, 1, 1]);
  });

  it.each([[[1]], [[0, 0, 1]], [[1, 0]], [[0, Number.NaN]]])('rejects edges %j', (edges) => {
    expect(() => histogram([1], edges)).toThrow(RangeError);
  });
});

describe('ksStatisticFromQuantiles', () => {
  it.each([
    ['three points vs U(0,1)', [0.25, 0.5, 0.75], 0.25],
    ['one point vs U(0,1)', [0.9], 0.9],
    ['values outside the baseline range', [-1, 2], 0.5],
  ])('statistic: %s', (_, sample, d) => {
    expect(ksStatisticFromQuantiles(uniformQuantiles, sample)?.statistic).toBeCloseTo(d, 12);
  });

  it('treats repeated quantiles as a point mass', () => {
    // zero-inflated baseline: P(0) = 0.5, then uniform on (0, 1]
    const q = Array.from({ length: 101 }, (_, j) => (j <= 50 ? 0 : (j - 50) / 50));
    const sample = [...Array.from({ length: 50 }, () => 0), ...Array.from({ length: 50 }, (_, k) => (k + 0.5) / 50)];
    expect(ksStatisticFromQuantiles(q, sample)?.statistic).toBeLessThanOrEqual(0.01 + 1e-12);
    expect(ksStatisticFromQuantiles(q, Array.from({ length: 100 }, (_, k) => (k + 0.5) / 100))?.statistic).toBeCloseTo(0.5, 2);
  });

  it('p-value is tiny for a shifted normal and not small for the same normal', () => {
    const shifted = ksStatisticFromQuantiles(normalBaseline, normals(1000, 1, 0.5));
    const same = ksStatisticFromQuantiles(normalBaseline, normals(1000, 2));
    expect(shifted?.pValue).toBeLessThan(1e-10);
    expect(same?.pValue).toBeGreaterThan(0.1);
    expect(same?.n).toBe(1000);
  });

  it('p-values of same-distribution samples are roughly uniform (≈5 % below 0.05)', () => {
    let rejections = 0;
    for (let seed = 1; seed <= 200; seed++) {
      if ((ksStatisticFromQuantiles(normalBaseline, normals(300, seed * 31))?.pValue ?? 1) < 0.05) rejections++;
    }
    expect(rejections).toBeGreaterThanOrEqual(2);
    expect(rejections).toBeLessThanOrEqual(20);
  });

  it('is null for an empty sample and validates its input', () => {
    expect(ksStatisticFromQuantiles(uniformQuantiles, [])).toBeNull();
    expect(() => ksStatisticFromQuantiles([1], [1])).toThrow(RangeError);
    expect(() => ksStatisticFromQuantiles([1, 0], [1])).toThrow(RangeError);
    expect(() => ksStatisticFromQuantiles(uniformQuantiles, [Number.NaN])).toThrow(RangeError);
  });
});

describe('chiSquare', () => {
  it("Mendel's peas (9:3:3:1): χ² = 0.470, dof 3, p = 0.9254", () => {
    const r = chiSquare({ RY: 9, WY: 3, RG: 3, WG: 1 }, { RY: 315, WY: 108, RG: 101, WG: 32 });
    expect(r?.statistic).toBeCloseTo(0.470024, 5);
    expect(r?.dof).toBe(3);
    expect(Math.abs((r?.pValue ?? 0) - 0.9254)).toBeLessThan(1e-3);
  });

  it('loaded die: χ² = 13.4, dof 5, p = 0.0199', () => {
    const r = chiSquare({ 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1 }, { 1: 5, 2: 8, 3: 9, 4: 8, 5: 10, 6: 20 });
    expect(r?.statistic).toBeCloseTo(13.4, 10);
    expect(r?.dof).toBe(5);
    expect(r?.pValue).toBeCloseTo(0.019905, 4);
  });

  it('merges categories with expected count < 5', () => {
    // expected counts 50, 45, 3, 2 → the last two are pooled (5): 3 cells
    const r = chiSquare({ a: 0.5, b: 0.45, c: 0.03, d: 0.02 }, { a: 50, b: 45, c: 2, d: 3 });
    expect(r?.dof).toBe(2);
    expect(r?.statistic).toBeCloseTo(0, 12);
    // a pool still below 5 joins the smallest other cell: c (3) goes into b (47)
    expect(chiSquare({ a: 0.5, b: 0.47, c: 0.03 }, { a: 50, b: 44, c: 6 })).toEqual({ statistic: 0, dof: 1, pValue: 1 });
  });

  it('pools unseen categories; a frequent new category is detected, a rare one is not', () => {
    const expected = { a: 0.5, b: 0.5 };
    const rare = chiSquare(expected, { a: 500, b: 499, zzz: 1 });
    const frequent = chiSquare(expected, { a: 400, b: 400, zzz: 200 });
    expect(rare?.pValue).toBeGreaterThan(0.5);
    expect(frequent?.pValue).toBeLessThan(1e-6);
  });

  it('is null without observations; one cell gives dof 0 and p = 1', () => {
    expect(chiSquare({ a: 1 }, {})).toBeNull();
    expect(chiSquare({ a: 1 }, { a: 10 })).toEqual({ statistic: 0, dof: 0, pValue: 1 });
    expect(() => chiSquare({ a: 0 }, { a: 1 })).toThrow(RangeError);
    expect(() => chiSquare({ a: 1 }, { a: -1 })).toThrow(RangeError);
  });
});

describe('FeatureDriftAccumulator', () => {
  const edges = [-3, -2, -1, 0, 1, 2, 3];
  const cdf = (x: number): number => normalBaseline.filter((q) => q < x).length / 101;
  const proportions = edges.slice(1).map((e, i) => (i === edges.length - 2 ? 1 : cdf(e)) - (i === 0 ? 0 : cdf(edges[i] ?? 0)));
  const baselines: Record<string, FeatureBaseline> = {
    amount: { type: 'numeric', edges, proportions, quantiles: normalBaseline },
    country: { type: 'categorical', proportions: { fr: 0.5, de: 0.3, it: 0.2 } },
  };
  const countries = ['fr', 'fr', 'fr', 'fr', 'fr', 'de', 'de', 'de', 'it', 'it'];

  function feed(acc: FeatureDriftAccumulator, n: number, seed: number, shift: number, newCountry: boolean): void {
    const xs = normals(n, seed, shift);
    xs.forEach((amount, i) => {
      const country = newCountry && i % 4 === 0 ? 'es' : countries[i % countries.length];
      acc.add({ amount, country, unrelated: 'x' });
    });
  }

  it('flags nothing on data from the baseline', () => {
    const acc = new FeatureDriftAccumulator(baselines, { seed: 3 });
    feed(acc, 5000, 11, 0, false);
    const [amount, country] = acc.results();
    expect(amount).toMatchObject({ feature: 'amount', type: 'numeric', count: 5000, missing: 0, drifted: false });
    expect(amount?.psi).toBeLessThan(0.05);
    expect(amount?.ks?.n).toBe(2000);
    expect(amount?.ks?.pValue).toBeGreaterThan(0.01);
    expect(amount?.chiSquare).toBeUndefined();
    expect(country).toMatchObject({ feature: 'country', type: 'categorical', count: 5000, drifted: false });
    expect(country?.chiSquare?.pValue).toBeGreaterThan(0.01);
    expect(country?.ks).toBeUndefined();
  });

  it('flags a shifted numeric feature and a new category', () => {
    const acc = new FeatureDriftAccumulator(baselines, { seed: 3 });
    feed(acc, 5000, 11, 0.5, true);
    const [amount, country] = acc.results();
    expect(amount?.drifted).toBe(true);
    expect(amount?.ks?.pValue).toBeLessThan(1e-6);
    expect(country?.drifted).toBe(true);
    expect(country?.psi).toBeGreaterThan(0.2);
  });

  it('counts missing values and does not flag below minSamples', () => {
    const acc = new FeatureDriftAccumulator(baselines, { minSamples: 100 });
    for (let i = 0; i < 50; i++) acc.add({ amount: 10, country: 'es' });
    acc.add({ amount: null, country: undefined });
    acc.add({ amount: Number.NaN });
    const [amount, country] = acc.results();
    expect(amount).toMatchObject({ count: 50, missing: 2, drifted: false });
    expect(amount?.psi).toBeGreaterThan(1);
    expect(country).toMatchObject({ count: 50, missing: 2, drifted: false });
  });

  it('rejects values of the wrong type without a partial update', () => {
    const acc = new FeatureDriftAccumulator(baselines);
    expect(() => acc.add({ amount: '1.5', country: 'fr' })).toThrow(RangeError);
    expect(() => acc.add({ amount: Infinity, country: 'fr' })).toThrow(RangeError);
    expect(() => acc.add({ amount: 1, country: { code: 'fr' } })).toThrow(RangeError);
    expect(acc.results().map((r) => r.count + r.missing)).toEqual([0, 0]);
  });

  it('keeps at most testSampleSize values and restores exactly from JSON', () => {
    const original = new FeatureDriftAccumulator(baselines, { seed: 5, testSampleSize: 300 });
    feed(original, 1000, 21, 0, false);
    const restored = FeatureDriftAccumulator.fromJSON(JSON.parse(JSON.stringify(original)) as FeatureDriftState);
    feed(original, 1000, 22, 0.2, true);
    feed(restored, 1000, 22, 0.2, true);
    expect(restored.toJSON()).toEqual(original.toJSON());
    expect(restored.results()).toEqual(original.results());
    const amountState = original.toJSON().features[0];
    expect(amountState?.type === 'numeric' && amountState.reservoir.length).toBe(300);
  });

  it('reset starts a new window', () => {
    const acc = new FeatureDriftAccumulator(baselines);
    feed(acc, 500, 1, 1, true);
    acc.reset();
    expect(acc.results().map((r) => [r.count, r.psi, r.drifted])).toEqual([
      [0, null, false],
      [0, null, false],
    ]);
  });

  it.each([
    ['proportions length', { x: { type: 'numeric', edges: [0, 1, 2], proportions: [1] } }],
    ['unsorted edges', { x: { type: 'numeric', edges: [0, 2, 1], proportions: [0.5, 0.5] } }],
    ['unsorted quantiles', { x: { type: 'numeric', edges: [0, 1], proportions: [1], quantiles: [1, 0] } }],
    ['all-zero categories', { x: { type: 'categorical', proportions: { a: 0 } } }],
  ] as [string, Record<string, FeatureBaseline>][])('rejects a baseline with bad %s', (_, b) => {
    expect(() => new FeatureDriftAccumulator(b)).toThrow(RangeError);
  });
});
