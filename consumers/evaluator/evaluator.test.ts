import { describe, expect, it } from 'vitest';
import { gatePasses, rowScore } from './evaluator.js';

describe('rowScore', () => {
  const out = { label: 'UP', score: 0.8, probabilities: [0.2, 0.8], value: null };
  it.each([
    ['accuracy, right', 'accuracy', 'UP', 1],
    ['accuracy, wrong', 'accuracy', 'DOWN', 0],
    ['log loss of the true class', 'log_loss', 'DOWN', Math.log(0.2)],
  ])('%s', (_n, metric, truth, want) => {
    expect(rowScore(metric, out, truth, ['DOWN', 'UP'])).toBeCloseTo(want, 12);
  });
  it('regression scores minus the absolute error', () => {
    expect(rowScore('mae', { label: null, score: 3, probabilities: null, value: 3 }, 5, [])).toBe(-2);
  });
});

describe('the promotion gate', () => {
  const better = { gate: 'better' as const, minImprovement: 0, tolerance: 0 };
  const notWorse = { gate: 'not-worse' as const, minImprovement: 0, tolerance: 0.01 };
  it.each([
    ['better: clearly better', better, { lower: 0.01, upper: 0.03 }, true],
    ['better: not clearly better', better, { lower: -0.01, upper: 0.03 }, false],
    ['better: identical', better, { lower: 0, upper: 0 }, false],
    ['not-worse: identical', notWorse, { lower: 0, upper: 0 }, true],
    ['not-worse: unclear', notWorse, { lower: -0.02, upper: 0.01 }, true],
    ['not-worse: worse within the tolerance', notWorse, { lower: -0.03, upper: -0.005 }, true],
    ['not-worse: clearly worse', notWorse, { lower: -0.05, upper: -0.02 }, false],
    ['no interval', notWorse, null, false],
  ])('%s', (_n, p, ci, pass) => {
    expect(gatePasses(p, ci)).toBe(pass);
  });
});
