// Scorer variants on the real stack: an A/B arm serves its share of events
// (chosen by a stable hash), a shadow model scores every event side by side
// on its own, fewer inputs and is logged but never served (each row of the
// prediction log records the inputs its model took), and a model whose feature spec does not
// match the pipeline is refused at load while the champion keeps serving.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCORING_WORKERS, startPipeline, type RunningPipeline } from '../../consumers/pipeline.js';
import { abArm } from '../../consumers/scorer/scorer.js';
import { trainForPipeline } from '../../models/pipeline-training.js';
import { trainBootstrap } from '../../producers/bootstrap.js';
import type { Scorer } from '../../consumers/scorer/scorer.js';
import { artifactOf, type ModelRegistry } from '../../models/registry.js';
import { createModelRegistry } from '../../store/model-registry.js';
import { trainModel } from '../../models/trainer.js';
import { loadSpec } from '../../pipelines/spec.js';
import { createLooplineProducer } from '../../producers/client.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan, pointInTimeRows } from '../../producers/replay-plan.js';
import { createReplayer } from '../../producers/replayer.js';
import type { Prediction } from '../../schemas/types.js';
import { createPredictionLog } from '../../store/prediction-log.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';
import { workersCaughtUp, readToEnd } from '../support/read-topic.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { spec, dir } = loadSpec(path.join(root, 'pipelines', 'elec2.json'));
const csv = readCsv(path.join(dir, spec.replay!.csv));

let env: TestEnv;
let pipeline: RunningPipeline | null = null;
let registry: ModelRegistry;
beforeAll(async () => {
  env = await createTestEnv('variants');
  registry = createModelRegistry(env.cql);
  await trainBootstrap(spec, dir, registry);
});
afterAll(async () => {
  await pipeline?.stop();
  await env?.cleanup();
});

/** The shadow's own inputs: fewer than the pipeline serves (every live model gets its own vector). */
const SHADOW_FEATURES = ['period', 'nswdemand', 'nswprice_prev', 'nswprice_ma48'];

async function register(rowsFrom: number, rowsTo: number, features: readonly string[] = spec.model.features): Promise<number> {
  const rows = pointInTimeRows(spec, buildReplayPlan(spec, csv, { offset: rowsFrom, limit: rowsTo - rowsFrom })).filter((r) => r.label !== null);
  const t = trainForPipeline({ ...spec, model: { ...spec.model, features: [...features] } }, rows.map((r) => r.values), rows.map((r) => r.label!));
  const m = await registry.register({
    pipeline: spec.name, modelName: spec.model.name, status: 'candidate', ...artifactOf(t), parentVersion: 1,
  });
  return m.version;
}

describe('scorer variants', () => {
  it('serves an A/B arm by stable hash, logs a shadow (on its own inputs) without serving it, and refuses a mismatched model', async () => {
    const ab = await register(1000, 4000);
    const shadow = await register(2000, 5000, SHADOW_FEATURES);
    // A model trained on an input the pipeline does not serve (`nswprice`, the raw price): it cannot fit the pipeline.
    // (A model taking fewer of the served inputs would fit: each model gets exactly the inputs its spec names.)
    const rows = pointInTimeRows(spec, buildReplayPlan(spec, csv, { limit: 500 })).filter((r) => r.label !== null);
    const odd = trainModel({
      spec: { task: 'binary', features: [{ name: 'period', kind: 'numeric' }, { name: 'nswprice', kind: 'numeric' }], classes: ['DOWN', 'UP'] },
      rows: rows.map((r) => ({ period: r.values.period ?? null, nswprice: r.values.nswdemand ?? null })),
      labels: rows.map((r) => r.label!),
    });
    const mismatched = (await registry.register({
      pipeline: spec.name, modelName: spec.model.name, status: 'candidate', ...artifactOf(odd),
    })).version;

    await registry.setAb({ pipeline: spec.name, modelName: spec.model.name, version: ab, share: 0.3, actor: 'test', reason: 'test' });
    await registry.setShadow({ pipeline: spec.name, modelName: spec.model.name, version: shadow, actor: 'test', reason: 'test' });
    pipeline = await startPipeline(env.config, spec, env.logger, { workers: SCORING_WORKERS, env: { ...process.env, LOOPLINE_SCORER_RELOAD_INTERVAL_MS: '60000' }, runtime: { batchMax: 200 } });
    expect(pipeline.impl<Scorer>('scorer')!.serving()).toEqual({ champion: 1, shadow, ab });

    // Promoting the mismatched model: the scorer refuses it and v1 keeps serving.
    expect(await registry.promote({ pipeline: spec.name, modelName: spec.model.name, version: mismatched, expected: 1, actor: 'test', reason: 'mismatch' })).toBe(true);
    expect(await pipeline.impl<Scorer>('scorer')!.reload()).toBe(1);

    const producer = createLooplineProducer({ kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger });
    await producer.connect();
    const plan = buildReplayPlan(spec, csv, { offset: 6000, limit: 600 }).filter((a) => a.kind !== 'label');
    const sent = await createReplayer({ producer, logger: env.logger }).run(plan, { speed: 'max', eventsPerSecond: 2000 });
    await producer.disconnect();
    await waitFor('every worker to consume all its input', () => workersCaughtUp(env.kafka, env.admin, pipeline!.workers, env.names.prefix), 120_000, 500);

    const messages = await readToEnd(env.kafka, env.admin, env.names.physical('predictions'));
    const served: Prediction[] = [];
    for (const m of messages) {
      const d = await env.codec.decode('Prediction', m.value);
      if (d.ok) served.push(d.value);
    }
    expect(served).toHaveLength(sent.events);
    expect(new Set(served.map((p) => p.event_id)).size).toBe(sent.events);
    expect(served.some((p) => p.variant === 'shadow')).toBe(false);
    for (const p of served) {
      const arm = abArm(p.event_id, 0.3);
      expect(p.variant).toBe(arm);
      expect(p.model_version).toBe(arm === 'ab' ? ab : 1);
    }
    const share = served.filter((p) => p.variant === 'ab').length / served.length;
    expect(share).toBeGreaterThan(0.2);
    expect(share).toBeLessThan(0.4);

    const log = createPredictionLog(env.cql);
    for (const id of sent.eventIds.slice(0, 100)) {
      const rows = await log.byEvent(id);
      expect(rows.map((r) => r.variant).sort()).toEqual([abArm(id, 0.3), 'shadow'].sort());
      expect(rows.find((r) => r.variant === 'shadow')!.model_version).toBe(shadow);
      // Each row records the inputs its own model took, beside everything served.
      for (const r of rows) expect(r.model_features).toEqual(r.variant === 'shadow' ? SHADOW_FEATURES : spec.model.features);
      expect(Object.keys(rows[0]!.features).sort()).toEqual([...spec.model.features].sort());
    }
    // The analysts' table holds the same: every row of the replayed events, with its model's inputs.
    const byTime = await env.cql.execute('SELECT event_id, variant, model_version, model_features FROM predictions_by_time WHERE model_version = ? ALLOW FILTERING', [shadow], { prepare: true });
    expect(byTime.rows).toHaveLength(sent.events);
    for (const r of byTime.rows) expect(r.get('model_features')).toEqual(SHADOW_FEATURES);
  }, 300_000);
});
