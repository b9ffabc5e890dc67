/**
 * The downstream observer: a consumer (read_committed, its own group, from the
 * beginning) that stamps each fetched batch with the wall-clock time it was
 * handed over, before any decoding, and passes it on.
 */
import crypto from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';

export interface TopicReader {
  /** Highest offset handed over, by partition. */
  lastOffsets: Map<number, bigint>;
  stop(): Promise<void>;
}

export type ReaderHandler = (messages: KafkaMessage[], readAt: number, partition: number) => Promise<void> | void;

export async function startReader(kafka: Kafka, topic: string, handle: ReaderHandler, joinTimeoutMs = 60_000): Promise<TopicReader> {
  const consumer = kafka.consumer({ groupId: `bench-reader-${crypto.randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 500 });
  const lastOffsets = new Map<number, bigint>();
  let joined!: () => void;
  const join = new Promise<void>((r) => (joined = r));
  consumer.on(consumer.events.GROUP_JOIN, () => joined());
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    partitionsConsumedConcurrently: 3,
    eachBatch: async ({ batch }) => {
      const readAt = Date.now();
      const last = batch.messages[batch.messages.length - 1];
      if (last) lastOffsets.set(batch.partition, BigInt(last.offset));
      await handle(batch.messages, readAt, batch.partition);
    },
  });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    join,
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`reader of ${topic} did not join its group within ${joinTimeoutMs} ms`)), joinTimeoutMs))),
  ]).finally(() => clearTimeout(timer));
  return {
    lastOffsets,
    async stop() {
      await consumer.disconnect().catch(() => {});
    },
  };
}
