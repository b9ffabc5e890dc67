// The joiner on real Kafka and Cassandra: predictions written to
// predictions.by-event as the scorer writes them (every variant, keyed by
// event id), ground truth sent before, after and at the same time as its
// predictions, duplicated, late and invalid; a crash after side effects
// (aborted transaction) and stop/starts of the joiner mid-stream. Every
// prediction of a labeled event, shadow variants included, ends as exactly one
// LabeledPrediction, and every joined event as one training row with the
// features the model was served.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { joiner } from '../../consumers/joiner/index.js';
import { loadSpec } from '../../pipelines/spec.js';
import { createLooplineProducer, type LooplineProducer } from '../../producers/client.js';
import type { GroundTruth, LabeledPrediction, Prediction } from '../../schemas/types.js';
import { dayOf } from '../../store/prediction-log.js';
import { createStores } from '../../store/stores.js';
import { createTrainingSet } from '../../store/training-set.js';
import { TransientError } from '../../core/errors.js';
import { createWorkerMetrics } from '../../streams/metrics.js';
import { createWorker, type Worker, type WorkerDeps, type WorkerHandler } from '../../streams/runtime.js';
import type { WorkerImpl } from '../../streams/definition.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';
import { groupCaughtUp, header, readToEnd } from '../support/read-topic.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { spec } = loadSpec(path.join(root, 'pipelines', 'elec2.json'));
const H = spec.label.horizonMs;
const T0 = Date.UTC(1997, 0, 1);
const STEP = 6 * 3600_000; // 300 events over 75 days: three month partitions
const N = 300;

let env: TestEnv;
let producer: LooplineProducer;
let registry: Registry;
let deps: WorkerDeps;
const workers: Worker[] = [];
beforeAll(async () => {
  env = await createTestEnv('joiner');
  producer = createLooplineProducer({ kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger });
  await producer.connect();
  registry = new Registry();
  deps = { kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger, metrics: createWorkerMetrics(registry) };
});
afterAll(async () => {
  for (const w of workers) await w.stop().catch(() => {});
  await producer?.disconnect().catch(() => {});
  await env?.cleanup();
});

const id = (i: number) => `ev-${String(i).padStart(4, '0')}`;
const eventTime = (i: number) => T0 + i * STEP;

/** The served prediction of event i (every 5th by the A/B arm), and a shadow one for every 3rd. */
function predictionsOf(i: number): { served: Prediction; shadow: Prediction | null } {
  const variant = i % 5 === 0 ? 'ab' : 'champion';
  const version = variant === 'ab' ? 2 : 1;
  const features: Prediction['features'] = {
    day: String(1 + (i % 7)), period: (i % 48) / 47, nswdemand: 0.3 + (i % 10) / 50, vicprice: 0.003, vicdemand: 0.42, transfer: 0.41,
    nswprice_prev: i % 10 === 0 ? null : 0.05 + (i % 13) / 100, nswprice_ma48: 0.06,
  };
  const base = {
    event_id: id(i), pipeline: spec.name, entity_id: 'nsw', model_name: spec.model.name, score: 0.4 + (i % 5) / 10, value: null,
    features, missing: i % 10 === 0 ? ['nswprice_prev'] : [], model_features: spec.model.features, event_time: eventTime(i), produced_at: eventTime(i) + 10, scored_at: eventTime(i) + 20,
  };
  const label = i % 2 === 0 ? 'UP' : 'DOWN';
  const served: Prediction = { ...base, prediction_id: `${id(i)}/${spec.model.name}@${version}/${variant}`, model_version: version, variant, label, probabilities: { DOWN: 0.5, UP: 0.5 } };
  const shadow: Prediction | null = i % 3 === 0 ? { ...base, prediction_id: `${id(i)}/${spec.model.name}@3/shadow`, model_version: 3, variant: 'shadow', label: 'UP', score: 0.9, probabilities: { DOWN: 0.1, UP: 0.9 } } : null;
  return { served, shadow };
}

/** As the scorer does it: every prediction of the event (served and shadow) on predictions.by-event, keyed by event id. */
async function score(indices: number[]): Promise<void> {
  const ps = indices.flatMap((i) => {
    const p = predictionsOf(i);
    return p.shadow ? [p.served, p.shadow] : [p.served];
  });
  const kp = env.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await kp.connect();
  const subject = env.names.subject('predictions.by-event', 'Prediction');
  await kp.send({ topic: env.names.physical('predictions.by-event'), messages: await Promise.all(ps.map(async (p) => ({ key: p.event_id, value: await env.codec.encode('Prediction', subject, p) }))) });
  await kp.disconnect();
}

