/**
 * The drift monitor's pure core: no I/O, no clock. One `MonitorState` per
 * (pipeline, model) holds, per (model version, variant), a "slot":
 * - a tumbling window of `windowSize` labeled predictions (`QualityWindow`),
 *   its index and the min/max prediction event time seen in it;
 * - a sequential detector (ADWIN or Page-Hinkley) on the per-record error:
 *   classification 1 − correct (0/1); regression |error| / scale, where the
 *   scale is `regressionErrorScale` when given, otherwise the running maximum
 *   of |error| seen by the slot (values land in [0, 1], as ADWIN's bound
 *   assumes; an outlier shrinks every later value, which lowers sensitivity
 *   but reads as a falling error, never as an "error rose" alarm);
 * - when the version has a training baseline: a `FeatureDriftAccumulator`
 *   over the served features (`prediction.features`) and a histogram of the
 *   predicted score (classification: 10 bins on [0, 1]; regression: the
 *   baseline's predicted-value deciles) for the prediction PSI.
 *
 *   let state = createMonitorState(monitorConfig(spec));
 *   const { reports } = applyRecord(state, labeledPrediction, (version) => baselines.get(version) ?? null);
 *   const saved = JSON.stringify(state.toJSON());          // checkpoint
 *   state = MonitorState.fromJSON(JSON.parse(saved), config); // resumes exactly
 *
 * Reports (`MonitorReport`, tagged with their Avro record name):
 * - window full (count reaches `windowSize`): a QualityReport
 *   `<pipeline>/<model>@<version>/<variant>/w<index>` and, with a baseline, a
 *   DriftReport with the same id plus `/drift`; then the next window starts
 *   (detector state carries on across windows).
 * - detector fires on a *rise* of the error (a fall is adaptation, not an
 *   alarm): at once a QualityReport of the partial window so far with `alarm`
 *   set, id `…/w<index>/alarm<n>` (n counts alarms within the window, from 1);
 *   the detector is then reset. The window itself goes on filling.
 * - every `progressEvery` labeled predictions that were served (variant
 *   champion or ab, of any version: one per event), a label-progress
 *   QualityReport `<pipeline>/<model>/labels/<n>` (n = served labeled
 *   predictions so far) with `count` = progressEvery, metric `labels_total`
 *   = n, `window_end` the newest served label's prediction event time. The
 *   retrain trigger counts fresh labels by it, whatever version served them:
 *   a version's window fills only with its own labels, so a count of full
 *   windows lost every partial window a promotion cut short, and fired only
 *   at a window's end (it retrained about every 900 Elec2 events where the
 *   spec says 500). Not a quality window: no metric but the count
 *   (`isProgressReport`); kept off the monitor_reports table.
 * `created_at` is the prediction event time of the record that triggered the
 * report, never the wall clock, so a rerun or a restart from a checkpoint
 * yields byte-identical reports.
 */
import { binIndex as baselineBinIndex, scoreBin, SCORE_BINS, type BaselineStats, type PredictionBaseline } from '../../models/baseline.js';
import { MISSING_CATEGORY, OTHER_CATEGORY } from '../../models/feature-spec.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { DriftReport, FeatureDrift, LabeledPrediction, Prediction, QualityReport } from '../../schemas/types.js';
import type { CbpeConfig } from '../../stats/cbpe.js';
import { EstimateState, estimateSetting, type EstimateStateJSON } from './estimate-core.js';
import {
  Adwin,
  FeatureDriftAccumulator,
  PageHinkley,
  psi,
  QualityWindow,
  type AdwinOptions,
  type AdwinState,
  type FeatureBaseline as DriftFeatureBaseline,
  type FeatureDriftResult,
  type FeatureDriftState,
  type LabeledPrediction as QualityInput,
  type PageHinkleyOptions,
  type PageHinkleyState,
  type QualityWindowState,
  type Task,
} from '../../stats/index.js';

