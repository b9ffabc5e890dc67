// The evaluator on real Kafka, Cassandra and registry: a candidate is judged
// against the champion on the newest labeled rows after its training window
// (training_rows, written as the joiner writes them), through the paired
// bootstrap gate. A worse or merely equal candidate is rejected and nothing is
// announced; a clearly better one is promoted once (compare-and-set, old
// champion to shadow, one PROMOTE ModelEvent), also across a crash between the
// promotion and the Kafka commit and a later restart of the worker.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEvaluator, type Evaluation } from '../../consumers/evaluator/evaluator.js';
import { trainForPipeline } from '../../models/pipeline-training.js';
import { artifactOf, type ModelInfo, type ModelRegistry } from '../../models/registry.js';
import { createModelRegistry } from '../../store/model-registry.js';
import type { TrainedModel } from '../../models/trainer.js';
import { loadSpec, type PipelineSpec } from '../../pipelines/spec.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan, pointInTimeRows, type PointInTimeRow } from '../../producers/replay-plan.js';
import type { ModelCandidate, ModelEvent, Prediction } from '../../schemas/types.js';
import { TransientError } from '../../core/errors.js';
import { createWorkerMetrics } from '../../streams/metrics.js';
import { createWorker, type InputRecord, type Worker } from '../../streams/runtime.js';
import type { WorkerImpl } from '../../streams/definition.js';
import { evaluator } from '../../consumers/evaluator/index.js';
import { createTrainingSet } from '../../store/training-set.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';
import { groupCaughtUp, readToEnd, type ReadMessage } from '../support/read-topic.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { spec: elec2, dir } = loadSpec(path.join(root, 'pipelines', 'elec2.json'));
const TRAIN_ROWS = 4000;
const HOLDOUT_ROWS = 1000;

/** A pipeline of its own per test (registry, training rows, checkpoint scope), with the gate the tests assume spelled out. */
function specNamed(name: string): PipelineSpec {
  return { ...elec2, name, promotion: { ...elec2.promotion, metric: 'accuracy', gate: 'better', minImprovement: 0, confidence: 0.9, holdoutRows: HOLDOUT_ROWS } };
}

let env: TestEnv;
let registry: ModelRegistry;
let train: PointInTimeRow[];
let holdout: PointInTimeRow[];
let good: TrainedModel;
let bad: TrainedModel;

beforeAll(async () => {
  const csv = readCsv(path.join(dir, elec2.replay!.csv));
  const rows = pointInTimeRows(elec2, buildReplayPlan(elec2, csv, { limit: TRAIN_ROWS + HOLDOUT_ROWS })).filter((r) => r.label !== null);
  expect(rows).toHaveLength(TRAIN_ROWS + HOLDOUT_ROWS);
  train = rows.slice(0, TRAIN_ROWS);
  holdout = rows.slice(TRAIN_ROWS);
  good = trainForPipeline(elec2, train.map((r) => r.values), train.map((r) => r.label!));
  // Deliberately bad: the same rows with every label flipped, so it predicts the opposite of the good model.
  bad = trainForPipeline(elec2, train.map((r) => r.values), train.map((r) => (r.label === 'UP' ? 'DOWN' : 'UP')));
  env = await createTestEnv('evaluator');
  registry = createModelRegistry(env.cql);
});
afterAll(async () => env?.cleanup());

const trainingEnd = () => Math.max(...train.map((r) => r.event.event_time));

async function register(spec: PipelineSpec, m: TrainedModel, parentVersion: number | null): Promise<ModelInfo> {
  return registry.register({
    pipeline: spec.name, modelName: spec.model.name, status: 'candidate', ...artifactOf(m), trainingStart: Math.min(...train.map((r) => r.event.event_time)), trainingEnd: trainingEnd(), parentVersion,
  });
}

/** Registers `m` and makes it the champion (the pipeline has none yet). */
async function champion(spec: PipelineSpec, m: TrainedModel): Promise<ModelInfo> {
  const info = await register(spec, m, null);
  expect(await registry.promote({ pipeline: spec.name, modelName: spec.model.name, version: info.version, expected: null, actor: 'test', reason: 'initial champion' })).toBe(true);
  return info;
}

