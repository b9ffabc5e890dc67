// The drift monitor on real Kafka, Cassandra and registry. Elec2 rows
// 15,500-17,999 are scored by the bootstrap model (trained on rows 0-4,999)
// and sent as labeled predictions; the stream crosses row 17,424, where
// vicprice, vicdemand and transfer stop being a constant fill value, so the
// later windows drift. Mixed in: predictions of a version the registry does
// not have (quality only), records the monitor cannot use (dead-lettered) and
// another model's records (ignored).
// 1. An uninterrupted run: every report of the pure core's reference run
//    reaches monitor.reports and monitor_reports, once, with the same values.
// 2. KILL: a worker process is SIGKILLed right after a process() call saved
//    its checkpoint, i.e. before the runtime committed that chunk's
//    transaction; a new worker with another chunk size replays it, is
//    stopped mid-stream, and a third one finishes. The topic and the table
//    hold exactly the reference reports, each id once.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DRIFT_MONITOR, driftMonitor } from '../../consumers/drift-monitor/index.js';
import { createStateStore } from '../../store/state-store.js';
import { createStores } from '../../store/stores.js';
import type { WorkerImpl } from '../../streams/definition.js';
import { applyRecord, checkRecord, createMonitorState, isProgressReport, monitorConfig, type MonitorReport, type VersionBaseline } from '../../consumers/drift-monitor/monitor-core.js';
import { toPrediction } from '../../consumers/scorer/scorer.js';
import { loadOnnxModel } from '../../models/onnx-model.js';
import { trainBootstrap } from '../../producers/bootstrap.js';
import { type ModelRegistry } from '../../models/registry.js';
import { createModelRegistry } from '../../store/model-registry.js';
import { loadSpec, type PipelineSpec } from '../../pipelines/spec.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan, pointInTimeRows } from '../../producers/replay-plan.js';
import type { LabeledPrediction } from '../../schemas/types.js';
import { createWorkerMetrics } from '../../streams/metrics.js';
import { createWorker, type InputRecord, type WorkerHandler } from '../../streams/runtime.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';
import { groupCaughtUp, header, readToEnd } from '../support/read-topic.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const loaded = loadSpec(path.join(root, 'pipelines', 'elec2.json'));
const WINDOW = 250;
const spec: PipelineSpec = { ...loaded.spec, monitoring: { ...loaded.spec.monitoring, windowSize: WINDOW } };
const SCOPE = `${spec.name}/${spec.model.name}`;
const MISSING_VERSION = 42;

interface Fixture {
  env: TestEnv;
  registry: ModelRegistry;
  records: LabeledPrediction[];
  expected: MonitorReport[];
}

/** A fresh prefix and keyspace with the bootstrap model registered, the labeled stream and the core's reference reports. */
async function fixture(label: string): Promise<Fixture> {
  const env = await createTestEnv(label);
  const registry = createModelRegistry(env.cql);
  const boot = await trainBootstrap(spec, loaded.dir, registry);
  const mv = await registry.get(spec.name, spec.model.name, boot.model.version);
  const model = await loadOnnxModel(mv.onnx, mv.spec);
  const rows = pointInTimeRows(spec, buildReplayPlan(spec, readCsv(path.join(loaded.dir, spec.replay!.csv)), { offset: 15_500, limit: 2_500 })).filter((r) => r.label !== null);
  const outputs = await model.predict(rows.map((r) => r.values));
  await model.close();
  const labeled = (i: number, version: number): LabeledPrediction => {
    const r = rows[i]!;
    const e = r.event;
    const vector = { event_id: e.event_id, pipeline: e.pipeline, entity_id: e.entity_id, event_time: e.event_time, produced_at: e.produced_at, processed_at: e.event_time, values: r.values, missing: [], feature_age_ms: {} };
    const prediction = toPrediction(vector, outputs[i]!, { name: spec.model.name, version, variant: 'champion', classes: mv.spec.classes, features: mv.spec.features.map((f) => f.name) }, e.event_time);
    return { prediction, label: String(r.label), label_time: e.event_time + spec.label.delayMs, joined_at: e.event_time + spec.label.delayMs, correct: prediction.label === String(r.label), error: null };
  };
  // From row 1,700 of the stream, 30 % of the labels turn against the model (a concept change): the detector must alarm.
  const records: LabeledPrediction[] = rows.map((_, i) => {
    const r = labeled(i, boot.model.version);
    if (i < 1_700 || i % 10 >= 3) return r;
    const flipped = r.label === 'UP' ? 'DOWN' : 'UP';
    return { ...r, label: flipped, correct: r.prediction.label === flipped };
  });
  // Interleaved: a version the registry lacks, two records that cannot be used, one of another model.
  for (let i = 0; i < 300; i++) records.splice(5 + i * 8, 0, labeled(i, MISSING_VERSION));
  const bad = labeled(7, boot.model.version);
  records.splice(400, 0, { ...bad, prediction: { ...bad.prediction, label: null } });
  records.splice(1700, 0, { ...bad, prediction: { ...bad.prediction, score: Number.NaN } });
  records.splice(900, 0, { ...bad, prediction: { ...bad.prediction, model_name: 'someone-else' } });

  const config = monitorConfig(spec);
  const state = createMonitorState(config);
  const baseline: VersionBaseline = { baseline: mv.baseline, classes: mv.spec.classes };
  const expected = records.flatMap((r) =>
    r.prediction.model_name !== spec.model.name || checkRecord(config, r) ? [] : applyRecord(state, r, (v) => (v === boot.model.version ? baseline : null)).reports,
  );
  return { env, registry, records, expected };
}

