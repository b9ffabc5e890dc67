/**
 * Checks of what applications send, against the pipeline spec, shared by the
 * workers that take named values from outside (preprocessor, feature-writer,
 * feature-aggregator, scorer): numbers must be finite, categories must be
 * strings, a name must be known to the spec, an event must carry its ids and
 * belong to the pipeline. A failure names the field and the reason; workers
 * dead-letter it with stage VALIDATION.
 */
import type { ClientEvent, FeatureUpdate } from '../schemas/types.js';
import type { PipelineSpec } from './spec.js';
export interface ValueProblem {
  code: 'NON_FINITE' | 'WRONG_TYPE' | 'UNKNOWN_FIELD';
  message: string;
}

export function checkValue(name: string, kind: 'numeric' | 'categorical', value: unknown): ValueProblem | null {
  if (value === null || value === undefined) return null;
  if (kind === 'numeric') {
    if (typeof value !== 'number') return { code: 'WRONG_TYPE', message: `${name} must be a number or null, got ${JSON.stringify(value)}` };
    if (!Number.isFinite(value)) return { code: 'NON_FINITE', message: `${name} is ${value}; numeric values must be finite` };
    return null;
  }
  if (typeof value !== 'string') return { code: 'WRONG_TYPE', message: `${name} is categorical and must be a string or null, got ${JSON.stringify(value)}` };
  return null;
}

export interface RecordProblem {
  stage: 'VALIDATION';
  code: string;
  message: string;
}

/** Pure: the problem with an event, or null. */
export function checkEvent(spec: PipelineSpec, e: ClientEvent): RecordProblem | null {
  if (!e.event_id) return { stage: 'VALIDATION', code: 'MISSING_ID', message: 'event_id is empty' };
  if (!e.entity_id) return { stage: 'VALIDATION', code: 'MISSING_ENTITY', message: 'entity_id is empty' };
  if (e.pipeline !== spec.name) return { stage: 'VALIDATION', code: 'WRONG_PIPELINE', message: `event is for pipeline "${e.pipeline}", this worker serves "${spec.name}"` };
  for (const [name, kind] of Object.entries(spec.events.fields)) {
    const problem = checkValue(name, kind, e.fields[name]);
    if (problem) return { stage: 'VALIDATION', ...problem };
  }
  return null;
}

/** Pure: the problem with a feature update, or null when it can be applied. */
export function checkUpdate(spec: PipelineSpec, u: FeatureUpdate): RecordProblem | null {
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
