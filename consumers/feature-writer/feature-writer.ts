/**
 * feature-writer: streamed feature updates (features.updates) into the online
 * store. An update for an unknown set or feature, or with a value of the
 * wrong type or a non-finite number, is dead-lettered with the reason; the
 * others are applied in order (older-than-stored updates are skipped, so
 * replays change nothing).
 *
 *   const handler = createFeatureWriter({ spec, store });
 *   createWorker(handler, deps).start();
 */
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { FeatureUpdate } from '../../schemas/types.js';
import type { FeatureStore } from '../../store/feature-store.js';
import type { InputRecord, RecordFailure, WorkerHandler } from '../../streams/runtime.js';
import { checkValue } from '../validate.js';

export interface FeatureWriterDeps {
  spec: PipelineSpec;
  store: FeatureStore;
}

/** Pure: the problem with an update, or null when it can be applied. */
export function checkUpdate(spec: PipelineSpec, u: FeatureUpdate): Omit<RecordFailure, 'index'> | null {
  const set = spec.featureSets.find((s) => s.name === u.feature_set);
  if (!set) return { stage: 'VALIDATION', code: 'UNKNOWN_FEATURE_SET', message: `feature set "${u.feature_set}" is not in pipeline ${spec.name}` };
  if (!u.entity_id) return { stage: 'VALIDATION', code: 'MISSING_ENTITY', message: 'entity_id is empty' };
  for (const [name, value] of Object.entries(u.values)) {
    const kind = set.features[name];
    if (!kind) return { stage: 'VALIDATION', code: 'UNKNOWN_FIELD', message: `feature set "${set.name}" has no feature "${name}"` };
    const problem = checkValue(name, kind, value);
    if (problem) return { stage: 'VALIDATION', ...problem };
  }
  return null;
}

export function createFeatureWriter(deps: FeatureWriterDeps): WorkerHandler<'FeatureUpdate'> {
  const ttl = new Map(deps.spec.featureSets.map((s) => [s.name, s.ttlSeconds]));
  return {
    name: 'feature-writer',
    input: { topic: 'features.updates', record: 'FeatureUpdate' },
    async process(records: Array<InputRecord<FeatureUpdate>>) {
      const deadLetters: RecordFailure[] = [];
      const valid: FeatureUpdate[] = [];
      records.forEach((r, index) => {
        const problem = checkUpdate(deps.spec, r.value);
        if (problem) deadLetters.push({ index, ...problem });
        else valid.push(r.value);
      });
      await deps.store.apply(valid, (set) => ttl.get(set) ?? 30 * 24 * 3600);
      return { outputs: [], deadLetters };
    },
  };
}
