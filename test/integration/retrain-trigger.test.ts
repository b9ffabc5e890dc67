// The retrain-trigger on real Kafka, Cassandra and registry: monitor reports
// in, RetrainRequests and ROLLBACK ModelEvents out. Its state is checkpointed
// with its offsets, so a run stopped part way (gracefully, or "crashed"
// between the checkpoint and the Kafka commit of the deciding report) emits
// exactly the requests of an uninterrupted run. A new champion that does
// worse live than the shadowing old one is rolled back; a better one is kept.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retrainTrigger } from '../../consumers/retrain-trigger/index.js';
import type { Report, TriggerState } from '../../consumers/retrain-trigger/retrain-trigger.js';
import { createStateStore } from '../../store/state-store.js';
import { createStores } from '../../store/stores.js';
import { trainForPipeline } from '../../models/pipeline-training.js';
import { artifactOf, type ModelRegistry } from '../../models/registry.js';
import { createModelRegistry } from '../../store/model-registry.js';
import type { TrainedModel } from '../../models/trainer.js';
import { loadSpec, type PipelineSpec } from '../../pipelines/spec.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan, pointInTimeRows } from '../../producers/replay-plan.js';
import type { DriftReport, ModelEvent, QualityReport, RetrainRequest } from '../../schemas/types.js';
import { TransientError } from '../../core/errors.js';
import { createWorkerMetrics } from '../../streams/metrics.js';
import { createWorker, type InputRecord, type Worker, type WorkerHandler } from '../../streams/runtime.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';
import { groupCaughtUp, readToEnd, type ReadMessage } from '../support/read-topic.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { spec: elec2, dir } = loadSpec(path.join(root, 'pipelines', 'elec2.json'));

/** The policy the sequences below are written for, spelled out (not whatever elec2.json says today). */
function specNamed(name: string): PipelineSpec {
  return {
    ...elec2,
    name,
    retrain: { onDetectorAlarm: true, onEstimate: false, onDrift: false, maxRelativeDrop: 0.08, everyLabels: null, cooldownLabels: 1000, minFreshLabels: 1000 },
    promotion: { ...elec2.promotion, metric: 'accuracy', rollbackMargin: 0.02 },
  };
}

type Handler = WorkerHandler<'QualityReport' | 'DriftReport'>;

let env: TestEnv;
let model: TrainedModel;
beforeAll(async () => {
  const csv = readCsv(path.join(dir, elec2.replay!.csv));
  const rows = pointInTimeRows(elec2, buildReplayPlan(elec2, csv, { limit: 500 })).filter((r) => r.label !== null);
  model = trainForPipeline(elec2, rows.map((r) => r.values), rows.map((r) => r.label!));
  env = await createTestEnv('trigger');
});
afterAll(async () => env?.cleanup());

async function registerVersions(registry: ModelRegistry, spec: PipelineSpec, n: number): Promise<number[]> {
  const versions: number[] = [];
  for (let i = 0; i < n; i++) {
    const info = await registry.register({
      pipeline: spec.name, modelName: spec.model.name, status: 'candidate', ...artifactOf(model),
    });
    versions.push(info.version);
  }
  return versions;
}

/** A full-window QualityReport as the drift monitor emits it. */
function quality(spec: PipelineSpec, version: number, variant: 'champion' | 'shadow', w: number, accuracy: number): QualityReport {
  const t0 = Date.UTC(1996, 6, 1);
  return {
    report_id: `${spec.name}/${spec.model.name}@${version}/${variant}/w${w}`, pipeline: spec.name, model_name: spec.model.name, model_version: version, variant,
    window_start: t0 + w * 500 * 1_800_000, window_end: t0 + ((w + 1) * 500 - 1) * 1_800_000, count: 500, metrics: { accuracy, log_loss: 0.5 }, alarm: null, created_at: t0 + (w + 1) * 500 * 1_800_000,
  };
}

function drift(spec: PipelineSpec, version: number, w: number): DriftReport {
  const q = quality(spec, version, 'champion', w, 0);
  return {
    report_id: `${q.report_id}/drift`, pipeline: spec.name, model_name: spec.model.name, model_version: version, window_start: q.window_start, window_end: q.window_end,
    count: 500, features: [{ feature: 'nswdemand', test: 'psi', statistic: 0.01, p_value: null, psi: 0.01, drifted: false }], prediction_psi: 0.01, drifted: false, created_at: q.created_at,
  };
}

