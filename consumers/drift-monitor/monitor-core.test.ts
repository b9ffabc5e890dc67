import { describe, expect, it } from 'vitest';
import { binIndex, computeBaseline, type BaselineStats } from '../../models/baseline.js';
import type { FeatureRow, FeatureSpec } from '../../models/feature-spec.js';
import { randomSource } from '../../models/test-support.js';
import type { LabeledPrediction, QualityReport } from '../../schemas/types.js';
import { accuracy, expectedCalibrationError, FeatureDriftAccumulator, logLoss, mae, rmse, rocAuc } from '../../stats/index.js';
import {
  applyRecord,
  createMonitorState,
  driftBaselines,
  InvalidLabeledPredictionError,
  isProgressReport,
  MonitorState,
  nextUp,
  type BaselineLookup,
  type MonitorConfig,
  type MonitorReport,
  type MonitorStateJSON,
  type VersionBaseline,
} from './monitor-core.js';

const BASE: MonitorConfig = {
  pipeline: 'p',
  modelName: 'm',
  task: 'binary',
  windowSize: 50,
  detector: 'adwin',
  psiThreshold: 0.2,
  pValueThreshold: 0.01,
  positiveLabel: 'yes',
  regressionErrorScale: null,
  adwin: {},
  pageHinkley: {},
  driftMinSamples: 50,
  retireAfterRecords: 200,
  progressEvery: 1e9, // no label-progress reports here but in their own test
};
const config = (over: Partial<MonitorConfig> = {}): MonitorConfig => ({ ...BASE, ...over });

const SPEC: FeatureSpec = {
  task: 'binary',
  features: [
    { name: 'x', kind: 'numeric' },
    { name: 'k', kind: 'numeric' },
    { name: 'c', kind: 'categorical', categories: ['a', 'b'] },
  ],
  classes: ['no', 'yes'],
};

/** Training-like rows: x ~ N(0,1), k ∈ {0..4} (discrete: its deciles are data values), c ∈ {a, b}; score = sigmoid(2x). */
function rows(n: number, seed: number, shift = 0): Array<{ row: FeatureRow; score: number }> {
  const { uniform, normal } = randomSource(seed);
  return Array.from({ length: n }, () => {
    const x = normal() + shift;
    const row: FeatureRow = { x, k: Math.floor(uniform() * 5), c: uniform() < 0.7 ? 'a' : 'b' };
    return { row, score: Math.round(1000 / (1 + Math.exp(-2 * x))) / 1000 };
  });
}

const TRAIN = rows(2000, 11);
const BASELINE: BaselineStats = computeBaseline(
  SPEC,
  TRAIN.map((t) => t.row),
  TRAIN.map((t) => ({ label: t.score >= 0.5 ? 'yes' : 'no', score: t.score })),
);
const VERSION: VersionBaseline = { baseline: BASELINE, classes: SPEC.classes };
const lookup: BaselineLookup = (v) => (v === 1 || v === 2 ? VERSION : null);

interface Opts {
  version?: number;
  variant?: string;
  time?: number;
  correct?: boolean;
}

function labeled(i: number, t: { row: FeatureRow; score: number }, o: Opts = {}): LabeledPrediction {
  const predicted = t.score >= 0.5 ? 'yes' : 'no';
  const truth = o.correct === false ? (predicted === 'yes' ? 'no' : 'yes') : predicted;
  const version = o.version ?? 1;
  const variant = o.variant ?? 'champion';
  const time = o.time ?? 1_000_000 + i * 1000;
  return {
    prediction: {
      prediction_id: `e${i}/m@${version}/${variant}`,
      event_id: `e${i}`,
      pipeline: 'p',
      entity_id: 'x',
      model_name: 'm',
      model_version: version,
      variant,
      label: predicted,
      score: t.score,
      probabilities: { no: 1 - t.score, yes: t.score },
      value: null,
      features: t.row,
      missing: [],
      model_features: Object.keys(t.row),
      event_time: time,
      produced_at: time,
      scored_at: time,
    },
    label: truth,
    label_time: time + 10,
    joined_at: time + 20,
    correct: truth === predicted,
    error: null,
  };
}

