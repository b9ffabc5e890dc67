/**
 * Probability calibration for confidence-based performance estimation
 * (stats/cbpe.ts): maps a classifier's raw class probabilities to
 * probabilities that match observed frequencies, fitted on labeled reference
 * examples, plus the check that says whether the map helps and whether the
 * result is calibrated enough to estimate from.
 *
 *   const { calibrator, check } = fitCalibrator(['DOWN', 'UP'], reference, { method: 'isotonic' });
 *   const p = calibrate(calibrator, { DOWN: 0.3, UP: 0.7 }); // { DOWN: …, UP: … }
 *   JSON.stringify(calibrator);                              // plain data: checkpoint as is
 *
 * Classes are given in order. Two classes are a binary problem: one map of
 * P(classes[1]), and P(classes[0]) = 1 − that. More classes: one map per
 * class fitted one-vs-rest and the row renormalised (uniform when every
 * calibrated probability is 0), as NannyML's CBPE does; or one temperature
 * for the whole row.
 *
 * Methods (`CalibrationMethod`):
 * - `isotonic`: pool-adjacent-violators on the score, predictions linearly
 *   interpolated between block ends and clipped outside the fitted range (as
 *   scikit-learn's IsotonicRegression with out_of_bounds='clip'). Monotone,
 *   assumes no shape; needs a few hundred examples.
 * - `platt`: p' = σ(a·logit(p) + b), fitted by Newton's method on log loss
 *   with Platt's smoothed targets. Two parameters: stable on small windows,
 *   fixes over/under-confidence and a shifted base rate.
 * - `temperature`: p'_c ∝ p_c^(1/T), one T for the row (for two classes the
 *   same as Platt with b = 0); fitted by golden-section search on log loss.
 * - `identity`: no change.
 *
 * The check (`CalibrationCheck`) is cross-fitted: the reference is split into
 * `folds` interleaved folds, each calibrated by a map fitted on the others,
 * so the calibrated ECE is out-of-sample (an isotonic fit scores ~0 on its
 * own data). As NannyML's `needs_calibration`, the map is applied only when
 * it lowers that ECE; otherwise the calibrator is the identity and the check
 * says why. ECE is the equal-width 10-bin calibration error of P(classes[1])
 * for two classes and of the top-class confidence for more (stats/quality.ts).
 *
 * Malformed arguments throw RangeError (programming errors); a reference too
 * small or one-class to fit from is not an error: it yields the identity with
 * the reason in the check.
 */
import { expectedCalibrationError, PROB_CLIP, QualityWindow, type Label } from './quality.js';

/** How probabilities are calibrated; see the module comment. */
export type CalibrationMethod = 'isotonic' | 'platt' | 'temperature' | 'identity';

export const CALIBRATION_METHODS: readonly CalibrationMethod[] = ['isotonic', 'platt', 'temperature', 'identity'];

/** A monotone map of one probability to [0, 1] (JSON). */
export type ScoreMap =
  | { kind: 'identity' }
  | { kind: 'platt'; a: number; b: number }
  /** Knots (x ascending, y non-decreasing); linear in between, clipped outside. */
  | { kind: 'isotonic'; x: number[]; y: number[] };

/**
 * A fitted calibrator: plain JSON, restore by using it (no class to rebuild).
 * `maps`: one map of P(classes[1]) for two classes; one per class (in order)
 * for more; empty for `temperature` and `identity`.
 */
export interface Calibrator {
  kind: 'calibrator';
  method: CalibrationMethod;
  classes: string[];
  maps: ScoreMap[];
  /** `temperature` only; otherwise 1. */
  temperature: number;
  /** Number of reference examples it was fitted on (0 for an unfitted identity). */
  fittedOn: number;
}

/** A labeled reference example: the model's raw probabilities (by `String(class)`) and the true class. */
export interface CalibrationExample {
  probabilities: Readonly<Record<string, number>>;
  label: Label;
}

/** Options of `fitCalibrator`. */
export interface CalibrationOptions {
  /** Default 'isotonic' (NannyML's default). */
  method?: CalibrationMethod;
  /** Interleaved folds of the cross-fitted check (≥ 2). Default 5. */
  folds?: number;
  /** Fewer usable examples than this: identity (reason `too few examples`). Default 100. */
  minExamples?: number;
  /** The check flags a calibration error above this. Default 0.05. */
  eceThreshold?: number;
}

