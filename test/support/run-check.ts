/**
 * What a run really wrote, counted against what was sent: the exactly-once
 * checks shared by the fault suite and the multi-member tests.
 *
 * Topics are read with read_committed from the beginning to the end offsets
 * taken when the read starts (never "until N arrived"), so a duplicate or a
 * record committed late is seen. A partition whose last stable offset stays
 * below its end (a transaction left open) fails the read with the partition
 * named, instead of passing on a short count.
 */
import type { Admin, Kafka } from 'kafkajs';
import type cassandra from 'cassandra-driver';
import type { Codec } from '../../schemas/codec.js';
import type { DriftReport, LabeledPrediction, ModelCandidate, ModelEvent, Prediction, QualityReport, RetrainRequest } from '../../schemas/types.js';
import { classifyCassandraError } from '../../store/errors.js';
import { patchKafkajs } from '../../streams/kafkajs-patch.js';
import { TOPICS, type TopicNames } from '../../streams/topics.js';

// Read as the workers do: with kafkajs's read_committed filter fixed (streams/kafkajs-patch.ts, 3).
patchKafkajs();

export interface EndRead {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  timestamp: number;
  /** The writing producer's id and epoch (from the record batch): which incarnation of a transactional producer wrote it. */
  producer: string | null;
}

/** Reads each topic from offset 0 to its current end offsets (read_committed, unless asked); fails if a partition cannot reach its end within `timeoutMs`. */
export async function readToEnd(kafka: Kafka, topics: readonly string[], timeoutMs = 120_000, readUncommitted = false): Promise<EndRead[]> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map<string, number>();
  try {
    for (const t of topics) for (const p of await admin.fetchTopicOffsets(t)) ends.set(`${t}/${p.partition}`, Number(p.high));
  } finally {
    await admin.disconnect();
  }
  const pending = new Set([...ends].filter(([, high]) => high > 0).map(([k]) => k));
  const got: EndRead[] = [];
  if (pending.size === 0) return got;
  const consumer = kafka.consumer({ groupId: `check-${process.pid}-${process.hrtime.bigint()}`, readUncommitted, maxBytes: 20 * 1024 * 1024, maxWaitTimeInMs: 250 });
  const reached = new Map<string, number>();
  const taken = new Map<string, bigint>(); // per partition, the offset after the last record taken
  let redelivered = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const advance = (topic: string, partition: number, lastOffset: string) => {
    const k = `${topic}/${partition}`;
    const at = Number(lastOffset);
    reached.set(k, Math.max(reached.get(k) ?? -1, at));
    // The last offset of a transactional partition is a commit marker no consumer is handed: offsets run to high - 1.
    if (at >= (ends.get(k) ?? 0) - 1) pending.delete(k);
    if (pending.size === 0) done();
  };
  // END_BATCH_PROCESS also fires for fetches that held only markers or aborted records, so a position past them is seen.
  consumer.on(consumer.events.END_BATCH_PROCESS, (e) => advance(e.payload.topic, e.payload.partition, e.payload.lastOffset));
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [...topics], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const high = ends.get(`${batch.topic}/${batch.partition}`) ?? 0;
        for (const m of batch.messages) {
          if (Number(m.offset) >= high) break; // written after the end offsets were taken
          // An offset is one record: a batch handed over again (the reader's own group rejoining on a
          // loaded machine starts again from the beginning) is not a second copy.
          const k = `${batch.topic}/${batch.partition}`;
          if (BigInt(m.offset) < (taken.get(k) ?? 0n)) {
            redelivered++;
            continue;
          }
          taken.set(k, BigInt(m.offset) + 1n);
          const bc = (m as { batchContext?: { producerId?: string; producerEpoch?: number } }).batchContext;
          got.push({ topic: batch.topic, partition: batch.partition, offset: m.offset, key: m.key?.toString() ?? null, value: m.value, timestamp: Number(m.timestamp), producer: bc?.producerId === undefined ? null : `${bc.producerId}/${bc.producerEpoch}` });
        }
      },
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
    const outcome = await Promise.race([finished.then(() => 'done' as const), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      const stuck = [...pending].map((k) => `${k} at ${reached.get(k) ?? 'nothing'} of end ${ends.get(k)}`);
      throw new Error(`reading to the end offsets timed out after ${timeoutMs} ms; partitions short of their end (an open transaction holds the last stable offset back?): ${stuck.join('; ')}`);
    }
    if (redelivered > 0) console.warn(`[read-to-end] ${redelivered} records of ${topics.join(', ')} were handed over again and counted once`);
    return got;
  } finally {
    await consumer.disconnect();
  }
}