/** A stream whose error rate is `rate` (deterministic pseudo-random). */
function stream(n: number, seed: number, rate: (i: number) => number, o: Opts = {}, start = 0): LabeledPrediction[] {
  const { uniform } = randomSource(seed + 1000);
  return rows(n, seed).map((t, j) => labeled(start + j, t, { ...o, correct: uniform() >= rate(start + j) }));
}

function run(cfg: MonitorConfig, records: LabeledPrediction[], look: BaselineLookup = lookup): MonitorReport[] {
  const state = createMonitorState(cfg);
  return records.flatMap((r) => applyRecord(state, r, look).reports);
}

const quality = (rs: MonitorReport[]): QualityReport[] => rs.flatMap((r) => (r.record === 'QualityReport' && !isProgressReport(r.value.report_id) ? [r.value] : []));

describe('monitor core: windows', () => {
  it('closes a tumbling window every windowSize records, per version and variant, with deterministic ids and event-time bounds', () => {
    const champion = stream(120, 1, () => 0.1);
    const shadow = stream(60, 2, () => 0.1, { variant: 'shadow' });
    // interleave and jitter event times so the window bounds are min/max, not first/last
    const records: LabeledPrediction[] = [];
    for (let i = 0; i < 120; i++) {
      const c = champion[i]!;
      c.prediction.event_time = 1_000_000 + i * 1000 + (i % 7 === 3 ? -5000 : 0);
      records.push(c);
      if (i < 60) records.push(shadow[i]!);
    }
    const reports = run(config(), records);
    expect(reports.map((r) => `${r.record}:${r.value.report_id}`)).toEqual([
      'QualityReport:p/m@1/champion/w0',
      'DriftReport:p/m@1/champion/w0/drift',
      'QualityReport:p/m@1/shadow/w0',
      'DriftReport:p/m@1/shadow/w0/drift',
      'QualityReport:p/m@1/champion/w1',
      'DriftReport:p/m@1/champion/w1/drift',
    ]);
    const w0 = quality(reports)[0]!;
    const firstWindow = champion.slice(0, 50).map((r) => r.prediction.event_time);
    expect(w0).toMatchObject({ count: 50, model_version: 1, variant: 'champion', pipeline: 'p', model_name: 'm', alarm: null });
    expect(w0.window_start).toBe(Math.min(...firstWindow));
    expect(w0.window_end).toBe(Math.max(...firstWindow));
    expect(w0.created_at).toBe(champion[49]!.prediction.event_time); // the triggering record's event time
    const w1 = quality(reports)[2]!;
    expect(w1.window_start).toBe(Math.min(...champion.slice(50, 100).map((r) => r.prediction.event_time)));
    for (const r of reports) expect(r.variant).toBe(r.value.report_id.includes('/shadow/') ? 'shadow' : 'champion');
  });

  it('retires a slot no record reached among the last retireAfterRecords: its unfinished window is dropped, its numbering continues if it returns', () => {
    const state = createMonitorState(config({ retireAfterRecords: 100 }));
    const v1 = stream(70, 1, () => 0.1); // one window and 20 records of v1
    const v2 = stream(300, 2, () => 0.1, { version: 2 }, 70);
    const back = stream(50, 3, () => 0.1, {}, 370); // v1 again, long after
    const ids = [...v1, ...v2.slice(0, 99)].flatMap((r) => applyRecord(state, r, lookup).reports.map((x) => x.value.report_id));
    expect(state.slotKeys).toEqual(['1/champion', '2/champion']); // 99 records since v1's last: not yet
    applyRecord(state, v2[99]!, lookup);
    expect(state.slotKeys).toEqual(['2/champion']);
    expect(state.retiredKeys).toEqual(['1/champion']);
    // A checkpoint keeps only what serves, and restores to the same behaviour.
    const restored = MonitorState.fromJSON(JSON.parse(JSON.stringify(state.toJSON())) as MonitorStateJSON, state.config);
    expect(Object.keys(restored.toJSON().slots)).toEqual(['2/champion']);
    const later = [...v2.slice(100), ...back].flatMap((r) => applyRecord(restored, r, lookup).reports.map((x) => x.value.report_id));
    expect(ids.filter((id) => id.startsWith('p/m@1/'))).toEqual(['p/m@1/champion/w0', 'p/m@1/champion/w0/drift']);
    // v1's 20 unfinished records were dropped: its next window is w1 and holds 50 new records.
    expect(later.filter((id) => id.startsWith('p/m@1/'))).toEqual(['p/m@1/champion/w1', 'p/m@1/champion/w1/drift']);
  });

  it('monitors a version missing from the registry for quality only', () => {
    const reports = run(config(), stream(100, 3, () => 0.1, { version: 7 }));
    expect(reports.map((r) => r.record)).toEqual(['QualityReport', 'QualityReport']);
    expect(reports[0]!.value.report_id).toBe('p/m@7/champion/w0');
  });

  it('reports label progress every progressEvery served labels, across versions, shadows not counted, and resumes the count from a checkpoint', () => {
    // v1 serves 30 labels, then v2 takes over as champion with v1 shadowing it: 40 more served labels, 40 shadow ones.
    const v1 = stream(30, 1, () => 0.1);
    const v2 = stream(40, 2, () => 0.1, { version: 2 }, 30);
    const shadow = stream(40, 3, () => 0.1, { variant: 'shadow' }, 30);
    const records = [...v1, ...v2.flatMap((r, i) => [r, shadow[i]!])];
    const cfg = config({ progressEvery: 20 });
    const reports = run(cfg, records);
    const progress = reports.filter((r) => isProgressReport(r.value.report_id)).map((r) => r.value as QualityReport);
    expect(progress.map((q) => q.report_id)).toEqual(['p/m/labels/20', 'p/m/labels/40', 'p/m/labels/60']);
    expect(progress.map((q) => [q.model_version, q.variant, q.count, q.metrics.labels_total])).toEqual([[1, 'champion', 20, 20], [2, 'champion', 20, 40], [2, 'champion', 20, 60]]);
    // The second tick spans v1's last 10 served labels and v2's first 10; window_end is the newest served label.
    expect(progress[1]!.window_start).toBe(v1[20]!.prediction.event_time);
    expect(progress[1]!.window_end).toBe(Math.max(...[...v1, ...v2.slice(0, 10)].map((r) => r.prediction.event_time)));
    expect(progress[1]!.created_at).toBe(v2[9]!.prediction.event_time);
    // v1's 30 and v2's 40 served labels never fill a 50-label window of either version: no quality window says 70 labels came.
    expect(quality(reports).filter((q) => q.variant === 'champion')).toEqual([]);

    // A checkpoint taken mid-tick continues the count.
    const state = createMonitorState(cfg);
    const first = records.slice(0, 45).flatMap((r) => applyRecord(state, r, lookup).reports);
    const restored = MonitorState.fromJSON(JSON.parse(JSON.stringify(state.toJSON())) as MonitorStateJSON, cfg);
    const rest = records.slice(45).flatMap((r) => applyRecord(restored, r, lookup).reports);
    expect([...first, ...rest].map((r) => r.value)).toEqual(reports.map((r) => r.value));
  });
});

