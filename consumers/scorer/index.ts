/**
 * scorer: scores feature vectors in batches (one onnxruntime call per chunk)
 * with the champion, an optional A/B arm (stable hash of the event id) and an
 * optional shadow; writes every prediction to the prediction log, the served
 * ones to `predictions` (keyed by entity, for services) and all of them to
 * `predictions.by-event` (keyed by event, for the joiner) and, with
 * monitoring.estimate, to `predictions.by-model` (keyed by model, for the
 * drift monitor's estimate before labels). Hot-swaps between
 * chunks when control.models announces a change (a broadcast: every scorer
 * instance sees every announcement) or its registry poll sees one. Candidates
 * announced on control.candidates are loaded ahead of their promotion.
 *
 *   npm start -- run --workers scorer
 */
import { Gauge, type Registry } from 'prom-client';
import type { ModelCandidate, ModelEvent } from '../../schemas/types.js';
import type { Stores } from '../../store/stores.js';
import { defineWorker, setting, type WorkerContext } from '../../streams/definition.js';
import { createLiveSpec } from '../live-spec.js';
import { createScorer, type Scorer } from './scorer.js';

function scorerMetrics(registry: Registry) {
  return {
    champion: new Gauge({ name: 'loopline_scorer_champion_version', help: 'Model version serving as champion.', labelNames: ['pipeline'], registers: [registry] }),
    shadow: new Gauge({ name: 'loopline_scorer_shadow_version', help: 'Model version scoring as shadow (0 = none).', labelNames: ['pipeline'], registers: [registry] }),
    ab: new Gauge({ name: 'loopline_scorer_ab_version', help: 'Model version serving the A/B arm (0 = none).', labelNames: ['pipeline'], registers: [registry] }),
  };
}

export const scorer = defineWorker({
  name: 'scorer',
  doc: 'scores a chunk in one onnxruntime call with the champion, an optional A/B arm (stable hash of the event id) and shadow; hot-swaps on control.models or a registry poll',
  input: { topics: [{ topic: 'features.vectors', record: 'FeatureVector' }] },
  outputs: ['predictions', 'predictions.by-event', 'predictions.by-model'],
  broadcasts: ['control.models', 'control.candidates'],
  tables: { reads: ['models', 'model_serving', 'pipeline_specs'], writes: ['prediction_log', 'predictions_by_time'] },
  state: 'none (the serving models, reloaded from the registry)',
  settings: {
    reloadIntervalMs: setting.integer(10_000, 100, 3_600_000, 'registry and applied spec versions poll period, besides the control.models broadcast'),
  },
  createMetrics: scorerMetrics,
  create(settings, ctx: WorkerContext<Pick<Stores, 'registry' | 'predictions' | 'specs'>>, metrics): Scorer {
    const { spec } = ctx;
    const core = createScorer({
      spec,
      // Re-read on every reload (the poll and each control.models event), so no interval of its own.
      live: createLiveSpec({ initial: spec, store: ctx.stores.specs, pollMs: 0, logger: ctx.logger }),
      registry: ctx.stores.registry,
      log: ctx.stores.predictions,
      logger: ctx.logger,
      now: ctx.now,
      onSwap: (s) => {
        metrics.champion.set({ pipeline: spec.name }, s.champion.version);
        metrics.shadow.set({ pipeline: spec.name }, s.shadow?.version ?? 0);
        metrics.ab.set({ pipeline: spec.name }, s.ab?.version ?? 0);
      },
    });
    let timer: NodeJS.Timeout | null = null;
    const reload = (why: string) => core.reload().catch((err: unknown) => ctx.logger.error({ err, why }, 'scorer reload failed; the current models keep serving'));
    return {
      ...core,
      async open() {
        await core.open!();
        timer = setInterval(() => void reload('poll'), settings.reloadIntervalMs);
        timer.unref();
      },
      async close() {
        if (timer) clearInterval(timer);
        await core.close?.();
      },
      broadcasts: [
        {
          topic: 'control.models',
          record: 'ModelEvent',
          async onRecord(value) {
            const e = value as ModelEvent;
            if (e.pipeline !== spec.name || e.model_name !== spec.model.name) return;
            ctx.logger.info({ action: e.action, version: e.model_version }, 'model event received');
            await reload('control event');
          },
        },
        {
          topic: 'control.candidates',
          record: 'ModelCandidate',
          async onRecord(value) {
            const c = value as ModelCandidate;
            if (c.pipeline !== spec.name || c.model_name !== spec.model.name) return;
            await core.preload(c.model_version);
          },
        },
      ],
    };
  },
});
