// The online scoring path end to end on real Kafka, Cassandra and registry:
// Elec2 events replayed with streamed features, bad input mixed in, and a
// model promotion half way. Every event ends in exactly one place: one
// prediction on the topic and one row in the log, or the dead-letter topic.
// The swap happens at a known point: once the first half is committed by
// the scorer, so the first half is scored by v1 and the second by v2 exactly.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCORING_WORKERS, startPipeline, type RunningPipeline } from '../../consumers/pipeline.js';
import { createModelAnnouncer } from '../../cli/announce.js';
import { modelEvent } from '../../models/lifecycle.js';
import { trainForPipeline } from '../../models/pipeline-training.js';
import { trainBootstrap } from '../../producers/bootstrap.js';
import type { Scorer } from '../../consumers/scorer/scorer.js';
import { artifactOf } from '../../models/registry.js';
import { createModelRegistry } from '../../store/model-registry.js';
import { loadSpec } from '../../pipelines/spec.js';
import { createLooplineProducer } from '../../producers/client.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan, pointInTimeRows } from '../../producers/replay-plan.js';
import { createReplayer } from '../../producers/replayer.js';
import { frame } from '../../schemas/codec.js';
import type { ClientEvent, FeatureUpdate, Prediction } from '../../schemas/types.js';
import { createPredictionLog } from '../../store/prediction-log.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';
import { workersCaughtUp, groupCaughtUp, header, readToEnd } from '../support/read-topic.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { spec, dir } = loadSpec(path.join(root, 'pipelines', 'elec2.json'));
const csv = readCsv(path.join(dir, spec.replay!.csv));
const OFFSET = 5000;
const ROWS = 3000;

let env: TestEnv;
let pipeline: RunningPipeline;
beforeAll(async () => {
  env = await createTestEnv('scoring');
  const registry = createModelRegistry(env.cql);
  const boot = await trainBootstrap(spec, dir, registry);
  expect(boot.promoted).toBe(true);
  pipeline = await startPipeline(env.config, spec, env.logger, { workers: SCORING_WORKERS, env: { ...process.env, LOOPLINE_SCORER_RELOAD_INTERVAL_MS: '60000' }, runtime: { batchMax: 200 } });
});
afterAll(async () => {
  await pipeline?.stop();
  await env?.cleanup();
});

function badEvent(id: string, patch: Partial<ClientEvent> & { fields?: ClientEvent['fields'] }): ClientEvent {
  return {
    event_id: id,
    pipeline: 'elec2',
    entity_id: 'nsw',
    event_time: Date.UTC(1996, 7, 1),
    produced_at: Date.now(),
    fields: { day: '3', period: 0.5, nswdemand: 0.4, vicprice: 0.003, vicdemand: 0.4, transfer: 0.4 },
    ...patch,
  };
}

