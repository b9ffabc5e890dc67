/**
 * retrain-trigger's pure core: the spec's retrain policy over monitor
 * reports, and the guard that rolls back a fresh champion doing worse live
 * than the model it replaced.
 *
 * Retrain policy (spec.retrain), on full-window QualityReports of the serving
 * champion: a detector alarm (`onDetectorAlarm`), the metric below `minMetric`,
 * the metric more than `maxRelativeDrop` below the champion's first live
 * window, `everyLabels` labeled predictions since the last retrain (served
 * ones, of any version: counted by the monitor's label-progress reports, so
 * a promotion that cuts a window short loses none), or a drifted
 * DriftReport (`onDrift`). A trigger fires only once `cooldownLabels`
 * and `minFreshLabels` labeled predictions have arrived since the last
 * request; a trigger during the cooldown, or during a staged rollout, is
 * remembered and fires when it ends.
 * Each decision yields one RetrainRequest whose id is derived from the report
 * that caused it, so a replay re-emits the same request (and the model builder
 * builds each id once).
 *
 * Rollback guard: after a promotion the old champion keeps scoring as shadow;
 * when the new champion's window metric is worse than the shadow's on the same
 * window by more than `promotion.rollbackMargin`, the previous champion is
 * restored (compare-and-set) and a ROLLBACK ModelEvent goes to control.models.
 *
 * The guard pairs a champion's full window with the shadow's full window that
 * covers at least half of it in event time (window indexes are per monitor
 * slot, and an old champion that shadowed before resumes its old count).
 *
 * Staged rollout (promotion.rollout): the evaluator sets a candidate that
 * needs one as shadow. The trigger then follows it: each of its full windows,
 * as shadow and then as A/B arm, is compared with the champion's full windows
 * over the same event time (their count-weighted mean, once the champion's
 * windows reach the candidate window's end). Worse by more than
 * `rollout.margin` (default `rollbackMargin`) at any stage: rejected (its
 * shadow or arm stops: SHADOW_STOP / AB_STOP). After `shadowWindows` windows
 * not worse: A/B at `abShare` (AB_START, then SHADOW_STOP). After `abWindows`:
 * promoted by compare-and-set (AB_STOP, PROMOTE), the old champion shadowing
 * it, so the rollback guard applies as after any promotion. While a rollout
 * runs its candidate holds the shadow slot; the guard applies only to a
 * shadow older than the champion. Every step, with its numbers, is kept in
 * the state (`rollout.steps`, then `rollouts`) and logged; each candidate
 * window counts once by report id; event ids derive from the deciding report.
 * A stage whose candidate windows do not come (the champion filled two more
 * windows than the stage needs, at the arm's share) is rejected as stalled;
 * a rollout whose champion changed (by hand) is rejected, its stage stopped;
 * one whose candidate no longer holds a stage ends as superseded.
 *
 * As stateful logic (`triggerLogic`), the decisions are saved with the
 * state before the registry changes, so a restart mid-decision starts no
 * second retrain and loses no rollback.
 */
import { abStageEvents, rollbackEvent, rolloutCandidate, rolloutMargin, rolloutNeeded, rolloutPromotionEvents, rolloutRejectionEvent, type Change } from '../../models/lifecycle.js';
import type { ServingState } from '../../models/registry.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { DriftReport, ModelEvent, QualityReport, RetrainRequest } from '../../schemas/types.js';
import type { OutputRecord } from '../../streams/runtime.js';
import { estimateReportKind } from '../drift-monitor/estimate-core.js';
import { isProgressReport } from '../drift-monitor/monitor-core.js';
import type { StatefulLogic } from '../../streams/state.js';

export type Report = QualityReport | DriftReport;

