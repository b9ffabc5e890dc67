import { checkFeatureSpec } from './feature-spec.js';
import type { FeatureDef, FeatureRow, FeatureSpec, Task } from './feature-spec.js';
import { encodeRows, toCategory } from './encode.js';
import { designMatrix, designWidth, forward, inputLayout, outputCount, sigmoid, softmaxInto } from './linear-model.js';
import type { LinearModelParams } from './linear-model.js';
import { buildLinearOnnx } from './onnx-builder.js';
import { decodeOutputs } from './model-output.js';
import { computeBaseline } from './baseline.js';
import type { BaselineStats } from './baseline.js';

/**
 * Optimiser settings; omitted fields take {@link DEFAULT_TRAINER_SETTINGS}.
 * - `epochs`: passes over the training rows (default 50).
 * - `learningRate`: initial Adam step size, decayed linearly to 0 over training (default 0.05).
 * - `l2`: L2 penalty on weights, not biases (default 1e-4).
 * - `batchSize`: rows per mini-batch (default 64).
 * - `seed`: seeds the per-epoch shuffle; same input + seed → identical model bytes (default 42).
 */
export interface TrainerSettings {
  epochs?: number;
  learningRate?: number;
  l2?: number;
  batchSize?: number;
  seed?: number;
}

export const DEFAULT_TRAINER_SETTINGS: Readonly<Required<TrainerSettings>> = {
  epochs: 50,
  learningRate: 0.05,
  l2: 1e-4,
  batchSize: 64,
  seed: 42,
};

/**
 * Training data. `labels[i]` belongs to `rows[i]`. When `spec.classes` is
 * omitted the classes are the distinct labels (as strings) in natural order
 * (numeric labels numerically, others by code unit), so classes[1] of a binary
 * task is e.g. "1", "true" or "yes". Categorical features without
 * `categories` get the distinct training values in the same order.
 * Regression labels must be finite numbers (or numeric strings).
 */
export interface TrainInput {
  spec: Omit<FeatureSpec, 'classes'> & { classes?: string[] };
  rows: FeatureRow[];
  labels: Array<string | number>;
  settings?: TrainerSettings;
}

/**
 * A trained model. `onnx` is self-contained (preprocessing included, see
 * `buildLinearOnnx`); `spec` is complete (classes and categories resolved);
 * `metrics` are training-set metrics: `accuracy` + `logLoss` for
 * classification, `mae` + `rmse` for regression.
 */
export interface TrainedModel {
  onnx: Uint8Array;
  spec: FeatureSpec;
  baseline: BaselineStats;
  metrics: Record<string, number>;
  trainer: { name: 'builtin-linear'; settings: Required<TrainerSettings> };
  trainedRows: number;
}

/** Result of {@link fitLinearModel}: fitted parameters and the encoded training set. */
export interface LinearFit {
  params: LinearModelParams;
  settings: Required<TrainerSettings>;
  /** `encodeRows(params.spec, rows)`. */
  encoded: Float32Array;
  /** Class index (classification) or numeric label (regression) per row. */
  targets: Float64Array;
}

/**
 * Trains the built-in linear model (logistic / softmax / linear regression)
 * and exports it to ONNX. Deterministic for a given input and seed. Throws
 * on invalid input (empty data, length mismatch, bad spec, unknown label,
 * non-finite numeric value).
 */
export function trainModel(input: TrainInput): TrainedModel {
  const { params, settings, encoded, targets } = fitLinearModel(input);
  const { spec } = params;
  const n = input.rows.length;
  const raw = forward(params, encoded, n);
  const predictions = decodeOutputs(spec, raw, n);
  return {
    onnx: buildLinearOnnx(params),
    spec,
    baseline: computeBaseline(spec, input.rows, predictions),
    metrics: trainingMetrics(spec.task, raw, targets, n),
    trainer: { name: 'builtin-linear', settings },
    trainedRows: n,
  };
}