/** Everything the core needs to know about the pipeline; compiled once from the spec. */
export interface MonitorConfig {
  pipeline: string;
  modelName: string;
  task: Task;
  /** Labeled predictions per tumbling window (spec.monitoring.windowSize). */
  windowSize: number;
  detector: 'adwin' | 'page-hinkley';
  /** A feature (or the prediction) drifted when its PSI exceeds this. */
  psiThreshold: number;
  /** A feature drifted when its KS / chi-square p-value is below this. */
  pValueThreshold: number;
  /**
   * Binary: the positive class (P(positive) = prediction.score). Default: the
   * spec's `label.classes[1]`, else the model's `classes[1]` from the
   * registry, else the class whose probability equals the score.
   */
  positiveLabel: string | null;
  /** Regression: |error| is divided by this (and capped at 1). Default null: the slot's running max of |error|. */
  regressionErrorScale: number | null;
  /** Detector options (stats defaults when omitted). */
  adwin: AdwinOptions;
  pageHinkley: PageHinkleyOptions;
  /** A feature with fewer non-missing values in a window is never flagged. Default min(100, windowSize). */
  driftMinSamples: number;
  /**
   * A slot (version and variant) with no record among the monitor's last this-many records is
   * retired: its unfinished window is dropped, only its window counter is kept (a later record of
   * it continues the numbering). Keeps the checkpoint to the versions that serve. Default 4 × windowSize.
   */
  retireAfterRecords: number;
  /** The quality estimate before labels (estimate-core.ts); null or absent: none. */
  estimate?: { config: CbpeConfig; horizonMs: number } | null;
  /** A label-progress report every this-many served labeled predictions (see above). Default max(1, round(windowSize / 10)). */
  progressEvery: number;
}

/** The monitor settings of a pipeline spec, with optional overrides. */
export function monitorConfig(spec: PipelineSpec, overrides: Partial<MonitorConfig> = {}): MonitorConfig {
  const m = spec.monitoring;
  const config: MonitorConfig = {
    pipeline: spec.name,
    modelName: spec.model.name,
    task: spec.task,
    windowSize: m.windowSize,
    detector: m.detector,
    psiThreshold: m.psiThreshold,
    pValueThreshold: m.pValueThreshold,
    positiveLabel: spec.task === 'binary' && spec.label.classes.length === 2 ? spec.label.classes[1]! : null,
    regressionErrorScale: null,
    adwin: {},
    pageHinkley: {},
    driftMinSamples: Math.min(100, m.windowSize),
    retireAfterRecords: 4 * m.windowSize,
    progressEvery: Math.max(1, Math.round(m.windowSize / 10)),
    estimate: (() => {
      const e = estimateSetting(spec);
      return e.config ? e : null;
    })(),
    ...overrides,
  };
  if (!Number.isInteger(config.windowSize) || config.windowSize < 1) throw new RangeError(`monitor: windowSize must be a positive integer, got ${config.windowSize}`);
  if (config.regressionErrorScale !== null && !(config.regressionErrorScale > 0)) throw new RangeError('monitor: regressionErrorScale must be > 0');
  if (!Number.isInteger(config.retireAfterRecords) || config.retireAfterRecords < 1) throw new RangeError(`monitor: retireAfterRecords must be a positive integer, got ${config.retireAfterRecords}`);
  if (!Number.isInteger(config.progressEvery) || config.progressEvery < 1) throw new RangeError(`monitor: progressEvery must be a positive integer, got ${config.progressEvery}`);
  return config;
}

/** What the core needs of a model version: its training baseline and its classes (spec order). */
export interface VersionBaseline {
  baseline: BaselineStats;
  classes: string[];
}

/** A version's baseline, or null when the registry does not have the version (quality only, no drift). */
export type BaselineLookup = (version: number) => VersionBaseline | null;

/** A report with its Avro record name, and the variant it covers (a DriftReport has no variant field; its id carries it). */
export type MonitorReport = { record: 'QualityReport'; value: QualityReport; variant: string } | { record: 'DriftReport'; value: DriftReport; variant: string };

/** Thrown by `applyRecord` (before any state changes) for a record the monitor can never use. */
export class InvalidLabeledPredictionError extends RangeError {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'InvalidLabeledPredictionError';
    this.code = code;
  }
}

/** A served feature as the drift accumulator sees it. */
export interface MonitoredFeature {
  name: string;
  kind: 'numeric' | 'categorical';
  /** Categorical: the baseline's known categories (a value outside them counts as `__other__`). */
  categories?: string[];
}

/** Histogram of the predicted score against the baseline's. */
export interface PredictionHistogramState {
  /** Regression: interior cut points (baseline `binIndex` rule); classification: null (10 equal bins of [0, 1]). */
  cuts: number[] | null;
  proportions: number[];
  counts: number[];
}

/** The JSON state of one (version, variant). */
export interface SlotState {
  modelVersion: number;
  variant: string;
  windowIndex: number;
  alarmsInWindow: number;
  alarmsTotal: number;
  windowStart: number | null;
  windowEnd: number | null;
  quality: QualityWindowState;
  detector: AdwinState | PageHinkleyState;
  /** The detector's last RECENT inputs (a ring buffer; `recentNext` is the slot to overwrite next), for alarm messages. */
  recent: number[];
  recentNext: number;
  /** Regression: running max of |error| (the default error scale). */
  errorMax: number;
  features: MonitoredFeature[];
  drift: FeatureDriftState | null;
  prediction: PredictionHistogramState | null;
  /** The monitor's record count when this slot last got a record (absent in older checkpoints: as at restore). */
  lastSeen?: number;
}