async function produce(env: TestEnv, records: LabeledPrediction[]): Promise<void> {
  const producer = env.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const subject = env.names.subject('predictions.labeled', 'LabeledPrediction');
  for (let i = 0; i < records.length; i += 500) {
    const messages = await Promise.all(records.slice(i, i + 500).map(async (r) => ({ key: `${r.prediction.pipeline}/${r.prediction.model_name}`, value: await env.codec.encode('LabeledPrediction', subject, r) })));
    await producer.send({ topic: env.names.physical('predictions.labeled'), messages });
  }
  await producer.disconnect();
}

/** Every committed report on monitor.reports, decoded, in topic order (read to the end offsets, so an extra report is seen too). */
async function topicReports(env: TestEnv, expected: number): Promise<MonitorReport[]> {
  const messages = await readToEnd(env.kafka, env.admin, env.names.physical('monitor.reports'));
  expect(messages.length).toBeGreaterThanOrEqual(expected);
  const out: MonitorReport[] = [];
  for (const m of messages) {
    expect(m.key).toBe(SCOPE);
    const d = await env.codec.decodeAny(['QualityReport', 'DriftReport'] as const, m.value);
    if (!d.ok) throw new Error(`undecodable report: ${d.error.message}`);
    const variant = d.record === 'QualityReport' ? (d.value as { variant: string }).variant : d.value.report_id.split('/')[2]!;
    out.push({ record: d.record!, value: d.value, variant } as MonitorReport);
  }
  return out;
}

async function tableReports(env: TestEnv): Promise<Map<string, unknown>> {
  const out = new Map<string, unknown>();
  for (const kind of ['quality', 'drift']) {
    const rs = await env.cql.execute('SELECT report_id, body, model_version, variant FROM monitor_reports WHERE pipeline = ? AND kind = ?', [spec.name, kind], { prepare: true, fetchSize: 10_000 });
    for (const r of rs.rows) {
      expect(out.has(`${kind}:${r.get('report_id')}`)).toBe(false);
      out.set(`${kind}:${r.get('report_id')}`, JSON.parse(r.get('body') as string));
    }
  }
  return out;
}

function expectSameReports(got: MonitorReport[], expected: MonitorReport[]): void {
  const ids = got.map((r) => r.value.report_id);
  expect(new Set(ids).size).toBe(ids.length); // no report id twice on the topic
  expect(got.map((r) => ({ record: r.record, value: r.value }))).toEqual(expected.map((r) => ({ record: r.record, value: r.value })));
}

/** The monitor's state row: the offsets applied per partition and what recent records emitted. */
async function checkpointRow(env: TestEnv): Promise<{ offsets: Map<number, bigint>; body: { emitted: Array<{ offset: string }> } } | null> {
  const entry = (await createStateStore(env.cql, DRIFT_MONITOR).load([SCOPE])).get(SCOPE);
  if (!entry) return null;
  const offsets = new Map<number, bigint>(Object.entries(entry.applied).map(([tp, o]) => [Number(tp.slice(tp.lastIndexOf('/') + 1)), BigInt(o)]));
  return { offsets, body: { emitted: entry.emitted } };
}

