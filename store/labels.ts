/**
 * Ground truth and what it labels, for analysts and the loop:
 * `ground_truth` (a label per event, as it arrived), `late_labels` (labels
 * past the join horizon: kept and counted, never joined) and
 * `labeled_by_time` (every joined prediction, by pipeline, event-time day and
 * model version). Every write is idempotent, keyed by event and prediction ids.
 */
import type cassandra from 'cassandra-driver';
import type { LabeledPrediction } from '../schemas/types.js';
import { createBatchWriter, type RowWrite } from './batch.js';
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

/** Several label writes at once (a joiner chunk's), sent in few requests (store/batch.ts). */
export interface LabelWrites {
  truths?: ReadonlyArray<{ truth: StoredTruth; receivedAt: number }>;
  late?: ReadonlyArray<{ truth: StoredTruth; reason: string }>;
  labeled?: readonly LabeledPrediction[];
}

export interface LabelStore {
  write(w: LabelWrites): Promise<void>;
}

const TRUTH = 'INSERT INTO ground_truth (event_id, pipeline, label_str, label_num, event_time, label_time, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)';
const LATE = 'INSERT INTO late_labels (pipeline, day, event_id, label_str, label_num, event_time, label_time, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)';
const LABELED =
  'INSERT INTO labeled_by_time (pipeline, day, model_version, event_time, event_id, variant, model_name, label, label_num, predicted, score, value, correct, error, label_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';

function truthRow(t: StoredTruth, receivedAt: number): RowWrite {
  return { query: TRUTH, params: [t.event_id, t.pipeline, ...labelColumns(t.label), new Date(t.event_time), new Date(t.label_time), new Date(receivedAt)], key: [t.event_id] };
}

function lateRow(t: StoredTruth, reason: string): RowWrite {
  const day = dayOf(t.event_time);
  return { query: LATE, params: [t.pipeline, day, t.event_id, ...labelColumns(t.label), new Date(t.event_time), new Date(t.label_time), reason], partition: `${t.pipeline}/${day.toString()}` };
}

function labeledRow(lp: LabeledPrediction): RowWrite {
  const p = lp.prediction;
  const day = dayOf(p.event_time);
  return {
    query: LABELED,
    params: [p.pipeline, day, p.model_version, new Date(p.event_time), p.event_id, p.variant, p.model_name, ...labelColumns(lp.label), p.label, p.score, p.value, lp.correct, lp.error, new Date(lp.label_time)],
    partition: `${p.pipeline}/${day.toString()}/${p.model_version}`,
  };
}

export function createLabelStore(cql: cassandra.Client, options: { batchRows?: number } = {}): LabelStore {
  const writer = createBatchWriter(cql, { rows: options.batchRows ?? 50 });
  return {
    write(w) {
      const rows = [
        ...(w.truths ?? []).map((x) => truthRow(x.truth, x.receivedAt)),
        ...(w.late ?? []).map((x) => lateRow(x.truth, x.reason)),
        ...(w.labeled ?? []).map(labeledRow),
      ];
      return writer.write(rows, `writing ${rows.length} label rows`);
    },
  };
}
