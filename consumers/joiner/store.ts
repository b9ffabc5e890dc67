/**
 * The joiner's Cassandra tables: ground truth by event (labels waiting for
 * their prediction), late labels, claims (one LabeledPrediction per logged
 * prediction), labeled predictions by time, and the training set.
 *
 * Every failure is a retriable TransientError (STORE_UNAVAILABLE): the worker
 * runtime retries it with backoff and never dead-letters a label or a
 * prediction because Cassandra was away. Every write is idempotent (keyed by
 * event or prediction id) except the claim, which is a lightweight
 * transaction whose retry is made safe by `claimed_by` (see joiner.ts).
 */
import type cassandra from 'cassandra-driver';
import type { Prediction } from '../../schemas/types.js';
import { dayOf, splitValues } from '../../store/prediction-log.js';
import { TransientError } from '../../streams/errors.js';

const IDEMPOTENT = { prepare: true, isIdempotent: true } as const;

/** A label as kept in ground_truth. */
export interface StoredTruth {
  event_id: string;
  pipeline: string;
  label: string | number;
  event_time: number;
  label_time: number;
}

export interface TrainingRow {
  eventId: string;
  eventTime: number;
  /** The served values: numbers, categories, and null for features served missing. */
  values: Record<string, number | string | null>;
  label: string | number;
  modelVersion: number;
}

export interface ClaimResult {
  applied: boolean;
  /** The claimant on record when the insert was not applied. */
  claimedBy: string | null;
}

/** YYYY-MM (UTC) of a time in ms: the training_rows partition. */
export function monthOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 7);
}

async function run<T>(doing: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof TransientError) throw err;
    throw new TransientError(`${doing}: ${(err as Error).message}`, err, 'STORE_UNAVAILABLE');
  }
}

const labelCols = (label: string | number) => (typeof label === 'string' ? [label, null] : [null, label]);

export function createJoinerStore(cql: cassandra.Client) {
  const monthsWritten = new Set<string>();
  return {
    writeTruth(t: StoredTruth, receivedAt: number): Promise<void> {
      return run(`writing ground truth of ${t.event_id}`, async () => {
        await cql.execute(
          'INSERT INTO ground_truth (event_id, pipeline, label_str, label_num, event_time, label_time, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
          [t.event_id, t.pipeline, ...labelCols(t.label), new Date(t.event_time), new Date(t.label_time), new Date(receivedAt)],
          IDEMPOTENT,
        );
      });
    },

    readTruth(eventId: string): Promise<StoredTruth | null> {
      return run(`reading ground truth of ${eventId}`, async () => {
        const rs = await cql.execute('SELECT pipeline, label_str, label_num, event_time, label_time FROM ground_truth WHERE event_id = ?', [eventId], IDEMPOTENT);
        const r = rs.rows[0];
        if (!r) return null;
        const label = (r.get('label_str') as string | null) ?? (r.get('label_num') as number | null);
        if (label === null) return null;
        return { event_id: eventId, pipeline: r.get('pipeline') as string, label, event_time: (r.get('event_time') as Date).getTime(), label_time: (r.get('label_time') as Date).getTime() };
      });
    },

    markJoined(eventId: string): Promise<void> {
      return run(`marking ${eventId} joined`, async () => {
        await cql.execute('UPDATE ground_truth SET joined = true WHERE event_id = ?', [eventId], IDEMPOTENT);
      });
    },

    writeLate(t: StoredTruth, reason: string): Promise<void> {
      return run(`writing late label ${t.event_id}`, async () => {
        await cql.execute(
          'INSERT INTO late_labels (pipeline, day, event_id, label_str, label_num, event_time, label_time, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
          [t.pipeline, dayOf(t.event_time), t.event_id, ...labelCols(t.label), new Date(t.event_time), new Date(t.label_time), reason],
          IDEMPOTENT,
        );
      });
    },

    /** INSERT IF NOT EXISTS (LWT): not idempotent for the driver, made safe to retry by comparing claimed_by. */
    claim(predictionId: string, eventId: string, claimedBy: string, at: number): Promise<ClaimResult> {
      return run(`claiming ${predictionId}`, async () => {
        const rs = await cql.execute(
          'INSERT INTO labeled_claims (prediction_id, claimed_by, event_id, claimed_at) VALUES (?, ?, ?, ?) IF NOT EXISTS',
          [predictionId, claimedBy, eventId, new Date(at)],
          { prepare: true },
        );
        if (rs.wasApplied()) return { applied: true, claimedBy };
        return { applied: false, claimedBy: (rs.rows[0]?.get('claimed_by') as string | null | undefined) ?? null };
      });
    },

    writeLabeled(p: Prediction, label: string | number, labelTime: number, correct: boolean | null, error: number | null): Promise<void> {
      return run(`writing labeled prediction ${p.prediction_id}`, async () => {
        await cql.execute(
          'INSERT INTO labeled_by_time (pipeline, day, model_version, event_time, event_id, variant, model_name, label, label_num, predicted, score, value, correct, error, label_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
          [p.pipeline, dayOf(p.event_time), p.model_version, new Date(p.event_time), p.event_id, p.variant, p.model_name, ...labelCols(label), p.label, p.score, p.value, correct, error, new Date(labelTime)],
          IDEMPOTENT,
        );
      });
    },

    /** One row per event: the served prediction's features with the ground truth. */
    writeTrainingRow(p: Prediction, label: string | number, labelTime: number): Promise<void> {
      const month = monthOf(p.event_time);
      const { num, str } = splitValues(p.features);
      return run(`writing training row ${p.event_id}`, async () => {
        await Promise.all([
          cql.execute(
            'INSERT INTO training_rows (pipeline, month, event_time, event_id, model_version, features_num, features_str, missing, label_str, label_num, label_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            [p.pipeline, month, new Date(p.event_time), p.event_id, p.model_version, num, str, p.missing, ...labelCols(label), new Date(labelTime)],
            IDEMPOTENT,
          ),
          monthsWritten.has(`${p.pipeline}/${month}`)
            ? null
            : cql.execute('INSERT INTO training_months (pipeline, month) VALUES (?, ?)', [p.pipeline, month], IDEMPOTENT).then(() => monthsWritten.add(`${p.pipeline}/${month}`)),
        ]);
      });
    },

    /** entity_id and produced_at of an event's logged predictions, by `<model>@<version>/<variant>` (PredictionLog.byEvent does not return them). */
  };
}

