/**
 * The prediction log: every prediction written twice, by event id
 * (`prediction_log`, for point lookups) and by pipeline and event-time day
 * (`predictions_by_time`, for analysts and dashboards), each row immutable
 * and keyed by deterministic ids, so a replayed chunk rewrites identical
 * cells. Each row carries the feature values the preprocessor served and, in
 * `model_features`, the names of the inputs its model took (in input order):
 * the values that model saw are those names' entries.
 *
 * Rows of `predictions_by_time` that share a partition (pipeline, day) go in
 * one unlogged batch (one mutation per partition); `prediction_log` rows are
 * one partition each and go out in unlogged batches per replica
 * (store/batch.ts). A process-wide limit on
 * requests in flight gives backpressure instead of overrunning the driver's
 * per-connection queue.
 */
import cassandra from 'cassandra-driver';
import type { Prediction } from '../schemas/types.js';
import { createBatchWriter, type RowWrite } from './batch.js';
import { IDEMPOTENT, storeCall } from './errors.js';

const BY_ID =
  'INSERT INTO prediction_log (event_id, model_name, model_version, variant, prediction_id, pipeline, entity_id, label, score, probabilities, value, features_num, features_str, missing, model_features, event_time, produced_at, scored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';
const BY_TIME =
  'INSERT INTO predictions_by_time (pipeline, day, event_time, event_id, variant, model_version, model_name, entity_id, label, score, value, features_num, features_str, missing, model_features, scored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';
const SELECT_BY_EVENT =
  'SELECT event_id, model_name, model_version, variant, prediction_id, pipeline, entity_id, produced_at, label, score, probabilities, value, features_num, features_str, missing, model_features, event_time, scored_at FROM prediction_log WHERE event_id = ?';

/** Splits served values into the typed maps the tables hold (nulls are omitted: absent = missing). */
export function splitValues(values: Record<string, number | string | null>): { num: Record<string, number>; str: Record<string, string> } {
  const num: Record<string, number> = {};
  const str: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) {
    if (typeof v === 'number') num[k] = v;
    else if (typeof v === 'string') str[k] = v;
  }
  return { num, str };
}

/** The served values back from the typed maps; features listed as missing are restored as null. */
export function joinValues(num: Record<string, number> | null, str: Record<string, string> | null, missing: readonly string[] | null): Record<string, number | string | null> {
  const out: Record<string, number | string | null> = {};
  for (const m of missing ?? []) out[m] = null;
  return Object.assign(out, num ?? {}, str ?? {});
}

/** The UTC calendar day of an instant (day partitions must not depend on the server's time zone). */
export function dayOf(ms: number): cassandra.types.LocalDate {
  const d = new Date(ms);
  return new cassandra.types.LocalDate(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate());
}

export interface PredictionLog {
  write(predictions: Prediction[]): Promise<void>;
  /** Every logged prediction for an event (all models, versions and variants). */
  byEvent(eventId: string): Promise<Prediction[]>;
}

/** A counting semaphore shared by every writer of a process. */
export function createLimiter(limit: number) {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async function run<T>(fn: () => Promise<T>): Promise<T> {
    if (active >= limit) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}
export type Limiter = ReturnType<typeof createLimiter>;

export function createPredictionLog(client: cassandra.Client, options: { inFlight?: Limiter; batchRows?: number } = {}): PredictionLog {
  const writer = createBatchWriter(client, { limit: options.inFlight ?? createLimiter(256), concurrency: 64, ...(options.batchRows ? { rows: options.batchRows } : {}) });
  return {
    write(predictions) {
      const rows: RowWrite[] = [];
      for (const p of predictions) {
        const { num, str } = splitValues(p.features);
        rows.push({
          query: BY_ID,
          params: [
            p.event_id, p.model_name, p.model_version, p.variant, p.prediction_id, p.pipeline, p.entity_id, p.label, p.score,
            p.probabilities, p.value, num, str, p.missing, p.model_features, new Date(p.event_time), new Date(p.produced_at), new Date(p.scored_at),
          ],
          key: [p.event_id],
        });
        const day = dayOf(p.event_time);
        rows.push({
          query: BY_TIME,
          params: [p.pipeline, day, new Date(p.event_time), p.event_id, p.variant, p.model_version, p.model_name, p.entity_id, p.label, p.score, p.value, num, str, p.missing, p.model_features, new Date(p.scored_at)],
          partition: `${p.pipeline}/${day.toString()}`,
        });
      }
      return writer.write(rows, `writing ${predictions.length} prediction log rows`);
    },
    byEvent(eventId) {
      return storeCall(`reading the prediction log of ${eventId}`, async () => {
        const rs = await client.execute(SELECT_BY_EVENT, [eventId], IDEMPOTENT);
        return rs.rows.map((r): Prediction => ({
          prediction_id: r.get('prediction_id'),
          event_id: r.get('event_id'),
          pipeline: r.get('pipeline'),
          entity_id: r.get('entity_id'),
          model_name: r.get('model_name'),
          model_version: r.get('model_version'),
          variant: r.get('variant'),
          label: r.get('label'),
          score: r.get('score'),
          probabilities: r.get('probabilities') ?? {},
          value: r.get('value'),
          features: joinValues(r.get('features_num'), r.get('features_str'), r.get('missing')),
          missing: r.get('missing') ?? [],
          model_features: r.get('model_features') ?? [],
          event_time: (r.get('event_time') as Date).getTime(),
          produced_at: (r.get('produced_at') as Date).getTime(),
          scored_at: (r.get('scored_at') as Date).getTime(),
        }));
      });
    },
  };
}
