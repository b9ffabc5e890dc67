// A spec version rolled out live on the real stack (issue 11): the loop runs on Elec2 (spec v1) with
// the bootstrap champion; `setup --spec` applies v2, which adds a rolling demand mean aggregated from
// the events; with no worker restarted, the preprocessor serves the new feature (the aggregator,
// started for the new events-sourced set, fills it), the model builder trains a candidate on v2's
// inputs from the joined training rows (those logged before v2 backfilled from the feature history), the evaluator gates and promotes it as any candidate, the
// scorer serves it (the old champion kept as shadow), and every logged prediction records the inputs
// its own model took: none lost, none twice.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPipeline, type RunningPipeline } from '../../consumers/pipeline.js';
import type { Scorer } from '../../consumers/scorer/scorer.js';
import { setupSpec } from '../../infra/spec-setup.js';
import { loadSpec, type PipelineSpec } from '../../pipelines/spec.js';
import { trainBootstrap } from '../../producers/bootstrap.js';
import { createLooplineProducer } from '../../producers/client.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan } from '../../producers/replay-plan.js';
import { createReplayer } from '../../producers/replayer.js';
import type { ModelEvent, Prediction, RetrainRequest } from '../../schemas/types.js';
import { createModelRegistry } from '../../store/model-registry.js';
import { createPredictionLog } from '../../store/prediction-log.js';
import { ROOT, withDemandMean } from '../support/elec2.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';
import { readToEnd, workersCaughtUp } from '../support/read-topic.js';

const { spec: shipped, dir } = loadSpec(path.join(ROOT, 'pipelines', 'elec2.json'));
const csv = readCsv(path.join(dir, shipped.replay!.csv));
/**
 * Elec2 with a smaller training window and a lenient gate: this test is about the rollout path, not the model's quality.
 * No staged rollout (promotion.rollout, tested on the in-memory harness): the candidate on v2 is promoted by the evaluator's gate.
 */
const v1: PipelineSpec = { ...shipped, trainer: { ...shipped.trainer, windowRows: 500 }, promotion: { ...shipped.promotion, holdoutRows: 150, tolerance: 0.1, rollout: { ...shipped.promotion.rollout, when: 'never' } } };
const v2 = withDemandMean(v1, { pointInTime: true, waitForWatermarkMs: 10_000 });
const FAST = { LOOPLINE_PREPROCESSOR_SPEC_POLL_INTERVAL_MS: '200', LOOPLINE_SCORER_RELOAD_INTERVAL_MS: '500' };

let env: TestEnv;
const running: RunningPipeline[] = [];
beforeAll(async () => {
  env = await createTestEnv('specroll');
  await trainBootstrap(v1, dir, createModelRegistry(env.cql));
});
afterAll(async () => {
  for (const p of running.reverse()) await p.stop();
  await env?.cleanup();
});

async function replay(offset: number, limit: number): Promise<string[]> {
  const producer = createLooplineProducer({ kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger });
  await producer.connect();
  try {
    const sent = await createReplayer({ producer, logger: env.logger }).run(buildReplayPlan(v1, csv, { offset, limit }), { speed: 'max', eventsPerSecond: 2000 });
    return sent.eventIds;
  } finally {
    await producer.disconnect();
  }
}

const caughtUp = () => waitFor('every worker to consume all its input', async () => {
  for (const p of running) if (!(await workersCaughtUp(env.kafka, env.admin, p.workers, env.names.prefix))) return false;
  return true;
}, 180_000, 500);

async function decoded<T>(topic: Parameters<TestEnv['names']['physical']>[0], record: 'Prediction' | 'ModelEvent'): Promise<T[]> {
  const out: T[] = [];
  for (const m of await readToEnd(env.kafka, env.admin, env.names.physical(topic))) {
    const d = await env.codec.decode(record, m.value);
    if (d.ok) out.push(d.value as T);
  }
  return out;
}

