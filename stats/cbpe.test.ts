import { describe, expect, it } from 'vitest';
import type { CalibrationExample } from './calibration.js';
import {
  cbpeConfig,
  CbpeMonitor,
  cbpeSupport,
  CbpeWindow,
  estimateBelowTarget,
  estimateMetrics,
  type CbpeMonitorState,
  type CbpePrediction,
  type CbpeWindowReport,
} from './cbpe.js';
import { accuracy, QualityWindow, rocAuc } from './quality.js';
import { Mulberry32 } from './random.js';

const CLASSES = ['DOWN', 'UP'];
const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
const logit = (p: number): number => Math.log(p / (1 - p));

interface Synthetic {
  probabilities: Record<string, number>;
  predicted: string;
  label: string;
}

/** Binary predictions whose true P(UP) is `truth`; the model reports σ(k·logit(truth)) (k = 1: calibrated). */
function binary(n: number, seed: number, k = 1): Synthetic[] {
  const g = new Mulberry32(seed);
  return Array.from({ length: n }, () => {
    const truth = sigmoid(3 * (2 * g.next() - 1));
    const raw = sigmoid(k * logit(truth));
    return { probabilities: { DOWN: 1 - raw, UP: raw }, predicted: raw >= 0.5 ? 'UP' : 'DOWN', label: g.next() < truth ? 'UP' : 'DOWN' };
  });
}

function realised(rows: readonly Synthetic[]) {
  const y = rows.map((r) => (r.label === 'UP' ? 1 : 0));
  const pred = rows.map((r) => (r.predicted === 'UP' ? 1 : 0));
  const tp = y.filter((v, i) => v === 1 && pred[i] === 1).length;
  const predictedPositive = pred.filter((v) => v === 1).length;
  const positives = y.filter((v) => v === 1).length;
  return {
    accuracy: accuracy(rows.map((r) => r.label), rows.map((r) => r.predicted))!,
    rocAuc: rocAuc(y, rows.map((r) => r.probabilities.UP!))!,
    precision: tp / predictedPositive,
    recall: tp / positives,
    f1: (2 * tp) / (predictedPositive + positives),
  };
}

describe('cbpeSupport', () => {
  it('classification is supported; regression says why not', () => {
    expect(cbpeSupport('binary')).toEqual({ supported: true });
    expect(cbpeSupport('multiclass')).toEqual({ supported: true });
    const r = cbpeSupport('regression');
    expect(r.supported).toBe(false);
    if (!r.supported) expect(r.reason).toMatch(/point value only/);
    const u = cbpeSupport('regression', { predictiveUncertainty: true });
    expect(u.supported).toBe(false);
    if (!u.supported) expect(u.reason).toMatch(/no estimator is implemented/);
  });
});

