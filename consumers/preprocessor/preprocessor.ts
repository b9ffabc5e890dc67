/**
 * preprocessor's core: a client event plus the entity's online features
 * becomes a FeatureVector that records exactly which values the model will
 * be served.
 *
 * Policy, per the pipeline spec:
 * - an event field of the wrong type or a non-finite number: dead letter (VALIDATION);
 * - a declared field absent from the event: served as null, listed in `missing`;
 * - each feature set is looked up by its key (pipelines/feature-keys.ts): the event's
 *   entity, or for a set with `key: { field }` the value of that event field;
 * - an entity (or key) with no row in a feature set: `missingEntity: impute` serves nulls
 *   and lists the features in `missing` (the model imputes its training mean),
 *   `dead-letter` dead-letters the event (UNKNOWN_ENTITY);
 * - a feature value is served only if it was known at the event's time (as-of ≤
 *   event time) and is not older than the set's `maxAgeMs`; otherwise null + missing;
 * - a set with `pointInTime` serves each event the value current at its event time
 *   from the feature history (an as-of join), not merely the latest value; a set with
 *   `waitForWatermarkMs` first waits (up to that long) until the feature-writer has
 *   applied every update known at the chunk's newest event time, then serves what is there
 *   (entities the writer has never seen are not waited for);
 * - for sets computed from events (the feature-aggregator reads the same partitions of
 *   events.client), the wait is exact: until the aggregator has applied every event of the
 *   partition up to the chunk's last one, so an event is never served an aggregate that is
 *   merely late;
 * - with `live`, a spec version applied while the preprocessor runs (a new event field,
 *   feature set or aggregate) is served from the next chunk on.
 */
import { keyTimes } from '../../pipelines/feature-keys.js';
import type { LiveSpec } from '../live-spec.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import { checkEvent } from '../../pipelines/validate.js';
import type { ClientEvent, FeatureVector } from '../../schemas/types.js';
import { asOfValue, valueAt, type EntityFeatures, type FeatureStore } from '../../store/feature-store.js';
import type { ProgressStore } from '../../store/state-store.js';
import type { WorkerImpl } from '../../streams/definition.js';
import type { InputRecord, OutputRecord, RecordFailure } from '../../streams/runtime.js';

export { checkEvent };

export interface PreprocessorDeps {
  spec: PipelineSpec;
  /** The applied spec versions: a newer one is served from the next chunk (consumers/live-spec.ts). Absent: `spec` for good. */
  live?: LiveSpec;
  store: Pick<FeatureStore, 'lookup' | 'history' | 'waitForWatermarks'>;
  /** The feature-aggregator's progress per partition, for events-sourced sets. */
  aggregatorProgress?: Pick<ProgressStore, 'read'>;
  now?: () => number;
  /** Called when a wait ends, with how long it took and whether the writer caught up. */
  onWait?: (set: string, waitedMs: number, caughtUp: boolean) => void;
}

/** How far back an as-of join looks when the set has no maxAgeMs. */
const DEFAULT_LOOKBACK_MS = 7 * 24 * 3600 * 1000;

/**
 * Pure: the vector for one event, given the entity's rows per feature set
 * (undefined = no row). Returns null when the entity is unknown and the
 * policy dead-letters such events.
 */
export function buildVector(spec: PipelineSpec, e: ClientEvent, rows: Map<string, EntityFeatures | undefined>, now: number): FeatureVector | null {
  const values: Record<string, number | string | null> = {};
  const missing: string[] = [];
  const age: Record<string, number> = {};
  for (const name of Object.keys(spec.events.fields)) {
    const v = e.fields[name];
    values[name] = v === undefined ? null : v;
    if (v === undefined || v === null) missing.push(name);
  }
  for (const set of spec.featureSets) {
    const entity = rows.get(set.name);
    if (!entity && spec.missingEntity === 'dead-letter') return null;
    let newest: number | null = null;
    for (const feature of Object.keys(set.features)) {
      const served = valueAt(entity?.get(feature), e.event_time, set.maxAgeMs);
      values[feature] = served?.value ?? null;
      if (!served || served.value === null) missing.push(feature);
      if (served) newest = newest === null ? served.asOf : Math.max(newest, served.asOf);
    }
    if (newest !== null) age[set.name] = e.event_time - newest;
  }
  return {
    event_id: e.event_id,
    pipeline: e.pipeline,
    entity_id: e.entity_id,
    event_time: e.event_time,
    produced_at: e.produced_at,
    processed_at: now,
    values,
    missing,
    feature_age_ms: age,
  };
}

