/**
 * retrain-trigger: applies the spec's retrain policy to monitor reports
 * (detector alarm, a metric threshold, a relative drop, every N labels,
 * drift; cooldown and minimum fresh labels) and guards a fresh champion,
 * rolling it back when it does worse live than its predecessor on the same
 * window, and takes a staged candidate (promotion.rollout) from shadow to
 * A/B to champion, or rejects it. Each decision's id derives from the report
 * that caused it, so a replay re-emits the same request and the builder
 * builds it once.
 *
 *   npm start -- run --workers retrain-trigger
 */
import { Counter, type Registry } from 'prom-client';
import { modelInputs, promoteRollout, rejectRollout, rollback, startAbStage } from '../../models/lifecycle.js';
import type { Stores } from '../../store/stores.js';
import { defineWorker, type WorkerContext } from '../../streams/definition.js';
import { createStatefulProcess } from '../../streams/state.js';
import { triggerLogic, type TriggerEffect, type TriggerState } from './retrain-trigger.js';

export const RETRAIN_TRIGGER = 'retrain-trigger';

function triggerMetrics(registry: Registry) {
  return {
    requests: new Counter({ name: 'loopline_trigger_retrain_requests_total', help: 'Retrain requests decided, by reason.', labelNames: ['reason'], registers: [registry] }),
    rollbacks: new Counter({ name: 'loopline_trigger_rollbacks_total', help: 'Champions rolled back by the live guard.', registers: [registry] }),
    rollouts: new Counter({ name: 'loopline_trigger_rollout_steps_total', help: 'Staged rollout steps carried out, by action (ab, promote, reject).', labelNames: ['action'], registers: [registry] }),
  };
}

export const retrainTrigger = defineWorker({
  name: RETRAIN_TRIGGER,
  doc: 'the spec\'s retrain policy (alarm, threshold, relative drop, schedule, drift; cooldown and minimum fresh labels); rolls back a new champion that does worse than its predecessor on the same window; takes a staged candidate from shadow to A/B to champion, or rejects it',
  input: { topics: [{ topic: 'monitor.reports', record: ['QualityReport', 'DriftReport'] }] },
  outputs: ['control.retrain', 'control.models'],
  tables: { reads: ['model_serving', 'models', 'worker_state'], writes: ['model_serving', 'models', 'model_events', 'worker_state'] },
  state: 'per pipeline model: labels since the last retrain, a pending trigger, reference metrics, the windows the rollback guard compares, the staged rollout and its steps (worker_state)',
  settings: {},
  createMetrics: triggerMetrics,
  create(_settings, ctx: WorkerContext<Pick<Stores, 'registry' | 'state'>>, metrics) {
    const { spec, stores } = ctx;
    const logger = ctx.logger.child({ worker: RETRAIN_TRIGGER });
    const context = async () => {
      const serving = await stores.registry.serving(spec.name, spec.model.name);
      const live = [serving.champion, serving.shadow, serving.ab].filter((v): v is number => v !== null);
      // Model inputs matter only to a rollout: a shadow or arm newer than the champion.
      const inputs: Record<string, string> = {};
      if (serving.champion !== null && live.some((v) => v > serving.champion!)) {
        for (const m of await Promise.all(live.map((v) => stores.registry.get(spec.name, spec.model.name, v)))) inputs[String(m.version)] = modelInputs(m);
      }
      return { ...serving, inputs };
    };
    const logic = triggerLogic(spec, context, (d) => {
      if (d.request) {
        metrics.requests.inc({ reason: d.request.reason });
        logger.info({ requestId: d.request.request_id, reason: d.request.reason, detail: d.request.detail }, 'retrain requested');
      }
      for (const x of d.rolloutSteps) logger.info({ stage: x.stage, cause: x.cause, candidate: x.candidate, champion: x.champion, passed: x.passed, detail: x.detail }, 'rollout step');
      if (d.rollout) logger.info({ version: d.rollout.version, champion: d.rollout.champion, stage: d.rollout.stage, action: d.rollout.action, reason: d.rollout.reason }, 'rollout decision');
    });
    return {
      process: createStatefulProcess(
        {
          ...logic,
          async runEffects(effects: TriggerEffect[]) {
            for (const e of effects) {
              if (e.kind === 'rollout') {
                const c = { pipeline: spec.name, modelName: spec.model.name, actor: RETRAIN_TRIGGER, reason: e.reason, cause: e.cause, at: e.at, version: e.version };
                let done = true;
                if (e.action === 'ab') done = await startAbStage(stores.registry, { ...c, expected: e.champion, share: e.share });
                else if (e.action === 'promote') done = await promoteRollout(stores.registry, { ...c, expected: e.champion });
                else await rejectRollout(stores.registry, { ...c, stage: e.stage });
                if (done) metrics.rollouts.inc({ action: e.action });
                logger.info({ version: e.version, champion: e.champion, action: e.action, reason: e.reason }, done ? 'rollout step carried out' : 'rollout step not carried out: the champion changed meanwhile');
                continue;
              }
              const done = await rollback(stores.registry, { pipeline: spec.name, modelName: spec.model.name, actor: RETRAIN_TRIGGER, reason: e.reason, cause: e.cause, at: e.at, expected: e.from });
              if (done) metrics.rollbacks.inc();
              logger.warn({ from: e.from, to: done?.model_version ?? null, reason: e.reason }, done ? 'champion rolled back' : 'rollback already applied (or the champion changed meanwhile)');
            }
          },
        },
        stores.state<TriggerState, TriggerEffect>(RETRAIN_TRIGGER),
      ),
    };
  },
});