export const DEFAULT_CALIBRATION_OPTIONS: Readonly<Required<CalibrationOptions>> = {
  method: 'isotonic',
  folds: 5,
  minExamples: 100,
  eceThreshold: 0.05,
};

/**
 * What the fit found, for reports and for deciding whether to trust an estimate.
 * - `eceRaw`: ECE of the raw probabilities on the reference.
 * - `eceCalibrated`: cross-fitted ECE of the requested method (null when not fitted).
 * - `applied`: the method the calibrator uses: the requested one when it
 *   lowered the ECE, else identity (`reason` says why).
 * - `ece`: ECE of what is applied (eceCalibrated or eceRaw);
 *   `flagged` when it is above `threshold`: estimates from these
 *   probabilities should not be trusted (or the reference is too small to tell).
 */
export interface CalibrationCheck {
  examples: number;
  requested: CalibrationMethod;
  applied: CalibrationMethod;
  eceRaw: number | null;
  eceCalibrated: number | null;
  ece: number | null;
  threshold: number;
  flagged: boolean;
  reason: string | null;
}

/** The identity calibrator of `classes` (what an estimator uses before any reference is fitted). */
export function identityCalibrator(classes: readonly string[]): Calibrator {
  checkClasses('identityCalibrator', classes);
  return { kind: 'calibrator', method: 'identity', classes: [...classes], maps: [], temperature: 1, fittedOn: 0 };
}

function checkClasses(name: string, classes: readonly string[]): void {
  if (classes.length < 2) throw new RangeError(`${name}: need at least 2 classes, got ${classes.length}`);
  if (new Set(classes).size !== classes.length) throw new RangeError(`${name}: classes repeat (${classes.join(', ')})`);
}

function clip(p: number): number {
  return Math.min(1 - PROB_CLIP, Math.max(PROB_CLIP, p));
}

function logit(p: number): number {
  const q = clip(p);
  return Math.log(q / (1 - q));
}

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** Raw probabilities of a row in class order (a missing class is 0); throws RangeError on a non-finite value. */
export function probabilityVector(classes: readonly string[], probabilities: Readonly<Record<string, number>>): number[] {
  return classes.map((c) => {
    const p = probabilities[c] ?? 0;
    if (!Number.isFinite(p)) throw new RangeError(`probability of ${c} must be finite, got ${p}`);
    return p;
  });
}

/** Applies one score map. */
export function applyScoreMap(map: ScoreMap, p: number): number {
  switch (map.kind) {
    case 'identity':
      return p;
    case 'platt':
      return sigmoid(map.a * logit(p) + map.b);
    case 'isotonic': {
      const { x, y } = map;
      const n = x.length;
      if (n === 0) return p;
      if (p <= x[0]!) return y[0]!;
      if (p >= x[n - 1]!) return y[n - 1]!;
      let lo = 0;
      let hi = n - 1; // x[lo] < p < x[hi]
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (x[mid]! <= p) lo = mid;
        else hi = mid;
      }
      const x0 = x[lo]!;
      const x1 = x[hi]!;
      return x1 > x0 ? y[lo]! + ((p - x0) / (x1 - x0)) * (y[hi]! - y[lo]!) : y[hi]!;
    }
  }
}

/** Calibrated probabilities of a raw probability vector in class order (sums to 1). */
export function calibrateVector(calibrator: Calibrator, raw: readonly number[]): number[] {
  const k = calibrator.classes.length;
  if (raw.length !== k) throw new RangeError(`calibrate: ${raw.length} probabilities for ${k} classes`);
  if (calibrator.method === 'identity') return [...raw];
  if (calibrator.method === 'temperature') return temperatureScale(raw, calibrator.temperature);
  if (k === 2) {
    const q = applyScoreMap(calibrator.maps[0] ?? { kind: 'identity' }, raw[1]!);
    return [1 - q, q];
  }
  const out = raw.map((p, c) => applyScoreMap(calibrator.maps[c] ?? { kind: 'identity' }, p));
  const sum = out.reduce((s, v) => s + v, 0);
  return sum > 0 ? out.map((v) => v / sum) : out.map(() => 1 / k);
}

