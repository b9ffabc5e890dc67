/**
 * model-builder: turns a RetrainRequest into a registered candidate.
 *
 * The training set is what the models actually saw: the served feature
 * values of the prediction log joined with ground truth (`training_rows`,
 * written by the joiner), so it is point-in-time correct by construction.
 * Split by time, never at random: the newest `promotion.holdoutRows` rows
 * before the request's window end are held out for the evaluator; the
 * `trainer.windowRows` rows before them are the training set.
 *
 * Trainers: the built-in TypeScript trainer, or an external command
 * (`trainer.kind: command`) that reads a CSV training set and writes
 * `model.onnx` and `metrics.json` into a folder (see trainers/README.md).
 *
 * Each request id is built once: the request is recorded with a
 * lightweight transaction, and a replayed request reuses the model already
 * registered for it.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type cassandra from 'cassandra-driver';
import { computeBaseline } from '../../models/baseline.js';
import type { FeatureSpec } from '../../models/feature-spec.js';
import { loadOnnxModel } from '../../models/onnx-model.js';
import { trainForPipeline } from '../../models/pipeline-training.js';
import type { ModelInfo, ModelRegistry } from '../../models/registry.js';
import { modelFeatureDefs, type PipelineSpec } from '../../pipelines/spec.js';
import type { ModelCandidate, RetrainRequest } from '../../schemas/types.js';
import { LooplineError, TransientError } from '../../streams/errors.js';
import type { Logger } from '../../streams/logger.js';
import type { InputRecord, OutputRecord, WorkerHandler } from '../../streams/runtime.js';
import { readTrainingRows, type TrainingRow } from '../joiner/store.js';

const run = promisify(execFile);

export interface ModelBuilderDeps {
  spec: PipelineSpec;
  cql: cassandra.Client;
  registry: ModelRegistry;
  logger: Logger;
  /** Fewest training rows worth a model. Default 100. */
  minRows?: number;
  onBuilt?: (model: ModelInfo, request: RetrainRequest) => void;
}

/** Pure: the time-based split of newest-first rows into holdout (newest) and training (the window before). */
export function splitByTime<T extends { eventTime: number }>(newestFirst: T[], holdoutRows: number, windowRows: number): { holdout: T[]; train: T[] } {
  return { holdout: newestFirst.slice(0, holdoutRows), train: newestFirst.slice(holdoutRows, holdoutRows + windowRows) };
}

interface Trained {
  onnx: Uint8Array;
  spec: FeatureSpec;
  baseline: ReturnType<typeof computeBaseline>;
  metrics: Record<string, number>;
  trainer: string;
  settings: Record<string, unknown>;
}

async function trainBuiltin(spec: PipelineSpec, train: TrainingRow[]): Promise<Trained> {
  const t = trainForPipeline(spec, train.map((r) => r.values), train.map((r) => r.label));
  return { onnx: t.onnx, spec: t.spec, baseline: t.baseline, metrics: t.metrics, trainer: t.trainer.name, settings: t.trainer.settings };
}