export function createPreprocessor(deps: PreprocessorDeps): WorkerImpl<'ClientEvent'> {
  const now = deps.now ?? Date.now;

  /** Waits (bounded) until the writer has applied every update known at each key's newest event time. */
  async function waitForWriter(set: string, maxMs: number, newest: Map<string, number>): Promise<void> {
    const { waitedMs, caughtUp } = await deps.store.waitForWatermarks(set, newest, maxMs);
    deps.onWait?.(set, waitedMs, caughtUp);
  }

  /** Polls the aggregator's progress on the chunk's partition until it has applied the chunk's last event, or the wait runs out. */
  async function waitForAggregator(sets: string[], maxMs: number, topic: string, partition: number, next: bigint): Promise<void> {
    if (!deps.aggregatorProgress) return;
    const started = Date.now();
    let caughtUp = false;
    for (;;) {
      const at = (await deps.aggregatorProgress.read(topic)).get(partition) ?? -1n;
      caughtUp = at >= next;
      if (caughtUp || Date.now() - started >= maxMs) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    for (const s of sets) deps.onWait?.(s, Date.now() - started, caughtUp);
  }

  return {
    async open() {
      await deps.live?.open();
    },
    async process(records: Array<InputRecord<ClientEvent>>) {
      await deps.live?.refresh();
      const spec = deps.live?.current() ?? deps.spec; // one spec version for the whole chunk
      const deadLetters: RecordFailure[] = [];
      const ok: Array<{ index: number; e: ClientEvent }> = [];
      records.forEach((r, index) => {
        const problem = checkEvent(spec, r.value);
        if (problem) deadLetters.push({ index, ...problem });
        else ok.push({ index, e: r.value });
      });
      // Each set is looked up by its key: the entity, or the value of the set's key field.
      const keyed = new Map(spec.featureSets.map((s) => [s.name, keyTimes(s, ok.map((x) => x.e))]));
      const aggregated = spec.featureSets.filter((s) => s.source === 'events' && s.waitForWatermarkMs > 0);
      const last = records.at(-1)!;
      await Promise.all([
        ...spec.featureSets.filter((s) => s.source === 'stream' && s.waitForWatermarkMs > 0).map((s) => waitForWriter(s.name, s.waitForWatermarkMs, keyed.get(s.name)!.newest)),
        aggregated.length > 0 ? waitForAggregator(aggregated.map((s) => s.name), Math.max(...aggregated.map((s) => s.waitForWatermarkMs)), last.topic, last.partition, BigInt(last.offset) + 1n) : null,
      ]);
      const perSet = new Map<string, Map<string, EntityFeatures>>();
      const histories = new Map<string, Map<string, Awaited<ReturnType<FeatureStore['history']>>>>();
      await Promise.all(
        spec.featureSets.map(async (s) => {
          const { newest, oldest } = keyed.get(s.name)!;
          perSet.set(s.name, await deps.store.lookup(s.name, [...newest.keys()]));
          if (!s.pointInTime) return;
          const byKey = new Map<string, Awaited<ReturnType<FeatureStore['history']>>>();
          await Promise.all(
            [...newest].map(async ([key, latest]) => {
              const from = oldest.get(key)! - (s.maxAgeMs ?? DEFAULT_LOOKBACK_MS);
              byKey.set(key, await deps.store.history(s.name, key, Object.keys(s.features), from, latest));
            }),
          );
          histories.set(s.name, byKey);
        }),
      );
      const outputs: OutputRecord[] = [];
      const t = now();
      for (const [i, { index, e }] of ok.entries()) {
        const rows = new Map(
          spec.featureSets.map((s) => {
            const key = keyed.get(s.name)!.keys[i];
            const latest = key === null || key === undefined ? undefined : perSet.get(s.name)?.get(key);
            const history = key === null || key === undefined ? undefined : histories.get(s.name)?.get(key);
            if (!latest || !history) return [s.name, latest] as const;
            const asOf: EntityFeatures = new Map();
            for (const f of Object.keys(s.features)) {
              const v = asOfValue(history.get(f), e.event_time);
              if (v) asOf.set(f, v);
            }
            return [s.name, asOf] as const;
          }),
        );
        const vector = buildVector(spec, e, rows, t);
        if (!vector) {
          const lacking = spec.featureSets.find((s) => !rows.get(s.name));
          const whose = lacking?.key ? `${lacking.key.field} ${JSON.stringify(e.fields[lacking.key.field] ?? null)}` : `entity "${e.entity_id}"`;
          deadLetters.push({ index, stage: 'VALIDATION', code: 'UNKNOWN_ENTITY', message: `${whose} has no online features in set "${lacking?.name}" and the pipeline dead-letters unknown entities` });
          continue;
        }
        outputs.push({ topic: 'features.vectors', record: 'FeatureVector', key: e.entity_id, value: vector });
      }
      return { outputs, deadLetters };
    },
  };
}
