/**
 * retrain-trigger: reads monitor reports and applies the spec's retrain
 * policy; also guards a fresh champion and rolls it back when it does worse
 * live than the model it replaced.
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
 * State and offsets are checkpointed together (consumers/checkpoint.ts), so a
 * restart mid-decision starts no second retrain.
 */
import type { ModelRegistry } from '../../models/registry.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { DriftReport, ModelEvent, QualityReport, RetrainRequest } from '../../schemas/types.js';
import type { Logger } from '../../streams/logger.js';
import type { InputRecord, OutputRecord, WorkerHandler } from '../../streams/runtime.js';
import { applied, type Checkpoint, type CheckpointStore } from '../checkpoint.js';

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

  if (isQuality(report)) {
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
        if (r.everyLabels !== undefined && s.labelsSinceRetrain >= r.everyLabels) trigger ??= { reason: 'schedule', detail: `${s.labelsSinceRetrain} labeled predictions since the last retrain` };
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

export interface RetrainTriggerDeps {
  spec: PipelineSpec;
  registry: ModelRegistry;
  checkpoints: CheckpointStore;
  logger: Logger;
  onDecision?: (d: { request: RetrainRequest | null; rollback: { from: number; to: number | null } | null }) => void;
}

export function createRetrainTrigger(deps: RetrainTriggerDeps): WorkerHandler<'QualityReport' | 'DriftReport'> {
  const { spec, registry, checkpoints, logger } = deps;
  const scope = `${spec.name}/${spec.model.name}`;
  let cp: Checkpoint<TriggerState> | null = null;
  let loaded = false;

  return {
    name: 'retrain-trigger',
    input: { topic: 'monitor.reports', record: ['QualityReport', 'DriftReport'] },
    async process(records: Array<InputRecord<Report>>) {
      if (!loaded) {
        cp = await checkpoints.load<TriggerState>(scope);
        loaded = true;
      }
      const first = records[0]!;
      const last = records[records.length - 1]!;
      // A chunk starting where the last applied chunk started is a replay after a crash between our
      // checkpoint and the Kafka commit: the decisions already taken are emitted again, not re-taken.
      const replayed = cp?.last && cp.last.partition === first.partition && cp.last.from === first.offset ? cp.last : null;
      let state = cp?.state ?? initialTriggerState();
      const outputs: OutputRecord[] = [...(replayed?.outputs ?? [])];
      const rollbacks: Array<{ from: number; reason: string }> = [...(replayed?.rollbacks ?? [])];
      for (const rec of records) {
        if (applied(cp, rec.partition, rec.offset)) continue;
        const report = rec.value;
        if (report.pipeline !== spec.name || report.model_name !== spec.model.name) continue;
        const serving = await registry.serving(spec.name, spec.model.name);
        const d = decide(spec, state, report, serving);
        state = d.state;
        if (d.request) {
          logger.info({ requestId: d.request.request_id, reason: d.request.reason, detail: d.request.detail }, 'retrain requested');
          outputs.push({ topic: 'control.retrain', record: 'RetrainRequest', key: spec.name, value: d.request });
        }
        let restored: number | null = null;
        if (d.rollback && serving.previous !== null && serving.champion === d.rollback.from) {
          // The event is decided and checkpointed before the registry changes (below), so a crash in
          // between cannot lose it: the replay re-emits it and re-applies the idempotent rollback.
          restored = serving.previous;
          rollbacks.push({ from: d.rollback.from, reason: d.rollback.reason });
          const event: ModelEvent = {
            event_id: `${scope}/rollback/${report.report_id}`,
            pipeline: spec.name,
            model_name: spec.model.name,
            action: 'ROLLBACK',
            model_version: restored,
            previous_version: d.rollback.from,
            traffic_share: null,
            reason: d.rollback.reason,
            actor: 'retrain-trigger',
            created_at: report.created_at,
          };
          outputs.push({ topic: 'control.models', record: 'ModelEvent', key: scope, value: event });
        }
        deps.onDecision?.({ request: d.request, rollback: d.rollback ? { from: d.rollback.from, to: restored } : null });
      }
      const to = replayed && BigInt(replayed.to) > BigInt(last.offset) ? replayed.to : last.offset;
      cp = {
        state,
        offsets: { ...(cp?.offsets ?? {}), [last.partition]: to },
        last: { partition: first.partition, from: first.offset, to, outputs, rollbacks },
      };
      await checkpoints.save(scope, cp);
      for (const rb of rollbacks) {
        const done = await registry.rollback({ pipeline: spec.name, modelName: spec.model.name, expected: rb.from, actor: 'retrain-trigger', reason: rb.reason });
        logger.warn({ from: rb.from, to: done, reason: rb.reason }, done === null ? 'rollback already applied (or the champion changed meanwhile)' : 'champion rolled back');
      }
      return { outputs };
    },
  };
}
