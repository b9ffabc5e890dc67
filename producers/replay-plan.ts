/**
 * The replay plan: a CSV dataset turned, by a pipeline spec's `replay`
 * section, into the time-ordered stream of records a live system would have
 * seen — events, feature-store feed updates and delayed ground truth. Pure
 * and deterministic: the same spec and rows always give the same plan.
 *
 * Per data row t (in file order):
 * - one ClientEvent at its event time (`at` = event_time, read as
 *   `replay.eventTime` says: see pipelines/replay-time.ts), its fields read
 *   from their columns (`replay.columns`, default the field's own name);
 * - per feed, one FeatureUpdate whose values are computed from the rows of
 *   the row's key up to and including t, as of event_time + availableAfterMs
 *   (`at` = that as-of time, so a value is published only once it is known);
 * - one GroundTruth at event_time + label.delayMs, unless the row's label is
 *   empty (or not a finite number, for a numeric label).
 *
 * A feed's key is its feature set's (pipelines/feature-keys.ts): the row's
 * entity, or for a set with `key: { field }` the value of that event field,
 * which becomes the update's entity_id; a row without a key value publishes
 * no update to such a set. Feed windows count the key's own rows in file
 * order (with a constant entity id that is every row): `lag k` is the key's
 * k-th previous row (0 = this row), `mean n` averages the finite values of
 * its last n rows (fewer at the start). Rows are expected in time order per
 * key.
 *
 * `offset`/`limit` select the rows that are replayed. Feeds still see the
 * rows before `offset` as history, and an offset plan starts the store where
 * the full replay would have it: per feed and key, the latest earlier
 * update known at the window's first event time is due at that time (its
 * record keeps its true as-of), and earlier updates not yet known by then
 * keep their own times. Earlier rows' events and labels are not replayed.
 *
 * Order: by `at`; at equal times feature updates, then events, then labels
 * (a value that becomes available exactly at an event's time is visible to
 * it); then by row.
 */
import { featureKeyOf, renderKey } from '../pipelines/feature-keys.js';
import { compileEventTime, eventTimeColumns } from '../pipelines/replay-time.js';
import type { FeatureSetSpec, PipelineSpec } from '../pipelines/spec.js';
import type { ClientEvent, FeatureUpdate, GroundTruth } from '../schemas/types.js';
import { ConfigError } from '../core/errors.js';

/** One record to send, due at `at` in event time (ms). */
export type ReplayAction =
  | { at: number; kind: 'feature'; record: FeatureUpdate }
  | { at: number; kind: 'event'; record: ClientEvent }
  | { at: number; kind: 'label'; record: GroundTruth };
export type ReplayKind = ReplayAction['kind'];
export type ReplayPlan = ReplayAction[];

export interface ReplayPlanOptions {
  /** Replay at most this many rows. Default: all. */
  limit?: number;
  /** Skip this many data rows first. Default 0. */
  offset?: number;
}

export type FeatureValue = number | string | null;
export type FeatureRow = Record<string, FeatureValue>;

export interface PointInTimeRow {
  event: ClientEvent;
  /** The event's fields plus every feature-set feature as an up-to-date online store would serve it. */
  values: FeatureRow;
  /** The event's ground truth in the plan, or null when it has none. */
  label: string | number | null;
}

const KIND_ORDER: Record<ReplayKind, number> = { feature: 0, event: 1, label: 2 };

