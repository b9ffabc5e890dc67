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
import { classifyCassandraError } from './errors.js';

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
  /** The newest as-of time the writer has applied, per entity (absent = nothing yet). */
  watermarks(set: string, entityIds: string[]): Promise<Map<string, number>>;
  /** Applies updates in order; returns how many feature values changed. */
  apply(updates: FeatureUpdate[], ttlSeconds: (set: string) => number): Promise<{ written: number; skipped: number }>;
}

const SELECT = 'SELECT feature, num_value, str_value, as_of, prev_num_value, prev_str_value, prev_as_of FROM features_online WHERE feature_set = ? AND entity_id = ?';
const HISTORY_INSERT =
  'INSERT INTO features_history (feature_set, entity_id, feature, as_of, num_value, str_value, update_id) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?';
const HISTORY_SELECT =
  'SELECT as_of, num_value, str_value FROM features_history WHERE feature_set = ? AND entity_id = ? AND feature = ? AND as_of >= ? AND as_of <= ?';
const WATERMARK_UPSERT = 'UPDATE feature_watermarks USING TIMESTAMP ? AND TTL ? SET as_of = ? WHERE feature_set = ? AND entity_id = ?';
const INSERT =
  'INSERT INTO features_online (feature_set, entity_id, feature, num_value, str_value, as_of, update_id, prev_num_value, prev_str_value, prev_as_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?';

export function createFeatureStore(client: cassandra.Client, options: { concurrency?: number } = {}): FeatureStore {
  const concurrency = options.concurrency ?? 64;

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

  return {
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
        const k = `${u.feature_set}\u0000${u.entity_id}`;
        const list = byEntity.get(k) ?? [];
        list.push(u);
        byEntity.set(k, list);
      }
      let written = 0;
      let skipped = 0;
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
            // History first, watermark last: a reader that sees the watermark finds every value up to it.
            await Promise.all(
              list.flatMap((u) =>
                Object.entries(u.values).map(([feature, value]) =>
                  client.execute(
                    HISTORY_INSERT,
                    [set, entity, feature, new Date(u.event_time), typeof value === 'number' ? value : null, typeof value === 'string' ? value : null, u.update_id, ttl],
                    { prepare: true, isIdempotent: true },
                  ),
                ),
              ),
            );
            await Promise.all(
              [...changed].map(([feature, { f, updateId }]) =>
                client.execute(
                  INSERT,
                  [
                    set, entity, feature,
                    typeof f.value === 'number' ? f.value : null, typeof f.value === 'string' ? f.value : null,
                    new Date(f.asOf), updateId,
                    typeof f.prevValue === 'number' ? f.prevValue : null, typeof f.prevValue === 'string' ? f.prevValue : null,
                    f.prevAsOf === null ? null : new Date(f.prevAsOf),
                    ttl,
                  ],
                  { prepare: true, isIdempotent: true },
                ),
              ),
            );
            const newest = Math.max(...list.map((u) => u.event_time));
            await client.execute(WATERMARK_UPSERT, [cassandra.types.Long.fromNumber(newest * 1000), ttl, new Date(newest), set, entity], { prepare: true, isIdempotent: true });
            written += changed.size;
          }),
        );
      } catch (err) {
        throw classifyCassandraError(err, `writing online features`);
      }
      return { written, skipped };
    },
  };
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