async function sendReports(e: TestEnv, reports: Report[]): Promise<void> {
  const producer = e.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const messages = await Promise.all(
    reports.map(async (r) => {
      const record = 'metrics' in r ? ('QualityReport' as const) : ('DriftReport' as const);
      return { key: `${r.pipeline}/${r.model_name}`, value: await e.codec.encode(record, e.names.subject('monitor.reports', record), r) };
    }),
  );
  await producer.send({ topic: e.names.physical('monitor.reports'), messages });
  await producer.disconnect();
}

function trigger(e: TestEnv, spec: PipelineSpec): Handler {
  const impl = retrainTrigger.create({}, { spec, logger: e.logger, stores: createStores(e.cql), now: Date.now }, retrainTrigger.createMetrics(new Registry()));
  return { name: retrainTrigger.name, input: retrainTrigger.input, ...impl };
}

/** With batchMax given, one transaction per chunk (commitIntervalMs 0), as the interruption points below assume. */
function triggerWorker(e: TestEnv, handler: Handler, groupId: string, batchMax?: number): Worker {
  const deps = { kafka: e.kafka, codec: e.codec, names: e.names, logger: e.logger, metrics: createWorkerMetrics(new Registry()) };
  return createWorker(handler, deps, batchMax === undefined ? { groupId } : { groupId, batchMax, commitIntervalMs: 0 });
}

const caughtUp = (e: TestEnv, groupId: string) => groupCaughtUp(e.admin, groupId, e.names.physical('monitor.reports'));

async function runToEnd(e: TestEnv, handler: Handler, groupId: string, batchMax?: number): Promise<void> {
  const worker = triggerWorker(e, handler, groupId, batchMax);
  await worker.start();
  try {
    await waitFor('the retrain-trigger to commit every report', () => caughtUp(e, groupId), 40_000, 250);
  } finally {
    await worker.stop();
  }
}

/** Every committed record of a topic (read_committed), to its end offsets. */
async function readAll(e: TestEnv, logical: string): Promise<ReadMessage[]> {
  return readToEnd(e.kafka, e.admin, e.names.physical(logical));
}

async function requests(e: TestEnv, pipeline: string): Promise<RetrainRequest[]> {
  const out: RetrainRequest[] = [];
  for (const m of await readAll(e, 'control.retrain')) {
    const d = await e.codec.decode('RetrainRequest', m.value);
    expect(d.ok).toBe(true);
    if (d.ok && d.value.pipeline === pipeline) out.push(d.value);
  }
  return out;
}

async function modelEvents(e: TestEnv, pipeline: string): Promise<ModelEvent[]> {
  const out: ModelEvent[] = [];
  for (const m of await readAll(e, 'control.models')) {
    const d = await e.codec.decode('ModelEvent', m.value);
    expect(d.ok).toBe(true);
    if (d.ok && d.value.pipeline === pipeline) out.push(d.value);
  }
  return out;
}

async function savedState(e: TestEnv, spec: PipelineSpec): Promise<TriggerState | undefined> {
  const scope = `${spec.name}/${spec.model.name}`;
  return (await createStateStore<TriggerState>(e.cql, 'retrain-trigger').load([scope])).get(scope)?.value;
}

/**
 * Wraps a handler to stop at the chunk holding `offset`: `before` waits there
 * before processing (the worker is then stopped with that chunk in hand);
 * `after` processes it (state and outputs checkpointed) and then fails
 * retriably while the worker stops, so its Kafka transaction never commits —
 * a crash between the checkpoint and the commit.
 */
function pausing(inner: Handler, offset: string, when: 'before' | 'after') {
  let reached!: () => void;
  const reachedP = new Promise<void>((r) => (reached = r));
  let release!: () => void;
  const releaseP = new Promise<void>((r) => (release = r));
  const handler: Handler = {
    name: inner.name,
    input: inner.input,
    async process(records: Array<InputRecord<Report>>, ctx) {
      const hit = records.some((r) => r.offset === offset);
      if (hit && when === 'before') {
        reached();
        await releaseP;
      }
      const result = await inner.process(records, ctx);
      if (hit && when === 'after') {
        reached();
        await releaseP;
        throw new TransientError('simulated crash between the checkpoint and the Kafka commit');
      }
      return result;
    },
  };
  /** Waits for the pause, stops the worker with the chunk in hand, then lets the chunk go on. */
  async function stopThere(worker: Worker): Promise<void> {
    await reachedP;
    const stopping = worker.stop();
    // stop() stops the consumer's runner synchronously (the worker reports 'stopping' at once), so the chunk released next is the last one.
    await waitFor('the worker to begin stopping', () => worker.health().state === 'stopping', 10_000, 10);
    release();
    await stopping;
  }
  return { handler, stopThere };
}

