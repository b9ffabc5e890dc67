/**
 * joiner: joins each prediction with its ground truth, whichever arrives
 * first (see join.ts). It reads labels.ground-truth and predictions.by-event,
 * co-partitioned by event id, so one member owns each event and plain
 * idempotent writes replace per-prediction lightweight transactions; its
 * per-event state lives in the state scheme (worker_state, expiring after the
 * join horizon).
 *
 *   npm start -- run --workers joiner
 *
 * Metrics (loopline_joiner_*):
 * - labels_total{outcome}: each label by its outcome on arrival: joined (≥1
 *   prediction emitted), pending (no prediction yet; it waits in the state),
 *   late (past the horizon), duplicate (the event already had its label),
 *   invalid (dead-lettered). A chunk retried before its state was saved counts again.
 * - predictions_total{outcome}: joined (its label was there), waiting, duplicate.
 * - label_delay_seconds: label_time − event_time of valid labels, late ones included.
 * - joined_predictions_total / served_predictions_total: served (non-shadow)
 *   predictions joined, and seen; label_coverage is their ratio in this process
 *   (it trails 1 by the labels not yet due and those that never come).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { LabeledPrediction } from '../../schemas/types.js';
import type { Stores } from '../../store/stores.js';
import { defineWorker, type WorkerContext } from '../../streams/definition.js';
import { createStatefulProcess } from '../../streams/state.js';
import { isServed, joinLogic, labelDelaySeconds, type JoinEffect, type JoinState } from './join.js';

export const JOINER = 'joiner';

export function joinerMetrics(registry: Registry) {
  const counts = { served: 0, joined: 0 };
  return {
    counts,
    labels: new Counter({ name: 'loopline_joiner_labels_total', help: 'Ground-truth records by outcome on arrival: joined, pending, late, duplicate, invalid.', labelNames: ['outcome'], registers: [registry] }),
    predictions: new Counter({ name: 'loopline_joiner_predictions_total', help: 'Predictions by outcome on arrival: joined (label there), waiting, duplicate.', labelNames: ['outcome'], registers: [registry] }),
    delay: new Histogram({
      name: 'loopline_joiner_label_delay_seconds',
      help: 'Label delay in event time: label_time - event_time, seconds.',
      buckets: [60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400, 2 * 86_400, 3 * 86_400, 7 * 86_400, 14 * 86_400, 30 * 86_400],
      registers: [registry],
    }),
    served: new Counter({ name: 'loopline_joiner_served_predictions_total', help: 'Served (non-shadow) predictions seen by the joiner.', registers: [registry] }),
    joined: new Counter({ name: 'loopline_joiner_joined_predictions_total', help: 'Served predictions joined with ground truth.', registers: [registry] }),
    coverage: new Gauge({
      name: 'loopline_joiner_label_coverage',
      help: 'Joined served predictions / served predictions seen by this process since start.',
      registers: [registry],
      collect() {
        this.set(counts.served > 0 ? counts.joined / counts.served : 0);
      },
    }),
  };
}

export const joiner = defineWorker({
  name: JOINER,
  doc: 'joins labels and predictions whichever comes first; exactly one LabeledPrediction per prediction (shadow included); labels past the horizon go to labels.late and are never joined',
  input: {
    topics: [
      { topic: 'labels.ground-truth', record: 'GroundTruth' },
      { topic: 'predictions.by-event', record: 'Prediction' },
    ],
    copartitioned: true,
  },
  outputs: ['predictions.labeled', 'labels.late'],
  tables: { reads: ['worker_state'], writes: ['worker_state', 'ground_truth', 'late_labels', 'labeled_by_time', 'training_rows'] },
  state: 'per event: its label, predictions and which were emitted (worker_state, expires after the join horizon)',
  settings: {},
  createMetrics: joinerMetrics,
  create(_settings, ctx: WorkerContext<Pick<Stores, 'state' | 'labels' | 'training'>>, m) {
    const { spec, stores } = ctx;
    const logic = joinLogic(spec, (outcome, r, emitted) => {
      for (const lp of emitted) {
        if (!isServed(lp.prediction.variant)) continue;
        m.joined.inc();
        m.counts.joined++;
      }
      if (outcome === 'prediction-joined' || outcome === 'prediction-waiting' || outcome === 'prediction-duplicate') {
        m.predictions.inc({ outcome: outcome.slice('prediction-'.length) });
        const p = r.value as { variant: string };
        if (outcome !== 'prediction-duplicate' && isServed(p.variant)) {
          m.served.inc();
          m.counts.served++;
        }
        return;
      }
      m.labels.inc({ outcome });
      if (outcome !== 'duplicate') m.delay.observe(labelDelaySeconds(r.value as { event_time: number; label_time: number }));
    });
    const ttlSeconds = Math.ceil((spec.label.horizonMs + 86_400_000) / 1000);
    const process = createStatefulProcess(
      {
        ...logic,
        async runEffects(effects: JoinEffect[]) {
          // One chunk's writes in few requests (store/batch.ts), not one per label and prediction.
          const truths = effects.flatMap((e) => (e.kind === 'truth' ? [{ truth: e.truth, receivedAt: e.receivedAt }] : []));
          const late = effects.flatMap((e) => (e.kind === 'late' ? [{ truth: e.truth, reason: 'past_horizon' }] : []));
          await stores.labels.write({ truths, late });
        },
      },
      stores.state<JoinState, JoinEffect>(JOINER, { ttlSeconds }),
    );
    return {
      async process(records, pctx) {
        const r = await process(records, pctx);
        // Every join this chunk emits (a replayed record's again, as its first attempt's commit was aborted) is
        // written before the runtime commits: labeled_by_time, and a training row per served prediction.
        const labeled = r.outputs.flatMap((o) => (o.topic === 'predictions.labeled' ? [o.value as LabeledPrediction] : []));
        await Promise.all([
          stores.labels.write({ labeled }),
          stores.training.writeMany(labeled.filter((lp) => isServed(lp.prediction.variant)).map((lp) => ({ prediction: lp.prediction, label: lp.label, labelTime: lp.label_time }))),
        ]);
        for (const d of r.deadLetters ?? []) if (records[d.index]?.record === 'GroundTruth') m.labels.inc({ outcome: 'invalid' });
        return r;
      },
    };
  },
});
