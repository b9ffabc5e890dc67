/**
 * The prediction log: every prediction written twice, by event id (for the
 * joiner) and by pipeline, event-time day and model version (for analysts),
 * each row immutable and keyed by deterministic ids, so a replayed batch
 * rewrites identical cells.
 */
import cassandra from 'cassandra-driver';
import type { Prediction } from '../schemas/types.js';
import { TransientError } from '../streams/errors.js';

const BY_ID =
  'INSERT INTO prediction_log (event_id, model_name, model_version, variant, prediction_id, pipeline, entity_id, label, score, probabilities, value, features_num, features_str, missing, event_time, produced_at, scored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';
const BY_TIME =
  'INSERT INTO predictions_by_time (pipeline, day, event_time, event_id, variant, model_version, model_name, entity_id, label, score, value, features_num, features_str, missing, scored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';

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

/** The UTC calendar day of an instant (day partitions must not depend on the server's time zone). */
export function dayOf(ms: number): cassandra.types.LocalDate {
  const d = new Date(ms);
  return new cassandra.types.LocalDate(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate());
}

export interface LoggedPrediction {
  event_id: string;
  model_name: string;
  model_version: number;
  variant: string;
  prediction_id: string;
  pipeline: string;
  entity_id: string;
  produced_at: number;
  label: string | null;
  score: number;
  probabilities: Record<string, number>;
  value: number | null;
  features: Record<string, number | string | null>;
  missing: string[];
  event_time: number;
  scored_at: number;
}

export interface PredictionLog {
  write(predictions: Prediction[]): Promise<void>;
  /** Every logged prediction for an event (all models, versions and variants). */
  byEvent(eventId: string): Promise<LoggedPrediction[]>;
}

export function createPredictionLog(client: cassandra.Client, options: { concurrency?: number } = {}): PredictionLog {
  const concurrencyLevel = options.concurrency ?? 64;
  return {
    async write(predictions) {
      if (predictions.length === 0) return;
      const params: unknown[][] = [];
      const timeParams: unknown[][] = [];
      for (const p of predictions) {
        const { num, str } = splitValues(p.features);
        params.push([
          p.event_id, p.model_name, p.model_version, p.variant, p.prediction_id, p.pipeline, p.entity_id, p.label, p.score,
          p.probabilities, p.value, num, str, p.missing, new Date(p.event_time), new Date(p.produced_at), new Date(p.scored_at),
        ]);
        timeParams.push([
          p.pipeline, dayOf(p.event_time), new Date(p.event_time), p.event_id, p.variant, p.model_version, p.model_name, p.entity_id,
          p.label, p.score, p.value, num, str, p.missing, new Date(p.scored_at),
        ]);
      }
      try {
        const opts = { concurrencyLevel, executionProfile: undefined, raiseOnFirstError: true };
        await Promise.all([
          cassandra.concurrent.executeConcurrent(client, BY_ID, params, opts),
          cassandra.concurrent.executeConcurrent(client, BY_TIME, timeParams, opts),
        ]);
      } catch (err) {
        throw new TransientError(`writing prediction log rows: ${(err as Error).message}`, err, 'STORE_UNAVAILABLE');
      }
    },
    async byEvent(eventId) {
      const rs = await client.execute(
        'SELECT event_id, model_name, model_version, variant, prediction_id, pipeline, entity_id, produced_at, label, score, probabilities, value, features_num, features_str, missing, event_time, scored_at FROM prediction_log WHERE event_id = ?',
        [eventId],
        { prepare: true, isIdempotent: true },
      );
      return rs.rows.map((r) => ({
        event_id: r.get('event_id'),
        model_name: r.get('model_name'),
        model_version: r.get('model_version'),
        variant: r.get('variant'),
        prediction_id: r.get('prediction_id'),
        pipeline: r.get('pipeline'),
        entity_id: r.get('entity_id'),
        produced_at: (r.get('produced_at') as Date).getTime(),
        label: r.get('label'),
        score: r.get('score'),
        probabilities: r.get('probabilities') ?? {},
        value: r.get('value'),
        features: { ...(r.get('features_num') ?? {}), ...(r.get('features_str') ?? {}) },
        missing: r.get('missing') ?? [],
        event_time: (r.get('event_time') as Date).getTime(),
        scored_at: (r.get('scored_at') as Date).getTime(),
      }));
    },
  };
}
