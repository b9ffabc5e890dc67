/**
 * The linear trainer as it was before the robust-scaling work (main at
 * 89f1665), frozen for the learning study's "old linear" column: float64
 * std with no floor (a float-noise std of ~1e-18 is used as is), no
 * clipping, l2 1e-4, no class weights. Not product code: nothing outside
 * the learning study (study/) and the trainer tests import it.
 */
import { checkFeatureSpec } from './feature-spec.js';
import type { FeatureDef, FeatureRow, FeatureSpec, Task } from './feature-spec.js';
import { encodeRows, toCategory } from './encode.js';
import { activate, designWidth, inputLayout, linear, outputCount, sigmoid, softmaxInto } from './linear-model.js';
import { decodeOutputs } from './model-output.js';
import type { ModelOutput } from './model-output.js';
import type { TrainInput } from './trained-model.js';

/** The old settings (all optional; defaults below). */
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

interface LegacyParams {
  spec: FeatureSpec;
  numeric: Array<{ column: number; mean: number; std: number }>;
  categorical: Array<{ column: number; size: number }>;
  weights: Float32Array;
  bias: Float32Array;
}

export interface LegacyLinearFit {
  spec: FeatureSpec;
  settings: Required<TrainerSettings>;
  predict(rows: readonly FeatureRow[]): ModelOutput[];
}

/** The old design matrix: float64 standardisation, no clipping. */
function legacyDesignMatrix(params: Pick<LegacyParams, 'spec' | 'numeric' | 'categorical'>, encoded: Float32Array, n: number): Float64Array {
  const width = params.spec.features.length;
  const d = designWidth(params);
  const z = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    const row = i * width;
    let j = i * d;
    for (const { column, mean, std } of params.numeric) {
      const x = encoded[row + column] ?? Number.NaN;
      z[j++] = ((Number.isNaN(x) ? mean : x) - mean) / std;
    }
    for (const { column, size } of params.categorical) {
      const code = encoded[row + column] ?? -1;
      if (Number.isInteger(code) && code >= 0 && code < size) z[j + code] = 1;
      j += size;
    }
  }
  return z;
}

/** Fits the linear model exactly as `trainModel` did at 89f1665 and returns a TS scorer. */
export function fitLegacyLinear(input: TrainInput<TrainerSettings>): LegacyLinearFit {
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
  const z = legacyDesignMatrix({ spec, numeric, categorical }, encoded, n);
  const d = designWidth({ numeric, categorical });
  const k = outputCount(spec);

  // Regression is fitted on a standardised target, then mapped back.
  const { mean: yMean, std: yStd } = spec.task === 'regression' ? standardise(targets) : { mean: 0, std: 1 };
  const fitTargets = spec.task === 'regression' ? targets.map((y) => (y - yMean) / yStd) : targets;
  const { w, b } = adam(spec.task, z, n, d, k, fitTargets, settings);
  const params: LegacyParams = {
    spec,
    numeric,
    categorical,
    weights: Float32Array.from(w, (x) => x * yStd),
    bias: Float32Array.from(b, (x) => x * yStd + yMean),
  };
  const predict = (scored: readonly FeatureRow[]): ModelOutput[] => {
    const m = scored.length;
    const logits = linear(legacyDesignMatrix(params, encodeRows(spec, scored), m), m, params.weights, params.bias);
    return decodeOutputs(spec, activate(spec.task, logits, m, params.bias.length), m);
  };
  return { spec, settings, predict };
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
