import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';
import type { FeatureSpec } from './feature-spec.js';
import type { LinearModelParams } from './linear-model.js';
import type { GbdtModelParams } from './gbdt-model.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

/** ONNX IR version and default-domain opset written by this module. */
export const IR_VERSION = 8;
export const OPSET_VERSION = 17;
/** `ai.onnx.ml` opset of tree-ensemble models (TreeEnsembleRegressor v3, supported by onnxruntime since 1.x). */
export const ML_DOMAIN = 'ai.onnx.ml';
export const ML_OPSET_VERSION = 3;
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

/** An attribute value: an int, a float, a string, or a list of one of those (`kind` picks the list type). */
type AttributeValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'ints'; value: ArrayLike<number> }
  | { kind: 'floats'; value: ArrayLike<number> }
  | { kind: 'strings'; value: readonly string[] };

const { AttributeType } = onnx.AttributeProto;
const utf8 = new TextEncoder();

function attributeProto(name: string, a: AttributeValue): Onnx.IAttributeProto {
  switch (a.kind) {
    case 'int':
      return { name, type: AttributeType.INT, i: a.value };
    case 'float':
      return { name, type: AttributeType.FLOAT, f: a.value };
    case 'string':
      return { name, type: AttributeType.STRING, s: utf8.encode(a.value) };
    case 'ints':
      return { name, type: AttributeType.INTS, ints: Array.from(a.value) };
    case 'floats':
      return { name, type: AttributeType.FLOATS, floats: Array.from(a.value) };
    case 'strings':
      return { name, type: AttributeType.STRINGS, strings: a.value.map((v) => utf8.encode(v)) };
  }
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

  /** Adds a node with one output named `output` and integer attributes; returns `output`. */
  node(opType: string, inputs: string[], output: string, attributes: Record<string, number> = {}): string {
    const typed = Object.fromEntries(Object.entries(attributes).map(([k, i]) => [k, { kind: 'int', value: i } as const]));
    return this.op(opType, inputs, output, typed);
  }

  /** Adds a node of any domain with typed attributes; returns `output`. */
  op(opType: string, inputs: string[], output: string, attributes: Record<string, AttributeValue>, domain = ''): string {
    const attribute = Object.entries(attributes).map(([name, a]) => attributeProto(name, a));
    this.nodes.push({ opType, ...(domain ? { domain } : {}), input: inputs, output: [output], name: output, attribute });
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
 * numerics with the training mean, standardises them, clips each to its
 * [low, high] (Min and Max against per-column bounds), one-hot encodes
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
    const scaled = g.node('Div', [centred, std], 'numeric_scaled');
    const high = g.floats('numeric_high', [n], params.numeric.map((x) => x.high));
    const low = g.floats('numeric_low', [n], params.numeric.map((x) => x.low));
    const capped = g.node('Min', [scaled, high], 'numeric_capped');
    parts.push(g.node('Max', [capped, low], 'numeric_clipped'));
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

  const outputColumns = outputActivation(g, spec, logits, k);
  return serialise(g, spec, `loopline_linear_${spec.task}`, outputColumns, []);
}

/** Adds the task's output function after raw scores [N, k]; returns the output's column count. */
function outputActivation(g: GraphBuilder, spec: FeatureSpec, scores: string, k: number): number {
  if (spec.task === 'binary') {
    const one = g.floats('one', [], [1]);
    const p = g.node('Sigmoid', [scores], 'p_positive');
    const q = g.node('Sub', [one, p], 'p_negative');
    g.node('Concat', [q, p], PROBABILITIES_OUTPUT, { axis: 1 });
    return 2;
  }
  if (spec.task === 'multiclass') {
    g.node('Softmax', [scores], PROBABILITIES_OUTPUT, { axis: -1 });
    return k;
  }
  return 1;
}

/**
 * Serialises a gradient-boosted ensemble as an ONNX ModelProto (IR 8,
 * opset 17 + ai.onnx.ml 3). One `ai.onnx.ml` TreeEnsembleRegressor (SUM of
 * the trees' leaf values plus `base`, post_transform NONE) reads `features`
 * float32 [N, F] directly: numeric nodes are BRANCH_LEQ with the learned
 * missing-value direction (`nodes_missing_value_tracks_true`), categorical
 * nodes BRANCH_EQ on the category code (-1 and NaN take the false branch).
 * Its raw scores [N, K] go through Sigmoid (binary, as P(classes[1]) beside
 * 1 − P) or Softmax (multiclass) into `probabilities`, or are `value` [N, 1]
 * (regression). The spec is stored under {@link SPEC_METADATA_KEY}. Output
 * bytes are a pure function of `params`.
 */
export function buildGbdtOnnx(params: GbdtModelParams): Uint8Array {
  const { spec } = params;
  const g = new GraphBuilder();
  const ids = { treeIds: [] as number[], nodeIds: [] as number[], featureIds: [] as number[], modes: [] as string[], values: [] as number[], trueIds: [] as number[], falseIds: [] as number[], missingTrue: [] as number[] };
  const targets = { treeIds: [] as number[], nodeIds: [] as number[], ids: [] as number[], weights: [] as number[] };
  params.trees.forEach((tree, t) => {
    tree.nodes.forEach((node, id) => {
      ids.treeIds.push(t);
      ids.nodeIds.push(id);
      if (node.kind === 'leaf') {
        ids.featureIds.push(0);
        ids.modes.push('LEAF');
        ids.values.push(0);
        ids.trueIds.push(0);
        ids.falseIds.push(0);
        ids.missingTrue.push(0);
        targets.treeIds.push(t);
        targets.nodeIds.push(id);
        targets.ids.push(tree.target);
        targets.weights.push(node.value);
      } else {
        ids.featureIds.push(node.feature);
        ids.modes.push(node.kind === 'leq' ? 'BRANCH_LEQ' : 'BRANCH_EQ');
        ids.values.push(node.threshold);
        ids.trueIds.push(node.left);
        ids.falseIds.push(node.right);
        ids.missingTrue.push(node.kind === 'leq' && node.missingLeft ? 1 : 0);
      }
    });
  });
  const k = params.base.length;
  const scores = spec.task === 'regression' ? VALUE_OUTPUT : 'scores';
  g.op(
    'TreeEnsembleRegressor',
    [INPUT_NAME],
    scores,
    {
      n_targets: { kind: 'int', value: k },
      aggregate_function: { kind: 'string', value: 'SUM' },
      post_transform: { kind: 'string', value: 'NONE' },
      base_values: { kind: 'floats', value: params.base },
      nodes_treeids: { kind: 'ints', value: ids.treeIds },
      nodes_nodeids: { kind: 'ints', value: ids.nodeIds },
      nodes_featureids: { kind: 'ints', value: ids.featureIds },
      nodes_modes: { kind: 'strings', value: ids.modes },
      nodes_values: { kind: 'floats', value: ids.values },
      nodes_truenodeids: { kind: 'ints', value: ids.trueIds },
      nodes_falsenodeids: { kind: 'ints', value: ids.falseIds },
      nodes_missing_value_tracks_true: { kind: 'ints', value: ids.missingTrue },
      target_treeids: { kind: 'ints', value: targets.treeIds },
      target_nodeids: { kind: 'ints', value: targets.nodeIds },
      target_ids: { kind: 'ints', value: targets.ids },
      target_weights: { kind: 'floats', value: targets.weights },
    },
    ML_DOMAIN,
  );
  const outputColumns = outputActivation(g, spec, scores, k);
  return serialise(g, spec, `loopline_gbdt_${spec.task}`, outputColumns, [{ domain: ML_DOMAIN, version: ML_OPSET_VERSION }]);
}

/** Wraps a finished graph in a ModelProto with the spec embedded and returns its bytes. */
function serialise(g: GraphBuilder, spec: FeatureSpec, name: string, outputColumns: number, extraOpsets: Onnx.IOperatorSetIdProto[]): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET_VERSION }, ...extraOpsets],
    producerName: 'loopline',
    producerVersion: '1',
    metadataProps: [{ key: SPEC_METADATA_KEY, value: JSON.stringify(spec) }],
    graph: {
      name,
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
 * Reads the spec embedded by {@link buildLinearOnnx} or {@link buildGbdtOnnx}; null when the model has
 * none (e.g. built elsewhere). Throws if `bytes` is not a ModelProto.
 */
export function readEmbeddedSpec(bytes: Uint8Array): FeatureSpec | null {
  const model = onnx.ModelProto.decode(bytes);
  const entry = model.metadataProps.find((p) => p.key === SPEC_METADATA_KEY);
  return entry?.value ? (JSON.parse(entry.value) as FeatureSpec) : null;
}
