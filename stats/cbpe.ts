/**
 * Confidence-based performance estimation (CBPE), streaming: an estimate of
 * a classifier's accuracy (and, for binary, ROC AUC, precision, recall, F1)
 * per tumbling window of scored predictions, from its calibrated predicted
 * probabilities alone — available as soon as the window is scored, a label
 * delay before the realised metric. The method is NannyML's CBPE
 * (performance_estimation/confidence_based), made incremental and
 * checkpointable.
 *
 * If the calibrated probabilities are right, prediction i is correct with
 * probability q_i = P̂(predicted class), so the window's accuracy has
 * expectation mean(q_i) and, the outcomes being independent Bernoullis
 * (Poisson-binomial), standard error √Σq_i(1−q_i) / n. Binary: with p_i =
 * P̂(positive), the expected confusion matrix is TP = Σ_{pred +} p_i, FP =
 * Σ_{pred +} (1−p_i), FN = Σ_{pred −} p_i, TN = Σ_{pred −} (1−p_i), giving
 * precision, recall and F1 as ratios of expectations; the AUC is the
 * expected number of concordant (positive above negative) pairs over the
 * expected number of positive–negative pairs, ranked by the raw score binned
 * into `aucBins` bins (ties count ½, as `QualityWindow`'s AUC), i ≠ j:
 * (Σ_b P_b(N_<b + N_b/2) − S/2) / (P·N − S), S = Σp_i(1−p_i). Its band is
 * Hanley–McNeil's standard error at the expected class counts. Bands cover
 * sampling noise under the calibration, not calibration error: the
 * calibration check (stats/calibration.ts) says how far to trust that.
 *
 * The assumption is NannyML's: P(y | score) on the window is what the
 * calibrator learnt (covariate shift is fine, concept shift is not). Labels
 * do arrive, only late, so a version's calibrator is refitted from its own
 * newest labeled predictions (`refitFromLabels`, on by default; every
 * `refitEvery` = windowSize/10 labels on the newest `referenceSize` =
 * windowSize/2, by Platt scaling): they are out-of-sample for the version (a
 * fit on its training rows is optimistic) and track a drifting P(y | score)
 * with the label delay, while the estimate still moves at once with the score
 * distribution. A refit applies to the next prediction (`refitTakesEffect`
 * 'at-once'), so each prediction is calibrated with every label known when
 * it was scored; 'next-window' makes a window's estimate a pure forecast.
 *
 * Why Platt on half a window: P(y | score) drifts on real streams, so the
 * estimate errs high (the calibrator learnt from older, better times); a
 * shorter reference follows the drift sooner, and Platt's two parameters
 * stay stable on 250 labels where isotonic steps do not. On Elec2, windows of
 * 500, a new version's predictions taken raw until its own labels fit its
 * calibrator as in the drift monitor (`npx tsx study/cbpe-elec2.ts
 * --label-delay-rows <d> --method <m> [--reference-size 500]`, 2026-12-02),
 * mean absolute error per window (bias):
 *
 *   label delay (rows)      48 (spec)        200              500
 *   platt, 250 (default)    0.0214 (+.002)   0.0275 (+.008)   0.0361 (+.017)
 *   isotonic, 500 (before)  0.0229 (+.009)   0.0293 (+.015)   0.0385 (+.020)
 *   raw probabilities       0.0322 (+.015)   0.0372 (+.019)   0.0420 (+.024)
 *
 * The effective delay of a live loop is the label delay plus how far joining
 * lags scoring (at 300 events/s a second of lag is 300 rows), which is why a
 * loaded live demo errs more than a backtest.
 *
 * With a label delay of 48 rows most of a window is labeled by the time it
 * closes, so the labels alone already say 0.011 then: CBPE's worth is the
 * unlabeled part and longer delays (the study's `tail` and
 * `--label-delay-rows`).
 *
 *   const cbpe = CbpeMonitor.create(cbpeConfig({ classes: ['DOWN', 'UP'], windowSize: 500 }));
 *   cbpe.setReference(version, heldOutExamples);                 // at registration / promotion
 *   const report = cbpe.addPrediction({ modelVersion, variant, eventTime, probabilities, predicted }); // per scored prediction
 *   cbpe.addLabeled({ modelVersion, probabilities, label });    // per labeled prediction (refits the calibrator)
 *   cbpe.addRealised(modelVersion, variant, windowIndex, qualityWindow.summary()); // estimate beside realised
 *   const saved = JSON.stringify(cbpe.toJSON());                 // checkpoint; CbpeMonitor.fromJSON(JSON.parse(saved), config)
 *
 * Regression is not estimated: see `cbpeSupport`.
 */
import {
  calibrateVector,
  fitCalibratorRows,
  identityCalibrator,
  probabilityVector,
  resolveCalibrationOptions,
  type CalibrationCheck,
  type CalibrationExample,
  type CalibrationOptions,
  type Calibrator,
} from './calibration.js';
import type { Label, Task } from './quality.js';

