/**
 * The floor Loopline is compared with: a bare kafkajs pass-through on the same
 * broker, in the same run. A consumer group reads a topic of Avro-encoded
 * ClientEvents of the workload (the very bytes Loopline's producer sends,
 * keyed alike, over as many partitions as the workload's events.client) and
 * produces each record unchanged to another topic: idempotent producer,
 * eachBatch (as many partitions at once as Loopline's workers), chunks of
 * batchMax, no decoding, no processing, no transactions. A downstream
 * read_committed consumer observes the output.
 *
 * Phases (each with its own event ids, so no phase sees another's records):
 * - drain: N records produced beforehand, then the pass-through group starts.
 *   Throughput = N / (last output read − first input batch handed to the
 *   pass-through); latency = output read − the output record's produce
 *   timestamp (one Kafka hop: produce, ack, fetch).
 * - live: the pass-through is running and N records are sent as fast as the
 *   Loopline replayer sends them (batches of 200, each awaited, produced_at
 *   stamped at send). Throughput = N / (last output read − first send);
 *   latency = output read − ClientEvent.produced_at, as for Loopline.
 * - paced: as live, but sent at a fixed rate the way the replayer paces events
 *   (the k-th is due at start + k / rate; every due record goes out in one
 *   awaited send): the same rate as Loopline's paced run, so their latencies
 *   compare.
 */
import type { Kafka, Message } from 'kafkajs';
import type { Codec } from '../../schemas/codec.js';
import type { ClientEvent } from '../../schemas/types.js';
import type { TopicNames } from '../../streams/topics.js';
import type { CpuMeter, CpuSample } from './cpu.js';
import { startReader } from './reader.js';
import { closeOnInterrupt, DeliveryTracker, fmt, progress, sleep, summarize, waitWithProgress, type LatencySummary } from './stats.js';

export interface BaselineDeps {
  kafka: Kafka;
  admin: import('kafkajs').Admin;
  codec: Codec;
  names: TopicNames;
  cpu: CpuMeter;
}

export interface PhaseResult {
  records: number;
  seconds: number;
  recordsPerSecond: number;
  latencyMs: LatencySummary;
  lost: number;
  duplicated: number;
  unexpected: number;
  /** CPU seconds by process during the phase (node = this process). */
  cpuSeconds: CpuSample;
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
  paced: (PhaseResult & { latencyBasis: 'ClientEvent.produced_at'; rate: number; sendSeconds: number; maxSendLagMs: number }) | null;
  problems: string[];
}

export interface Baseline {
  /** The drain and live phases. */
  run(events: ClientEvent[]): Promise<void>;
  /** A paced phase at `rate` records/s. */
  paced(events: ClientEvent[], rate: number): Promise<void>;
  result(): BaselineResult;
  stop(): Promise<void>;
}

const SEND_BATCH = 200; // the replayer's default batchMax

