import { MISSING_CATEGORY, OTHER_CATEGORY } from './feature-spec.js';
import type { FeatureSpec, FeatureRow } from './feature-spec.js';
import { toCategory, toNumeric } from './encode.js';
import type { ModelOutput } from './model-output.js';

/**
 * Training distribution of a numeric feature. `count` = present values,
 * `missing` = absent/NaN values; the other statistics cover present values
 * only (all 0 / empty lists when there are none).
 * - `quantiles`: 101 values q0..q100 (linear interpolation), non-decreasing.
 * - `bins`: ascending, deduplicated interior cut points (deciles q10..q90).
 *   Bin i holds x with bins[i-1] < x <= bins[i] (open-ended at both sides);
 *   see {@link binIndex}. `proportions` has bins.length + 1 entries summing to 1.
 */
export interface NumericBaseline {
  kind: 'numeric';
  count: number;
  missing: number;
  mean: number;
  std: number;
  min: number;
  max: number;
  quantiles: number[];
  bins: number[];
  proportions: number[];
}

/**
 * Training distribution of a categorical feature: share of rows per known
 * category, plus `__other__` (unknown value) and `__missing__`; sums to 1.
 */
export interface CategoricalBaseline {
  kind: 'categorical';
  count: number;
  missing: number;
  proportions: Record<string, number>;
}

export type FeatureBaseline = NumericBaseline | CategoricalBaseline;

/**
 * Training prediction distribution. Classification: share of each predicted
 * class and a 10-bin histogram (proportions) of `score` over [0, 1]
 * (bin i = [i/10, (i+1)/10), the last bin includes 1). Regression: 101
 * quantiles of the predicted value.
 */
export type PredictionBaseline =
  | { kind: 'classification'; count: number; classDistribution: Record<string, number>; scoreHistogram: number[] }
  | { kind: 'regression'; count: number; mean: number; std: number; quantiles: number[] };

/** JSON-serialisable training baseline for drift monitoring. */
export interface BaselineStats {
  rows: number;
  features: Record<string, FeatureBaseline>;
  prediction: PredictionBaseline;
}

export const SCORE_BINS = 10;

/**
 * Computes the baseline from training rows and the model's predictions on
 * them (`predictions[i]` belongs to `rows[i]`). `spec` must be complete.
 */
export function computeBaseline(
  spec: FeatureSpec,
  rows: readonly FeatureRow[],
  predictions: ReadonlyArray<Pick<ModelOutput, 'label' | 'score'>>,
): BaselineStats {
  if (predictions.length !== rows.length) {
    throw new Error(`computeBaseline: ${predictions.length} predictions for ${rows.length} rows`);
  }
  const features: Record<string, FeatureBaseline> = {};
  for (const f of spec.features) {
    features[f.name] =
      f.kind === 'numeric'
        ? numericBaseline(rows.map((r) => toNumeric(r[f.name])))
        : categoricalBaseline(f.categories ?? [], rows.map((r) => toCategory(r[f.name])));
  }
  return { rows: rows.length, features, prediction: predictionBaseline(spec, predictions) };
}

function numericBaseline(values: number[]): NumericBaseline {
  const present = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  const missing = values.length - present.length;
  if (present.length === 0) {
    return { kind: 'numeric', count: 0, missing, mean: 0, std: 0, min: 0, max: 0, quantiles: [], bins: [], proportions: [] };
  }
  const { mean, std } = meanStd(present);
  const quantiles = percentiles(present);
  const bins = [...new Set(quantiles.filter((_, i) => i > 0 && i < 100 && i % 10 === 0))];
  const counts = new Array<number>(bins.length + 1).fill(0);
  for (const v of present) counts[binIndex(bins, v)]! += 1;
  return {
    kind: 'numeric',
    count: present.length,
    missing,
    mean,
    std,
    min: present[0] ?? 0,
    max: present[present.length - 1] ?? 0,
    quantiles,
    bins,
    proportions: counts.map((c) => c / present.length),
  };
}

function categoricalBaseline(categories: string[], values: Array<string | null>): CategoricalBaseline {
  const known = new Set(categories);
  const counts = new Map<string, number>([...categories, OTHER_CATEGORY, MISSING_CATEGORY].map((c) => [c, 0]));
  for (const v of values) {
    const key = v === null ? MISSING_CATEGORY : known.has(v) ? v : OTHER_CATEGORY;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const missing = counts.get(MISSING_CATEGORY) ?? 0;
  return {
    kind: 'categorical',
    count: values.length - missing,
    missing,
    proportions: Object.fromEntries([...counts].map(([k, c]) => [k, values.length ? c / values.length : 0])),
  };
}

function predictionBaseline(
  spec: FeatureSpec,
  predictions: ReadonlyArray<Pick<ModelOutput, 'label' | 'score'>>,
): PredictionBaseline {
  const n = predictions.length;
  if (spec.task === 'regression') {
    const values = predictions.map((p) => p.score).sort((a, b) => a - b);
    return { kind: 'regression', count: n, ...meanStd(values), quantiles: n ? percentiles(values) : [] };
  }
  const classCounts = new Map(spec.classes.map((c) => [c, 0]));
  const histogram = new Array<number>(SCORE_BINS).fill(0);
  for (const p of predictions) {
    if (p.label !== null) classCounts.set(p.label, (classCounts.get(p.label) ?? 0) + 1);
    histogram[scoreBin(p.score)]! += 1;
  }
  return {
    kind: 'classification',
    count: n,
    classDistribution: Object.fromEntries([...classCounts].map(([c, k]) => [c, n ? k / n : 0])),
    scoreHistogram: histogram.map((k) => (n ? k / n : 0)),
  };
}

/** Index of the bin holding `x` given ascending interior cut points (see {@link NumericBaseline}). */
export function binIndex(bins: readonly number[], x: number): number {
  let lo = 0;
  let hi = bins.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x <= (bins[mid] ?? Infinity)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Histogram bin of a score in [0, 1] (see {@link PredictionBaseline}); out-of-range scores are clamped. */
export function scoreBin(score: number): number {
  return Math.min(SCORE_BINS - 1, Math.max(0, Math.floor(score * SCORE_BINS)));
}

/** q0..q100 of ascending, non-empty `sorted` (linear interpolation between order statistics). */
export function percentiles(sorted: readonly number[]): number[] {
  const last = sorted.length - 1;
  return Array.from({ length: 101 }, (_, q) => {
    const pos = (q / 100) * last;
    const lo = Math.floor(pos);
    const a = sorted[lo] ?? 0;
    const b = sorted[Math.min(lo + 1, last)] ?? a;
    return Math.min(b, a + (b - a) * (pos - lo));
  });
}

function meanStd(values: readonly number[]): { mean: number; std: number } {
  if (values.length === 0) return { mean: 0, std: 0 };
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(variance) };
}