/** Whether CBPE can estimate a task's quality; when not, why (for reports and logs). */
export type CbpeSupport = { supported: true } | { supported: false; reason: string };

/**
 * CBPE needs a predictive distribution. Classifiers give one (class
 * probabilities). A regressor that gives a point value only has no
 * confidence to estimate its error from; one with a predictive uncertainty
 * could be estimated (expected |error| from the predicted spread), but no
 * Loopline model emits one, so that estimator is not built.
 */
export function cbpeSupport(task: Task, model: { predictiveUncertainty?: boolean } = {}): CbpeSupport {
  if (task === 'binary' || task === 'multiclass') return { supported: true };
  if (model.predictiveUncertainty) {
    return { supported: false, reason: 'regression with a predictive uncertainty: no estimator is implemented yet (no Loopline model emits one); MAE and RMSE are reported once labels arrive' };
  }
  return {
    supported: false,
    reason: 'regression: the model outputs a point value only, with no predictive uncertainty, so there is no confidence to estimate its error from; MAE and RMSE are reported once labels arrive',
  };
}

/** A scored prediction as CBPE sees it: the model's raw class probabilities and the class it served. */
export interface ScoredPrediction {
  /** Raw (uncalibrated) probabilities keyed by `String(class)`; a missing class is 0. */
  probabilities: Readonly<Record<string, number>>;
  predicted: Label;
}

/** A point estimate with its standard error and band `value ± z·stdError`, clipped to [0, 1]. */
export interface Estimated {
  value: number;
  stdError: number;
  lower: number;
  upper: number;
}

/**
 * The estimate of a window. `accuracy` for every classifier; the rest for
 * two classes only (null otherwise, or when undefined for the window: no
 * predicted positives for precision, no expected positives for recall, one
 * expected class for the AUC). `uncalibratedAccuracy` is the same estimate
 * from the raw probabilities, to show what calibration changed.
 */
export interface CbpeEstimate {
  count: number;
  /** Records whose probabilities went through a fitted (non-identity) calibrator. */
  calibrated: number;
  accuracy: Estimated | null;
  uncalibratedAccuracy: number | null;
  rocAuc: Estimated | null;
  precision: Estimated | null;
  recall: number | null;
  f1: number | null;
}

/** The JSON state of a `CbpeWindow`. */
export interface CbpeWindowState {
  kind: 'cbpe-window';
  classes: string[];
  aucBins: number;
  count: number;
  calibrated: number;
  /** Σ q, Σ q(1−q) of the calibrated P(predicted class); Σ of the raw one. */
  sumQ: number;
  sumQVar: number;
  rawSumQ: number;
  /** Binary: expected TP, FP, FN; predicted positives; Σ p(1−p) over predicted positives. */
  tp: number;
  fp: number;
  fn: number;
  predictedPositive: number;
  tpVar: number;
  /** Binary: Σ p and Σ (1−p) per raw-score bin; Σ p(1−p) over all records. */
  positiveMass: number[];
  negativeMass: number[];
  selfVar: number;
}

/** Default number of raw-score bins of the estimated AUC (as `QualityWindow`). */
export const CBPE_AUC_BINS = 1000;
/** Default band width in standard errors (≈ 95 %). */
export const CBPE_Z = 1.96;

function clamp01(x: number): number {
  return Math.min(1, Math.max(0, x));
}

function estimated(value: number, stdError: number, z: number): Estimated {
  return { value, stdError, lower: clamp01(value - z * stdError), upper: clamp01(value + z * stdError) };
}

/**
 * Accumulates scored predictions of one window and estimates their quality.
 * Constant memory (sums and `aucBins` bins); `merge` adds panes for a
 * sliding window; `toJSON()` / `CbpeWindow.fromJSON()` round-trip exactly.
 * Classes in order; two classes are binary with classes[1] the positive.
 */
export class CbpeWindow {
  #s: CbpeWindowState;

