/**
 * Elec2 data and models for flow tests on the in-memory harness: the shipped
 * spec, point-in-time rows of the replay plan (what an up-to-date online store
 * would have served each event, with its label) and small models trained on
 * them with the built-in trainer. Pure apart from reading the CSV once per
 * process; no servers.
 *
 *   const rows = elec2Rows({ limit: 1500 });
 *   const model = trainOn(rows.slice(0, 1000));
 *   await registerChampion(stores.registry, model);
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promote } from '../../models/lifecycle.js';
import { trainForPipeline } from '../../models/pipeline-training.js';
import { artifactOf, type ModelInfo, type ModelRegistry, type RegisterInput } from '../../models/registry.js';
import type { TrainedModel } from '../../models/trainer.js';
import { withRollingMean } from '../../pipelines/evolution.js';
import { loadSpec, type PipelineSpec } from '../../pipelines/spec.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan, pointInTimeRows, type PointInTimeRow } from '../../producers/replay-plan.js';

export type { PointInTimeRow };
import type { FeatureVector, Prediction } from '../../schemas/types.js';

export const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A shipped pipeline spec by name (pipelines/<name>.json). */
export function shippedSpec(name: string): PipelineSpec {
  return loadSpec(path.join(ROOT, 'pipelines', `${name}.json`)).spec;
}

export const elec2: PipelineSpec = shippedSpec('elec2');

let csv: Array<Record<string, string>> | null = null;

/** Labeled point-in-time rows of the Elec2 replay, in time order. */
export function elec2Rows(o: { offset?: number; limit: number }): PointInTimeRow[] {
  csv ??= readCsv(path.join(ROOT, 'pipelines', elec2.replay!.csv));
  return pointInTimeRows(elec2, buildReplayPlan(elec2, csv, o)).filter((r) => r.label !== null);
}

/** A model trained on `rows` with the built-in trainer; `flip` trains on the opposite labels (a deliberately bad model). */
export function trainOn(rows: readonly PointInTimeRow[], o: { flip?: boolean; spec?: PipelineSpec } = {}): TrainedModel {
  const labels = rows.map((r) => (o.flip ? (r.label === 'UP' ? 'DOWN' : 'UP') : r.label!));
  return trainForPipeline(o.spec ?? elec2, rows.map((r) => r.values), labels);
}

/** Registers a trained model as a candidate, with the training window of `rows` when given. */
export async function registerModel(registry: ModelRegistry, m: TrainedModel, o: { spec?: PipelineSpec; rows?: readonly PointInTimeRow[]; parentVersion?: number | null; extra?: Partial<RegisterInput> } = {}): Promise<ModelInfo> {
  const spec = o.spec ?? elec2;
  const times = (o.rows ?? []).map((r) => r.event.event_time);
  return registry.register({
    pipeline: spec.name, modelName: spec.model.name, status: 'candidate', ...artifactOf(m),
    ...(times.length > 0 ? { trainingStart: Math.min(...times), trainingEnd: Math.max(...times) } : {}),
    parentVersion: o.parentVersion ?? null,
    ...o.extra,
  });
}

/** Registers `m` and promotes it over whatever serves (models/lifecycle.ts `promote`). */
export async function registerChampion(registry: ModelRegistry, m: TrainedModel, o: { spec?: PipelineSpec; rows?: readonly PointInTimeRow[] } = {}): Promise<ModelInfo> {
  const spec = o.spec ?? elec2;
  const info = await registerModel(registry, m, o);
  const serving = await registry.serving(spec.name, spec.model.name);
  const event = await promote(registry, { pipeline: spec.name, modelName: spec.model.name, version: info.version, expected: serving.champion, actor: 'test', reason: 'test champion' });
  if (!event) throw new Error(`could not promote v${info.version}`);
  return info;
}

/** The FeatureVector the preprocessor would emit for a point-in-time row. */
export function vectorOf(r: PointInTimeRow, o: { pipeline?: string } = {}): FeatureVector {
  return {
    event_id: r.event.event_id, pipeline: o.pipeline ?? r.event.pipeline, entity_id: r.event.entity_id, event_time: r.event.event_time,
    produced_at: r.event.produced_at, processed_at: r.event.event_time,
    values: r.values, missing: Object.entries(r.values).filter(([, v]) => v === null).map(([k]) => k), feature_age_ms: {},
  };
}

/** A served champion prediction of a point-in-time row, as the joiner's training rows hold it. */
export function predictionOf(r: PointInTimeRow, modelVersion: number, spec: PipelineSpec = elec2): Prediction {
  return {
    prediction_id: `${r.event.event_id}/${spec.model.name}@${modelVersion}/champion`, event_id: r.event.event_id, pipeline: spec.name, entity_id: r.event.entity_id,
    model_name: spec.model.name, model_version: modelVersion, variant: 'champion', label: null, score: 0.5, probabilities: {}, value: null,
    features: r.values, missing: Object.entries(r.values).filter(([, v]) => v === null).map(([k]) => k), model_features: spec.model.features,
    event_time: r.event.event_time, produced_at: r.event.event_time, scored_at: r.event.event_time,
  };
}

/**
 * A spec version adding a feature (issue 11's example, the demo's --evolve): a rolling mean of the last 48 events'
 * demand, aggregated from the events by the feature-aggregator, which the model now names. `set` patches the new set.
 */
export function withDemandMean(spec: PipelineSpec = elec2, set: Record<string, unknown> = {}): PipelineSpec {
  return withRollingMean(spec, { field: 'nswdemand', window: 48 }, set);
}
