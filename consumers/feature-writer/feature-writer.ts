/**
 * feature-writer's core: streamed feature updates into the online store. An
 * update for an unknown set or feature, or with a value of the wrong type or a
 * non-finite number, is dead-lettered with the reason; the others are
 * applied in order (older-than-stored updates are skipped, so replays change
 * nothing).
 */
import { checkUpdate } from '../../pipelines/validate.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { FeatureUpdate } from '../../schemas/types.js';
import type { FeatureStore } from '../../store/feature-store.js';
import type { WorkerImpl } from '../../streams/definition.js';
import type { InputRecord, RecordFailure } from '../../streams/runtime.js';

export function createFeatureWriter(deps: { spec: PipelineSpec; store: Pick<FeatureStore, 'apply'> }): WorkerImpl<'FeatureUpdate'> {
  const ttl = new Map(deps.spec.featureSets.map((s) => [s.name, s.ttlSeconds]));
  return {
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