export async function startBaseline(deps: BaselineDeps, opts: { partitions: number; batchMax: number; partitionsConsumedConcurrently: number; label: string }): Promise<Baseline> {
  const { kafka, admin, codec, names, cpu } = deps;
  const { partitions, batchMax, label } = opts;
  const input = names.physical('bench.passthrough.in');
  const output = names.physical('bench.passthrough.out');
  await admin.createTopics({ waitForLeaders: true, topics: [input, output].map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })) });
  const subject = names.subject('events.client', 'ClientEvent');
  const problems: string[] = [];
  const sizes: number[] = [];
  const phase = (name: string, e: ClientEvent, producedAt: number) => codec.encode('ClientEvent', subject, { ...e, event_id: `${name}:${e.event_id}`, produced_at: producedAt });
  const encodeBatch = (name: string, batch: ClientEvent[], now: number) => Promise.all(batch.map(async (e): Promise<Message> => ({ key: e.entity_id, value: await phase(name, e, now) })));

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
  await Promise.all([producer.connect(), passProducer.connect()]);
  let firstBatchAt = Number.NaN;
  let result: Omit<BaselineResult, 'paced' | 'problems' | 'partitionsUsed'> | null = null;
  let paced: BaselineResult['paced'] = null;

  const finish = async (name: string, ids: string[], startAt: number | (() => number), cpuBefore: CpuSample): Promise<PhaseResult> => {
    const watched = tracker.watch(ids);
    const complete = await waitWithProgress({
      done: () => watched.count === ids.length,
      progressOf: () => tracker.records,
      describe: () => `${label} baseline ${name}: ${fmt(watched.count)}/${fmt(ids.length)} read downstream`,
      stallMs: 30_000,
    });
    const cpuSeconds = cpu.since(cpuBefore);
    if (!complete) problems.push(`${label} baseline ${name}: stalled with ${ids.length - watched.count} records not read downstream`);
    await sleep(1000); // let a late duplicate show up
    const r = tracker.account(ids);
    const seconds = (r.lastReadAt - (typeof startAt === 'number' ? startAt : startAt())) / 1000;
    if (r.lost) problems.push(`${label} baseline ${name}: ${r.lost} records lost (e.g. ${r.lostExamples.join(', ')})`);
    if (r.duplicated) problems.push(`${label} baseline ${name}: ${r.duplicated} records duplicated (e.g. ${r.duplicatedExamples.join(', ')})`);
    return { records: r.delivered, seconds, recordsPerSecond: r.delivered / seconds, latencyMs: summarize(r.latencies), lost: r.lost, duplicated: r.duplicated, unexpected: r.unexpected, cpuSeconds };
  };

  return {
    async run(events) {
      // Drain input, produced beforehand.
      progress(`${label} baseline: producing ${fmt(events.length)} ClientEvents to ${input}`);
      const produceStart = Date.now();
      for (let i = 0; i < events.length; i += SEND_BATCH) {
        const messages = await encodeBatch('drain', events.slice(i, i + SEND_BATCH), Date.now());
        for (const m of messages) sizes.push((m.value as Buffer).length);
        await producer.send({ topic: input, messages });
      }
      const produceSeconds = (Date.now() - produceStart) / 1000;

      // The pass-through.
      const drainCpu = cpu.sample();
      await consumer.connect();
      await consumer.subscribe({ topic: input, fromBeginning: true });
      await consumer.run({
        partitionsConsumedConcurrently: opts.partitionsConsumedConcurrently,
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
      progress(`${label} baseline drain: pass-through group started`);
      const drain = await finish('drain', events.map((e) => `drain:${e.event_id}`), () => firstBatchAt, drainCpu);
      progress(`${label} baseline drain: ${fmt(drain.recordsPerSecond)} records/s, hop latency p50 ${fmt(drain.latencyMs.p50)} ms`);

      // Live: sent as the replayer sends at 'max', measured from produced_at.
      tracker = new DeliveryTracker();
      basis = 'produced_at';
      progress(`${label} baseline live: sending ${fmt(events.length)} ClientEvents at full speed through the running pass-through`);
      const liveCpu = cpu.sample();
      const liveStart = Date.now();
      for (let i = 0; i < events.length; i += SEND_BATCH) {
        await producer.send({ topic: input, messages: await encodeBatch('live', events.slice(i, i + SEND_BATCH), Date.now()) });
      }
      const sendSeconds = (Date.now() - liveStart) / 1000;
      const live = await finish('live', events.map((e) => `live:${e.event_id}`), liveStart, liveCpu);
      progress(`${label} baseline live: ${fmt(live.recordsPerSecond)} records/s, latency p50 ${fmt(live.latencyMs.p50)} ms p99 ${fmt(live.latencyMs.p99)} ms`);
      result = {
        partitions,
        batchMax,
        messageBytes: { mean: sizes.reduce((s, v) => s + v, 0) / sizes.length, min: Math.min(...sizes), max: Math.max(...sizes) },
        produce: { records: events.length, seconds: produceSeconds, recordsPerSecond: events.length / produceSeconds },
        drain: { ...drain, latencyBasis: 'output produce timestamp' },
        live: { ...live, latencyBasis: 'ClientEvent.produced_at', sendSeconds },
      };
    },

    async paced(events, rate) {
      tracker = new DeliveryTracker();
      basis = 'produced_at';
      progress(`${label} baseline paced: sending ${fmt(events.length)} ClientEvents at ${fmt(rate)}/s through the running pass-through`);
      const pacedCpu = cpu.sample();
      const start = Date.now();
      let maxLag = 0;
      for (let k = 0; k < events.length; ) {
        const now = Date.now();
        const due = start + (k * 1000) / rate;
        if (due > now) {
          await sleep(due - now);
          continue;
        }
        maxLag = Math.max(maxLag, now - due);
        let n = 0;
        while (k + n < events.length && n < SEND_BATCH && start + ((k + n) * 1000) / rate <= now) n++;
        await producer.send({ topic: input, messages: await encodeBatch('paced', events.slice(k, k + n), Date.now()) });
        k += n;
      }
      const sendSeconds = (Date.now() - start) / 1000;
      const r = await finish('paced', events.map((e) => `paced:${e.event_id}`), start, pacedCpu);
      paced = { ...r, latencyBasis: 'ClientEvent.produced_at', rate, sendSeconds, maxSendLagMs: maxLag };
      progress(`${label} baseline paced @ ${fmt(rate)}/s: latency p50 ${fmt(r.latencyMs.p50)} ms p99 ${fmt(r.latencyMs.p99)} ms`);
    },

    result() {
      if (!result) throw new Error('the baseline has not run');
      return { ...result, partitionsUsed: usedPartitions.size, paced, problems };
    },

    async stop() {
      unregister();
      await consumer.disconnect().catch(() => {});
      await reader.stop();
      await Promise.all([producer.disconnect().catch(() => {}), passProducer.disconnect().catch(() => {})]);
    },
  };
}
