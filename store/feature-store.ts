/**
 * The online feature store in Cassandra (`features_online`): one row per
 * feature set, entity and feature, holding the latest value with its as-of
 * time and the value before it. Reads are point lookups per entity.
 *
 * Writes are read-modify-write per entity, which is safe because
 * features.updates is keyed by entity: one feature-writer member owns an
 * entity at a time. An update whose as-of time is not newer than the stored
 * one is skipped, so a replayed or late update changes nothing.
 */
import cassandra from 'cassandra-driver';
import type { FeatureUpdate } from '../schemas/types.js';
import { classifyCassandraError, IDEMPOTENT } from './errors.js';

export interface StoredFeature {
  value: number | string | null;
  asOf: number;
  prevValue: number | string | null;
  prevAsOf: number | null;
}

/** feature name → stored value, for one entity in one set. */
export type EntityFeatures = Map<string, StoredFeature>;

/** A feature's past values, newest first. */
export type FeatureHistory = Map<string, Array<{ asOf: number; value: number | string | null }>>;

export interface FeatureStore {
  /** Current rows of each entity in `set`; entities without rows are absent from the map. */
  lookup(set: string, entityIds: string[]): Promise<Map<string, EntityFeatures>>;
  /** Values of `features` of one entity with as-of time in [from, to], newest first. */
  history(set: string, entityId: string, features: string[], from: number, to: number): Promise<FeatureHistory>;
  /**
   * The newest as-of time the writer has applied, per entity (absent = nothing yet). The key
   * `SET_WATERMARK` holds the newest as-of time applied to any entity of the set.
   */
  watermarks(set: string, entityIds: string[]): Promise<Map<string, number>>;
  /** Applies updates in order; returns how many feature values changed. */
  apply(updates: FeatureUpdate[], ttlSeconds: (set: string) => number): Promise<{ written: number; skipped: number }>;
  /**
   * Waits (at most `maxMs`) until the writer has applied, for each key, every update up to its time in
   * `newest`. A key the writer has never seen is waited for only while the set's watermark is older
   * than its time (its first value may be on its way). Watermarks this process wrote answer at once;
   * others are polled in Cassandra.
   */
  waitForWatermarks(set: string, newest: ReadonlyMap<string, number>, maxMs: number): Promise<{ waitedMs: number; caughtUp: boolean }>;
}

/** Newest watermarks written by this process, with a wake-up for waiters (the writer and preprocessor often share a process). */
function createLocalMarks() {
  const values = new Map<string, number>();
  let waiters: Array<() => void> = [];
  return {
    get: (k: string) => values.get(k) ?? -Infinity,
    raise(k: string, t: number) {
      if (t > (values.get(k) ?? -Infinity)) values.set(k, t);
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    },
    /** Resolves at the next raise, or after `ms`. */
    next(ms: number): Promise<void> {
      return new Promise((resolve) => {
        const t = setTimeout(done, Math.max(0, ms));
        function done() {
          clearTimeout(t);
          resolve();
        }
        waiters.push(done);
      });
    },
  };
}

const BATCH_ROWS = 50;
const POLL_MS = 25;
const key = (set: string, entity: string) => `${set}\u0000${entity}`;

function chunks<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

const SELECT = 'SELECT feature, num_value, str_value, as_of, prev_num_value, prev_str_value, prev_as_of FROM features_online WHERE feature_set = ? AND entity_id = ?';
const HISTORY_INSERT =
  'INSERT INTO features_history (feature_set, entity_id, feature, as_of, num_value, str_value, update_id) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?';
const HISTORY_SELECT =
  'SELECT as_of, num_value, str_value FROM features_history WHERE feature_set = ? AND entity_id = ? AND feature = ? AND as_of >= ? AND as_of <= ?';
const WATERMARK_UPSERT = 'UPDATE feature_watermarks USING TIMESTAMP ? AND TTL ? SET as_of = ? WHERE feature_set = ? AND entity_id = ?';
const INSERT =
  'INSERT INTO features_online (feature_set, entity_id, feature, num_value, str_value, as_of, update_id, prev_num_value, prev_str_value, prev_as_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?';

/** The watermark row of a whole feature set: the newest as-of time its writer applied to any key. */
export const SET_WATERMARK = '\u0000set';