/** Fits the parameters that {@link trainModel} exports (no ONNX, metrics or baseline). */
export function fitLinearModel(input: TrainInput): LinearFit {
  const { rows, labels } = input;
  if (rows.length === 0) throw new Error('trainModel: no training rows');
  if (rows.length !== labels.length) {
    throw new Error(`trainModel: ${rows.length} rows but ${labels.length} labels`);
  }
  const settings = resolveSettings(input.settings);
  const spec = completeSpec(input.spec, rows, labels);
  const problems = checkFeatureSpec(spec);
  if (problems.length > 0) throw new Error(`trainModel: invalid spec: ${problems.join('; ')}`);

  const n = rows.length;
  const targets = encodeTargets(spec, labels);
  const encoded = encodeRows(spec, rows);
  const { numericColumns, categorical } = inputLayout(spec);
  const numeric = numericColumns.map((column) => ({ column, ...columnStats(spec, encoded, n, column) }));
  const z = designMatrix({ spec, numeric, categorical }, encoded, n);
  const d = designWidth({ numeric, categorical });
  const k = outputCount(spec);

  // Regression is fitted on a standardised target, then mapped back.
  const { mean: yMean, std: yStd } = spec.task === 'regression' ? standardise(targets) : { mean: 0, std: 1 };
  const fitTargets = spec.task === 'regression' ? targets.map((y) => (y - yMean) / yStd) : targets;
  const { w, b } = adam(spec.task, z, n, d, k, fitTargets, settings);
  const params: LinearModelParams = {
    spec,
    numeric,
    categorical,
    weights: Float32Array.from(w, (x) => x * yStd),
    bias: Float32Array.from(b, (x) => x * yStd + yMean),
  };
  return { params, settings, encoded, targets };
}

function resolveSettings(given: TrainerSettings = {}): Required<TrainerSettings> {
  const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  const s: Required<TrainerSettings> = { ...DEFAULT_TRAINER_SETTINGS, ...defined };
  if (!Number.isInteger(s.epochs) || s.epochs < 1) throw new Error('trainModel: epochs must be a positive integer');
  if (!Number.isInteger(s.batchSize) || s.batchSize < 1) throw new Error('trainModel: batchSize must be a positive integer');
  if (!(s.learningRate > 0)) throw new Error('trainModel: learningRate must be > 0');
  if (!(s.l2 >= 0)) throw new Error('trainModel: l2 must be >= 0');
  if (!Number.isInteger(s.seed)) throw new Error('trainModel: seed must be an integer');
  return s;
}

/** Fills in classes and categorical categories from the training data. */
function completeSpec(spec: TrainInput['spec'], rows: FeatureRow[], labels: Array<string | number>): FeatureSpec {
  const features = spec.features.map((f): FeatureDef => {
    if (f.kind !== 'categorical' || f.categories) return { ...f };
    const seen = new Set<string>();
    for (const row of rows) {
      const c = toCategory(row[f.name]);
      if (c !== null) seen.add(c);
    }
    return { ...f, categories: [...seen].sort(naturalOrder) };
  });
  const classes =
    spec.task === 'regression' ? [] : (spec.classes ?? [...new Set(labels.map(String))].sort(naturalOrder));
  return { task: spec.task, features, classes: [...classes] };
}

function naturalOrder(a: string, b: string): number {
  const x = Number(a);
  const y = Number(b);
  if (a.trim() !== '' && b.trim() !== '' && Number.isFinite(x) && Number.isFinite(y) && x !== y) return x - y;
  return a < b ? -1 : a > b ? 1 : 0;
}

function encodeTargets(spec: FeatureSpec, labels: Array<string | number>): Float64Array {
  if (spec.task === 'regression') {
    return Float64Array.from(labels, (label, i) => {
      const y = typeof label === 'number' ? label : label.trim() === '' ? Number.NaN : Number(label);
      if (!Number.isFinite(y)) throw new Error(`trainModel: label ${i} (${String(label)}) is not a finite number`);
      return y;
    });
  }
  const index = new Map(spec.classes.map((c, i) => [c, i]));
  return Float64Array.from(labels, (label, i) => {
    const k = index.get(String(label));
    if (k === undefined) throw new Error(`trainModel: label ${i} ("${String(label)}") is not one of the classes`);
    return k;
  });
}

/** Float32 training mean (imputation value) and std (1 if constant) of a numeric input column. */
function columnStats(spec: FeatureSpec, encoded: Float32Array, n: number, column: number): { mean: number; std: number } {
  const width = spec.features.length;
  const values: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = encoded[i * width + column] ?? Number.NaN;
    if (Number.isNaN(x)) continue;
    if (!Number.isFinite(x)) throw new Error(`trainModel: feature "${spec.features[column]?.name}" row ${i} is ${x}`);
    values.push(x);
  }
  const { mean, std } = standardise(values);
  const std32 = Math.fround(std);
  return { mean: Math.fround(mean), std: std32 > 0 ? std32 : 1 };
}

function standardise(values: ArrayLike<number>): { mean: number; std: number } {
  const n = values.length;
  if (n === 0) return { mean: 0, std: 1 };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i] ?? 0;
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += ((values[i] ?? 0) - mean) ** 2;
  const std = Math.sqrt(ss / n);
  return { mean, std: std > 0 ? std : 1 };
}

/**
 * Mini-batch Adam on the mean loss (log loss for classification, half squared
 * error for regression) plus l2/2·|w|², learning rate decayed linearly to 0.
 * Weights start at zero; the seed only drives the shuffle.
 */