/**
 * True when `groupId` has committed offsets of each topic at or past the end — loosely: a
 * transactional topic may end with a commit marker no consumer is handed. Good for "is the
 * group working on something" polls; for "has it processed everything" use a DrainTracker,
 * which is exact where several transactional producers leave several markers at a tail.
 */
export async function groupCaughtUp(admin: Admin, groupId: string, topics: ReadonlyArray<{ topic: string; transactional: boolean }>): Promise<boolean> {
  for (const { topic, transactional } of topics) {
    const [ends, committed] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId, topics: [topic] })]);
    const at = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
    if (!ends.every((e) => Number(e.high) === 0 || (at.get(e.partition) ?? -1) >= Number(e.high) - (transactional ? 1 : 0))) return false;
  }
  return true;
}

export interface DrainTracker {
  /** True once the group has committed past the last committed record of every partition of `topics`. */
  caughtUp(admin: Admin, groupId: string, topics: readonly string[]): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Follows `topics` with read_committed, noting per partition the offset of the last record
 * (not marker) and how far it has read, so `caughtUp` knows exactly whether a group has
 * records left: its committed offset must pass the last record, whatever markers follow.
 */
export async function createDrainTracker(kafka: Kafka, topics: readonly string[]): Promise<DrainTracker> {
  const lastRecord = new Map<string, number>();
  const reached = new Map<string, number>();
  const consumer = kafka.consumer({ groupId: `drain-${process.pid}-${process.hrtime.bigint()}`, readUncommitted: false, maxWaitTimeInMs: 250 });
  consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
    const k = `${e.payload.topic}/${e.payload.partition}`;
    reached.set(k, Math.max(reached.get(k) ?? -1, Number(e.payload.lastOffset)));
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [...topics], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const last = batch.messages.at(-1);
      if (last) {
        const k = `${batch.topic}/${batch.partition}`;
        lastRecord.set(k, Math.max(lastRecord.get(k) ?? -1, Number(last.offset)));
      }
    },
  });
  return {
    async caughtUp(admin, groupId, ofTopics) {
      for (const topic of ofTopics) {
        const [ends, committed] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId, topics: [topic] })]);
        const at = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
        for (const e of ends) {
          const k = `${topic}/${e.partition}`;
          if (Number(e.high) === 0) continue;
          if ((reached.get(k) ?? -1) < Number(e.high) - 1) return false; // not read to the end yet
          const last = lastRecord.get(k);
          if (last !== undefined && (at.get(e.partition) ?? -1) <= last) return false;
        }
      }
      return true;
    },
    close: () => consumer.disconnect(),
  };
}

