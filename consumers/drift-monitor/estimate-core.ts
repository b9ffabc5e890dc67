/**
 * The drift monitor's quality estimate before labels (pure): streaming CBPE
 * (stats/cbpe.ts) over the scored predictions of each (model version,
 * variant), beside the realised accuracy once the labels are joined.
 *
 * - Every scored prediction (`predictions.by-model`, co-partitioned with
 *   `predictions.labeled`) feeds the version's estimator; each tumbling
 *   window of `windowSize` predictions yields at once an estimate report
 *   `<base>/e<index>` (QualityReport; metrics `estimated_accuracy` with its
 *   band `_lower`/`_upper`, `uncalibrated_estimated_accuracy`,
 *   `estimated_auc`…, and the calibration check `calibration_ece`,
 *   `calibration_flagged` once a calibrator was fitted). Nothing in it is
 *   named like a realised metric, so readers of realised windows skip it.
 * - Every labeled prediction refits the version's calibrator now and then
 *   (its newest labeled window, out of sample for the version) and is
 *   counted in the estimate window whose event-time range holds its
 *   prediction. When all of a window's predictions are labeled, or a label
 *   arrives for a prediction more than the join horizon after the window's
 *   end (its missing labels can no longer come), a comparison report
 *   `<base>/e<index>/realised` gives `estimated_accuracy`,
 *   `realised_accuracy`, `estimate_error` (estimated − realised),
 *   `estimate_within_band` (0/1) and the calibration check.
 *
 * Estimate windows are counted in scored predictions, the monitor's quality
 * windows in labeled ones, so `e<i>` and `w<i>` are different windows: the
 * comparison is made on the estimate window's own predictions.
 *
 * State kept small (it is serialised with the monitor's per chunk): AUC on
 * 100 score bins, probabilities rounded to 1e-4 (the calibrator's reference
 * then costs ~3.5 KB per version at 250 rows), at most 4 versions and 4 closed windows per
 * slot awaiting their labels.
 */
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { LabeledPrediction, Prediction, QualityReport } from '../../schemas/types.js';
import { cbpeConfig, cbpeSupport, CbpeMonitor, estimateMetrics, type CbpeConfig, type CbpeMonitorState, type CbpeWindowReport } from '../../stats/index.js';

/** The estimate's settings, or why there is none. */
export type EstimateSetting = { config: CbpeConfig; horizonMs: number } | { config: null; reason: string };

/** The monitor's estimate settings for a spec: on for classification with declared classes unless `monitoring.estimate` is false. */
export function estimateSetting(spec: PipelineSpec): EstimateSetting {
  if (spec.monitoring.estimate === false) return { config: null, reason: 'monitoring.estimate is false' };
  const support = cbpeSupport(spec.task);
  if (!support.supported) return { config: null, reason: support.reason };
  if (spec.label.classes.length < 2) return { config: null, reason: 'label.classes is empty (learned at training): the estimator needs the classes in order' };
  return {
    config: cbpeConfig({ classes: spec.label.classes, windowSize: spec.monitoring.windowSize, aucBins: 100, maxVersions: 4, pendingWindows: 4 }),
    horizonMs: spec.label.horizonMs,
  };
}

/** Labels counted for one estimate window. */
interface Realised {
  labeled: number;
  correct: number;
}

/** A closed estimate window waiting for its labels. */
interface PendingWindow extends Realised {
  windowIndex: number;
  start: number;
  end: number;
  count: number;
}

export interface EstimateStateJSON {
  cbpe: CbpeMonitorState;
  /** Per slot `<version>/<variant>`: labels of the open window (start = its first prediction's event time). */
  open: Record<string, Realised & { start: number | null }>;
  pending: Record<string, PendingWindow[]>;
}

const round4 = (x: number): number => Math.round(x * 1e4) / 1e4;

function roundedProbabilities(p: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(p)) out[k] = round4(v);
  return out;
}

const key = (version: number, variant: string): string => `${version}/${variant}`;

export class EstimateState {
  readonly config: CbpeConfig;
  readonly horizonMs: number;
  readonly cbpe: CbpeMonitor;
  readonly #open = new Map<string, Realised & { start: number | null }>();
  readonly #pending = new Map<string, PendingWindow[]>();

  private constructor(config: CbpeConfig, horizonMs: number, cbpe: CbpeMonitor) {
    this.config = config;
    this.horizonMs = horizonMs;
    this.cbpe = cbpe;
  }

  static create(config: CbpeConfig, horizonMs: number): EstimateState {
    return new EstimateState(config, horizonMs, CbpeMonitor.create(config));
  }

  static fromJSON(json: EstimateStateJSON, config: CbpeConfig, horizonMs: number): EstimateState {
    const s = new EstimateState(config, horizonMs, CbpeMonitor.fromJSON(json.cbpe, config));
    for (const [k, v] of Object.entries(json.open)) s.#open.set(k, { ...v });
    for (const [k, v] of Object.entries(json.pending)) s.#pending.set(k, v.map((w) => ({ ...w })));
    return s;
  }

