import type { FeatureSpec } from './feature-spec.js';

/**
 * A fitted linear model over the encoded `features` tensor (see `encodeRows`).
 * The design row is [standardised numeric columns..., one-hot of each
 * categorical column...] (D = numeric.length + sum of categorical sizes).
 * A standardised numeric value is clipped to its column's [low, high].
 * All numbers are float32-representable so the ONNX graph and
 * {@link forward} use identical parameters.
 */
export interface LinearModelParams {
  spec: FeatureSpec;
  /**
   * Numeric inputs in spec order: input column, training mean (imputation),
   * scale, and the bounds the standardised value is clipped to (in training
   * and inside the graph; ±Infinity = unbounded).
   */
  numeric: Array<{ column: number; mean: number; std: number; low: number; high: number }>;
  /** Categorical inputs in spec order: input column and number of categories. */
  categorical: Array<{ column: number; size: number }>;
  /** Row-major [D, K] weights; K = 1 for binary/regression, C for multiclass. */
  weights: Float32Array;
  /** [K] bias. */
  bias: Float32Array;
}

/** Number of linear outputs K for a spec. */
export function outputCount(spec: FeatureSpec): number {
  return spec.task === 'multiclass' ? spec.classes.length : 1;
}

/** Numeric and categorical column layout of a spec. */
export function inputLayout(spec: FeatureSpec): {
  numericColumns: number[];
  categorical: Array<{ column: number; size: number }>;
} {
  const numericColumns: number[] = [];
  const categorical: Array<{ column: number; size: number }> = [];
  spec.features.forEach((f, column) => {
    if (f.kind === 'numeric') numericColumns.push(column);
    else categorical.push({ column, size: f.categories?.length ?? 0 });
  });
  return { numericColumns, categorical };
}

/** Design-matrix width D. */
export function designWidth(params: { numeric: readonly unknown[]; categorical: ReadonlyArray<{ size: number }> }): number {
  return params.numeric.length + params.categorical.reduce((s, c) => s + c.size, 0);
}

/**
 * Expands the encoded input [n, F] into the row-major design matrix [n, D]:
 * NaN numerics imputed with the mean, standardised, then clipped to
 * [low, high]; categorical codes one-hot encoded (codes outside 0..size-1
 * give all zeros). Numeric arithmetic is float32, like the graph's.
 */
export function designMatrix(
  params: Pick<LinearModelParams, 'spec' | 'numeric' | 'categorical'>,
  encoded: Float32Array,
  n: number,
): Float64Array {
  const width = params.spec.features.length;
  const d = designWidth(params);
  const z = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    const row = i * width;
    let j = i * d;
    for (const { column, mean, std, low, high } of params.numeric) {
      const x = encoded[row + column] ?? Number.NaN;
      z[j++] = Math.max(low, Math.min(high, standardised(x, mean, std)));
    }
    for (const { column, size } of params.categorical) {
      const code = encoded[row + column] ?? -1;
      if (Number.isInteger(code) && code >= 0 && code < size) z[j + code] = 1;
      j += size;
    }
  }
  return z;
}

/** (x − mean) / std in float32, with NaN (missing) imputed as the mean, i.e. 0. */
export function standardised(x: number, mean: number, std: number): number {
  return Math.fround(Math.fround((Number.isNaN(x) ? mean : x) - mean) / std);
}

/**
 * TS forward pass mirroring the ONNX graph: returns row-major
 * `probabilities` [n, C] for classification or `value` [n, 1] for regression.
 */
export function forward(params: LinearModelParams, encoded: Float32Array, n: number): Float64Array {
  const z = designMatrix(params, encoded, n);
  const logits = linear(z, n, params.weights, params.bias);
  return activate(params.spec.task, logits, n, params.bias.length);
}

/** Row-major [n, K] = z[n, D] · w[D, K] + b[K]. */
export function linear(z: Float64Array, n: number, w: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const k = b.length;
  const d = n === 0 ? 0 : z.length / n;
  const out = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < k; c++) {
      let s = b[c] ?? 0;
      for (let j = 0; j < d; j++) s += (z[i * d + j] ?? 0) * (w[j * k + c] ?? 0);
      out[i * k + c] = s;
    }
  }
  return out;
}

/** Applies the task's output function to logits [n, K]: see {@link forward}. */
export function activate(task: FeatureSpec['task'], logits: Float64Array, n: number, k: number): Float64Array {
  if (task === 'regression') return logits;
  if (task === 'binary') {
    const out = new Float64Array(n * 2);
    for (let i = 0; i < n; i++) {
      const p = sigmoid(logits[i] ?? 0);
      out[i * 2] = 1 - p;
      out[i * 2 + 1] = p;
    }
    return out;
  }
  const out = new Float64Array(n * k);
  for (let i = 0; i < n; i++) softmaxInto(logits, out, i * k, k);
  return out;
}

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** Writes softmax(src[offset..offset+k)) into dst at the same offsets. */
export function softmaxInto(src: ArrayLike<number>, dst: Float64Array, offset: number, k: number): void {
  let max = -Infinity;
  for (let c = 0; c < k; c++) max = Math.max(max, src[offset + c] ?? 0);
  let sum = 0;
  for (let c = 0; c < k; c++) {
    const e = Math.exp((src[offset + c] ?? 0) - max);
    dst[offset + c] = e;
    sum += e;
  }
  for (let c = 0; c < k; c++) dst[offset + c] = (dst[offset + c] ?? 0) / sum;
}
