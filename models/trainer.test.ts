import { describe, it, expect, afterAll } from 'vitest';
import { DEFAULT_TRAINER_SETTINGS, fitLinearModel, trainModel } from './trainer.js';
import type { TrainInput } from './trainer.js';
import { fitLegacyLinear } from './legacy-linear.js';
import { loadOnnxModel } from './onnx-model.js';
import type { OnnxModel } from './onnx-model.js';
import { encodeRows } from './encode.js';
import { forward } from './linear-model.js';
import type { LinearModelParams } from './linear-model.js';
import type { FeatureRow } from './feature-spec.js';
import type { ModelOutput } from './model-output.js';
import { binaryData, blobData, randomSource, regressionData } from './test-support.js';

const opened: OnnxModel[] = [];
afterAll(async () => {
  await Promise.all(opened.map((m) => m.close()));
});

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
      settings: { epochs: 50, learningRate: 0.05, l2: 1e-4, batchSize: 64, seed: 42, clip: 5, clipToRange: false, minStd: 0, classWeight: 'none' },
    });
    expect(model.trainer.settings).toEqual(DEFAULT_TRAINER_SETTINGS);
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
    ['bad clip', { ...ok, settings: { clip: 0 } }, /clip must be > 0/],
    ['bad minStd', { ...ok, settings: { minStd: -1 } }, /minStd must be a finite number >= 0/],
    ['bad classWeight', { ...ok, settings: { classWeight: 'auto' as never } }, /classWeight must be one of none, balanced/],
  ])('rejects %s', (_, input, message) => {
    expect(() => trainModel(input)).toThrow(message);
  });
});

/**
 * Two failures seen on real data, reproduced with the trainer as it was
 * (models/legacy-linear.ts) and shown fixed: y depends on x only; `c`
 * is a (nearly) constant, uninformative column that later shifts.
 */
