/**
 * Bootstrap confidence intervals for comparing two models on the same rows.
 */
import { Mulberry32 } from './random.js';

/** Options of `bootstrapDiffCI`. */
export interface BootstrapOptions {
  /** Bootstrap resamples (default 1000). */
  iterations?: number;
  /** Two-sided confidence level in (0, 1) (default 0.95). */
  confidence?: number;
  /** Seed of the resampling generator (default 1); equal inputs and seed give equal outputs. */
  seed?: number;
}

/** A point estimate with its bootstrap percentile interval. */
export interface BootstrapResult {
  /** mean(a) − mean(b) on the full data. */
  meanDiff: number;
  lower: number;
  upper: number;
}

/** Linear-interpolation quantile (type 7) of an ascending-sorted, non-empty array. */
function sortedQuantile(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const a = sorted[lo] ?? 0;
  const b = sorted[Math.min(lo + 1, sorted.length - 1)] ?? a;
  return a + (pos - lo) * (b - a);
}

/**
 * Paired bootstrap percentile CI for the mean of a[i] − b[i], where a[i] and
 * b[i] are per-example scores of two models on the same example i (e.g.
 * contender vs champion correctness 0/1). Each iteration resamples example
 * indices with replacement, keeping pairs together. Deterministic for a given
 * seed. Returns null for empty input; throws RangeError on length mismatch,
 * non-finite scores, iterations < 1 or confidence ∉ (0, 1).
 */
export function bootstrapDiffCI(
  a: readonly number[],
  b: readonly number[],
  options: BootstrapOptions = {},
): BootstrapResult | null {
  const { iterations = 1000, confidence = 0.95, seed = 1 } = options;
  if (a.length !== b.length) throw new RangeError(`bootstrapDiffCI: length mismatch (${a.length} vs ${b.length})`);
  if (!Number.isInteger(iterations) || iterations < 1) throw new RangeError(`bootstrapDiffCI: bad iterations ${iterations}`);
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`bootstrapDiffCI: confidence must be in (0, 1), got ${confidence}`);
  const n = a.length;
  if (n === 0) return null;
  const diffs = a.map((x, i) => {
    const d = x - (b[i] ?? Number.NaN);
    if (!Number.isFinite(d)) throw new RangeError(`bootstrapDiffCI: non-finite score at index ${i}`);
    return d;
  });
  const rng = new Mulberry32(seed);
  const means = new Float64Array(iterations);
  for (let it = 0; it < iterations; it++) {
    let sum = 0;
    for (let j = 0; j < n; j++) sum += diffs[rng.nextInt(n)] ?? 0;
    means[it] = sum / n;
  }
  means.sort();
  const sorted = Array.from(means);
  const tail = (1 - confidence) / 2;
  return {
    meanDiff: diffs.reduce((s, d) => s + d, 0) / n,
    lower: sortedQuantile(sorted, tail),
    upper: sortedQuantile(sorted, 1 - tail),
  };
}
