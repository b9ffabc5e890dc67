/**
 * The model registry in Cassandra (`models`, `model_serving`, `model_events`):
 * the implementation of models/registry.ts. Which version serves lives in
 * `model_serving` and changes only by compare-and-set (a lightweight
 * transaction), so two evaluators promoting at once cannot both win.
 */
import crypto from 'node:crypto';
import type cassandra from 'cassandra-driver';
import { LooplineError, TransientError } from '../core/errors.js';
import type { BaselineStats } from '../models/baseline.js';
import type { FeatureSpec } from '../models/feature-spec.js';
import { ModelIntegrityError, ModelNotFoundError, type ChangeServing, type ModelInfo, type ModelRegistry } from '../models/registry.js';
import { classifyCassandraError } from './errors.js';

export function sha256(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

const COLUMNS =
  'pipeline, model_name, version, status, task, trainer, trainer_settings, feature_spec, baseline, metrics, training_start, training_end, training_rows, parent_version, request_id, sha256, created_at, verdict, spec_version';


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
    specVersion: (row.get('spec_version') as number | null) ?? null,
    sha256: row.get('sha256'),
    createdAt: date('created_at') ?? 0,
    verdict: (row.get('verdict') as string | null) ?? null,
  };
}

export function createModelRegistry(client: cassandra.Client): ModelRegistry {
  const q = async (query: string, params: unknown[], idempotent = true): Promise<cassandra.types.ResultSet> => {
    try {
      return await client.execute(query, params, { prepare: true, isIdempotent: idempotent });
    } catch (err) {
      throw classifyCassandraError(err, 'model registry');
    }
  };

  async function logEvent(c: ChangeServing, action: string, version: number, previous: number | null): Promise<void> {
    await q(
      'INSERT INTO model_events (pipeline, model_name, created_at, event_id, action, model_version, previous_version, reason, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [c.pipeline, c.modelName, new Date(), c.eventId ?? crypto.randomUUID(), action, version, previous, c.reason, c.actor],
    );
  }

  const registry: ModelRegistry = {
    async register(input) {
      const digest = sha256(input.onnx);
      for (let attempt = 0; attempt < 20; attempt++) {
        const latest = await q('SELECT version FROM models WHERE pipeline = ? AND model_name = ? LIMIT 1', [input.pipeline, input.modelName]);
        const version = ((latest.first()?.get('version') as number | undefined) ?? 0) + 1;
        const rs = await q(
          `INSERT INTO models (${COLUMNS}, onnx) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
          [
            input.pipeline, input.modelName, version, input.status, input.spec.task, input.trainer, JSON.stringify(input.trainerSettings),
            JSON.stringify(input.spec), JSON.stringify(input.baseline), input.metrics,
            input.trainingStart == null ? null : new Date(input.trainingStart), input.trainingEnd == null ? null : new Date(input.trainingEnd),
            input.trainingRows, input.parentVersion ?? null, input.requestId ?? null, digest, new Date(), null, input.specVersion ?? null, Buffer.from(input.onnx),
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

    async info(pipeline, modelName, version) {
      const row = (await q(`SELECT ${COLUMNS} FROM models WHERE pipeline = ? AND model_name = ? AND version = ?`, [pipeline, modelName, version])).first();
      return row ? toInfo(row) : null;
    },

    async byRequest(pipeline, modelName, requestId) {
      // Versions and request ids only (a few bytes a row), then the one match in full.
      const rs = await q('SELECT version, request_id FROM models WHERE pipeline = ? AND model_name = ?', [pipeline, modelName]);
      const hit = rs.rows.find((r) => r.get('request_id') === requestId);
      return hit ? registry.info(pipeline, modelName, hit.get('version') as number) : null;
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
      // The compare-and-set above decided it; the statuses and the history entry are independent writes.
      await Promise.all([
        registry.setStatus(c.pipeline, c.modelName, c.version, 'champion'),
        c.expected !== null && c.expected !== c.version ? registry.setStatus(c.pipeline, c.modelName, c.expected, 'retired') : null,
        logEvent(c, 'PROMOTE', c.version, c.expected),
      ]);
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
      await Promise.all([
        registry.setStatus(c.pipeline, c.modelName, s.previous, 'champion'),
        registry.setStatus(c.pipeline, c.modelName, c.expected, 'rejected'),
        logEvent(c, 'ROLLBACK', s.previous, c.expected),
      ]);
      return s.previous;
    },

    async setShadow(c) {
      const set = 'UPDATE model_serving SET shadow_version = ?, updated_at = ?, updated_by = ? WHERE pipeline = ? AND model_name = ?';
      const params = [c.version, new Date(), c.actor, c.pipeline, c.modelName];
      if (c.expectedChampion === undefined) await q(set, params);
      else if (!(await q(`${set} IF champion_version = ?`, [...params, c.expectedChampion], false)).wasApplied()) return false;
      await Promise.all([
        c.version !== null ? registry.setStatus(c.pipeline, c.modelName, c.version, 'shadow') : null,
        logEvent(c, c.version === null ? 'SHADOW_STOP' : 'SHADOW_START', c.version ?? 0, null),
      ]);
      return true;
    },

    async setAb(c) {
      if (c.version !== null) await registry.get(c.pipeline, c.modelName, c.version);
      if (!(c.share >= 0 && c.share <= 1)) throw new LooplineError(`A/B share must be in 0..1, got ${c.share}`, { code: 'BAD_ARGUMENT', retriable: false });
      const set = 'UPDATE model_serving SET ab_version = ?, ab_share = ?, updated_at = ?, updated_by = ? WHERE pipeline = ? AND model_name = ?';
      const params = [c.version, c.version === null ? 0 : c.share, new Date(), c.actor, c.pipeline, c.modelName];
      if (c.expectedChampion === undefined) await q(set, params);
      else if (!(await q(`${set} IF champion_version = ?`, [...params, c.expectedChampion], false)).wasApplied()) return false;
      await logEvent(c, c.version === null ? 'AB_STOP' : 'AB_START', c.version ?? 0, null);
      return true;
    },

    async setVerdict(pipeline, modelName, version, verdict) {
      await q('UPDATE models SET verdict = ? WHERE pipeline = ? AND model_name = ? AND version = ?', [verdict, pipeline, modelName, version]);
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
