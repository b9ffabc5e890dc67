import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { periodicBaseline, periodicBaselineForPipeline } from './periodic-baseline.js';
import type { PeriodicRow, Refit, RowScorer } from './periodic-baseline.js';
import type { FeatureRow } from './feature-spec.js';
import type { ModelOutput } from './model-output.js';
import { trainModel } from './trainer.js';
import { randomSource } from './test-support.js';
import { loadSpec } from '../pipelines/spec.js';

const spec = { task: 'binary' as const, features: [{ name: 'x', kind: 'numeric' as const }], classes: ['0', '1'] };
const constant = (label: string): RowScorer => (rows) => rows.map(() => ({ label, score: label === '1' ? 1 : 0, probabilities: label === '1' ? [0, 1] : [1, 0], value: null }));

/** Row i at time i with label known `delay` later; x = i. */
function stream(n: number, delay: number, label: (i: number) => string = () => '1', start = 0): PeriodicRow[] {
  return Array.from({ length: n }, (_, k) => {
    const i = start + k;
    return { eventTime: i, values: { x: i }, label: label(i), labelTime: i + delay };
  });
}

/** A refit that records its windows and scores with the window's majority label. */
function recordingRefit(): { refit: Refit; windows: FeatureRow[][] } {
  const windows: FeatureRow[][] = [];
  const refit: Refit = (rows, labels) => {
    windows.push(rows);
    const ones = labels.filter((l) => l === '1').length;
    return constant(ones * 2 >= labels.length ? '1' : '0');
  };
  return { refit, windows };
}

describe('periodicBaseline', () => {
  it('refits when fresh usable labels reach each multiple of everyLabels, on the newest windowRows', () => {
    const { refit, windows } = recordingRefit();
    const rows = stream(100, 5);
    const result = periodicBaseline({ spec, rows, bootstrap: constant('0'), trainer: refit, everyLabels: 20, windowRows: 15 });
    // Row t sees the labels of rows <= t - 5: 20 of them first at t = 24.
    expect(result.refits.map((r) => r.fromRow)).toEqual([24, 44, 64, 84]);
    expect(result.refits.map((r) => r.freshLabels)).toEqual([20, 40, 60, 80]);
    expect(result.refits.every((r) => r.trainedRows === 15)).toBe(true);
    expect(windows[0]?.map((r) => r.x)).toEqual(Array.from({ length: 15 }, (_, i) => 5 + i));
    // Each row is scored by the latest model fitted before it.
    expect(result.predictions.map((p) => p.model).slice(22, 26)).toEqual([0, 0, 1, 1]);
    expect(result.predictions.filter((p) => p.model === 0)).toHaveLength(24);
    expect(result.metrics.accuracy).toBeCloseTo(76 / 100, 12);
  });

  it('never learns from a label before its labelTime (labels arriving at the row’s own time count)', () => {
    const refit: Refit = (rows) => {
      const newest = Math.max(...rows.map((r) => r.x as number));
      return (scored) => {
        for (const r of scored) expect(newest + 7).toBeLessThanOrEqual(r.x as number);
        return constant('1')(scored);
      };
    };
    periodicBaseline({ spec, rows: stream(200, 7), bootstrap: constant('1'), trainer: refit, everyLabels: 10, windowRows: 50 });
  });

  it('refits once when a burst of labels crosses several multiples, and uses history in the window', () => {
    const { refit, windows } = recordingRefit();
    const history = stream(30, 0, () => '0', -30);
    // All 50 labels arrive at time 60.
    const rows = stream(80, 0).map((r, i) => ({ ...r, labelTime: i < 50 ? 60 : 1000 }));
    const result = periodicBaseline({ spec, rows, history, bootstrap: constant('0'), trainer: refit, everyLabels: 20, windowRows: 60 });
    expect(result.refits).toEqual([{ fromRow: 60, freshLabels: 50, trainedRows: 60, ms: expect.any(Number) }]);
    expect(windows[0]?.[0]?.x).toBe(-10);
  });

  it('skips unlabeled rows in training and metrics but still scores them', () => {
    const rows = stream(10, 0).map((r, i) => (i % 2 ? { ...r, label: null } : r));
    const result = periodicBaseline({ spec, rows, bootstrap: constant('1'), trainer: recordingRefit().refit, everyLabels: 100, windowRows: 10 });
    expect(result.predictions).toHaveLength(10);
    expect(result.metrics.count).toBe(5);
  });

  it('refitting with a built-in trainer follows a concept that flips', () => {
    const { normal } = randomSource(3);
    const xs = Array.from({ length: 6000 }, () => normal());
    const rows: PeriodicRow[] = xs.map((x, i) => ({ eventTime: i, values: { x }, label: (i < 3000 ? x > 0 : x < 0) ? '1' : '0', labelTime: i + 10 }));
    const bootstrap = trainModel({ spec, rows: rows.slice(0, 1000).map((r) => r.values), labels: rows.slice(0, 1000).map((r) => r.label as string) });
    const scored = rows.slice(1000);
    const frozen = periodicBaseline({ spec, rows: scored, bootstrap: bootstrap.predict, trainer: { algorithm: 'linear' }, everyLabels: 100_000, windowRows: 500 });
    const refitted = periodicBaseline({ spec, rows: scored, bootstrap: bootstrap.predict, trainer: { algorithm: 'gbdt', settings: { trees: 20 } }, everyLabels: 500, windowRows: 500 });
    expect(frozen.refits).toHaveLength(0);
    expect(frozen.metrics.accuracy).toBeLessThan(0.5);
    expect(refitted.refits).toHaveLength(9);
    expect(refitted.metrics.accuracy).toBeGreaterThan(0.85);
    expect(refitted.metrics.auc).toBeGreaterThan(0.85);
  });

  it.each<[string, () => unknown, RegExp]>([
    ['unordered rows', () => periodicBaseline({ spec, rows: [...stream(3, 0)].reverse(), bootstrap: constant('1'), trainer: { algorithm: 'linear' }, windowRows: 10 }), /row 1 is earlier than row 0/],
    ['no classes', () => periodicBaseline({ spec: { ...spec, classes: undefined }, rows: [], bootstrap: constant('1'), trainer: { algorithm: 'linear' }, windowRows: 10 }), /needs its classes/],
    ['bad everyLabels', () => periodicBaseline({ spec, rows: [], bootstrap: constant('1'), trainer: { algorithm: 'linear' }, everyLabels: 0, windowRows: 10 }), /everyLabels/],
  ])('rejects %s', (_, run, message) => {
    expect(run).toThrow(message);
  });
});