export interface TriggerState {
  /**
   * Labeled predictions served since the last retrain request: counted by the drift monitor's
   * label-progress reports once one arrived (`countsProgress`), else by the serving champion's full windows.
   */
  labelsSinceRetrain: number;
  /** Whether label-progress reports count the labels (absent in states saved before them). */
  countsProgress?: boolean;
  /** Reason of a trigger that fired during the cooldown, still to act on. */
  pending: { reason: string; detail: string } | null;
  requests: number;
  /** First full-window metric of each champion version: the reference for a relative drop. */
  reference: Record<string, number>;
  /** Latest window metric per `${version}/${variant}/${windowIndex}`, for the rollback guard. */
  windows: Record<string, number>;
  /** Event time span `[start, end]` of the windows in `windows`, by the same key (absent in states saved before it). */
  spans: Record<string, [number, number]>;
  /** Champion versions already judged by the rollback guard. */
  judged: number[];
  rollbacks: number;
  /** The staged rollout in progress (promotion.rollout), or null. */
  rollout: Rollout | null;
  /** Finished rollouts, oldest first (the last 20). */
  rollouts: Array<Rollout & { outcome: RolloutOutcome }>;
}

export type RolloutStage = 'shadow' | 'ab';
export type RolloutOutcome = 'promoted' | 'rejected' | 'superseded';

/** A full monitor window: its report, event time span, metric and labeled count. */
export interface RolloutWindow {
  id: string;
  start: number;
  end: number;
  metric: number;
  count: number;
}

/** One judged step of a rollout, with its numbers. */
export interface RolloutStep {
  stage: RolloutStage;
  /** The candidate's window (report id) judged, or what happened (`started`, `superseded`). */
  cause: string;
  /** The candidate's metric on the window and the champion's over the same event time (null for a step without numbers). */
  candidate: number | null;
  champion: number | null;
  passed: boolean;
  detail: string;
  at: number;
}

export interface Rollout {
  version: number;
  /** The champion it is judged against (and promoted over, by compare-and-set). */
  champion: number;
  stage: RolloutStage;
  /** Full windows of the candidate passed at this stage. */
  passed: number;
  /** Candidate windows at this stage waiting for the champion's windows to reach their end. */
  waiting: RolloutWindow[];
  /** The champion's full windows since the rollout started. */
  championWindows: RolloutWindow[];
  /** The champion's full windows since this stage started: a stage that sees too many without its candidate's is stalled. */
  stageChampionWindows: number;
  /** Report ids of candidate windows counted (a report delivered twice counts once). */
  seen: string[];
  steps: RolloutStep[];
}

export const initialTriggerState = (): TriggerState => ({ labelsSinceRetrain: 0, pending: null, requests: 0, reference: {}, windows: {}, spans: {}, judged: [], rollbacks: 0, rollout: null, rollouts: [] });

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

/** A rollout decision: move to A/B, promote, or reject, with the numbers in `reason`. */
export interface RolloutDecision {
  action: 'ab' | 'promote' | 'reject';
  version: number;
  champion: number;
  /** The stage the decision ends. */
  stage: RolloutStage;
  reason: string;
}

export interface Decision {
  state: TriggerState;
  request: RetrainRequest | null;
  /** Champion version to roll back from, with the reason. */
  rollback: { from: number; reason: string } | null;
  rollout: RolloutDecision | null;
  /** The rollout steps this report added (windows judged, a stage followed, stalled or superseded), for the log. */
  rolloutSteps: RolloutStep[];
}

/** What `decide` needs of the registry: which versions serve, and (for promotion.rollout) their inputs. */
export interface ServingView {
  champion: number | null;
  shadow: number | null;
  previous?: number | null;
  ab?: number | null;
  /** Each serving version's inputs (lifecycle.modelInputs); a version absent here is never followed as a rollout. */
  inputs?: Record<string, string>;
}

/** How much of the shorter of two spans their overlap covers (0..1). */
function overlapShare(a: [number, number], b: [number, number]): number {
  const overlap = Math.min(a[1], b[1]) - Math.max(a[0], b[0]);
  if (overlap < 0) return 0;
  return Math.min(1, (overlap + 1) / (Math.min(a[1] - a[0], b[1] - b[0]) + 1));
}

