import { describe, expect, it } from 'vitest';
import { randomSource } from '../../models/test-support.js';
import { loadSpec } from '../../pipelines/spec.js';
import type { LabeledPrediction, Prediction, QualityReport } from '../../schemas/types.js';
import { decide, initialTriggerState } from '../retrain-trigger/retrain-trigger.js';
import { estimateReportKind, estimateSetting } from './estimate-core.js';
import { applyPrediction, applyRecord, MonitorState, monitorConfig, type MonitorReport, type MonitorStateJSON } from './monitor-core.js';

const spec = loadSpec(new URL('../../pipelines/elec2.json', import.meta.url).pathname).spec;
const config = monitorConfig(spec, { windowSize: 200 });
const estimateConfig = { ...config, estimate: (() => { const e = estimateSetting({ ...spec, monitoring: { ...spec.monitoring, windowSize: 200 } }); return e.config ? e : null; })() };
const HOUR = 3_600_000;

/** A stream of scored predictions whose P(UP) is right after a monotone distortion (so the raw probabilities are miscalibrated). */
function stream(n: number, seed: number, version = 1): Array<{ p: Prediction; truth: string }> {
  const { uniform } = randomSource(seed);
  return Array.from({ length: n }, (_, i) => {
    const q = uniform(); // true P(UP)
    const raw = Math.min(0.999, Math.max(0.001, 0.5 + (q - 0.5) * 0.5)); // under-confident scores
    const label = raw >= 0.5 ? 'UP' : 'DOWN';
    const p: Prediction = {
      prediction_id: `e${i}/${spec.model.name}@${version}/champion`, event_id: `e${i}`, pipeline: spec.name, model_name: spec.model.name, model_version: version, variant: 'champion',
      entity_id: 'nsw', event_time: i * HOUR, scored_at: i * HOUR, score: raw, label, value: null, probabilities: { DOWN: 1 - raw, UP: raw }, features: {},
    } as unknown as Prediction;
    return { p, truth: uniform() < q ? 'UP' : 'DOWN' };
  });
}

const labeled = (p: Prediction, truth: string): LabeledPrediction => ({ prediction: p, label: truth, label_time: p.event_time + 24 * HOUR, correct: truth === p.label, error: null, joined_at: p.event_time + 24 * HOUR }) as unknown as LabeledPrediction;

/** Plays predictions and their labels 24 rows later (1 % of labels never come), as the loop delivers them to the monitor. */
function play(state: MonitorState, rows: Array<{ p: Prediction; truth: string }>, from = 0, to = rows.length): MonitorReport[] {
  const out: MonitorReport[] = [];
  for (let i = from; i < to; i++) {
    out.push(...applyPrediction(state, rows[i]!.p).reports);
    const j = i - 24;
    if (j >= 0 && j % 100 !== 7) out.push(...applyRecord(state, labeled(rows[j]!.p, rows[j]!.truth), () => null).reports);
  }
  return out;
}

