/**
 * Which row of a feature set serves an event: the event's entity, or, for a
 * set with `key: { field }`, the value of that event field (a client's events
 * joined with a cohort set keyed by age, an hourly profile keyed by hour of
 * day). The one rule that the preprocessor, the replay's feeds and the
 * bootstrap's point-in-time rows all use, so a value is stored and looked up
 * under the same id.
 *
 * A key value is a string: a categorical field's value as it is, a numeric
 * field's value in JavaScript's shortest round-trip form (`String(n)`: 35 →
 * "35", 0.5 → "0.5", 1e21 → "1e+21"). A missing value (null, absent) or an
 * empty string is no key: the event has no row in that set (served as
 * missing, or dead-lettered under `missingEntity: "dead-letter"`). A
 * FeatureUpdate of a keyed set carries the key value in `entity_id`.
 *
 *   featureKeyOf(set, event) // → 'nsw', '35', or null
 *
 * Pure: no I/O.
 */
import type { ClientEvent } from '../schemas/types.js';
import type { FeatureSetSpec } from './spec.js';

/** A field value as a feature-set key, or null when it is no key. */
export function renderKey(value: number | string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : null;
  return value === '' ? null : value;
}

/** The id under which `set` stores the row that serves `event`. */
export function featureKeyOf(set: Pick<FeatureSetSpec, 'key'>, event: Pick<ClientEvent, 'entity_id' | 'fields'>): string | null {
  if (!set.key) return event.entity_id === '' ? null : event.entity_id;
  return Object.hasOwn(event.fields, set.key.field) ? renderKey(event.fields[set.key.field]) : null;
}

/** Per key of `set`: the newest and the oldest event time among `events` (events without a key are left out). */
export function keyTimes(set: Pick<FeatureSetSpec, 'key'>, events: Array<Pick<ClientEvent, 'entity_id' | 'fields' | 'event_time'>>): {
  /** Each event's key, in input order. */
  keys: Array<string | null>;
  newest: Map<string, number>;
  oldest: Map<string, number>;
} {
  const keys = events.map((e) => featureKeyOf(set, e));
  const newest = new Map<string, number>();
  const oldest = new Map<string, number>();
  events.forEach((e, i) => {
    const k = keys[i];
    if (k === null || k === undefined) return;
    newest.set(k, Math.max(newest.get(k) ?? -Infinity, e.event_time));
    oldest.set(k, Math.min(oldest.get(k) ?? Infinity, e.event_time));
  });
  return { keys, newest, oldest };
}
