import { describe, expect, it } from 'vitest';
import {
  applyScoreMap,
  calibrate,
  calibrateVector,
  calibrationErrorOf,
  fitCalibrator,
  fitIsotonic,
  fitPlatt,
  fitTemperature,
  identityCalibrator,
  resolveCalibrationOptions,
  type CalibrationExample,
  type CalibrationMethod,
} from './calibration.js';
import { expectedCalibrationError } from './quality.js';
import { Mulberry32 } from './random.js';

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
const logit = (p: number): number => Math.log(p / (1 - p));

/** Binary examples whose true P(UP) is p but whose model says σ(k·logit(p) + shift). */
function binaryExamples(n: number, seed: number, k = 1, shift = 0): Array<CalibrationExample & { truth: number }> {
  const g = new Mulberry32(seed);
  return Array.from({ length: n }, () => {
    const truth = sigmoid(4 * (g.next() - 0.5) * 2);
    const raw = sigmoid(k * logit(truth) + shift);
    return { truth, probabilities: { DOWN: 1 - raw, UP: raw }, label: g.next() < truth ? 'UP' : 'DOWN' };
  });
}

function ece(examples: readonly CalibrationExample[], map: (e: CalibrationExample) => number): number {
  return expectedCalibrationError(examples.map((e) => (e.label === 'UP' ? 1 : 0)), examples.map(map))!;
}

describe('isotonic regression (pool adjacent violators)', () => {
  it('pools violators and interpolates between block ends, clipping outside', () => {
    const map = fitIsotonic([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1]);
    expect(map).toEqual({ kind: 'isotonic', x: [0.1, 0.2, 0.3, 0.4], y: [0, 0.5, 0.5, 1] });
    expect(applyScoreMap(map, 0.05)).toBe(0);
    expect(applyScoreMap(map, 0.25)).toBe(0.5);
    expect(applyScoreMap(map, 0.35)).toBeCloseTo(0.75, 12);
    expect(applyScoreMap(map, 0.99)).toBe(1);
  });

  it('pools equal scores first and is non-decreasing on noisy data', () => {
    expect(fitIsotonic([0.5, 0.5, 0.5, 0.7], [1, 0, 0, 1])).toEqual({ kind: 'isotonic', x: [0.5, 0.7], y: [1 / 3, 1] });
    const g = new Mulberry32(3);
    const scores = Array.from({ length: 500 }, () => g.next());
    const map = fitIsotonic(scores, scores.map((s) => (g.next() < s ? 1 : 0)));
    let last = -1;
    for (let p = 0; p <= 1; p += 0.001) {
      const v = applyScoreMap(map, p);
      expect(v).toBeGreaterThanOrEqual(last);
      last = v;
    }
  });
});

describe('parametric calibrators recover the distortion they model', () => {
  it('Platt scaling finds a and b of σ(a·logit(p) + b)', () => {
    const g = new Mulberry32(11);
    const scores: number[] = [];
    const outcomes: number[] = [];
    for (let i = 0; i < 40000; i++) {
      const s = sigmoid(6 * (g.next() - 0.5));
      scores.push(s);
      outcomes.push(g.next() < sigmoid(0.5 * logit(s) - 0.4) ? 1 : 0);
    }
    const map = fitPlatt(scores, outcomes);
    expect(map.kind).toBe('platt');
    if (map.kind !== 'platt') return;
    expect(map.a).toBeCloseTo(0.5, 1);
    expect(map.b).toBeCloseTo(-0.4, 1);
  });

  it('temperature scaling finds T of softmax(logits / T)', () => {
    const g = new Mulberry32(5);
    const rows: number[][] = [];
    const labels: number[] = [];
    for (let i = 0; i < 20000; i++) {
      const logits = [0, 1, 2].map(() => 4 * (g.next() - 0.5));
      const softmax = (t: number): number[] => {
        const e = logits.map((l) => Math.exp(l / t));
        const s = e.reduce((a, b) => a + b, 0);
        return e.map((v) => v / s);
      };
      rows.push(softmax(1)); // the model is 2× overconfident
      const truth = softmax(2);
      const u = g.next();
      labels.push(u < truth[0]! ? 0 : u < truth[0]! + truth[1]! ? 1 : 2);
    }
    expect(fitTemperature(rows, labels)).toBeCloseTo(2, 1);
  });
});