describe('scoring path', () => {
  it('gives every replayed event exactly one prediction and one log row, dead-letters bad input, and swaps models mid-replay without loss or duplicates', async () => {
    const producer = createLooplineProducer({ kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger });
    await producer.connect();
    const plan = buildReplayPlan(spec, csv, { offset: OFFSET, limit: ROWS }).filter((a) => a.kind !== 'label');
    const events = plan.filter((a) => a.kind === 'event').map((a) => a.record as ClientEvent);
    expect(events).toHaveLength(ROWS);

    // Bad input, sent through the same topic: each must end where the policy says.
    const subject = env.names.subject('events.client', 'ClientEvent');
    const good = await env.codec.encode('ClientEvent', subject, badEvent('x', {}));
    const raw = [
      { key: 'nsw', value: Buffer.from('{"event_id":"json-not-avro"}') }, // BAD_MAGIC
      { key: 'nsw', value: Buffer.from([0, 0, 0]) }, // TOO_SHORT
      { key: 'nsw', value: frame(2_000_000_000, good.subarray(5)) }, // SCHEMA_NOT_ALLOWED: not an id of the topic's subject
    ];
    const invalid = [
      badEvent('bad-nan', { fields: { ...badEvent('', {}).fields, nswdemand: Number.NaN } }),
      badEvent('bad-inf', { fields: { ...badEvent('', {}).fields, transfer: Number.POSITIVE_INFINITY } }),
      badEvent('bad-type', { fields: { ...badEvent('', {}).fields, period: 'noon' } }),
    ];
    const unknownEntity = [badEvent('unknown-entity-1', { entity_id: 'vic' }), badEvent('unknown-entity-2', { entity_id: 'qld' })];
    await producer.sendRaw('events.client', raw);
    await producer.sendEvents([...invalid, ...unknownEntity]);

    const group = (w: string) => `${env.names.prefix}loopline-${w}`;
    /** Until everything sent so far is scored and committed: every worker has consumed all its input. */
    const scoredSoFar = async (what: string) => {
      await waitFor(`${what}: every worker to consume all its input`, () => workersCaughtUp(env.kafka, env.admin, pipeline.workers, env.names.prefix), 120_000, 500);
    };

    // The store's starting state first (the plan's updates due at the first event's time), applied before any event: until
    // the feature-writer has seen an entity, the preprocessor has no watermark to wait for and serves what is there.
    const replayer = createReplayer({ producer, logger: env.logger });
    const first = plan.findIndex((a) => a.kind === 'event');
    expect(first).toBeGreaterThan(0);
    await replayer.run(plan.slice(0, first), { speed: 'max' });
    await waitFor('the feature-writer to apply the starting state', () => groupCaughtUp(env.admin, group('feature-writer'), env.names.physical('features.updates')), 60_000, 200);

    // Replay the first half and wait until the scorer has committed all of it; promote a new model, wait for the swap, replay the rest.
    const half = plan.findIndex((a) => a.kind === 'event' && a.record.event_id === events[ROWS / 2]!.event_id);
    await replayer.run(plan.slice(first, half), { speed: 'max', eventsPerSecond: 1500 });
    await scoredSoFar('first half');
    expect(pipeline.impl<Scorer>('scorer')!.serving().champion).toBe(1);
    const registry = createModelRegistry(env.cql);
    const window = pointInTimeRows(spec, buildReplayPlan(spec, csv, { offset: 1000, limit: 4000 })).filter((r) => r.label !== null);
    const v2 = trainForPipeline(spec, window.map((r) => r.values), window.map((r) => r.label!));
    const info = await registry.register({
      pipeline: spec.name, modelName: spec.model.name, status: 'candidate', ...artifactOf(v2), parentVersion: 1,
    });
    expect(info.version).toBe(2);
    expect(await registry.promote({ pipeline: spec.name, modelName: spec.model.name, version: 2, expected: 1, actor: 'test', reason: 'mid-replay swap' })).toBe(true);
    const announcer = createModelAnnouncer(env.kafka, env.codec, env.names);
    await announcer.announce(modelEvent({ pipeline: spec.name, modelName: spec.model.name, actor: 'test', reason: 'mid-replay swap', cause: 'test' }, 'PROMOTE', 2, 1));
    await announcer.close();
    await waitFor('the scorer to swap to version 2', () => pipeline.impl<Scorer>('scorer')!.serving().champion === 2, 30_000);
    await replayer.run(plan.slice(half), { speed: 'max', eventsPerSecond: 1500 });
    await producer.disconnect();
    await scoredSoFar('second half');

    // Counts: events in = predictions logged + dead letters.
    const scoredIds = [...events.map((e) => e.event_id), ...unknownEntity.map((e) => e.event_id)];
    const topicPredictions = await readToEnd(env.kafka, env.admin, env.names.physical('predictions'));
    const predictions: Prediction[] = [];
    for (const m of topicPredictions) {
      const d = await env.codec.decode('Prediction', m.value);
      expect(d.ok).toBe(true);
      if (d.ok) predictions.push(d.value);
    }
    const dlq = await readToEnd(env.kafka, env.admin, env.names.physical('events.client.dlq'));
    const eventsIn = ROWS + raw.length + invalid.length + unknownEntity.length;
    expect(predictions.length).toBe(scoredIds.length);
    expect(new Set(predictions.map((p) => p.event_id)).size).toBe(predictions.length); // zero duplicates on the topic
    expect(new Set(predictions.map((p) => p.event_id))).toEqual(new Set(scoredIds)); // none lost
    expect(dlq).toHaveLength(6);
    expect(predictions.length + dlq.length).toBe(eventsIn);
    expect(dlq.map((m) => header(m.headers, 'error.code')).sort()).toEqual(['BAD_MAGIC', 'NON_FINITE', 'NON_FINITE', 'SCHEMA_NOT_ALLOWED', 'TOO_SHORT', 'WRONG_TYPE']);

    // The prediction log holds exactly one row per scored event, with the served features.
    const log = createPredictionLog(env.cql);
    const rows: Array<Awaited<ReturnType<typeof log.byEvent>>> = [];
    for (let i = 0; i < scoredIds.length; i += 200) rows.push(...(await Promise.all(scoredIds.slice(i, i + 200).map((id) => log.byEvent(id)))));
    expect(rows.every((r) => r.length === 1)).toBe(true);
    const logged = rows.map((r) => r[0]!);
    const byId = new Map(predictions.map((p) => [p.event_id, p]));
    for (const l of logged) {
      const p = byId.get(l.event_id)!;
      expect(l.model_version).toBe(p.model_version);
      expect(l.score).toBeCloseTo(p.score, 12);
      expect(l.features).toEqual(p.features); // the exact values served, features served missing as null
    }

    // Unknown entities were scored, with their feature-store features flagged missing.
    for (const id of ['unknown-entity-1', 'unknown-entity-2']) {
      const p = byId.get(id)!;
      expect(p.missing).toEqual(expect.arrayContaining(['nswprice_prev', 'nswprice_ma48']));
      expect(Number.isFinite(p.score)).toBe(true);
    }

    // Served features come from the feature-writer: each is a value it wrote, known at the event's time.
    const updates = plan.filter((a) => a.kind === 'feature').map((a) => a.record as FeatureUpdate);
    const pit = new Map(pointInTimeRows(spec, buildReplayPlan(spec, csv, { offset: OFFSET, limit: ROWS })).map((r) => [r.event.event_id, r.values]));
    let exact = 0;
    for (const e of events) {
      const served = byId.get(e.event_id)!.features.nswprice_prev;
      if (served === pit.get(e.event_id)!.nswprice_prev) exact++;
      if (served !== null) {
        const source = updates.find((u) => u.values.nswprice_prev === served && u.event_time <= e.event_time);
        expect(source, `${e.event_id} was served nswprice_prev=${served}, which no update known at its time carried`).toBeDefined();
      }
    }
    // The market set is served point-in-time after waiting for the writer's watermark: every event
    // gets exactly the value an up-to-date store had at its event time, however far the replay runs ahead.
    expect(exact).toBe(events.length);

    // The swap: every event scored by exactly one version; v1 before, v2 after, per partition in order.
    const versions = new Set(predictions.map((p) => p.model_version));
    expect(versions).toEqual(new Set([1, 2]));
    const byPartition = new Map<number, number[]>();
    topicPredictions.forEach((m, i) => byPartition.set(m.partition, [...(byPartition.get(m.partition) ?? []), predictions[i]!.model_version]));
    for (const seq of byPartition.values()) expect([...seq].sort((a, b) => a - b)).toEqual(seq);
    expect(predictions.filter((p) => p.model_version === 1).length).toBeGreaterThan(0);
    expect(predictions.filter((p) => p.model_version === 2).length).toBeGreaterThan(0);
    // At the known point: what was sent before the swap (the unknown entities and the first half) was scored by v1, the rest by v2.
    const beforeSwap = new Set([...unknownEntity.map((e) => e.event_id), ...events.slice(0, ROWS / 2).map((e) => e.event_id)]);
    const wrong = predictions.filter((p) => p.model_version !== (beforeSwap.has(p.event_id) ? 1 : 2)).map((p) => `${p.event_id}@${p.model_version}`);
    expect(wrong).toEqual([]);
    expect(predictions.filter((p) => p.model_version === 1)).toHaveLength(beforeSwap.size);
    expect(predictions.filter((p) => p.model_version === 2)).toHaveLength(ROWS / 2);
  }, 600_000);
});
