import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';
import type { FeatureSpec } from './feature-spec.js';
import type { LinearModelParams } from './linear-model.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

/** ONNX IR version and default-domain opset written by this module. */
export const IR_VERSION = 8;
export const OPSET_VERSION = 17;
/** Graph input / output names shared with the loader. */
export const INPUT_NAME = 'features';
export const PROBABILITIES_OUTPUT = 'probabilities';
export const VALUE_OUTPUT = 'value';
/** Model metadata key holding the JSON {@link FeatureSpec} the model was built for. */
export const SPEC_METADATA_KEY = 'loopline.feature_spec';

/** Name of the graph output for a task. */
export function outputName(task: FeatureSpec['task']): string {
  return task === 'regression' ? VALUE_OUTPUT : PROBABILITIES_OUTPUT;
}

/** Accumulates nodes and constant initializers of one graph. */
class GraphBuilder {
  readonly nodes: Onnx.INodeProto[] = [];
  readonly initializers: Onnx.ITensorProto[] = [];

  floats(name: string, dims: number[], values: ArrayLike<number>): string {
    this.initializers.push({ name, dims, dataType: FLOAT, floatData: Array.from(values) });
    return name;
  }

  int64s(name: string, values: number[]): string {
    this.initializers.push({ name, dims: [values.length], dataType: INT64, int64Data: values });
    return name;
  }

  /** Adds a node with one output named `output`; returns `output`. */
  node(opType: string, inputs: string[], output: string, attributes: Record<string, number> = {}): string {
    const attribute = Object.entries(attributes).map(([name, i]) => ({
      name,
      type: onnx.AttributeProto.AttributeType.INT,
      i,
    }));
    this.nodes.push({ opType, input: inputs, output: [output], name: output, attribute });
    return output;
  }
}

function floatMatrixInfo(name: string, columns: number): Onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: columns }] } } },
  };
}

/**
 * Serialises a fitted linear model as an ONNX ModelProto (IR 8, opset 17).
 * The graph takes `features` float32 [N, F] (see `encodeRows`), imputes NaN
 * numerics with the training mean, standardises them, one-hot encodes
 * categorical codes, applies MatMul + Add and the task's output function, and
 * yields `probabilities` float32 [N, C] or `value` float32 [N, 1]. The spec is
 * stored as JSON under {@link SPEC_METADATA_KEY}. Output bytes are a pure
 * function of `params`.
 */
export function buildLinearOnnx(params: LinearModelParams): Uint8Array {
  const { spec } = params;
  const g = new GraphBuilder();
  const parts: string[] = [];

  if (params.numeric.length > 0) {
    const n = params.numeric.length;
    const cols = g.int64s('numeric_columns', params.numeric.map((x) => x.column));
    const mean = g.floats('numeric_mean', [n], params.numeric.map((x) => x.mean));
    const std = g.floats('numeric_std', [n], params.numeric.map((x) => x.std));
    const raw = g.node('Gather', [INPUT_NAME, cols], 'numeric_raw', { axis: 1 });
    const missing = g.node('IsNaN', [raw], 'numeric_missing');
    const imputed = g.node('Where', [missing, mean, raw], 'numeric_imputed');
    const centred = g.node('Sub', [imputed, mean], 'numeric_centred');
    parts.push(g.node('Div', [centred, std], 'numeric_scaled'));
  }
  params.categorical.forEach(({ column, size }, i) => {
    const col = g.int64s(`cat${i}_column`, [column]);
    const codes = g.floats(`cat${i}_codes`, [1, size], Array.from({ length: size }, (_, k) => k));
    const code = g.node('Gather', [INPUT_NAME, col], `cat${i}_code`, { axis: 1 });
    const hot = g.node('Equal', [code, codes], `cat${i}_equal`);
    parts.push(g.node('Cast', [hot], `cat${i}_onehot`, { to: FLOAT }));
  });

  const design = parts.length === 1 ? (parts[0] as string) : g.node('Concat', parts, 'design', { axis: 1 });
  const k = params.bias.length;
  const w = g.floats('weights', [params.weights.length / k, k], params.weights);
  const b = g.floats('bias', [k], params.bias);
  const product = g.node('MatMul', [design, w], 'product');
  const logits = g.node('Add', [product, b], spec.task === 'regression' ? VALUE_OUTPUT : 'logits');

  let outputColumns = 1;
  if (spec.task === 'binary') {
    const one = g.floats('one', [], [1]);
    const p = g.node('Sigmoid', [logits], 'p_positive');
    const q = g.node('Sub', [one, p], 'p_negative');
    g.node('Concat', [q, p], PROBABILITIES_OUTPUT, { axis: 1 });
    outputColumns = 2;
  } else if (spec.task === 'multiclass') {
    g.node('Softmax', [logits], PROBABILITIES_OUTPUT, { axis: -1 });
    outputColumns = k;
  }

  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET_VERSION }],
    producerName: 'loopline',
    producerVersion: '1',
    metadataProps: [{ key: SPEC_METADATA_KEY, value: JSON.stringify(spec) }],
    graph: {
      name: `loopline_linear_${spec.task}`,
      node: g.nodes,
      initializer: g.initializers,
      input: [floatMatrixInfo(INPUT_NAME, spec.features.length)],
      output: [floatMatrixInfo(outputName(spec.task), outputColumns)],
    },
  });
  // Copy: protobufjs may hand back a view into a shared Buffer pool.
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}

/**
 * Reads the spec embedded by {@link buildLinearOnnx}; null when the model has
 * none (e.g. built elsewhere). Throws if `bytes` is not a ModelProto.
 */
export function readEmbeddedSpec(bytes: Uint8Array): FeatureSpec | null {
  const model = onnx.ModelProto.decode(bytes);
  const entry = model.metadataProps.find((p) => p.key === SPEC_METADATA_KEY);
  return entry?.value ? (JSON.parse(entry.value) as FeatureSpec) : null;
}
