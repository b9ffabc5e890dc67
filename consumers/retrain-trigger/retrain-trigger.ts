/**
 * retrain-trigger's pure core: the spec's retrain policy over monitor
 * reports, and the guard that rolls back a fresh champion doing worse live
 * than the model it replaced.
 *
 * Retrain policy (spec.retrain), on full-window QualityReports of the serving
 * champion: a detector alarm (`onDetectorAlarm`), the metric below `minMetric`,
 * the metric more than `maxRelativeDrop` below the champion's first live
 * window, `everyLabels` labeled predictions since the last retrain, or a
 * drifted DriftReport (`onDrift`). A trigger fires only once `cooldownLabels`
 * and `minFreshLabels` labeled predictions have arrived since the last
 * request; a trigger during the cooldown is remembered and fires when it ends.
 * Each decision yields one RetrainRequest whose id is derived from the report
 * that caused it, so a replay re-emits the same request (and the model builder
 * builds each id once).
 *
 * Rollback guard: after a promotion the old champion keeps scoring as shadow;
 * when the new champion's window metric is worse than the shadow's on the same
 * window by more than `promotion.rollbackMargin`, the previous champion is
 * restored (compare-and-set) and a ROLLBACK ModelEvent goes to control.models.
 *
 * As stateful logic (`triggerLogic`), the decisions are saved with the
 * state before the registry changes, so a restart mid-decision starts no
 * second retrain and loses no rollback.
 */
import { rollbackEvent } from '../../models/lifecycle.js';
import type { ServingState } from '../../models/registry.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { DriftReport, QualityReport, RetrainRequest } from '../../schemas/types.js';
import type { OutputRecord } from '../../streams/runtime.js';
import { estimateReportKind } from '../drift-monitor/estimate-core.js';
import type { StatefulLogic } from '../../streams/state.js';

export type Report = QualityReport | DriftReport;

export interface TriggerState {
  /** Full-window labeled predictions of the champion since the last retrain request. */
  labelsSinceRetrain: number;
  /** Reason of a trigger that fired during the cooldown, still to act on. */
  pending: { reason: string; detail: string } | null;
  requests: number;
  /** First full-window metric of each champion version: the reference for a relative drop. */
  reference: Record<string, number>;
  /** Latest window metric per `${version}/${variant}/${windowIndex}`, for the rollback guard. */
  windows: Record<string, number>;
  /** Champion versions already judged by the rollback guard. */
  judged: number[];
  rollbacks: number;
}

export const initialTriggerState = (): TriggerState => ({ labelsSinceRetrain: 0, pending: null, requests: 0, reference: {}, windows: {}, judged: [], rollbacks: 0 });

const LOWER_IS_BETTER = new Set(['log_loss', 'mae', 'rmse']);

/** The report metric the spec's promotion metric refers to. */
export function metricOf(spec: PipelineSpec, r: QualityReport): number | null {
  const v = r.metrics[spec.promotion.metric];
  return v === undefined || !Number.isFinite(v) ? null : v;
}

/** How much worse `a` is than `b` under the metric's direction (positive = worse). */
function worseBy(metric: string, a: number, b: number): number {
  return LOWER_IS_BETTER.has(metric) ? a - b : b - a;
}

function isQuality(r: Report): r is QualityReport {
  return 'metrics' in r;
}

function windowIndex(reportId: string): string {
  return /\/w(\d+)(?:$|\/)/.exec(reportId)?.[1] ?? '?';
}

export interface Decision {
  state: TriggerState;
  request: RetrainRequest | null;
  /** Champion version to roll back from, with the reason. */
  rollback: { from: number; reason: string } | null;
}