/** Calibrated probabilities of a row, keyed by class (classes outside the calibrator's are dropped). */
export function calibrate(calibrator: Calibrator, probabilities: Readonly<Record<string, number>>): Record<string, number> {
  const out = calibrateVector(calibrator, probabilityVector(calibrator.classes, probabilities));
  return Object.fromEntries(calibrator.classes.map((c, i) => [c, out[i]!]));
}

function temperatureScale(raw: readonly number[], t: number): number[] {
  const logs = raw.map((p) => Math.log(clip(p)) / t);
  const max = Math.max(...logs);
  const e = logs.map((l) => Math.exp(l - max));
  const sum = e.reduce((s, v) => s + v, 0);
  return e.map((v) => v / sum);
}

/**
 * Isotonic (non-decreasing) regression of 0/1 outcomes on scores by
 * pool-adjacent-violators; equal scores are pooled first. Knots are each
 * block's first and last score at the block mean.
 */
export function fitIsotonic(scores: readonly number[], outcomes: readonly number[]): ScoreMap {
  if (scores.length !== outcomes.length) throw new RangeError(`fitIsotonic: length mismatch (${scores.length} vs ${outcomes.length})`);
  if (scores.length === 0) return { kind: 'identity' };
  const order = scores.map((_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  const blocks: Array<{ sum: number; n: number; xMin: number; xMax: number }> = [];
  for (let r = 0; r < order.length; ) {
    const x = scores[order[r]!]!;
    let sum = 0;
    let n = 0;
    for (; r < order.length && scores[order[r]!] === x; r++) {
      sum += outcomes[order[r]!]!;
      n++;
    }
    blocks.push({ sum, n, xMin: x, xMax: x });
    while (blocks.length > 1) {
      const last = blocks[blocks.length - 1]!;
      const prev = blocks[blocks.length - 2]!;
      if (prev.sum / prev.n < last.sum / last.n) break;
      blocks.pop();
      prev.sum += last.sum;
      prev.n += last.n;
      prev.xMax = last.xMax;
    }
  }
  const x: number[] = [];
  const y: number[] = [];
  for (const b of blocks) {
    const v = b.sum / b.n;
    x.push(b.xMin);
    y.push(v);
    if (b.xMax > b.xMin) {
      x.push(b.xMax);
      y.push(v);
    }
  }
  return { kind: 'isotonic', x, y };
}

/**
 * Platt scaling on the logit of the score: σ(a·logit(p) + b) fitted by
 * Newton's method (step halving, tiny ridge) on log loss against Platt's
 * targets (N₊+1)/(N₊+2) and 1/(N₋+2), which keep a separable set finite.
 */
export function fitPlatt(scores: readonly number[], outcomes: readonly number[]): ScoreMap {
  if (scores.length !== outcomes.length) throw new RangeError(`fitPlatt: length mismatch (${scores.length} vs ${outcomes.length})`);
  if (scores.length === 0) return { kind: 'identity' };
  const positives = outcomes.reduce((s, y) => s + y, 0);
  const hi = (positives + 1) / (positives + 2);
  const lo = 1 / (scores.length - positives + 2);
  const t = outcomes.map((y) => (y === 1 ? hi : lo));
  const z = scores.map(logit);
  const loss = (a: number, b: number): number => {
    let l = 0;
    z.forEach((zi, i) => {
      const f = a * zi + b;
      // log(1 + e^f) − t·f, stably
      l += (f > 0 ? f + Math.log1p(Math.exp(-f)) : Math.log1p(Math.exp(f))) - t[i]! * f;
    });
    return l;
  };
  let a = 1;
  let b = 0;
  let current = loss(a, b);
  for (let iter = 0; iter < 100; iter++) {
    let ga = 0;
    let gb = 0;
    let haa = 1e-9;
    let hab = 0;
    let hbb = 1e-9;
    z.forEach((zi, i) => {
      const p = sigmoid(a * zi + b);
      const d = p - t[i]!;
      const w = p * (1 - p);
      ga += d * zi;
      gb += d;
      haa += w * zi * zi;
      hab += w * zi;
      hbb += w;
    });
    const det = haa * hbb - hab * hab;
    if (!(det > 0)) break;
    const da = (hbb * ga - hab * gb) / det;
    const db = (haa * gb - hab * ga) / det;
    let step = 1;
    let next = loss(a - step * da, b - step * db);
    while (next > current && step > 1e-8) {
      step /= 2;
      next = loss(a - step * da, b - step * db);
    }
    if (!(next <= current)) break;
    a -= step * da;
    b -= step * db;
    const improvement = current - next;
    current = next;
    if (Math.abs(step * da) < 1e-10 && Math.abs(step * db) < 1e-10) break;
    if (improvement < 1e-12 * Math.max(1, Math.abs(current))) break;
  }
  return { kind: 'platt', a, b };
}

/** The temperature T in [e^-4, e^4] minimising the log loss of p^(1/T) (golden-section search on log T). */
export function fitTemperature(rows: readonly (readonly number[])[], labels: readonly number[]): number {
  if (rows.length !== labels.length) throw new RangeError(`fitTemperature: length mismatch (${rows.length} vs ${labels.length})`);
  if (rows.length === 0) return 1;
  const logs = rows.map((r) => r.map((p) => Math.log(clip(p))));
  const nll = (u: number): number => {
    const inv = Math.exp(-u);
    let s = 0;
    logs.forEach((l, i) => {
      let max = -Infinity;
      for (const v of l) max = Math.max(max, v * inv);
      let sum = 0;
      for (const v of l) sum += Math.exp(v * inv - max);
      s += max + Math.log(sum) - l[labels[i]!]! * inv;
    });
    return s;
  };
  const g = (Math.sqrt(5) - 1) / 2;
  let lo = -4;
  let hi = 4;
  let c = hi - g * (hi - lo);
  let d = lo + g * (hi - lo);
  let fc = nll(c);
  let fd = nll(d);
  for (let i = 0; i < 60; i++) {
    if (fc < fd) {
      hi = d;
      d = c;
      fd = fc;
      c = hi - g * (hi - lo);
      fc = nll(c);
    } else {
      lo = c;
      c = d;
      fc = fd;
      d = lo + g * (hi - lo);
      fd = nll(d);
    }
  }
  return Math.exp((lo + hi) / 2);
}

/** Fits `method` on raw probability rows (class order) with class-index labels. */
function fitMethod(method: CalibrationMethod, classes: readonly string[], rows: readonly number[][], labels: readonly number[]): Calibrator {
  const base: Calibrator = { kind: 'calibrator', method, classes: [...classes], maps: [], temperature: 1, fittedOn: rows.length };
  if (method === 'identity') return base;
  if (method === 'temperature') return { ...base, temperature: fitTemperature(rows, labels) };
  const fit = method === 'isotonic' ? fitIsotonic : fitPlatt;
  if (classes.length === 2) return { ...base, maps: [fit(rows.map((r) => r[1]!), labels.map((y) => (y === 1 ? 1 : 0)))] };
  return { ...base, maps: classes.map((_, c) => fit(rows.map((r) => r[c]!), labels.map((y) => (y === c ? 1 : 0)))) };
}

/**
 * Calibration error of probability rows (class order) against class-index
 * labels: ECE of P(classes[1]) for two classes, top-label ECE for more;
 * null for no rows.
 */
export function calibrationErrorOf(classes: readonly string[], rows: readonly (readonly number[])[], labels: readonly number[]): number | null {
  if (rows.length === 0) return null;
  if (classes.length === 2) return expectedCalibrationError(labels.map((y) => (y === 1 ? 1 : 0)), rows.map((r) => r[1]!));
  const w = new QualityWindow('multiclass');
  rows.forEach((r, i) => {
    let top = 0;
    for (let c = 1; c < r.length; c++) if (r[c]! > r[top]!) top = c;
    w.add({ label: classes[labels[i]!]!, predicted: classes[top]!, probabilities: Object.fromEntries(classes.map((c, j) => [c, r[j]!])) });
  });
  return w.summary().ece;
}

/**
 * Fits a calibrator of `classes` on labeled reference examples and checks it
 * (see `CalibrationCheck` and the module comment). Examples whose label is
 * not one of `classes` are skipped. Throws RangeError on bad options or
 * classes, or a non-finite probability.
 */
export function fitCalibrator(classes: readonly string[], examples: readonly CalibrationExample[], options: CalibrationOptions = {}): { calibrator: Calibrator; check: CalibrationCheck } {
  checkClasses('fitCalibrator', classes);
  const o = resolveCalibrationOptions(options);
  const index = new Map(classes.map((c, i) => [c, i]));
  const rows: number[][] = [];
  const labels: number[] = [];
  for (const e of examples) {
    const y = index.get(String(e.label));
    if (y === undefined) continue;
    rows.push(probabilityVector(classes, e.probabilities));
    labels.push(y);
  }
  return fitCalibratorRows(classes, rows, labels, o);
}

/** `fitCalibrator` on rows already in class order with class-index labels (no copying; options resolved). */
export function fitCalibratorRows(classes: readonly string[], rows: readonly number[][], labels: readonly number[], o: Required<CalibrationOptions>): { calibrator: Calibrator; check: CalibrationCheck } {
  const n = rows.length;
  const eceRaw = calibrationErrorOf(classes, rows, labels);
  const check = (applied: CalibrationMethod, eceCalibrated: number | null, reason: string | null): CalibrationCheck => {
    const ece = applied === o.method && o.method !== 'identity' ? eceCalibrated : eceRaw;
    return { examples: n, requested: o.method, applied, eceRaw, eceCalibrated, ece, threshold: o.eceThreshold, flagged: ece === null || ece > o.eceThreshold, reason };
  };
  const identity = (eceCalibrated: number | null, reason: string | null) => ({ calibrator: { ...identityCalibrator(classes), fittedOn: n }, check: check('identity', eceCalibrated, reason) });
  if (o.method === 'identity') return identity(null, null);
  if (n < o.minExamples) return identity(null, `too few examples (${n} < ${o.minExamples})`);
  const seen = new Set(labels);
  if (seen.size < 2) return identity(null, 'the reference has a single class');

  // Cross-fitted ECE: each interleaved fold calibrated by a map fitted on the others.
  const outOfFold: number[][] = new Array<number[]>(n);
  for (let f = 0; f < o.folds; f++) {
    const trainRows: number[][] = [];
    const trainLabels: number[] = [];
    for (let i = 0; i < n; i++) {
      if (i % o.folds === f) continue;
      trainRows.push(rows[i]!);
      trainLabels.push(labels[i]!);
    }
    const fold = fitMethod(o.method, classes, trainRows, trainLabels);
    for (let i = f; i < n; i += o.folds) outOfFold[i] = calibrateVector(fold, rows[i]!);
  }
  const eceCalibrated = calibrationErrorOf(classes, outOfFold, labels);
  if (eceCalibrated === null || eceRaw === null || !(eceCalibrated < eceRaw)) {
    return identity(eceCalibrated, `${o.method} does not lower the cross-fitted calibration error (${fmt(eceCalibrated)} vs raw ${fmt(eceRaw)})`);
  }
  return { calibrator: fitMethod(o.method, classes, rows, labels), check: check(o.method, eceCalibrated, null) };
}

function fmt(x: number | null): string {
  return x === null ? 'n/a' : x.toFixed(4);
}

/** Validated calibration options with defaults; throws RangeError naming the bad key. */
export function resolveCalibrationOptions(options: CalibrationOptions = {}): Required<CalibrationOptions> {
  const o = { ...DEFAULT_CALIBRATION_OPTIONS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as Required<CalibrationOptions>;
  if (!CALIBRATION_METHODS.includes(o.method)) throw new RangeError(`calibration: method must be one of ${CALIBRATION_METHODS.join(', ')}, got ${String(o.method)}`);
  if (!Number.isInteger(o.folds) || o.folds < 2) throw new RangeError(`calibration: folds must be an integer ≥ 2, got ${o.folds}`);
  if (!Number.isInteger(o.minExamples) || o.minExamples < o.folds) throw new RangeError(`calibration: minExamples must be an integer ≥ folds (${o.folds}), got ${o.minExamples}`);
  if (!(o.eceThreshold > 0 && o.eceThreshold < 1)) throw new RangeError(`calibration: eceThreshold must be in (0, 1), got ${o.eceThreshold}`);
  return o;
}