describe('monitor core: report contents', () => {
  it('binary: accuracy, auc, log_loss and ece of the window', () => {
    const records = stream(50, 4, () => 0.2);
    const [q] = quality(run(config(), records));
    const y = records.map((r) => (r.label === 'yes' ? 1 : 0));
    const s = records.map((r) => r.prediction.score);
    expect(Object.keys(q!.metrics).sort()).toEqual(['accuracy', 'auc', 'ece', 'log_loss']);
    expect(q!.metrics.accuracy).toBeCloseTo(accuracy(records.map((r) => r.label), records.map((r) => r.prediction.label!))!, 12);
    expect(q!.metrics.auc).toBeCloseTo(rocAuc(y, s)!, 12); // scores on the 0.001 grid: binned AUC is exact
    expect(q!.metrics.log_loss).toBeCloseTo(logLoss(y, s)!, 12);
    expect(q!.metrics.ece).toBeCloseTo(expectedCalibrationError(y, s)!, 12);
  });

  it('multiclass: accuracy and log_loss; regression: mae and rmse', () => {
    const mc = stream(50, 5, () => 0.3).map((r) => {
      const p = r.prediction;
      const probabilities = { red: 0.6, green: 0.3, blue: 0.1 };
      return { ...r, prediction: { ...p, label: 'red', score: 0.6, probabilities }, label: r.correct ? 'red' : 'blue', correct: null };
    });
    const [q] = quality(run(config({ task: 'multiclass', positiveLabel: null }), mc, () => null));
    expect(Object.keys(q!.metrics).sort()).toEqual(['accuracy', 'log_loss']);
    expect(q!.metrics.accuracy).toBeCloseTo(mc.filter((r) => r.label === 'red').length / 50, 12);

    const { normal } = randomSource(6);
    const reg = stream(50, 6, () => 0).map((r, i) => {
      const truth = 10 + normal();
      const value = truth + (i % 2 ? 0.5 : -0.25);
      return { ...r, prediction: { ...r.prediction, label: null, score: value, probabilities: {}, value }, label: truth, correct: null, error: value - truth };
    });
    const [rq] = quality(run(config({ task: 'regression', positiveLabel: null }), reg, () => null));
    expect(Object.keys(rq!.metrics).sort()).toEqual(['mae', 'rmse']);
    const truth = reg.map((r) => r.label as number);
    const pred = reg.map((r) => r.prediction.value!);
    expect(rq!.metrics.mae).toBeCloseTo(mae(truth, pred)!, 12);
    expect(rq!.metrics.rmse).toBeCloseTo(rmse(truth, pred)!, 12);
  });

  it('drift report: quiet on data like the training set, flags shifted features, unseen categories and a shifted score', () => {
    const cfg = config({ windowSize: 500, driftMinSamples: 100 });
    const same = run(cfg, rows(500, 21).map((t, i) => labeled(i, t))).find((r) => r.record === 'DriftReport')!;
    expect(same.record).toBe('DriftReport');
    if (same.record !== 'DriftReport') return;
    expect(same.value.features.map((f) => [f.feature, f.test])).toEqual([
      ['x', 'ks'],
      ['k', 'ks'],
      ['c', 'chi_square'],
    ]);
    expect(same.value.drifted).toBe(false);
    for (const f of same.value.features) expect(f.psi!).toBeLessThan(0.05);
    expect(same.value.prediction_psi!).toBeLessThan(0.05);

    const shifted = rows(500, 22, 1.5).map((t) => ({ ...t, row: { ...t.row, c: 'zzz' } }));
    const moved = run(cfg, shifted.map((t, i) => labeled(i, t))).find((r) => r.record === 'DriftReport')!;
    if (moved.record !== 'DriftReport') throw new Error('no drift report');
    const byName = Object.fromEntries(moved.value.features.map((f) => [f.feature, f]));
    expect(byName.x!.drifted).toBe(true);
    expect(byName.x!.p_value!).toBeLessThan(0.01);
    expect(byName.k!.drifted).toBe(false);
    expect(byName.c!.drifted).toBe(true); // every value unseen: counted as __other__
    expect(moved.value.prediction_psi!).toBeGreaterThan(0.2);
    expect(moved.value.drifted).toBe(true);
  });

  it('bins numeric values exactly like the baseline (right-closed cuts), even when values sit on the cuts', () => {
    const { features, baselines } = driftBaselines(BASELINE);
    expect(features.map((f) => f.name)).toEqual(['x', 'k', 'c']);
    const k = BASELINE.features.k!;
    if (k.kind !== 'numeric') throw new Error('k is numeric');
    expect(k.bins.some((b) => Number.isInteger(b))).toBe(true); // cut points that are data values
    const acc = new FeatureDriftAccumulator(baselines, { minSamples: 1 });
    for (const t of TRAIN) acc.add({ x: t.row.x, k: t.row.k, c: t.row.c });
    for (const r of acc.results()) expect(r.psi!).toBeLessThan(1e-9); // the training rows are their own baseline
    for (const v of [...k.bins, ...k.bins.map(nextUp), -1, 0, 4, 5, 2.5]) {
      const one = new FeatureDriftAccumulator({ k: baselines.k! });
      one.add({ k: v });
      const state = one.toJSON().features[0]!;
      expect(state.type === 'numeric' && state.counts.indexOf(1)).toBe(binIndex(k.bins, v));
    }
    expect(nextUp(1)).toBe(1 + Number.EPSILON);
    expect(nextUp(-1)).toBeGreaterThan(-1);
    expect(nextUp(0)).toBe(Number.MIN_VALUE);
  });
});

