/**
 * preprocessor: a client event plus the entity's online features becomes a
 * FeatureVector that records exactly which values the model will be served.
 *
 * Policy, per the pipeline spec:
 * - an event field of the wrong type or a non-finite number: dead letter (VALIDATION);
 * - a declared field absent from the event: served as null, listed in `missing`;
 * - an entity with no row in a feature set: `missingEntity: impute` serves nulls
 *   and lists the features in `missing` (the model imputes its training mean),
 *   `dead-letter` dead-letters the event (UNKNOWN_ENTITY);
 * - a feature value is served only if it was known at the event's time (as-of ≤
 *   event time) and is not older than the set's `maxAgeMs`; otherwise null + missing.
 *
 *   const handler = createPreprocessor({ spec, store });
 */
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { ClientEvent, FeatureVector } from '../../schemas/types.js';
import { valueAt, type EntityFeatures, type FeatureStore } from '../../store/feature-store.js';
import type { InputRecord, OutputRecord, RecordFailure, WorkerHandler } from '../../streams/runtime.js';
import { checkValue } from '../validate.js';

export interface PreprocessorDeps {
  spec: PipelineSpec;
  store: FeatureStore;
  now?: () => number;
}

/** Pure: the problem with an event, or null. */
export function checkEvent(spec: PipelineSpec, e: ClientEvent): Omit<RecordFailure, 'index'> | null {
  if (!e.event_id) return { stage: 'VALIDATION', code: 'MISSING_ID', message: 'event_id is empty' };
  if (!e.entity_id) return { stage: 'VALIDATION', code: 'MISSING_ENTITY', message: 'entity_id is empty' };
  if (e.pipeline !== spec.name) return { stage: 'VALIDATION', code: 'WRONG_PIPELINE', message: `event is for pipeline "${e.pipeline}", this worker serves "${spec.name}"` };
  for (const [name, kind] of Object.entries(spec.events.fields)) {
    const problem = checkValue(name, kind, e.fields[name]);
    if (problem) return { stage: 'VALIDATION', ...problem };
  }
  return null;
}

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

export function createPreprocessor(deps: PreprocessorDeps): WorkerHandler<'ClientEvent'> {
  const now = deps.now ?? Date.now;
  const { spec } = deps;
  return {
    name: 'preprocessor',
    input: { topic: 'events.client', record: 'ClientEvent' },
    async process(records: Array<InputRecord<ClientEvent>>) {
      const deadLetters: RecordFailure[] = [];
      const ok: Array<{ index: number; e: ClientEvent }> = [];
      records.forEach((r, index) => {
        const problem = checkEvent(spec, r.value);
        if (problem) deadLetters.push({ index, ...problem });
        else ok.push({ index, e: r.value });
      });
      const entities = ok.map((x) => x.e.entity_id);
      const perSet = new Map<string, Map<string, EntityFeatures>>();
      await Promise.all(spec.featureSets.map(async (s) => perSet.set(s.name, await deps.store.lookup(s.name, entities))));
      const outputs: OutputRecord[] = [];
      const t = now();
      for (const { index, e } of ok) {
        const rows = new Map(spec.featureSets.map((s) => [s.name, perSet.get(s.name)?.get(e.entity_id)] as const));
        const vector = buildVector(spec, e, rows, t);
        if (!vector) {
          deadLetters.push({ index, stage: 'VALIDATION', code: 'UNKNOWN_ENTITY', message: `entity "${e.entity_id}" has no online features and the pipeline dead-letters unknown entities` });
          continue;
        }
        outputs.push({ topic: 'features.vectors', record: 'FeatureVector', key: e.entity_id, value: vector });
      }
      return { outputs, deadLetters };
    },
  };
}
