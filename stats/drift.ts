/**
 * Data-drift tests of a serving window against a training baseline (PSI,
 * Kolmogorov–Smirnov against baseline quantiles, chi-square on categories)
 * and a bounded-memory, JSON-serialisable per-feature accumulator.
 *
 * Conventions: malformed arguments (length mismatches, negative counts,
 * unsorted edges, …) throw RangeError; a test that is undefined for the data
 * (no observations) returns null.
 */
import { Mulberry32 } from './random.js';
import { chiSquareSurvival, kolmogorovSurvival } from './special.js';

function checkCount(name: string, c: number): number {
  if (!Number.isFinite(c) || c < 0) throw new RangeError(`${name}: counts must be finite and >= 0, got ${c}`);
  return c;
}

/**
 * Population stability index Σ (a_i − e_i)·ln(a_i / e_i) between baseline
 * proportions e and the proportions a of `actualCounts`, bin by bin.
 * `expectedProportions` are renormalised to sum to 1; both e_i and a_i are
 * floored at `epsilon` so empty bins give a large but finite contribution.
 * Identical distributions give 0. Returns null when the counts sum to 0.
 * Throws RangeError on length mismatch, negative values or an all-zero baseline.
 */
export function psi(expectedProportions: readonly number[], actualCounts: readonly number[], epsilon = 1e-4): number | null {
  if (expectedProportions.length !== actualCounts.length) {
    throw new RangeError(`psi: length mismatch (${expectedProportions.length} vs ${actualCounts.length})`);
  }
  const expectedTotal = expectedProportions.reduce((s, p) => s + checkCount('psi', p), 0);
  if (expectedTotal <= 0) throw new RangeError('psi: expected proportions sum to 0');
  const actualTotal = actualCounts.reduce((s, c) => s + checkCount('psi', c), 0);
  if (actualTotal === 0) return null;
  let sum = 0;
  expectedProportions.forEach((p, i) => {
    const e = Math.max(p / expectedTotal, epsilon);
    const a = Math.max((actualCounts[i] ?? 0) / actualTotal, epsilon);
    sum += (a - e) * Math.log(a / e);
  });
  return sum;
}

function checkEdges(edges: readonly number[]): void {
  if (edges.length < 2) throw new RangeError('histogram: need at least 2 edges');
  edges.forEach((e, i) => {
    if (!Number.isFinite(e) || (i > 0 && e <= (edges[i - 1] ?? -Infinity))) {
      throw new RangeError('histogram: edges must be finite and strictly increasing');
    }
  });
}