describe('monitor core: alarms', () => {
  const jump = (at: number, before: number, after: number) => (i: number) => (i < at ? before : after);

  it('adwin: alarms soon after the error rate rises, with a partial-window report, then resets', () => {
    const records = stream(3000, 7, jump(2000, 0.1, 0.5));
    const reports = run(config({ windowSize: 500 }), records);
    const alarms = quality(reports).filter((q) => q.alarm !== null);
    expect(alarms.length).toBeGreaterThanOrEqual(1);
    const first = alarms[0]!;
    const at = records.findIndex((r) => r.prediction.event_time === first.created_at);
    expect(at).toBeGreaterThanOrEqual(2000);
    expect(at).toBeLessThan(2300);
    expect(first.report_id).toBe(`p/m@1/champion/w${Math.floor(at / 500)}/alarm1`);
    expect(first.count).toBe((at % 500) + 1); // the partial window, triggering record included
    expect(first.alarm).toMatch(/^adwin: error rate rose from 0\.1\d to 0\.[3-7]\d over the last 100 predictions \(window cut: \d+ older predictions at 0\.1\d, \d+ newer at 0\.\d\d\)$/);
    // reset: the next alarm, if any, needs fresh evidence (not the very next cut test)
    if (alarms[1]) expect(records.findIndex((r) => r.prediction.event_time === alarms[1]!.created_at) - at).toBeGreaterThan(32);
    // the window goes on: its full report still comes, without the alarm
    expect(quality(reports).filter((q) => q.alarm === null)).toHaveLength(6);
  });

  it('adwin: a falling error rate is not an alarm', () => {
    const reports = run(config({ windowSize: 500 }), stream(3000, 8, jump(1500, 0.5, 0.1)));
    expect(quality(reports).filter((q) => q.alarm !== null)).toEqual([]);
  });

  it('page-hinkley: alarms on a rise, never on a stationary stream', () => {
    const cfg = config({ windowSize: 500, detector: 'page-hinkley' });
    expect(quality(run(cfg, stream(4000, 9, () => 0.15))).filter((q) => q.alarm !== null)).toEqual([]);
    const records = stream(3000, 10, jump(2000, 0.1, 0.5));
    const alarms = quality(run(cfg, records)).filter((q) => q.alarm !== null);
    expect(alarms.length).toBeGreaterThanOrEqual(1);
    expect(alarms[0]!.alarm).toMatch(/^page-hinkley: error rate rose from 0\.1\d to 0\.[3-7]\d over the last 100 predictions$/);
    expect(records.findIndex((r) => r.prediction.event_time === alarms[0]!.created_at)).toBeGreaterThanOrEqual(2000);
  });

  it('regression: the absolute error, scaled to [0, 1], feeds the detector', () => {
    const { normal } = randomSource(12);
    const records = stream(3000, 12, () => 0).map((r, i) => {
      const truth = normal();
      const value = truth + (i < 2000 ? 0.1 : 1) * normal();
      return { ...r, prediction: { ...r.prediction, label: null, score: value, probabilities: {}, value }, label: truth, correct: null, error: value - truth };
    });
    for (const scale of [null, 4]) {
      const alarms = quality(run(config({ task: 'regression', positiveLabel: null, windowSize: 500, regressionErrorScale: scale }), records, () => null)).filter((q) => q.alarm);
      expect(alarms.length).toBeGreaterThanOrEqual(1);
      expect(alarms[0]!.alarm).toMatch(/^adwin: scaled absolute error rose/);
      expect(records.findIndex((r) => r.prediction.event_time === alarms[0]!.created_at)).toBeGreaterThanOrEqual(2000);
    }
  });

  it('keeps a detector per version and variant', () => {
    // v1 degrades; v2, interleaved, does not: only v1 alarms
    const v1 = stream(3000, 13, jump(2000, 0.1, 0.5), { version: 1 });
    const v2 = stream(3000, 14, () => 0.1, { version: 2 });
    const reports = run(config({ windowSize: 500 }), v1.flatMap((r, i) => [r, v2[i]!]));
    const alarms = quality(reports).filter((q) => q.alarm !== null);
    expect(alarms.length).toBeGreaterThanOrEqual(1);
    expect(alarms.every((a) => a.model_version === 1)).toBe(true);
  });
});