/** Runs the spec's external trainer on a CSV of the training rows and checks what it wrote. */
export async function trainExternal(spec: PipelineSpec, train: TrainingRow[], logger: Logger): Promise<Trained> {
  const features = modelFeatureDefs(spec);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loopline-train-'));
  try {
    const csvFile = path.join(dir, 'train.csv');
    const quote = (v: unknown) => (v === null || v === undefined ? '' : /[",\n]/.test(String(v)) ? `"${String(v).replaceAll('"', '""')}"` : String(v));
    const lines = [[...features.map((f) => f.name), 'label'].join(',')];
    for (const r of [...train].reverse()) lines.push([...features.map((f) => quote(r.values[f.name])), quote(r.label)].join(','));
    fs.writeFileSync(csvFile, lines.join('\n') + '\n');
    const specFile = path.join(dir, 'spec.json');
    const featureSpec: FeatureSpec = { task: spec.task, features, classes: spec.label.classes };
    fs.writeFileSync(specFile, JSON.stringify(featureSpec));
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    const argv = spec.trainer.command!.map((a) => a.replaceAll('{train}', csvFile).replaceAll('{out}', out).replaceAll('{spec}', specFile));
    logger.info({ argv }, 'running external trainer');
    try {
      await run(argv[0]!, argv.slice(1), { timeout: 30 * 60_000, maxBuffer: 16 * 1024 * 1024 });
    } catch (err) {
      throw new LooplineError(`external trainer ${argv[0]} failed: ${(err as { stderr?: string }).stderr?.slice(-1000) ?? (err as Error).message}`, { code: 'TRAINER_FAILED', retriable: false });
    }
    const onnx = new Uint8Array(fs.readFileSync(path.join(out, 'model.onnx')));
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8')) as Record<string, number>;
    const model = await loadOnnxModel(onnx, featureSpec); // refuses a model that does not take our inputs
    try {
      const rows = train.map((r) => r.values);
      const baseline = computeBaseline(featureSpec, rows, await model.predict(rows));
      return { onnx, spec: featureSpec, baseline, metrics, trainer: `command:${path.basename(argv[0]!)}`, settings: { command: spec.trainer.command } };
    } finally {
      await model.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function createModelBuilder(deps: ModelBuilderDeps): WorkerHandler<'RetrainRequest'> {
  const { spec, cql, registry, logger } = deps;
  const minRows = deps.minRows ?? 100;

  const q = async (query: string, params: unknown[], idempotent = true) => {
    try {
      return await cql.execute(query, params, { prepare: true, isIdempotent: idempotent });
    } catch (err) {
      throw new TransientError(`model builder: ${(err as Error).message}`, err, 'STORE_UNAVAILABLE');
    }
  };

  function candidate(m: ModelInfo, r: RetrainRequest): ModelCandidate {
    return {
      pipeline: spec.name,
      model_name: m.modelName,
      model_version: m.version,
      request_id: r.request_id,
      trainer: m.trainer,
      training_rows: m.trainingRows,
      window_start: m.trainingStart ?? 0,
      window_end: m.trainingEnd ?? 0,
      metrics: m.metrics,
      sha256: m.sha256,
      created_at: m.createdAt,
    };
  }

  async function build(r: RetrainRequest): Promise<ModelInfo | null> {
    const existing = (await registry.list(spec.name, spec.model.name)).find((m) => m.requestId === r.request_id);
    if (existing) return existing; // built before a crash; reuse it
    const rows = await readTrainingRows(cql, spec.name, { limit: spec.promotion.holdoutRows + spec.trainer.windowRows, before: r.window_end + 1 });
    const { train } = splitByTime(rows, spec.promotion.holdoutRows, spec.trainer.windowRows);
    if (train.length < minRows) {
      logger.warn({ requestId: r.request_id, rows: rows.length, train: train.length }, 'too few labeled rows to train; request not built');
      return null;
    }
    const started = Date.now();
    const t = spec.trainer.kind === 'command' ? await trainExternal(spec, train, logger) : await trainBuiltin(spec, train);
    const times = train.map((x) => x.eventTime);
    const model = await registry.register({
      pipeline: spec.name,
      modelName: spec.model.name,
      status: 'candidate',
      onnx: t.onnx,
      spec: t.spec,
      baseline: t.baseline,
      metrics: t.metrics,
      trainer: t.trainer,
      trainerSettings: t.settings,
      trainingStart: Math.min(...times),
      trainingEnd: Math.max(...times),
      trainingRows: train.length,
      parentVersion: r.champion_version,
      requestId: r.request_id,
    });
    logger.info({ requestId: r.request_id, version: model.version, rows: train.length, seconds: (Date.now() - started) / 1000 }, 'candidate registered');
    return model;
  }

  return {
    name: 'model-builder',
    input: { topic: 'control.retrain', record: 'RetrainRequest' },
    async process(records: Array<InputRecord<RetrainRequest>>) {
      const outputs: OutputRecord[] = [];
      for (const { value: r } of records) {
        if (r.pipeline !== spec.name) continue;
        const claim = await q(
          'INSERT INTO retrain_requests (pipeline, request_id, reason, detail, window_start, window_end, requested_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS',
          [r.pipeline, r.request_id, r.reason, r.detail, new Date(r.window_start), new Date(r.window_end), new Date(r.requested_at), 'building'],
          false,
        );
        const status = claim.wasApplied() ? 'building' : (claim.first()?.get('status') as string | null);
        if (status === 'skipped') continue;
        const model = await build(r);
        if (!model) {
          await q('UPDATE retrain_requests SET status = ? WHERE pipeline = ? AND request_id = ?', ['skipped', r.pipeline, r.request_id]);
          continue;
        }
        await q('UPDATE retrain_requests SET status = ?, model_version = ? WHERE pipeline = ? AND request_id = ?', ['built', model.version, r.pipeline, r.request_id]);
        deps.onBuilt?.(model, r);
        outputs.push({ topic: 'control.candidates', record: 'ModelCandidate', key: spec.name, value: candidate(model, r) });
      }
      return { outputs };
    },
  };
}