describe('fitCalibrator: a miscalibrated model is fixed, out of sample', () => {
  it.each<[CalibrationMethod]>([['isotonic'], ['platt'], ['temperature']])('%s fixes an overconfident binary model', (method) => {
    const reference = binaryExamples(3000, 1, 3);
    const test = binaryExamples(20000, 2, 3);
    const { calibrator, check } = fitCalibrator(['DOWN', 'UP'], reference, { method });
    expect(check.applied).toBe(method);
    expect(check.eceRaw!).toBeGreaterThan(0.08);
    expect(check.eceCalibrated!).toBeLessThan(0.04);
    expect(check.flagged).toBe(false);
    expect(ece(test, (e) => e.probabilities.UP!)).toBeGreaterThan(0.08);
    expect(ece(test, (e) => calibrate(calibrator, e.probabilities).UP!)).toBeLessThan(0.02);
  });

  it('isotonic and Platt fix a shifted base rate; temperature cannot (no bias term), and its check says so', () => {
    const reference = binaryExamples(3000, 3, 1, 1.5);
    const test = binaryExamples(20000, 4, 1, 1.5);
    for (const method of ['isotonic', 'platt'] as const) {
      const { calibrator } = fitCalibrator(['DOWN', 'UP'], reference, { method });
      expect(ece(test, (e) => calibrate(calibrator, e.probabilities).UP!)).toBeLessThan(0.02);
    }
    const { check } = fitCalibrator(['DOWN', 'UP'], reference, { method: 'temperature' });
    expect(check.ece!).toBeGreaterThan(0.05);
    expect(check.flagged).toBe(true);
  });

  it('one-vs-rest isotonic fixes an overconfident 3-class model and rows sum to 1', () => {
    const g = new Mulberry32(9);
    const classes = ['a', 'b', 'c'];
    const make = (n: number): CalibrationExample[] =>
      Array.from({ length: n }, () => {
        const logits = classes.map(() => 3 * (g.next() - 0.5));
        const soft = (t: number): number[] => {
          const e = logits.map((l) => Math.exp(l / t));
          const s = e.reduce((x, y) => x + y, 0);
          return e.map((v) => v / s);
        };
        const raw = soft(0.4);
        const truth = soft(1);
        const u = g.next();
        const y = u < truth[0]! ? 0 : u < truth[0]! + truth[1]! ? 1 : 2;
        return { probabilities: Object.fromEntries(classes.map((c, i) => [c, raw[i]!])), label: classes[y]! };
      });
    const reference = make(4000);
    const test = make(20000);
    const { calibrator, check } = fitCalibrator(classes, reference, { method: 'isotonic' });
    expect(check.applied).toBe('isotonic');
    const index = (e: CalibrationExample): number => classes.indexOf(String(e.label));
    const raw = test.map((e) => classes.map((c) => e.probabilities[c]!));
    const cal = raw.map((r) => calibrateVector(calibrator, r));
    for (const r of cal.slice(0, 100)) expect(r.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(calibrationErrorOf(classes, raw, test.map(index))!).toBeGreaterThan(0.1);
    expect(calibrationErrorOf(classes, cal, test.map(index))!).toBeLessThan(0.03);
  });

  it('keeps the identity, saying why, when the reference is too small, one-class, or calibration does not help', () => {
    const few = fitCalibrator(['DOWN', 'UP'], binaryExamples(50, 5, 3));
    expect(few.calibrator.method).toBe('identity');
    expect(few.check.reason).toBe('too few examples (50 < 100)');
    const oneClass = fitCalibrator(['DOWN', 'UP'], binaryExamples(500, 6, 3).map((e) => ({ ...e, label: 'UP' })));
    expect(oneClass.check).toMatchObject({ applied: 'identity', reason: 'the reference has a single class' });
    // Labels unrelated to a constant score: no map can lower the ECE below the raw one of a matching constant.
    const constant = Array.from({ length: 400 }, (_, i) => ({ probabilities: { DOWN: 0.5, UP: 0.5 }, label: i % 2 ? 'UP' : 'DOWN' }));
    const none = fitCalibrator(['DOWN', 'UP'], constant, { method: 'isotonic' });
    expect(none.check.applied).toBe('identity');
    expect(none.check.reason).toMatch(/does not lower the cross-fitted calibration error/);
    expect(none.check.ece).toBe(0);
  });

  it('skips examples whose label is not a class, and a fitted calibrator survives JSON', () => {
    const reference = [...binaryExamples(1000, 7, 3), { probabilities: { DOWN: 0.5, UP: 0.5 }, label: 'SIDEWAYS' }];
    const { calibrator, check } = fitCalibrator(['DOWN', 'UP'], reference, { method: 'isotonic' });
    expect(check.examples).toBe(1000);
    const restored = JSON.parse(JSON.stringify(calibrator)) as typeof calibrator;
    for (const p of [0, 0.01, 0.3, 0.5, 0.77, 1]) expect(calibrate(restored, { DOWN: 1 - p, UP: p })).toEqual(calibrate(calibrator, { DOWN: 1 - p, UP: p }));
  });

  it('the identity changes nothing and malformed input throws RangeError naming the key', () => {
    expect(calibrate(identityCalibrator(['DOWN', 'UP']), { DOWN: 0.2, UP: 0.8 })).toEqual({ DOWN: 0.2, UP: 0.8 });
    expect(() => identityCalibrator(['only'])).toThrow(RangeError);
    expect(() => resolveCalibrationOptions({ method: 'magic' as CalibrationMethod })).toThrow(/method must be one of isotonic, platt, temperature, identity/);
    expect(() => resolveCalibrationOptions({ folds: 1 })).toThrow(/folds/);
    expect(() => resolveCalibrationOptions({ eceThreshold: 0 })).toThrow(/eceThreshold/);
    expect(() => calibrate(identityCalibrator(['DOWN', 'UP']), { DOWN: Number.NaN, UP: 0.5 })).toThrow(RangeError);
  });
});
