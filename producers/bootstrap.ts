/**
 * The first model of a pipeline, trained on the first `trainer.bootstrapRows`
 * rows of its replay dataset with the features an up-to-date online store
 * would have served at each event (replay-plan.ts `pointInTimeRows`), through
 * the same training path as every retrain (models/training.ts), registered
 * and made champion if the pipeline has none.
 */
import path from 'node:path';
import { ConfigError } from '../core/errors.js';
import { promote } from '../models/lifecycle.js';
import type { ModelInfo, ModelRegistry } from '../models/registry.js';
import { train } from '../models/training.js';
import type { PipelineSpec } from '../pipelines/spec.js';
import { readCsv } from './csv.js';
import { buildReplayPlan, pointInTimeRows } from './replay-plan.js';

export interface BootstrapResult {
  model: ModelInfo;
  promoted: boolean;
  rows: number;
  seconds: number;
}

export async function trainBootstrap(spec: PipelineSpec, specDir: string, registry: ModelRegistry, actor = 'bootstrap'): Promise<BootstrapResult> {
  if (!spec.replay) throw new ConfigError(`pipeline ${spec.name} has no replay section: the bootstrap trains on its replay dataset`);
  const started = Date.now();
  const csv = readCsv(path.resolve(specDir, spec.replay.csv));
  const plan = buildReplayPlan(spec, csv, { limit: spec.trainer.bootstrapRows });
  const rows = pointInTimeRows(spec, plan).filter((r) => r.label !== null);
  const artifact = await train(spec, rows.map((r) => ({ values: r.values, label: r.label! })), { offThread: false });
  const times = rows.map((r) => r.event.event_time);
  const model = await registry.register({
    pipeline: spec.name,
    modelName: spec.model.name,
    status: 'candidate',
    ...artifact,
    trainingStart: Math.min(...times),
    trainingEnd: Math.max(...times),
  });
  const serving = await registry.serving(spec.name, spec.model.name);
  const promoted =
    serving.champion === null &&
    (await promote(registry, { pipeline: spec.name, modelName: spec.model.name, version: model.version, expected: null, actor, reason: 'bootstrap model', cause: 'bootstrap' })) !== null;
  return { model, promoted, rows: rows.length, seconds: (Date.now() - started) / 1000 };
}
