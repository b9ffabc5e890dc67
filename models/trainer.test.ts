import { describe, it, expect } from 'vitest';
import { fitLinearModel, trainModel } from './trainer.js';
import type { TrainInput } from './trainer.js';
import { binaryData, blobData, regressionData } from './test-support.js';

describe('trainModel', () => {
  it('fits a binary logistic regression with a categorical feature and missing values', () => {
    const model = trainModel(binaryData(1000));
    expect(model.spec.classes).toEqual(['no', 'yes']);
    expect(model.spec.features[2]?.categories).toEqual(['blue', 'green', 'red']);
    expect(model.metrics.accuracy).toBeGreaterThan(0.9);
    expect(model.metrics.logLoss).toBeLessThan(0.3);
    expect(model.trainedRows).toBe(1000);
    expect(model.trainer).toEqual({
      name: 'builtin-linear',
      settings: { epochs: 50, learningRate: 0.05, l2: 1e-4, batchSize: 64, seed: 42 },
    });
  });

  it('fits a softmax regression on three gaussian blobs', () => {
    const model = trainModel(blobData(900));
    expect(model.spec.classes).toEqual(['a', 'b', 'c']);
    expect(model.metrics.accuracy).toBeGreaterThan(0.9);
  });

  it('recovers y = 2·x1 − 3·x2 up to the noise level', () => {
    const noise = 0.5;
    const { params } = fitLinearModel(regressionData(2000, noise));
    const model = trainModel(regressionData(2000, noise));
    expect(model.metrics.rmse).toBeGreaterThan(noise * 0.9);
    expect(model.metrics.rmse).toBeLessThan(noise * 1.1);
    // Raw-scale coefficient = standardised weight / feature std.
    const coefficients = params.numeric.map((f, j) => (params.weights[j] ?? 0) / f.std);
    expect(coefficients[0]).toBeCloseTo(2, 1);
    expect(coefficients[1]).toBeCloseTo(-3, 1);
  });

  it('is deterministic for a seed and varies with it', () => {
    const input = binaryData(300);
    const a = trainModel({ ...input, settings: { seed: 7 } });
    const b = trainModel({ ...input, settings: { seed: 7 } });
    const c = trainModel({ ...input, settings: { seed: 8 } });
    expect(Buffer.from(a.onnx).equals(Buffer.from(b.onnx))).toBe(true);
    expect(a.metrics).toEqual(b.metrics);
    expect(Buffer.from(a.onnx).equals(Buffer.from(c.onnx))).toBe(false);
  });

  it('orders learned numeric classes numerically and honours given classes', () => {
    const rows = Array.from({ length: 30 }, (_, i) => ({ x: i % 3 }));
    const labels = rows.map((r) => [2, 10, 1][r.x as number] ?? 0);
    const spec = { task: 'multiclass' as const, features: [{ name: 'x', kind: 'numeric' as const }] };
    expect(trainModel({ spec, rows, labels }).spec.classes).toEqual(['1', '2', '10']);
    const given = ['10', '2', '1'];
    expect(trainModel({ spec: { ...spec, classes: given }, rows, labels }).spec.classes).toEqual(given);
  });

  const ok = binaryData(20);
  it.each<[string, TrainInput, RegExp]>([
    ['no rows', { ...ok, rows: [], labels: [] }, /no training rows/],
    ['length mismatch', { ...ok, labels: ok.labels.slice(1) }, /20 rows but 19 labels/],
    ['unknown label', { ...ok, spec: { ...ok.spec, classes: ['no', 'maybe'] } }, /not one of the classes/],
    ['single class', { ...ok, labels: ok.labels.map(() => 'yes') }, /exactly 2 classes/],
    ['non-numeric regression label', { ...regressionData(5, 0.1), labels: ['a', 1, 2, 3, 4] }, /not a finite number/],
    ['infinite feature', { ...regressionData(2, 0.1), rows: [{ x1: Infinity, x2: 0 }, { x1: 0, x2: 0 }] }, /Infinity/],
    ['bad settings', { ...ok, settings: { batchSize: 0 } }, /batchSize/],
  ])('rejects %s', (_, input, message) => {
    expect(() => trainModel(input)).toThrow(message);
  });
});