/** Builds the replay plan of `rows` (parsed CSV records) under `spec`; throws ConfigError when a column the spec names is missing. */
export function buildReplayPlan(spec: PipelineSpec, rows: Array<Record<string, string>>, opts: ReplayPlanOptions = {}): ReplayPlan {
  const replay = spec.replay;
  if (!replay) throw new ConfigError(`pipeline spec ${spec.name} has no replay section`);
  const offset = opts.offset ?? 0;
  const limit = opts.limit ?? Number.POSITIVE_INFINITY;
  if (!Number.isInteger(offset) || offset < 0) throw new ConfigError(`replay offset must be a non-negative integer (got ${offset})`);
  if (limit !== Number.POSITIVE_INFINITY && (!Number.isInteger(limit) || limit < 0)) throw new ConfigError(`replay limit must be a non-negative integer (got ${limit})`);
  const first = rows[0];
  if (!first) return [];
  checkColumns(spec, replay, new Set(Object.keys(first)));

  const entityOf = (row: Record<string, string>): string => ('column' in replay.entityId ? (row[replay.entityId.column] as string) : replay.entityId.constant);
  const columnOf = (field: string): string => (Object.hasOwn(replay.columns, field) ? (replay.columns[field] as string) : field);

  const numbers = new Map<string, Array<number | null>>();
  const numericColumn = (column: string): Array<number | null> => {
    let values = numbers.get(column);
    if (!values) numbers.set(column, (values = rows.map((row) => toNumber(row[column]))));
    return values;
  };
  /** An event field of row t, typed as the spec declares it. */
  const fieldValue = (name: string, t: number): FeatureValue =>
    spec.events.fields[name] === 'numeric' ? numericColumn(columnOf(name))[t] ?? null : ((rows[t] as Record<string, string>)[columnOf(name)] as string);

  // Per feature set: each row's key (its entity, or its key field's value; null = no key), each
  // key's rows in file order, and each row's position among them.
  interface Grouping { keys: Array<string | null>; members: Map<string, number[]>; position: number[] }
  const groupings = new Map<string, Grouping>();
  const groupingOf = (set: FeatureSetSpec): Grouping => {
    let g = groupings.get(set.name);
    if (g) return g;
    const keyField = set.key?.field;
    const keys = rows.map((row, t) => (keyField === undefined ? entityOf(row) : renderKey(fieldValue(keyField, t))));
    const members = new Map<string, number[]>();
    const position: number[] = [];
    keys.forEach((k, t) => {
      if (k === null) {
        position.push(-1);
        return;
      }
      let list = members.get(k);
      if (!list) members.set(k, (list = []));
      position.push(list.length);
      list.push(t);
    });
    groupings.set(set.name, (g = { keys, members, position }));
    return g;
  };

  const setsByName = new Map(spec.featureSets.map((s) => [s.name, s]));
  const feedValue = (set: FeatureSetSpec, feature: string, how: FeedDef, t: number): FeatureValue => {
    const g = groupingOf(set);
    const own = g.members.get(g.keys[t] as string) as number[];
    const pos = g.position[t] as number;
    if ('lag' in how) {
      const j = own[pos - how.lag.rows];
      if (j === undefined) return null;
      return set.features[feature] === 'numeric' ? (numericColumn(how.lag.column)[j] as number | null) : (rows[j] as Record<string, string>)[how.lag.column] as string;
    }
    const column = numericColumn(how.mean.column);
    let sum = 0;
    let n = 0;
    for (let p = Math.max(0, pos - how.mean.rows + 1); p <= pos; p++) {
      const v = column[own[p] as number];
      if (v !== null && v !== undefined) {
        sum += v;
        n++;
      }
    }
    return n === 0 ? null : sum / n;
  };

  const readTime = compileEventTime(replay.eventTime);
  const times: Array<number | undefined> = [];
  const timeOf = (t: number): number => {
    let time = times[t];
    if (time === undefined) {
      const row = rows[t] as Record<string, string>;
      const parsed = readTime(row, t);
      if (!parsed.ok) throw new ConfigError(`replay row ${t} (${row[replay.eventId]}): ${parsed.message}`);
      times[t] = time = parsed.ms;
    }
    return time;
  };
  /** The feed's update of row t, due at `at`; null when the row has no key in the feed's set. */
  const update = (feed: FeedSpec, t: number, at: number): ReplayAction | null => {
    const set = setsByName.get(feed.featureSet) as FeatureSetSpec;
    const key = groupingOf(set).keys[t];
    if (key === null || key === undefined) return null;
    const row = rows[t] as Record<string, string>;
    const asOf = timeOf(t) + feed.availableAfterMs;
    const values: FeatureRow = {};
    for (const [feature, how] of Object.entries(feed.features)) values[feature] = feedValue(set, feature, how, t);
    return { at, kind: 'feature', record: { update_id: `${feed.featureSet}:${key}:${row[replay.eventId]}`, feature_set: feed.featureSet, entity_id: key, event_time: asOf, values } };
  };

  const end = Math.min(rows.length, offset + limit);
  const staged: Array<{ action: ReplayAction; row: number }> = [];
  const stage = (row: number, action: ReplayAction | null) => {
    if (action) staged.push({ row, action });
  };
  const seen = new Set<string>();
  let windowStart = Number.POSITIVE_INFINITY;
  for (let t = offset; t < end; t++) {
    const row = rows[t] as Record<string, string>;
    const eventId = row[replay.eventId] as string;
    if (eventId === '') throw new ConfigError(`replay row ${t}: empty ${replay.eventId}`);
    if (seen.has(eventId)) throw new ConfigError(`replay row ${t}: ${replay.eventId} "${eventId}" repeats an earlier row's`);
    seen.add(eventId);
    const eventTime = timeOf(t);
    windowStart = Math.min(windowStart, eventTime);

    const fields: FeatureRow = {};
    for (const name of Object.keys(spec.events.fields)) fields[name] = fieldValue(name, t);
    stage(t, { at: eventTime, kind: 'event', record: { event_id: eventId, pipeline: spec.name, entity_id: entityOf(row), event_time: eventTime, produced_at: 0, fields } });
    for (const feed of replay.feeds) stage(t, update(feed, t, eventTime + feed.availableAfterMs));

    const raw = row[replay.label] as string;
    const label = spec.label.type === 'numeric' ? toNumber(raw) : raw === '' ? null : raw;
    if (label !== null) {
      const labelTime = eventTime + spec.label.delayMs;
      stage(t, { at: labelTime, kind: 'label', record: { event_id: eventId, pipeline: spec.name, label, event_time: eventTime, label_time: labelTime } });
    }
  }

  // Warm-up of an offset replay: per feed and key, the latest earlier update known at the
  // window's start (due then) and every earlier update that only becomes known after it.
  if (offset > 0 && windowStart !== Number.POSITIVE_INFINITY) {
    for (const feed of replay.feeds) {
      const { keys } = groupingOf(setsByName.get(feed.featureSet) as FeatureSetSpec);
      const latest = new Map<string, { row: number; asOf: number }>();
      for (let t = 0; t < offset; t++) {
        const key = keys[t];
        if (key === null || key === undefined) continue;
        const asOf = timeOf(t) + feed.availableAfterMs;
        if (asOf > windowStart) {
          stage(t, update(feed, t, asOf));
          continue;
        }
        const known = latest.get(key);
        if (!known || asOf >= known.asOf) latest.set(key, { row: t, asOf });
      }
      for (const { row } of latest.values()) stage(row, update(feed, row, windowStart));
    }
  }
  // Array.prototype.sort is stable: several feeds of one row keep spec order.
  staged.sort((a, b) => a.action.at - b.action.at || KIND_ORDER[a.action.kind] - KIND_ORDER[b.action.kind] || a.row - b.row);
  return staged.map((s) => s.action);
}

