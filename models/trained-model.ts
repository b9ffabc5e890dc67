/**
 * What every built-in trainer shares: the training input, the trained-model
 * shape, and the pure helpers that turn labels and rows into a complete spec,
 * targets, class weights and training metrics.
 */
import { checkFeatureSpec } from './feature-spec.js';
import type { FeatureDef, FeatureRow, FeatureSpec, Task } from './feature-spec.js';
import { toCategory } from './encode.js';
import type { BaselineStats } from './baseline.js';
import type { ModelOutput } from './model-output.js';

/**
 * How training rows are weighted by class (classification only; ignored for
 * regression):
 * - `none`: every row weighs 1 (probabilities stay calibrated to the window's class mix);
 * - `balanced`: a row of class c weighs n / (C · n_c), so every class carries the
 *   same total weight (raises minority recall and balanced accuracy at the
 *   cost of accuracy and calibration).
 */
export type ClassWeight = 'none' | 'balanced';
export const CLASS_WEIGHTS: readonly ClassWeight[] = ['none', 'balanced'];

/**
 * Training data. `labels[i]` belongs to `rows[i]`. When `spec.classes` is
 * omitted the classes are the distinct labels (as strings) in natural order
 * (numeric labels numerically, others by code unit), so classes[1] of a binary
 * task is e.g. "1", "true" or "yes". Categorical features without
 * `categories` get the distinct training values in the same order.
 * Regression labels must be finite numbers (or numeric strings).
 * `settings` are the trainer's own (see each trainer).
 */
export interface TrainInput<S = Record<string, unknown>> {
  spec: Omit<FeatureSpec, 'classes'> & { classes?: string[] };
  rows: FeatureRow[];
  labels: Array<string | number>;
  settings?: S;
}

/** Names of the built-in trainers as recorded in the registry's lineage. */
export type TrainerName = 'builtin-linear' | 'builtin-gbdt';

/**
 * A trained model. `onnx` is self-contained (preprocessing included); `spec`
 * is complete (classes and categories resolved); `metrics` are training-set
 * metrics: `accuracy` + `logLoss` for classification, `mae` + `rmse` for
 * regression. `trainer` names the algorithm and its fully resolved settings.
 * `predict` scores rows with the TypeScript forward pass, which equals the
 * ONNX graph up to float32 rounding (tested per trainer).
 */
export interface TrainedModel<N extends TrainerName = TrainerName, S extends object = Record<string, unknown>> {
  onnx: Uint8Array;
  spec: FeatureSpec;
  baseline: BaselineStats;
  metrics: Record<string, number>;
  trainer: { name: N; settings: S };
  trainedRows: number;
  predict(rows: readonly FeatureRow[]): ModelOutput[];
}

/** Checks rows against labels; throws naming `who` on empty or mismatched input. */
export function checkRows(who: string, rows: readonly unknown[], labels: readonly unknown[]): void {
  if (rows.length === 0) throw new Error(`${who}: no training rows`);
  if (rows.length !== labels.length) throw new Error(`${who}: ${rows.length} rows but ${labels.length} labels`);
}

/** Fills in classes and categorical categories from the training data and validates the result. */
export function completeSpec(who: string, spec: TrainInput['spec'], rows: readonly FeatureRow[], labels: ReadonlyArray<string | number>): FeatureSpec {
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
  const complete: FeatureSpec = { task: spec.task, features, classes: [...classes] };
  const problems = checkFeatureSpec(complete);
  if (problems.length > 0) throw new Error(`${who}: invalid spec: ${problems.join('; ')}`);
  return complete;
}

function naturalOrder(a: string, b: string): number {
  const x = Number(a);
  const y = Number(b);
  if (a.trim() !== '' && b.trim() !== '' && Number.isFinite(x) && Number.isFinite(y) && x !== y) return x - y;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Class index (classification) or numeric value (regression) per label; throws on an unknown class or non-finite value. */
export function encodeTargets(who: string, spec: FeatureSpec, labels: ReadonlyArray<string | number>): Float64Array {
  if (spec.task === 'regression') {
    return Float64Array.from(labels, (label, i) => {
      const y = typeof label === 'number' ? label : label.trim() === '' ? Number.NaN : Number(label);
      if (!Number.isFinite(y)) throw new Error(`${who}: label ${i} (${String(label)}) is not a finite number`);
      return y;
    });
  }
  const index = new Map(spec.classes.map((c, i) => [c, i]));
  return Float64Array.from(labels, (label, i) => {
    const k = index.get(String(label));
    if (k === undefined) throw new Error(`${who}: label ${i} ("${String(label)}") is not one of the classes`);
    return k;
  });
}

/** Per-row training weight for `classWeight` (all 1 for regression or `none`); weights average 1. */
export function rowWeights(spec: FeatureSpec, targets: Float64Array, classWeight: ClassWeight): Float64Array {
  const n = targets.length;
  const weights = new Float64Array(n).fill(1);
  if (spec.task === 'regression' || classWeight === 'none') return weights;
  const counts = new Float64Array(spec.classes.length);
  for (let i = 0; i < n; i++) counts[targets[i]!]! += 1;
  const present = counts.filter((c) => c > 0).length;
  for (let i = 0; i < n; i++) weights[i] = n / (present * counts[targets[i]!]!);
  return weights;
}

/** Throws unless every present numeric input value is finite (NaN = missing is fine). */
export function checkFinite(who: string, spec: FeatureSpec, encoded: Float32Array, n: number): void {
  const width = spec.features.length;
  spec.features.forEach((f, column) => {
    if (f.kind !== 'numeric') return;
    for (let i = 0; i < n; i++) {
      const x = encoded[i * width + column]!;
      if (x === Infinity || x === -Infinity) throw new Error(`${who}: feature "${f.name}" row ${i} is ${x}`);
    }
  });
}

/**
 * Training-set metrics from the model's outputs (`probabilities` [n, C] or
 * `value` [n, 1], row-major) and the encoded targets.
 */
export function trainingMetrics(task: Task, raw: Float64Array, targets: Float64Array, n: number): Record<string, number> {
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
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates shuffle in place. */
export function shuffle(order: Uint32Array, random: () => number): void {
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = order[i] ?? 0;
    order[i] = order[j] ?? 0;
    order[j] = tmp;
  }
}

/** Merges user settings over defaults, ignoring keys set to undefined. */
export function withDefaults<S extends object>(defaults: Readonly<Required<S>>, given: S | undefined): Required<S> {
  const defined = Object.fromEntries(Object.entries(given ?? {}).filter(([, v]) => v !== undefined));
  return { ...defaults, ...defined } as Required<S>;
}
