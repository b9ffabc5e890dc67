/**
 * Backfill of training rows for an input a later spec version added (issue 11).
 *
 * Training rows are what was served, so rows logged before a spec version
 * added a feature do not carry it at all. For such an input (the key absent
 * from the row: never served, as opposed to served missing, which stays
 * missing), the value is read from the feature history as of the row's
 * event time, by the preprocessor's own rule (`asOfValue`, then `valueAt`
 * with the set's maxAgeMs): the value the preprocessor would have served had
 * the version been in force, so the set stays point-in-time correct. The
 * history holds it when the feature's writer covered those times: the
 * feature-aggregator, started for a new events-sourced set, aggregates
 * events.client from the beginning; a streamed set's past updates replayed
 * to features.updates. A row whose value the history does not hold keeps it
 * absent (imputed at training as any missing value).
 */
import { renderKey } from '../../pipelines/feature-keys.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import { asOfValue, valueAt, type FeatureStore } from '../../store/feature-store.js';
import type { TrainingRow } from '../../store/training-set.js';

/** How far back the history is read when the set has no maxAgeMs (the preprocessor's default). */
const DEFAULT_LOOKBACK_MS = 7 * 24 * 3600 * 1000;

export interface Backfill {
  rows: TrainingRow[];
  /** Values filled from the history, per feature. */
  filled: Record<string, number>;
}

export async function backfillRows(spec: PipelineSpec, rows: readonly TrainingRow[], store: Pick<FeatureStore, 'history'>): Promise<Backfill> {
  const inputs = new Set(spec.model.features);
  const out = rows.map((r) => ({ ...r, values: { ...r.values } }));
  const filled: Record<string, number> = {};
  for (const set of spec.featureSets) {
    const features = Object.keys(set.features).filter((f) => inputs.has(f));
    const byKey = new Map<string, typeof out>();
    for (const r of out) {
      if (!features.some((f) => !(f in r.values))) continue;
      const key = set.key ? renderKey(r.values[set.key.field]) : (r.entityId ?? null);
      if (key === null) continue;
      byKey.set(key, [...(byKey.get(key) ?? []), r]);
    }
    for (const [key, rs] of byKey) {
      const times = rs.map((r) => r.eventTime);
      const history = await store.history(set.name, key, features, Math.min(...times) - (set.maxAgeMs ?? DEFAULT_LOOKBACK_MS), Math.max(...times));
      for (const r of rs) {
        for (const f of features) {
          if (f in r.values) continue;
          const v = valueAt(asOfValue(history.get(f), r.eventTime), r.eventTime, set.maxAgeMs);
          if (!v || v.value === null) continue;
          r.values[f] = v.value;
          filled[f] = (filled[f] ?? 0) + 1;
        }
      }
    }
  }
  return { rows: out, filled };
}