  constructor(classes: readonly string[], options: { aucBins?: number } = {}) {
    if (classes.length < 2 || new Set(classes).size !== classes.length) throw new RangeError(`CbpeWindow: need at least 2 distinct classes, got [${classes.join(', ')}]`);
    const aucBins = options.aucBins ?? CBPE_AUC_BINS;
    if (!Number.isInteger(aucBins) || aucBins < 1) throw new RangeError(`CbpeWindow: aucBins must be a positive integer, got ${aucBins}`);
    const binary = classes.length === 2;
    this.#s = {
      kind: 'cbpe-window',
      classes: [...classes],
      aucBins,
      count: 0,
      calibrated: 0,
      sumQ: 0,
      sumQVar: 0,
      rawSumQ: 0,
      tp: 0,
      fp: 0,
      fn: 0,
      predictedPositive: 0,
      tpVar: 0,
      positiveMass: new Array<number>(binary ? aucBins : 0).fill(0),
      negativeMass: new Array<number>(binary ? aucBins : 0).fill(0),
      selfVar: 0,
    };
  }

  /** Restores a window from `toJSON()` output (deep-copied). Throws RangeError on a foreign state. */
  static fromJSON(state: CbpeWindowState): CbpeWindow {
    if (state.kind !== 'cbpe-window') throw new RangeError(`CbpeWindow.fromJSON: unexpected kind ${String(state.kind)}`);
    const w = new CbpeWindow(state.classes, { aucBins: state.aucBins });
    w.#s = structuredClone(state);
    return w;
  }

  toJSON(key?: string): CbpeWindowState {
    return key === undefined ? structuredClone(this.#s) : this.#s;
  }

  get count(): number {
    return this.#s.count;
  }

  get classes(): readonly string[] {
    return this.#s.classes;
  }

  /**
   * Adds a scored prediction, calibrated by `calibrator` (identity when
   * omitted; it must have this window's classes). A predicted class outside
   * the classes counts as never correct. Throws RangeError on a non-finite
   * probability.
   */
  add(prediction: ScoredPrediction, calibrator: Calibrator | null = null): void {
    const s = this.#s;
    if (calibrator && (calibrator.classes.length !== s.classes.length || calibrator.classes.some((c, i) => c !== s.classes[i]))) {
      throw new RangeError(`CbpeWindow.add: calibrator classes [${calibrator.classes.join(', ')}] differ from the window's [${s.classes.join(', ')}]`);
    }
    const raw = probabilityVector(s.classes, prediction.probabilities);
    const cal = calibrator && calibrator.method !== 'identity' ? calibrateVector(calibrator, raw) : raw;
    const k = s.classes.indexOf(String(prediction.predicted));
    const q = k < 0 ? 0 : clamp01(cal[k]!);
    s.count++;
    if (cal !== raw) s.calibrated++;
    s.sumQ += q;
    s.sumQVar += q * (1 - q);
    s.rawSumQ += k < 0 ? 0 : clamp01(raw[k]!);
    if (s.classes.length !== 2) return;
    const p = clamp01(cal[1]!);
    if (k === 1) {
      s.predictedPositive++;
      s.tp += p;
      s.fp += 1 - p;
      s.tpVar += p * (1 - p);
    } else {
      s.fn += p;
    }
    const b = Math.min(s.aucBins - 1, Math.max(0, Math.floor(clamp01(raw[1]!) * s.aucBins)));
    s.positiveMass[b] = (s.positiveMass[b] ?? 0) + p;
    s.negativeMass[b] = (s.negativeMass[b] ?? 0) + (1 - p);
    s.selfVar += p * (1 - p);
  }

  /** Adds another window's predictions into this one (in place). Throws RangeError unless classes and bins match. */
  merge(other: CbpeWindow): this {
    const a = this.#s;
    const b = other.#s;
    if (a.aucBins !== b.aucBins || a.classes.join('\u0000') !== b.classes.join('\u0000')) throw new RangeError('CbpeWindow.merge: windows differ in classes or aucBins');
    for (const key of ['count', 'calibrated', 'sumQ', 'sumQVar', 'rawSumQ', 'tp', 'fp', 'fn', 'predictedPositive', 'tpVar', 'selfVar'] as const) a[key] += b[key];
    b.positiveMass.forEach((v, i) => (a.positiveMass[i] = (a.positiveMass[i] ?? 0) + v));
    b.negativeMass.forEach((v, i) => (a.negativeMass[i] = (a.negativeMass[i] ?? 0) + v));
    return this;
  }

  /** Empties the window, keeping classes and bins. */
  reset(): void {
    this.#s = new CbpeWindow(this.#s.classes, { aucBins: this.#s.aucBins }).#s;
  }

  /** The estimate of everything added so far; bands are `z` standard errors wide (default 1.96). */
  estimate(z = CBPE_Z): CbpeEstimate {
    const s = this.#s;
    const n = s.count;
    const binary = s.classes.length === 2;
    const out: CbpeEstimate = {
      count: n,
      calibrated: s.calibrated,
      accuracy: n > 0 ? estimated(s.sumQ / n, Math.sqrt(s.sumQVar) / n, z) : null,
      uncalibratedAccuracy: n > 0 ? s.rawSumQ / n : null,
      rocAuc: null,
      precision: null,
      recall: null,
      f1: null,
    };
    if (!binary || n === 0) return out;
    if (s.predictedPositive > 0) out.precision = estimated(s.tp / s.predictedPositive, Math.sqrt(s.tpVar) / s.predictedPositive, z);
    if (s.tp + s.fn > 0) out.recall = s.tp / (s.tp + s.fn);
    if (2 * s.tp + s.fp + s.fn > 0) out.f1 = (2 * s.tp) / (2 * s.tp + s.fp + s.fn);
    out.rocAuc = this.#auc(z);
    return out;
  }

  #auc(z: number): Estimated | null {
    const s = this.#s;
    let negativesBelow = 0;
    let concordant = 0;
    let positives = 0;
    s.positiveMass.forEach((pos, b) => {
      const neg = s.negativeMass[b] ?? 0;
      concordant += pos * (negativesBelow + neg / 2);
      positives += pos;
      negativesBelow += neg;
    });
    const pairs = positives * negativesBelow - s.selfVar;
    if (!(pairs > 1e-9)) return null;
    const a = clamp01((concordant - s.selfVar / 2) / pairs);
    // Hanley & McNeil (1982) at the expected class counts.
    const q1 = a / (2 - a);
    const q2 = (2 * a * a) / (1 + a);
    const variance = (a * (1 - a) + Math.max(0, positives - 1) * (q1 - a * a) + Math.max(0, negativesBelow - 1) * (q2 - a * a)) / (positives * negativesBelow);
    return estimated(a, Math.sqrt(Math.max(0, variance)), z);
  }
}

