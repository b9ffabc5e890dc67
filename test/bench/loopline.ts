/**
 * Loopline's scoring path under load: the bootstrap model of the workload's
 * pipeline trained and promoted, the feature-writer, preprocessor and scorer
 * (chained or not) running in this process, the pipeline's CSV replayed into
 * events.client / features.updates, and a read_committed consumer on
 * `predictions` observing every prediction.
 *
 * Runs, each on its own rows of the dataset (so ids and side effects never
 * overlap): a warm-up (schemas, prepared statements, ONNX session, group
 * joins), then the runs the caller asks for: saturation (speed 'max') and
 * paced (a fixed events/s).
 */
import type { Admin, Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import path from 'node:path';
import type { LooplineConfig } from '../../config/config.js';
import { startPipeline, type RunningPipeline } from '../../consumers/pipeline.js';
import { trainBootstrap, type BootstrapResult } from '../../producers/bootstrap.js';
import { createModelRegistry } from '../../store/model-registry.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import { createLooplineProducer } from '../../producers/client.js';
import { buildReplayPlan } from '../../producers/replay-plan.js';
import { createReplayer, type ReplayProgress } from '../../producers/replayer.js';
import type { Codec } from '../../schemas/codec.js';
import type { ClientEvent } from '../../schemas/types.js';
import type { CassandraClient } from '../../store/cassandra.js';
import { createPredictionLog } from '../../store/prediction-log.js';
import type { Logger } from '../../streams/logger.js';
import type { TopicNames } from '../../streams/topics.js';
import { groupCaughtUp } from '../support/read-topic.js';
import { startReader } from './reader.js';
import type { CpuMeter, CpuSample } from './cpu.js';
import { startProfile, type ProfileSummary } from './profile.js';
import { closeOnInterrupt, DeliveryTracker, fmt, logCounts, progress, sleep, summarize, waitWithProgress, type LatencySummary } from './stats.js';

export interface LooplineDeps {
  config: LooplineConfig;
  kafka: Kafka;
  admin: Admin;
  codec: Codec;
  names: TopicNames;
  cql: CassandraClient;
  logger: Logger;
  spec: PipelineSpec;
  specDir: string;
  csv: Array<Record<string, string>>;
  cpu: CpuMeter;
}

export interface RunPlan {
  label: 'saturation' | 'paced';
  offset: number;
  events: number;
  /** events/s cap; undefined = as fast as possible. */
  rate?: number;
}

export interface WorkerChunkStats {
  chunks: number;
  records: number;
  recordsPerChunk: number;
  meanChunkMs: number;
  /** Share of the run's wall time this worker spent inside chunks (can exceed 1 with several partitions at once). */
  busy: number;
  /** Retriable failures the runtime backed off on (e.g. CONCURRENT_TRANSACTIONS from the transaction coordinator), by code. */
  retries: Record<string, number>;
}

export interface RunResult {
  label: string;
  events: number;
  rateTarget: number | null;
  /** Replayer: first send to last send acknowledged. */
  sendSeconds: number;
  sendEventsPerSecond: number;
  /** Largest delay of a paced batch behind its due time, as the replayer reported it. */
  maxSendLagMs: number;
  /** First send to the last prediction read from `predictions`. */
  seconds: number;
  eventsPerSecond: number;
  /** Prediction read (read_committed) − ClientEvent.produced_at. */
  latencyMs: LatencySummary;
  /** Split of the latency: produced_at → scored_at (scorer started on the chunk) and scored_at → read. */
  toScorerMs: LatencySummary;
  scorerToReadMs: LatencySummary;
  predictions: number;
  lost: number;
  duplicated: number;
  unexpected: number;
  deadLetters: Record<string, string>;
  logSample: { checked: number; found: number; mismatched: number };
  workers: Record<string, WorkerChunkStats>;
  /** Transaction-coordinator CONCURRENT_TRANSACTIONS answers during the run. */
  concurrentTransactions: number;
  /** CPU seconds by process from the first send to the last prediction read (node = this process: workers, replayer and observer). */
  cpuSeconds: CpuSample;
  /** CPU ms per event by process. */
  cpuMsPerEvent: CpuSample;
  /** With --cpu-profile: where this process spent its CPU during the run. */
  profile?: ProfileSummary & { file: string };
}

export interface LooplineResult {
  /** Workload and variant, e.g. `many/chained`. */
  label: string;
  chained: boolean;
  bootstrap: { version: number; rows: number; seconds: number; promoted: boolean };
  warmup: { events: number; seconds: number };
  runs: RunResult[];
  problems: string[];
}

export interface LooplineBench {
  /** Replays one run's rows and measures it. */
  run(plan: RunPlan): Promise<RunResult>;
  result(): LooplineResult;
  stop(): Promise<void>;
}

const WARMUP_EVENTS = 300;
const LOG_SAMPLE = 200;

type Snapshot = Map<string, { chunks: number; seconds: number; records: number; retries: Record<string, number> }>;

async function chunkSnapshot(metrics: Registry): Promise<Snapshot> {
  const out: Snapshot = new Map();
  const entry = (w: string) => {
    let e = out.get(w);
    if (!e) out.set(w, (e = { chunks: 0, seconds: 0, records: 0, retries: {} }));
    return e;
  };
  const hist = await metrics.getSingleMetric('loopline_worker_chunk_seconds')?.get();
  for (const v of hist?.values ?? []) {
    const w = String(v.labels.worker);
    const name = (v as { metricName?: string }).metricName;
    if (name?.endsWith('_count')) entry(w).chunks += v.value;
    if (name?.endsWith('_sum')) entry(w).seconds += v.value;
  }
  const recs = await metrics.getSingleMetric('loopline_worker_records_total')?.get();
  for (const v of recs?.values ?? []) entry(String(v.labels.worker)).records += v.value;
  const retries = await metrics.getSingleMetric('loopline_worker_retries_total')?.get();
  for (const v of retries?.values ?? []) {
    const r = entry(String(v.labels.worker)).retries;
    const code = String(v.labels.code);
    r[code] = (r[code] ?? 0) + v.value;
  }
  return out;
}

function chunkDelta(before: Snapshot, after: Snapshot, wallSeconds: number): Record<string, WorkerChunkStats> {
  const out: Record<string, WorkerChunkStats> = {};
  for (const [w, a] of after) {
    const b = before.get(w) ?? { chunks: 0, seconds: 0, records: 0, retries: {} };
    const chunks = a.chunks - b.chunks;
    const records = a.records - b.records;
    const seconds = a.seconds - b.seconds;
    const retries: Record<string, number> = {};
    for (const [code, n] of Object.entries(a.retries)) if (n - (b.retries[code] ?? 0) > 0) retries[code] = n - (b.retries[code] ?? 0);
    out[w] = { chunks, records, recordsPerChunk: chunks ? records / chunks : 0, meanChunkMs: chunks ? (seconds / chunks) * 1000 : 0, busy: seconds / wallSeconds, retries };
  }
  return out;
}

export async function startLoopline(
  deps: LooplineDeps,
  opts: { label: string; batchMax: number; chain?: boolean; profileDir?: string },
): Promise<LooplineBench> {
  const { kafka, admin, codec, names, cql, logger, spec, specDir, csv, cpu } = deps;
  const problems: string[] = [];
  const { label } = opts;

  progress(`${label}: training the bootstrap model of ${spec.name}`);
  const boot: BootstrapResult = await trainBootstrap(spec, specDir, createModelRegistry(cql), 'bench');
  progress(`${label}: bootstrap model v${boot.model.version} trained on ${fmt(boot.rows)} rows in ${boot.seconds.toFixed(1)} s (promoted: ${boot.promoted})`);
  if (!boot.promoted) throw new Error('the bootstrap model was not promoted: the keyspace already had a champion');

  const workers = ['feature-writer', 'preprocessor', 'scorer'];
  const pipeline: RunningPipeline = await startPipeline(deps.config, spec, logger, {
    workers,
    runtime: { batchMax: opts.batchMax },
    env: { ...process.env, LOOPLINE_SCORER_RELOAD_INTERVAL_MS: '60000' },
    ...(opts.chain === undefined ? {} : { chainScoring: opts.chain }),
  });
  const chained = pipeline.workers.some((w) => w.name === 'preprocessor-scorer');
  progress(`${label}: started ${pipeline.workers.map((w) => w.name).join(', ')} (batchMax ${opts.batchMax})`);
  const unregisterPipeline = closeOnInterrupt(() => pipeline.stop());

  // Every prediction read, by event id; the latency split needs scored_at too.
  const tracker = new DeliveryTracker();
  const scoredAt = new Map<string, number>();
  const reader = await startReader(kafka, names.physical('predictions'), async (messages, readAt) => {
    for (const m of messages) {
      const d = await codec.decode('Prediction', m.value);
      if (!d.ok) throw new Error(`a record on predictions is not a Prediction: ${d.error.message}`);
      tracker.record(d.value.event_id, { readAt, sentAt: d.value.produced_at });
      if (!scoredAt.has(d.value.event_id)) scoredAt.set(d.value.event_id, d.value.scored_at);
    }
  });

  const unregisterReader = closeOnInterrupt(() => reader.stop());
  const producer = createLooplineProducer({ kafka, codec, names, logger });
  await producer.connect();
  const replayer = createReplayer({ producer, logger });
  const groupOf = (w: string) => `${names.prefix}loopline-${w}`;
  const allIds = new Set<string>();
  const runs: RunResult[] = [];

  /** Replays `events` rows from `offset`; waits for their predictions. */
  async function replay(what: string, offset: number, events: number, rate: number | undefined) {
    const plan = buildReplayPlan(spec, csv, { offset, limit: events }).filter((a) => a.kind !== 'label');
    const ids = plan.filter((a) => a.kind === 'event').map((a) => (a.record as ClientEvent).event_id);
    for (const id of ids) allIds.add(id);
    const watched = tracker.watch(ids);
    let maxLag = 0;
    let last: ReplayProgress | null = null;
    const sent = replayer.run(plan, {
      speed: 'max',
      ...(rate !== undefined ? { eventsPerSecond: rate } : {}),
      onProgress: (p) => {
        maxLag = Math.max(maxLag, p.lagMs);
        last = p;
      },
    });
    let sendDone = false;
    void sent.then(() => (sendDone = true), () => (sendDone = true));
    const complete = await waitWithProgress({
      done: () => sendDone && watched.count === ids.length,
      progressOf: () => tracker.records + ((last as ReplayProgress | null)?.sent ?? 0),
      describe: () => {
        const p = last as ReplayProgress | null;
        const lag = pipeline.workers.map((w) => `${w.name} ${fmt(Object.values(w.health().lag).reduce((s, v) => s + v, 0))}`).join(', ');
        return `${label} ${what}: sent ${fmt(p?.events ?? 0)}/${fmt(ids.length)} events, ${fmt(watched.count)} predictions read; worker lag: ${lag}`;
      },
      stallMs: 60_000,
    });
    const result = await sent; // rejects on a send error
    if (!complete) problems.push(`${label} ${what}: stalled for 60 s with ${ids.length - watched.count} of ${ids.length} predictions missing`);
    return { ids, result, maxLag };
  }

  async function settle(): Promise<void> {
    // Every stage has committed all it was given, then a moment for a late duplicate to be read.
    await waitWithProgress({
      done: async () =>
        (await groupCaughtUp(admin, groupOf(chained ? 'preprocessor-scorer' : 'preprocessor'), names.physical('events.client'))) &&
        (await groupCaughtUp(admin, groupOf('feature-writer'), names.physical('features.updates'))) &&
        (chained || (await groupCaughtUp(admin, groupOf('scorer'), names.physical('features.vectors'), true))),
      progressOf: () => tracker.records,
      describe: () => `${label} settling: waiting for every worker group to commit to the end of its input`,
      stallMs: 30_000,
      pollMs: 250,
    }).catch(() => false);
    await sleep(1500);
  }

  async function deadLetterCounts(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const t of ['events.client.dlq', 'features.updates.dlq', 'features.vectors.dlq']) {
      const offsets = await admin.fetchTopicOffsets(names.physical(t));
      out[t] = String(offsets.reduce((s, o) => s + Number(o.high), 0));
    }
    return out;
  }

  async function checkLog(ids: string[]): Promise<RunResult['logSample']> {
    const log = createPredictionLog(cql);
    const step = Math.max(1, Math.floor(ids.length / LOG_SAMPLE));
    const sample = ids.filter((_, i) => i % step === 0).slice(0, LOG_SAMPLE);
    const rows = await Promise.all(sample.map((id) => log.byEvent(id)));
    let found = 0;
    let mismatched = 0;
    rows.forEach((r, i) => {
      const champion = r.filter((x) => x.variant === 'champion');
      if (champion.length === 1) found++;
      if (champion.length !== 1 || champion[0]!.model_version !== boot.model.version || champion[0]!.event_id !== sample[i]) mismatched++;
    });
    return { checked: sample.length, found, mismatched };
  }

  const stop = async () => {
    await producer.disconnect().catch(() => {});
    await reader.stop();
    await pipeline.stop();
    unregisterReader();
    unregisterPipeline();
  };

  let warmup: LooplineResult['warmup'];
  try {
    const warmStart = Date.now();
    progress(`${label}: warm-up with ${WARMUP_EVENTS} events (group joins, schemas, prepared statements, ONNX session)`);
    await replay('warm-up', 0, WARMUP_EVENTS, undefined);
    await settle();
    warmup = { events: WARMUP_EVENTS, seconds: (Date.now() - warmStart) / 1000 };
    progress(`${label}: warm-up done in ${warmup.seconds.toFixed(1)} s`);
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    async run(planned) {
      const rate = planned.rate;
      progress(`${label} ${planned.label}: replaying ${fmt(planned.events)} ${spec.name} events (rows ${fmt(planned.offset)}..${fmt(planned.offset + planned.events - 1)}) ${rate ? `at ${fmt(rate)} events/s` : "at speed 'max'"}`);
      const before = await chunkSnapshot(pipeline.metrics);
      const concurrentBefore = logCounts.concurrentTransactions;
      const profiling = opts.profileDir ? await startProfile() : null;
      const cpuBefore = cpu.sample();
      const { ids, result, maxLag } = await replay(planned.label, planned.offset, planned.events, rate);
      const cpuSeconds = cpu.since(cpuBefore);
      const profileFile = opts.profileDir ? path.join(opts.profileDir, `${label.replace(/\//g, '-')}-${planned.label}.cpuprofile`) : '';
      const profile = profiling ? { ...(await profiling.stop(profileFile)), file: profileFile } : undefined;
      const acc0 = tracker.account(ids);
      const seconds = (acc0.lastReadAt - result.startedAt) / 1000;
      const after = await chunkSnapshot(pipeline.metrics);
      const concurrentTransactions = logCounts.concurrentTransactions - concurrentBefore;
      await settle();
      const acc = tracker.account(ids, allIds);
      const toScorer: number[] = [];
      const scorerToRead: number[] = [];
      for (const id of ids) {
        const d = tracker.get(id);
        const s = scoredAt.get(id);
        if (!d || s === undefined) continue;
        toScorer.push(s - d.first.sentAt);
        scorerToRead.push(d.first.readAt - s);
      }
      const deadLetters = await deadLetterCounts();
      const logSample = await checkLog(ids.filter((id) => tracker.has(id)));
      const run: RunResult = {
        label: planned.label,
        events: ids.length,
        rateTarget: rate ?? null,
        sendSeconds: (result.finishedAt - result.startedAt) / 1000,
        sendEventsPerSecond: result.events / ((result.finishedAt - result.startedAt) / 1000),
        maxSendLagMs: maxLag,
        seconds,
        eventsPerSecond: acc.delivered / seconds,
        latencyMs: summarize(acc.latencies),
        toScorerMs: summarize(toScorer),
        scorerToReadMs: summarize(scorerToRead),
        predictions: acc.delivered,
        lost: acc.lost,
        duplicated: acc.duplicated,
        unexpected: acc.unexpected,
        deadLetters,
        logSample,
        workers: chunkDelta(before, after, seconds),
        concurrentTransactions,
        cpuSeconds,
        cpuMsPerEvent: Object.fromEntries(Object.entries(cpuSeconds).map(([k, v]) => [k, Math.round((v * 1e6) / ids.length) / 1000])),
        ...(profile ? { profile } : {}),
      };
      runs.push(run);
      if (acc.lost) problems.push(`${label} ${planned.label}: ${acc.lost} events without a prediction (e.g. ${acc.lostExamples.join(', ')})`);
      if (acc.duplicated) problems.push(`${label} ${planned.label}: ${acc.duplicated} events with more than one prediction (e.g. ${acc.duplicatedExamples.join(', ')})`);
      if (acc.unexpected) problems.push(`${label} ${planned.label}: ${acc.unexpected} predictions for events this benchmark never sent`);
      if (logSample.found !== logSample.checked || logSample.mismatched) problems.push(`${label} ${planned.label}: prediction log sample: ${logSample.found}/${logSample.checked} rows found, ${logSample.mismatched} not matching`);
      for (const [t, n] of Object.entries(deadLetters)) if (n !== '0') problems.push(`${label} ${planned.label}: ${t} holds records (high watermark ${n})`);
      progress(
        `${label} ${planned.label}: ${fmt(run.eventsPerSecond)} events/s, latency p50 ${fmt(run.latencyMs.p50)} ms p99 ${fmt(run.latencyMs.p99)} ms max ${fmt(run.latencyMs.max)} ms; lost ${acc.lost}, duplicated ${acc.duplicated}`,
      );
      return run;
    },
    result: () => ({ label, chained, bootstrap: { version: boot.model.version, rows: boot.rows, seconds: boot.seconds, promoted: boot.promoted }, warmup, runs: [...runs], problems: [...problems] }),
    stop,
  };
}
