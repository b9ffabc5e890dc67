import { describe, expect, it } from 'vitest';
import { splitByTime } from '../model-builder/model-builder.js';
import { abArm, predictionId } from '../scorer/scorer.js';
import { rowScore } from './evaluator.js';

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

describe('time-based split', () => {
  it('holds out the newest rows and trains on the window before them', () => {
    const rows = Array.from({ length: 10 }, (_, i) => ({ eventTime: 100 - i })); // newest first
    const { holdout, train } = splitByTime(rows, 3, 4);
    expect(holdout.map((r) => r.eventTime)).toEqual([100, 99, 98]);
    expect(train.map((r) => r.eventTime)).toEqual([97, 96, 95, 94]);
    expect(Math.min(...holdout.map((r) => r.eventTime))).toBeGreaterThan(Math.max(...train.map((r) => r.eventTime)));
  });
});

describe('scorer ids and arms', () => {
  it('derives the prediction id from event, model version and variant', () => {
    expect(predictionId('e1', 'm', 3, 'champion')).toBe('e1/m@3/champion');
  });
  it('assigns A/B arms stably and in proportion', () => {
    const ids = Array.from({ length: 20_000 }, (_, i) => `e${i}`);
    const share = ids.filter((id) => abArm(id, 0.2) === 'ab').length / ids.length;
    expect(share).toBeGreaterThan(0.18);
    expect(share).toBeLessThan(0.22);
    expect(ids.map((id) => abArm(id, 0.2))).toEqual(ids.map((id) => abArm(id, 0.2)));
    expect(abArm('e1', 0)).toBe('champion');
  });
});