describe('retrain-trigger', () => {
  it('starts no second retrain (and misses none) when restarted mid-decision', async () => {
    const spec = specNamed('elec2');
    // Accuracy drops more than 8% below the champion's first window at w3 (2000 labels since the start): one request.
    // w4 drops too, but within the 1000-label cooldown: remembered as pending, no request. Noise: a drift report and
    // a report of a version that does not serve.
    const sequence = (): Report[] => [
      quality(spec, 1, 'champion', 0, 0.8),
      drift(spec, 1, 0),
      quality(spec, 1, 'champion', 1, 0.8),
      quality(spec, 1, 'champion', 2, 0.79),
      quality(spec, 1, 'champion', 3, 0.7), // offset 4: the decision
      quality(spec, 1, 'champion', 4, 0.69),
      quality(spec, 7, 'champion', 0, 0.1),
    ];
    const decisive = '4';

    // Uninterrupted.
    const registryA = createModelRegistry(env.cql);
    const [v1] = await registerVersions(registryA, spec, 1);
    expect(v1).toBe(1);
    expect(await registryA.promote({ pipeline: spec.name, modelName: spec.model.name, version: 1, expected: null, actor: 'test', reason: 'champion' })).toBe(true);
    await sendReports(env, sequence());
    await runToEnd(env, trigger(env, spec), `${env.names.prefix}trigger-once`);
    const once = await requests(env, spec.name);
    expect(once.map((r) => r.request_id)).toEqual([`${spec.name}/${spec.model.name}/retrain/${spec.name}/${spec.model.name}@1/champion/w3`]);
    expect(once[0]).toMatchObject({ reason: 'quality_drop', champion_version: 1 });
    const stateOnce = await savedState(env, spec);
    expect(stateOnce).toMatchObject({ requests: 1, labelsSinceRetrain: 500, pending: { reason: 'quality_drop' } });

    // The same sequence in a fresh environment, one report per transaction, interrupted twice.
    const fresh = await createTestEnv('trigger-restart');
    try {
      const registryB = createModelRegistry(fresh.cql);
      await registerVersions(registryB, spec, 1);
      expect(await registryB.promote({ pipeline: spec.name, modelName: spec.model.name, version: 1, expected: null, actor: 'test', reason: 'champion' })).toBe(true);
      await sendReports(fresh, sequence());
      const groupId = `${fresh.names.prefix}loopline-retrain-trigger`;

      // Worker 1 is stopped with offset 2 in hand: it finishes and commits it, takes nothing more.
      const a = pausing(trigger(fresh, spec), '2', 'before');
      const w1 = triggerWorker(fresh, a.handler, groupId, 1);
      await w1.start();
      await a.stopThere(w1);
      // Drained, the chunk in hand commits (offset 3); a rebalance that lands during the pause (a loaded broker
      // rejoining the fresh group) revokes it instead, uncommitted (offset 2). Either way worker 2 starts before the decision.
      const afterFirst = await fresh.admin.fetchOffsets({ groupId, topics: [fresh.names.physical('monitor.reports')] });
      expect(['2', '3']).toContain(afterFirst[0]!.partitions[0]!.offset);
      expect(await requests(fresh, spec.name)).toEqual([]);

      // Worker 2 decides on the request (checkpointed with its output), then "crashes" before the Kafka commit.
      const b = pausing(trigger(fresh, spec), decisive, 'after');
      const w2 = triggerWorker(fresh, b.handler, groupId, 1);
      await w2.start();
      await b.stopThere(w2);
      expect(await savedState(fresh, spec)).toMatchObject({ requests: 1 });
      const afterSecond = await fresh.admin.fetchOffsets({ groupId, topics: [fresh.names.physical('monitor.reports')] });
      expect(afterSecond[0]!.partitions[0]!.offset).toBe(decisive);
      expect(await requests(fresh, spec.name)).toEqual([]);

      // Worker 3 replays the decisive report from the checkpoint and finishes.
      await runToEnd(fresh, trigger(fresh, spec), groupId, 1);
      const interrupted = await requests(fresh, spec.name);
      expect(interrupted.map((r) => r.request_id)).toEqual(once.map((r) => r.request_id));
      expect(interrupted).toEqual(once);
      expect(await savedState(fresh, spec)).toEqual(stateOnce);
    } finally {
      await fresh.cleanup();
    }
  }, 90_000);

  /** v1 and v2 registered, v2 promoted over v1, v1 shadowing it: what the evaluator leaves behind. */
  async function promotedWithShadow(spec: PipelineSpec): Promise<ModelRegistry> {
    const registry = createModelRegistry(env.cql);
    expect(await registerVersions(registry, spec, 2)).toEqual([1, 2]);
    const change = { pipeline: spec.name, modelName: spec.model.name, actor: 'test', reason: 'test setup' };
    expect(await registry.promote({ ...change, version: 1, expected: null })).toBe(true);
    expect(await registry.promote({ ...change, version: 2, expected: 1 })).toBe(true);
    await registry.setShadow({ ...change, version: 1 });
    expect(await registry.serving(spec.name, spec.model.name)).toMatchObject({ champion: 2, previous: 1, shadow: 1 });
    return registry;
  }

  async function expectRolledBack(spec: PipelineSpec, registry: ModelRegistry, championReport: QualityReport): Promise<void> {
    expect((await registry.serving(spec.name, spec.model.name)).champion).toBe(1);
    const statuses = new Map((await registry.list(spec.name, spec.model.name)).map((m) => [m.version, m.status]));
    expect(statuses.get(2)).toBe('rejected');
    expect(statuses.get(1)).toBe('champion');
    const events = await modelEvents(env, spec.name);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ action: 'ROLLBACK', model_version: 1, previous_version: 2, actor: 'retrain-trigger', created_at: championReport.created_at });
    expect(events[0]!.event_id).toMatch(new RegExp(`^${spec.name}/${spec.model.name}/rollback/${spec.name}/${spec.model.name}@[12]/(champion|shadow)/w0$`));
    expect(await requests(env, spec.name)).toEqual([]);
  }

  it('rolls back a promoted model that does worse live than the old champion shadowing it', async () => {
    const spec = specNamed('trig-rollback');
    const registry = await promotedWithShadow(spec);
    const champ = quality(spec, 2, 'champion', 0, 0.6);
    await sendReports(env, [quality(spec, 1, 'shadow', 0, 0.75), champ]);
    await runToEnd(env, trigger(env, spec), `${env.names.prefix}trigger-rollback`);
    await expectRolledBack(spec, registry, champ);
  }, 60_000);

  it('rolls back also when the champion\'s window closes first (the drift monitor logs champion before shadow per event)', async () => {
    const spec = specNamed('trig-rollback-order');
    const registry = await promotedWithShadow(spec);
    const champ = quality(spec, 2, 'champion', 0, 0.6);
    await sendReports(env, [champ, quality(spec, 1, 'shadow', 0, 0.75)]);
    await runToEnd(env, trigger(env, spec), `${env.names.prefix}trigger-rollback-order`);
    await expectRolledBack(spec, registry, champ);
  }, 60_000);

  it('keeps a promoted model that does better live than the old champion', async () => {
    const spec = specNamed('trig-keep');
    const registry = await promotedWithShadow(spec);
    await sendReports(env, [quality(spec, 1, 'shadow', 0, 0.72), quality(spec, 2, 'champion', 0, 0.75)]);
    await runToEnd(env, trigger(env, spec), `${env.names.prefix}trigger-keep`);
    expect(await registry.serving(spec.name, spec.model.name)).toMatchObject({ champion: 2, previous: 1, shadow: 1 });
    const statuses = new Map((await registry.list(spec.name, spec.model.name)).map((m) => [m.version, m.status]));
    expect(statuses.get(2)).toBe('champion');
    expect(statuses.get(1)).toBe('shadow');
    expect(await modelEvents(env, spec.name)).toEqual([]);
    expect(await savedState(env, spec)).toMatchObject({ judged: [2], rollbacks: 0 });
  }, 60_000);
});
