/**
 * The model registry's contract: versions of a pipeline's model with their
 * lineage (training window and rows, trainer and settings, feature spec,
 * metrics, baseline statistics, spec version), ONNX bytes and their sha256,
 * status (candidate, shadow, champion, retired, rejected) and the verdict of
 * every judgement; which version serves changes only by compare-and-set.
 * `store/model-registry.ts` keeps it in Cassandra; `models/lifecycle.ts`
 * changes what serves through it.
 */
import { LooplineError } from '../core/errors.js';
import type { BaselineStats } from './baseline.js';
import type { FeatureSpec } from './feature-spec.js';
import type { TrainedModel } from './trained-model.js';

export type ModelStatus = 'candidate' | 'shadow' | 'champion' | 'retired' | 'rejected';

export interface ModelLineage {
  trainer: string;
  trainerSettings: Record<string, unknown>;
  trainingStart: number | null;
  trainingEnd: number | null;
  trainingRows: number;
  parentVersion: number | null;
  requestId: string | null;
  /** The pipeline spec version (pipeline_specs) the model was trained on; null when unversioned (a spec file never applied, or before spec versions). */
  specVersion: number | null;
}

export interface ModelInfo extends ModelLineage {
  pipeline: string;
  modelName: string;
  version: number;
  status: ModelStatus;
  spec: FeatureSpec;
  baseline: BaselineStats;
  metrics: Record<string, number>;
  sha256: string;
  createdAt: number;
  /** The last judgement of this version (the evaluator's numbers, a rollback's reason), or null. */
  verdict: string | null;
}

export interface ModelVersion extends ModelInfo {
  onnx: Uint8Array;
}

export interface ServingState {
  champion: number | null;
  previous: number | null;
  shadow: number | null;
  ab: number | null;
  abShare: number;
}

export class ModelIntegrityError extends LooplineError {
  constructor(message: string) {
    super(message, { code: 'MODEL_INTEGRITY', retriable: false });
  }
}

export class ModelNotFoundError extends LooplineError {
  constructor(pipeline: string, name: string, version: number) {
    super(`model ${pipeline}/${name}@${version} is not in the registry`, { code: 'MODEL_NOT_FOUND', retriable: false });
  }
}

/** What to register: the artifact and its lineage; unknown lineage (training window, parent, request) may be left out. */
export interface RegisterInput extends Omit<ModelLineage, 'trainingStart' | 'trainingEnd' | 'parentVersion' | 'requestId' | 'specVersion'>, Partial<Pick<ModelLineage, 'trainingStart' | 'trainingEnd' | 'parentVersion' | 'requestId' | 'specVersion'>> {
  pipeline: string;
  modelName: string;
  status: ModelStatus;
  onnx: Uint8Array;
  spec: FeatureSpec;
  baseline: BaselineStats;
  metrics: Record<string, number>;
}

/** The registry fields of a model from the built-in trainer. */
export function artifactOf(t: TrainedModel): Pick<RegisterInput, 'onnx' | 'spec' | 'baseline' | 'metrics' | 'trainer' | 'trainerSettings' | 'trainingRows'> {
  return { onnx: t.onnx, spec: t.spec, baseline: t.baseline, metrics: t.metrics, trainer: t.trainer.name, trainerSettings: t.trainer.settings, trainingRows: t.trainedRows };
}

export interface ChangeServing {
  pipeline: string;
  modelName: string;
  actor: string;
  reason: string;
  /** Id of the model event recorded for this change (deterministic ids make retries and replays idempotent). */
  eventId?: string;
}

export interface ModelRegistry {
  register(input: RegisterInput): Promise<ModelInfo>;
  get(pipeline: string, modelName: string, version: number): Promise<ModelVersion>;
  list(pipeline: string, modelName: string): Promise<ModelInfo[]>;
  /** One version's metadata (no ONNX bytes); null when there is none. Reads one row, where `list` reads every version. */
  info(pipeline: string, modelName: string, version: number): Promise<ModelInfo | null>;
  /** The model registered for a retrain request id (the builder's `<id>` or `<id>#validation`); null when none is. */
  byRequest(pipeline: string, modelName: string, requestId: string): Promise<ModelInfo | null>;
  serving(pipeline: string, modelName: string): Promise<ServingState>;
  setStatus(pipeline: string, modelName: string, version: number, status: ModelStatus): Promise<void>;
  /** Makes `version` the champion if the champion is still `expected`; false when someone else changed it first. */
  promote(change: ChangeServing & { version: number; expected: number | null }): Promise<boolean>;
  /** Restores the previous champion if the champion is still `expected`. */
  rollback(change: ChangeServing & { expected: number }): Promise<number | null>;
  /**
   * Sets (or clears, with null) the shadow version; with `expectedChampion`, only while the champion is
   * still that version (compare-and-set). False when that check failed (nothing changed).
   */
  setShadow(change: ChangeServing & { version: number | null; expectedChampion?: number }): Promise<boolean>;
  /** Serves `share` (0..1) of events with `version` as A/B arm, or stops the test (version null); `expectedChampion` as for setShadow. */
  setAb(change: ChangeServing & { version: number | null; share: number; expectedChampion?: number }): Promise<boolean>;
  /** Records the judgement of a version, whatever its status becomes. */
  setVerdict(pipeline: string, modelName: string, version: number, verdict: string): Promise<void>;
  /** Recent promotions, rollbacks and shadow changes, newest first. */
  history(pipeline: string, modelName: string, limit?: number): Promise<Array<{ at: number; action: string; version: number; previous: number | null; reason: string; actor: string }>>;
}