/** The held-out rows as the joiner stores them: the served features of a champion prediction with its ground truth, after the training window. */
async function writeHoldout(spec: PipelineSpec, modelVersion: number): Promise<void> {
  const store = createTrainingSet(env.cql);
  expect(Math.min(...holdout.map((r) => r.event.event_time))).toBeGreaterThan(trainingEnd());
  for (let i = 0; i < holdout.length; i += 100) {
    await Promise.all(
      holdout.slice(i, i + 100).map((r) => {
        const p: Prediction = {
          prediction_id: `${r.event.event_id}/${spec.model.name}@${modelVersion}/champion`, event_id: r.event.event_id, pipeline: spec.name, entity_id: r.event.entity_id,
          model_name: spec.model.name, model_version: modelVersion, variant: 'champion', label: null, score: 0.5, probabilities: {}, value: null,
          features: r.values, missing: Object.entries(r.values).filter(([, v]) => v === null).map(([k]) => k), model_features: spec.model.features,
          event_time: r.event.event_time, produced_at: r.event.event_time, scored_at: r.event.event_time,
        };
        return store.write(p, r.label!, r.event.event_time + spec.label.delayMs);
      }),
    );
  }
}

function candidateOf(m: ModelInfo): ModelCandidate {
  return {
    pipeline: m.pipeline, model_name: m.modelName, model_version: m.version, validation_version: null, request_id: null, trainer: m.trainer, training_rows: m.trainingRows,
    window_start: m.trainingStart ?? 0, window_end: m.trainingEnd ?? 0, metrics: m.metrics, sha256: m.sha256, created_at: m.createdAt,
  };
}

async function sendCandidates(candidates: ModelCandidate[]): Promise<void> {
  const producer = env.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const subject = env.names.subject('control.candidates', 'ModelCandidate');
  await producer.send({
    topic: env.names.physical('control.candidates'),
    messages: await Promise.all(candidates.map(async (c) => ({ key: c.pipeline, value: await env.codec.encode('ModelCandidate', subject, c) }))),
  });
  await producer.disconnect();
}

function evaluatorWorker(impl: WorkerImpl<'ModelCandidate'>, groupId: string): Worker {
  const deps = { kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger, metrics: createWorkerMetrics(new Registry()) };
  return createWorker({ name: evaluator.name, input: evaluator.input, ...impl }, deps, { groupId, batchMax: 10, sessionTimeoutMs: 120_000 });
}

/** Runs an evaluator on its own group until it has committed everything on control.candidates, then stops it. */
async function runToEnd(spec: PipelineSpec, groupId: string, evaluations: Evaluation[] = []): Promise<void> {
  const worker = evaluatorWorker(createEvaluator({ spec, training: createTrainingSet(env.cql), registry, logger: env.logger, onEvaluated: (e) => evaluations.push(e) }), groupId);
  await worker.start();
  try {
    await waitFor('the evaluator to commit every candidate', () => groupCaughtUp(env.admin, groupId, env.names.physical('control.candidates')), 50_000, 250);
  } finally {
    await worker.stop();
  }
}

/** Every committed record of a topic (read_committed), to its end offsets, so a late duplicate is seen too. */
async function readAll(logical: string): Promise<ReadMessage[]> {
  return readToEnd(env.kafka, env.admin, env.names.physical(logical));
}

async function modelEvents(pipeline: string): Promise<ModelEvent[]> {
  const out: ModelEvent[] = [];
  for (const m of await readAll('control.models')) {
    const d = await env.codec.decode('ModelEvent', m.value);
    expect(d.ok).toBe(true);
    if (d.ok && d.value.pipeline === pipeline) out.push(d.value);
  }
  return out;
}

async function statusOf(spec: PipelineSpec, version: number): Promise<string | undefined> {
  return (await registry.list(spec.name, spec.model.name)).find((m) => m.version === version)?.status;
}

describe('model registry lookups', () => {
  it('reads one version by number or by request id, without its ONNX bytes, and answers null for none', async () => {
    const spec = specNamed('eval-lookup');
    const a = await registry.register({ pipeline: spec.name, modelName: spec.model.name, status: 'candidate', ...artifactOf(good), requestId: 'req-1#validation' });
    const b = await registry.register({ pipeline: spec.name, modelName: spec.model.name, status: 'candidate', ...artifactOf(good), requestId: 'req-1' });
    expect(await registry.byRequest(spec.name, spec.model.name, 'req-1')).toMatchObject({ version: b.version, requestId: 'req-1', sha256: b.sha256 });
    expect(await registry.byRequest(spec.name, spec.model.name, 'req-1#validation')).toMatchObject({ version: a.version });
    expect(await registry.byRequest(spec.name, spec.model.name, 'req-2')).toBeNull();
    const info = await registry.info(spec.name, spec.model.name, a.version);
    expect(info).toEqual((await registry.list(spec.name, spec.model.name)).find((m) => m.version === a.version));
    expect(info).not.toHaveProperty('onnx');
    expect(await registry.info(spec.name, spec.model.name, 99)).toBeNull();
  });
});