describe('CbpeWindow: calibrated probabilities give the truth', () => {
  it('binary: accuracy, AUC, precision, recall and F1 estimates match the realised values', () => {
    const rows = binary(20000, 1);
    const w = new CbpeWindow(CLASSES);
    for (const r of rows) w.add(r);
    const e = w.estimate();
    const truth = realised(rows);
    expect(e.count).toBe(20000);
    expect(e.calibrated).toBe(0);
    expect(Math.abs(e.accuracy!.value - truth.accuracy)).toBeLessThan(3 * e.accuracy!.stdError);
    expect(truth.accuracy).toBeGreaterThanOrEqual(e.accuracy!.lower);
    expect(truth.accuracy).toBeLessThanOrEqual(e.accuracy!.upper);
    expect(e.uncalibratedAccuracy).toBe(e.accuracy!.value);
    expect(Math.abs(e.rocAuc!.value - truth.rocAuc)).toBeLessThan(3 * e.rocAuc!.stdError);
    expect(Math.abs(e.precision!.value - truth.precision)).toBeLessThan(0.015);
    expect(Math.abs(e.recall! - truth.recall)).toBeLessThan(0.015);
    expect(Math.abs(e.f1! - truth.f1)).toBeLessThan(0.015);
  });

  it('estimated windows of 500 bracket the realised accuracy about as often as the band says', () => {
    const rows = binary(200 * 500, 2);
    let covered = 0;
    for (let k = 0; k < 200; k++) {
      const part = rows.slice(k * 500, (k + 1) * 500);
      const w = new CbpeWindow(CLASSES);
      for (const r of part) w.add(r);
      const a = w.estimate().accuracy!;
      const real = realised(part).accuracy;
      if (real >= a.lower && real <= a.upper) covered++;
    }
    expect(covered / 200).toBeGreaterThan(0.9);
    expect(covered / 200).toBeLessThanOrEqual(1);
  });

  it('accuracy is the mean confidence of the predicted class, with the Poisson-binomial standard error', () => {
    const w = new CbpeWindow(CLASSES);
    w.add({ probabilities: { DOWN: 0.1, UP: 0.9 }, predicted: 'UP' });
    w.add({ probabilities: { DOWN: 0.6, UP: 0.4 }, predicted: 'DOWN' });
    w.add({ probabilities: { DOWN: 0.3, UP: 0.7 }, predicted: 'DOWN' }); // served against its own probabilities
    w.add({ probabilities: { DOWN: 0.5, UP: 0.5 }, predicted: 'SIDEWAYS' }); // never correct
    const a = w.estimate(2).accuracy!;
    expect(a.value).toBeCloseTo((0.9 + 0.6 + 0.3 + 0) / 4, 12);
    expect(a.stdError).toBeCloseTo(Math.sqrt(0.09 + 0.24 + 0.21 + 0) / 4, 12);
    expect(a.lower).toBeCloseTo(a.value - 2 * a.stdError, 12);
  });

  it('the AUC is the expected concordant pairs over expected positive–negative pairs (i ≠ j), checked by brute force', () => {
    const p = [0.05, 0.2, 0.35, 0.5, 0.62, 0.8, 0.93];
    const w = new CbpeWindow(CLASSES);
    for (const x of p) w.add({ probabilities: { DOWN: 1 - x, UP: x }, predicted: x >= 0.5 ? 'UP' : 'DOWN' });
    let concordant = 0;
    let pairs = 0;
    p.forEach((pi, i) =>
      p.forEach((pj, j) => {
        if (i === j) return;
        pairs += pi * (1 - pj);
        if (pi > pj) concordant += pi * (1 - pj);
      }),
    );
    expect(w.estimate().rocAuc!.value).toBeCloseTo(concordant / pairs, 12);
  });

  it('multiclass: the mean calibrated top probability estimates accuracy; binary-only metrics are null', () => {
    const g = new Mulberry32(4);
    const classes = ['a', 'b', 'c', 'd'];
    const w = new CbpeWindow(classes);
    let hits = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const e = classes.map(() => Math.exp(3 * g.next()));
      const s = e.reduce((x, y) => x + y, 0);
      const probs = e.map((v) => v / s);
      let top = 0;
      for (let c = 1; c < 4; c++) if (probs[c]! > probs[top]!) top = c;
      const u = g.next();
      let acc = 0;
      let y = 3;
      for (let c = 0; c < 4; c++) {
        acc += probs[c]!;
        if (u < acc) {
          y = c;
          break;
        }
      }
      if (y === top) hits++;
      w.add({ probabilities: Object.fromEntries(classes.map((c, k) => [c, probs[k]!])), predicted: classes[top]! });
    }
    const est = w.estimate();
    expect(Math.abs(est.accuracy!.value - hits / n)).toBeLessThan(3 * est.accuracy!.stdError);
    expect(est.rocAuc).toBeNull();
    expect(est.precision).toBeNull();
    expect(est.f1).toBeNull();
  });

  it('round-trips its state, merges panes, resets, and rejects foreign state', () => {
    const rows = binary(300, 5);
    const whole = new CbpeWindow(CLASSES);
    const a = new CbpeWindow(CLASSES);
    const b = new CbpeWindow(CLASSES);
    rows.forEach((r, i) => {
      whole.add(r);
      (i < 100 ? a : b).add(r);
    });
    const restored = CbpeWindow.fromJSON(JSON.parse(JSON.stringify(a.toJSON())));
    restored.merge(b);
    const [x, y] = [restored.estimate(), whole.estimate()];
    expect(x.accuracy!.value).toBeCloseTo(y.accuracy!.value, 12);
    expect(x.rocAuc!.value).toBeCloseTo(y.rocAuc!.value, 12);
    whole.reset();
    expect(whole.estimate().accuracy).toBeNull();
    expect(() => CbpeWindow.fromJSON({ ...a.toJSON(), kind: 'quality-window' } as never)).toThrow(RangeError);
    expect(() => a.merge(new CbpeWindow(['x', 'y']))).toThrow(RangeError);
  });
});

function feed(monitor: CbpeMonitor, rows: readonly Synthetic[], modelVersion: number, variant = 'champion', t0 = 0): CbpeWindowReport[] {
  const reports: CbpeWindowReport[] = [];
  rows.forEach((r, i) => {
    const report = monitor.addPrediction({ modelVersion, variant, eventTime: t0 + i, probabilities: r.probabilities, predicted: r.predicted });
    if (report) reports.push(report);
  });
  return reports;
}

