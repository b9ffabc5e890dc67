/**
 * Ground truth and what it labels, for analysts and the loop:
 * `ground_truth` (a label per event, as it arrived), `late_labels` (labels
 * past the join horizon: kept and counted, never joined) and
 * `labeled_by_time` (every joined prediction, by pipeline, event-time day and
 * model version). Every write is idempotent, keyed by event and prediction ids.
 */
import type cassandra from 'cassandra-driver';
import type { LabeledPrediction } from '../schemas/types.js';
import { IDEMPOTENT, storeCall } from './errors.js';
import { dayOf } from './prediction-log.js';

/** A label as kept in ground_truth. */
export interface StoredTruth {
  event_id: string;
  pipeline: string;
  label: string | number;
  event_time: number;
  label_time: number;
}

export const labelColumns = (label: string | number): [string | null, number | null] => (typeof label === 'string' ? [label, null] : [null, label]);

export interface LabelStore {
  writeTruth(t: StoredTruth, receivedAt: number): Promise<void>;
  writeLate(t: StoredTruth, reason: string): Promise<void>;
  writeLabeled(lp: LabeledPrediction): Promise<void>;
}

export function createLabelStore(cql: cassandra.Client): LabelStore {
  return {
    writeTruth(t, receivedAt) {
      return storeCall(`writing ground truth of ${t.event_id}`, async () => {
        await cql.execute(
          'INSERT INTO ground_truth (event_id, pipeline, label_str, label_num, event_time, label_time, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
          [t.event_id, t.pipeline, ...labelColumns(t.label), new Date(t.event_time), new Date(t.label_time), new Date(receivedAt)],
          IDEMPOTENT,
        );
      });
    },
    writeLate(t, reason) {
      return storeCall(`writing late label ${t.event_id}`, async () => {
        await cql.execute(
          'INSERT INTO late_labels (pipeline, day, event_id, label_str, label_num, event_time, label_time, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
          [t.pipeline, dayOf(t.event_time), t.event_id, ...labelColumns(t.label), new Date(t.event_time), new Date(t.label_time), reason],
          IDEMPOTENT,
        );
      });
    },
    writeLabeled(lp) {
      const p = lp.prediction;
      return storeCall(`writing labeled prediction ${p.prediction_id}`, async () => {
        await cql.execute(
          'INSERT INTO labeled_by_time (pipeline, day, model_version, event_time, event_id, variant, model_name, label, label_num, predicted, score, value, correct, error, label_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
          [p.pipeline, dayOf(p.event_time), p.model_version, new Date(p.event_time), p.event_id, p.variant, p.model_name, ...labelColumns(lp.label), p.label, p.score, p.value, lp.correct, lp.error, new Date(lp.label_time)],
          IDEMPOTENT,
        );
      });
    },
  };
}
