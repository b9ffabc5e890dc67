/**
 * feature-aggregator: online features computed from the entities' own events,
 * for feature sets with `source: "events"` (the mean of the last 48 prices,
 * the last value of a field, a count). It reads events.client in its own
 * consumer group — keyed by entity, so one member owns an entity — keeps each
 * entity's recent values in the state scheme (streams/state.ts: a replayed
 * event re-writes its update instead of being counted twice) and writes the
 * aggregates to the online store (latest, history, watermark). After each
 * chunk it records how far it got per partition (`worker_progress`): the
 * preprocessor, reading the same partitions, waits until the aggregator has
 * applied every event before the one it serves.
 *
 *   npm start -- run --workers feature-aggregator
 */
import type { FeatureUpdate } from '../../schemas/types.js';
import type { Stores } from '../../store/stores.js';
import { defineWorker, type WorkerContext } from '../../streams/definition.js';
import { createStatefulProcess } from '../../streams/state.js';
import { aggregatorLogic, type EntityAggregates } from './aggregate.js';

export const FEATURE_AGGREGATOR = 'feature-aggregator';

export const featureAggregator = defineWorker({
  name: FEATURE_AGGREGATOR,
  doc: 'for feature sets with source "events": last/mean/sum/min/max/count over each entity\'s recent events, known availableAfterMs after the event, so an event is served only aggregates of the events before it',
  input: { topics: [{ topic: 'events.client', record: 'ClientEvent' }] },
  outputs: [],
  tables: { reads: ['worker_state'], writes: ['features_online', 'features_history', 'feature_watermarks', 'worker_state', 'worker_progress'] },
  state: 'per entity: the recent values each aggregate needs (worker_state), and progress per partition (worker_progress)',
  settings: {},
  enabled: (spec) => spec.featureSets.some((s) => s.source === 'events'),
  createMetrics: () => null,
  create(_settings, ctx: WorkerContext<Pick<Stores, 'features' | 'state' | 'progress'>>) {
    const { spec, stores } = ctx;
    const ttl = new Map(spec.featureSets.map((s) => [s.name, s.ttlSeconds]));
    const logic = aggregatorLogic(spec);
    const progress = stores.progress(FEATURE_AGGREGATOR);
    const stateful = createStatefulProcess(
      { ...logic, runEffects: async (updates: FeatureUpdate[]) => void (await stores.features.apply(updates, (set) => ttl.get(set) ?? 30 * 24 * 3600)) },
      stores.state<EntityAggregates, FeatureUpdate>(FEATURE_AGGREGATOR),
    );
    return {
      async process(records, pctx) {
        const result = await stateful(records, pctx);
        const last = records.at(-1);
        if (last) await progress.write(last.topic, last.partition, BigInt(last.offset) + 1n);
        return result;
      },
    };
  },
});
