import { describe, expect, it } from 'vitest';
import type { DriftReport, QualityReport } from '../schemas/types.js';
import { driftView, flowView, labelView, qualityView, registryView } from './series.js';
import { BadRequestError, parseBaseline } from './server.js';

const q = (version: number, variant: string, end: number, accuracy: number, alarm: string | null = null): { variant: string; report: QualityReport } => ({
  variant,
  report: { report_id: `${version}-${end}`, pipeline: 'p', model_name: 'm', model_version: version, variant, window_start: end - 10, window_end: end, count: 100, metrics: { accuracy, log_loss: 0.5 }, alarm, created_at: end },
});

describe('quality view', () => {
  const reports = [q(1, 'champion', 10, 0.7), q(1, 'champion', 20, 0.6, 'adwin'), q(2, 'champion', 30, 0.8), q(1, 'shadow', 30, 0.65), q(1, 'champion', 40, 0.75)];
  const history = [
    { at: 1, action: 'PROMOTE', version: 1, previous: null, reason: 'bootstrap model', actor: 'bootstrap' },
    { at: 2, action: 'PROMOTE', version: 2, previous: 1, reason: 'difference 0.05 [0.01, 0.09]', actor: 'evaluator' },
    { at: 3, action: 'ROLLBACK', version: 1, previous: 2, reason: 'worse live', actor: 'retrain-trigger' },
  ];

  it('draws one series per version and variant, in event time', () => {
    const v = qualityView('accuracy', reports, history);
    expect(v.metric).toBe('accuracy');
    expect(v.series.map((s) => [s.label, s.points.map((p) => p.x)])).toEqual([['champion v1', [10, 20, 40]], ['champion v2', [30]], ['shadow v1', [30]]]);
  });

  it('marks promotions and rollbacks at the first window their version served, and alarms at their window', () => {
    const v = qualityView('accuracy', reports, history, [{ name: 'static', points: [{ x: 20, y: 0.5 }, { x: 10, y: 0.4 }] }]);
    expect(v.markers.map((m) => [m.kind, m.x])).toEqual([['promote', 10], ['promote', 30], ['rollback', 40], ['alarm', 20]]);
    expect(v.markers[2]!.label).toContain('rolled back v2 → v1');
    expect(v.baselines[0]!.points.map((p) => p.x)).toEqual([10, 20]);
  });

  it('falls back to a metric the reports carry', () => {
    expect(qualityView('auc', reports, []).metric).toBe('accuracy');
  });
});

describe('drift view', () => {
  const d = (end: number, psi: number): { variant: string; report: DriftReport } => ({
    variant: 'champion',
    report: { report_id: String(end), pipeline: 'p', model_name: 'm', model_version: 1, window_start: end - 1, window_end: end, count: 10, prediction_psi: null, drifted: psi > 0.2,
      features: [{ feature: 'a', test: 'psi', statistic: psi, p_value: null, psi, drifted: psi > 0.2 }, { feature: 'b', test: 'chi_square', statistic: 3, p_value: 0.1, psi: null, drifted: false }] },
  });
  it('is one cell per feature and window, oldest first, PSI or the test statistic', () => {
    const v = driftView([d(30, 0.3), d(10, 0.1)], 0.2);
    expect(v.windows).toEqual([10, 30]);
    expect(v.features).toEqual(['a', 'b']);
    expect(v.cells).toContainEqual({ x: 1, y: 'a', v: 0.3, drifted: true, test: 'psi' });
    expect(v.cells).toContainEqual({ x: 0, y: 'b', v: 3, drifted: false, test: 'chi_square' });
  });
});

describe('flow, labels and registry views', () => {
  it('sum lag and rate per group per sample and keep the latest partitions', () => {
    const r = (partition: number, lag: number, perSecond: number | null) => ({ worker: 'scorer', group: 'g', topic: 't', partition, end: 10, committed: 10 - lag, lag, perSecond });
    const v = flowView([{ at: 1, rows: [r(0, 5, null), r(1, 5, null)] }, { at: 2, rows: [r(0, 1, 4), r(1, 0, 6)] }]);
    expect(v.groups).toEqual([{ worker: 'scorer', group: 'g', rate: [{ x: 2, y: 10 }], lag: [{ x: 1, y: 10 }, { x: 2, y: 1 }] }]);
    expect(v.partitions.map((p) => p.lag)).toEqual([1, 0]);
  });

  it('turn label samples into coverage and delay in hours', () => {
    const v = labelView([{ at: 1, coverage: 0.5, delayP50Seconds: 7200, delayMeanSeconds: null, joined: 3, late: 1 }], 'this process');
    expect(v).toMatchObject({ coverage: [{ x: 1, y: 0.5 }], delayP50Hours: [{ x: 1, y: 2 }], delayMeanHours: [], joined: 3, late: 1 });
  });

  it('list versions newest first with their role and verdict', () => {
    const base = { pipeline: 'p', modelName: 'm', spec: {} as never, baseline: {} as never, metrics: {}, sha256: '', trainer: 'builtin', trainerSettings: {}, trainingStart: null, trainingEnd: null, trainingRows: 10, parentVersion: null, requestId: null, createdAt: 0 };
    const v = registryView([{ ...base, version: 1, status: 'champion', verdict: 'bootstrap model' }, { ...base, version: 2, status: 'rejected', verdict: 'difference -0.01 [-0.03, 0.01]' }], { champion: 1, previous: null, shadow: null, ab: null, abShare: 0 }, []);
    expect(v.versions.map((x) => [x.version, x.role, x.verdict])).toEqual([[2, null, 'difference -0.01 [-0.03, 0.01]'], [1, 'champion', 'bootstrap model']]);
  });
});

describe('POST /api/baselines', () => {
  it('takes a name and finite points, and says what is wrong otherwise', () => {
    expect(parseBaseline({ name: 'static', points: [{ x: 1, y: 0.7 }] })).toEqual({ name: 'static', points: [{ x: 1, y: 0.7 }] });
    expect(() => parseBaseline({ name: '', points: [] })).toThrow(BadRequestError);
    expect(() => parseBaseline({ name: 'x', points: [{ x: 1, y: 'a' }] })).toThrow(/points\[0\]/);
  });
});