/** The JSON state of a monitor: the checkpoint body. */
export interface MonitorStateJSON {
  kind: 'drift-monitor';
  version: 1;
  pipeline: string;
  modelName: string;
  /** Slots by `<version>/<variant>`, in order of first appearance. */
  slots: Record<string, SlotState>;
  /** Records applied so far (absent in older checkpoints). */
  seen?: number;
  /** Retired slots: the window index a later record of them continues from. */
  retired?: Record<string, number>;
  /** The quality estimate's state (with MonitorConfig.estimate). */
  estimate?: EstimateStateJSON;
  /** Served labeled predictions so far, and the event time span of those since the last progress report (absent in older checkpoints: 0). */
  served?: { count: number; start: number | null; end: number | null };
}

/** Alarm messages quote the error over this many latest predictions. */
export const RECENT = 100;

class Slot {
  modelVersion: number;
  variant: string;
  windowIndex = 0;
  alarmsInWindow = 0;
  alarmsTotal = 0;
  windowStart: number | null = null;
  windowEnd: number | null = null;
  quality: QualityWindow;
  detector: Adwin | PageHinkley;
  recent: number[] = [];
  recentNext = 0;
  errorMax = 0;
  features: MonitoredFeature[];
  drift: FeatureDriftAccumulator | null;
  prediction: PredictionHistogramState | null;
  lastSeen: number;

  constructor(s: SlotState, seen = 0) {
    this.lastSeen = s.lastSeen ?? seen;
    this.modelVersion = s.modelVersion;
    this.variant = s.variant;
    this.windowIndex = s.windowIndex;
    this.alarmsInWindow = s.alarmsInWindow;
    this.alarmsTotal = s.alarmsTotal;
    this.windowStart = s.windowStart;
    this.windowEnd = s.windowEnd;
    this.quality = QualityWindow.fromJSON(s.quality);
    this.detector = s.detector.kind === 'adwin' ? Adwin.fromJSON(s.detector) : PageHinkley.fromJSON(s.detector);
    this.recent = [...s.recent];
    this.recentNext = s.recentNext;
    this.errorMax = s.errorMax;
    this.features = structuredClone(s.features);
    this.drift = s.drift ? FeatureDriftAccumulator.fromJSON(s.drift) : null;
    this.prediction = s.prediction ? structuredClone(s.prediction) : null;
  }

  toJSON(key?: string): SlotState {
    const copy = key === undefined ? structuredClone : <T>(x: T): T => x;
    return {
      modelVersion: this.modelVersion,
      variant: this.variant,
      windowIndex: this.windowIndex,
      alarmsInWindow: this.alarmsInWindow,
      alarmsTotal: this.alarmsTotal,
      windowStart: this.windowStart,
      windowEnd: this.windowEnd,
      quality: this.quality.toJSON(key),
      detector: this.detector.toJSON(key),
      recent: [...this.recent],
      recentNext: this.recentNext,
      errorMax: this.errorMax,
      features: copy(this.features),
      drift: this.drift ? this.drift.toJSON(key) : null,
      prediction: this.prediction ? copy(this.prediction) : null,
      lastSeen: this.lastSeen,
    };
  }
}

/**
 * A monitor's live state: statistics objects that update in place, and
 * `toJSON()` / `MonitorState.fromJSON()` for checkpoints (a restored state
 * continues exactly like the original).
 */
export class MonitorState {
  readonly config: MonitorConfig;
  readonly #slots = new Map<string, Slot>();
  #seen = 0;
  readonly #retired = new Map<string, number>();
  /** @internal Served labeled predictions so far; event time span since the last progress report. */
  served: { count: number; start: number | null; end: number | null } = { count: 0, start: null, end: null };
  /** The quality estimate (null without MonitorConfig.estimate). */
  readonly estimate: EstimateState | null;

  private constructor(config: MonitorConfig, estimate?: EstimateStateJSON) {
    this.config = config;
    const e = config.estimate ?? null;
    this.estimate = e ? (estimate ? EstimateState.fromJSON(estimate, e.config, e.horizonMs) : EstimateState.create(e.config, e.horizonMs)) : null;
  }

  static create(config: MonitorConfig): MonitorState {
    return new MonitorState(config);
  }

