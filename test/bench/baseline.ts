/**
 * The floor Loopline is compared with: a bare kafkajs pass-through on the same
 * broker, in the same run. A consumer group reads a topic of Avro-encoded
 * Elec2 ClientEvents (the very bytes Loopline's producer sends, keyed alike)
 * and produces each record unchanged to another topic: idempotent producer,
 * eachBatch, chunks of batchMax, no decoding, no processing, no transactions.
 * A downstream read_committed consumer observes the output.
 *
 * Two phases:
 * - drain: N records produced beforehand, then the pass-through group starts.
 *   Throughput = N / (last output read − first input batch handed to the
 *   pass-through); latency = output read − the output record's produce
 *   timestamp (one Kafka hop: produce, ack, fetch).
 * - live: the pass-through is running and N records are sent as fast as the
 *   Loopline replayer would send them (batches of 200, each awaited, produced_at
 *   stamped at send). Throughput = N / (last output read − first send);
 *   latency = output read − ClientEvent.produced_at, as for Loopline.
 */
import type { Kafka, Message } from 'kafkajs';
import type { Codec } from '../../schemas/codec.js';
import type { ClientEvent } from '../../schemas/types.js';
import type { TopicNames } from '../../streams/topics.js';
import { startReader } from './reader.js';
import { closeOnInterrupt, DeliveryTracker, fmt, progress, sleep, summarize, waitWithProgress, type LatencySummary } from './stats.js';

export interface BaselineDeps {
  kafka: Kafka;
  admin: import('kafkajs').Admin;
  codec: Codec;
  names: TopicNames;
}

export interface PhaseResult {
  records: number;
  seconds: number;
  recordsPerSecond: number;
  latencyMs: LatencySummary;
  lost: number;
  duplicated: number;
  unexpected: number;
}

export interface BaselineResult {
  partitions: number;
  partitionsUsed: number;
  batchMax: number;
  messageBytes: { mean: number; min: number; max: number };
  /** Rate of the plain idempotent producer writing the drain input (batches of 200, awaited). */
  produce: { records: number; seconds: number; recordsPerSecond: number };
  drain: PhaseResult & { latencyBasis: 'output produce timestamp' };
  live: PhaseResult & { latencyBasis: 'ClientEvent.produced_at'; sendSeconds: number };
  problems: string[];
}

const SEND_BATCH = 200; // the replayer's default batchMax