/** The drift monitor from its definition, on this test's servers. */
function monitorImpl(env: TestEnv, metrics = new Registry()): WorkerImpl<'LabeledPrediction' | 'Prediction'> {
  return driftMonitor.create({}, { spec, logger: env.logger, stores: createStores(env.cql), now: Date.now }, driftMonitor.createMetrics(metrics));
}
const handlerOf = (impl: WorkerImpl<'LabeledPrediction' | 'Prediction'>): WorkerHandler<'LabeledPrediction' | 'Prediction'> => ({ name: driftMonitor.name, input: driftMonitor.input, ...impl });

const group = (env: TestEnv) => `${env.names.prefix}loopline-${DRIFT_MONITOR}`;
const caughtUp = (env: TestEnv) => groupCaughtUp(env.admin, group(env), env.names.physical('predictions.labeled'));

describe('drift monitor', () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await fixture('drift');
    await produce(f.env, f.records);
  }, 300_000);
  afterAll(async () => f?.env.cleanup());

  it('publishes every window report to monitor.reports and monitor_reports, dead-letters unusable records and exports metrics', async () => {
    const { env, registry, expected } = f;
    // The reference itself: windows of both versions, drift only for the registered one, drift after row 17,424, and alarms.
    const ids = expected.map((r) => r.value.report_id);
    expect(ids).toContain('elec2/elec2-updown@1/champion/w0');
    expect(ids).toContain('elec2/elec2-updown@1/champion/w0/drift');
    expect(ids).toContain(`elec2/elec2-updown@${MISSING_VERSION}/champion/w0`);
    expect(ids.filter((id) => id.includes(`@${MISSING_VERSION}/`) && id.endsWith('/drift'))).toEqual([]);
    const alarmReports = expected.flatMap((r) => (r.record === 'QualityReport' && r.value.alarm !== null ? [r.value] : []));
    expect(alarmReports.length).toBeGreaterThan(0);
    expect(alarmReports[0]!.report_id).toMatch(/^elec2\/elec2-updown@1\/champion\/w\d+\/alarm1$/);
    expect(alarmReports[0]!.alarm).toMatch(/^adwin: error rate rose from/);
    const drifts = expected.flatMap((r) => (r.record === 'DriftReport' ? [r.value] : []));
    const vicprice = drifts.map((d) => d.features.find((x) => x.feature === 'vicprice')!);
    expect(vicprice[0]!.drifted).toBe(false); // still the constant fill value of the training rows
    expect(vicprice.at(-1)!.drifted).toBe(true); // varying from row 17,424 on
    for (const d of drifts) console.log(`[drift-monitor] ${d.report_id}: drifted ${d.features.filter((x) => x.drifted).map((x) => x.feature).join(', ') || '-'}; prediction psi ${d.prediction_psi?.toFixed(3)}`);
    console.log(`[drift-monitor] reference: ${expected.length} reports, ${expected.filter((r) => r.record === 'QualityReport' && r.value.alarm).length} alarms, ${drifts.filter((d) => d.drifted).length}/${drifts.length} drift reports flagged`);

    const metrics = new Registry();
    const worker = createWorker(handlerOf(monitorImpl(env, metrics)), { kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger, metrics: createWorkerMetrics(metrics) }, { batchMax: 200 });
    await worker.start();
    try {
      await waitFor('the monitor to consume every labeled prediction', () => caughtUp(env), 120_000, 500);
    } finally {
      await worker.stop();
    }

    expectSameReports(await topicReports(env, expected.length), expected);
    // The table holds every report but the label-progress ones (topic only, for the retrain trigger).
    const stored = expected.filter((r) => !isProgressReport(r.value.report_id));
    expect(stored.length).toBeLessThan(expected.length);
    const table = await tableReports(env);
    expect(table.size).toBe(stored.length);
    for (const r of stored) expect(table.get(`${r.record === 'QualityReport' ? 'quality' : 'drift'}:${r.value.report_id}`)).toEqual(r.value);

    const dead = await readToEnd(env.kafka, env.admin, env.names.physical('predictions.labeled.dlq'));
    expect(dead.map((m) => header(m.headers, 'error.code')).sort()).toEqual(['NON_FINITE', 'NO_PREDICTED_LABEL']);
    expect(dead.every((m) => header(m.headers, '__connect.errors.stage') === 'VALIDATION')).toBe(true);

    const text = await metrics.metrics();
    expect(text).toMatch(/loopline_monitor_metric\{pipeline="elec2",model_version="1",variant="champion",metric="accuracy"\} 0\.\d+/);
    expect(text).toMatch(/loopline_monitor_metric\{pipeline="elec2",model_version="42",variant="champion",metric="auc"\}/);
    expect(text).toMatch(/loopline_monitor_feature_psi\{pipeline="elec2",model_version="1",variant="champion",feature="vicprice"\} \d/);
    expect(text).toMatch(/loopline_monitor_alarms_total\{pipeline="elec2",model_version="1",variant="champion"\} \d/);

    // One checkpoint row; its only partition (the one the model's key maps to) is applied up to its last record.
    const cp = await checkpointRow(env);
    expect(cp!.offsets.size).toBe(1);
    const [partition, saved] = [...cp!.offsets][0]!;
    const ends = await env.admin.fetchTopicOffsets(env.names.physical('predictions.labeled'));
    expect(saved).toBe(BigInt(ends.find((e) => e.partition === partition)!.high) - 1n);
  });
});