/**
 * The estimate as a report metrics map (Avro map<double>), every name
 * prefixed so nothing reads it as a realised metric: estimated_accuracy
 * (+ _lower, _upper), uncalibrated_estimated_accuracy, estimated_auc
 * (+ _lower, _upper), estimated_precision, estimated_recall, estimated_f1;
 * with a check, calibration_ece and calibration_flagged (0/1). Undefined
 * ones are left out.
 */
export function estimateMetrics(estimate: CbpeEstimate, check: CalibrationCheck | null = null): Record<string, number> {
  const m: Record<string, number> = {};
  const put = (name: string, v: number | null | undefined): void => {
    if (v !== null && v !== undefined && Number.isFinite(v)) m[name] = v;
  };
  const band = (name: string, e: Estimated | null): void => {
    if (!e) return;
    put(name, e.value);
    put(`${name}_lower`, e.lower);
    put(`${name}_upper`, e.upper);
  };
  band('estimated_accuracy', estimate.accuracy);
  put('uncalibrated_estimated_accuracy', estimate.uncalibratedAccuracy);
  band('estimated_auc', estimate.rocAuc);
  put('estimated_precision', estimate.precision?.value);
  put('estimated_recall', estimate.recall);
  put('estimated_f1', estimate.f1);
  if (check) {
    put('calibration_ece', check.ece);
    m.calibration_flagged = check.flagged ? 1 : 0;
  }
  return m;
}

// ---------------------------------------------------------------------------
// The keyed, checkpointable estimator: windows per (model version, variant),
// calibrators per model version.

/** Options of `cbpeConfig`; all but `classes` optional. */
export interface CbpeOptions {
  /** Classes in order (the spec's `label.classes`); two classes are binary with classes[1] positive. */
  classes: readonly string[];
  /** Scored predictions per tumbling window, per (version, variant). Default 500 (spec.monitoring.windowSize). */
  windowSize?: number;
  aucBins?: number;
  /** Band width in standard errors. Default 1.96. */
  z?: number;
  /** Calibrator fitting and its check (stats/calibration.ts). Default method 'platt' (see the module comment). */
  calibration?: CalibrationOptions;
  /** Refit a version's calibrator from its own labeled predictions. Default true. */
  refitFromLabels?: boolean;
  /** Refit after this many new labeled predictions of the version. Default windowSize / 10 (at least 1). */
  refitEvery?: number;
  /**
   * When a refit takes effect for a slot: 'at-once' (default: the next
   * prediction uses it, so a window mixes calibrators, each prediction
   * calibrated with every label known when it was scored) or 'next-window'
   * (a window keeps the calibrator in force at its first prediction, so its
   * estimate is a forecast from labels known before the window began).
   */
  refitTakesEffect?: 'at-once' | 'next-window';
  /** Newest labeled predictions kept per version to refit from. Default windowSize / 2, at least the calibration's minExamples (see the module comment). */
  referenceSize?: number;
  /** Versions kept (calibrator, reference, windows); the least recently active beyond it is dropped. Default 8. */
  maxVersions?: number;
  /** Closed windows per slot kept waiting for their realised metrics. Default 8. */
  pendingWindows?: number;
}

/** Compiled, validated `CbpeOptions`. */
export interface CbpeConfig {
  classes: string[];
  windowSize: number;
  aucBins: number;
  z: number;
  calibration: Required<CalibrationOptions>;
  refitFromLabels: boolean;
  refitEvery: number;
  refitTakesEffect: 'at-once' | 'next-window';
  referenceSize: number;
  maxVersions: number;
  pendingWindows: number;
}

