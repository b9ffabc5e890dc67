import { describe, it, expect, afterAll } from 'vitest';
import onnxProto from 'onnx-proto';
import { loadOnnxModel, ModelSpecMismatchError } from './onnx-model.js';
import type { OnnxModel } from './onnx-model.js';
import { fitLinearModel, trainModel } from './trainer.js';
import type { TrainInput } from './trainer.js';
import { encodeRows } from './encode.js';
import { forward } from './linear-model.js';
import { decodeOutputs } from './model-output.js';
import type { FeatureRow, FeatureSpec } from './feature-spec.js';
import { binaryData, blobData, regressionData } from './test-support.js';

const { onnx } = onnxProto;
const opened: OnnxModel[] = [];
const open = async (bytes: Uint8Array, spec: FeatureSpec): Promise<OnnxModel> => {
  const model = await loadOnnxModel(bytes, spec);
  opened.push(model);
  return model;
};
afterAll(async () => {
  await Promise.all(opened.map((m) => m.close()));
});

const cases: Array<[string, TrainInput]> = [
  ['binary', binaryData(400)],
  ['multiclass', blobData(300)],
  ['regression', regressionData(300, 0.5)],
];

describe('ONNX export', () => {
  it.each(cases)('%s: onnxruntime output equals the TS forward pass within 1e-4', async (_, input) => {
    const trained = trainModel(input);
    const { params, encoded } = fitLinearModel(input);
    const n = input.rows.length;
    const expected = forward(params, encoded, n);
    const model = await open(trained.onnx, trained.spec);
    const actual = await model.predictEncoded(encoded, n);
    const flat = actual.flatMap((o) => o.probabilities ?? [o.value ?? Number.NaN]);
    expect(flat).toHaveLength(expected.length);
    flat.forEach((v, i) => expect(Math.abs(v - (expected[i] ?? 0))).toBeLessThan(1e-4));
    // Labels agree except where the top two classes are within float noise.
    const tsOutputs = decodeOutputs(trained.spec, expected, n);
    const disagreements = actual.filter((o, i) => o.label !== tsOutputs[i]?.label).length;
    expect(disagreements).toBeLessThanOrEqual(1);
  });

  it('scores missing values and unknown categories without NaN', async () => {
    const trained = trainModel(binaryData(400));
    const model = await open(trained.onnx, trained.spec);
    const rows: FeatureRow[] = [
      { x1: null, x2: Number.NaN, colour: 'purple' },
      {},
      { x1: 'n/a', x2: 1, colour: null },
      { x1: 3, x2: -1, colour: 'red' },
    ];
    const outputs = await model.predict(rows);
    expect(outputs).toHaveLength(4);
    for (const o of outputs) {
      expect(Number.isFinite(o.score)).toBe(true);
      expect(o.probabilities?.every(Number.isFinite)).toBe(true);
      expect((o.probabilities?.[0] ?? 0) + (o.probabilities?.[1] ?? 0)).toBeCloseTo(1, 5);
      expect(o.score).toBe(o.probabilities?.[1]);
      expect(['no', 'yes']).toContain(o.label);
    }
    expect(outputs[3]?.label).toBe('yes');
    // The graph imputes exactly as the TS side does.
    const { params } = fitLinearModel(binaryData(400));
    const expected = forward(params, encodeRows(trained.spec, rows), rows.length);
    outputs.forEach((o, i) => expect(o.score).toBeCloseTo(expected[i * 2 + 1] ?? 0, 4));
  });

  it('shapes outputs per task', async () => {
    const reg = trainModel(regressionData(200, 0.1));
    const model = await open(reg.onnx, reg.spec);
    const [out] = await model.predict([{ x1: 1, x2: 1 }]);
    expect(out).toMatchObject({ label: null, probabilities: null });
    expect(out?.score).toBe(out?.value);
    expect(out?.value).toBeCloseTo(-1, 0);
    expect(await model.predict([])).toEqual([]);
  });
});

describe('loadOnnxModel refuses mismatches', () => {
  const binary = trainModel(binaryData(100));
  const multi = trainModel(blobData(90));
  const renamed: FeatureSpec = {
    ...binary.spec,
    features: binary.spec.features.map((f, i) => (i === 0 ? { ...f, name: 'renamed' } : f)),
  };

  it.each<[string, Uint8Array, FeatureSpec, RegExp]>([
    ['too few columns', binary.onnx, { ...binary.spec, features: binary.spec.features.slice(1) }, /"features" has shape \[N, 3\], expected \[N, 2\]/],
    ['regression spec on a classifier', binary.onnx, { ...binary.spec, task: 'regression', classes: [] }, /needs "value"/],
    ['wrong class count', multi.onnx, { ...multi.spec, classes: ['a', 'b', 'c', 'd'] }, /"probabilities" has shape \[N, 3\], expected \[N, 4\]/],
    ['renamed feature (embedded spec)', binary.onnx, renamed, /different spec: feature 0 is "x1", expected "renamed"/],
    ['wrong input name', identityModel('input', 3), binary.spec, /inputs are \[input\]/],
    ['invalid spec', binary.onnx, { ...binary.spec, classes: ['only'] }, /invalid feature spec/],
  ])('%s', async (_, bytes, spec, message) => {
    const attempt = loadOnnxModel(bytes, spec);
    await expect(attempt).rejects.toBeInstanceOf(ModelSpecMismatchError);
    await expect(attempt).rejects.toThrow(message);
  });

  it('checks dims of a model without an embedded spec', async () => {
    const spec: FeatureSpec = { task: 'regression', features: [{ name: 'a', kind: 'numeric' }], classes: [] };
    await expect(loadOnnxModel(identityModel('features', 2, 'value'), spec)).rejects.toThrow(/expected \[N, 1\]/);
    const model = await open(identityModel('features', 1, 'value'), spec);
    expect(await model.predict([{ a: 2.5 }])).toEqual([{ label: null, score: 2.5, probabilities: null, value: 2.5 }]);
  });
});

/** A bare Identity graph [N, columns] → [N, columns] with no embedded spec. */
function identityModel(input: string, columns: number, output = 'out'): Uint8Array {
  const info = (name: string) => ({
    name,
    type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'N' }, { dimValue: columns }] } } },
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: { name: 'identity', node: [{ opType: 'Identity', input: [input], output: [output] }], input: [info(input)], output: [info(output)] },
  });
  return onnx.ModelProto.encode(model).finish();
}
