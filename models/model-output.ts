import type { FeatureSpec } from './feature-spec.js';

/**
 * One scored row.
 * - classification: `label` = argmax class, `probabilities` in `spec.classes`
 *   order, `score` = P(classes[1]) for binary or the top probability for
 *   multiclass, `value` null.
 * - regression: `label` and `probabilities` null, `score` = `value`.
 */
export interface ModelOutput {
  label: string | null;
  score: number;
  probabilities: number[] | null;
  value: number | null;
}

/**
 * Turns a raw row-major graph output (`probabilities` [n, C] or `value`
 * [n, 1]) into one {@link ModelOutput} per row.
 */
export function decodeOutputs(spec: FeatureSpec, raw: ArrayLike<number>, n: number): ModelOutput[] {
  const outputs: ModelOutput[] = [];
  if (spec.task === 'regression') {
    for (let i = 0; i < n; i++) {
      const value = raw[i] ?? Number.NaN;
      outputs.push({ label: null, score: value, probabilities: null, value });
    }
    return outputs;
  }
  const c = spec.classes.length;
  for (let i = 0; i < n; i++) {
    const probabilities = Array.from({ length: c }, (_, k) => raw[i * c + k] ?? Number.NaN);
    let top = 0;
    for (let k = 1; k < c; k++) if ((probabilities[k] ?? 0) > (probabilities[top] ?? 0)) top = k;
    const score = spec.task === 'binary' ? (probabilities[1] ?? Number.NaN) : (probabilities[top] ?? Number.NaN);
    outputs.push({ label: spec.classes[top] ?? null, score, probabilities, value: null });
  }
  return outputs;
}