/** Bin of `value` for validated `edges` (see `histogram`), by binary search. */
function binIndex(value: number, edges: readonly number[]): number {
  let lo = 0;
  let hi = edges.length - 2; // last bin
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (value >= (edges[mid] ?? Infinity)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * Counts `values` into the k = edges.length − 1 bins [e0, e1), [e1, e2), …,
 * [e_{k−1}, e_k]. Values below e0 fall into the first bin and values above
 * e_k into the last (so every non-NaN value is counted); NaN is skipped.
 * Throws RangeError unless edges are finite, strictly increasing and ≥ 2.
 */
export function histogram(values: readonly number[], edges: readonly number[]): number[] {
  checkEdges(edges);
  const counts = new Array<number>(edges.length - 1).fill(0);
  for (const v of values) {
    if (Number.isNaN(v)) continue;
    const b = binIndex(v, edges);
    counts[b] = (counts[b] ?? 0) + 1;
  }
  return counts;
}

/** Result of a one-sample Kolmogorov–Smirnov test. */
export interface KsResult {
  /** D = sup_x |F_n(x) − F(x)|. */
  statistic: number;
  /** Asymptotic P(D ≥ observed) under "sample drawn from the baseline". */
  pValue: number;
  /** Sample size used as the effective n. */
  n: number;
}

/**
 * The baseline CDF F, piecewise linear through (q_j, j/m) for quantiles
 * q_0..q_m (a run of equal quantiles is a point mass). Returns F(x) and the
 * left limit F(x−).
 */
function quantileCdf(q: readonly number[], x: number): { at: number; before: number } {
  const m = q.length - 1;
  const first = q[0] ?? 0;
  const last = q[m] ?? 0;
  // largest j with q_j <= x, and smallest j with q_j >= x
  let upper = -1;
  let lower = m + 1;
  let lo = 0;
  let hi = m;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((q[mid] ?? 0) <= x) {
      upper = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  lo = 0;
  hi = m;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((q[mid] ?? 0) >= x) {
      lower = mid;
      hi = mid - 1;
    } else lo = mid + 1;
  }
  const interpolate = (j: number): number => {
    const a = q[j] ?? 0;
    const b = q[j + 1] ?? 0;
    return (j + (x - a) / (b - a)) / m;
  };
  const at = x < first ? 0 : x >= last ? 1 : interpolate(upper);
  const before = x <= first ? 0 : x > last ? 1 : interpolate(lower - 1);
  return { at, before };
}

function checkQuantiles(q: readonly number[]): void {
  if (q.length < 2) throw new RangeError('ksStatisticFromQuantiles: need at least 2 quantiles');
  q.forEach((v, i) => {
    if (!Number.isFinite(v) || (i > 0 && v < (q[i - 1] ?? -Infinity))) {
      throw new RangeError('ksStatisticFromQuantiles: quantiles must be finite and non-decreasing');
    }
  });
}

/**
 * One-sample KS test of `sample` against a baseline described only by its
 * quantiles (typically 101 values q0..q100 from the training profile; any
 * length ≥ 2 works). The reference CDF interpolates linearly between
 * quantiles, is 0 below q0 and 1 from q_max on; repeated quantiles form a
 * point mass. The p-value uses the asymptotic Kolmogorov distribution with
 * Stephens' small-sample correction λ = (√n + 0.12 + 0.11/√n)·D, n = sample
 * size. Meant for continuous features: on discrete ones it is conservative
 * at best. Returns null for an empty sample. Throws RangeError for fewer than
 * 2 quantiles, unsorted or non-finite quantiles, or non-finite sample values.
 */
export function ksStatisticFromQuantiles(baselineQuantiles: readonly number[], sample: readonly number[]): KsResult | null {
  checkQuantiles(baselineQuantiles);
  if (sample.some((v) => !Number.isFinite(v))) throw new RangeError('ksStatisticFromQuantiles: sample values must be finite');
  const n = sample.length;
  if (n === 0) return null;
  const sorted = [...sample].sort((a, b) => a - b);
  let d = 0;
  sorted.forEach((x, i) => {
    const { at, before } = quantileCdf(baselineQuantiles, x);
    d = Math.max(d, (i + 1) / n - at, before - i / n);
  });
  const sqrtN = Math.sqrt(n);
  return { statistic: d, pValue: kolmogorovSurvival((sqrtN + 0.12 + 0.11 / sqrtN) * d), n };
}

/** Result of a chi-square goodness-of-fit test. */
export interface ChiSquareResult {
  statistic: number;
  /** Degrees of freedom: cells after merging − 1 (0 when everything merged into one cell). */
  dof: number;
  /** P(χ²(dof) ≥ statistic); 1 when dof = 0. */
  pValue: number;
}

/** Options of `chiSquare`. */
export interface ChiSquareOptions {
  /** Expected proportion given to the pooled cell of categories absent from the baseline. Default 1e-4. */
  unseenProportion?: number;
  /** Cells with a smaller expected count are merged (Cochran's rule). Default 5. */
  minExpected?: number;
}

/**
 * Chi-square goodness-of-fit of observed category counts against baseline
 * proportions. Baseline proportions are renormalised to sum to 1 (categories
 * with proportion 0 count as unseen). Cells are built as follows:
 * 1. one cell per baseline category (observed count 0 if absent);
 * 2. observed categories missing from the baseline are pooled into one
 *    "unseen" cell with expected proportion `unseenProportion` (the baseline
 *    cells are scaled by 1 − unseenProportion); it exists only if it has counts;
 * 3. all cells with expected count < `minExpected` are pooled; if the pool is
 *    itself still below `minExpected`, it is merged into the smallest other cell.
 * So a new category is detected once it is frequent enough to dominate the
 * cell it was merged into. Returns null when there are no observations.
 * Throws RangeError for negative/non-finite counts or an all-zero baseline.
 */
export function chiSquare(
  expectedProportions: Readonly<Record<string, number>>,
  observedCounts: Readonly<Record<string, number>>,
  options: ChiSquareOptions = {},
): ChiSquareResult | null {
  const known = Object.entries(expectedProportions);
  const knownKeys = new Set(known.map(([k]) => k));
  const unseen = Object.entries(observedCounts).reduce(
    (s, [k, c]) => (knownKeys.has(k) ? s : s + checkCount('chiSquare', c)),
    0,
  );
  return chiSquareCells(
    known.map(([, p]) => p),
    known.map(([k]) => observedCounts[k] ?? 0),
    unseen,
    options,
  );
}

/**
 * `chiSquare` on aligned arrays: baseline `proportions[i]` and `counts[i]` per
 * known category, plus the pooled count of categories absent from the baseline.
 * A known category with proportion 0 counts as unseen.
 */
function chiSquareCells(
  proportions: readonly number[],
  counts: readonly number[],
  unseenCount: number,
  options: ChiSquareOptions,
): ChiSquareResult | null {
  const unseenProportion = options.unseenProportion ?? 1e-4;
  const minExpected = options.minExpected ?? 5;
  const expectedTotal = proportions.reduce((s, p) => s + checkCount('chiSquare', p), 0);
  if (expectedTotal <= 0) throw new RangeError('chiSquare: expected proportions sum to 0');
  let unseen = checkCount('chiSquare', unseenCount);
  const cells: { expected: number; observed: number }[] = [];
  proportions.forEach((p, i) => {
    const observed = checkCount('chiSquare', counts[i] ?? 0);
    if (p > 0) cells.push({ expected: p / expectedTotal, observed });
    else unseen += observed;
  });
  const n = cells.reduce((s, c) => s + c.observed, unseen);
  if (n === 0) return null;
  const knownShare = unseen > 0 ? 1 - unseenProportion : 1;
  for (const c of cells) c.expected *= knownShare * n;
  if (unseen > 0) cells.push({ expected: unseenProportion * n, observed: unseen });

  cells.sort((a, b) => a.expected - b.expected);
  const rare = cells.filter((c) => c.expected < minExpected);
  const merged = cells.filter((c) => c.expected >= minExpected);
  if (rare.length > 0) {
    const pool = rare.reduce((acc, c) => ({ expected: acc.expected + c.expected, observed: acc.observed + c.observed }));
    const smallest = merged[0];
    if (pool.expected < minExpected && smallest !== undefined) {
      smallest.expected += pool.expected;
      smallest.observed += pool.observed;
    } else merged.push(pool);
  }
  const dof = merged.length - 1;
  if (dof === 0) return { statistic: 0, dof, pValue: 1 };
  const statistic = merged.reduce((s, c) => s + (c.observed - c.expected) ** 2 / c.expected, 0);
  return { statistic, dof, pValue: chiSquareSurvival(statistic, dof) };
}

/**
 * Training-time profile of one feature.
 * - numeric: histogram `edges` (strictly increasing) with the baseline
 *   `proportions` per bin (length edges.length − 1), and optionally
 *   `quantiles` (q0..q100) to enable the KS test.
 * - categorical: baseline proportion per category value (`String(value)`).
 */
export type FeatureBaseline =
  | { type: 'numeric'; edges: number[]; proportions: number[]; quantiles?: number[] }
  | { type: 'categorical'; proportions: Record<string, number> };

/** A feature is drifted when PSI > `psi` or a test's p-value < `pValue`. */
export interface DriftThresholds {
  psi: number;
  pValue: number;
}

/** Default thresholds: PSI 0.2 ("significant shift" by the usual rule of thumb), p < 0.01. */
export const DEFAULT_DRIFT_THRESHOLDS: Readonly<DriftThresholds> = { psi: 0.2, pValue: 0.01 };

/** Options of a `FeatureDriftAccumulator`. */
export interface FeatureDriftOptions {
  thresholds?: Partial<DriftThresholds>;
  /**
   * Effective sample size of the significance tests (default 2000): KS runs on
   * a uniform reservoir sample of at most this many values, and chi-square on
   * counts rescaled to at most this total, so that p-values do not become
   * hypersensitive to trivial shifts in large windows.
   */
  testSampleSize?: number;
  /** Seed of the reservoir sampler (default 1). */
  seed?: number;
  /** Below this many non-missing values a feature is never flagged (default 100). */
  minSamples?: number;
  /** Floor for proportions inside PSI (default 1e-4). */
  psiEpsilon?: number;
}

/** Per-feature drift verdict for the current window. */
export interface FeatureDriftResult {
  feature: string;
  type: 'numeric' | 'categorical';
  /** Non-missing values seen in the window. */
  count: number;
  /** Values that were null, undefined or NaN (or the feature was absent from the row). */
  missing: number;
  /** PSI over the baseline bins (categorical: categories plus one "unseen" bin); null without data. */
  psi: number | null;
  /** Numeric features with baseline quantiles, once a value was seen. */
  ks?: KsResult;
  /** Categorical features, once a value was seen. */
  chiSquare?: ChiSquareResult;
  /** count ≥ minSamples and (psi > threshold or a p-value < threshold). */
  drifted: boolean;
}

/** Snapshot of one numeric feature: baseline, window bin counts and KS reservoir. */
export interface NumericFeatureState {
  name: string;
  type: 'numeric';
  edges: number[];
  proportions: number[];
  quantiles: number[] | null;
  counts: number[];
  missing: number;
  /** Values offered to the reservoir so far (= non-missing count). */
  seen: number;
  reservoir: number[];
}

/** Snapshot of one categorical feature: baseline categories, window counts, pooled unseen count. */
export interface CategoricalFeatureState {
  name: string;
  type: 'categorical';
  categories: string[];
  proportions: number[];
  counts: number[];
  unseen: number;
  missing: number;
}

/** The complete, JSON-serialisable state of a `FeatureDriftAccumulator`. */
export interface FeatureDriftState {
  kind: 'feature-drift';
  thresholds: DriftThresholds;
  testSampleSize: number;
  minSamples: number;
  psiEpsilon: number;
  rngState: number;
  features: (NumericFeatureState | CategoricalFeatureState)[];
}

/**
 * Accumulates one window of feature values and tests each feature against its
 * training baseline. Memory per feature is bounded: bin/category counts plus a
 * reservoir of at most `testSampleSize` values (numeric with quantiles only).
 * Reservoir sampling uses a seeded generator whose state is part of the
 * snapshot, so a restored accumulator evolves exactly like the original.
 * Features are processed in the key order of the baselines object given to
 * the constructor; row keys without a baseline are ignored.
 */
export class FeatureDriftAccumulator {
  #s: FeatureDriftState;
  #rng: Mulberry32;

  /** Throws RangeError on an inconsistent baseline (bad edges, length mismatch, no positive proportion). */
  constructor(baselines: Readonly<Record<string, FeatureBaseline>>, options: FeatureDriftOptions = {}) {
    const testSampleSize = options.testSampleSize ?? 2000;
    if (!Number.isInteger(testSampleSize) || testSampleSize < 1) {
      throw new RangeError(`FeatureDriftAccumulator: testSampleSize must be a positive integer, got ${testSampleSize}`);
    }
    this.#rng = new Mulberry32(options.seed ?? 1);
    this.#s = {
      kind: 'feature-drift',
      thresholds: { ...DEFAULT_DRIFT_THRESHOLDS, ...options.thresholds },
      testSampleSize,
      minSamples: options.minSamples ?? 100,
      psiEpsilon: options.psiEpsilon ?? 1e-4,
      rngState: this.#rng.state,
      features: Object.entries(baselines).map(([name, b]) => featureState(name, b)),
    };
  }

  /** Restores an accumulator from `toJSON()` output (deep-copied). Throws RangeError on a foreign state. */
  static fromJSON(state: FeatureDriftState): FeatureDriftAccumulator {
    if (state.kind !== 'feature-drift') throw new RangeError(`FeatureDriftAccumulator.fromJSON: unexpected kind ${String(state.kind)}`);
    const acc = new FeatureDriftAccumulator({});
    acc.#s = structuredClone(state);
    acc.#rng = Mulberry32.fromState(state.rngState);
    return acc;
  }

  /** A deep copy of the state; `JSON.stringify` of it is lossless. */
  toJSON(key?: string): FeatureDriftState {
    const s = { ...this.#s, rngState: this.#rng.state };
    return key === undefined ? structuredClone(s) : s;
  }

  /**
   * Adds one row. Numeric features take finite numbers (±Infinity throws); categorical ones take
   * strings, numbers or booleans (as `String(v)`). null, undefined, NaN or an
   * absent key count as missing. Throws RangeError on any other value type
   * (e.g. a string for a numeric feature) without changing the state.
   */
  add(row: Readonly<Record<string, unknown>>): void {
    for (const f of this.#s.features) {
      const v = row[f.name];
      const ok = f.type === 'numeric' ? Number.isFinite(v) : ['string', 'number', 'boolean'].includes(typeof v);
      if (!isMissing(v) && !ok) throw new RangeError(`FeatureDriftAccumulator.add: bad value for ${f.type} feature ${f.name}: ${String(v)}`);
    }
    for (const f of this.#s.features) {
      const v = row[f.name];
      if (isMissing(v)) f.missing++;
      else if (f.type === 'numeric') this.#addNumeric(f, v as number);
      else {
        const i = f.categories.indexOf(String(v));
        if (i >= 0) f.counts[i] = (f.counts[i] ?? 0) + 1;
        else f.unseen++;
      }
    }
  }

  #addNumeric(f: NumericFeatureState, v: number): void {
    const b = binIndex(v, f.edges);
    f.counts[b] = (f.counts[b] ?? 0) + 1;
    if (f.quantiles === null) return;
    f.seen++;
    if (f.reservoir.length < this.#s.testSampleSize) {
      f.reservoir.push(v);
      return;
    }
    const j = this.#rng.nextInt(f.seen);
    if (j < this.#s.testSampleSize) f.reservoir[j] = v;
  }

  /** Starts a new window: clears counts and reservoirs; baselines, options and the RNG stream carry on. */
  reset(): void {
    for (const f of this.#s.features) {
      f.counts.fill(0);
      f.missing = 0;
      if (f.type === 'numeric') {
        f.seen = 0;
        f.reservoir = [];
      } else f.unseen = 0;
    }
  }

  /** The drift verdict of every feature for the window so far, in baseline order. */
  results(): FeatureDriftResult[] {
    return this.#s.features.map((f) => (f.type === 'numeric' ? this.#numericResult(f) : this.#categoricalResult(f)));
  }

  #numericResult(f: NumericFeatureState): FeatureDriftResult {
    const count = f.counts.reduce((s, c) => s + c, 0);
    const result: FeatureDriftResult = {
      feature: f.name,
      type: 'numeric',
      count,
      missing: f.missing,
      psi: psi(f.proportions, f.counts, this.#s.psiEpsilon),
      drifted: false,
    };
    const ks = f.quantiles === null ? null : ksStatisticFromQuantiles(f.quantiles, f.reservoir);
    if (ks !== null) result.ks = ks;
    result.drifted = this.#isDrifted(result, ks?.pValue);
    return result;
  }

  #categoricalResult(f: CategoricalFeatureState): FeatureDriftResult {
    const count = f.counts.reduce((s, c) => s + c, f.unseen);
    const result: FeatureDriftResult = {
      feature: f.name,
      type: 'categorical',
      count,
      missing: f.missing,
      psi: psi([...f.proportions, 0], [...f.counts, f.unseen], this.#s.psiEpsilon),
      drifted: false,
    };
    const scale = count > this.#s.testSampleSize ? this.#s.testSampleSize / count : 1;
    const chi = chiSquareCells(f.proportions, f.counts.map((c) => c * scale), f.unseen * scale, {});
    if (chi !== null) result.chiSquare = chi;
    result.drifted = this.#isDrifted(result, chi?.pValue);
    return result;
  }

  #isDrifted(r: FeatureDriftResult, pValue: number | undefined): boolean {
    const t = this.#s.thresholds;
    if (r.count < this.#s.minSamples) return false;
    return (r.psi !== null && r.psi > t.psi) || (pValue !== undefined && pValue < t.pValue);
  }
}

function isMissing(v: unknown): boolean {
  return v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v));
}

