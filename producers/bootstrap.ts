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
import type { PeriodicRow } from '../models/periodic-baseline.js';
import { trainForPipeline } from '../models/pipeline-training.js';
import { artifactOf, type ModelInfo, type ModelRegistry } from '../models/registry.js';
import type { TrainedModel } from '../models/trained-model.js';
import { train, type Artifact } from '../models/training.js';
import type { PipelineSpec } from '../pipelines/spec.js';
import type { TrainingSet } from '../store/training-set.js';
import { readCsv } from './csv.js';
import { buildReplayPlan, pointInTimeRows } from './replay-plan.js';

export interface BootstrapResult {
  model: ModelInfo;
  promoted: boolean;
  rows: number;
  seconds: number;
  /** The trained model itself, for a built-in trainer (its `predict` is the TS forward pass of the registered ONNX); null for an external one. */
  trained: TrainedModel | null;
  /** The training rows as served, labels due at event time + label.delayMs: the history of a periodic-baseline run over the rest of the replay. */
  history: PeriodicRow[];
}

/**
 * With `training`, the bootstrap's rows are also written to the training set
 * (labelled as known at event time + label.delayMs), so the first retrains
 * learn from a full window instead of the few labels joined so far.
 */
export async function trainBootstrap(spec: PipelineSpec, specDir: string, registry: ModelRegistry, actor = 'bootstrap', training?: TrainingSet): Promise<BootstrapResult> {
  if (!spec.replay) throw new ConfigError(`pipeline ${spec.name} has no replay section: the bootstrap trains on its replay dataset`);
  const started = Date.now();
  const csv = readCsv(path.resolve(specDir, spec.replay.csv));
  const plan = buildReplayPlan(spec, csv, { limit: spec.trainer.bootstrapRows });
  const rows = pointInTimeRows(spec, plan).filter((r) => r.label !== null);
  const labeled = rows.map((r) => ({ values: r.values, label: r.label! }));
  let trained: TrainedModel | null = null;
  let artifact: Artifact;
  if (spec.trainer.kind === 'builtin') {
    trained = trainForPipeline(spec, labeled.map((r) => r.values), labeled.map((r) => r.label));
    artifact = artifactOf(trained);
  } else {
    artifact = await train(spec, labeled);
  }
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
  const history = rows.map((r) => ({ eventTime: r.event.event_time, values: r.values, label: r.label!, labelTime: r.event.event_time + spec.label.delayMs }));
  if (training) await training.seed(spec.name, rows.map((r, i) => ({ eventId: r.event.event_id, entityId: r.event.entity_id, ...history[i]!, label: r.label!, modelVersion: model.version })));
  return { model, promoted, rows: rows.length, seconds: (Date.now() - started) / 1000, trained, history };
}