describe('periodicBaselineForPipeline', () => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const { spec: elec2 } = loadSpec(path.join(here, '../pipelines/elec2.json'));

  it('uses the pipeline’s inputs, classes, trainer, window and cadence', () => {
    const { uniform } = randomSource(8);
    const rows: PeriodicRow[] = Array.from({ length: 3000 }, (_, i) => {
      const values: FeatureRow = { day: String(1 + (Math.floor(i / 48) % 7)), period: (i % 48) / 47, nswdemand: uniform(), vicprice: 0.003467, vicdemand: uniform(), transfer: uniform(), nswprice_prev: uniform(), nswprice_ma48: 0.5 };
      return { eventTime: i * 1_800_000, values, label: (values.nswprice_prev as number) > 0.5 ? 'UP' : 'DOWN', labelTime: (i + 48) * 1_800_000 };
    });
    const outputs: ModelOutput[] = [];
    const bootstrap: RowScorer = (scored) => scored.map(() => {
      const o: ModelOutput = { label: 'DOWN', score: 0.1, probabilities: [0.9, 0.1], value: null };
      outputs.push(o);
      return o;
    });
    const result = periodicBaselineForPipeline({ ...elec2, trainer: { ...elec2.trainer, windowRows: 1000 } }, { rows, bootstrap, everyLabels: 1000 });
    expect(result.refits.map((r) => [r.fromRow, r.trainedRows])).toEqual([[1047, 1000], [2047, 1000]]);
    expect(outputs).toHaveLength(1047);
    expect(result.metrics.accuracy).toBeGreaterThan(0.7);
    expect(Object.keys(result.metrics).sort()).toEqual(['accuracy', 'auc', 'balancedAccuracy', 'count', 'logLoss', 'macroF1']);
  });
});