function adam(
  task: Task,
  z: Float64Array,
  n: number,
  d: number,
  k: number,
  targets: ArrayLike<number>,
  s: Required<TrainerSettings>,
): { w: Float64Array; b: Float64Array } {
  const [beta1, beta2, eps] = [0.9, 0.999, 1e-8];
  const w = new Float64Array(d * k);
  const b = new Float64Array(k);
  const gw = new Float64Array(d * k);
  const gb = new Float64Array(k);
  const mw = new Float64Array(d * k);
  const vw = new Float64Array(d * k);
  const mb = new Float64Array(k);
  const vb = new Float64Array(k);
  const logits = new Float64Array(k);
  const delta = new Float64Array(k);
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  const random = mulberry32(s.seed);
  const totalSteps = s.epochs * Math.ceil(n / s.batchSize);
  let t = 0;

  const step = (params: Float64Array, grad: Float64Array, m: Float64Array, v: Float64Array, lr: number): void => {
    for (let j = 0; j < params.length; j++) {
      const g = grad[j] ?? 0;
      const mj = beta1 * (m[j] ?? 0) + (1 - beta1) * g;
      const vj = beta2 * (v[j] ?? 0) + (1 - beta2) * g * g;
      m[j] = mj;
      v[j] = vj;
      params[j] = (params[j] ?? 0) - (lr * (mj / (1 - beta1 ** t))) / (Math.sqrt(vj / (1 - beta2 ** t)) + eps);
    }
  };

  for (let epoch = 0; epoch < s.epochs; epoch++) {
    shuffle(order, random);
    for (let start = 0; start < n; start += s.batchSize) {
      const end = Math.min(n, start + s.batchSize);
      gw.fill(0);
      gb.fill(0);
      for (let r = start; r < end; r++) {
        const i = order[r] ?? 0;
        for (let c = 0; c < k; c++) {
          let sum = b[c] ?? 0;
          for (let j = 0; j < d; j++) sum += (z[i * d + j] ?? 0) * (w[j * k + c] ?? 0);
          logits[c] = sum;
        }
        lossGradient(task, logits, targets[i] ?? 0, delta);
        for (let j = 0; j < d; j++) {
          const x = z[i * d + j] ?? 0;
          if (x === 0) continue;
          for (let c = 0; c < k; c++) gw[j * k + c] = (gw[j * k + c] ?? 0) + x * (delta[c] ?? 0);
        }
        for (let c = 0; c < k; c++) gb[c] = (gb[c] ?? 0) + (delta[c] ?? 0);
      }
      const m = end - start;
      for (let j = 0; j < gw.length; j++) gw[j] = (gw[j] ?? 0) / m + s.l2 * (w[j] ?? 0);
      for (let c = 0; c < k; c++) gb[c] = (gb[c] ?? 0) / m;
      const lr = s.learningRate * (1 - t / totalSteps);
      t += 1;
      step(w, gw, mw, vw, lr);
      step(b, gb, mb, vb, lr);
    }
  }
  return { w, b };
}

/** d(loss)/d(logits) for one row, written into `delta`. */
function lossGradient(task: Task, logits: Float64Array, target: number, delta: Float64Array): void {
  if (task === 'regression') {
    delta[0] = (logits[0] ?? 0) - target;
  } else if (task === 'binary') {
    delta[0] = sigmoid(logits[0] ?? 0) - target;
  } else {
    softmaxInto(logits, delta, 0, logits.length);
    delta[target] = (delta[target] ?? 0) - 1;
  }
}

function trainingMetrics(task: Task, raw: Float64Array, targets: Float64Array, n: number): Record<string, number> {
  if (task === 'regression') {
    let abs = 0;
    let sq = 0;
    for (let i = 0; i < n; i++) {
      const e = (raw[i] ?? 0) - (targets[i] ?? 0);
      abs += Math.abs(e);
      sq += e * e;
    }
    return { mae: abs / n, rmse: Math.sqrt(sq / n) };
  }
  const c = raw.length / n;
  let correct = 0;
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const target = targets[i] ?? 0;
    let top = 0;
    for (let k = 1; k < c; k++) if ((raw[i * c + k] ?? 0) > (raw[i * c + top] ?? 0)) top = k;
    if (top === target) correct += 1;
    loss -= Math.log(Math.max(raw[i * c + target] ?? 0, 1e-15));
  }
  return { accuracy: correct / n, logLoss: loss / n };
}

/** Deterministic 32-bit PRNG returning floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle(order: Uint32Array, random: () => number): void {
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = order[i] ?? 0;
    order[i] = order[j] ?? 0;
    order[j] = tmp;
  }
}