const examples = (rows: readonly Synthetic[]): CalibrationExample[] => rows.map((r) => ({ probabilities: r.probabilities, label: r.label }));

describe('CbpeMonitor: miscalibrated model, calibrated estimate', () => {
  it('a reference fit corrects an overconfident model whose raw confidence overstates its accuracy', () => {
    const monitor = CbpeMonitor.create(cbpeConfig({ classes: CLASSES, windowSize: 2000, refitFromLabels: false }));
    const update = monitor.setReference(1, examples(binary(3000, 10, 3)));
    expect(update).toMatchObject({ modelVersion: 1, source: 'reference', check: { applied: 'platt', flagged: false } });
    const live = binary(2000, 11, 3);
    const [report] = feed(monitor, live, 1);
    const truth = realised(live);
    const e = report!.estimate;
    expect(e.calibrated).toBe(2000);
    expect(e.uncalibratedAccuracy! - truth.accuracy).toBeGreaterThan(0.05); // raw confidence is far off
    expect(Math.abs(e.accuracy!.value - truth.accuracy)).toBeLessThan(0.025);
    expect(Math.abs(e.rocAuc!.value - truth.rocAuc)).toBeLessThan(0.02);
    expect(report!.calibration?.eceRaw).toBeGreaterThan(0.05);
  });

  it('labels refit the calibrator every refitEvery labels once minExamples are in; off with refitFromLabels false', () => {
    const rows = binary(600, 12, 3);
    const on = CbpeMonitor.create(cbpeConfig({ classes: CLASSES, windowSize: 500, refitEvery: 100 }));
    const updates = rows.map((r) => on.addLabeled({ modelVersion: 3, probabilities: r.probabilities, label: r.label })).filter((u) => u !== null);
    expect(updates.map((u) => u.check.examples)).toEqual([100, 200, 250, 250, 250, 250]); // the newest referenceSize = windowSize / 2
    expect(updates.every((u) => u.source === 'labels' && u.modelVersion === 3)).toBe(true);
    expect(on.calibration(3).calibrator.method).toBe('platt');
    const off = CbpeMonitor.create(cbpeConfig({ classes: CLASSES, windowSize: 500, refitEvery: 100, refitFromLabels: false }));
    expect(rows.map((r) => off.addLabeled({ modelVersion: 3, probabilities: r.probabilities, label: r.label })).filter((u) => u !== null)).toEqual([]);
    expect(off.calibration(3)).toMatchObject({ calibrator: { method: 'identity' }, check: null });
    expect(on.addLabeled({ modelVersion: 3, probabilities: { DOWN: 0.5, UP: 0.5 }, label: 'SIDEWAYS' })).toBeNull();
  });

  it("refitTakesEffect 'next-window' keeps a window's calibrator; 'at-once' applies a refit to the next prediction", () => {
    const reference = examples(binary(1000, 13, 3));
    const live = binary(200, 14, 3);
    const run = (refitTakesEffect: 'at-once' | 'next-window') => {
      const m = CbpeMonitor.create(cbpeConfig({ classes: CLASSES, windowSize: 200, refitTakesEffect }));
      feed(m, live.slice(0, 100), 1);
      m.setReference(1, reference);
      return feed(m, live.slice(100), 1)[0]!;
    };
    expect(run('next-window').estimate.calibrated).toBe(0);
    expect(run('next-window').calibration).toBeNull();
    expect(run('at-once').estimate.calibrated).toBe(100);
    expect(run('at-once').calibration?.applied).toBe('platt');
  });
});