/** Pure: the policy applied to one report, given which versions serve. */
export function decide(spec: PipelineSpec, s0: TriggerState, report: Report, serving: { champion: number | null; shadow: number | null }): Decision {
  const s: TriggerState = structuredClone(s0);
  let trigger: { reason: string; detail: string } | null = null;
  let rollback: Decision['rollback'] = null;
  const r = spec.retrain;
  const metricName = spec.promotion.metric;

  const estimate = isQuality(report) ? estimateReportKind(report.report_id) : null;
  if (estimate !== null) {
    // An estimate before labels (drift monitor, monitoring.estimate): never a realised window; with
    // retrain.onEstimate, the champion's estimate band is held to minMetric / maxRelativeDrop.
    const q = report as QualityReport;
    if (estimate === 'estimate' && r.onEstimate && q.variant === 'champion' && q.model_version === serving.champion) trigger = estimateTrigger(spec, s, q);
  } else if (isQuality(report)) {
    const m = metricOf(spec, report);
    const full = report.alarm === null;
    const key = `${report.model_version}/${report.variant}/${windowIndex(report.report_id)}`;
    if (full && m !== null) s.windows[key] = m;
    if (report.variant === 'champion' && report.model_version === serving.champion) {
      if (report.alarm !== null && r.onDetectorAlarm) trigger = { reason: 'detector_alarm', detail: report.alarm };
      if (full) {
        s.labelsSinceRetrain += Number(report.count);
        const ref = s.reference[String(report.model_version)];
        if (m !== null && ref === undefined) s.reference[String(report.model_version)] = m;
        if (m !== null && r.minMetric !== undefined && worseBy(metricName, m, r.minMetric) > 0) trigger ??= { reason: 'quality_below_threshold', detail: `${metricName} ${m.toFixed(4)} vs threshold ${r.minMetric}` };
        if (m !== null && ref !== undefined && r.maxRelativeDrop !== undefined && worseBy(metricName, m, ref) > Math.abs(ref) * r.maxRelativeDrop) {
          trigger ??= { reason: 'quality_drop', detail: `${metricName} ${m.toFixed(4)} vs ${ref.toFixed(4)} in the champion's first window` };
        }
        if (r.everyLabels !== null && s.labelsSinceRetrain >= r.everyLabels) trigger ??= { reason: 'schedule', detail: `${s.labelsSinceRetrain} labeled predictions since the last retrain` };
      }
    }
    // Rollback guard: the champion against the old champion shadowing it, window by window.
    const champ = serving.champion;
    if (champ !== null && serving.shadow !== null && !s.judged.includes(champ) && full && (report.model_version === champ || report.model_version === serving.shadow)) {
      const w = windowIndex(report.report_id);
      const mine = s.windows[`${champ}/champion/${w}`];
      const theirs = s.windows[`${serving.shadow}/shadow/${w}`];
      if (mine !== undefined && theirs !== undefined) {
        s.judged.push(champ);
        const gap = worseBy(metricName, mine, theirs);
        if (gap > spec.promotion.rollbackMargin) {
          rollback = { from: champ, reason: `live ${metricName} ${mine.toFixed(4)} is worse than the previous champion's ${theirs.toFixed(4)} on the same window by ${gap.toFixed(4)} (margin ${spec.promotion.rollbackMargin})` };
        }
      }
    }
  } else if (r.onDrift && report.drifted && report.model_version === serving.champion) {
    trigger = { reason: 'drift', detail: report.features.filter((f) => f.drifted).map((f) => `${f.feature} ${f.test}=${f.statistic.toFixed(3)}`).join(', ') || 'prediction drift' };
  }

  trigger ??= s.pending;
  let request: RetrainRequest | null = null;
  if (trigger) {
    const enough = s.labelsSinceRetrain >= Math.max(r.cooldownLabels, r.minFreshLabels);
    if (enough) {
      s.requests++;
      s.labelsSinceRetrain = 0;
      s.pending = null;
      request = {
        request_id: `${spec.name}/${spec.model.name}/retrain/${report.report_id}`,
        pipeline: spec.name,
        reason: trigger.reason,
        detail: trigger.detail,
        champion_version: serving.champion,
        window_start: 0,
        window_end: report.window_end,
        requested_at: report.created_at,
      };
    } else {
      s.pending = trigger;
    }
  }
  if (rollback) s.rollbacks++;
  return { state: s, request, rollback };
}

/**
 * retrain.onEstimate: whether an estimate report of the champion calls for a
 * retrain. Conservative, as stats/cbpe.ts `estimateBelowTarget`: fires only
 * when the band's upper edge (`estimated_<metric>_upper`) is below the target,
 * and never without a calibration check or on one that was flagged.
 * Accuracy and AUC only (the metrics CBPE estimates).
 */
export function estimateTrigger(spec: PipelineSpec, s: TriggerState, report: QualityReport): { reason: string; detail: string } | null {
  const metric = spec.promotion.metric;
  const name = metric === 'accuracy' ? 'estimated_accuracy' : metric === 'auc' ? 'estimated_auc' : null;
  if (name === null) return null;
  const value = report.metrics[name];
  const upper = report.metrics[`${name}_upper`];
  if (value === undefined || upper === undefined || report.metrics.calibration_flagged !== 0) return null;
  const r = spec.retrain;
  if (r.minMetric !== undefined && upper < r.minMetric) return { reason: 'estimated_quality_below_threshold', detail: `${name} ${value.toFixed(4)} (upper ${upper.toFixed(4)}) vs threshold ${r.minMetric}` };
  const ref = s.reference[String(report.model_version)];
  if (ref !== undefined && r.maxRelativeDrop !== undefined && upper < ref - Math.abs(ref) * r.maxRelativeDrop) {
    return { reason: 'estimated_quality_drop', detail: `${name} ${value.toFixed(4)} (upper ${upper.toFixed(4)}) vs ${ref.toFixed(4)} in the champion's first window` };
  }
  return null;
}

/** A rollback decided by the guard, carried out after the state is saved. */
export interface RollbackEffect {
  from: number;
  reason: string;
  cause: string;
  at: number;
}

/**
 * The trigger as stateful logic: one state per pipeline model; `prepare`
 * reads which versions serve (a snapshot per chunk, updated by the chunk's own
 * rollbacks); outputs are RetrainRequests and ROLLBACK events.
 */
export function triggerLogic(spec: PipelineSpec, serving: () => Promise<ServingState>, onDecision?: (d: Decision) => void): StatefulLogic<'QualityReport' | 'DriftReport', TriggerState, ServingState, RollbackEffect> {
  const scope = `${spec.name}/${spec.model.name}`;
  return {
    keyOf: (r) => (r.value.pipeline === spec.name && r.value.model_name === spec.model.name ? scope : null),
    initial: initialTriggerState,
    prepare: () => serving(),
    apply(state, r, now) {
      const report = r.value;
      const d = decide(spec, state, report, now);
      onDecision?.(d);
      const outputs: OutputRecord[] = [];
      const effects: RollbackEffect[] = [];
      if (d.request) outputs.push({ topic: 'control.retrain', record: 'RetrainRequest', key: spec.name, value: d.request });
      if (d.rollback && now.previous !== null && now.champion === d.rollback.from) {
        const to = now.previous;
        outputs.push({
          topic: 'control.models',
          record: 'ModelEvent',
          key: scope,
          value: rollbackEvent({ pipeline: spec.name, modelName: spec.model.name, actor: 'retrain-trigger', reason: d.rollback.reason, cause: report.report_id, at: report.created_at, from: d.rollback.from, to }),
        });
        effects.push({ from: d.rollback.from, reason: d.rollback.reason, cause: report.report_id, at: report.created_at });
        // Later reports of this chunk see the rollback.
        Object.assign(now, { champion: to, previous: null, shadow: null });
      }
      return { state: d.state, outputs, effects };
    },
  };
}
