/**
 * The built-in linear trainer: logistic (binary), softmax (multiclass) or
 * linear (regression) regression fitted with mini-batch Adam, exported to
 * ONNX with its preprocessing (imputation, scaling, clipping, one-hot) in the
 * graph.
 *
 * Scaling that holds up when a column shifts after training:
 * - a numeric column whose present training values are all equal (or that
 *   has none) is *constant*: it is centred on that value, not scaled, and
 *   keeps weight 0, so whatever it does later cannot move a prediction;
 * - otherwise its scale is max(std, `minStd`, {@link RELATIVE_STD_FLOOR}·|mean|):
 *   a spread below 0.1% of the column's magnitude (float32 rounding noise, a
 *   handful of odd rows in an otherwise constant column) is never divided
 *   by a ~0 std, so it standardises to ~0 and cannot earn a weight;
 * - standardised values are clipped in training and in the graph (ONNX Min
 *   and Max against per-column bounds) to [-`clip`, `clip`], so a column that
 *   shifts by many of its training stds moves a logit by at most clip·|weight|;
 *   with `clipToRange` also to the range the column had in training (the
 *   model then never extrapolates);
 * - `l2` keeps the weights of uninformative columns small.
 */
import type { FeatureSpec, Task } from './feature-spec.js';
import { encodeRows } from './encode.js';
import { designMatrix, designWidth, forward, inputLayout, outputCount, sigmoid, softmaxInto, standardised } from './linear-model.js';
import type { LinearModelParams } from './linear-model.js';
import { buildLinearOnnx } from './onnx-builder.js';
import { decodeOutputs } from './model-output.js';
import { computeBaseline } from './baseline.js';
import {
  CLASS_WEIGHTS,
  checkFinite,
  checkRows,
  completeSpec,
  encodeTargets,
  mulberry32,
  rowWeights,
  shuffle,
  trainingMetrics,
  withDefaults,
} from './trained-model.js';
import type { ClassWeight, TrainInput as GenericTrainInput, TrainedModel as GenericTrainedModel } from './trained-model.js';

export type { ClassWeight } from './trained-model.js';

/**
 * Settings of the linear trainer; omitted fields take {@link DEFAULT_TRAINER_SETTINGS}.
 * - `epochs`: passes over the training rows (default 50).
 * - `learningRate`: initial Adam step size, decayed linearly to 0 over training (default 0.05).
 * - `l2`: the objective is the (class-weighted) mean loss + l2/2·Σw² over the
 *   weights of the standardised inputs (biases are not penalised); the
 *   optimiser converges to that penalised optimum. Because the inputs are
 *   standardised the penalty is scale-free. Default 1e-4, a light ridge: in
 *   the learning study (study/RESULTS.md) 1e-3 and 1e-2 were never
 *   better and were worse on Elec2, bike and outdoor (1e-2 costs 0.03
 *   accuracy on Elec2, where the informative nswprice_prev and nswprice_ma48
 *   are collinear and need opposite weights).
 * - `batchSize`: rows per mini-batch (default 64).
 * - `seed`: seeds the per-epoch shuffle; same input + seed → identical model bytes (default 42).
 * - `clip`: standardised numeric values are clipped to [-clip, clip] (default 5).
 * - `clipToRange`: also clip each standardised numeric value to the range it
 *   had in training, so the model never extrapolates (default false: it cost
 *   Elec2 0.004 accuracy in the study, where price spikes beyond the window's
 *   range are informative).
 * - `minStd`: absolute floor of a numeric column's scale, in the column's own
 *   units (default 0: only the relative floor applies).
 * - `classWeight`: `none` or `balanced` (see {@link ClassWeight}; default `none`).
 */
export interface TrainerSettings {
  epochs?: number;
  learningRate?: number;
  l2?: number;
  batchSize?: number;
  seed?: number;
  clip?: number;
  clipToRange?: boolean;
  minStd?: number;
  classWeight?: ClassWeight;
}

/** The linear trainer's settings under the name the spec uses for its algorithm. */
export type LinearTrainerSettings = TrainerSettings;