describe('monitor core: determinism and checkpoints', () => {
  const records = [
    ...stream(1500, 15, (i) => (i < 900 ? 0.1 : 0.45)),
    ...stream(700, 16, () => 0.2, { variant: 'shadow' }, 1500),
    ...stream(300, 17, () => 0.1, { version: 9 }, 2200),
  ];
  records.sort((a, b) => a.prediction.event_id.localeCompare(b.prediction.event_id));
  const cfg = config({ windowSize: 200 });

  it('gives identical reports on every run', () => {
    const a = run(cfg, records);
    const b = run(cfg, records);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(a.length).toBeGreaterThan(10);
    expect(quality(a).some((q) => q.alarm !== null)).toBe(true);
    expect(new Set(a.map((r) => r.value.report_id)).size).toBe(a.length);
  });

  it('a state restored from JSON mid-window continues exactly like an uninterrupted run', () => {
    const reference = createMonitorState(cfg);
    const expected = records.flatMap((r) => applyRecord(reference, r, lookup).reports);
    let state = createMonitorState(cfg);
    const got: MonitorReport[] = [];
    records.forEach((r, i) => {
      if (i % 137 === 5) state = MonitorState.fromJSON(JSON.parse(JSON.stringify(state.toJSON())), cfg);
      got.push(...applyRecord(state, r, lookup).reports);
    });
    expect(got).toEqual(expected);
    expect(JSON.stringify(state.toJSON())).toBe(JSON.stringify(reference.toJSON()));
    expect(state.windowCount(1, 'champion')).toBeGreaterThan(0); // ended mid-window
  });

  it('serialises the live state under JSON.stringify exactly as its deep copy, and the copy stays as taken', () => {
    const state = createMonitorState(cfg);
    records.slice(0, 300).forEach((r) => applyRecord(state, r, lookup));
    const copy = state.toJSON();
    const taken = JSON.stringify(copy);
    expect(JSON.stringify(state)).toBe(taken);
    records.slice(300, 500).forEach((r) => applyRecord(state, r, lookup));
    expect(JSON.stringify(copy)).toBe(taken); // a copy, not a view: the state moved on without it
    expect(JSON.stringify(state)).not.toBe(taken);
    expect(JSON.stringify(state)).toBe(JSON.stringify(state.toJSON()));
  });

  it('refuses a state of another model', () => {
    const json = createMonitorState(cfg).toJSON();
    expect(() => MonitorState.fromJSON(json, config({ modelName: 'other' }))).toThrow(RangeError);
  });
});

