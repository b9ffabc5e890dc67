/**
 * Training for a pipeline: its spec decides the inputs (in order, with kinds
 * and known categories), the task and the classes; the rows are what the
 * model was (or would have been) served. models/training.ts runs it for the
 * bootstrap and the model builder alike.
 */
import { modelFeatureDefs, type PipelineSpec } from '../pipelines/spec.js';
import type { FeatureRow } from './feature-spec.js';
import { trainModel, type TrainedModel } from './trainer.js';

export function trainForPipeline(spec: PipelineSpec, rows: FeatureRow[], labels: Array<string | number>): TrainedModel {
  const features = modelFeatureDefs(spec);
  const inputs = rows.map((r) => Object.fromEntries(features.map((f) => [f.name, r[f.name] ?? null])));
  return trainModel({
    spec: { task: spec.task, features, ...(spec.label.classes.length ? { classes: spec.label.classes } : {}) },
    rows: inputs,
    labels,
    settings: spec.trainer.settings,
  });
}