describe('drift monitor after a kill', () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await fixture('driftkill');
    await produce(f.env, f.records);
  }, 300_000);
  afterAll(async () => f?.env.cleanup());

  it('replays the chunk a SIGKILL left uncommitted and a later stop interrupted: the reports equal an uninterrupted run, each id once', async () => {
    const { env, registry, expected } = f;
    const BATCH = 100;
    const KILL_AT = 250; // with batchMax 100: the chunk holding offsets 200-299 of the model's partition

    // Run 1, in its own process: killed right after the process() call of the chunk holding offset 250 saved its checkpoint, before the runtime's commit.
    const code = await runKilledChild(env, { killAtOffset: KILL_AT, batchMax: BATCH });
    expect(code).toBe('SIGKILL');
    const cp = await checkpointRow(env);
    expect(cp).not.toBeNull();
    const [partition, saved] = [...cp!.offsets][0]!;
    expect(saved).toBeGreaterThanOrEqual(BigInt(KILL_AT)); // the killed chunk was applied and checkpointed …
    const committed = (await env.admin.fetchOffsets({ groupId: group(env), topics: [env.names.physical('predictions.labeled')] }))[0]!.partitions.find((p) => p.partition === partition)!;
    expect(BigInt(committed.offset)).toBeGreaterThan(0n);
    expect(BigInt(committed.offset)).toBeLessThanOrEqual(BigInt(KILL_AT)); // … but its transaction never committed
    const inKilledChunk = cp!.body.emitted.filter((e) => BigInt(e.offset) >= BigInt(committed.offset));
    expect(inKilledChunk.length).toBeGreaterThan(0); // … and it had produced reports, which must be re-emitted

    // Run 2, in this process, another chunk size so chunk boundaries differ; stopped mid-stream (each call slowed a little).
    const deps = { kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger, metrics: createWorkerMetrics(new Registry()) };
    const slow = (h: WorkerHandler<'LabeledPrediction' | 'Prediction'>): WorkerHandler<'LabeledPrediction' | 'Prediction'> => ({
      ...h,
      async process(records: Array<InputRecord<LabeledPrediction>>, ctx) {
        await new Promise((r) => setTimeout(r, 150));
        return h.process(records, ctx);
      },
    });
    const second = createWorker(slow(handlerOf(monitorImpl(env))), deps, { batchMax: 70, sessionTimeoutMs: 6_000 });
    await second.start();
    try {
      await waitFor('run 2 to move the checkpoint on by 500 records', async () => {
        const now = await checkpointRow(env);
        return now !== null && (now.offsets.get(partition) ?? 0n) >= saved + 500n;
      }, 120_000, 100);
    } finally {
      await second.stop();
    }
    expect(await caughtUp(env)).toBe(false); // stopped mid-stream

    // Run 3 finishes.
    const third = createWorker(handlerOf(monitorImpl(env)), deps, { batchMax: 130, sessionTimeoutMs: 6_000 });
    await third.start();
    try {
      await waitFor('run 3 to consume every labeled prediction', () => caughtUp(env), 120_000, 500);
    } finally {
      await third.stop();
    }

    expectSameReports(await topicReports(env, expected.length), expected);
    const table = await tableReports(env);
    const stored = expected.filter((r) => !isProgressReport(r.value.report_id));
    expect(new Set(table.keys())).toEqual(new Set(stored.map((r) => `${r.record === 'QualityReport' ? 'quality' : 'drift'}:${r.value.report_id}`)));
    for (const r of stored) expect(table.get(`${r.record === 'QualityReport' ? 'quality' : 'drift'}:${r.value.report_id}`)).toEqual(r.value);
    const dead = await readToEnd(env.kafka, env.admin, env.names.physical('predictions.labeled.dlq'));
    expect(dead).toHaveLength(2);
  });
});

