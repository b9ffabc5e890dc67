/**
 * The training set: one row per labeled event with the features the served
 * model (champion or A/B arm) actually saw and the ground truth
 * (`training_rows`, partitioned by pipeline and event-time month, newest
 * first; `training_months` lists the months that hold rows). Written by the
 * joiner, read by the model builder, the evaluator and the demo report, so
 * training sets are point-in-time correct by construction.
 */
import cassandra from 'cassandra-driver';
import type { Prediction } from '../schemas/types.js';
import { createBatchWriter, type RowWrite } from './batch.js';
import { IDEMPOTENT, storeCall } from './errors.js';
import { labelColumns } from './labels.js';
import { joinValues, splitValues } from './prediction-log.js';

export interface TrainingRow {
  eventId: string;
  eventTime: number;
  /** The served values: numbers, categories, and null for features served missing. */
  values: Record<string, number | string | null>;
  label: string | number;
  labelTime: number;
  modelVersion: number;
  /** The event's entity; absent or null on rows written before training rows kept it (migration 0010). */
  entityId?: string | null;
}

/** YYYY-MM (UTC) of a time in ms: the training_rows partition. */
export function monthOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 7);
}

export interface TrainingSet {
  /** One row per event: the served prediction's features with the ground truth. */
  write(p: Prediction, label: string | number, labelTime: number): Promise<void>;
  /** Several rows at once (a joiner chunk's), in few requests (store/batch.ts). */
  writeMany(rows: ReadonlyArray<{ prediction: Prediction; label: string | number; labelTime: number }>): Promise<void>;
  /**
   * Rows known before the loop started (the bootstrap model's training rows,
   * with the values an up-to-date store would have served): retrains and the
   * evaluator see them as they see joined rows. Idempotent (same key, same row).
   */
  seed(pipeline: string, rows: readonly TrainingRow[]): Promise<void>;
  /** The newest `limit` rows of a pipeline (event time < `before` when given), newest first. */
  newest(pipeline: string, options: { limit: number; before?: number }): Promise<TrainingRow[]>;
}

const INSERT_ROW =
  'INSERT INTO training_rows (pipeline, month, event_time, event_id, model_version, features_num, features_str, missing, label_str, label_num, label_time, entity_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';

export function createTrainingSet(cql: cassandra.Client, options: { batchRows?: number } = {}): TrainingSet {
  const monthsWritten = new Set<string>();
  const writer = createBatchWriter(cql, { rows: options.batchRows ?? 50 });
  const set: TrainingSet = {
    write(p, label, labelTime) {
      return set.writeMany([{ prediction: p, label, labelTime }]);
    },

    writeMany(rows) {
      if (rows.length === 0) return Promise.resolve();
      const writes: RowWrite[] = rows.map(({ prediction: p, label, labelTime }) => {
        const month = monthOf(p.event_time);
        const { num, str } = splitValues(p.features);
        return {
          query: INSERT_ROW,
          params: [p.pipeline, month, new Date(p.event_time), p.event_id, p.model_version, num, str, p.missing, ...labelColumns(label), new Date(labelTime), p.entity_id],
          partition: `${p.pipeline}/${month}`,
        };
      });
      const months = [...new Set(rows.map(({ prediction: p }) => `${p.pipeline}/${monthOf(p.event_time)}`))].filter((k) => !monthsWritten.has(k));
      return storeCall(`writing ${rows.length} training rows`, async () => {
        await Promise.all([
          writer.write(writes, `writing ${rows.length} training rows`),
          ...months.map((k) => {
            const [pipeline, month] = [k.slice(0, k.lastIndexOf('/')), k.slice(k.lastIndexOf('/') + 1)];
            return cql.execute('INSERT INTO training_months (pipeline, month) VALUES (?, ?)', [pipeline, month], IDEMPOTENT).then(() => monthsWritten.add(k));
          }),
        ]);
      });
    },

    seed(pipeline, rows) {
      if (rows.length === 0) return Promise.resolve();
      const months = [...new Set(rows.map((r) => monthOf(r.eventTime)))];
      return storeCall(`seeding ${rows.length} training rows of ${pipeline}`, async () => {
        await cassandra.concurrent.executeConcurrent(
          cql,
          INSERT_ROW,
          rows.map((r) => {
            const { num, str } = splitValues(r.values);
            const missing = Object.keys(r.values).filter((k) => r.values[k] === null);
            return [pipeline, monthOf(r.eventTime), new Date(r.eventTime), r.eventId, r.modelVersion, num, str, missing, ...labelColumns(r.label), new Date(r.labelTime), r.entityId ?? null];
          }),
          { concurrencyLevel: 64, raiseOnFirstError: true, executionProfile: undefined },
        );
        await Promise.all(months.map((m) => cql.execute('INSERT INTO training_months (pipeline, month) VALUES (?, ?)', [pipeline, m], IDEMPOTENT).then(() => monthsWritten.add(`${pipeline}/${m}`))));
      });
    },

    newest(pipeline, { limit, before }) {
      const out: TrainingRow[] = [];
      if (limit <= 0) return Promise.resolve(out);
      return storeCall(`reading training rows of ${pipeline}`, async () => {
        const monthsRs =
          before === undefined
            ? await cql.execute('SELECT month FROM training_months WHERE pipeline = ?', [pipeline], { ...IDEMPOTENT, fetchSize: 10_000 })
            : await cql.execute('SELECT month FROM training_months WHERE pipeline = ? AND month <= ?', [pipeline, monthOf(before)], { ...IDEMPOTENT, fetchSize: 10_000 });
        const months = monthsRs.rows.map((r) => r.get('month') as string);
        const cols = 'event_time, event_id, model_version, features_num, features_str, missing, label_str, label_num, label_time, entity_id';
        for (const month of months) {
          const bounded = before !== undefined && month === monthOf(before);
          const query = `SELECT ${cols} FROM training_rows WHERE pipeline = ? AND month = ?${bounded ? ' AND event_time < ?' : ''} LIMIT ?`;
          const remaining = limit - out.length;
          const params: unknown[] = bounded ? [pipeline, month, new Date(before), remaining] : [pipeline, month, remaining];
          let pageState: string | undefined;
          do {
            const rs = await cql.execute(query, params, { ...IDEMPOTENT, fetchSize: Math.min(remaining, 5000), ...(pageState ? { pageState } : {}) });
            for (const r of rs.rows) {
              out.push({
                eventId: r.get('event_id') as string,
                eventTime: (r.get('event_time') as Date).getTime(),
                values: joinValues(r.get('features_num'), r.get('features_str'), r.get('missing')),
                label: (r.get('label_str') as string | null) ?? (r.get('label_num') as number),
                labelTime: (r.get('label_time') as Date | null)?.getTime() ?? 0,
                modelVersion: r.get('model_version') as number,
                entityId: (r.get('entity_id') as string | null) ?? null,
              });
              if (out.length >= limit) return out;
            }
            pageState = rs.pageState ?? undefined;
          } while (pageState);
        }
        return out;
      });
    },
  };
  return set;
}
