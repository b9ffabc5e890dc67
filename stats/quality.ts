/**
 * Model-quality metrics over arrays, plus a mergeable, JSON-serialisable
 * accumulator (`QualityWindow`) for the evaluator and the monitor.
 *
 * Conventions shared by every function here:
 * - Binary labels are numbers: 1 is the positive class, 0 the negative; any
 *   other value throws RangeError. Probabilities are P(label = 1).
 * - Mismatched array lengths, and non-finite scores, probabilities or values,
 *   throw RangeError (programming errors).
 * - A metric that is undefined for the data (empty input, AUC with one class)
 *   is `null`, never NaN, so summaries stay JSON-safe.
 */

/** A class label. Labels are compared by `String(label)`, so 1 and '1' are the same class. */
export type Label = string | number;

/** Probabilities are clipped to [PROB_CLIP, 1 − PROB_CLIP] before taking logs. */
export const PROB_CLIP = 1e-15;

/** Number of equal-width confidence bins used for the expected calibration error. */
export const CALIBRATION_BINS = 10;

function checkLengths(name: string, a: readonly unknown[], b: readonly unknown[]): void {
  if (a.length !== b.length) {
    throw new RangeError(`${name}: length mismatch (${a.length} vs ${b.length})`);
  }
}

function binaryLabel(name: string, y: number): 0 | 1 {
  if (y === 0 || y === 1) return y;
  throw new RangeError(`${name}: binary labels must be 0 or 1, got ${y}`);
}

/** `values[i]` when it is a finite number; throws RangeError otherwise. */
function finiteAt(name: string, values: readonly number[], i: number): number {
  const v = values[i];
  if (v === undefined || !Number.isFinite(v)) throw new RangeError(`${name}: value at index ${i} must be finite, got ${v}`);
  return v;
}

function clipProb(p: number): number {
  return Math.min(1 - PROB_CLIP, Math.max(PROB_CLIP, p));
}

/**
 * Fraction of positions where `String(predicted[i]) === String(labels[i])`.
 * Returns null for empty input.
 */
export function accuracy(labels: readonly Label[], predicted: readonly Label[]): number | null {
  checkLengths('accuracy', labels, predicted);
  if (labels.length === 0) return null;
  let hits = 0;
  labels.forEach((y, i) => {
    if (String(y) === String(predicted[i])) hits++;
  });
  return hits / labels.length;
}

/**
 * Binary cross-entropy (natural log), mean over examples: −mean(y·ln p + (1−y)·ln(1−p)),
 * with p clipped to [1e-15, 1 − 1e-15]. Returns null for empty input.
 */
export function logLoss(labels: readonly number[], probs: readonly number[]): number | null {
  checkLengths('logLoss', labels, probs);
  if (labels.length === 0) return null;
  let sum = 0;
  labels.forEach((y, i) => {
    const p = clipProb(finiteAt('logLoss', probs, i));
    sum -= binaryLabel('logLoss', y) === 1 ? Math.log(p) : Math.log(1 - p);
  });
  return sum / labels.length;
}

/**
 * Multiclass cross-entropy: −mean(ln p(true class)), where each row maps
 * `String(class)` to its probability. A class missing from a row has
 * probability 0 (clipped to 1e-15). Rows are not renormalised. Returns null
 * for empty input.
 */
export function multiclassLogLoss(
  labels: readonly Label[],
  probabilities: readonly Readonly<Record<string, number>>[],
): number | null {
  checkLengths('multiclassLogLoss', labels, probabilities);
  if (labels.length === 0) return null;
  let sum = 0;
  labels.forEach((y, i) => {
    const p = probabilities[i]?.[String(y)] ?? 0;
    if (!Number.isFinite(p)) throw new RangeError(`multiclassLogLoss: probability at index ${i} must be finite, got ${p}`);
    sum -= Math.log(clipProb(p));
  });
  return sum / labels.length;
}

/**
 * Area under the ROC curve for binary labels (1 = positive) and real-valued
 * scores (higher = more positive), via the Mann–Whitney U statistic with
 * average ranks for tied scores (a tie between a positive and a negative
 * counts ½). Returns null when only one class is present (or input is empty).
 */