/**
 * For each event of `plan`, in plan order, the values an up-to-date online
 * store would serve it: the event's fields, plus each feature-set feature of
 * the event's key in that set (its entity, or its key field's value) at
 * its latest as-of time not after the event's time — null when there is none
 * or it is older than the set's maxAgeMs. The training rows that match
 * serving exactly.
 */
export function pointInTimeRows(spec: PipelineSpec, plan: ReplayPlan): PointInTimeRow[] {
  const labels = new Map<string, string | number>();
  for (const a of plan) if (a.kind === 'label') labels.set(a.record.event_id, a.record.label);

  // Like the store: one cell per (set, key, feature); an older as-of never overwrites a newer one.
  const cells = new Map<string, { value: FeatureValue; asOf: number }>();
  const key = (set: string, entity: string, feature: string) => `${set}\u0000${entity}\u0000${feature}`;
  const out: PointInTimeRow[] = [];
  for (const a of plan) {
    if (a.kind === 'feature') {
      const u = a.record;
      for (const [feature, value] of Object.entries(u.values)) {
        const k = key(u.feature_set, u.entity_id, feature);
        const cell = cells.get(k);
        if (!cell || cell.asOf <= u.event_time) cells.set(k, { value, asOf: u.event_time });
      }
    } else if (a.kind === 'event') {
      const e = a.record;
      const values: FeatureRow = { ...e.fields };
      for (const set of spec.featureSets) {
        const id = featureKeyOf(set, e);
        for (const feature of Object.keys(set.features)) {
          const cell = id === null ? undefined : cells.get(key(set.name, id, feature));
          const served = cell !== undefined && cell.asOf <= e.event_time && (set.maxAgeMs === undefined || e.event_time - cell.asOf <= set.maxAgeMs);
          values[feature] = served ? cell.value : null;
        }
      }
      out.push({ event: e, values, label: labels.get(e.event_id) ?? null });
    }
  }
  return out;
}

type ReplaySpec = NonNullable<PipelineSpec['replay']>;
type FeedSpec = ReplaySpec['feeds'][number];
type FeedDef = FeedSpec['features'][string];

/** Every column the spec reads must be in the header; a `mean` feed must feed a numeric feature. */
function checkColumns(spec: PipelineSpec, replay: ReplaySpec, header: Set<string>): void {
  const needed: Array<[string, string]> = [
    [replay.eventId, 'replay.eventId'],
    ...eventTimeColumns(replay.eventTime),
    [replay.label, 'replay.label'],
    ...Object.keys(spec.events.fields).map((f): [string, string] => (Object.hasOwn(replay.columns, f) ? [replay.columns[f] as string, `replay.columns.${f}`] : [f, `events.fields.${f}`])),
  ];
  if ('column' in replay.entityId) needed.push([replay.entityId.column, 'replay.entityId.column']);
  replay.feeds.forEach((feed, i) => {
    const set = spec.featureSets.find((s) => s.name === feed.featureSet);
    for (const [feature, how] of Object.entries(feed.features)) {
      const at = `replay.feeds.${i}.features.${feature}`;
      needed.push('lag' in how ? [how.lag.column, `${at}.lag.column`] : [how.mean.column, `${at}.mean.column`]);
      if ('mean' in how && set?.features[feature] !== 'numeric') throw new ConfigError(`${at}: a mean feeds only a numeric feature`);
    }
  });
  const missing = needed.filter(([column]) => !header.has(column));
  if (missing.length > 0) {
    throw new ConfigError(`replay CSV lacks ${missing.map(([c, by]) => `column "${c}" (${by})`).join(', ')}; it has ${[...header].join(', ')}`);
  }
}

/** A finite number, or null for an empty or non-numeric value. */
function toNumber(raw: string | undefined): number | null {
  if (raw === undefined || raw.trim() === '') return null;
  const n = Number(raw);
  return Number.isFinite(n) ? n : null;
}