export const DEFAULT_TRAINER_SETTINGS: Readonly<Required<TrainerSettings>> = {
  epochs: 50,
  learningRate: 0.05,
  l2: 1e-4,
  batchSize: 64,
  seed: 42,
  clip: 5,
  clipToRange: false,
  minStd: 0,
  classWeight: 'none',
};

/** A numeric column's scale is at least this fraction of its |mean| (see the module comment). */
export const RELATIVE_STD_FLOOR = 1e-3;

/** Training input of the linear trainer (see `TrainInput` in trained-model.ts). */
export type TrainInput = GenericTrainInput<TrainerSettings>;

/** A model from the linear trainer (`trainer.name` is `builtin-linear`). */
export type LinearTrainedModel = GenericTrainedModel<'builtin-linear', Required<TrainerSettings>>;

/** A model from any built-in trainer. */
export type { TrainedModel } from './trained-model.js';

/** Result of {@link fitLinearModel}: fitted parameters and the encoded training set. */
export interface LinearFit {
  params: LinearModelParams;
  settings: Required<TrainerSettings>;
  /** `encodeRows(params.spec, rows)`. */
  encoded: Float32Array;
  /** Class index (classification) or numeric label (regression) per row. */
  targets: Float64Array;
}

const WHO = 'trainModel';

/**
 * Trains the built-in linear model (logistic / softmax / linear regression)
 * and exports it to ONNX. Deterministic for a given input and seed. Throws
 * on invalid input (empty data, length mismatch, bad spec, unknown label,
 * non-finite numeric value, bad setting).
 */
export function trainModel(input: TrainInput): LinearTrainedModel {
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
    predict: (rows) => decodeOutputs(spec, forward(params, encodeRows(spec, rows), rows.length), rows.length),
  };
}

/** Fits the parameters that {@link trainModel} exports (no ONNX, metrics or baseline). */
export function fitLinearModel(input: TrainInput): LinearFit {
  const { rows, labels } = input;
  checkRows(WHO, rows, labels);
  const settings = resolveLinearSettings(input.settings);
  const spec = completeSpec(WHO, input.spec, rows, labels);

  const n = rows.length;
  const targets = encodeTargets(WHO, spec, labels);
  const encoded = encodeRows(spec, rows);
  checkFinite(WHO, spec, encoded, n);
  const { numericColumns, categorical } = inputLayout(spec);
  const numeric = numericColumns.map((column) => columnScale(spec, encoded, n, column, settings));
  const z = designMatrix({ spec, numeric, categorical }, encoded, n);
  const d = designWidth({ numeric, categorical });
  const k = outputCount(spec);

  // Regression is fitted on a standardised target, then mapped back.
  const { mean: yMean, std: yStd } = spec.task === 'regression' ? standardise(targets) : { mean: 0, std: 1 };
  const fitTargets = spec.task === 'regression' ? targets.map((y) => (y - yMean) / yStd) : targets;
  const weights = rowWeights(spec, targets, settings.classWeight);
  const { w, b } = adam(spec.task, z, n, d, k, fitTargets, weights, settings);
  const params: LinearModelParams = {
    spec,
    numeric,
    categorical,
    weights: Float32Array.from(w, (x) => x * yStd),
    bias: Float32Array.from(b, (x) => x * yStd + yMean),
  };
  return { params, settings, encoded, targets };
}

/** Resolves and validates linear settings; throws naming the setting. */
export function resolveLinearSettings(given: TrainerSettings = {}): Required<TrainerSettings> {
  const s = withDefaults(DEFAULT_TRAINER_SETTINGS, given);
  if (!Number.isInteger(s.epochs) || s.epochs < 1) throw new Error(`${WHO}: epochs must be a positive integer`);
  if (!Number.isInteger(s.batchSize) || s.batchSize < 1) throw new Error(`${WHO}: batchSize must be a positive integer`);
  if (!(s.learningRate > 0)) throw new Error(`${WHO}: learningRate must be > 0`);
  if (!(s.l2 >= 0)) throw new Error(`${WHO}: l2 must be >= 0`);
  if (!Number.isInteger(s.seed)) throw new Error(`${WHO}: seed must be an integer`);
  if (!(s.clip > 0)) throw new Error(`${WHO}: clip must be > 0`);
  if (typeof s.clipToRange !== 'boolean') throw new Error(`${WHO}: clipToRange must be true or false`);
  if (!(s.minStd >= 0) || !Number.isFinite(s.minStd)) throw new Error(`${WHO}: minStd must be a finite number >= 0`);
  if (!CLASS_WEIGHTS.includes(s.classWeight)) throw new Error(`${WHO}: classWeight must be one of ${CLASS_WEIGHTS.join(', ')}`);
  return s;
}