describe('evaluator', () => {
  it('never promotes a candidate worse than the champion', async () => {
    const spec = specNamed('eval-worse');
    const champ = await champion(spec, good);
    await writeHoldout(spec, champ.version);
    const cand = await register(spec, bad, champ.version);
    await sendCandidates([candidateOf(cand)]);

    const evaluations: Evaluation[] = [];
    await runToEnd(spec, `${env.names.prefix}eval-worse`, evaluations);

    expect(evaluations).toHaveLength(1);
    const e = evaluations[0]!;
    expect(e).toMatchObject({ candidate: cand.version, champion: champ.version, rows: HOLDOUT_ROWS, metric: 'accuracy', promote: false });
    expect(e.championMetric).toBeGreaterThan(0.7);
    expect(e.candidateMetric).toBeLessThan(0.3);
    expect(e.upper).toBeLessThan(0);

    const serving = await registry.serving(spec.name, spec.model.name);
    expect(serving.champion).toBe(champ.version);
    expect(serving.shadow).toBeNull();
    expect(await statusOf(spec, cand.version)).toBe('rejected');
    expect(await statusOf(spec, champ.version)).toBe('champion');
    expect(await modelEvents(spec.name)).toEqual([]);
  }, 60_000);

  it('promotes a clearly better candidate once, across a crash before the commit and a restart', async () => {
    const spec = specNamed('eval-better');
    const champ = await champion(spec, bad);
    await writeHoldout(spec, champ.version);
    const cand = await register(spec, good, champ.version);
    await sendCandidates([candidateOf(cand)]);
    const groupId = `${env.names.prefix}eval-better`;

    // Run 1 promotes, then "crashes" before its Kafka transaction commits: the registry changed, nothing was announced.
    const evaluations: Evaluation[] = [];
    const inner = createEvaluator({ spec, training: createTrainingSet(env.cql), registry, logger: env.logger, onEvaluated: (e) => evaluations.push(e) });
    let judged!: () => void;
    const judgedP = new Promise<void>((r) => (judged = r));
    let release!: () => void;
    const releaseP = new Promise<void>((r) => (release = r));
    const crashing: WorkerImpl<'ModelCandidate'> = {
      async process(records: Array<InputRecord<ModelCandidate>>, ctx) {
        await inner.process(records, ctx);
        judged();
        await releaseP;
        throw new TransientError('simulated crash between the promotion and the Kafka commit');
      },
    };
    const first = evaluatorWorker(crashing, groupId);
    await first.start();
    await judgedP;
    const stopping = first.stop();
    // stop() stops the consumer's runner synchronously (the worker reports 'stopping' at once), so the failing chunk released next is given up, not retried.
    await waitFor('the worker to begin stopping', () => first.health().state === 'stopping', 10_000, 10);
    release();
    await stopping;

    expect(evaluations).toHaveLength(1);
    expect(evaluations[0]).toMatchObject({ candidate: cand.version, champion: champ.version, rows: HOLDOUT_ROWS, promote: true });
    expect(evaluations[0]!.lower).toBeGreaterThan(0);
    expect(evaluations[0]!.candidateMetric).toBeGreaterThan(0.7);
    expect(await registry.serving(spec.name, spec.model.name)).toMatchObject({ champion: cand.version, previous: champ.version, shadow: champ.version });
    expect(await groupCaughtUp(env.admin, groupId, env.names.physical('control.candidates'))).toBe(false);
    expect(await modelEvents(spec.name)).toEqual([]);

    // Run 2, same group: the candidate is replayed; it already serves, so it is announced, not judged or promoted again.
    await runToEnd(spec, groupId, evaluations);
    expect(evaluations).toHaveLength(1);

    // Run 3, same group: nothing left to do (an unrelated candidate proves the worker consumed).
    await sendCandidates([{ ...candidateOf(cand), pipeline: 'eval-other' }]);
    await runToEnd(spec, groupId, evaluations);
    expect(evaluations).toHaveLength(1);

    const serving = await registry.serving(spec.name, spec.model.name);
    expect(serving).toMatchObject({ champion: cand.version, previous: champ.version, shadow: champ.version });
    expect(await statusOf(spec, cand.version)).toBe('champion');
    expect(await statusOf(spec, champ.version)).toBe('shadow');
    const events = await modelEvents(spec.name);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      event_id: `${spec.name}/${spec.model.name}/promote/${cand.version}`, action: 'PROMOTE', model_version: cand.version, previous_version: champ.version, actor: 'evaluator',
    });
    const promotions = (await registry.history(spec.name, spec.model.name, 50)).filter((h) => h.action === 'PROMOTE' && h.actor === 'evaluator');
    expect(promotions).toHaveLength(1);

    // The documented replay semantics: a candidate delivered again (e.g. the model builder replaying its output)
    // re-announces the same PROMOTE (same event_id, same versions) and changes nothing in the registry.
    await sendCandidates([candidateOf(cand)]);
    await runToEnd(spec, groupId, evaluations);
    expect(evaluations).toHaveLength(1);
    const again = await modelEvents(spec.name);
    expect(again).toHaveLength(2);
    expect(again[1]).toMatchObject({ event_id: events[0]!.event_id, action: 'PROMOTE', model_version: cand.version, previous_version: champ.version });
    expect(await registry.serving(spec.name, spec.model.name)).toEqual(serving);
    expect((await registry.history(spec.name, spec.model.name, 50)).filter((h) => h.action === 'PROMOTE' && h.actor === 'evaluator')).toHaveLength(1);
  }, 90_000);

  it('keeps the old champion as shadow when setting the shadow fails transiently after the promotion', async () => {
    // Regression: the retry (or a replay after a crash) of a chunk that promoted but failed before setShadow
    // went down the "already serving" path, which announced the promotion but never set the shadow.
    const spec = specNamed('eval-flaky');
    const champ = await champion(spec, bad);
    await writeHoldout(spec, champ.version);
    const cand = await register(spec, good, champ.version);
    await sendCandidates([candidateOf(cand)]);
    let failures = 1;
    const flaky: ModelRegistry = {
      ...registry,
      async setShadow(c) {
        if (failures-- > 0) throw new TransientError('model registry: Cassandra timeout (injected)');
        return registry.setShadow(c);
      },
    };
    const groupId = `${env.names.prefix}eval-flaky`;
    const worker = evaluatorWorker(createEvaluator({ spec, training: createTrainingSet(env.cql), registry: flaky, logger: env.logger }), groupId);
    await worker.start();
    try {
      await waitFor('the evaluator to commit every candidate', () => groupCaughtUp(env.admin, groupId, env.names.physical('control.candidates')), 50_000, 250);
    } finally {
      await worker.stop();
    }
    // The retried chunk finds the candidate already serving: it must still leave the old champion shadowing it
    // (else the rollback guard never judges this promotion), and announce it once.
    expect(failures).toBe(-1);
    expect(await registry.serving(spec.name, spec.model.name)).toMatchObject({ champion: cand.version, previous: champ.version, shadow: champ.version });
    expect(await statusOf(spec, champ.version)).toBe('shadow');
    const events = await modelEvents(spec.name);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ action: 'PROMOTE', model_version: cand.version, previous_version: champ.version });
  }, 60_000);

  it('does not promote a candidate that is not significantly better (identical model, minImprovement 0)', async () => {
    const spec = specNamed('eval-same');
    expect(spec.promotion.minImprovement).toBe(0);
    const champ = await champion(spec, good);
    await writeHoldout(spec, champ.version);
    const retrained = trainForPipeline(elec2, train.map((r) => r.values), train.map((r) => r.label!));
    const cand = await register(spec, retrained, champ.version);
    expect(cand.sha256).toBe(champ.sha256); // retrained identically: the same bytes, so the same predictions
    await sendCandidates([candidateOf(cand)]);

    const evaluations: Evaluation[] = [];
    await runToEnd(spec, `${env.names.prefix}eval-same`, evaluations);

    expect(evaluations).toHaveLength(1);
    expect(evaluations[0]).toMatchObject({ candidate: cand.version, champion: champ.version, rows: HOLDOUT_ROWS, meanDiff: 0, lower: 0, upper: 0, promote: false });
    expect(evaluations[0]!.candidateMetric).toBe(evaluations[0]!.championMetric);
    expect((await registry.serving(spec.name, spec.model.name)).champion).toBe(champ.version);
    expect(await statusOf(spec, cand.version)).toBe('rejected');
    expect(await modelEvents(spec.name)).toEqual([]);
  }, 60_000);
});