export function createFeatureStore(client: cassandra.Client, options: { concurrency?: number } = {}): FeatureStore {
  const concurrency = options.concurrency ?? 64;
  const marks = createLocalMarks();

  async function read(set: string, entity: string): Promise<EntityFeatures | null> {
    const rs = await client.execute(SELECT, [set, entity], { prepare: true, isIdempotent: true });
    if (rs.rowLength === 0) return null;
    const out: EntityFeatures = new Map();
    for (const row of rs.rows) {
      out.set(row.get('feature') as string, {
        value: (row.get('num_value') as number | null) ?? (row.get('str_value') as string | null),
        asOf: (row.get('as_of') as Date).getTime(),
        prevValue: (row.get('prev_num_value') as number | null) ?? (row.get('prev_str_value') as string | null),
        prevAsOf: (row.get('prev_as_of') as Date | null)?.getTime() ?? null,
      });
    }
    return out;
  }

  const store: FeatureStore = {
    async lookup(set, entityIds) {
      const unique = [...new Set(entityIds)];
      const out = new Map<string, EntityFeatures>();
      try {
        for (let i = 0; i < unique.length; i += concurrency) {
          const slice = unique.slice(i, i + concurrency);
          const rows = await Promise.all(slice.map((e) => read(set, e)));
          slice.forEach((e, j) => {
            const r = rows[j];
            if (r) out.set(e, r);
          });
        }
      } catch (err) {
        throw classifyCassandraError(err, `reading online features of set ${set}`);
      }
      return out;
    },

    async history(set, entityId, features, from, to) {
      const out: FeatureHistory = new Map();
      try {
        await Promise.all(
          features.map(async (f) => {
            const rs = await client.execute(HISTORY_SELECT, [set, entityId, f, new Date(from), new Date(to)], { prepare: true, isIdempotent: true, fetchSize: 10_000 });
            out.set(
              f,
              rs.rows.map((r) => ({ asOf: (r.get('as_of') as Date).getTime(), value: (r.get('num_value') as number | null) ?? (r.get('str_value') as string | null) })),
            );
          }),
        );
      } catch (err) {
        throw classifyCassandraError(err, `reading feature history of ${set}/${entityId}`);
      }
      return out;
    },

    async watermarks(set, entityIds) {
      const out = new Map<string, number>();
      try {
        await Promise.all(
          [...new Set(entityIds)].map(async (e) => {
            const row = (await client.execute('SELECT as_of FROM feature_watermarks WHERE feature_set = ? AND entity_id = ?', [set, e], { prepare: true, isIdempotent: true })).first();
            if (row) out.set(e, (row.get('as_of') as Date).getTime());
          }),
        );
      } catch (err) {
        throw classifyCassandraError(err, `reading feature watermarks of ${set}`);
      }
      return out;
    },

    async apply(updates, ttlSeconds) {
      const byEntity = new Map<string, FeatureUpdate[]>();
      for (const u of updates) {
        const k = key(u.feature_set, u.entity_id);
        const list = byEntity.get(k) ?? [];
        list.push(u);
        byEntity.set(k, list);
      }
      let written = 0;
      let skipped = 0;
      const wrote = new Map<string, number>();
      try {
        await Promise.all(
          [...byEntity.values()].map(async (list) => {
            const { feature_set: set, entity_id: entity } = list[0]!;
            const current = (await read(set, entity)) ?? new Map<string, StoredFeature>();
            const changed = new Map<string, { f: StoredFeature; updateId: string }>();
            for (const u of list) {
              for (const [feature, value] of Object.entries(u.values)) {
                const prior = changed.get(feature)?.f ?? current.get(feature);
                if (prior && u.event_time <= prior.asOf) {
                  skipped++;
                  continue;
                }
                changed.set(feature, {
                  f: { value, asOf: u.event_time, prevValue: prior?.value ?? null, prevAsOf: prior?.asOf ?? null },
                  updateId: u.update_id,
                });
              }
            }
            const ttl = ttlSeconds(set);
            // History and latest values of one entity share a partition key: a few unlogged batches (one
            // mutation per partition each), kept small enough for Cassandra's batch size limits.
            const rows: Array<{ query: string; params: unknown[] }> = [];
            for (const u of list) {
              for (const [feature, value] of Object.entries(u.values)) {
                rows.push({ query: HISTORY_INSERT, params: [set, entity, feature, new Date(u.event_time), typeof value === 'number' ? value : null, typeof value === 'string' ? value : null, u.update_id, ttl] });
              }
            }
            for (const [feature, { f, updateId }] of changed) {
              rows.push({
                query: INSERT,
                params: [
                  set, entity, feature,
                  typeof f.value === 'number' ? f.value : null, typeof f.value === 'string' ? f.value : null,
                  new Date(f.asOf), updateId,
                  typeof f.prevValue === 'number' ? f.prevValue : null, typeof f.prevValue === 'string' ? f.prevValue : null,
                  f.prevAsOf === null ? null : new Date(f.prevAsOf),
                  ttl,
                ],
              });
            }
            await Promise.all(chunks(rows, BATCH_ROWS).map((b) => client.batch(b, { prepare: true, logged: false, isIdempotent: true })));
            // History first, watermark last: a reader that sees the watermark finds every value up to it.
            const newest = Math.max(...list.map((u) => u.event_time));
            // The cell timestamp is the as-of time, so the watermark only moves forward (last write wins).
            await client.execute(WATERMARK_UPSERT, [cassandra.types.Long.fromNumber(newest * 1000), ttl, new Date(newest), set, entity], IDEMPOTENT);
            wrote.set(key(set, entity), newest);
            written += changed.size;
          }),
        );
        // Then the set's own watermark: every key's values up to it are in.
        const bySet = new Map<string, number>();
        for (const u of updates) bySet.set(u.feature_set, Math.max(bySet.get(u.feature_set) ?? -Infinity, u.event_time));
        await Promise.all([...bySet].map(([set, newest]) => client.execute(WATERMARK_UPSERT, [cassandra.types.Long.fromNumber(newest * 1000), ttlSeconds(set), new Date(newest), set, SET_WATERMARK], IDEMPOTENT)));
        for (const [set, newest] of bySet) wrote.set(key(set, SET_WATERMARK), newest);
      } catch (err) {
        throw classifyCassandraError(err, `writing online features`);
      }
      for (const [k, t] of wrote) marks.raise(k, t);
      return { written, skipped };
    },

    async waitForWatermarks(set, newest, maxMs) {
      const started = Date.now();
      let pending = [...newest.keys()];
      // What this process wrote answers at once; Cassandra is asked for the rest (another process's writer).
      const behind = (marks_: Map<string, number>) => {
        const setMark = Math.max(marks_.get(SET_WATERMARK) ?? -Infinity, marks.get(key(set, SET_WATERMARK)));
        return pending.filter((e) => {
          const mark = Math.max(marks_.get(e) ?? -Infinity, marks.get(key(set, e)));
          // A key the writer has not seen yet is waited for only while the writer is behind in time for the whole set.
          return (mark === -Infinity && setMark >= newest.get(e)! ? Infinity : mark) < newest.get(e)!;
        });
      };
      pending = behind(new Map());
      while (pending.length > 0 && Date.now() - started < maxMs) {
        await marks.next(Math.min(POLL_MS, maxMs - (Date.now() - started)));
        pending = behind(new Map());
        if (pending.length === 0) break;
        pending = behind(await store.watermarks(set, [...pending, SET_WATERMARK]));
      }
      return { waitedMs: Date.now() - started, caughtUp: pending.length === 0 };
    },
  };
  return store;
}

/** Pure: the newest value with as-of ≤ `eventTime` from a newest-first history, as a StoredFeature for valueAt. */
export function asOfValue(history: Array<{ asOf: number; value: number | string | null }> | undefined, eventTime: number): StoredFeature | undefined {
  const hit = history?.find((h) => h.asOf <= eventTime);
  return hit ? { value: hit.value, asOf: hit.asOf, prevValue: null, prevAsOf: null } : undefined;
}

/**
 * The value to serve for an event at `eventTime`: the latest value known at
 * that time (as-of ≤ event time), or the one before it, as long as it is not
 * older than `maxAgeMs`. Returns null when nothing suitable is stored.
 */
export function valueAt(f: StoredFeature | undefined, eventTime: number, maxAgeMs: number | undefined): { value: number | string | null; asOf: number } | null {
  if (!f) return null;
  const fresh = (asOf: number) => maxAgeMs === undefined || eventTime - asOf <= maxAgeMs;
  if (f.asOf <= eventTime) return fresh(f.asOf) ? { value: f.value, asOf: f.asOf } : null;
  if (f.prevAsOf !== null && f.prevAsOf <= eventTime && fresh(f.prevAsOf)) return { value: f.prevValue, asOf: f.prevAsOf };
  return null;
}