/**
 * Runs a drift-monitor worker in a child process that SIGKILLs itself right after the process() call of the model's chunk
 * holding `killAtOffset` returns. Each chunk commits its own transaction (commitIntervalMs 0), so the chunks before the
 * killed one are committed whatever the speed: with the default 100 ms interval a quick run put them all in one transaction.
 */
async function runKilledChild(env: TestEnv, o: { killAtOffset: number; batchMax: number }): Promise<NodeJS.Signals | number | null> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loopline-drift-'));
  const script = path.join(dir, 'killed-worker.mts');
  const imp = (p: string) => JSON.stringify(path.join(root, p));
  fs.writeFileSync(
    script,
    `
import { Registry } from ${JSON.stringify(pathToFileURL(createRequire(import.meta.url).resolve('prom-client')).href)};
import { loadConfig } from ${imp('config/config.ts')};
import { driftMonitor } from ${imp('consumers/drift-monitor/index.ts')};
import { createStores } from ${imp('store/stores.ts')};
import { loadSpec } from ${imp('pipelines/spec.ts')};
import { createCodec } from ${imp('schemas/codec.ts')};
import { createRegistryClient } from ${imp('schemas/registry-client.ts')};
import { createCassandraClient } from ${imp('store/cassandra.ts')};
import { createKafka } from ${imp('streams/kafka.ts')};
import { createLogger } from ${imp('streams/logger.ts')};
import { createWorkerMetrics } from ${imp('streams/metrics.ts')};
import { createWorker } from ${imp('streams/runtime.ts')};
import { createTopicNames } from ${imp('streams/topics.ts')};

const config = loadConfig(process.env);
const logger = createLogger({ level: 'warn', name: 'killed-drift-monitor' });
const loaded = loadSpec(${imp('pipelines/elec2.json')});
const spec = { ...loaded.spec, monitoring: { ...loaded.spec.monitoring, windowSize: ${WINDOW} } };
const cql = createCassandraClient(config.cassandra);
await cql.connect();
const monitor = driftMonitor.create({}, { spec, logger, stores: createStores(cql), now: Date.now }, driftMonitor.createMetrics(new Registry()));
const handler = {
  name: driftMonitor.name,
  input: driftMonitor.input,
  ...monitor,
  async process(records: any[], ctx: any) {
    const result = await monitor.process(records, ctx);
    // The checkpoint is saved; the runtime has not begun this chunk's transaction.
    if (records.some((r) => r.key === ${JSON.stringify(SCOPE)} && Number(r.offset) >= ${o.killAtOffset})) process.kill(process.pid, 'SIGKILL');
    return result;
  },
};
const deps = { kafka: createKafka(config.kafka, logger, 'killed-drift-monitor'), codec: createCodec(createRegistryClient(config.registry)), names: createTopicNames(config.kafka.topicPrefix), logger, metrics: createWorkerMetrics(new Registry()) };
await createWorker(handler, deps, { batchMax: ${o.batchMax}, commitIntervalMs: 0, sessionTimeoutMs: 6000 }).start();
`,
  );
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: root,
      env: { ...process.env, LOOPLINE_TOPIC_PREFIX: env.config.kafka.topicPrefix, LOOPLINE_CASSANDRA_KEYSPACE: env.config.cassandra.keyspace, LOOPLINE_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error('the child worker did not reach its kill point within 120 s'));
      }, 120_000);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve(signal ?? code);
      });
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
