/**
 * Training for a pipeline: its spec decides the inputs (in order, with kinds
 * and known categories), the task and the classes; the rows are what the
 * model was (or would have been) served. models/training.ts runs it for the
 * bootstrap and the model builder alike.
 */
import { modelFeatureDefs, type PipelineSpec } from '../pipelines/spec.js';
import type { FeatureRow } from './feature-spec.js';
import { trainBuiltin, trainerChoiceOf } from './builtin-trainer.js';
import type { TrainedModel } from './trained-model.js';

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