/** Pure: the policy applied to one report, given which versions serve. */
export function decide(spec: PipelineSpec, s0: TriggerState, report: Report, serving: ServingView): Decision {
  const s: TriggerState = structuredClone(s0);
  // States saved before rollouts lack these.
  s.spans ??= {};
  s.rollout ??= null;
  s.rollouts ??= [];
  let rolloutDecision: RolloutDecision | null = null;
  const rolloutSteps: RolloutStep[] = [];
  let trigger: { reason: string; detail: string } | null = null;
  let rollback: Decision['rollback'] = null;
  const r = spec.retrain;
  const metricName = spec.promotion.metric;

  const estimate = isQuality(report) ? estimateReportKind(report.report_id) : null;
  if (isQuality(report) && isProgressReport(report.report_id)) {
    // The monitor's label progress: served labels of any version. Once one is seen, it alone counts fresh labels.
    s.countsProgress = true;
    s.labelsSinceRetrain += Number(report.count);
    if (r.everyLabels !== null && s.labelsSinceRetrain >= r.everyLabels) trigger = { reason: 'schedule', detail: `${s.labelsSinceRetrain} labeled predictions served since the last retrain` };
  } else if (estimate !== null) {
    // An estimate before labels (drift monitor, monitoring.estimate): never a realised window; with
    // retrain.onEstimate, the champion's estimate band is held to minMetric / maxRelativeDrop.
    const q = report as QualityReport;
    if (estimate === 'estimate' && r.onEstimate && q.variant === 'champion' && q.model_version === serving.champion) trigger = estimateTrigger(spec, s, q);
  } else if (isQuality(report)) {
    const m = metricOf(spec, report);
    const full = report.alarm === null;
    const key = `${report.model_version}/${report.variant}/${windowIndex(report.report_id)}`;
    if (full && m !== null) {
      s.windows[key] = m;
      s.spans[key] = [report.window_start, report.window_end];
      rolloutDecision = advanceRollout(spec, s, report, m, serving, rolloutSteps);
    }
    if (report.variant === 'champion' && report.model_version === serving.champion) {
      if (report.alarm !== null && r.onDetectorAlarm) trigger = { reason: 'detector_alarm', detail: report.alarm };
      if (full) {
        if (!s.countsProgress) s.labelsSinceRetrain += Number(report.count);
        const ref = s.reference[String(report.model_version)];
        if (m !== null && ref === undefined) s.reference[String(report.model_version)] = m;
        if (m !== null && r.minMetric !== undefined && worseBy(metricName, m, r.minMetric) > 0) trigger ??= { reason: 'quality_below_threshold', detail: `${metricName} ${m.toFixed(4)} vs threshold ${r.minMetric}` };
        if (m !== null && ref !== undefined && r.maxRelativeDrop !== undefined && worseBy(metricName, m, ref) > Math.abs(ref) * r.maxRelativeDrop) {
          trigger ??= { reason: 'quality_drop', detail: `${metricName} ${m.toFixed(4)} vs ${ref.toFixed(4)} in the champion's first window` };
        }
        if (r.everyLabels !== null && s.labelsSinceRetrain >= r.everyLabels) trigger ??= { reason: 'schedule', detail: `${s.labelsSinceRetrain} labeled predictions since the last retrain` };
      }
    }
    // Rollback guard: the champion against the old champion shadowing it, window by window (not a
    // rollout's candidate, newer than the champion, holding the shadow slot).
    const champ = serving.champion;
    if (champ !== null && serving.shadow !== null && serving.shadow < champ && !s.judged.includes(champ) && full && (report.model_version === champ || report.model_version === serving.shadow)) {
      const [mine, theirs] = guardPair(s, champ, serving.shadow, windowIndex(report.report_id));
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
    // While a rollout runs, a trigger waits for its end as during the cooldown (the evaluator would reject its candidate).
    if (enough && s.rollout === null) {
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
  return { state: s, request, rollback, rollout: rolloutDecision, rolloutSteps };
}

/**
 * The guard's pair of windows: the champion's and the shadow's full window that covers at least half
 * of it in event time (the same index first); by index alone for windows saved without spans.
 */
function guardPair(s: TriggerState, champ: number, shadow: number, w: string): [number | undefined, number | undefined] {
  const keys = (v: number, variant: string) => Object.keys(s.windows).filter((k) => k.startsWith(`${v}/${variant}/`));
  const sameIndex: [number | undefined, number | undefined] = [s.windows[`${champ}/champion/${w}`], s.windows[`${shadow}/shadow/${w}`]];
  const spanned = (k: string) => s.spans[k] !== undefined;
  const mineKeys = keys(champ, 'champion');
  const theirKeys = keys(shadow, 'shadow');
  if (!mineKeys.some(spanned) || !theirKeys.some(spanned)) return sameIndex;
  const index = (k: string) => k.slice(k.lastIndexOf('/') + 1);
  const covers = (mine: [number, number], tk: string) => s.spans[tk] !== undefined && overlapShare(mine, s.spans[tk]!) >= 0.5;
  for (const mk of [...mineKeys].sort((a, b) => Number(index(a)) - Number(index(b)))) {
    const span = s.spans[mk];
    if (!span) continue;
    const same = `${shadow}/shadow/${index(mk)}`;
    const tk = covers(span, same) ? same : theirKeys.find((k) => covers(span, k));
    if (tk !== undefined) return [s.windows[mk], s.windows[tk]];
  }
  return [undefined, undefined];
}

function finishRollout(s: TriggerState, r: Rollout, outcome: RolloutOutcome): void {
  s.rollout = null;
  s.rollouts = [...s.rollouts, { ...r, waiting: [], championWindows: [], outcome }].slice(-20);
}

/**
 * Pure: a full window report applied to the staged rollout (mutates `s`, a clone): starts following a
 * candidate the registry stages, records the champion's and the candidate's windows, judges the
 * candidate's windows the champion's now cover, and decides the next step.
 */
function advanceRollout(spec: PipelineSpec, s: TriggerState, report: QualityReport, m: number, serving: ServingView, added: RolloutStep[]): RolloutDecision | null {
  const p = spec.promotion;
  const metricName = p.metric;
  const champ = serving.champion;
  const at = report.created_at;
  const names = { shadow: 'shadow', ab: 'A/B arm' } as const;
  const step = (r: Rollout, x: RolloutStep) => {
    r.steps.push(x);
    added.push(x);
  };
  let r = s.rollout;
  const holds: RolloutStage | null = r === null ? null : serving.ab === r.version ? 'ab' : serving.shadow === r.version ? 'shadow' : null;
  if (r !== null && r.champion !== champ && holds !== null) {
    // The champion changed under the rollout (by hand, say): what it was judged against is gone, and it still serves a stage.
    const detail = `the champion changed from v${r.champion} to ${champ === null ? 'none' : `v${champ}`} during the rollout`;
    step(r, { stage: holds, cause: report.report_id, candidate: null, champion: null, passed: false, detail, at });
    finishRollout(s, r, 'rejected');
    return { version: r.version, champion: r.champion, stage: holds, action: 'reject', reason: `rollout rejected at the ${names[holds]} stage: ${detail}` };
  }
  if (r !== null && holds === null) {
    // The candidate no longer holds a stage (stopped by hand, or its champion rolled back with it): nothing left to stop.
    step(r, { stage: r.stage, cause: report.report_id, candidate: null, champion: null, passed: false, detail: `superseded: v${r.version} no longer serves as ${names[r.stage]}`, at });
    finishRollout(s, r, 'superseded');
    r = null;
  }
  if (r === null && champ !== null) {
    const cand = rolloutCandidate(serving);
    const inputs = serving.inputs ?? {};
    const candInputs = cand === null ? undefined : inputs[String(cand)];
    if (cand !== null && candInputs !== undefined && !s.rollouts.some((x) => x.version === cand) && rolloutNeeded(p.rollout, candInputs, inputs[String(champ)])) {
      const stage: RolloutStage = serving.ab === cand ? 'ab' : 'shadow';
      r = { version: cand, champion: champ, stage, passed: 0, waiting: [], championWindows: [], stageChampionWindows: 0, seen: [], steps: [] };
      step(r, { stage, cause: report.report_id, candidate: null, champion: null, passed: true, detail: `followed from the ${stage} stage`, at });
      s.rollout = r;
    }
  }
  if (r === null) return null;
  const w: RolloutWindow = { id: report.report_id, start: report.window_start, end: report.window_end, metric: m, count: Number(report.count) };
  if (report.model_version === r.champion && report.variant === 'champion' && !r.championWindows.some((x) => x.id === w.id)) {
    r.championWindows = [...r.championWindows, w].slice(-200);
    r.stageChampionWindows++;
  }
  if (report.model_version === r.version && report.variant === r.stage && !r.seen.includes(w.id)) {
    r.seen.push(w.id);
    r.waiting.push(w);
  }
  const margin = rolloutMargin(p);
  for (const cw of [...r.waiting]) {
    if (!r.championWindows.some((x) => x.end >= cw.end)) continue; // the champion's windows have not reached its end yet
    const over = r.championWindows.filter((x) => x.end >= cw.start && x.start <= cw.end);
    const basis = over.length > 0 ? over : [r.championWindows.find((x) => x.end >= cw.end)!];
    const labeled = basis.reduce((a, x) => a + x.count, 0);
    const theirs = labeled > 0 ? basis.reduce((a, x) => a + x.metric * x.count, 0) / labeled : basis.reduce((a, x) => a + x.metric, 0) / basis.length;
    const gap = worseBy(metricName, cw.metric, theirs);
    // A window is a sample. For accuracy (a proportion) the allowance adds the one-sided 95% sampling noise
    // of a difference of two proportions, so that one window of 500 does not reject a candidate as good as
    // the champion by chance (with a 0.02 margin alone, about 1 time in 5 in the A/B stage, whose two
    // sides score different events). Other metrics' reports carry no spread: the margin alone.
    const noise = metricName === 'accuracy' && cw.count > 0 && labeled > 0 ? 1.645 * Math.sqrt((cw.metric * (1 - cw.metric)) / cw.count + (theirs * (1 - theirs)) / labeled) : 0;
    const passed = gap <= margin + noise;
    const numbers = `live ${metricName} of v${r.version} as ${names[r.stage]} ${cw.metric.toFixed(4)} vs the champion v${r.champion}'s ${theirs.toFixed(4)} over the same event time (${basis.length} window(s)), ${gap > 0 ? `worse by ${gap.toFixed(4)}` : `not worse`} (margin ${margin}${noise > 0 ? ` + sampling allowance ${noise.toFixed(4)}` : ''})`;
    r.waiting = r.waiting.filter((x) => x.id !== cw.id);
    step(r, { stage: r.stage, cause: cw.id, candidate: cw.metric, champion: theirs, passed, detail: numbers, at });
    const decision = { version: r.version, champion: r.champion, stage: r.stage };
    if (!passed) {
      finishRollout(s, r, 'rejected');
      return { ...decision, action: 'reject', reason: `rollout rejected at the ${names[r.stage]} stage: ${numbers}` };
    }
    r.passed++;
    if (r.stage === 'shadow' && r.passed >= p.rollout.shadowWindows) {
      Object.assign(r, { stage: 'ab', passed: 0, waiting: [], stageChampionWindows: 0 });
      return { ...decision, action: 'ab', reason: `rollout: A/B stage at ${p.rollout.abShare} after ${p.rollout.shadowWindows} shadow window(s) not worse; last: ${numbers}` };
    }
    if (r.stage === 'ab' && r.passed >= p.rollout.abWindows) {
      finishRollout(s, r, 'promoted');
      // The old champion shadows the new one: the rollback guard judges it as any fresh champion.
      return { ...decision, action: 'promote', reason: `promoted: rollout passed (${p.rollout.shadowWindows} shadow, ${p.rollout.abWindows} A/B window(s) not worse); last: ${numbers}` };
    }
  }
  // Stalled: the champion filled more windows than the stage needs (at the arm's share) without one of the candidate's
  // to judge (the scorer refused it, or its reports stopped): rejected, so what serves can change again.
  const share = p.rollout.abShare;
  const limit = r.stage === 'shadow' ? p.rollout.shadowWindows + 2 : Math.ceil((p.rollout.abWindows * (1 - share)) / share) + 2;
  if (r.waiting.length === 0 && r.stageChampionWindows > limit) {
    const detail = `stalled: ${r.stageChampionWindows} full windows of the champion v${r.champion} and ${r.passed} of v${r.version} as ${names[r.stage]} since the stage started`;
    step(r, { stage: r.stage, cause: report.report_id, candidate: null, champion: null, passed: false, detail, at });
    finishRollout(s, r, 'rejected');
    return { version: r.version, champion: r.champion, stage: r.stage, action: 'reject', reason: `rollout rejected at the ${names[r.stage]} stage: ${detail}` };
  }
  return null;
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

/** A rollback decided by the guard, carried out after the state is saved (`kind` absent in effects saved before rollouts). */
export interface RollbackEffect {
  kind?: 'rollback';
  from: number;
  reason: string;
  cause: string;
  at: number;
}

/** A rollout step decided by the trigger, carried out after the state is saved (models/lifecycle.ts). */
export interface RolloutEffect {
  kind: 'rollout';
  action: RolloutDecision['action'];
  version: number;
  champion: number;
  stage: RolloutStage;
  share: number;
  reason: string;
  cause: string;
  at: number;
}

export type TriggerEffect = RollbackEffect | RolloutEffect;

/** What the trigger's logic reads per chunk: which versions serve, and their inputs. */
export type TriggerContext = ServingState & { inputs: Record<string, string> };

/**
 * The trigger as stateful logic: one state per pipeline model; `prepare`
 * reads which versions serve and their inputs (a snapshot per chunk,
 * updated by the chunk's own rollbacks and rollout steps); outputs are
 * RetrainRequests, ROLLBACK events and the rollout's events.
 */
export function triggerLogic(spec: PipelineSpec, serving: () => Promise<TriggerContext>, onDecision?: (d: Decision) => void): StatefulLogic<'QualityReport' | 'DriftReport', TriggerState, TriggerContext, TriggerEffect> {
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
      const effects: TriggerEffect[] = [];
      const announce = (value: ModelEvent) => outputs.push({ topic: 'control.models', record: 'ModelEvent', key: scope, value });
      if (d.request) outputs.push({ topic: 'control.retrain', record: 'RetrainRequest', key: spec.name, value: d.request });
      if (d.rollback && now.previous !== null && now.champion === d.rollback.from) {
        const to = now.previous;
        outputs.push({
          topic: 'control.models',
          record: 'ModelEvent',
          key: scope,
          value: rollbackEvent({ pipeline: spec.name, modelName: spec.model.name, actor: 'retrain-trigger', reason: d.rollback.reason, cause: report.report_id, at: report.created_at, from: d.rollback.from, to }),
        });
        effects.push({ kind: 'rollback', from: d.rollback.from, reason: d.rollback.reason, cause: report.report_id, at: report.created_at });
        // Later reports of this chunk see the rollback.
        Object.assign(now, { champion: to, previous: null, shadow: null });
      }
      const ro = d.rollout;
      // A step is announced only while the champion it was judged against serves (a rejection always).
      if (ro && (ro.action === 'reject' || now.champion === ro.champion)) {
        const c: Change = { pipeline: spec.name, modelName: spec.model.name, actor: 'retrain-trigger', reason: ro.reason, cause: report.report_id, at: report.created_at };
        const share = spec.promotion.rollout.abShare;
        if (ro.action === 'ab') {
          for (const e of abStageEvents({ ...c, version: ro.version, share })) announce(e);
          Object.assign(now, { ab: ro.version, abShare: share, shadow: now.shadow === ro.version ? null : now.shadow });
        } else if (ro.action === 'promote') {
          for (const e of rolloutPromotionEvents({ ...c, version: ro.version, expected: ro.champion })) announce(e);
          Object.assign(now, { champion: ro.version, previous: ro.champion, shadow: ro.champion, ab: null, abShare: 0 });
        } else {
          announce(rolloutRejectionEvent({ ...c, version: ro.version, stage: ro.stage }));
          if (now.shadow === ro.version) now.shadow = null;
          if (now.ab === ro.version) Object.assign(now, { ab: null, abShare: 0 });
        }
        effects.push({ kind: 'rollout', action: ro.action, version: ro.version, champion: ro.champion, stage: ro.stage, share, reason: ro.reason, cause: report.report_id, at: report.created_at });
      }
      return { state: d.state, outputs, effects };
    },
  };
}