describe('monitor core: invalid records', () => {
  it('throws InvalidLabeledPredictionError and leaves the state untouched', () => {
    const state = createMonitorState(config());
    applyRecord(state, labeled(0, TRAIN[0]!), lookup);
    const before = JSON.stringify(state.toJSON());
    const good = labeled(1, TRAIN[1]!);
    const bad: LabeledPrediction[] = [
      { ...good, prediction: { ...good.prediction, label: null } },
      { ...good, prediction: { ...good.prediction, score: Number.NaN } },
      { ...good, prediction: { ...good.prediction, model_name: 'other' } },
    ];
    for (const b of bad) expect(() => applyRecord(state, b, lookup)).toThrow(InvalidLabeledPredictionError);
    expect(JSON.stringify(state.toJSON())).toBe(before);
    const reg = createMonitorState(config({ task: 'regression', positiveLabel: null }));
    expect(() => applyRecord(reg, { ...good, label: 'abc', prediction: { ...good.prediction, value: 1 } }, lookup)).toThrow(/not a finite number/);
  });

  it('treats unusable feature values as missing instead of failing the record', () => {
    const state = createMonitorState(config());
    const t = { row: { x: Number.POSITIVE_INFINITY, k: 'not a number', c: null } as FeatureRow, score: 0.7 };
    expect(() => applyRecord(state, labeled(0, t), lookup)).not.toThrow();
  });
});
