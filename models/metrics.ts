/**
 * Quality of a batch of model outputs against ground truth, per task. Pure;
 * a metric that is undefined for the data (no rows, AUC with one class) is
 * null, never NaN.
 */
import type { FeatureSpec } from './feature-spec.js';
import type { ModelOutput } from './model-output.js';
import { mae, rmse, rocAuc } from '../stats/quality.js';

/**
 * Classification: `accuracy`, `balancedAccuracy` (mean recall over the
 * classes present in the labels), `macroF1` (mean F1 over the classes
 * present in the labels or the predictions), `logLoss` (−mean ln p(true
 * class), p clipped to 1e-15) and, for binary, `auc` (ROC AUC of P(classes[1])).
 * Regression: `mae`, `rmse`. Every metric also has `count` (rows scored).
 */
export type QualityMetrics = Record<string, number | null>;

/** Metrics of `outputs[i]` against `labels[i]` for the spec's task; throws on a length mismatch. */
export function qualityMetrics(spec: Pick<FeatureSpec, 'task' | 'classes'>, labels: ReadonlyArray<string | number>, outputs: readonly ModelOutput[]): QualityMetrics {
  if (labels.length !== outputs.length) throw new RangeError(`qualityMetrics: ${labels.length} labels but ${outputs.length} outputs`);
  const count = labels.length;
  if (spec.task === 'regression') {
    const actual = labels.map(Number);
    const predicted = outputs.map((o) => o.value ?? o.score);
    return { count, mae: mae(actual, predicted), rmse: rmse(actual, predicted) };
  }
  const truth = labels.map(String);
  const predicted = outputs.map((o) => o.label);
  const classes = spec.classes;
  const index = new Map(classes.map((c, i) => [c, i]));
  let hits = 0;
  let loss = 0;
  const tp = new Map<string, number>();
  const actualCount = new Map<string, number>();
  const predictedCount = new Map<string, number>();
  const bump = (m: Map<string, number>, key: string): void => {
    m.set(key, (m.get(key) ?? 0) + 1);
  };
  truth.forEach((y, i) => {
    const p = predicted[i] ?? null;
    bump(actualCount, y);
    if (p !== null) bump(predictedCount, p);
    if (p === y) {
      hits += 1;
      bump(tp, y);
    }
    const k = index.get(y);
    const prob = k === undefined ? 0 : (outputs[i]?.probabilities?.[k] ?? 0);
    loss -= Math.log(Math.min(1, Math.max(1e-15, prob)));
  });
  if (count === 0) return { count, accuracy: null, balancedAccuracy: null, macroF1: null, logLoss: null, ...(spec.task === 'binary' ? { auc: null } : {}) };
  const recalls = [...actualCount].map(([c, n]) => (tp.get(c) ?? 0) / n);
  const f1Classes = new Set([...actualCount.keys(), ...predictedCount.keys()]);
  const f1s = [...f1Classes].map((c) => {
    const t = tp.get(c) ?? 0;
    const denominator = (actualCount.get(c) ?? 0) + (predictedCount.get(c) ?? 0);
    return denominator === 0 ? 0 : (2 * t) / denominator;
  });
  const metrics: QualityMetrics = {
    count,
    accuracy: hits / count,
    balancedAccuracy: recalls.reduce((s, r) => s + r, 0) / recalls.length,
    macroF1: f1s.reduce((s, f) => s + f, 0) / f1s.length,
    logLoss: loss / count,
  };
  if (spec.task === 'binary') {
    const positive = classes[1];
    metrics.auc = rocAuc(truth.map((y) => (y === positive ? 1 : 0)), outputs.map((o) => o.score));
  }
  return metrics;
}
