import { describe, expect, it } from 'vitest';
import {
  accuracy,
  brier,
  expectedCalibrationError,
  logLoss,
  mae,
  multiclassLogLoss,
  QualityWindow,
  rmse,
  rocAuc,
  type QualityWindowState,
} from './quality.js';
import { Mulberry32 } from './random.js';

describe('array metrics: hand examples', () => {
  it.each([
    ['sklearn example', [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75],
    ['perfect ranking', [0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], 1],
    ['inverted ranking', [1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], 0],
    ['tie between a positive and a negative counts 1/2', [0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9], 0.875],
    ['all scores tied', [0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3], 0.5],
  ])('rocAuc: %s', (_, labels, scores, expected) => {
    expect(rocAuc(labels, scores)).toBeCloseTo(expected, 12);
  });

  it('rocAuc is null with a single class or no data', () => {
    expect(rocAuc([1, 1, 1], [0.2, 0.5, 0.9])).toBeNull();
    expect(rocAuc([0, 0], [0.2, 0.5])).toBeNull();
    expect(rocAuc([], [])).toBeNull();
  });

  it('logLoss matches the sklearn documentation example (0.21616)', () => {
    expect(logLoss([1, 0, 0, 1], [0.9, 0.1, 0.2, 0.65])).toBeCloseTo(0.2161616, 6);
    expect(
      multiclassLogLoss(['spam', 'ham', 'ham', 'spam'], [
        { ham: 0.1, spam: 0.9 },
        { ham: 0.9, spam: 0.1 },
        { ham: 0.8, spam: 0.2 },
        { ham: 0.35, spam: 0.65 },
      ]),
    ).toBeCloseTo(0.2161616, 6);
  });

  it('logLoss clips probabilities to [1e-15, 1 - 1e-15]', () => {
    expect(logLoss([1], [0])).toBeCloseTo(-Math.log(1e-15), 10);
    expect(logLoss([0], [1])).toBeCloseTo(-Math.log(1e-15), 1);
    expect(multiclassLogLoss(['c'], [{ a: 1 }])).toBeCloseTo(-Math.log(1e-15), 10);
  });

  it('expectedCalibrationError over 10 bins', () => {
    // bins: [0,.1) conf .05 acc 0; [.1,.2) conf .15 acc 0; [.9,1] conf .95 acc .5
    expect(expectedCalibrationError([0, 0, 1, 0], [0.05, 0.15, 0.95, 0.95])).toBeCloseTo(0.275, 12);
    expect(expectedCalibrationError([1, 0], [1, 0])).toBe(0);
  });

  it.each([
    ['accuracy', () => accuracy([1, 'a', 2, 3], ['1', 'a', 3, 3]), 0.75],
    ['brier', () => brier([1, 0], [0.8, 0.3]), 0.065],
    ['mae', () => mae([1, 2, 3], [2, 2, 5]), 1],
    ['rmse', () => rmse([1, 2, 3], [2, 2, 5]), Math.sqrt(5 / 3)],
  ])('%s', (_, compute, expected) => {
    expect(compute()).toBeCloseTo(expected, 12);
  });

  it.each([
    ['accuracy', () => accuracy([], [])],
    ['logLoss', () => logLoss([], [])],
    ['expectedCalibrationError', () => expectedCalibrationError([], [])],
    ['brier', () => brier([], [])],
    ['mae', () => mae([], [])],
    ['rmse', () => rmse([], [])],
  ])('%s is null on empty input', (_, compute) => {
    expect(compute()).toBeNull();
  });

  it.each([
    ['length mismatch', () => accuracy([1], [])],
    ['non-binary label', () => logLoss([2], [0.5])],
    ['NaN probability', () => brier([1], [Number.NaN])],
    ['NaN score', () => rocAuc([0, 1], [0.1, Number.NaN])],
    ['infinite value', () => mae([1], [Infinity])],
  ])('throws RangeError on %s', (_, compute) => {
    expect(compute).toThrow(RangeError);
  });
});

function randomBinary(n: number, seed: number): { labels: number[]; scores: number[] } {
  const r = new Mulberry32(seed);
  const labels: number[] = [];
  const scores: number[] = [];
  for (let i = 0; i < n; i++) {
    const y = r.next() < 0.3 ? 1 : 0;
    labels.push(y);
    scores.push(Math.min(1, Math.max(0, 0.3 + 0.3 * (y - 0.3) + 0.4 * (r.next() - 0.5))));
  }
  return { labels, scores };
}

describe('QualityWindow', () => {
  const binaryWindow = (labels: number[], scores: number[]): QualityWindow => {
    const w = new QualityWindow('binary');
    labels.forEach((label, i) => {
      const score = scores[i] ?? 0;
      w.add({ label, predicted: score >= 0.5 ? 1 : 0, score });
    });
    return w;
  };

  it('binary summary agrees with the array metrics', () => {
    const { labels, scores } = randomBinary(2000, 3);
    const s = binaryWindow(labels, scores).summary();
    expect(s.count).toBe(2000);
    expect(s.accuracy).toBeCloseTo(accuracy(labels, scores.map((p) => (p >= 0.5 ? 1 : 0))) ?? NaN, 12);
    expect(s.logLoss).toBeCloseTo(logLoss(labels, scores) ?? NaN, 12);
    expect(s.brier).toBeCloseTo(brier(labels, scores) ?? NaN, 12);
    expect(s.ece).toBeCloseTo(expectedCalibrationError(labels, scores) ?? NaN, 12);
    expect(Math.abs((s.rocAuc ?? NaN) - (rocAuc(labels, scores) ?? NaN))).toBeLessThan(2e-3);
    expect([s.mae, s.rmse, s.meanError]).toEqual([null, null, null]);
  });

  it('binary AUC is exact for scores on the bin grid', () => {
    const s = binaryWindow([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]).summary();
    expect(s.rocAuc).toBeCloseTo(0.875, 12);
  });

  it('merging two halves equals accumulating everything, and JSON round-trips', () => {
    const { labels, scores } = randomBinary(1000, 5);
    const whole = binaryWindow(labels, scores);
    const first = binaryWindow(labels.slice(0, 400), scores.slice(0, 400));
    const second = binaryWindow(labels.slice(400), scores.slice(400));
    const restored = QualityWindow.fromJSON(JSON.parse(JSON.stringify(first)) as QualityWindowState);
    restored.merge(second);
    const a = restored.summary();
    const b = whole.summary();
    for (const key of Object.keys(b) as (keyof typeof b)[]) {
      if (typeof b[key] === 'number') expect(a[key]).toBeCloseTo(b[key], 12);
      else expect(a[key]).toBe(b[key]);
    }
  });

  it('uses the configured positive label and skips score metrics without scores', () => {
    const w = new QualityWindow('binary', { positiveLabel: 'fraud' });
    w.add({ label: 'fraud', predicted: 'fraud', score: 0.9 });
    w.add({ label: 'ok', predicted: 'ok', score: 0.2 });
    w.add({ label: 'ok', predicted: 'fraud' });
    const s = w.summary();
    expect(s.accuracy).toBeCloseTo(2 / 3, 12);
    expect(s.logLoss).toBeCloseTo(-(Math.log(0.9) + Math.log(0.8)) / 2, 12);
    expect(s.rocAuc).toBe(1);
  });

  it('multiclass: accuracy, log loss, Brier and top-label ECE', () => {
    const w = new QualityWindow('multiclass');
    w.add({ label: 'a', predicted: 'a', probabilities: { a: 0.7, b: 0.2, c: 0.1 } });
    w.add({ label: 'b', predicted: 'a', probabilities: { a: 0.6, b: 0.4 } });
    const s = w.summary();
    expect(s.accuracy).toBe(0.5);
    expect(s.logLoss).toBeCloseTo(-(Math.log(0.7) + Math.log(0.4)) / 2, 12);
    expect(s.brier).toBeCloseTo((0.3 ** 2 + 0.2 ** 2 + 0.1 ** 2 + 0.6 ** 2 + 0.6 ** 2) / 2, 12);
    // both in bin [.6, .7) / [.7, .8): |1 - .7|/2 + |0 - .6|/2
    expect(s.ece).toBeCloseTo(0.45, 12);
    expect(s.rocAuc).toBeNull();
  });

  it('regression: mae, rmse and mean error (predicted - actual)', () => {
    const w = new QualityWindow('regression');
    [
      [1, 2],
      [2, 2],
      [3, 5],
    ].forEach(([label = 0, value = 0]) => w.add({ label, value }));
    expect(w.summary()).toMatchObject({ count: 3, mae: 1, rmse: Math.sqrt(5 / 3), meanError: 1, accuracy: null, logLoss: null });
  });

  it('an empty window has count 0 and null metrics; reset empties it', () => {
    const w = binaryWindow([1, 0], [0.9, 0.1]);
    w.reset();
    expect(w.summary()).toEqual({
      task: 'binary',
      count: 0,
      accuracy: null,
      logLoss: null,
      rocAuc: null,
      ece: null,
      brier: null,
      mae: null,
      rmse: null,
      meanError: null,
    });
  });

  it.each([
    ['regression without value', 'regression', { label: 1 }],
    ['regression with a string label', 'regression', { label: '1', value: 1 }],
    ['classification without predicted', 'binary', { label: 1, score: 0.5 }],
    ['a NaN score', 'binary', { label: 1, predicted: 1, score: Number.NaN }],
  ] as const)('add throws RangeError on %s', (_, task, record) => {
    expect(() => new QualityWindow(task).add(record)).toThrow(RangeError);
  });

  it('refuses to merge incompatible windows', () => {
    expect(() => new QualityWindow('binary').merge(new QualityWindow('multiclass'))).toThrow(RangeError);
    expect(() => new QualityWindow('binary').merge(new QualityWindow('binary', { aucBins: 10 }))).toThrow(RangeError);
  });
});