describe('CbpeMonitor: windows per (version, variant), as the drift monitor keys them', () => {
  it('fills windows per slot independently and calibrates by version', () => {
    const monitor = CbpeMonitor.create(cbpeConfig({ classes: CLASSES, windowSize: 100 }));
    monitor.setReference(2, examples(binary(1000, 20, 3)));
    const rows = binary(300, 21, 3);
    const reports: CbpeWindowReport[] = [];
    rows.forEach((r, i) => {
      for (const [modelVersion, variant] of [[1, 'champion'], [1, 'shadow'], [2, 'champion']] as const) {
        if (modelVersion === 1 && variant === 'shadow' && i % 2) continue; // the shadow sees half
        const report = monitor.addPrediction({ modelVersion, variant, eventTime: 1000 + i, probabilities: r.probabilities, predicted: r.predicted });
        if (report) reports.push(report);
      }
    });
    expect(monitor.slotKeys).toEqual(['1/champion', '1/shadow', '2/champion']);
    expect(reports.map((r) => `${r.modelVersion}/${r.variant}/w${r.windowIndex}`)).toEqual([
      '1/champion/w0',
      '2/champion/w0',
      '1/shadow/w0',
      '1/champion/w1',
      '2/champion/w1',
      '1/champion/w2',
      '2/champion/w2',
    ]);
    const first = reports[0]!;
    expect([first.windowStart, first.windowEnd]).toEqual([1000, 1099]);
    // Same predictions, different versions: only version 2 is calibrated.
    const v1 = reports.find((r) => r.modelVersion === 1 && r.variant === 'champion' && r.windowIndex === 2)!;
    const v2 = reports.find((r) => r.modelVersion === 2 && r.windowIndex === 2)!;
    expect(v1.estimate.calibrated).toBe(0);
    expect(v2.estimate.calibrated).toBe(100);
    expect(v1.estimate.uncalibratedAccuracy).toBe(v2.estimate.uncalibratedAccuracy);
    expect(v2.estimate.accuracy!.value).toBeLessThan(v1.estimate.accuracy!.value);
    expect(monitor.windowCount(1, 'shadow')).toBe(50);
    expect(monitor.windowIndex(1, 'shadow')).toBe(1);
  });

  it('pairs a window estimate with its realised metrics and audits the error per slot', () => {
    const monitor = CbpeMonitor.create(cbpeConfig({ classes: CLASSES, windowSize: 500 }));
    const rows = binary(1500, 30);
    const reports = feed(monitor, rows, 7);
    expect(reports).toHaveLength(3);
    const comparisons = reports.map((r) => {
      const q = new QualityWindow('binary', { positiveLabel: 'UP' });
      for (const x of rows.slice(r.windowIndex * 500, (r.windowIndex + 1) * 500)) q.add({ label: x.label, predicted: x.predicted, score: x.probabilities.UP! });
      return monitor.addRealised(7, 'champion', r.windowIndex, q.summary())!;
    });
    expect(monitor.addRealised(7, 'champion', 0, { accuracy: 0.5 })).toBeNull(); // already compared
    expect(monitor.addRealised(7, 'shadow', 0, { accuracy: 0.5 })).toBeNull();
    const acc = comparisons.map((c) => c.metrics.find((m) => m.metric === 'accuracy')!);
    expect(acc.map((m) => m.realised)).toEqual([0, 1, 2].map((k) => realised(rows.slice(k * 500, (k + 1) * 500)).accuracy));
    expect(comparisons[0]!.metrics.map((m) => m.metric)).toEqual(['accuracy', 'rocAuc']);
    const audit = monitor.audit(7, 'champion').find((a) => a.metric === 'accuracy')!;
    expect(audit.windows).toBe(3);
    expect(audit.meanAbsError).toBeCloseTo(acc.reduce((s, m) => s + Math.abs(m.error), 0) / 3, 12);
    expect(audit.meanAbsError!).toBeLessThan(0.04);
  });

  it('keeps at most pendingWindows estimates waiting and maxVersions versions', () => {
    const monitor = CbpeMonitor.create(cbpeConfig({ classes: CLASSES, windowSize: 10, pendingWindows: 2, maxVersions: 2 }));
    const rows = binary(40, 40);
    feed(monitor, rows, 1);
    expect(monitor.addRealised(1, 'champion', 1, { accuracy: 0.5 })).toBeNull();
    expect(monitor.addRealised(1, 'champion', 3, { accuracy: 0.5 })).not.toBeNull();
    feed(monitor, rows.slice(0, 5), 2);
    feed(monitor, rows.slice(0, 5), 1); // version 1 active again: version 2 is the least recent
    feed(monitor, rows.slice(0, 5), 3);
    expect(monitor.versionKeys.sort()).toEqual(['1', '3']);
    expect(monitor.slotKeys).toEqual(['1/champion', '3/champion']);
  });
});