const truthOf = (i: number, patch: Partial<GroundTruth> = {}): GroundTruth => ({
  event_id: id(i), pipeline: spec.name, label: i % 4 < 2 ? 'UP' : 'DOWN', event_time: eventTime(i), label_time: eventTime(i) + spec.label.delayMs, ...patch,
});
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, k) => a + k);

type JoinHandler = WorkerHandler<'GroundTruth' | 'Prediction'>;

/** The joiner from its definition on this test's servers. */
function joinerHandler(metrics: ReturnType<typeof joiner.createMetrics>): JoinHandler {
  const impl = joiner.create({}, { spec, logger: env.logger, stores: createStores(env.cql), now: Date.now }, metrics) as WorkerImpl<'GroundTruth' | 'Prediction'>;
  return { name: joiner.name, input: joiner.input, ...impl };
}

/** A joiner whose first label chunk with output crashes after its side effects, before the commit (an aborted transaction). */
function crashingOnce(h: JoinHandler, state: { left: number }): JoinHandler {
  return {
    ...h,
    async process(records, ctx) {
      const r = await h.process(records, ctx);
      if (state.left > 0 && records.some((x) => x.record === 'GroundTruth') && r.outputs.some((o) => o.topic === 'predictions.labeled')) {
        state.left--;
        throw new TransientError('injected crash after the claims, before the Kafka commit');
      }
      return r;
    },
  };
}