/** Sum of a group's committed offsets over a topic: moves whenever the group commits progress. */
export async function committedSum(admin: Admin, groupId: string, topic: string): Promise<number> {
  const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
  return (offsets[0]?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
}

export interface ScoringCheck {
  /** Events sent (distinct ids). */
  in: number;
  /** Events with exactly one served prediction on the topic and exactly one served row in the log. */
  logged: number;
  /** Events missing from the topic or the log. */
  lost: number;
  /** Extra copies: served predictions beyond one per event on the topic, plus log rows beyond one per event. */
  duplicates: number;
  /** Records on any dead-letter topic (the workloads send no bad input, so any is a transient fault mis-handled). */
  deadLettered: number;
  /** Events whose log row differs (version or scored_at) from the prediction committed on the topic: a write by a fenced zombie or an aborted attempt. */
  logMismatches: number;
  /** Up to five of them: the committed prediction's and the log row's scored_at (ms) and version. */
  logMismatchSamples: Array<{ eventId: string; topic: { version: number; scoredAt: number }; log: { version: number; scoredAt: number } }>;
  /** Event ids on events.client beyond one per id: the harness's own retried sends, not the pipeline. */
  inputDuplicates: number;
  predictionsOnTopic: number;
  /** Predictions written in transactions that were aborted (read_uncommitted count minus read_committed count): work a fault made the pipeline redo. */
  abortedPredictions: number;
  /**
   * Up to five events with more than one committed prediction, to tell where a copy came from: each
   * prediction where it sits on the topic, and the event's committed feature vectors (two vectors: the
   * preprocessor's output was doubled; one: the scorer committed the same input twice).
   */
  duplicateSamples: Array<{
    eventId: string;
    predictions: Array<{ at: string; producer: string | null; version: number; scoredAt: number; predictionId: string }>;
    /** Each committed vector of the event: partition@offset by producer id/epoch. */
    vectors: string[];
    /** The event on events.client: partition@offset. */
    event: string[];
  }>;
  /**
   * Up to eight lost events, to tell where each was lost: its committed served predictions and log rows,
   * every prediction of it in any attempt (read_uncommitted: partition@offset by producer, variant, version),
   * and its committed feature vectors. No vector: lost before the scorer; an uncommitted prediction only:
   * the scorer's transaction aborted and its input was not processed again.
   */
  lostSamples: Array<{
    eventId: string;
    committed: number;
    logRows: Array<{ version: number; scoredAt: number }>;
    attempts: Array<{ at: string; producer: string | null; variant: string; version: number; scoredAt: number }>;
    vectors: string[];
  }>;
}

export interface LoopCheck {
  /** Predictions on predictions.by-event (every variant) whose event had a label sent. */
  joinable: number;
  /** Of those, joined exactly once on predictions.labeled. */
  joined: number;
  joinLost: number;
  joinDuplicates: number;
  /** predictions.by-event copies beyond one per prediction id. */
  byEventDuplicates: number;
  reports: number;
  reportDuplicates: number;
  retrainRequests: number;
  retrainDuplicates: number;
  candidates: number;
  candidateDuplicates: number;
  modelEvents: number;
  modelEventDuplicates: number;
}

const extra = (counts: Map<string, number>): number => [...counts.values()].reduce((n, c) => n + Math.max(0, c - 1), 0);
const tally = <T>(items: T[], key: (t: T) => string): Map<string, number> => {
  const m = new Map<string, number>();
  for (const it of items) m.set(key(it), (m.get(key(it)) ?? 0) + 1);
  return m;
};

async function decodeAll<T>(codec: Codec, record: Parameters<Codec['decode']>[0], rows: EndRead[]): Promise<T[]> {
  const out: T[] = [];
  for (const r of rows) {
    const d = await codec.decode(record, r.value);
    if (!d.ok) throw new Error(`undecodable ${record} at ${r.topic}/${r.partition}@${r.offset}: ${d.error.message}`);
    out.push(d.value as T);
  }
  return out;
}

/**
 * Every row of a table scan, page by page. A page that fails with what an
 * overloaded node answers (a timeout, or a read aborted as too slow, which
 * Cassandra reports as a read failure) is asked again from the same page
 * state, up to 8 times: the check counts rows, and a busy machine must not
 * turn a slow scan into "every event lost" (seen under a busy loop per core:
 * a 5.8 s GC pause on the fault stack's node failed the baseline's scan).
 */
async function* scanWithRetries(cql: cassandra.Client, query: string, fetchSize = 500): AsyncGenerator<cassandra.types.Row> {
  let pageState: string | undefined;
  do {
    let page: cassandra.types.ResultSet | undefined;
    for (let attempt = 1; !page; attempt++) {
      try {
        page = await cql.execute(query, [], { prepare: true, fetchSize, pageState, readTimeout: 60_000, isIdempotent: true });
      } catch (err) {
        if (attempt >= 8 || !classifyCassandraError(err, 'scanning').retriable) throw err;
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
    yield* page.rows;
    pageState = page.pageState ?? undefined;
  } while (pageState);
}

export async function checkScoring(deps: { kafka: Kafka; codec: Codec; names: TopicNames; cql: cassandra.Client }, eventIds: readonly string[]): Promise<ScoringCheck> {
  const { kafka, codec, names, cql } = deps;
  const sent = new Set(eventIds);
  const events = await readToEnd(kafka, [names.physical('events.client')]);
  const sentOnTopic = tally(await decodeAll<{ event_id: string }>(codec, 'ClientEvent', events), (e) => e.event_id);

  const predictionRows = await readToEnd(kafka, [names.physical('predictions')]);
  const predictions = await decodeAll<Prediction>(codec, 'Prediction', predictionRows);
  const attemptRows = await readToEnd(kafka, [names.physical('predictions')], 120_000, true);
  const onTopic = new Map<string, Prediction[]>();
  for (const p of predictions) if (sent.has(p.event_id) && p.variant !== 'shadow') onTopic.set(p.event_id, [...(onTopic.get(p.event_id) ?? []), p]);

  const logRows = new Map<string, Array<{ version: number; scoredAt: number }>>();
  for await (const row of scanWithRetries(cql, 'SELECT event_id, variant, model_version, scored_at FROM prediction_log')) {
    const id = row.get('event_id') as string;
    if (!sent.has(id) || row.get('variant') === 'shadow') continue;
    logRows.set(id, [...(logRows.get(id) ?? []), { version: row.get('model_version') as number, scoredAt: (row.get('scored_at') as Date).getTime() }]);
  }

  let logged = 0;
  let lost = 0;
  let duplicates = 0;
  let logMismatches = 0;
  const logMismatchSamples: ScoringCheck['logMismatchSamples'] = [];
  const lostIds: string[] = [];
  for (const id of sent) {
    const t = onTopic.get(id) ?? [];
    const l = logRows.get(id) ?? [];
    if (t.length === 0 || l.length === 0) {
      lost++;
      if (lostIds.length < 8) lostIds.push(id);
    }
    if (t.length === 1 && l.length === 1) logged++;
    duplicates += Math.max(0, t.length - 1) + Math.max(0, l.length - 1);
    if (t.length === 1 && l.length === 1 && (t[0]!.model_version !== l[0]!.version || t[0]!.scored_at !== l[0]!.scoredAt)) {
      logMismatches++;
      if (logMismatchSamples.length < 5) logMismatchSamples.push({ eventId: id, topic: { version: t[0]!.model_version, scoredAt: t[0]!.scored_at }, log: l[0]! });
    }
  }
  const dlqs = TOPICS.filter((t) => t.name.endsWith('.dlq')).map((t) => names.physical(t.name));
  const deadLettered = (await readToEnd(kafka, dlqs)).length;
  const where = (r: EndRead) => `${r.partition}@${r.offset}`;
  /** The committed feature vectors, read once and only when a sample needs them. */
  let vectorsRead: Promise<{ rows: EndRead[]; vectors: Array<{ event_id: string }> }> | null = null;
  const vectorsOf = async (id: string) => {
    vectorsRead ??= readToEnd(kafka, [names.physical('features.vectors')]).then(async (rows) => ({ rows, vectors: await decodeAll<{ event_id: string }>(codec, 'FeatureVector', rows) }));
    const { rows, vectors } = await vectorsRead;
    return vectors.flatMap((v, i) => (v.event_id === id ? [`${where(rows[i]!)} by ${rows[i]!.producer}`] : []));
  };
  const doubled = [...onTopic].filter(([, ps]) => ps.length > 1).slice(0, 5).map(([id]) => id);
  const duplicateSamples: ScoringCheck['duplicateSamples'] = [];
  if (doubled.length > 0) {
    const eventsDecoded = await decodeAll<{ event_id: string }>(codec, 'ClientEvent', events);
    for (const id of doubled) {
      duplicateSamples.push({
        eventId: id,
        predictions: predictions.flatMap((p, i) => (p.event_id === id && p.variant !== 'shadow' ? [{ at: where(predictionRows[i]!), producer: predictionRows[i]!.producer, version: p.model_version, scoredAt: p.scored_at, predictionId: p.prediction_id }] : [])),
        vectors: await vectorsOf(id),
        event: eventsDecoded.flatMap((e, i) => (e.event_id === id ? [where(events[i]!)] : [])),
      });
    }
  }
  const lostSamples: ScoringCheck['lostSamples'] = [];
  if (lostIds.length > 0) {
    const attempts = await decodeAll<Prediction>(codec, 'Prediction', attemptRows);
    for (const id of lostIds) {
      lostSamples.push({
        eventId: id,
        committed: (onTopic.get(id) ?? []).length,
        logRows: logRows.get(id) ?? [],
        attempts: attempts.flatMap((p, i) => (p.event_id === id ? [{ at: where(attemptRows[i]!), producer: attemptRows[i]!.producer, variant: p.variant, version: p.model_version, scoredAt: p.scored_at }] : [])),
        vectors: await vectorsOf(id),
      });
    }
  }
  return { in: sent.size, logged, lost, duplicates, deadLettered, logMismatches, logMismatchSamples, inputDuplicates: extra(sentOnTopic), predictionsOnTopic: predictions.length, abortedPredictions: attemptRows.length - predictions.length, duplicateSamples, lostSamples };
}

/** The loop's outputs: every prediction joined once (when its label was sent), and each report, retrain request, candidate and model event once. */
export async function checkLoop(deps: { kafka: Kafka; codec: Codec; names: TopicNames }, labelledEventIds: readonly string[]): Promise<LoopCheck> {
  const { kafka, codec, names } = deps;
  const labelled = new Set(labelledEventIds);
  const byEvent = await decodeAll<Prediction>(codec, 'Prediction', await readToEnd(kafka, [names.physical('predictions.by-event')]));
  const byEventCounts = tally(byEvent, (p) => p.prediction_id);
  const labeled = await decodeAll<LabeledPrediction>(codec, 'LabeledPrediction', await readToEnd(kafka, [names.physical('predictions.labeled')]));
  const joinedCounts = tally(labeled, (l) => l.prediction.prediction_id);
  let joinable = 0;
  let joined = 0;
  let joinLost = 0;
  const eventOf = new Map(byEvent.map((p) => [p.prediction_id, p.event_id]));
  for (const [pid, eventId] of eventOf) {
    if (!labelled.has(eventId)) continue;
    joinable++;
    const n = joinedCounts.get(pid) ?? 0;
    if (n === 1) joined++;
    if (n === 0) joinLost++;
  }

  const reportRows = await readToEnd(kafka, [names.physical('monitor.reports')]);
  const reports: Array<QualityReport | DriftReport> = [];
  for (const r of reportRows) {
    const d = await codec.decodeAny(['QualityReport', 'DriftReport'] as const, r.value);
    if (!d.ok) throw new Error(`undecodable report at ${r.partition}@${r.offset}: ${d.error.message}`);
    reports.push(d.value as QualityReport | DriftReport);
  }
  const retrain = await decodeAll<RetrainRequest>(codec, 'RetrainRequest', await readToEnd(kafka, [names.physical('control.retrain')]));
  const candidates = await decodeAll<ModelCandidate>(codec, 'ModelCandidate', await readToEnd(kafka, [names.physical('control.candidates')]));
  const models = await decodeAll<ModelEvent>(codec, 'ModelEvent', await readToEnd(kafka, [names.physical('control.models')]));
  return {
    joinable,
    joined,
    joinLost,
    joinDuplicates: extra(joinedCounts),
    byEventDuplicates: extra(byEventCounts),
    reports: reports.length,
    reportDuplicates: extra(tally(reports, (r) => r.report_id)),
    retrainRequests: retrain.length,
    retrainDuplicates: extra(tally(retrain, (r) => r.request_id)),
    candidates: candidates.length,
    candidateDuplicates: extra(tally(candidates, (c) => c.request_id ?? `v${c.model_version}`)),
    modelEvents: models.length,
    modelEventDuplicates: extra(tally(models, (m) => m.event_id)),
  };
}