describe('scaling that holds up when a near-constant column shifts', () => {
  const spec = { task: 'binary' as const, features: [{ name: 'x', kind: 'numeric' as const }, { name: 'c', kind: 'numeric' as const }] };
  const data = (c: (i: number, normal: () => number) => number): TrainInput => {
    const { normal } = randomSource(5);
    const rows: FeatureRow[] = [];
    const labels: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const x = normal();
      rows.push({ x, c: c(i, normal) });
      labels.push(x + 0.5 * normal() > 0 ? 'y' : 'n');
    }
    return { spec, rows, labels };
  };
  const shifted = (rows: FeatureRow[], by: number): FeatureRow[] => rows.map((r) => ({ ...r, c: (r.c as number) + by }));
  const flipRate = (a: ModelOutput[], b: ModelOutput[]): number => a.filter((o, i) => o.label !== b[i]?.label).length / a.length;

  // One row in 2,000 differs by 1e-7: std ≈ 2e-9, so a shift of 0.01 standardises to ~4.5e6.
  const nearConstant = data((i) => (i === 7 ? 0.0034671 : 0.003467));
  // Spread 0.002 in training, then the column moves by 4 (≈ 2,000 stds).
  const narrow = data((_, normal) => 0.42 + 0.002 * normal());

  it.each<[string, TrainInput, number]>([
    ['float32 std near zero (near-constant column)', nearConstant, 0.01],
    ['spread 0.002 then a shift of +4', narrow, 4],
    ['spread 0.002 then a shift of -4', narrow, -4],
  ])('%s: the old trainer flips most predictions, the new one almost none', async (_, input, by) => {
    const old = fitLegacyLinear(input);
    expect(flipRate(old.predict(input.rows), old.predict(shifted(input.rows, by)))).toBeGreaterThan(0.4);

    const model = trainModel(input);
    expect(flipRate(model.predict(input.rows), model.predict(shifted(input.rows, by)))).toBeLessThan(0.03);
    // The ONNX graph clips exactly like the TS pass.
    const onnx = await loadOnnxModel(model.onnx, model.spec);
    opened.push(onnx);
    const rows = shifted(input.rows, by);
    const { params } = fitLinearModel(input);
    const expected = forward(params, encodeRows(model.spec, rows), rows.length);
    (await onnx.predict(rows)).forEach((o, i) => expect(o.score).toBeCloseTo(expected[i * 2 + 1] ?? NaN, 5));
  });

  it('a constant column gets weight 0 and can never move a prediction', () => {
    const input = data(() => 0.003467);
    const { params } = fitLinearModel(input);
    expect(params.numeric[1]).toEqual({ column: 1, mean: Math.fround(0.003467), std: 1, low: 0, high: 0 });
    expect(params.weights[1]).toBe(0);
    const model = trainModel(input);
    expect(model.predict(shifted(input.rows, 1000))).toEqual(model.predict(input.rows));
  });

  it('floors the scale at max(minStd, 1e-3·|mean|)', () => {
    expect(fitLinearModel(nearConstant).params.numeric[1]?.std).toBeCloseTo(1e-3 * 0.003467, 12);
    expect(fitLinearModel({ ...narrow, settings: { minStd: 0.1 } }).params.numeric[1]?.std).toBeCloseTo(0.1, 6);
    expect(fitLinearModel(narrow).params.numeric[1]?.std).toBeCloseTo(0.002, 3);
  });

  it('clips standardised values to [-clip, clip] and, with clipToRange, to the training range', () => {
    const score = (params: LinearModelParams, x: number): number => forward(params, encodeRows(params.spec, [{ x, c: 0.42 }]), 1)[1] ?? NaN;
    const { params } = fitLinearModel({ ...narrow, settings: { clip: 2, clipToRange: false } });
    const x = params.numeric[0] ?? { mean: 0, std: 1, low: 0, high: 0 };
    expect([x.low, x.high]).toEqual([-2, 2]);
    // x = 100 is far beyond 2 stds, so it scores exactly like x = mean + 2·std.
    expect(score(params, 100)).toBeCloseTo(score(params, x.mean + 2 * x.std), 5);

    const ranged = fitLinearModel({ ...narrow, settings: { clipToRange: true } }).params;
    const xs = narrow.rows.map((r) => r.x as number);
    const top = Math.max(...xs);
    const r = ranged.numeric[0] ?? { mean: 0, std: 1, low: 0, high: 0 };
    expect(r.high).toBeCloseTo((top - r.mean) / r.std, 5);
    expect(r.high).toBeLessThan(5);
    expect(score(ranged, 100)).toBeCloseTo(score(ranged, top), 5);
  });
});

describe('regularisation and class weights', () => {
  it('l2 shrinks the weights', () => {
    const norm = (l2: number): number => {
      const { params } = fitLinearModel({ ...binaryData(1000), settings: { l2 } });
      return Math.hypot(...params.weights);
    };
    expect(norm(0.1)).toBeLessThan(norm(0.01));
    expect(norm(0.01)).toBeLessThan(norm(0));
  });

  it('balanced class weights raise minority recall', () => {
    const { normal } = randomSource(6);
    const rows: FeatureRow[] = [];
    const labels: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const x = normal();
      rows.push({ x });
      labels.push(x + normal() > 2 ? 'rare' : 'common');
    }
    const spec = { task: 'binary' as const, features: [{ name: 'x', kind: 'numeric' as const }], classes: ['common', 'rare'] };
    const recall = (classWeight: 'none' | 'balanced'): number => {
      const out = trainModel({ spec, rows, labels, settings: { classWeight } }).predict(rows);
      const rare = labels.map((l, i) => [l, out[i]?.label]).filter(([l]) => l === 'rare');
      return rare.filter(([, p]) => p === 'rare').length / rare.length;
    };
    expect(recall('balanced')).toBeGreaterThan(recall('none') + 0.3);
  });
});
