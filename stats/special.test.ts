import { describe, expect, it } from 'vitest';
import { chiSquareSurvival, kolmogorovSurvival, logGamma, regularizedGammaQ } from './special.js';

describe('logGamma', () => {
  it.each([
    [1, 0],
    [5, Math.log(24)],
    [0.5, Math.log(Math.sqrt(Math.PI))],
    [10.5, Math.log(1133278.3889487855)],
  ])('lnΓ(%s)', (x, expected) => {
    expect(logGamma(x)).toBeCloseTo(expected, 10);
  });

  it('rejects x <= 0', () => {
    expect(() => logGamma(0)).toThrow(RangeError);
  });
});

describe('regularizedGammaQ / chiSquareSurvival', () => {
  it.each([
    // [statistic, dof, p] from standard chi-square tables
    [3.841459, 1, 0.05],
    [6.634897, 1, 0.01],
    [9.21034, 2, 0.01],
    [7.814728, 3, 0.05],
    [18.307038, 10, 0.05],
    [124.342113, 100, 0.05],
  ])('P(χ² ≥ %s | dof %s) = %s', (statistic, dof, p) => {
    expect(chiSquareSurvival(statistic, dof)).toBeCloseTo(p, 5);
  });

  it('matches the closed form Q(1, x) = e^-x on both sides of the series/fraction switch', () => {
    for (const x of [0.1, 1.5, 2, 10]) expect(regularizedGammaQ(1, x)).toBeCloseTo(Math.exp(-x), 12);
  });

  it('handles the end points', () => {
    expect(regularizedGammaQ(2, 0)).toBe(1);
    expect(regularizedGammaQ(2, Infinity)).toBe(0);
    expect(() => regularizedGammaQ(0, 1)).toThrow(RangeError);
  });
});

describe('kolmogorovSurvival', () => {
  it.each([
    // critical values of the Kolmogorov distribution
    [1.2238, 0.1],
    [1.3581, 0.05],
    [1.6276, 0.01],
    [0.8276, 0.5],
  ])('Q_KS(%s) = %s', (lambda, p) => {
    expect(kolmogorovSurvival(lambda)).toBeCloseTo(p, 3);
  });

  it('is continuous where the two series meet and bounded to [0, 1]', () => {
    expect(kolmogorovSurvival(1.18 - 1e-9)).toBeCloseTo(kolmogorovSurvival(1.18), 8);
    expect(kolmogorovSurvival(0)).toBe(1);
    expect(kolmogorovSurvival(0.01)).toBe(1);
    expect(kolmogorovSurvival(10)).toBeLessThan(1e-80);
  });
});
