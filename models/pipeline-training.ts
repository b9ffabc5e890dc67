/**
 * Training for a pipeline: its spec decides the inputs (in order, with kinds
 * and known categories), the task and the classes; the rows are what the
 * model was (or would have been) served. Used by the bootstrap and by the
 * model builder, so both train exactly alike.
 */
import path from 'node:path';
import { modelFeatureDefs, type PipelineSpec } from '../pipelines/spec.js';
import { readCsv } from '../producers/csv.js';
import { buildReplayPlan, pointInTimeRows } from '../producers/replay-plan.js';
import { ConfigError } from '../streams/errors.js';
import type { FeatureRow } from './feature-spec.js';
import { artifactOf, type ModelInfo, type ModelRegistry } from './registry.js';
import { trainBuiltin, trainerChoiceOf } from './builtin-trainer.js';
import type { TrainedModel } from './trained-model.js';
import type { PeriodicRow } from './periodic-baseline.js';

/**
 * Trains the pipeline's model with its built-in trainer (`trainer.algorithm`,
 * default linear, with `trainer.settings`) on served rows and their labels.
 * `trainer.kind: command` is the model builder's business (it runs the
 * command); this function always trains in process.
 */
export function trainForPipeline(spec: PipelineSpec, rows: FeatureRow[], labels: Array<string | number>): TrainedModel {
  const features = modelFeatureDefs(spec);
  const inputs = rows.map((r) => Object.fromEntries(features.map((f) => [f.name, r[f.name] ?? null])));
  return trainBuiltin(trainerChoiceOf(spec.trainer), {
    spec: { task: spec.task, features, ...(spec.label.classes.length ? { classes: spec.label.classes } : {}) },
    rows: inputs,
    labels,
  });
}

export interface BootstrapResult {
  model: ModelInfo;
  promoted: boolean;
  rows: number;
  seconds: number;
  /** The trained model itself (its `predict` is the TS forward pass of `model`'s ONNX). */
  trained: TrainedModel;
  /**
   * The training rows as served, with labels due at event time + label.delayMs:
   * the `history` of a `periodicBaselineForPipeline` run over the rest of the replay.
   */
  history: PeriodicRow[];
}

/**
 * Trains the first model on the first `trainer.bootstrapRows` rows of the
 * spec's replay dataset, with the features an up-to-date online store would
 * have served at each event, registers it and makes it the champion if the
 * pipeline has none.
 */
export async function trainBootstrap(spec: PipelineSpec, specDir: string, registry: ModelRegistry, actor = 'bootstrap'): Promise<BootstrapResult> {
  if (!spec.replay) throw new ConfigError(`pipeline ${spec.name} has no replay section: the bootstrap trains on its replay dataset`);
  const started = Date.now();
  const csv = readCsv(path.resolve(specDir, spec.replay.csv));
  const plan = buildReplayPlan(spec, csv, { limit: spec.trainer.bootstrapRows });
  const rows = pointInTimeRows(spec, plan).filter((r) => r.label !== null);
  const trained = trainForPipeline(spec, rows.map((r) => r.values), rows.map((r) => r.label!));
  const times = rows.map((r) => r.event.event_time);
  const model = await registry.register({
    pipeline: spec.name,
    modelName: spec.model.name,
    status: 'candidate',
    ...artifactOf(trained),
    trainingStart: Math.min(...times),
    trainingEnd: Math.max(...times),
  });
  const serving = await registry.serving(spec.name, spec.model.name);
  const promoted =
    serving.champion === null &&
    (await registry.promote({ pipeline: spec.name, modelName: spec.model.name, version: model.version, expected: null, actor, reason: 'bootstrap model' }));
  const history = rows.map((r) => ({ eventTime: r.event.event_time, values: r.values, label: r.label, labelTime: r.event.event_time + spec.label.delayMs }));
  return { model, promoted, rows: rows.length, seconds: (Date.now() - started) / 1000, trained, history };
}
