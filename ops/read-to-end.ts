/**
 * Reads topics from their start to the end offsets they had when the read
 * began (read_committed: aborted records and commit markers are skipped), with
 * a throw-away consumer group that commits nothing. For operator tools over
 * small topics (dead letters), not for the data path.
 */
import crypto from 'node:crypto';
import type { Admin, IHeaders, Kafka } from 'kafkajs';
import { patchKafkajs } from '../streams/kafkajs-patch.js';

export interface TopicMessage {
  /** Physical topic. */
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: IHeaders;
  timestamp: number;
}

export interface ReadToEndOptions {
  /** Give up waiting after this long and return what was read (`complete` false). Default 15 000 ms. */
  timeoutMs?: number;
  /** Stop after this many messages per topic (the oldest first). Default unlimited. */
  maxPerTopic?: number;
}

/** A header's first value as text. */
export function headerText(headers: IHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  const first = Array.isArray(v) ? v[0] : v;
  return first === undefined ? undefined : first.toString();
}

export async function readToEnd(kafka: Kafka, admin: Admin, topics: readonly string[], options: ReadToEndOptions = {}): Promise<{ messages: TopicMessage[]; complete: boolean }> {
  const existing = new Set(await admin.listTopics());
  const present = topics.filter((t) => existing.has(t));
  const remaining = new Map<string, bigint>(); // topic|partition → last offset to reach
  for (const t of present) {
    for (const p of await admin.fetchTopicOffsets(t)) {
      if (BigInt(p.high) > BigInt(p.low)) remaining.set(`${t}|${p.partition}`, BigInt(p.high) - 1n);
    }
  }
  const messages: TopicMessage[] = [];
  if (remaining.size === 0) return { messages, complete: true };
  const perTopic = new Map<string, number>();
  patchKafkajs(); // read_committed as the Java consumer filters it (streams/kafkajs-patch.ts, 3)
  const consumer = kafka.consumer({ groupId: `loopline-reader-${crypto.randomUUID()}`, readUncommitted: false, allowAutoTopicCreation: false });
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  let timer: NodeJS.Timeout | undefined;
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: present.filter((t) => [...remaining.keys()].some((k) => k.startsWith(`${t}|`))), fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) {
          const n = perTopic.get(batch.topic) ?? 0;
          if (options.maxPerTopic !== undefined && n >= options.maxPerTopic) break;
          perTopic.set(batch.topic, n + 1);
          messages.push({ topic: batch.topic, partition: batch.partition, offset: m.offset, key: m.key, value: m.value, headers: m.headers ?? {}, timestamp: Number(m.timestamp) });
        }
        const key = `${batch.topic}|${batch.partition}`;
        const last = remaining.get(key);
        const full = options.maxPerTopic !== undefined && (perTopic.get(batch.topic) ?? 0) >= options.maxPerTopic;
        // lastOffset() counts commit markers, so a transactionally written partition is finished at its end too.
        if (last !== undefined && (BigInt(batch.lastOffset()) >= last || full)) remaining.delete(key);
        if (remaining.size === 0) done();
      },
    });
    const timedOut = await Promise.race([
      finished.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), options.timeoutMs ?? 15_000))),
    ]);
    messages.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
    return { messages, complete: !timedOut };
  } finally {
    clearTimeout(timer);
    await consumer.disconnect().catch(() => {});
  }
}