describe('CbpeMonitor state', () => {
  it('round-trips through JSON mid-window and continues exactly like the original', () => {
    const config = cbpeConfig({ classes: CLASSES, windowSize: 200, refitEvery: 50 });
    const original = CbpeMonitor.create(config);
    original.setReference(1, examples(binary(400, 50, 2)));
    const rows = binary(700, 51, 2);
    const step = (m: CbpeMonitor, r: Synthetic, i: number): unknown[] => {
      const p: CbpePrediction = { modelVersion: 1 + (i % 2), variant: i % 3 ? 'champion' : 'shadow', eventTime: i, probabilities: r.probabilities, predicted: r.predicted };
      return [m.addPrediction(p), i >= 48 ? m.addLabeled({ modelVersion: 1, probabilities: rows[i - 48]!.probabilities, label: rows[i - 48]!.label }) : null];
    };
    rows.slice(0, 333).forEach((r, i) => step(original, r, i));
    const saved = JSON.stringify(original.toJSON());
    const restored = CbpeMonitor.fromJSON(JSON.parse(saved) as CbpeMonitorState, config);
    expect(JSON.stringify(restored.toJSON())).toBe(saved);
    const rest = rows.slice(333);
    const a = rest.map((r, i) => step(original, r, 333 + i));
    const b = rest.map((r, i) => step(restored, r, 333 + i));
    expect(b).toEqual(a);
    expect(a.flat().some((x) => x !== null)).toBe(true);
    expect(JSON.stringify(restored.toJSON())).toBe(JSON.stringify(original.toJSON()));
    expect(() => CbpeMonitor.fromJSON(JSON.parse(saved) as CbpeMonitorState, cbpeConfig({ classes: ['UP', 'DOWN'] }))).toThrow(RangeError);
  });
});

describe('report helpers', () => {
  const report = (value: number, upper: number, flagged: boolean | null): CbpeWindowReport => ({
    modelVersion: 1,
    variant: 'champion',
    windowIndex: 0,
    windowStart: 0,
    windowEnd: 1,
    estimate: { count: 500, calibrated: 500, accuracy: { value, stdError: 0.01, lower: value - 0.02, upper }, uncalibratedAccuracy: value, rocAuc: null, precision: null, recall: null, f1: null },
    calibration: flagged === null ? null : { examples: 500, requested: 'isotonic', applied: 'isotonic', eceRaw: 0.05, eceCalibrated: 0.02, ece: 0.02, threshold: 0.05, flagged, reason: null },
  });

  it('estimateBelowTarget fires only when the upper band edge is below the target and the calibration is trusted', () => {
    expect(estimateBelowTarget(report(0.7, 0.72, false), { minMetric: 0.75 })).toMatchObject({ reason: 'estimated_quality_below_threshold' });
    expect(estimateBelowTarget(report(0.74, 0.76, false), { minMetric: 0.75 })).toBeNull();
    expect(estimateBelowTarget(report(0.7, 0.72, true), { minMetric: 0.75 })).toBeNull();
    expect(estimateBelowTarget(report(0.7, 0.72, null), { minMetric: 0.75 })).toBeNull();
    expect(estimateBelowTarget(report(0.7, 0.72, false), { maxRelativeDrop: 0.08, reference: 0.85 })).toMatchObject({ reason: 'estimated_quality_drop' });
    expect(estimateBelowTarget(report(0.7, 0.72, false), { metric: 'rocAuc', minMetric: 0.9 })).toBeNull();
  });

  it('estimateMetrics prefixes every name so no reader takes it for a realised metric', () => {
    const m = estimateMetrics(report(0.8, 0.82, false).estimate, report(0.8, 0.82, true).calibration);
    expect(m).toEqual({
      estimated_accuracy: 0.8,
      estimated_accuracy_lower: 0.78,
      estimated_accuracy_upper: 0.82,
      uncalibrated_estimated_accuracy: 0.8,
      calibration_ece: 0.02,
      calibration_flagged: 1,
    });
  });

  it('cbpeConfig names the bad key', () => {
    expect(() => cbpeConfig({ classes: ['UP'] })).toThrow(/classes must be at least 2 distinct classes/);
    expect(() => cbpeConfig({ classes: CLASSES, windowSize: 0 })).toThrow(/windowSize must be an integer in 1\.\./);
    expect(() => cbpeConfig({ classes: CLASSES, refitTakesEffect: 'later' as never })).toThrow(/refitTakesEffect/);
    expect(() => cbpeConfig({ classes: CLASSES, calibration: { method: 'magic' as never } })).toThrow(/method must be one of/);
    expect(cbpeConfig({ classes: CLASSES })).toMatchObject({ windowSize: 500, refitEvery: 50, referenceSize: 250, refitTakesEffect: 'at-once', z: 1.96, calibration: { method: 'platt' } });
    expect(cbpeConfig({ classes: CLASSES, windowSize: 100 }).referenceSize).toBe(100); // never below the calibration's minExamples
  });
});