  toJSON(key?: string): EstimateStateJSON {
    return {
      cbpe: this.cbpe.toJSON(key),
      open: Object.fromEntries([...this.#open].map(([k, v]) => [k, { ...v }])),
      pending: Object.fromEntries([...this.#pending].map(([k, v]) => [k, v.map((w) => ({ ...w }))])),
    };
  }

  /** Closed windows of a slot still waiting for labels (for tests and status). */
  pendingWindows(version: number, variant: string): number {
    return this.#pending.get(key(version, variant))?.length ?? 0;
  }

  /** Drops what is held for slots of versions CBPE no longer keeps. */
  #prune(): void {
    const live = new Set(this.cbpe.slotKeys);
    for (const k of [...this.#open.keys()]) if (!live.has(k)) this.#open.delete(k);
    for (const k of [...this.#pending.keys()]) if (!live.has(k)) this.#pending.delete(k);
  }

  /** One scored prediction; the estimate report when it closes its window. */
  addPrediction(pipeline: string, model: string, p: Prediction, base: string): QualityReport | null {
    const k = key(p.model_version, p.variant);
    const open = this.#open.get(k) ?? { labeled: 0, correct: 0, start: null };
    open.start = Math.min(open.start ?? p.event_time, p.event_time);
    this.#open.set(k, open);
    const report = this.cbpe.addPrediction({ modelVersion: p.model_version, variant: p.variant, eventTime: p.event_time, probabilities: roundedProbabilities(p.probabilities), predicted: p.label ?? '' });
    this.#prune();
    if (!report) return null;
    const pending = this.#pending.get(k) ?? [];
    pending.push({ windowIndex: report.windowIndex, start: report.windowStart, end: report.windowEnd, count: report.estimate.count, labeled: open.labeled, correct: open.correct });
    while (pending.length > this.config.pendingWindows) pending.shift();
    this.#pending.set(k, pending);
    this.#open.set(k, { labeled: 0, correct: 0, start: null });
    return estimateReport(pipeline, model, base, report, p.event_time);
  }

  /** One labeled prediction: calibration refit, realised counts; comparison reports of windows now complete. */
  addLabeled(pipeline: string, model: string, lp: LabeledPrediction, correct: boolean, base: string): QualityReport[] {
    const p = lp.prediction;
    this.cbpe.addLabeled({ modelVersion: p.model_version, probabilities: roundedProbabilities(p.probabilities), label: String(lp.label) });
    const k = key(p.model_version, p.variant);
    const pending = this.#pending.get(k) ?? [];
    const t = p.event_time;
    const into = pending.find((w) => t >= w.start && t <= w.end) ?? (this.#open.get(k)?.start != null && t >= this.#open.get(k)!.start! ? this.#open.get(k)! : null);
    if (into) {
      into.labeled++;
      if (correct) into.correct++;
    }
    const reports: QualityReport[] = [];
    const kept: PendingWindow[] = [];
    for (const w of pending) {
      if (w.labeled >= w.count || t > w.end + this.horizonMs) reports.push(...this.#compare(pipeline, model, base, p.model_version, p.variant, w, p.event_time));
      else kept.push(w);
    }
    if (pending.length > 0) this.#pending.set(k, kept);
    this.#prune();
    return reports;
  }

  #compare(pipeline: string, model: string, base: string, version: number, variant: string, w: PendingWindow, createdAt: number): QualityReport[] {
    if (w.labeled === 0) return [];
    const realised = w.correct / w.labeled;
    const c = this.cbpe.addRealised(version, variant, w.windowIndex, { accuracy: realised });
    const m = c?.metrics.find((x) => x.metric === 'accuracy');
    if (!c || !m) return [];
    const metrics: Record<string, number> = { estimated_accuracy: m.estimated, realised_accuracy: realised, estimate_error: m.error };
    if (m.withinBand !== null) metrics.estimate_within_band = m.withinBand ? 1 : 0;
    if (c.calibration) {
      if (c.calibration.ece !== null && Number.isFinite(c.calibration.ece)) metrics.calibration_ece = c.calibration.ece;
      metrics.calibration_flagged = c.calibration.flagged ? 1 : 0;
    }
    return [{ report_id: `${base}/e${w.windowIndex}/realised`, pipeline, model_name: model, model_version: version, variant, window_start: w.start, window_end: w.end, count: w.labeled, metrics, alarm: null, created_at: createdAt }];
  }
}

function estimateReport(pipeline: string, model: string, base: string, r: CbpeWindowReport, createdAt: number): QualityReport {
  return {
    report_id: `${base}/e${r.windowIndex}`,
    pipeline,
    model_name: model,
    model_version: r.modelVersion,
    variant: r.variant,
    window_start: r.windowStart,
    window_end: r.windowEnd,
    count: r.estimate.count,
    metrics: estimateMetrics(r.estimate, r.calibration),
    alarm: null,
    created_at: createdAt,
  };
}

/** `estimate` for an estimate report id `…/e<i>`, `comparison` for `…/e<i>/realised`, null for any other report. */
export function estimateReportKind(reportId: string): 'estimate' | 'comparison' | null {
  if (/\/e\d+$/.test(reportId)) return 'estimate';
  if (/\/e\d+\/realised$/.test(reportId)) return 'comparison';
  return null;
}
