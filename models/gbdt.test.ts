import { afterAll, describe, expect, it } from 'vitest';
import onnxProto from 'onnx-proto';
import { fitGbdtModel, trainGbdtModel, DEFAULT_GBDT_SETTINGS } from './gbdt.js';
import type { GbdtTrainInput } from './gbdt.js';
import { gbdtForward } from './gbdt-model.js';
import { loadOnnxModel } from './onnx-model.js';
import type { OnnxModel } from './onnx-model.js';
import { computeBaseline } from './baseline.js';
import { decodeOutputs } from './model-output.js';
import { encodeRows } from './encode.js';
import type { FeatureRow, FeatureSpec } from './feature-spec.js';
import { binaryData, blobData, randomSource, regressionData } from './test-support.js';

const opened: OnnxModel[] = [];
const open = async (bytes: Uint8Array, spec: FeatureSpec): Promise<OnnxModel> => {
  const model = await loadOnnxModel(bytes, spec);
  opened.push(model);
  return model;
};
afterAll(async () => {
  await Promise.all(opened.map((m) => m.close()));
});

/** Rows unlike the training rows: wider ranges, 15% missing, unknown and missing categories. */
function randomRows(spec: FeatureSpec, n: number, seed: number): FeatureRow[] {
  const { uniform, normal } = randomSource(seed);
  return Array.from({ length: n }, () =>
    Object.fromEntries(
      spec.features.map((f) => {
        if (uniform() < 0.15) return [f.name, null];
        if (f.kind === 'numeric') return [f.name, 3 * normal()];
        const categories = f.categories ?? [];
        return [f.name, uniform() < 0.1 ? 'never-seen' : (categories[Math.floor(uniform() * categories.length)] ?? null)];
      }),
    ),
  );
}

const cases: Array<[string, GbdtTrainInput]> = [
  ['binary', binaryData(1000)],
  ['multiclass', blobData(900)],
  ['regression', regressionData(1000, 0.5)],
];