describe('spec rollout', () => {
  it('serves, trains, gates and promotes a model on a spec version applied while the loop runs; each prediction records its model\'s inputs', async () => {
    expect(await setupSpec(env.config, v1, JSON.stringify(v1), env.logger)).toMatchObject({ outcome: 'applied', version: 1 });
    running.push(await startPipeline(env.config, v1, env.logger, {
      workers: ['feature-writer', 'preprocessor', 'scorer', 'joiner', 'model-builder', 'evaluator'],
      env: { ...process.env, ...FAST },
      runtime: { batchMax: 200 },
    }));
    const scorer = running[0]!.impl<Scorer>('scorer')!;
    expect(scorer.serving().champion).toBe(1);

    // Phase 1, on v1.
    const phase1 = await replay(5000, 500);
    await caughtUp();

    // v2 applied; the aggregator is started for its new events-sourced set (it reads events.client from the start).
    const applied = await setupSpec(env.config, v2, JSON.stringify(v2), env.logger);
    expect(applied).toMatchObject({ outcome: 'applied', version: 2, created: true });
    running.push(await startPipeline(env.config, v2, env.logger, { workers: ['feature-aggregator'], runtime: { batchMax: 200 } }));

    // Phase 2, served v2's inputs by the running preprocessor; then a retrain over it.
    const phase2 = await replay(5500, 400);
    await caughtUp();
    const producer = env.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const windowEnd = Math.max(...(await decoded<Prediction>('predictions', 'Prediction')).map((p) => p.event_time));
    const request: RetrainRequest = { request_id: 'elec2/elec2-updown/retrain/spec-v2', pipeline: v1.name, reason: 'manual', detail: 'spec v2 rollout', champion_version: 1, window_start: 0, window_end: windowEnd, requested_at: Date.now() };
    await producer.send({ topic: env.names.physical('control.retrain'), messages: [{ key: v1.name, value: await env.codec.encode('RetrainRequest', env.names.subject('control.retrain', 'RetrainRequest'), request) }] });
    await producer.disconnect();
    const promoted = await waitFor('the candidate on v2 to be promoted and served', async () => {
      const c = scorer.serving().champion;
      return c !== null && c !== 1 ? c : undefined;
    }, 240_000, 500);

    const registry = createModelRegistry(env.cql);
    const model = await registry.get(v1.name, v1.model.name, promoted);
    expect(model.specVersion).toBe(2);
    expect(model.spec.features.map((f) => f.name)).toEqual(v2.model.features);
    expect(model.requestId).toBe(request.request_id);
    // Its training window reaches back before v2 (500 rows: phase 2's 400 and the newest of phase 1): those rows,
    // logged without the new feature, were backfilled from the aggregator's history (it aggregated phase 1 at its start).
    const demand = model.baseline.features.nswdemand_ma48!;
    expect(demand.kind === 'numeric' && demand.count).toBeGreaterThan(450);
    expect(demand.kind === 'numeric' && demand.missing).toBeLessThanOrEqual(2);
    // The registry changes inside the evaluator's chunk and the scorer may poll it before that chunk's
    // transaction commits the PROMOTE event: wait for the event rather than read the topic once.
    const events = await waitFor('the PROMOTE of the served model on control.models', async () => {
      const all = await decoded<ModelEvent>('control.models', 'ModelEvent');
      return all.some((e) => e.action === 'PROMOTE' && e.model_version === promoted) ? all : undefined;
    }, 60_000, 500);
    expect(events.filter((e) => e.action === 'PROMOTE').map((e) => e.model_version)).toContain(promoted);
    expect(scorer.serving().shadow).toBe(1); // the old champion, kept as shadow

    // Phase 3, served by the promoted model.
    const phase3 = await replay(5900, 200);
    await caughtUp();

    const served = await decoded<Prediction>('predictions', 'Prediction');
    const all = [...phase1, ...phase2, ...phase3];
    expect(served).toHaveLength(all.length);
    expect(new Set(served.map((p) => p.event_id))).toEqual(new Set(all));
    const byId = new Map(served.map((p) => [p.event_id, p]));
    for (const id of phase1) {
      expect(byId.get(id)!.model_features).toEqual(v1.model.features);
      expect(Object.keys(byId.get(id)!.features)).not.toContain('nswdemand_ma48');
    }
    // v2 is served from a chunk on (the preprocessor reads the versions every 200 ms here), and from then on always.
    const servedV2 = phase2.map((id) => Object.keys(byId.get(id)!.features).includes('nswdemand_ma48'));
    const from = servedV2.indexOf(true);
    expect(from).toBeGreaterThanOrEqual(0);
    expect(servedV2.slice(from).every(Boolean)).toBe(true);
    const newest = phase3.map((id) => byId.get(id)!);
    expect(new Set(newest.map((p) => p.model_version))).toEqual(new Set([promoted]));
    for (const p of newest) expect(p.model_features).toEqual(v2.model.features);
    expect(newest.filter((p) => typeof p.features.nswdemand_ma48 === 'number').length).toBe(newest.length);

    // What an analyst reads from Cassandra: each row the inputs its own model took.
    const log = createPredictionLog(env.cql);
    for (const id of phase3.slice(0, 50)) {
      const rows = await log.byEvent(id);
      expect(rows.map((r) => [r.variant, r.model_version, r.model_features]).sort()).toEqual([
        ['champion', promoted, v2.model.features],
        ['shadow', 1, v1.model.features],
      ]);
    }
  }, 600_000);
});