export type JoinerStore = ReturnType<typeof createJoinerStore>;

/**
 * The model builder's training set: the newest `limit` rows of a pipeline
 * (optionally with event time < `before`), newest first. Walks the months
 * recorded in training_months newest first, one partition at a time.
 */
export async function readTrainingRows(cql: cassandra.Client, pipeline: string, options: { limit: number; before?: number }): Promise<TrainingRow[]> {
  const { limit, before } = options;
  const out: TrainingRow[] = [];
  if (limit <= 0) return out;
  return run(`reading training rows of ${pipeline}`, async () => {
    const monthsRs =
      before === undefined
        ? await cql.execute('SELECT month FROM training_months WHERE pipeline = ?', [pipeline], { ...IDEMPOTENT, fetchSize: 10_000 })
        : await cql.execute('SELECT month FROM training_months WHERE pipeline = ? AND month <= ?', [pipeline, monthOf(before)], { ...IDEMPOTENT, fetchSize: 10_000 });
    const months = monthsRs.rows.map((r) => r.get('month') as string);
    const cols = 'event_time, event_id, model_version, features_num, features_str, missing, label_str, label_num';
    for (const month of months) {
      const bounded = before !== undefined && month === monthOf(before);
      const query = `SELECT ${cols} FROM training_rows WHERE pipeline = ? AND month = ?${bounded ? ' AND event_time < ?' : ''} LIMIT ?`;
      const remaining = limit - out.length;
      const params: unknown[] = bounded ? [pipeline, month, new Date(before), remaining] : [pipeline, month, remaining];
      let pageState: string | undefined;
      do {
        const rs = await cql.execute(query, params, { ...IDEMPOTENT, fetchSize: Math.min(remaining, 5000), ...(pageState ? { pageState } : {}) });
        for (const r of rs.rows) {
          const values: Record<string, number | string | null> = {};
          for (const m of (r.get('missing') as string[] | null) ?? []) values[m] = null;
          Object.assign(values, (r.get('features_num') as Record<string, number> | null) ?? {}, (r.get('features_str') as Record<string, string> | null) ?? {});
          out.push({
            eventId: r.get('event_id') as string,
            eventTime: (r.get('event_time') as Date).getTime(),
            values,
            label: (r.get('label_str') as string | null) ?? (r.get('label_num') as number),
            modelVersion: r.get('model_version') as number,
          });
          if (out.length >= limit) return out;
        }
        pageState = rs.pageState ?? undefined;
      } while (pageState);
    }
    return out;
  });
}
