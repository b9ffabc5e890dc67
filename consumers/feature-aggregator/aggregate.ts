/**
 * feature-aggregator's pure core: aggregates of an entity's recent events
 * (last/mean/sum/min/max/count over a window of its events), as the state
 * scheme's `apply`: the state of an entity holds, per events-sourced feature
 * set, the recent values each aggregate needs; each event appends its fields
 * and yields one FeatureUpdate per set, known `availableAfterMs` after the
 * event, so the preprocessor serves an event only aggregates of events known
 * before it.
 */
import { checkEvent } from '../../pipelines/validate.js';
import type { FeatureSetSpec, PipelineSpec } from '../../pipelines/spec.js';
import type { ClientEvent, FeatureUpdate } from '../../schemas/types.js';
import type { StatefulLogic } from '../../streams/state.js';

export interface AggregateState {
  /** Recent values per event field, oldest first, as long as the longest window needs. */
  values: Record<string, Array<number | string | null>>;
}

/** An entity's state: one AggregateState per events-sourced feature set. */
export type EntityAggregates = Record<string, AggregateState>;

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


/** The aggregator as stateful logic: key = entity, effects = the FeatureUpdates to write. */
export function aggregatorLogic(spec: PipelineSpec): StatefulLogic<'ClientEvent', EntityAggregates, undefined, FeatureUpdate> {
  const sets = spec.featureSets.filter((s) => s.source === 'events');
  return {
    // Events that fail validation are skipped here (the preprocessor dead-letters them).
    keyOf: (r) => (checkEvent(spec, r.value) ? null : r.value.entity_id),
    initial: () => ({}),
    apply(state, r) {
      const e = r.value;
      const next: EntityAggregates = structuredClone(state);
      const effects: FeatureUpdate[] = [];
      for (const set of sets) {
        const s = (next[set.name] ??= { values: {} });
        const values = aggregateEvent(set, s, e.fields);
        effects.push({ update_id: `${set.name}:${e.entity_id}:${e.event_id}`, feature_set: set.name, entity_id: e.entity_id, event_time: e.event_time + set.availableAfterMs, values });
      }
      return { state: next, effects };
    },
  };
}
