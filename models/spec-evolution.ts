/**
 * Spec evolution: what a new version of a pipeline spec changes, and whether
 * the models that serve can still be served by it. Pure.
 *
 * A spec may gain event fields, feature sets, features and aggregates, and
 * its model may name different inputs: the preprocessor then serves the new
 * spec's inputs and the scorer gives each model exactly the inputs its own
 * feature spec names (consumers/scorer), so a model keeps serving as long as
 * every input it takes is still served with the same kind and the task and
 * classes are unchanged (`pipelineFitProblem`). A change that breaks that
 * for a serving model (champion, previous champion kept for rollback,
 * shadow, A/B arm) is refused with the reason; so is renaming the pipeline or
 * the model.
 */
import type { PipelineSpec } from '../pipelines/spec.js';
import { inputKinds } from '../pipelines/spec.js';
import { pipelineFitProblem, type FeatureSpec } from './feature-spec.js';

export interface SpecChange {
  /** Inputs (event fields and feature-set features) the new spec serves and the old did not. */
  addedInputs: string[];
  removedInputs: string[];
  /** Inputs whose kind changed: `name: old → new`. */
  changedKinds: string[];
  addedFeatureSets: string[];
  removedFeatureSets: string[];
  /** The model's inputs, before and after. */
  modelFeatures: { from: string[]; to: string[] };
}

export function specChange(prev: PipelineSpec | null, next: PipelineSpec): SpecChange {
  const before = prev ? inputKinds(prev) : new Map<string, string>();
  const after = inputKinds(next);
  const sets = (s: PipelineSpec | null) => new Set((s?.featureSets ?? []).map((f) => f.name));
  const b = sets(prev);
  const a = sets(next);
  return {
    addedInputs: [...after.keys()].filter((k) => !before.has(k)),
    removedInputs: [...before.keys()].filter((k) => !after.has(k)),
    changedKinds: [...after].filter(([k, v]) => before.has(k) && before.get(k) !== v).map(([k, v]) => `${k}: ${before.get(k)} → ${v}`),
    addedFeatureSets: [...a].filter((n) => !b.has(n)),
    removedFeatureSets: [...b].filter((n) => !a.has(n)),
    modelFeatures: { from: prev ? [...prev.model.features] : [], to: [...next.model.features] },
  };
}

/** One-line summary of a change, for logs and the spec table. */
export function describeChange(c: SpecChange): string {
  const parts: string[] = [];
  if (c.addedInputs.length) parts.push(`added inputs ${c.addedInputs.join(', ')}`);
  if (c.removedInputs.length) parts.push(`removed inputs ${c.removedInputs.join(', ')}`);
  if (c.changedKinds.length) parts.push(`changed kinds ${c.changedKinds.join(', ')}`);
  if (c.addedFeatureSets.length) parts.push(`added feature sets ${c.addedFeatureSets.join(', ')}`);
  if (c.removedFeatureSets.length) parts.push(`removed feature sets ${c.removedFeatureSets.join(', ')}`);
  if (c.modelFeatures.from.join(',') !== c.modelFeatures.to.join(',')) parts.push(`model inputs [${c.modelFeatures.from.join(', ')}] → [${c.modelFeatures.to.join(', ')}]`);
  return parts.length ? parts.join('; ') : 'no change to inputs';
}

export interface ServingModel {
  role: 'champion' | 'previous' | 'shadow' | 'ab';
  version: number;
  spec: FeatureSpec;
}

/** Why the new spec would break serving, one reason per problem; empty when it may be applied. */
export function evolutionProblems(prev: PipelineSpec | null, next: PipelineSpec, serving: readonly ServingModel[]): string[] {
  const problems: string[] = [];
  if (prev && prev.name !== next.name) problems.push(`the pipeline is named ${next.name}, the applied spec ${prev.name}: a new name is a new pipeline`);
  if (prev && prev.model.name !== next.model.name) problems.push(`the model is named ${next.model.name}, the applied spec's ${prev.model.name}: its versions would stop serving`);
  const served = [...inputKinds(next)].map(([name, kind]) => ({ name, kind }));
  for (const m of serving) {
    const problem = pipelineFitProblem(served, { task: next.task, classes: next.label.classes }, m.spec);
    if (problem) problems.push(`${m.role} ${next.model.name}@${m.version} could not be served: ${problem}`);
  }
  return problems;
}
