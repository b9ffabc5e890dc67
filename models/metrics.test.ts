import { describe, expect, it } from 'vitest';
import { qualityMetrics } from './metrics.js';
import type { ModelOutput } from './model-output.js';

const cls = (label: string, probabilities: number[], score = probabilities[1] ?? 0): ModelOutput => ({ label, probabilities, score, value: null });
const reg = (value: number): ModelOutput => ({ label: null, probabilities: null, score: value, value });

describe('qualityMetrics', () => {
  it('binary: accuracy, balanced accuracy, macro-F1, log loss and AUC', () => {
    const spec = { task: 'binary' as const, classes: ['no', 'yes'] };
    const labels = ['yes', 'yes', 'no', 'no', 'no'];
    const outputs = [cls('yes', [0.2, 0.8]), cls('no', [0.6, 0.4]), cls('no', [0.9, 0.1]), cls('no', [0.7, 0.3]), cls('yes', [0.4, 0.6])];
    const m = qualityMetrics(spec, labels, outputs);
    expect(m.count).toBe(5);
    expect(m.accuracy).toBeCloseTo(3 / 5, 12);
    // recall yes = 1/2, recall no = 2/3
    expect(m.balancedAccuracy).toBeCloseTo((1 / 2 + 2 / 3) / 2, 12);
    // F1 yes = 2·1/(2+2) = 0.5; F1 no = 2·2/(3+3) = 2/3
    expect(m.macroF1).toBeCloseTo((0.5 + 2 / 3) / 2, 12);
    expect(m.logLoss).toBeCloseTo(-(Math.log(0.8) + Math.log(0.4) + Math.log(0.9) + Math.log(0.7) + Math.log(0.4)) / 5, 12);
    // positives 0.8, 0.4 vs negatives 0.1, 0.3, 0.6: 5 of 6 pairs ordered
    expect(m.auc).toBeCloseTo(5 / 6, 12);
  });

  it('multiclass has no AUC; macro-F1 counts a class only predicted', () => {
    const spec = { task: 'multiclass' as const, classes: ['a', 'b', 'c'] };
    const m = qualityMetrics(spec, ['a', 'a', 'b'], [cls('a', [1, 0, 0]), cls('c', [0, 0, 1]), cls('b', [0, 1, 0])]);
    expect(m.accuracy).toBeCloseTo(2 / 3, 12);
    expect(m.balancedAccuracy).toBeCloseTo((1 / 2 + 1) / 2, 12);
    expect(m.macroF1).toBeCloseTo((2 / 3 + 1 + 0) / 3, 12);
    expect(m).not.toHaveProperty('auc');
  });

  it('regression: MAE and RMSE', () => {
    const m = qualityMetrics({ task: 'regression', classes: [] }, [1, 2, 3], [reg(2), reg(2), reg(5)]);
    expect(m).toEqual({ count: 3, mae: 1, rmse: Math.sqrt(5 / 3) });
  });

  it('is null on empty input and refuses mismatched lengths', () => {
    expect(qualityMetrics({ task: 'binary', classes: ['0', '1'] }, [], [])).toMatchObject({ count: 0, accuracy: null, auc: null });
    expect(() => qualityMetrics({ task: 'regression', classes: [] }, [1], [])).toThrow(RangeError);
  });
});
