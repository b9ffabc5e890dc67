/**
 * `loopline setup --spec <file>`: applies a new version of a pipeline spec.
 *
 * 1. The spec-independent infrastructure (topics, migrations, schemas) is
 *    brought up to date as `setup` always does (bootstrapInfra).
 * 2. The change against the latest applied version is worked out
 *    (models/spec-evolution.ts) and every serving model (champion, previous
 *    champion, shadow, A/B arm, from the registry) is checked against the new
 *    spec. If one would no longer fit, nothing is recorded and the reasons are
 *    returned: the loop keeps serving on the applied spec.
 * 3. Otherwise the spec is recorded as the next version in `pipeline_specs`.
 *
 * What a change needs from the stores: nothing new. Feature sets live in
 * `features_online` and `features_history` keyed by set name with values as
 * maps, FeatureVector and Prediction carry features as Avro maps, and every
 * topic is in the catalogue whatever the spec, so an added event field,
 * feature set, feature or aggregate needs no migration, topic or subject
 * change. Running preprocessors, scorers and model builders pick the new
 * version up between chunks (consumers/live-spec.ts); the feature-aggregator
 * reads its spec at start, so a version adding an events-sourced set needs it
 * (re)started on that version.
 */
import type { LooplineConfig } from '../config/config.js';
import { describeChange, evolutionProblems, specChange, type ServingModel, type SpecChange } from '../models/spec-evolution.js';
import { PipelineSpecSchema, type PipelineSpec } from '../pipelines/spec.js';
import { createCassandraClient } from '../store/cassandra.js';
import { createModelRegistry } from '../store/model-registry.js';
import { createPipelineSpecStore } from '../store/pipeline-specs.js';
import type { Logger } from '../streams/logger.js';
import { bootstrapInfra, type BootstrapResult } from './bootstrap.js';

export type SpecSetupResult =
  | { outcome: 'applied'; version: number; created: boolean; change: SpecChange; summary: string; infra: BootstrapResult }
  | { outcome: 'refused'; appliedVersion: number | null; change: SpecChange; summary: string; problems: string[]; infra: BootstrapResult };

export async function setupSpec(config: LooplineConfig, spec: PipelineSpec, specText: string, logger: Logger, now: () => number = Date.now): Promise<SpecSetupResult> {
  const infra = await bootstrapInfra(config, logger);
  const cql = createCassandraClient(config.cassandra);
  try {
    const specs = createPipelineSpecStore(cql);
    const registry = createModelRegistry(cql);
    const last = await specs.latest(spec.name);
    const prev = last ? PipelineSpecSchema.parse(JSON.parse(last.spec)) : null;
    const serving: ServingModel[] = [];
    const state = await registry.serving(spec.name, spec.model.name);
    {
      const roles: Array<[ServingModel['role'], number | null]> = [['champion', state.champion], ['previous', state.previous], ['shadow', state.shadow], ['ab', state.ab]];
      for (const [role, version] of roles) {
        if (version === null) continue;
        const mv = await registry.get(spec.name, spec.model.name, version);
        serving.push({ role, version, spec: mv.spec });
      }
    }
    const change = specChange(prev, spec);
    const summary = describeChange(change);
    const problems = evolutionProblems(prev, spec, serving);
    if (problems.length > 0) {
      logger.warn({ pipeline: spec.name, appliedVersion: last?.version ?? null, problems }, 'spec change refused: it would break a serving model');
      return { outcome: 'refused', appliedVersion: last?.version ?? null, change, summary, problems, infra };
    }
    const { version, created } = await specs.record(spec.name, specText, summary, now());
    logger.info({ pipeline: spec.name, version, created, change: summary }, created ? 'spec version recorded' : 'spec unchanged');
    return { outcome: 'applied', version, created, change, summary, infra };
  } finally {
    await cql.shutdown().catch(() => {});
  }
}