export function rocAuc(labels: readonly number[], scores: readonly number[]): number | null {
  checkLengths('rocAuc', labels, scores);
  const pairs = labels
    .map((y, i) => ({ positive: binaryLabel('rocAuc', y) === 1, score: finiteAt('rocAuc', scores, i) }))
    .sort((a, b) => a.score - b.score);
  let positives = 0;
  let positiveRankSum = 0;
  for (let start = 0; start < pairs.length; ) {
    let end = start;
    let tiedPositives = 0;
    for (; end < pairs.length && pairs[end]?.score === pairs[start]?.score; end++) {
      if (pairs[end]?.positive) tiedPositives++;
    }
    // the tied group holds 1-based ranks start+1 … end; each member gets their mean
    positives += tiedPositives;
    positiveRankSum += (tiedPositives * (start + 1 + end)) / 2;
    start = end;
  }
  const negatives = labels.length - positives;
  if (positives === 0 || negatives === 0) return null;
  return (positiveRankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** Index of the equal-width calibration bin for a probability; 1.0 falls in the last bin. */
function calibrationBin(p: number, bins: number): number {
  return Math.min(bins - 1, Math.max(0, Math.floor(p * bins)));
}

/**
 * Expected calibration error of binary probabilities P(y = 1) over 10
 * equal-width bins [0, .1), …, [.9, 1]: Σ_b (n_b / n) · |mean(y in b) − mean(p in b)|.
 * Probabilities outside [0, 1] are clamped into the first/last bin. Returns
 * null for empty input.
 */
export function expectedCalibrationError(labels: readonly number[], probs: readonly number[]): number | null {
  checkLengths('expectedCalibrationError', labels, probs);
  if (labels.length === 0) return null;
  const calibration = emptyCalibration();
  labels.forEach((y, i) => {
    addCalibration(calibration, finiteAt('expectedCalibrationError', probs, i), binaryLabel('expectedCalibrationError', y));
  });
  return calibrationError(calibration);
}

/** Brier score for binary labels: mean((p − y)²). Returns null for empty input. */
export function brier(labels: readonly number[], probs: readonly number[]): number | null {
  checkLengths('brier', labels, probs);
  if (labels.length === 0) return null;
  let sum = 0;
  labels.forEach((y, i) => {
    sum += (finiteAt('brier', probs, i) - binaryLabel('brier', y)) ** 2;
  });
  return sum / labels.length;
}

/** Mean absolute error, mean(|actual − predicted|). Returns null for empty input. */
export function mae(actual: readonly number[], predicted: readonly number[]): number | null {
  checkLengths('mae', actual, predicted);
  if (actual.length === 0) return null;
  let sum = 0;
  actual.forEach((_, i) => {
    sum += Math.abs(finiteAt('mae', actual, i) - finiteAt('mae', predicted, i));
  });
  return sum / actual.length;
}

/** Root mean squared error, √mean((actual − predicted)²). Returns null for empty input. */
export function rmse(actual: readonly number[], predicted: readonly number[]): number | null {
  checkLengths('rmse', actual, predicted);
  if (actual.length === 0) return null;
  let sum = 0;
  actual.forEach((_, i) => {
    sum += (finiteAt('rmse', actual, i) - finiteAt('rmse', predicted, i)) ** 2;
  });
  return Math.sqrt(sum / actual.length);
}

/** Per-bin sums behind the calibration error: example count, Σ confidence, Σ hits. */
export interface Calibration {
  count: number[];
  confidence: number[];
  hits: number[];
}

function emptyCalibration(): Calibration {
  return {
    count: new Array<number>(CALIBRATION_BINS).fill(0),
    confidence: new Array<number>(CALIBRATION_BINS).fill(0),
    hits: new Array<number>(CALIBRATION_BINS).fill(0),
  };
}

function addCalibration(c: Calibration, confidence: number, hit: number): void {
  const b = calibrationBin(confidence, CALIBRATION_BINS);
  c.count[b] = (c.count[b] ?? 0) + 1;
  c.confidence[b] = (c.confidence[b] ?? 0) + confidence;
  c.hits[b] = (c.hits[b] ?? 0) + hit;
}

function calibrationError(c: Calibration): number | null {
  const total = c.count.reduce((s, n) => s + n, 0);
  if (total === 0) return null;
  let ece = 0;
  c.count.forEach((n, b) => {
    if (n > 0) ece += Math.abs((c.hits[b] ?? 0) - (c.confidence[b] ?? 0)) / total;
  });
  return ece;
}

/** The kind of model a `QualityWindow` evaluates. */
export type Task = 'binary' | 'multiclass' | 'regression';

/**
 * One prediction joined with its ground truth.
 * - binary: `label` is the truth (positive iff `String(label) === positiveLabel`),
 *   `predicted` the predicted class (required), `score` = P(positive) (optional;
 *   log loss, AUC, ECE and Brier only count records that have it).
 * - multiclass: `label`, `predicted` (required) and optionally `probabilities`
 *   keyed by `String(class)`.
 * - regression: `label` is the numeric truth and `value` the predicted number (both required).
 */
export interface LabeledPrediction {
  label: Label;
  predicted?: Label;
  score?: number;
  probabilities?: Readonly<Record<string, number>>;
  value?: number;
}

/**
 * Metrics of a window. Every field is present; a field is null when it does
 * not apply to the task or no record carried what it needs.
 * - accuracy: classification tasks.
 * - logLoss, ece, brier: binary (from `score`) and multiclass (from
 *   `probabilities`; ECE over top-label confidence, Brier summed over classes).
 * - rocAuc: binary only, from `score` binned into `aucBins` equal-width bins on
 *   [0, 1] (exact for scores on that grid; otherwise within one bin width).
 * - mae, rmse, meanError (mean of predicted − actual): regression.
 */
export interface QualitySummary {
  task: Task;
  count: number;
  accuracy: number | null;
  logLoss: number | null;
  rocAuc: number | null;
  ece: number | null;
  brier: number | null;
  mae: number | null;
  rmse: number | null;
  meanError: number | null;
}

/** Options of a `QualityWindow`. */
export interface QualityWindowOptions {
  /** Binary only: the label value of the positive class (compared as a string). Default '1'. */
  positiveLabel?: Label;
  /** Binary only: number of score bins for the streaming AUC. Default 1000. */
  aucBins?: number;
}

/** The complete, JSON-serialisable state of a `QualityWindow`. */
export interface QualityWindowState {
  kind: 'quality-window';
  task: Task;
  positiveLabel: string;
  aucBins: number;
  count: number;
  correct: number;
  probabilisticCount: number;
  logLossSum: number;
  brierSum: number;
  calibration: Calibration;
  aucPositive: number[];
  aucNegative: number[];
  errorSum: number;
  absErrorSum: number;
  squaredErrorSum: number;
}

/**
 * Accumulates labelled predictions of one task and summarises their quality.
 * Memory is constant (per-bin counts and running sums; no per-record storage).
 * Windowing is the caller's: use one instance per tumbling window, or keep
 * one per pane and `merge` panes for a sliding window. `toJSON()` /
 * `QualityWindow.fromJSON()` round-trip the exact state.
 */
export class QualityWindow {
  #s: QualityWindowState;

  constructor(task: Task, options: QualityWindowOptions = {}) {
    const aucBins = options.aucBins ?? 1000;
    if (!Number.isInteger(aucBins) || aucBins < 1) {
      throw new RangeError(`QualityWindow: aucBins must be a positive integer, got ${aucBins}`);
    }
    const binary = task === 'binary';
    this.#s = {
      kind: 'quality-window',
      task,
      positiveLabel: String(options.positiveLabel ?? 1),
      aucBins,
      count: 0,
      correct: 0,
      probabilisticCount: 0,
      logLossSum: 0,
      brierSum: 0,
      calibration: emptyCalibration(),
      aucPositive: new Array<number>(binary ? aucBins : 0).fill(0),
      aucNegative: new Array<number>(binary ? aucBins : 0).fill(0),
      errorSum: 0,
      absErrorSum: 0,
      squaredErrorSum: 0,
    };
  }

  /** Restores a window from `toJSON()` output (deep-copied). Throws RangeError on a foreign state. */
  static fromJSON(state: QualityWindowState): QualityWindow {
    if (state.kind !== 'quality-window') throw new RangeError(`QualityWindow.fromJSON: unexpected kind ${String(state.kind)}`);
    const w = new QualityWindow(state.task, { aucBins: state.aucBins });
    w.#s = structuredClone(state);
    return w;
  }

  /** A deep copy of the state; `JSON.stringify` of it is lossless. */
  /** A deep copy of the state; under `JSON.stringify` (which passes a key) the state itself, serialised at once. */
  toJSON(key?: string): QualityWindowState {
    return key === undefined ? structuredClone(this.#s) : this.#s;
  }

  get task(): Task {
    return this.#s.task;
  }

  /** Number of records added (including merged ones). */
  get count(): number {
    return this.#s.count;
  }

  /**
   * Adds one record. Throws RangeError when a field the task requires is
   * missing or of the wrong type (see `LabeledPrediction`), or when a score or
   * probability is not finite.
   */
  add(record: LabeledPrediction): void {
    const s = this.#s;
    if (s.task === 'regression') {
      const { label, value } = record;
      if (typeof label !== 'number' || typeof value !== 'number' || !Number.isFinite(label) || !Number.isFinite(value)) {
        throw new RangeError('QualityWindow.add: regression needs finite numeric label and value');
      }
      const error = value - label;
      s.errorSum += error;
      s.absErrorSum += Math.abs(error);
      s.squaredErrorSum += error * error;
      s.count++;
      return;
    }
    if (record.predicted === undefined) throw new RangeError('QualityWindow.add: classification needs predicted');
    const truth = String(record.label);
    if (truth === String(record.predicted)) s.correct++;
    s.count++;
    if (s.task === 'binary') {
      if (record.score !== undefined) this.#addBinaryScore(truth === s.positiveLabel ? 1 : 0, record.score);
    } else if (record.probabilities !== undefined) {
      this.#addProbabilities(truth, record.probabilities);
    }
  }

  #addBinaryScore(y: 0 | 1, score: number): void {
    if (!Number.isFinite(score)) throw new RangeError(`QualityWindow.add: score must be finite, got ${score}`);
    const s = this.#s;
    const p = clipProb(score);
    s.probabilisticCount++;
    s.logLossSum -= y === 1 ? Math.log(p) : Math.log(1 - p);
    s.brierSum += (score - y) ** 2;
    addCalibration(s.calibration, score, y);
    const bins = y === 1 ? s.aucPositive : s.aucNegative;
    const b = calibrationBin(score, s.aucBins);
    bins[b] = (bins[b] ?? 0) + 1;
  }

  #addProbabilities(truth: string, probabilities: Readonly<Record<string, number>>): void {
    const s = this.#s;
    let top: string | undefined;
    let topP = -Infinity;
    let sumSquares = 0;
    for (const [cls, p] of Object.entries(probabilities)) {
      if (!Number.isFinite(p)) throw new RangeError(`QualityWindow.add: probability of ${cls} must be finite, got ${p}`);
      sumSquares += p * p;
      if (p > topP) {
        topP = p;
        top = cls;
      }
    }
    if (top === undefined) return;
    const pTrue = probabilities[truth] ?? 0;
    s.probabilisticCount++;
    s.logLossSum -= Math.log(clipProb(pTrue));
    s.brierSum += sumSquares - 2 * pTrue + 1;
    addCalibration(s.calibration, topP, top === truth ? 1 : 0);
  }

  /**
   * Adds another window's records into this one (in place; returns this).
   * Throws RangeError unless both have the same task, positive label and AUC bins.
   */
  merge(other: QualityWindow): this {
    const a = this.#s;
    const b = other.#s;
    if (a.task !== b.task || a.positiveLabel !== b.positiveLabel || a.aucBins !== b.aucBins) {
      throw new RangeError('QualityWindow.merge: windows differ in task, positiveLabel or aucBins');
    }
    const addInto = (x: number[], y: readonly number[]): void => {
      y.forEach((v, i) => {
        x[i] = (x[i] ?? 0) + v;
      });
    };
    a.count += b.count;
    a.correct += b.correct;
    a.probabilisticCount += b.probabilisticCount;
    a.logLossSum += b.logLossSum;
    a.brierSum += b.brierSum;
    addInto(a.calibration.count, b.calibration.count);
    addInto(a.calibration.confidence, b.calibration.confidence);
    addInto(a.calibration.hits, b.calibration.hits);
    addInto(a.aucPositive, b.aucPositive);
    addInto(a.aucNegative, b.aucNegative);
    a.errorSum += b.errorSum;
    a.absErrorSum += b.absErrorSum;
    a.squaredErrorSum += b.squaredErrorSum;
    return this;
  }

  /** Empties the window, keeping task and options. */
  reset(): void {
    this.#s = new QualityWindow(this.#s.task, { positiveLabel: this.#s.positiveLabel, aucBins: this.#s.aucBins }).#s;
  }

  /** The metrics of everything added so far (see `QualitySummary` for which apply). */
  summary(): QualitySummary {
    const s = this.#s;
    const regression = s.task === 'regression';
    const mean = (sum: number, n: number): number | null => (n > 0 ? sum / n : null);
    const squaredMean = mean(s.squaredErrorSum, s.count);
    return {
      task: s.task,
      count: s.count,
      accuracy: regression ? null : mean(s.correct, s.count),
      logLoss: mean(s.logLossSum, s.probabilisticCount),
      rocAuc: s.task === 'binary' ? this.#binnedAuc() : null,
      ece: calibrationError(s.calibration),
      brier: mean(s.brierSum, s.probabilisticCount),
      mae: regression ? mean(s.absErrorSum, s.count) : null,
      rmse: regression && squaredMean !== null ? Math.sqrt(squaredMean) : null,
      meanError: regression ? mean(s.errorSum, s.count) : null,
    };
  }

  /** AUC from per-bin class counts; scores sharing a bin count as ties. */
  #binnedAuc(): number | null {
    const { aucPositive, aucNegative } = this.#s;
    let negativesBelow = 0;
    let wins = 0;
    let positives = 0;
    aucPositive.forEach((pos, b) => {
      const neg = aucNegative[b] ?? 0;
      wins += pos * (negativesBelow + neg / 2);
      positives += pos;
      negativesBelow += neg;
    });
    if (positives === 0 || negativesBelow === 0) return null;
    return wins / (positives * negativesBelow);
  }
}
