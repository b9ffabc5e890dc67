/**
 * retrain-trigger: applies the spec's retrain policy to monitor reports
 * (detector alarm, a metric threshold, a relative drop, every N labels,
 * drift; cooldown and minimum fresh labels) and guards a fresh champion,
 * rolling it back when it does worse live than its predecessor on the same
 * window. Each decision's id derives from the report that caused it, so a
 * replay re-emits the same request and the builder builds it once.
 *
 *   npm start -- run --workers retrain-trigger
 */
import { Counter, type Registry } from 'prom-client';
import { rollback } from '../../models/lifecycle.js';
import type { Stores } from '../../store/stores.js';
import { defineWorker, type WorkerContext } from '../../streams/definition.js';
import { createStatefulProcess } from '../../streams/state.js';
import { triggerLogic, type RollbackEffect, type TriggerState } from './retrain-trigger.js';

export const RETRAIN_TRIGGER = 'retrain-trigger';

function triggerMetrics(registry: Registry) {
  return {
    requests: new Counter({ name: 'loopline_trigger_retrain_requests_total', help: 'Retrain requests decided, by reason.', labelNames: ['reason'], registers: [registry] }),
    rollbacks: new Counter({ name: 'loopline_trigger_rollbacks_total', help: 'Champions rolled back by the live guard.', registers: [registry] }),
  };
}

export const retrainTrigger = defineWorker({
  name: RETRAIN_TRIGGER,
  doc: 'the spec\'s retrain policy (alarm, threshold, relative drop, schedule, drift; cooldown and minimum fresh labels); rolls back a new champion that does worse than its predecessor on the same window',
  input: { topics: [{ topic: 'monitor.reports', record: ['QualityReport', 'DriftReport'] }] },
  outputs: ['control.retrain', 'control.models'],
  tables: { reads: ['model_serving', 'worker_state'], writes: ['model_serving', 'models', 'model_events', 'worker_state'] },
  state: 'per pipeline model: labels since the last retrain, a pending trigger, reference metrics, the windows the rollback guard compares (worker_state)',
  settings: {},
  createMetrics: triggerMetrics,
  create(_settings, ctx: WorkerContext<Pick<Stores, 'registry' | 'state'>>, metrics) {
    const { spec, stores } = ctx;
    const logger = ctx.logger.child({ worker: RETRAIN_TRIGGER });
    const logic = triggerLogic(spec, () => stores.registry.serving(spec.name, spec.model.name), (d) => {
      if (d.request) {
        metrics.requests.inc({ reason: d.request.reason });
        logger.info({ requestId: d.request.request_id, reason: d.request.reason, detail: d.request.detail }, 'retrain requested');
      }
    });
    return {
      process: createStatefulProcess(
        {
          ...logic,
          async runEffects(effects: RollbackEffect[]) {
            for (const e of effects) {
              const done = await rollback(stores.registry, { pipeline: spec.name, modelName: spec.model.name, actor: RETRAIN_TRIGGER, reason: e.reason, cause: e.cause, at: e.at, expected: e.from });
              if (done) metrics.rollbacks.inc();
              logger.warn({ from: e.from, to: done?.model_version ?? null, reason: e.reason }, done ? 'champion rolled back' : 'rollback already applied (or the champion changed meanwhile)');
            }
          },
        },
        stores.state<TriggerState, RollbackEffect>(RETRAIN_TRIGGER),
      ),
    };
  },
});
