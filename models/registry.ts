/**
 * The model registry in Cassandra: every version of a pipeline's model with
 * its lineage (training window and rows, trainer and settings, feature spec,
 * metrics, baseline statistics), its ONNX bytes and their sha256, and its
 * status (candidate, shadow, champion, retired). Which version serves lives
 * in `model_serving` and changes only by compare-and-set, so two evaluators
 * promoting at once cannot both win.
 */
import crypto from 'node:crypto';
import type cassandra from 'cassandra-driver';
import { LooplineError, TransientError } from '../streams/errors.js';
import type { BaselineStats } from './baseline.js';
import type { FeatureSpec } from './feature-spec.js';
import type { TrainedModel } from './trainer.js';

export type ModelStatus = 'candidate' | 'shadow' | 'champion' | 'retired' | 'rejected';

export interface ModelLineage {
  trainer: string;
  trainerSettings: Record<string, unknown>;
  trainingStart: number | null;
  trainingEnd: number | null;
  trainingRows: number;
  parentVersion: number | null;
  requestId: string | null;
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
export interface RegisterInput extends Omit<ModelLineage, 'trainingStart' | 'trainingEnd' | 'parentVersion' | 'requestId'>, Partial<Pick<ModelLineage, 'trainingStart' | 'trainingEnd' | 'parentVersion' | 'requestId'>> {
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
}

export interface ModelRegistry {
  register(input: RegisterInput): Promise<ModelInfo>;
  get(pipeline: string, modelName: string, version: number): Promise<ModelVersion>;
  list(pipeline: string, modelName: string): Promise<ModelInfo[]>;
  serving(pipeline: string, modelName: string): Promise<ServingState>;
  setStatus(pipeline: string, modelName: string, version: number, status: ModelStatus): Promise<void>;
  /** Makes `version` the champion if the champion is still `expected`; false when someone else changed it first. */
  promote(change: ChangeServing & { version: number; expected: number | null }): Promise<boolean>;
  /** Restores the previous champion if the champion is still `expected`. */
  rollback(change: ChangeServing & { expected: number }): Promise<number | null>;
  /** Sets (or clears, with null) the shadow version. */
  setShadow(change: ChangeServing & { version: number | null }): Promise<void>;
  /** Serves `share` (0..1) of events with `version` as A/B arm, or stops the test (version null). */
  setAb(change: ChangeServing & { version: number | null; share: number }): Promise<void>;
  /** Recent promotions, rollbacks and shadow changes, newest first. */
  history(pipeline: string, modelName: string, limit?: number): Promise<Array<{ at: number; action: string; version: number; previous: number | null; reason: string; actor: string }>>;
}

const COLUMNS =
  'pipeline, model_name, version, status, task, trainer, trainer_settings, feature_spec, baseline, metrics, training_start, training_end, training_rows, parent_version, request_id, sha256, created_at';

export function sha256(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

function toInfo(row: cassandra.types.Row): ModelInfo {
  const date = (k: string) => (row.get(k) as Date | null)?.getTime() ?? null;
  return {
    pipeline: row.get('pipeline'),
    modelName: row.get('model_name'),
    version: row.get('version'),
    status: row.get('status'),
    trainer: row.get('trainer'),
    trainerSettings: JSON.parse((row.get('trainer_settings') as string | null) ?? '{}') as Record<string, unknown>,
    spec: JSON.parse(row.get('feature_spec') as string) as FeatureSpec,
    baseline: JSON.parse(row.get('baseline') as string) as BaselineStats,
    metrics: (row.get('metrics') as Record<string, number> | null) ?? {},
    trainingStart: date('training_start'),
    trainingEnd: date('training_end'),
    trainingRows: Number(row.get('training_rows') ?? 0),
    parentVersion: row.get('parent_version'),
    requestId: row.get('request_id'),
    sha256: row.get('sha256'),
    createdAt: date('created_at') ?? 0,
  };
}

export function createModelRegistry(client: cassandra.Client): ModelRegistry {
  const q = async (query: string, params: unknown[], idempotent = true): Promise<cassandra.types.ResultSet> => {
    try {
      return await client.execute(query, params, { prepare: true, isIdempotent: idempotent });
    } catch (err) {
      throw new TransientError(`model registry: ${(err as Error).message}`, err, 'STORE_UNAVAILABLE');
    }
  };

  async function logEvent(c: ChangeServing, action: string, version: number, previous: number | null): Promise<void> {
    await q(
      'INSERT INTO model_events (pipeline, model_name, created_at, event_id, action, model_version, previous_version, reason, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [c.pipeline, c.modelName, new Date(), crypto.randomUUID(), action, version, previous, c.reason, c.actor],
    );
  }

  const registry: ModelRegistry = {
    async register(input) {
      const digest = sha256(input.onnx);
      for (let attempt = 0; attempt < 20; attempt++) {
        const latest = await q('SELECT version FROM models WHERE pipeline = ? AND model_name = ? LIMIT 1', [input.pipeline, input.modelName]);
        const version = ((latest.first()?.get('version') as number | undefined) ?? 0) + 1;
        const rs = await q(
          `INSERT INTO models (${COLUMNS}, onnx) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
          [
            input.pipeline, input.modelName, version, input.status, input.spec.task, input.trainer, JSON.stringify(input.trainerSettings),
            JSON.stringify(input.spec), JSON.stringify(input.baseline), input.metrics,
            input.trainingStart == null ? null : new Date(input.trainingStart), input.trainingEnd == null ? null : new Date(input.trainingEnd),
            input.trainingRows, input.parentVersion ?? null, input.requestId ?? null, digest, new Date(), Buffer.from(input.onnx),
          ],
          false,
        );
        if (rs.wasApplied()) return (await registry.get(input.pipeline, input.modelName, version)) satisfies ModelInfo;
      }
      throw new TransientError(`registering ${input.pipeline}/${input.modelName}: version contention did not settle`, undefined, 'REGISTRY_CONTENTION');
    },

    async get(pipeline, modelName, version) {
      const rs = await q(`SELECT ${COLUMNS}, onnx FROM models WHERE pipeline = ? AND model_name = ? AND version = ?`, [pipeline, modelName, version]);
      const row = rs.first();
      if (!row) throw new ModelNotFoundError(pipeline, modelName, version);
      const onnx = new Uint8Array(row.get('onnx') as Buffer);
      const info = toInfo(row);
      if (sha256(onnx) !== info.sha256) {
        throw new ModelIntegrityError(`model ${pipeline}/${modelName}@${version}: ONNX bytes do not match their sha256 ${info.sha256.slice(0, 12)}…`);
      }
      return { ...info, onnx };
    },

    async list(pipeline, modelName) {
      const rs = await q(`SELECT ${COLUMNS} FROM models WHERE pipeline = ? AND model_name = ?`, [pipeline, modelName]);
      return rs.rows.map(toInfo);
    },

    async serving(pipeline, modelName) {
      const row = (await q('SELECT champion_version, previous_version, shadow_version, ab_version, ab_share FROM model_serving WHERE pipeline = ? AND model_name = ?', [pipeline, modelName])).first();
      return {
        champion: row?.get('champion_version') ?? null,
        previous: row?.get('previous_version') ?? null,
        shadow: row?.get('shadow_version') ?? null,
        ab: row?.get('ab_version') ?? null,
        abShare: row?.get('ab_share') ?? 0,
      };
    },

    async setStatus(pipeline, modelName, version, status) {
      await q('UPDATE models SET status = ? WHERE pipeline = ? AND model_name = ? AND version = ?', [status, pipeline, modelName, version]);
    },

    async promote(c) {
      await registry.get(c.pipeline, c.modelName, c.version); // exists and intact
      const rs =
        c.expected === null
          ? await q(
              'INSERT INTO model_serving (pipeline, model_name, champion_version, updated_at, updated_by) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS',
              [c.pipeline, c.modelName, c.version, new Date(), c.actor],
              false,
            )
          : await q(
              'UPDATE model_serving SET champion_version = ?, previous_version = ?, updated_at = ?, updated_by = ? WHERE pipeline = ? AND model_name = ? IF champion_version = ?',
              [c.version, c.expected, new Date(), c.actor, c.pipeline, c.modelName, c.expected],
              false,
            );
      if (!rs.wasApplied()) return false;
      await registry.setStatus(c.pipeline, c.modelName, c.version, 'champion');
      if (c.expected !== null && c.expected !== c.version) await registry.setStatus(c.pipeline, c.modelName, c.expected, 'retired');
      await logEvent(c, 'PROMOTE', c.version, c.expected);
      return true;
    },

    async rollback(c) {
      const s = await registry.serving(c.pipeline, c.modelName);
      if (s.champion !== c.expected || s.previous === null) return null;
      const rs = await q(
        'UPDATE model_serving SET champion_version = ?, previous_version = ?, shadow_version = ?, updated_at = ?, updated_by = ? WHERE pipeline = ? AND model_name = ? IF champion_version = ?',
        [s.previous, null, null, new Date(), c.actor, c.pipeline, c.modelName, c.expected],
        false,
      );
      if (!rs.wasApplied()) return null;
      await registry.setStatus(c.pipeline, c.modelName, s.previous, 'champion');
      await registry.setStatus(c.pipeline, c.modelName, c.expected, 'rejected');
      await logEvent(c, 'ROLLBACK', s.previous, c.expected);
      return s.previous;
    },

    async setShadow(c) {
      await q('UPDATE model_serving SET shadow_version = ?, updated_at = ?, updated_by = ? WHERE pipeline = ? AND model_name = ?', [
        c.version, new Date(), c.actor, c.pipeline, c.modelName,
      ]);
      if (c.version !== null) await registry.setStatus(c.pipeline, c.modelName, c.version, 'shadow');
      await logEvent(c, c.version === null ? 'SHADOW_STOP' : 'SHADOW_START', c.version ?? 0, null);
    },

    async setAb(c) {
      if (c.version !== null) await registry.get(c.pipeline, c.modelName, c.version);
      if (!(c.share >= 0 && c.share <= 1)) throw new LooplineError(`A/B share must be in 0..1, got ${c.share}`, { code: 'BAD_ARGUMENT', retriable: false });
      await q('UPDATE model_serving SET ab_version = ?, ab_share = ?, updated_at = ?, updated_by = ? WHERE pipeline = ? AND model_name = ?', [
        c.version, c.version === null ? 0 : c.share, new Date(), c.actor, c.pipeline, c.modelName,
      ]);
      await logEvent(c, c.version === null ? 'AB_STOP' : 'AB_START', c.version ?? 0, null);
    },

    async history(pipeline, modelName, limit = 20) {
      const rs = await q('SELECT created_at, action, model_version, previous_version, reason, actor FROM model_events WHERE pipeline = ? AND model_name = ? LIMIT ?', [pipeline, modelName, limit]);
      return rs.rows.map((r) => ({
        at: (r.get('created_at') as Date).getTime(),
        action: r.get('action'),
        version: r.get('model_version'),
        previous: r.get('previous_version'),
        reason: r.get('reason'),
        actor: r.get('actor'),
      }));
    },
  };
  return registry;
}