export async function runBaseline(deps: BaselineDeps, events: ClientEvent[], batchMax: number): Promise<BaselineResult> {
  const { kafka, admin, codec, names } = deps;
  const input = names.physical('bench.passthrough.in');
  const output = names.physical('bench.passthrough.out');
  const partitions = 3; // as events.client and predictions
  await admin.createTopics({ waitForLeaders: true, topics: [input, output].map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })) });
  const subject = names.subject('events.client', 'ClientEvent');
  const encode = (e: ClientEvent, producedAt: number) => codec.encode('ClientEvent', subject, { ...e, produced_at: producedAt });
  const problems: string[] = [];

  // Downstream observer: records every output by event id into the current phase's tracker.
  let tracker = new DeliveryTracker();
  let basis: 'timestamp' | 'produced_at' = 'timestamp';
  const usedPartitions = new Set<number>();
  const reader = await startReader(kafka, output, async (messages, readAt, partition) => {
    usedPartitions.add(partition);
    for (const m of messages) {
      const d = await codec.decode('ClientEvent', m.value);
      if (!d.ok) throw new Error(`baseline output is not a ClientEvent: ${d.error.message}`);
      tracker.record(d.value.event_id, { readAt, sentAt: basis === 'timestamp' ? Number(m.timestamp) : d.value.produced_at });
    }
  });

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const passProducer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const consumer = kafka.consumer({ groupId: `${names.prefix}bench-passthrough`, readUncommitted: false });
  const unregister = closeOnInterrupt(async () => {
    await consumer.disconnect().catch(() => {});
    await reader.stop();
  });
  try {
    await Promise.all([producer.connect(), passProducer.connect()]);

    // Drain input, produced beforehand.
    progress(`baseline: producing ${fmt(events.length)} ClientEvents to ${input}`);
    const sizes: number[] = [];
    const produceStart = Date.now();
    for (let i = 0; i < events.length; i += SEND_BATCH) {
      const batch = events.slice(i, i + SEND_BATCH);
      const now = Date.now();
      const messages: Message[] = await Promise.all(batch.map(async (e) => ({ key: e.entity_id, value: await encode(e, now) })));
      for (const m of messages) sizes.push((m.value as Buffer).length);
      await producer.send({ topic: input, messages });
    }
    const produceSeconds = (Date.now() - produceStart) / 1000;

    // The pass-through.
    let firstBatchAt = Number.NaN;
    await consumer.connect();
    await consumer.subscribe({ topic: input, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        if (Number.isNaN(firstBatchAt)) firstBatchAt = Date.now();
        for (let i = 0; i < batch.messages.length; i += batchMax) {
          if (!isRunning() || isStale()) return;
          const chunk = batch.messages.slice(i, i + batchMax);
          const timestamp = String(Date.now());
          await passProducer.send({ topic: output, messages: chunk.map((m) => ({ key: m.key, value: m.value, timestamp })) });
          resolveOffset(chunk[chunk.length - 1]!.offset);
          await heartbeat();
        }
      },
    });

    const ids = events.map((e) => e.event_id);
    const finish = async (phase: string, startAt: number): Promise<PhaseResult> => {
      const complete = await waitWithProgress({
        done: () => tracker.countOf(ids) === ids.length,
        progressOf: () => tracker.records,
        describe: () => `baseline ${phase}: ${fmt(tracker.countOf(ids))}/${fmt(ids.length)} read downstream`,
        stallMs: 30_000,
      });
      if (!complete) problems.push(`baseline ${phase}: stalled with ${ids.length - tracker.countOf(ids)} records not read downstream`);
      await sleep(1000); // let a late duplicate show up
      const r = tracker.account(ids);
      const seconds = (r.lastReadAt - startAt) / 1000;
      if (r.lost) problems.push(`baseline ${phase}: ${r.lost} records lost (e.g. ${r.lostExamples.join(', ')})`);
      if (r.duplicated) problems.push(`baseline ${phase}: ${r.duplicated} records duplicated (e.g. ${r.duplicatedExamples.join(', ')})`);
      return { records: r.delivered, seconds, recordsPerSecond: r.delivered / seconds, latencyMs: summarize(r.latencies), lost: r.lost, duplicated: r.duplicated, unexpected: r.unexpected };
    };

    progress('baseline drain: pass-through group started');
    const waitStart = Date.now();
    while (Number.isNaN(firstBatchAt) && Date.now() - waitStart < 60_000) await sleep(10);
    const drain = await finish('drain', firstBatchAt);
    progress(`baseline drain: ${fmt(drain.recordsPerSecond)} records/s, hop latency p50 ${fmt(drain.latencyMs.p50)} ms`);

    // Live: same ids again, into a fresh tracker, measured from produced_at.
    tracker = new DeliveryTracker();
    basis = 'produced_at';
    progress(`baseline live: sending ${fmt(events.length)} ClientEvents at full speed through the running pass-through`);
    const liveStart = Date.now();
    for (let i = 0; i < events.length; i += SEND_BATCH) {
      const batch = events.slice(i, i + SEND_BATCH);
      const now = Date.now();
      const messages: Message[] = await Promise.all(batch.map(async (e) => ({ key: e.entity_id, value: await encode(e, now) })));
      await producer.send({ topic: input, messages });
    }
    const sendSeconds = (Date.now() - liveStart) / 1000;
    const live = await finish('live', liveStart);
    progress(`baseline live: ${fmt(live.recordsPerSecond)} records/s, latency p50 ${fmt(live.latencyMs.p50)} ms p99 ${fmt(live.latencyMs.p99)} ms`);

    return {
      partitions,
      partitionsUsed: usedPartitions.size,
      batchMax,
      messageBytes: { mean: sizes.reduce((s, v) => s + v, 0) / sizes.length, min: Math.min(...sizes), max: Math.max(...sizes) },
      produce: { records: events.length, seconds: produceSeconds, recordsPerSecond: events.length / produceSeconds },
      drain: { ...drain, latencyBasis: 'output produce timestamp' },
      live: { ...live, latencyBasis: 'ClientEvent.produced_at', sendSeconds },
      problems,
    };
  } finally {
    unregister();
    await consumer.disconnect().catch(() => {});
    await reader.stop();
    await Promise.all([producer.disconnect().catch(() => {}), passProducer.disconnect().catch(() => {})]);
  }
}