describe('joiner', () => {
  it('emits exactly one LabeledPrediction per logged prediction of a labeled event, whatever the arrival order, duplicates, late labels, crashes and restarts', async () => {
    const opts = { batchMax: 40 };
    const jm = joiner.createMetrics(registry); // once per process, as startPipeline does
    const crash = { left: 1 };
    const start = async (h: JoinHandler) => {
      const w = createWorker(h, deps, opts);
      workers.push(w);
      await w.start();
      return w;
    };
    let worker = await start(crashingOnce(joinerHandler(jm), crash));
    const labelsTopic = env.names.physical('labels.ground-truth');
    const predictionsTopic = env.names.physical('predictions.by-event');
    const caughtUp = async (what: string) => {
      await waitFor(`${what}: joiner caught up on labels`, () => groupCaughtUp(env.admin, `${env.names.prefix}loopline-joiner`, labelsTopic), 120_000, 300);
      await waitFor(`${what}: joiner caught up on predictions`, () => groupCaughtUp(env.admin, `${env.names.prefix}loopline-joiner`, predictionsTopic), 120_000, 300);
    };

    // Groups: A [0,150) predicted then labeled; B [150,200) labeled first; G [200,260) both at once;
    // E [260,280) late labels; I [280,285) invalid labels; U [285,300) never labeled; orphans: labels, no prediction.
    const A = range(0, 150);
    const B = range(150, 200);
    const G = range(200, 260);
    const E = range(260, 280);
    const I = range(280, 285);

    // Phase 1: predictions for A, E, I, U; labels for B (they wait).
    await Promise.all([score([...A, ...E, ...I, ...range(285, N)]), producer.sendGroundTruth(B.map((i) => truthOf(i)))]);
    await caughtUp('phase 1');

    // Phase 2: A's labels, the first 40 of them three times; the first chunk crashes before its commit.
    await producer.sendGroundTruth(A.map((i) => truthOf(i)));
    await producer.sendGroundTruth(range(0, 40).map((i) => truthOf(i)));
    await producer.sendGroundTruth(range(0, 40).map((i) => truthOf(i, { label_time: eventTime(i) + 2 * spec.label.delayMs })));
    await caughtUp('phase 2');
    expect(crash.left).toBe(0);

    // Phase 3: B's predictions (their labels are waiting); late, invalid and orphan labels.
    await score(B);
    await producer.sendGroundTruth([
      ...E.map((i) => truthOf(i, { label_time: eventTime(i) + H + 3600_000 })),
      ...I.map((i) => truthOf(i, { label: 'SIDEWAYS' })),
      ...range(0, 10).map((k) => ({ ...truthOf(0), event_id: `orphan-${k}` })),
    ]);
    await caughtUp('phase 3');

    // Phase 4: G's labels and predictions at the same time, the joiner stopped and replaced mid-stream.
    const racing = Promise.all([score(G), producer.sendGroundTruth(G.map((i) => truthOf(i)))]);
    await waitFor('the joiner to be working on phase 4', async () => (await registry.metrics()).includes('loopline_joiner_predictions_total{outcome="joined"}'), 30_000, 20);
    await worker.stop();
    worker = await start(joinerHandler(jm));
    await racing;
    await caughtUp('phase 4');

    // Phase 5: after another restart, duplicates of every kind of joined label.
    await worker.stop();
    worker = await start(joinerHandler(jm));
    await producer.sendGroundTruth([...range(40, 80), ...range(150, 170), ...range(200, 220)].map((i) => truthOf(i)));
    await caughtUp('phase 5');

    // predictions.labeled: exactly the logged predictions of A, B and G, each once.
    const joined = [...A, ...B, ...G];
    const expected = new Map<string, Prediction>();
    for (const i of joined) {
      const { served, shadow } = predictionsOf(i);
      expected.set(served.prediction_id, served);
      if (shadow) expected.set(shadow.prediction_id, shadow);
    }
    const messages = await readToEnd(env.kafka, env.admin, env.names.physical('predictions.labeled'));
    const labeled: LabeledPrediction[] = [];
    for (const m of messages) {
      const d = await env.codec.decode('LabeledPrediction', m.value);
      expect(d.ok).toBe(true);
      if (d.ok) labeled.push(d.value);
      expect(m.key).toBe(`${spec.name}/${spec.model.name}`);
    }
    const ids = labeled.map((l) => l.prediction.prediction_id);
    expect(new Set(ids).size).toBe(ids.length); // no duplicates
    expect(ids.length).toBe(expected.size);
    expect(new Set(ids)).toEqual(new Set(expected.keys()));
    expect(labeled.filter((l) => l.prediction.variant === 'shadow').length).toBe(joined.filter((i) => i % 3 === 0).length);
    for (const l of labeled) {
      expect(l.prediction).toEqual(expected.get(l.prediction.prediction_id)); // the exact prediction, nulls and entity included
      const i = Number(l.prediction.event_id.slice(3));
      expect(l.label).toBe(truthOf(i).label);
      expect(l.correct).toBe(l.prediction.label === l.label);
      expect(l.error).toBeNull();
    }

    // Late labels: on labels.late and in late_labels, counted, never joined.
    const late = await readToEnd(env.kafka, env.admin, env.names.physical('labels.late'));
    expect(late.map((m) => m.key).sort()).toEqual(E.map(id));
    const lateRows = await Promise.all(E.map((i) => env.cql.execute('SELECT reason FROM late_labels WHERE pipeline = ? AND day = ? AND event_id = ?', [spec.name, dayOf(eventTime(i)), id(i)], { prepare: true })));
    expect(lateRows.map((r) => r.rows[0]?.get('reason'))).toEqual(E.map(() => 'past_horizon'));
    const dlq = await readToEnd(env.kafka, env.admin, env.names.physical('labels.ground-truth.dlq'));
    expect(dlq.map((m) => header(m.headers, 'error.code'))).toEqual(I.map(() => 'BAD_LABEL'));

    // Training rows: one per joined event, newest first, with the served features and the label.
    const training = createTrainingSet(env.cql);
    const rows = await training.newest(spec.name, { limit: 10_000 });
    expect(rows.map((r) => r.eventId)).toEqual([...joined].sort((a, b) => b - a).map(id));
    for (const r of rows) {
      const i = Number(r.eventId.slice(3));
      const { served } = predictionsOf(i);
      expect(r.values).toEqual(served.features);
      expect(r.eventTime).toBe(served.event_time);
      expect(r.modelVersion).toBe(served.model_version);
      expect(r.label).toBe(truthOf(i).label);
    }
    const before = eventTime(100);
    const page = await training.newest(spec.name, { limit: 25, before });
    expect(page.map((r) => r.eventId)).toEqual(range(75, 100).reverse().map(id)); // crosses a month boundary
    expect(await training.newest(spec.name, { limit: 5, before: T0 })).toEqual([]);

    // Metrics: late and invalid counted exactly; the crash was replayed from the saved state.
    const text = await registry.metrics();
    const metric = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    expect(metric(/loopline_joiner_labels_total\{outcome="late"\} (\S+)/)).toBe(E.length);
    expect(metric(/loopline_joiner_labels_total\{outcome="invalid"\} (\S+)/)).toBe(I.length);
    expect(metric(/loopline_joiner_labels_total\{outcome="pending"\} (\S+)/)).toBeGreaterThanOrEqual(B.length + 10);
    expect(metric(/loopline_joiner_labels_total\{outcome="duplicate"\} (\S+)/)).toBeGreaterThanOrEqual(80 + 80);
    expect(metric(/loopline_joiner_label_delay_seconds_count (\S+)/)).toBeGreaterThanOrEqual(joined.length + E.length);
    const coverage = metric(/^loopline_joiner_label_coverage (\S+)$/m);
    console.log(`[joiner] coverage ${coverage}, ${labeled.length} labeled predictions, ${rows.length} training rows\n${text.split('\n').filter((l) => l.startsWith('loopline_joiner_predictions_total') || l.startsWith('loopline_joiner_labels_total')).join('\n')}`);
    expect(coverage).toBeCloseTo(joined.length / N, 1);
  }, 400_000);
});
