/**
 * feature-aggregator: online features computed from the entities' own events,
 * for feature sets with `source: "events"` (e.g. the mean of the last 48
 * prices, the last value of a field, a count). It reads events.client in its
 * own consumer group, keeps per entity the recent values each aggregate
 * needs, and writes the aggregates to the online store (latest, history and
 * watermark) with as-of time = event time + the set's `availableAfterMs`, so
 * the preprocessor serves an event only aggregates of events known before it.
 *
 * events.client is keyed by entity, so one member owns an entity at a time.
 * Its state (`feature_aggregate_state`) records the last input offset it
 * applied; a replayed event is skipped, and the store ignores updates that are
 * not newer than what it holds, so a crash anywhere counts nothing twice.
 * Events that fail validation are skipped here (the preprocessor dead-letters them).
 *
 *   const handler = createEventAggregator({ spec, store, cql });
 */
import type cassandra from 'cassandra-driver';
import type { FeatureSetSpec, PipelineSpec } from '../../pipelines/spec.js';
import type { ClientEvent, FeatureUpdate } from '../../schemas/types.js';
import type { FeatureStore } from '../../store/feature-store.js';
import { TransientError } from '../../streams/errors.js';
import type { InputRecord, WorkerHandler } from '../../streams/runtime.js';
import { checkEvent } from '../preprocessor/preprocessor.js';

export interface AggregateState {
  /** Last applied input, to skip replays. */
  partition: number;
  offset: string;
  /** Recent values per event field, oldest first, as long as the longest window needs. */
  values: Record<string, Array<number | string | null>>;
}

/** Pure: the aggregates of a set after appending one event's fields to the state (mutated). */
export function aggregateEvent(set: FeatureSetSpec, state: AggregateState, fields: ClientEvent['fields']): Record<string, number | string | null> {
  const longest = new Map<string, number>();
  for (const a of Object.values(set.aggregates)) longest.set(a.field, Math.max(longest.get(a.field) ?? 0, a.window));
  for (const [field, keep] of longest) {
    const list = state.values[field] ?? [];
    list.push(fields[field] ?? null);
    if (list.length > keep) list.splice(0, list.length - keep);
    state.values[field] = list;
  }
  const out: Record<string, number | string | null> = {};
  for (const [feature, a] of Object.entries(set.aggregates)) {
    const window = (state.values[a.field] ?? []).slice(-a.window);
    const nums = window.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    switch (a.op) {
      case 'last':
        out[feature] = window.at(-1) ?? null;
        break;
      case 'count':
        out[feature] = window.length;
        break;
      case 'sum':
        out[feature] = nums.reduce((x, y) => x + y, 0);
        break;
      case 'mean':
        out[feature] = nums.length ? nums.reduce((x, y) => x + y, 0) / nums.length : null;
        break;
      case 'min':
        out[feature] = nums.length ? Math.min(...nums) : null;
        break;
      case 'max':
        out[feature] = nums.length ? Math.max(...nums) : null;
        break;
    }
  }
  return out;
}

export interface EventAggregatorDeps {
  spec: PipelineSpec;
  store: FeatureStore;
  cql: cassandra.Client;
}

export function createEventAggregator(deps: EventAggregatorDeps): WorkerHandler<'ClientEvent'> {
  const { spec, store, cql } = deps;
  const sets = spec.featureSets.filter((s) => s.source === 'events');

  /** Reads state once per entity per chunk: never cached across chunks, since a rebalance may move the entity meanwhile. */
  async function load(cache: Map<string, AggregateState | null>, set: string, entity: string): Promise<AggregateState | null> {
    const key = `${set}\u0000${entity}`;
    if (cache.has(key)) return cache.get(key)!;
    const row = (await cql.execute('SELECT state FROM feature_aggregate_state WHERE feature_set = ? AND entity_id = ?', [set, entity], { prepare: true, isIdempotent: true })).first();
    const state = row ? (JSON.parse(row.get('state') as string) as AggregateState) : null;
    cache.set(key, state);
    return state;
  }

  return {
    name: 'feature-aggregator',
    input: { topic: 'events.client', record: 'ClientEvent' },
    async process(records: Array<InputRecord<ClientEvent>>) {
      const cache = new Map<string, AggregateState | null>();
      const updates: FeatureUpdate[] = [];
      const touched = new Map<string, { set: string; entity: string; state: AggregateState }>();
      try {
        for (const r of records) {
          const e = r.value;
          if (checkEvent(spec, e)) continue;
          for (const set of sets) {
            const prior = await load(cache, set.name, e.entity_id);
            if (prior && prior.partition === r.partition && BigInt(r.offset) <= BigInt(prior.offset)) continue; // replayed
            const state: AggregateState = prior ?? { partition: r.partition, offset: r.offset, values: {} };
            const values = aggregateEvent(set, state, e.fields);
            state.partition = r.partition;
            state.offset = r.offset;
            cache.set(`${set.name}\u0000${e.entity_id}`, state);
            touched.set(`${set.name}\u0000${e.entity_id}`, { set: set.name, entity: e.entity_id, state });
            updates.push({ update_id: `${set.name}:${e.entity_id}:${e.event_id}`, feature_set: set.name, entity_id: e.entity_id, event_time: e.event_time + set.availableAfterMs, values });
          }
        }
        // Values first, then the state that says they were applied.
        await store.apply(updates, (name) => sets.find((s) => s.name === name)?.ttlSeconds ?? 30 * 24 * 3600);
        await Promise.all(
          [...touched.values()].map((t) =>
            cql.execute('INSERT INTO feature_aggregate_state (feature_set, entity_id, state, updated_at) VALUES (?, ?, ?, ?)', [t.set, t.entity, JSON.stringify(t.state), new Date()], { prepare: true, isIdempotent: true }),
          ),
        );
      } catch (err) {
        if (err instanceof TransientError) throw err;
        throw new TransientError(`aggregating event features: ${(err as Error).message}`, err, 'STORE_UNAVAILABLE');
      }
      return { outputs: [] };
    },
  };
}