describe('trainGbdtModel', () => {
  it.each(cases)('%s: onnxruntime output equals the TS model on training and random rows', async (_, input) => {
    const trained = trainGbdtModel(input);
    const { params } = fitGbdtModel(input);
    const model = await open(trained.onnx, trained.spec);
    for (const rows of [input.rows, randomRows(trained.spec, 500, 11)]) {
      const encoded = encodeRows(trained.spec, rows);
      const expected = gbdtForward(params, encoded, rows.length);
      const actual = (await model.predictEncoded(encoded, rows.length)).flatMap((o) => o.probabilities ?? [o.value ?? Number.NaN]);
      expect(actual).toHaveLength(expected.length);
      actual.forEach((v, i) => {
        const e = expected[i] ?? 0;
        expect(Math.abs(v - e)).toBeLessThan(1e-5 * Math.max(1, Math.abs(e)));
      });
      // The model's own `predict` is that TS forward pass.
      expect(trained.predict(rows).flatMap((o) => o.probabilities ?? [o.value ?? Number.NaN])).toEqual(Array.from(expected));
    }
  });

  it('a window too small to split gives leaf-only trees that onnxruntime accepts', async () => {
    const input = binaryData(20);
    const trained = trainGbdtModel(input);
    expect(fitGbdtModel(input).params.trees.every((t) => t.nodes.length === 1)).toBe(true);
    const model = await open(trained.onnx, trained.spec);
    const [a] = await model.predict(input.rows.slice(0, 1));
    expect(a?.score).toBeCloseTo(trained.predict(input.rows.slice(0, 1))[0]?.score ?? NaN, 6);
  });

  it('learns each task', () => {
    expect(trainGbdtModel(binaryData(1000)).metrics.accuracy).toBeGreaterThan(0.9);
    expect(trainGbdtModel(blobData(900)).metrics.accuracy).toBeGreaterThan(0.9);
    const reg = trainGbdtModel(regressionData(2000, 0.5));
    expect(reg.metrics.rmse).toBeLessThan(1);
    expect(reg.trainer.name).toBe('builtin-gbdt');
    expect(reg.trainer.settings).toEqual(DEFAULT_GBDT_SETTINGS);
  });

  it('computes the baseline like the linear trainer: training rows and the model’s own predictions', () => {
    const input = binaryData(500);
    const trained = trainGbdtModel(input);
    const { params, encoded } = fitGbdtModel(input);
    const predictions = decodeOutputs(trained.spec, gbdtForward(params, encoded, 500), 500);
    expect(trained.baseline).toEqual(computeBaseline(trained.spec, input.rows, predictions));
    expect(trained.baseline.rows).toBe(500);
  });

  it('learns where missing values go', async () => {
    // y is "yes" when x is missing or above 1, so missing must follow the x > 1 side.
    const { uniform, normal } = randomSource(4);
    const rows: FeatureRow[] = [];
    const labels: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const missing = uniform() < 0.2;
      const x = normal();
      rows.push({ x: missing ? null : x, z: normal() });
      labels.push(missing || x > 1 ? 'yes' : 'no');
    }
    const trained = trainGbdtModel({ spec: { task: 'binary', features: [{ name: 'x', kind: 'numeric' }, { name: 'z', kind: 'numeric' }] }, rows, labels });
    const probe = [{ x: null, z: 0 }, { x: 2, z: 0 }, { x: -1, z: 0 }];
    const model = await open(trained.onnx, trained.spec);
    expect((await model.predict(probe)).map((o) => o.label)).toEqual(['yes', 'yes', 'no']);
    expect(trained.predict(probe).map((o) => o.label)).toEqual(['yes', 'yes', 'no']);
  });

  it('splits on categories; unknown and missing categories take the "rest" side', async () => {
    const { uniform, normal } = randomSource(5);
    const colours = ['red', 'green', 'blue', 'grey'];
    const rows: FeatureRow[] = [];
    const labels: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const colour = colours[i % 4] ?? 'red';
      rows.push({ colour, noise: uniform() });
      labels.push((colour === 'green' ? 10 : 0) + 0.1 * normal());
    }
    const spec = { task: 'regression' as const, features: [{ name: 'colour', kind: 'categorical' as const }, { name: 'noise', kind: 'numeric' as const }] };
    const trained = trainGbdtModel({ spec, rows, labels });
    const model = await open(trained.onnx, trained.spec);
    const values = (await model.predict([{ colour: 'green' }, { colour: 'red' }, { colour: 'purple' }, { colour: null }])).map((o) => o.value ?? NaN);
    expect(values[0]).toBeCloseTo(10, 0);
    for (const v of values.slice(1)) expect(v).toBeCloseTo(0, 0);
  });

  it('is deterministic for a seed and varies with it', () => {
    const input = binaryData(500);
    const a = trainGbdtModel({ ...input, settings: { seed: 7 } });
    const b = trainGbdtModel({ ...input, settings: { seed: 7 } });
    const c = trainGbdtModel({ ...input, settings: { seed: 8 } });
    expect(Buffer.from(a.onnx).equals(Buffer.from(b.onnx))).toBe(true);
    expect(Buffer.from(a.onnx).equals(Buffer.from(c.onnx))).toBe(false);
    // Without subsampling the seed has nothing to drive.
    const d = trainGbdtModel({ ...input, settings: { seed: 7, subsample: 1 } });
    const e = trainGbdtModel({ ...input, settings: { seed: 8, subsample: 1 } });
    expect(Buffer.from(d.onnx).equals(Buffer.from(e.onnx))).toBe(true);
  });

  it('respects maxDepth, trees and minLeafRows', () => {
    const { params } = fitGbdtModel({ ...binaryData(400), settings: { trees: 7, maxDepth: 2, minLeafRows: 50 } });
    expect(params.trees).toHaveLength(7);
    for (const tree of params.trees) {
      expect(tree.nodes.filter((n) => n.kind === 'leaf').length).toBeLessThanOrEqual(4);
    }
    expect(fitGbdtModel({ ...blobData(90), settings: { trees: 3 } }).params.trees).toHaveLength(9);
  });

  it('writes one ai.onnx.ml TreeEnsembleRegressor with the task’s output function', () => {
    const model = onnxProto.onnx.ModelProto.decode(trainGbdtModel(binaryData(200)).onnx);
    expect(model.opsetImport.map((o) => `${o.domain}:${o.version}`)).toEqual([':17', 'ai.onnx.ml:3']);
    expect(model.graph?.node?.map((n) => n.opType)).toEqual(['TreeEnsembleRegressor', 'Sigmoid', 'Sub', 'Concat']);
  });

  it('balanced class weights raise minority recall', () => {
    const { uniform, normal } = randomSource(6);
    const rows: FeatureRow[] = [];
    const labels: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const x = normal();
      rows.push({ x });
      labels.push(x + normal() > 2 ? 'rare' : uniform() < 0.02 ? 'rare' : 'common');
    }
    const spec = { task: 'binary' as const, features: [{ name: 'x', kind: 'numeric' as const }], classes: ['common', 'rare'] };
    const recall = (classWeight: 'none' | 'balanced'): number => {
      const out = trainGbdtModel({ spec, rows, labels, settings: { classWeight } }).predict(rows);
      const rare = labels.map((l, i) => [l, out[i]?.label]).filter(([l]) => l === 'rare');
      return rare.filter(([, p]) => p === 'rare').length / rare.length;
    };
    expect(recall('balanced')).toBeGreaterThan(recall('none') + 0.2);
  });

  const ok = binaryData(20);
  it.each<[string, GbdtTrainInput, RegExp]>([
    ['no rows', { ...ok, rows: [], labels: [] }, /no training rows/],
    ['length mismatch', { ...ok, labels: ok.labels.slice(1) }, /20 rows but 19 labels/],
    ['unknown label', { ...ok, spec: { ...ok.spec, classes: ['no', 'maybe'] } }, /not one of the classes/],
    ['infinite feature', { ...regressionData(2, 0.1), rows: [{ x1: Infinity, x2: 0 }, { x1: 0, x2: 0 }] }, /x1" row 0 is Infinity/],
    ['maxDepth', { ...ok, settings: { maxDepth: 0 } }, /maxDepth must be an integer in 1\.\.12/],
    ['subsample', { ...ok, settings: { subsample: 1.5 } }, /subsample must be in \(0, 1\]/],
    ['classWeight', { ...ok, settings: { classWeight: 'heavy' as never } }, /classWeight must be one of none, balanced/],
  ])('rejects %s', (_, input, message) => {
    expect(() => trainGbdtModel(input)).toThrow(message);
  });
});