/**
 * Float32 centre (training mean, also the imputation value), scale and
 * clipping bounds of a numeric input column; see the module comment.
 */
function columnScale(
  spec: FeatureSpec,
  encoded: Float32Array,
  n: number,
  column: number,
  s: Pick<Required<TrainerSettings>, 'minStd' | 'clip' | 'clipToRange'>,
): LinearModelParams['numeric'][number] {
  const width = spec.features.length;
  const values: number[] = [];
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = encoded[i * width + column]!;
    if (Number.isNaN(x)) continue;
    values.push(x);
    if (x < min) min = x;
    if (x > max) max = x;
  }
  // Constant (or never present): every training value centres to exactly 0.
  if (values.length === 0 || min === max) return { column, mean: values.length ? min : 0, std: 1, low: 0, high: 0 };
  const stats = standardise(values);
  const mean = Math.fround(stats.mean);
  const std = Math.fround(Math.max(stats.std, s.minStd, RELATIVE_STD_FLOOR * Math.abs(stats.mean)));
  const clip = Math.fround(s.clip);
  if (!s.clipToRange) return { column, mean, std, low: -clip, high: clip };
  return { column, mean, std, low: Math.max(-clip, standardised(min, mean, std)), high: Math.min(clip, standardised(max, mean, std)) };
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
 * Mini-batch Adam on the row-weighted mean loss (log loss for
 * classification, half squared error for regression) plus l2/2·|w|²,
 * learning rate decayed linearly to 0. Weights start at zero; the seed only
 * drives the shuffle. A design column that is 0 on every row gets no
 * gradient and stays exactly 0.
 */
function adam(
  task: Task,
  z: Float64Array,
  n: number,
  d: number,
  k: number,
  targets: ArrayLike<number>,
  rowWeight: Float64Array,
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
      const g = grad[j]!;
      const mj = beta1 * m[j]! + (1 - beta1) * g;
      const vj = beta2 * v[j]! + (1 - beta2) * g * g;
      m[j] = mj;
      v[j] = vj;
      params[j] = params[j]! - (lr * (mj / (1 - beta1 ** t))) / (Math.sqrt(vj / (1 - beta2 ** t)) + eps);
    }
  };

  for (let epoch = 0; epoch < s.epochs; epoch++) {
    shuffle(order, random);
    for (let start = 0; start < n; start += s.batchSize) {
      const end = Math.min(n, start + s.batchSize);
      gw.fill(0);
      gb.fill(0);
      for (let r = start; r < end; r++) {
        const i = order[r]!;
        for (let c = 0; c < k; c++) {
          let sum = b[c]!;
          for (let j = 0; j < d; j++) sum += z[i * d + j]! * w[j * k + c]!;
          logits[c] = sum;
        }
        lossGradient(task, logits, targets[i]!, delta);
        const weight = rowWeight[i]!;
        for (let c = 0; c < k; c++) delta[c] = delta[c]! * weight;
        for (let j = 0; j < d; j++) {
          const x = z[i * d + j]!;
          if (x === 0) continue;
          for (let c = 0; c < k; c++) gw[j * k + c] = gw[j * k + c]! + x * delta[c]!;
        }
        for (let c = 0; c < k; c++) gb[c] = gb[c]! + delta[c]!;
      }
      const m = end - start;
      for (let j = 0; j < gw.length; j++) gw[j] = gw[j]! / m + s.l2 * w[j]!;
      for (let c = 0; c < k; c++) gb[c] = gb[c]! / m;
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
    delta[0] = logits[0]! - target;
  } else if (task === 'binary') {
    delta[0] = sigmoid(logits[0]!) - target;
  } else {
    softmaxInto(logits, delta, 0, logits.length);
    delta[target] = delta[target]! - 1;
  }
}
