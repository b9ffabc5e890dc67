/**
 * evaluator: the candidate against the champion on the same held-out rows
 * (the newest labeled rows after the candidate's training window, as they
 * were served); a paired bootstrap interval of the improvement must clear
 * `promotion.minImprovement`; promotes by compare-and-set and keeps the old
 * champion as shadow for the rollback guard. A candidate that needs a staged
 * rollout (promotion.rollout) is set as shadow instead, and the retrain
 * trigger takes it on through A/B to the promotion. Every verdict is stored.
 *
 *   npm start -- run --workers evaluator
 */
import { Counter, type Registry } from 'prom-client';
import type { Stores } from '../../store/stores.js';
import { defineWorker, type WorkerContext } from '../../streams/definition.js';
import { createEvaluator } from './evaluator.js';

function evaluatorMetrics(registry: Registry) {
  return {
    verdicts: new Counter({ name: 'loopline_evaluator_verdicts_total', help: 'Candidates judged, by verdict.', labelNames: ['verdict'], registers: [registry] }),
  };
}

export const evaluator = defineWorker({
  name: 'evaluator',
  doc: 'candidate against champion on the held-out rows; a paired bootstrap interval of the improvement must clear minImprovement; promotes by compare-and-set and keeps the old champion as shadow, or starts a staged rollout (shadow, then A/B) of a candidate on a new spec version',
  input: { topics: [{ topic: 'control.candidates', record: 'ModelCandidate' }] },
  outputs: ['control.models'],
  tables: { reads: ['training_rows', 'models', 'model_serving'], writes: ['model_serving', 'models', 'model_events'] },
  state: 'none (verdicts and statuses in the registry)',
  settings: {},
  runtime: { sessionTimeoutMs: 60_000 },
  createMetrics: evaluatorMetrics,
  create: (_settings, ctx: WorkerContext<Pick<Stores, 'registry' | 'training'>>, metrics) =>
    createEvaluator({
      spec: ctx.spec,
      registry: ctx.stores.registry,
      training: ctx.stores.training,
      logger: ctx.logger.child({ worker: 'evaluator' }),
      onEvaluated: (e) => metrics.verdicts.inc({ verdict: e.rollout ? 'rollout' : e.promote ? 'promote' : 'reject' }),
    }),
});