function featureState(name: string, b: FeatureBaseline): NumericFeatureState | CategoricalFeatureState {
  if (b.type === 'categorical') {
    const categories = Object.keys(b.proportions);
    const proportions = categories.map((c) => checkCount(`baseline ${name}`, b.proportions[c] ?? 0));
    if (!proportions.some((p) => p > 0)) throw new RangeError(`baseline ${name}: no positive proportion`);
    return { name, type: 'categorical', categories, proportions, counts: categories.map(() => 0), unseen: 0, missing: 0 };
  }
  checkEdges(b.edges);
  if (b.proportions.length !== b.edges.length - 1) {
    throw new RangeError(`baseline ${name}: ${b.edges.length} edges need ${b.edges.length - 1} proportions, got ${b.proportions.length}`);
  }
  if (!b.proportions.map((p) => checkCount(`baseline ${name}`, p)).some((p) => p > 0)) {
    throw new RangeError(`baseline ${name}: no positive proportion`);
  }
  if (b.quantiles !== undefined) checkQuantiles(b.quantiles);
  return {
    name,
    type: 'numeric',
    edges: [...b.edges],
    proportions: [...b.proportions],
    quantiles: b.quantiles === undefined ? null : [...b.quantiles],
    counts: b.proportions.map(() => 0),
    missing: 0,
    seen: 0,
    reservoir: [],
  };
}