describe('drift monitor: quality estimated before labels', () => {
  it('is on for Elec2 by default, off for regression or without classes, and says why', () => {
    expect(estimateSetting(spec).config).not.toBeNull();
    expect(estimateSetting({ ...spec, monitoring: { ...spec.monitoring, estimate: false } })).toEqual({ config: null, reason: 'monitoring.estimate is false' });
    expect(estimateSetting({ ...spec, task: 'regression' }).config).toBeNull();
    expect((estimateSetting({ ...spec, task: 'regression' }) as { reason: string }).reason).toMatch(/point value only/);
    expect(estimateSetting({ ...spec, label: { ...spec.label, classes: [] } }).config).toBeNull();
  });

  it('reports each window’s estimate when its predictions are scored, then beside the realised accuracy once labeled; calibrated estimates land within 0.05', () => {
    const rows = stream(4000, 3);
    const state = MonitorState.create(estimateConfig);
    const reports = play(state, rows).map((r) => r.value as QualityReport);
    const estimates = reports.filter((r) => estimateReportKind(r.report_id) === 'estimate');
    const comparisons = reports.filter((r) => estimateReportKind(r.report_id) === 'comparison');
    expect(estimates.map((r) => r.report_id).slice(0, 2)).toEqual(['elec2/elec2-updown@1/champion/e0', 'elec2/elec2-updown@1/champion/e1']);
    expect(estimates).toHaveLength(20);
    // e0 is reported when its 200th prediction is scored: before most of its labels (24 rows late).
    const e0 = reports.findIndex((r) => r.report_id.endsWith('/e0'));
    const c0 = reports.findIndex((r) => r.report_id.endsWith('/e0/realised'));
    expect(e0).toBeGreaterThanOrEqual(0);
    expect(c0).toBeGreaterThan(e0);
    for (const r of estimates) {
      expect(r.count).toBe(200);
      expect(r.metrics.accuracy).toBeUndefined(); // never read as a realised window
      expect(r.metrics.estimated_accuracy_lower).toBeLessThanOrEqual(r.metrics.estimated_accuracy!);
    }
    expect(comparisons.length).toBeGreaterThanOrEqual(18);
    for (const c of comparisons) {
      expect(c.metrics.estimate_error).toBeCloseTo(c.metrics.estimated_accuracy! - c.metrics.realised_accuracy!, 12);
      expect(c.count).toBeGreaterThanOrEqual(195);
    }
    // Once calibrated from labels (after the first window), the estimate tracks the realised accuracy.
    const later = comparisons.filter((c) => c.metrics.calibration_flagged !== undefined);
    expect(later.length).toBeGreaterThanOrEqual(15);
    const mae = later.reduce((a, c) => a + Math.abs(c.metrics.estimate_error!), 0) / later.length;
    expect(mae).toBeLessThan(0.05);
    // The raw probabilities are under-confident: the uncalibrated estimate is far off.
    const rawGap = estimates.slice(2).reduce((a, r) => a + Math.abs(r.metrics.uncalibrated_estimated_accuracy! - r.metrics.estimated_accuracy!), 0) / (estimates.length - 2);
    expect(rawGap).toBeGreaterThan(0.05);
  });

  it('keeps its state small and resumes from a checkpoint with the same reports', () => {
    const rows = stream(3000, 5);
    const whole = play(MonitorState.create(estimateConfig), rows);
    const first = MonitorState.create(estimateConfig);
    const a = play(first, rows, 0, 1700);
    const saved = JSON.stringify(first.toJSON());
    expect(saved.length).toBeLessThan(60_000);
    const resumed = MonitorState.fromJSON(JSON.parse(saved) as MonitorStateJSON, estimateConfig);
    const b = play(resumed, rows, 1700);
    expect([...a, ...b]).toEqual(whole);
  });

  it('does nothing with scored predictions when the estimate is off', () => {
    const state = MonitorState.create({ ...config, estimate: null });
    expect(play(state, stream(500, 1)).filter((r) => estimateReportKind(r.value.report_id) !== null)).toEqual([]);
    expect(state.toJSON().estimate).toBeUndefined();
  });

  it('retrain trigger: estimate reports are not realised windows; with retrain.onEstimate a champion estimate whose band is below minMetric triggers', () => {
    const report = (metrics: Record<string, number>): QualityReport => ({ report_id: 'elec2/elec2-updown@1/champion/e3', pipeline: spec.name, model_name: spec.model.name, model_version: 1, variant: 'champion', window_start: 0, window_end: 1, count: 500, metrics, alarm: null, created_at: 1 });
    const low = report({ estimated_accuracy: 0.6, estimated_accuracy_lower: 0.56, estimated_accuracy_upper: 0.64, calibration_ece: 0.02, calibration_flagged: 0 });
    const s0 = { ...initialTriggerState(), labelsSinceRetrain: 1000 };
    const serving = { champion: 1, shadow: null };
    const off = { ...spec, retrain: { ...spec.retrain, minMetric: 0.7, everyLabels: 500 } };
    const d0 = decide(off, s0, low, serving);
    expect(d0.request).toBeNull();
    expect(d0.state.labelsSinceRetrain).toBe(1000); // not counted as labels
    expect(d0.state.windows).toEqual({});
    const on = { ...off, retrain: { ...off.retrain, onEstimate: true } };
    expect(decide(on, s0, low, serving).request).toMatchObject({ reason: 'estimated_quality_below_threshold' });
    expect(decide(on, s0, report({ ...low.metrics, calibration_flagged: 1 }), serving).request).toBeNull();
    expect(decide(on, s0, report({ ...low.metrics, estimated_accuracy_upper: 0.75 }), serving).request).toBeNull();
    expect(decide(on, s0, { ...low, report_id: `${low.report_id}/realised` }, serving).request).toBeNull();
  });
});