  /** Restores a state from `toJSON()` output under `config` (which names the same pipeline and model). */
  static fromJSON(json: MonitorStateJSON, config: MonitorConfig): MonitorState {
    if (json.kind !== 'drift-monitor' || json.version !== 1) throw new RangeError(`MonitorState.fromJSON: unexpected state ${String(json.kind)} v${String(json.version)}`);
    if (json.pipeline !== config.pipeline || json.modelName !== config.modelName) {
      throw new RangeError(`MonitorState.fromJSON: state of ${json.pipeline}/${json.modelName} given to a monitor of ${config.pipeline}/${config.modelName}`);
    }
    const state = new MonitorState(config, json.estimate);
    state.#seen = json.seen ?? 0;
    if (json.served) state.served = { ...json.served };
    for (const [key, s] of Object.entries(json.slots)) state.#slots.set(key, new Slot(s, state.#seen));
    for (const [key, index] of Object.entries(json.retired ?? {})) state.#retired.set(key, index);
    return state;
  }

  /**
   * A deep copy of the state. Under `JSON.stringify` (which calls toJSON with a key) the parts are the live
   * state itself, not copies: stringify reads them at once, so a checkpoint of the whole state costs one
   * serialisation, not a deep copy and then a serialisation.
   */
  toJSON(key?: string): MonitorStateJSON {
    const slots: Record<string, SlotState> = {};
    for (const [k, slot] of this.#slots) slots[k] = slot.toJSON(key);
    return { kind: 'drift-monitor', version: 1, pipeline: this.config.pipeline, modelName: this.config.modelName, slots, seen: this.#seen, retired: Object.fromEntries(this.#retired), served: { ...this.served }, ...(this.estimate ? { estimate: this.estimate.toJSON(key) } : {}) };
  }

  /** Slot keys retired so far (see MonitorConfig.retireAfterRecords). */
  get retiredKeys(): string[] {
    return [...this.#retired.keys()];
  }

  /** Slot keys `<version>/<variant>` seen so far. */
  get slotKeys(): string[] {
    return [...this.#slots.keys()];
  }

  /** Records in the current (unfinished) window of a slot; 0 for an unknown slot. */
  windowCount(version: number, variant: string): number {
    return this.#slots.get(slotKey(version, variant))?.quality.count ?? 0;
  }

  /** @internal */
  slot(lp: LabeledPrediction, baselineFor: BaselineLookup): Slot {
    const p = lp.prediction;
    const key = slotKey(p.model_version, p.variant);
    let slot = this.#slots.get(key);
    if (!slot) {
      slot = new Slot(newSlotState(this.config, lp, baselineFor(p.model_version)));
      slot.windowIndex = this.#retired.get(key) ?? 0;
      this.#retired.delete(key);
      this.#slots.set(key, slot);
    }
    this.#seen++;
    slot.lastSeen = this.#seen;
    return slot;
  }

  /** @internal Retires the slots no record reached among the last `retireAfterRecords`. */
  retireIdle(): void {
    for (const [key, slot] of this.#slots) {
      if (this.#seen - slot.lastSeen >= this.config.retireAfterRecords) {
        this.#slots.delete(key);
        this.#retired.set(key, slot.windowIndex);
      }
    }
  }
}

export function createMonitorState(config: MonitorConfig): MonitorState {
  return MonitorState.create(config);
}

function slotKey(version: number, variant: string): string {
  return `${version}/${variant}`;
}

/** The id of a slot's reports: `<pipeline>/<model>@<version>/<variant>`. */
export function reportBase(pipeline: string, model: string, version: number, variant: string): string {
  return `${pipeline}/${model}@${version}/${variant}`;
}

/**
 * Applies one labeled prediction and returns the reports it triggers (in
 * emission order: alarm first, then the window's quality and drift reports).
 * Updates `state` in place and returns it. Throws
 * `InvalidLabeledPredictionError`, leaving the state untouched, for a record
 * of another pipeline or model, or one the task cannot use (see `checkRecord`).
 */
export function applyRecord(state: MonitorState, lp: LabeledPrediction, baselineFor: BaselineLookup): { state: MonitorState; reports: MonitorReport[] } {
  const config = state.config;
  const problem = checkRecord(config, lp);
  if (problem) throw new InvalidLabeledPredictionError(problem.code, problem.message);
  const p = lp.prediction;
  const slot = state.slot(lp, baselineFor);
  const reports: MonitorReport[] = [];

  slot.quality.add(qualityInput(config.task, lp));
  slot.windowStart = Math.min(slot.windowStart ?? p.event_time, p.event_time);
  slot.windowEnd = Math.max(slot.windowEnd ?? p.event_time, p.event_time);
  if (slot.drift) slot.drift.add(driftRow(slot.features, p.features));
  if (slot.prediction) {
    const h = slot.prediction;
    const value = config.task === 'regression' ? (p.value ?? p.score) : p.score;
    const b = h.cuts ? baselineBinIndex(h.cuts, value) : scoreBin(value);
    h.counts[b] = (h.counts[b] ?? 0) + 1;
  }

  const error = errorValue(config, slot, lp);
  if (slot.recent.length < RECENT) slot.recent.push(error);
  else slot.recent[slot.recentNext] = error;
  slot.recentNext = (slot.recentNext + 1) % RECENT;
  const alarm = detect(config, slot, error);
  const base = reportBase(config.pipeline, config.modelName, p.model_version, p.variant);
  if (alarm) {
    slot.alarmsInWindow++;
    slot.alarmsTotal++;
    reports.push({ record: 'QualityReport', value: qualityReport(config, slot, `${base}/w${slot.windowIndex}/alarm${slot.alarmsInWindow}`, alarm, p.event_time), variant: slot.variant });
  }
  if (slot.quality.count >= config.windowSize) {
    reports.push({ record: 'QualityReport', value: qualityReport(config, slot, `${base}/w${slot.windowIndex}`, null, p.event_time), variant: slot.variant });
    if (slot.drift) reports.push({ record: 'DriftReport', value: driftReport(config, slot, `${base}/w${slot.windowIndex}/drift`, p.event_time), variant: slot.variant });
    slot.quality.reset();
    slot.drift?.reset();
    slot.prediction?.counts.fill(0);
    slot.windowIndex++;
    slot.alarmsInWindow = 0;
    slot.windowStart = null;
    slot.windowEnd = null;
  }
  if (state.estimate && config.task !== 'regression') {
    for (const value of state.estimate.addLabeled(config.pipeline, config.modelName, lp, error === 0, base)) reports.push({ record: 'QualityReport', value, variant: p.variant });
  }
  if (p.variant !== 'shadow') {
    const served = state.served;
    served.count++;
    served.start = Math.min(served.start ?? p.event_time, p.event_time);
    served.end = Math.max(served.end ?? p.event_time, p.event_time);
    if (served.count % config.progressEvery === 0) {
      reports.push({ record: 'QualityReport', value: progressReport(config, p, served.count, served.start, served.end), variant: p.variant });
      served.start = null; // the span restarts; `end` stays the newest served label's time
    }
  }
  state.retireIdle();
  return { state, reports };
}

/** Why the estimator cannot use a scored prediction, or null (another pipeline's or model's is skipped, not invalid). */
export function checkPrediction(config: MonitorConfig, p: Prediction): { code: string; message: string } | null {
  if (!Number.isFinite(p.event_time)) return { code: 'NON_FINITE', message: `prediction ${p.prediction_id}: event_time is not finite` };
  if (p.label === null) return { code: 'NO_PREDICTED_LABEL', message: `prediction ${p.prediction_id}: classification prediction without a label` };
  if (!Number.isInteger(p.model_version)) return { code: 'BAD_VERSION', message: `prediction ${p.prediction_id}: model_version is not an integer` };
  for (const [c, v] of Object.entries(p.probabilities)) {
    if (!Number.isFinite(v) || v < 0) return { code: 'NON_FINITE', message: `prediction ${p.prediction_id}: probability of ${c} is not a finite non-negative number` };
  }
  return null;
}

/**
 * Applies one scored prediction (`predictions.by-model`) to the quality
 * estimate: returns the estimate report of the window it closes, if any.
 * No-op without MonitorConfig.estimate. Throws
 * `InvalidLabeledPredictionError` (state untouched) as `checkPrediction` says.
 */
export function applyPrediction(state: MonitorState, p: Prediction): { state: MonitorState; reports: MonitorReport[] } {
  const config = state.config;
  if (!state.estimate || p.pipeline !== config.pipeline || p.model_name !== config.modelName) return { state, reports: [] };
  const problem = checkPrediction(config, p);
  if (problem) throw new InvalidLabeledPredictionError(problem.code, problem.message);
  const base = reportBase(config.pipeline, config.modelName, p.model_version, p.variant);
  const value = state.estimate.addPrediction(config.pipeline, config.modelName, p, base);
  return { state, reports: value ? [{ record: 'QualityReport', value, variant: p.variant }] : [] };
}

/**
 * Why the monitor cannot use a record, or null. Checks: pipeline and model
 * match the monitor; finite event time; classification needs a predicted
 * label and (binary) a finite score, (multiclass) finite probabilities;
 * regression needs a numeric label and a finite predicted value.
 */
export function checkRecord(config: MonitorConfig, lp: LabeledPrediction): { code: string; message: string } | null {
  const p = lp.prediction;
  if (p.pipeline !== config.pipeline || p.model_name !== config.modelName) {
    return { code: 'FOREIGN_MODEL', message: `record of ${p.pipeline}/${p.model_name} given to the monitor of ${config.pipeline}/${config.modelName}` };
  }
  if (!Number.isFinite(p.event_time)) return { code: 'NON_FINITE', message: `prediction ${p.prediction_id}: event_time is not finite` };
  if (config.task === 'regression') {
    const value = p.value ?? p.score;
    if (!Number.isFinite(numericLabel(lp.label))) return { code: 'BAD_LABEL', message: `prediction ${p.prediction_id}: regression label ${String(lp.label)} is not a finite number` };
    if (!Number.isFinite(value)) return { code: 'NON_FINITE', message: `prediction ${p.prediction_id}: predicted value is not finite` };
    return null;
  }
  if (p.label === null) return { code: 'NO_PREDICTED_LABEL', message: `prediction ${p.prediction_id}: classification prediction without a label` };
  if (config.task === 'binary' && !Number.isFinite(p.score)) return { code: 'NON_FINITE', message: `prediction ${p.prediction_id}: score is not finite` };
  for (const [c, v] of Object.entries(p.probabilities)) {
    if (!Number.isFinite(v)) return { code: 'NON_FINITE', message: `prediction ${p.prediction_id}: probability of ${c} is not finite` };
  }
  return null;
}

function numericLabel(label: string | number): number {
  if (typeof label === 'number') return label;
  return label.trim() === '' ? Number.NaN : Number(label);
}

function qualityInput(task: Task, lp: LabeledPrediction): QualityInput {
  const p = lp.prediction;
  if (task === 'regression') return { label: numericLabel(lp.label), value: p.value ?? p.score };
  if (task === 'binary') return { label: String(lp.label), predicted: p.label!, score: p.score };
  return Object.keys(p.probabilities).length > 0 ? { label: String(lp.label), predicted: p.label!, probabilities: p.probabilities } : { label: String(lp.label), predicted: p.label! };
}

/** The detector's input for a record: 0/1 misclassification, or scaled |error| in [0, 1]. */
function errorValue(config: MonitorConfig, slot: Slot, lp: LabeledPrediction): number {
  const p = lp.prediction;
  if (config.task !== 'regression') {
    const correct = lp.correct ?? String(lp.label) === String(p.label);
    return correct ? 0 : 1;
  }
  const error = Math.abs(lp.error ?? (p.value ?? p.score) - numericLabel(lp.label));
  if (!Number.isFinite(error)) return 1;
  if (config.regressionErrorScale !== null) return Math.min(1, error / config.regressionErrorScale);
  slot.errorMax = Math.max(slot.errorMax, error);
  return slot.errorMax > 0 ? error / slot.errorMax : 0;
}

/**
 * Feeds the detector; an alarm message when it detects a rise of the error
 * (then the detector is reset). The message gives the error level before the
 * change (ADWIN: the mean of the part of its window it dropped; Page-Hinkley:
 * the mean since its last reset) and over the latest RECENT predictions.
 */
function detect(config: MonitorConfig, slot: Slot, x: number): string | null {
  const what = config.task === 'regression' ? 'scaled absolute error' : 'error rate';
  const recent = `${fmt(slot.recent.reduce((a, b) => a + b, 0) / slot.recent.length)} over the last ${slot.recent.length} predictions`;
  const d = slot.detector;
  if (d instanceof Adwin) {
    const widthBefore = d.width + 1;
    const totalBefore = d.width * d.estimation + x;
    if (!d.update(x)) return null;
    const kept = d.estimation;
    const dropped = widthBefore - d.width;
    const older = dropped > 0 ? (totalBefore - d.width * kept) / dropped : kept;
    if (!(kept > older)) return null; // the error fell: ADWIN adapts, nothing to alarm about
    const message = `adwin: ${what} rose from ${fmt(older)} to ${recent} (window cut: ${dropped} older predictions at ${fmt(older)}, ${d.width} newer at ${fmt(kept)})`;
    d.reset();
    return message;
  }
  const before = d.mean;
  if (!d.update(x)) return null; // Page-Hinkley resets itself on detection
  return `page-hinkley: ${what} rose from ${fmt(before)} to ${recent}`;
}

function fmt(x: number): string {
  return x.toFixed(2);
}

/** The id of a label-progress report: `<pipeline>/<model>/labels/<n>`. */
export function progressReportId(pipeline: string, model: string, n: number): string {
  return `${pipeline}/${model}/labels/${n}`;
}

/** Whether a report id is a label-progress report's (not a quality window). */
export function isProgressReport(reportId: string): boolean {
  return /\/labels\/\d+$/.test(reportId);
}

function progressReport(config: MonitorConfig, p: Prediction, n: number, start: number, end: number): QualityReport {
  return {
    report_id: progressReportId(config.pipeline, config.modelName, n),
    pipeline: config.pipeline,
    model_name: config.modelName,
    model_version: p.model_version,
    variant: p.variant,
    window_start: start,
    window_end: end,
    count: config.progressEvery,
    metrics: { labels_total: n },
    alarm: null,
    created_at: p.event_time,
  };
}

function qualityReport(config: MonitorConfig, slot: Slot, id: string, alarm: string | null, createdAt: number): QualityReport {
  return {
    report_id: id,
    pipeline: config.pipeline,
    model_name: config.modelName,
    model_version: slot.modelVersion,
    variant: slot.variant,
    window_start: slot.windowStart ?? createdAt,
    window_end: slot.windowEnd ?? createdAt,
    count: slot.quality.count,
    metrics: qualityMetrics(slot.quality),
    alarm,
    created_at: createdAt,
  };
}

/** The report's metrics map: binary accuracy, auc, log_loss, ece; multiclass accuracy, log_loss; regression mae, rmse (undefined ones left out). */
export function qualityMetrics(window: QualityWindow): Record<string, number> {
  const s = window.summary();
  const picked: Array<[string, number | null]> =
    s.task === 'binary'
      ? [['accuracy', s.accuracy], ['auc', s.rocAuc], ['log_loss', s.logLoss], ['ece', s.ece]]
      : s.task === 'multiclass'
        ? [['accuracy', s.accuracy], ['log_loss', s.logLoss]]
        : [['mae', s.mae], ['rmse', s.rmse]];
  const metrics: Record<string, number> = {};
  for (const [k, v] of picked) if (v !== null && Number.isFinite(v)) metrics[k] = v;
  return metrics;
}

function driftReport(config: MonitorConfig, slot: Slot, id: string, createdAt: number): DriftReport {
  const features = slot.drift!.results().map(featureDrift);
  const h = slot.prediction;
  const predictionPsi = h && h.proportions.some((p) => p > 0) ? psi(h.proportions, h.counts) : null;
  const count = slot.quality.count;
  const predictionDrifted = predictionPsi !== null && count >= config.driftMinSamples && predictionPsi > config.psiThreshold;
  return {
    report_id: id,
    pipeline: config.pipeline,
    model_name: config.modelName,
    model_version: slot.modelVersion,
    window_start: slot.windowStart ?? createdAt,
    window_end: slot.windowEnd ?? createdAt,
    count,
    features,
    prediction_psi: predictionPsi,
    drifted: predictionDrifted || features.some((f) => f.drifted),
    created_at: createdAt,
  };
}

function featureDrift(r: FeatureDriftResult): FeatureDrift {
  if (r.ks) return { feature: r.feature, test: 'ks', statistic: r.ks.statistic, p_value: r.ks.pValue, psi: r.psi, drifted: r.drifted };
  if (r.chiSquare) return { feature: r.feature, test: 'chi_square', statistic: r.chiSquare.statistic, p_value: r.chiSquare.pValue, psi: r.psi, drifted: r.drifted };
  return { feature: r.feature, test: 'psi', statistic: r.psi ?? 0, p_value: null, psi: r.psi, drifted: r.drifted };
}

/** Served values as the drift accumulator takes them (the model's own encoding rules: see models/encode.ts). */
function driftRow(features: readonly MonitoredFeature[], served: Readonly<Record<string, null | number | string>>): Record<string, number | string | null> {
  const row: Record<string, number | string | null> = {};
  for (const f of features) {
    const v = served[f.name];
    if (f.kind === 'numeric') {
      const x = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN;
      row[f.name] = Number.isFinite(x) ? x : null;
    } else {
      const c = v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v)) ? null : String(v);
      row[f.name] = c === null ? MISSING_CATEGORY : f.categories!.includes(c) ? c : OTHER_CATEGORY;
    }
  }
  return row;
}

function newSlotState(config: MonitorConfig, lp: LabeledPrediction, version: VersionBaseline | null): SlotState {
  const p = lp.prediction;
  const positiveLabel = config.positiveLabel ?? (version && version.classes.length === 2 ? version.classes[1]! : null) ?? inferPositive(lp);
  const quality = new QualityWindow(config.task, config.task === 'binary' ? { positiveLabel } : {});
  const detector = config.detector === 'adwin' ? new Adwin(config.adwin) : new PageHinkley(config.pageHinkley);
  const monitored = version ? driftBaselines(version.baseline) : null;
  return {
    modelVersion: p.model_version,
    variant: p.variant,
    windowIndex: 0,
    alarmsInWindow: 0,
    alarmsTotal: 0,
    windowStart: null,
    windowEnd: null,
    quality: quality.toJSON(),
    detector: detector.toJSON(),
    recent: [],
    recentNext: 0,
    errorMax: 0,
    features: monitored?.features ?? [],
    drift: monitored
      ? new FeatureDriftAccumulator(monitored.baselines, {
          thresholds: { psi: config.psiThreshold, pValue: config.pValueThreshold },
          minSamples: config.driftMinSamples,
        }).toJSON()
      : null,
    prediction: version ? predictionHistogram(version.baseline.prediction, config.task) : null,
  };
}

/** Binary without a declared class order: the class whose probability is the score (the scorer's definition). */
function inferPositive(lp: LabeledPrediction): string {
  const entries = Object.entries(lp.prediction.probabilities).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const match = entries.filter(([, v]) => v === lp.prediction.score);
  return (match.length === 1 ? match[0]![0] : entries[1]?.[0]) ?? '1';
}

/**
 * The model baseline's features as drift-accumulator baselines. Numeric
 * baselines hold interior cut points with right-closed bins
 * (`bins[i-1] < x <= bins[i]`, models/baseline.ts `binIndex`), while the
 * accumulator's histogram edges are left-closed (`[e_j, e_j+1)`): the edge
 * after cut c is the next double above c, so every value lands in exactly the
 * bin the baseline counted it in (this matters for discrete features, whose
 * values often equal a decile). Features without a usable baseline (no
 * present value at training) are not monitored.
 */
export function driftBaselines(baseline: BaselineStats): { features: MonitoredFeature[]; baselines: Record<string, DriftFeatureBaseline> } {
  const features: MonitoredFeature[] = [];
  const baselines: Record<string, DriftFeatureBaseline> = {};
  for (const [name, b] of Object.entries(baseline.features)) {
    if (b.kind === 'numeric') {
      if (b.count === 0 || b.proportions.length !== b.bins.length + 1 || !b.proportions.some((p) => p > 0)) continue;
      const edges = b.bins.length === 0 ? [0, 1] : [b.bins[0]!, ...b.bins.map(nextUp), nextUp(nextUp(b.bins[b.bins.length - 1]!))];
      if (!edges.every(Number.isFinite)) continue;
      baselines[name] = b.quantiles.length >= 2 ? { type: 'numeric', edges, proportions: [...b.proportions], quantiles: [...b.quantiles] } : { type: 'numeric', edges, proportions: [...b.proportions] };
      features.push({ name, kind: 'numeric' });
    } else {
      if (!Object.values(b.proportions).some((p) => p > 0)) continue;
      baselines[name] = { type: 'categorical', proportions: { ...b.proportions } };
      features.push({ name, kind: 'categorical', categories: Object.keys(b.proportions).filter((c) => c !== OTHER_CATEGORY && c !== MISSING_CATEGORY) });
    }
  }
  return { features, baselines };
}

function predictionHistogram(b: PredictionBaseline, task: Task): PredictionHistogramState | null {
  if (b.count === 0) return null;
  if (b.kind === 'classification') {
    if (task === 'regression' || b.scoreHistogram.length !== SCORE_BINS) return null;
    return { cuts: null, proportions: [...b.scoreHistogram], counts: new Array<number>(SCORE_BINS).fill(0) };
  }
  if (task !== 'regression' || b.quantiles.length !== 101) return null;
  // Deciles of the predicted value as interior cuts; a bin's share is read off the quantile grid (exact without ties, within 1 % with them).
  const q = b.quantiles;
  const cuts = [...new Set([10, 20, 30, 40, 50, 60, 70, 80, 90].map((k) => q[k]!))];
  const cdf = (c: number): number => {
    let k = 0;
    for (let j = 0; j <= 100; j++) if (q[j]! <= c) k = j;
    return k / 100;
  };
  const at = cuts.map(cdf);
  const proportions = [...at.map((f, i) => f - (i === 0 ? 0 : at[i - 1]!)), 1 - at[at.length - 1]!];
  return { cuts, proportions, counts: new Array<number>(proportions.length).fill(0) };
}

/** The smallest double greater than x (x finite). */
export function nextUp(x: number): number {
  if (Number.isNaN(x) || x === Number.POSITIVE_INFINITY) return x;
  if (x === 0) return Number.MIN_VALUE;
  const f = new Float64Array([x]);
  const bits = new BigInt64Array(f.buffer);
  bits[0] = bits[0]! + (x > 0 ? 1n : -1n);
  return f[0]!;
}