/** Compiles options once; throws RangeError naming the bad key and what it allows. */
export function cbpeConfig(options: CbpeOptions): CbpeConfig {
  const classes = [...options.classes].map(String);
  if (classes.length < 2 || new Set(classes).size !== classes.length) throw new RangeError(`cbpe: classes must be at least 2 distinct classes, got [${classes.join(', ')}]`);
  const windowSize = options.windowSize ?? 500;
  const config: CbpeConfig = {
    classes,
    windowSize,
    aucBins: options.aucBins ?? CBPE_AUC_BINS,
    z: options.z ?? CBPE_Z,
    calibration: resolveCalibrationOptions({ method: 'platt', ...options.calibration }),
    refitFromLabels: options.refitFromLabels ?? true,
    refitEvery: options.refitEvery ?? Math.max(1, Math.round(windowSize / 10)),
    refitTakesEffect: options.refitTakesEffect ?? 'at-once',
    referenceSize: options.referenceSize ?? Math.max(resolveCalibrationOptions(options.calibration).minExamples, Math.round(windowSize / 2)),
    maxVersions: options.maxVersions ?? 8,
    pendingWindows: options.pendingWindows ?? 8,
  };
  const positiveInt = (key: keyof CbpeConfig, max = 1e7): void => {
    const v = config[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw new RangeError(`cbpe: ${key} must be an integer in 1..${max}, got ${String(v)}`);
  };
  positiveInt('windowSize');
  positiveInt('aucBins', 100000);
  positiveInt('refitEvery');
  positiveInt('referenceSize');
  positiveInt('maxVersions', 1000);
  positiveInt('pendingWindows', 1000);
  if (config.refitTakesEffect !== 'at-once' && config.refitTakesEffect !== 'next-window') throw new RangeError(`cbpe: refitTakesEffect must be 'at-once' or 'next-window', got ${String(config.refitTakesEffect)}`);
  if (!(config.z > 0 && Number.isFinite(config.z))) throw new RangeError(`cbpe: z must be a positive number, got ${config.z}`);
  return config;
}

/** One scored prediction of a (version, variant). */
export interface CbpePrediction extends ScoredPrediction {
  modelVersion: number;
  variant: string;
  /** Event time (ms) of the prediction; the report's window bounds. */
  eventTime: number;
}

/** One labeled prediction of a version: its raw probabilities and the true class. */
export interface CbpeLabeled extends CalibrationExample {
  modelVersion: number;
}

/** A full window's estimate (emitted by `addPrediction` when the window reaches `windowSize`). */
export interface CbpeWindowReport {
  modelVersion: number;
  variant: string;
  /** From 0 per (version, variant), like the monitor's `w<index>`. */
  windowIndex: number;
  /** Min / max prediction event time in the window. */
  windowStart: number;
  windowEnd: number;
  estimate: CbpeEstimate;
  /** The check of the calibrator the window's last prediction used; null while none was fitted. */
  calibration: CalibrationCheck | null;
}

/** A calibrator (re)fitted from labeled predictions or a reference set. */
export interface CalibrationUpdate {
  modelVersion: number;
  source: 'reference' | 'labels';
  check: CalibrationCheck;
}

/** Realised metrics of a window, e.g. `QualityWindow.summary()`. */
export interface RealisedMetrics {
  accuracy?: number | null;
  rocAuc?: number | null;
  precision?: number | null;
  recall?: number | null;
  f1?: number | null;
}

export type EstimatedMetric = 'accuracy' | 'rocAuc' | 'precision' | 'recall' | 'f1';

/** One metric, estimated beside realised: `error` = estimated − realised; `withinBand` when it has a band. */
export interface MetricComparison {
  metric: EstimatedMetric;
  estimated: number;
  realised: number;
  error: number;
  withinBand: boolean | null;
}

export interface EstimateComparison {
  modelVersion: number;
  variant: string;
  windowIndex: number;
  count: number;
  metrics: MetricComparison[];
  calibration: CalibrationCheck | null;
}

/** Running agreement of estimates with realised metrics of one slot, per metric. */
export interface EstimateAuditSummary {
  metric: EstimatedMetric;
  windows: number;
  meanAbsError: number | null;
  /** Mean of estimated − realised (positive: the estimate is optimistic). */
  meanError: number | null;
  /** Share of windows whose realised value fell inside the band (metrics with a band). */
  coverage: number | null;
}

interface AuditState {
  windows: number;
  absErrorSum: number;
  errorSum: number;
  banded: number;
  covered: number;
}

/** The JSON state of one (version, variant). */
export interface CbpeSlotState {
  modelVersion: number;
  variant: string;
  windowIndex: number;
  windowStart: number | null;
  windowEnd: number | null;
  window: CbpeWindowState;
  /** refitTakesEffect 'next-window': the calibrator (and its check) of the current window, set at its first prediction. */
  windowCalibrator: { calibrator: Calibrator; check: CalibrationCheck | null } | null;
  /** Closed windows awaiting realised metrics, oldest first. */
  pending: Array<{ windowIndex: number; estimate: CbpeEstimate; calibration: CalibrationCheck | null }>;
  audit: Partial<Record<EstimatedMetric, AuditState>>;
}

/** The JSON state of one version's calibration: calibrator, check and the newest labeled examples (a ring). */
export interface CbpeVersionState {
  calibrator: Calibrator;
  check: CalibrationCheck | null;
  /** Raw probabilities in class order, and class index, of the newest labeled predictions. */
  rows: number[][];
  labels: number[];
  /** Ring position to overwrite next once `rows` is full. */
  next: number;
  labelsSinceFit: number;
  /** Activity sequence number, for dropping the least recently active version. */
  lastActive: number;
}

export interface CbpeMonitorState {
  kind: 'cbpe-monitor';
  version: 1;
  classes: string[];
  sequence: number;
  versions: Record<string, CbpeVersionState>;
  /** By `<version>/<variant>`, in order of first appearance. */
  slots: Record<string, CbpeSlotState>;
}

function slotKey(version: number, variant: string): string {
  return `${version}/${variant}`;
}

/**
 * The streaming estimator of one model (all its versions and variants).
 * Windows are tumbling per (version, variant) as the drift monitor's; a
 * version's predictions are calibrated by that version's calibrator
 * (identity until `setReference` or enough labels). Pure: no I/O or clock.
 */
export class CbpeMonitor {
  readonly config: CbpeConfig;
  #sequence = 0;
  readonly #versions = new Map<string, CbpeVersionState>();
  readonly #slots = new Map<string, { state: CbpeSlotState; window: CbpeWindow }>();

  private constructor(config: CbpeConfig) {
    this.config = config;
  }

  static create(config: CbpeConfig): CbpeMonitor {
    return new CbpeMonitor(config);
  }

  /** Restores from `toJSON()` output under `config` (same classes). Throws RangeError on a foreign state. */
  static fromJSON(json: CbpeMonitorState, config: CbpeConfig): CbpeMonitor {
    if (json.kind !== 'cbpe-monitor' || json.version !== 1) throw new RangeError(`CbpeMonitor.fromJSON: unexpected state ${String(json.kind)} v${String(json.version)}`);
    if (json.classes.join('\u0000') !== config.classes.join('\u0000')) throw new RangeError(`CbpeMonitor.fromJSON: state of classes [${json.classes.join(', ')}] given to a monitor of [${config.classes.join(', ')}]`);
    const m = new CbpeMonitor(config);
    m.#sequence = json.sequence;
    for (const [k, v] of Object.entries(json.versions)) m.#versions.set(k, structuredClone(v));
    for (const [k, s] of Object.entries(json.slots)) {
      const state = structuredClone(s);
      m.#slots.set(k, { state, window: CbpeWindow.fromJSON(state.window) });
    }
    return m;
  }

  toJSON(key?: string): CbpeMonitorState {
    const copy = key === undefined ? structuredClone : <T>(x: T): T => x;
    const slots: Record<string, CbpeSlotState> = {};
    for (const [k, { state, window }] of this.#slots) slots[k] = { ...copy(state), window: window.toJSON(key) };
    const versions: Record<string, CbpeVersionState> = {};
    for (const [k, v] of this.#versions) versions[k] = copy(v);
    return { kind: 'cbpe-monitor', version: 1, classes: [...this.config.classes], sequence: this.#sequence, versions, slots };
  }

  /** Slot keys `<version>/<variant>` held, in order of first appearance. */
  get slotKeys(): string[] {
    return [...this.#slots.keys()];
  }

  /** Versions with calibration state, as strings. */
  get versionKeys(): string[] {
    return [...this.#versions.keys()];
  }

  /** The calibrator a version's predictions are calibrated with now, and its check (null: never fitted). */
  calibration(modelVersion: number): { calibrator: Calibrator; check: CalibrationCheck | null } {
    const v = this.#versions.get(String(modelVersion));
    return v ? { calibrator: structuredClone(v.calibrator), check: v.check && { ...v.check } } : { calibrator: identityCalibrator(this.config.classes), check: null };
  }

  /** The estimate of a slot's current, unfinished window (null for an unknown slot). */
  current(modelVersion: number, variant: string): CbpeEstimate | null {
    return this.#slots.get(slotKey(modelVersion, variant))?.window.estimate(this.config.z) ?? null;
  }

  /** Index of a slot's current window (0 for an unknown slot). */
  windowIndex(modelVersion: number, variant: string): number {
    return this.#slots.get(slotKey(modelVersion, variant))?.state.windowIndex ?? 0;
  }

  /** Records in a slot's current window; 0 for an unknown slot. */
  windowCount(modelVersion: number, variant: string): number {
    return this.#slots.get(slotKey(modelVersion, variant))?.window.count ?? 0;
  }

  /**
   * Adds one scored prediction; returns the window's report when it fills
   * (the next window then starts). Throws RangeError, before any change, on
   * a non-finite probability or event time.
   */
  addPrediction(p: CbpePrediction): CbpeWindowReport | null {
    if (!Number.isFinite(p.eventTime)) throw new RangeError(`cbpe: eventTime must be finite, got ${p.eventTime}`);
    probabilityVector(this.config.classes, p.probabilities); // validates before any change
    const version = this.#version(p.modelVersion);
    const key = slotKey(p.modelVersion, p.variant);
    let slot = this.#slots.get(key);
    if (!slot) {
      const window = new CbpeWindow(this.config.classes, { aucBins: this.config.aucBins });
      slot = { window, state: { modelVersion: p.modelVersion, variant: p.variant, windowIndex: 0, windowStart: null, windowEnd: null, window: window.toJSON(), windowCalibrator: null, pending: [], audit: {} } };
      this.#slots.set(key, slot);
    }
    const s = slot.state;
    let calibration: { calibrator: Calibrator; check: CalibrationCheck | null } = version;
    if (this.config.refitTakesEffect === 'next-window') {
      s.windowCalibrator ??= { calibrator: structuredClone(version.calibrator), check: version.check && { ...version.check } };
      calibration = s.windowCalibrator;
    }
    slot.window.add(p, calibration.calibrator);
    s.windowStart = Math.min(s.windowStart ?? p.eventTime, p.eventTime);
    s.windowEnd = Math.max(s.windowEnd ?? p.eventTime, p.eventTime);
    if (slot.window.count < this.config.windowSize) return null;

    const report: CbpeWindowReport = {
      modelVersion: s.modelVersion,
      variant: s.variant,
      windowIndex: s.windowIndex,
      windowStart: s.windowStart,
      windowEnd: s.windowEnd,
      estimate: slot.window.estimate(this.config.z),
      calibration: calibration.check && { ...calibration.check },
    };
    s.pending.push({ windowIndex: s.windowIndex, estimate: report.estimate, calibration: report.calibration });
    if (s.pending.length > this.config.pendingWindows) s.pending.shift();
    slot.window.reset();
    s.windowCalibrator = null;
    s.windowIndex++;
    s.windowStart = null;
    s.windowEnd = null;
    return report;
  }

  /**
   * Adds one labeled prediction of a version to its reference; refits the
   * version's calibrator every `refitEvery` labels (with `refitFromLabels`)
   * and returns the update. A label outside the classes is ignored (null).
   */
  addLabeled(l: CbpeLabeled): CalibrationUpdate | null {
    const y = this.config.classes.indexOf(String(l.label));
    const row = probabilityVector(this.config.classes, l.probabilities);
    if (y < 0) return null;
    const v = this.#version(l.modelVersion);
    this.#remember(v, row, y);
    v.labelsSinceFit++;
    if (!this.config.refitFromLabels || this.config.calibration.method === 'identity') return null;
    if (v.labelsSinceFit < this.config.refitEvery || v.rows.length < this.config.calibration.minExamples) return null;
    return this.#fit(l.modelVersion, v, 'labels');
  }

  /**
   * Fits a version's calibrator now on labeled examples it scored (e.g. the
   * evaluator's held-out rows, or the newest labeled window scored by a new
   * version), which also become the start of its reference (the newest
   * `referenceSize`, in the order given: oldest first).
   */
  setReference(modelVersion: number, examples: readonly CalibrationExample[]): CalibrationUpdate {
    const rows: number[][] = [];
    const labels: number[] = [];
    for (const e of examples) {
      const y = this.config.classes.indexOf(String(e.label));
      const row = probabilityVector(this.config.classes, e.probabilities);
      if (y < 0) continue;
      rows.push(row);
      labels.push(y);
    }
    const v = this.#version(modelVersion);
    v.rows = [];
    v.labels = [];
    v.next = 0;
    rows.forEach((r, i) => this.#remember(v, r, labels[i]!));
    return this.#fit(modelVersion, v, 'reference');
  }

  /**
   * The realised metrics of a slot's window (once its labels are joined),
   * compared with that window's estimate; null when the estimate is no
   * longer (or not yet) held. Updates the slot's audit.
   */
  addRealised(modelVersion: number, variant: string, windowIndex: number, realised: RealisedMetrics): EstimateComparison | null {
    const slot = this.#slots.get(slotKey(modelVersion, variant));
    if (!slot) return null;
    const s = slot.state;
    const at = s.pending.findIndex((p) => p.windowIndex === windowIndex);
    if (at < 0) return null;
    const [{ estimate, calibration }] = s.pending.splice(at, 1) as [CbpeSlotState['pending'][number]];
    const metrics: MetricComparison[] = [];
    const values: Record<EstimatedMetric, { value: number; band: Estimated | null } | null> = {
      accuracy: estimate.accuracy && { value: estimate.accuracy.value, band: estimate.accuracy },
      rocAuc: estimate.rocAuc && { value: estimate.rocAuc.value, band: estimate.rocAuc },
      precision: estimate.precision && { value: estimate.precision.value, band: estimate.precision },
      recall: estimate.recall === null ? null : { value: estimate.recall, band: null },
      f1: estimate.f1 === null ? null : { value: estimate.f1, band: null },
    };
    for (const metric of ['accuracy', 'rocAuc', 'precision', 'recall', 'f1'] as const) {
      const e = values[metric];
      const r = realised[metric];
      if (!e || r === null || r === undefined || !Number.isFinite(r)) continue;
      const withinBand = e.band ? r >= e.band.lower && r <= e.band.upper : null;
      const error = e.value - r;
      metrics.push({ metric, estimated: e.value, realised: r, error, withinBand });
      const a = (s.audit[metric] ??= { windows: 0, absErrorSum: 0, errorSum: 0, banded: 0, covered: 0 });
      a.windows++;
      a.absErrorSum += Math.abs(error);
      a.errorSum += error;
      if (withinBand !== null) {
        a.banded++;
        if (withinBand) a.covered++;
      }
    }
    return { modelVersion, variant, windowIndex, count: estimate.count, metrics, calibration };
  }

  /** How the slot's estimates agreed with realised metrics so far, per metric compared. */
  audit(modelVersion: number, variant: string): EstimateAuditSummary[] {
    const slot = this.#slots.get(slotKey(modelVersion, variant));
    if (!slot) return [];
    return Object.entries(slot.state.audit).map(([metric, a]) => ({
      metric: metric as EstimatedMetric,
      windows: a.windows,
      meanAbsError: a.windows > 0 ? a.absErrorSum / a.windows : null,
      meanError: a.windows > 0 ? a.errorSum / a.windows : null,
      coverage: a.banded > 0 ? a.covered / a.banded : null,
    }));
  }

  #version(modelVersion: number): CbpeVersionState {
    if (!Number.isInteger(modelVersion)) throw new RangeError(`cbpe: modelVersion must be an integer, got ${modelVersion}`);
    const key = String(modelVersion);
    let v = this.#versions.get(key);
    if (!v) {
      v = { calibrator: identityCalibrator(this.config.classes), check: null, rows: [], labels: [], next: 0, labelsSinceFit: 0, lastActive: 0 };
      this.#versions.set(key, v);
      this.#evict(key);
    }
    v.lastActive = ++this.#sequence;
    return v;
  }

  /** Drops the least recently active versions (and their slots) beyond `maxVersions`, never `keep`. */
  #evict(keep: string): void {
    while (this.#versions.size > this.config.maxVersions) {
      let oldest: string | null = null;
      let at = Infinity;
      for (const [k, v] of this.#versions) {
        if (k !== keep && v.lastActive < at) {
          at = v.lastActive;
          oldest = k;
        }
      }
      if (oldest === null) return;
      this.#versions.delete(oldest);
      for (const [k, slot] of this.#slots) if (String(slot.state.modelVersion) === oldest) this.#slots.delete(k);
    }
  }

  #remember(v: CbpeVersionState, row: number[], y: number): void {
    if (v.rows.length < this.config.referenceSize) {
      v.rows.push(row);
      v.labels.push(y);
      return;
    }
    v.rows[v.next] = row;
    v.labels[v.next] = y;
    v.next = (v.next + 1) % this.config.referenceSize;
  }

  #fit(modelVersion: number, v: CbpeVersionState, source: CalibrationUpdate['source']): CalibrationUpdate {
    const { calibrator, check } = fitCalibratorRows(this.config.classes, v.rows, v.labels, this.config.calibration);
    v.calibrator = calibrator;
    v.check = check;
    v.labelsSinceFit = 0;
    return { modelVersion, source, check: { ...check } };
  }
}

/** Options of `estimateBelowTarget`: what a retrain trigger acting on estimates compares. */
export interface EstimateTriggerOptions {
  /** Default 'accuracy'. */
  metric?: 'accuracy' | 'rocAuc';
  /** Fire when the estimate is below this. */
  minMetric?: number;
  /** With `reference` (e.g. the champion's first realised window): fire when the estimate is this fraction below it. */
  maxRelativeDrop?: number;
  reference?: number | null;
}

/**
 * Whether a window's estimate calls for a retrain, for a retrain trigger that
 * opts in (off by default there: an estimate is a forecast). Conservative:
 * fires only when the band's *upper* edge is below the target, so a noisy
 * window does not start a retrain, and never on a calibration the check
 * flagged (the estimate is not to be trusted then).
 */
export function estimateBelowTarget(report: CbpeWindowReport, options: EstimateTriggerOptions): { reason: 'estimated_quality_below_threshold' | 'estimated_quality_drop'; detail: string } | null {
  const metric = options.metric ?? 'accuracy';
  const e = report.estimate[metric];
  if (!e || !report.calibration || report.calibration.flagged) return null;
  const name = metric === 'rocAuc' ? 'auc' : metric;
  if (options.minMetric !== undefined && e.upper < options.minMetric) {
    return { reason: 'estimated_quality_below_threshold', detail: `estimated ${name} ${e.value.toFixed(4)} (upper ${e.upper.toFixed(4)}) vs threshold ${options.minMetric}` };
  }
  const ref = options.reference;
  if (options.maxRelativeDrop !== undefined && ref !== undefined && ref !== null && e.upper < ref * (1 - options.maxRelativeDrop)) {
    return { reason: 'estimated_quality_drop', detail: `estimated ${name} ${e.value.toFixed(4)} (upper ${e.upper.toFixed(4)}) is more than ${options.maxRelativeDrop} below ${ref.toFixed(4)}` };
  }
  return null;
}
