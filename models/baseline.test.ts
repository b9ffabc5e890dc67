import { describe, it, expect } from 'vitest';
import { binIndex, computeBaseline, percentiles, scoreBin } from './baseline.js';
import type { NumericBaseline, CategoricalBaseline } from './baseline.js';
import type { FeatureRow, FeatureSpec } from './feature-spec.js';
import { randomSource } from './test-support.js';

const sum = (xs: number[]): number => xs.reduce((s, x) => s + x, 0);

describe('computeBaseline', () => {
  const { normal, uniform } = randomSource(7);
  const spec: FeatureSpec = {
    task: 'binary',
    features: [
      { name: 'amount', kind: 'numeric' },
      { name: 'flag', kind: 'numeric' },
      { name: 'country', kind: 'categorical', categories: ['DE', 'FR'] },
    ],
    classes: ['0', '1'],
  };
  const rows: FeatureRow[] = Array.from({ length: 500 }, (_, i) => ({
    amount: i % 20 === 0 ? null : Math.exp(normal()),
    flag: i % 3 === 0 ? 1 : 0, // heavy ties: deciles collapse
    country: i % 10 === 0 ? null : i % 7 === 0 ? 'US' : uniform() < 0.5 ? 'DE' : 'FR',
  }));
  const predictions = rows.map(() => {
    const score = uniform();
    return { label: score > 0.5 ? '1' : '0', score };
  });
  const baseline = computeBaseline(spec, rows, predictions);

  it.each(['amount', 'flag'])('numeric %s: monotone quantiles, deduplicated bins, proportions sum to 1', (name) => {
    const b = baseline.features[name] as NumericBaseline;
    expect(b.quantiles).toHaveLength(101);
    for (let i = 1; i < 101; i++) expect(b.quantiles[i]!).toBeGreaterThanOrEqual(b.quantiles[i - 1]!);
    expect(b.quantiles[0]).toBe(b.min);
    expect(b.quantiles[100]).toBe(b.max);
    expect(new Set(b.bins).size).toBe(b.bins.length);
    expect(b.proportions).toHaveLength(b.bins.length + 1);
    expect(sum(b.proportions)).toBeCloseTo(1, 12);
  });

  it('counts missing numeric values separately', () => {
    const amount = baseline.features.amount as NumericBaseline;
    expect(amount.missing).toBe(25);
    expect(amount.count).toBe(475);
    expect(amount.bins).toHaveLength(9);
  });

  it('categorical proportions include other and missing and sum to 1', () => {
    const country = baseline.features.country as CategoricalBaseline;
    expect(Object.keys(country.proportions).sort()).toEqual(['DE', 'FR', '__missing__', '__other__']);
    expect(country.proportions.__missing__).toBeCloseTo(0.1, 12);
    expect(country.proportions.__other__).toBeGreaterThan(0);
    expect(sum(Object.values(country.proportions))).toBeCloseTo(1, 12);
  });

  it('prediction distributions sum to 1', () => {
    const p = baseline.prediction;
    if (p.kind !== 'classification') throw new Error('expected classification baseline');
    expect(p.scoreHistogram).toHaveLength(10);
    expect(sum(p.scoreHistogram)).toBeCloseTo(1, 12);
    expect(sum(Object.values(p.classDistribution))).toBeCloseTo(1, 12);
  });

  it('is JSON-serialisable without loss', () => {
    expect(JSON.parse(JSON.stringify(baseline))).toEqual(baseline);
  });

  it('gives regression prediction quantiles', () => {
    const regSpec: FeatureSpec = { task: 'regression', features: [{ name: 'amount', kind: 'numeric' }], classes: [] };
    const b = computeBaseline(regSpec, rows, rows.map((_, i) => ({ label: null, score: 500 - i })));
    if (b.prediction.kind !== 'regression') throw new Error('expected regression baseline');
    expect(b.prediction.quantiles[0]).toBe(1);
    expect(b.prediction.quantiles[100]).toBe(500);
  });

  it('rejects mismatched predictions', () => {
    expect(() => computeBaseline(spec, rows, [])).toThrow(/0 predictions for 500 rows/);
  });
});

describe('binning helpers', () => {
  it.each<[number, number]>([
    [-5, 0], [1, 0], [1.5, 1], [2, 1], [3, 2], [99, 2],
  ])('binIndex([1, 2], %d) = %d', (x, bin) => {
    expect(binIndex([1, 2], x)).toBe(bin);
  });

  it.each<[number, number]>([
    [0, 0], [0.05, 0], [0.1, 1], [0.95, 9], [1, 9], [-0.1, 0],
  ])('scoreBin(%d) = %d', (score, bin) => {
    expect(scoreBin(score)).toBe(bin);
  });

  it('percentiles interpolate linearly', () => {
    const q = percentiles([0, 10]);
    expect(q[0]).toBe(0);
    expect(q[25]).toBeCloseTo(2.5, 12);
    expect(q[100]).toBe(10);
  });
});
