/**
 * Reading topics back exactly (read_committed), for reports, tools and tests:
 * every committed record up to the end offsets a call starts with, and
 * whether a consumer group has consumed a topic to its end. Exact on
 * transactional topics, where partitions end with commit markers that no
 * consumer is handed.
 */
import type { Admin, IHeaders, Kafka } from 'kafkajs';
import { TransientError } from '../core/errors.js';
import { patchKafkajs } from './kafkajs-patch.js';

export interface ReadMessage {
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: IHeaders;
  /** The record's timestamp (ms; the producer's create time unless the topic logs append time). */
  timestamp: number;
}

/**
 * Every committed message of `topic`, reading each partition up to the end
 * offset it had when the call began (its high watermark). Done is exact, not
 * a guess from a count or an idle time: the reader tracks, per partition, the
 * offset after the last record batch the broker handed over, control records
 * and aborted records included. That matters for transactional topics: a
 * partition often ends with a commit marker — or several markers in a row —
 * which no consumer is handed as a message, so "the last message's offset + 1"
 * never reaches the high watermark. kafkajs reports a batch's last offset,
 * markers included, in its END_BATCH_PROCESS event (also for batches that held
 * only markers or aborted records). Fails, naming the partitions, when the end
 * is not reached within `timeoutMs` (an open transaction that never completes).
 */
export async function readToEnd(kafka: Kafka, admin: Admin, topic: string, timeoutMs = 60_000): Promise<ReadMessage[]> {
  const offsets = await admin.fetchTopicOffsets(topic);
  const from = new Map(offsets.map((o) => [o.partition, BigInt(o.low)]));
  const end = new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
  const r = await readRange(kafka, topic, from, end, { timeoutMs, stopAtFirst: false });
  if (r.timedOut) throw new TransientError(`reading ${topic} to its end offsets timed out after ${timeoutMs} ms (${r.behind}): a transaction still open?`, undefined, 'READ_TIMEOUT');
  return r.messages;
}

/**
 * True once `groupId` has committed, on every partition of `topic`, past the
 * last record a read_committed consumer would be handed: exact on
 * transactional topics, whose partitions may end with any number of commit or
 * abort markers and aborted records (which `groupCaughtUp` can only guess at).
 * Cheap when the group is at the high watermarks; otherwise it reads what
 * lies between the committed offsets and the end, stopping at the first
 * record handed over. False while an open transaction holds the end back.
 */
export async function groupAtEnd(kafka: Kafka, admin: Admin, groupId: string, topic: string): Promise<boolean> {
  const [ends, committed] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId, topics: [topic] })]);
  const at = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
  const behind = ends.filter((e) => BigInt(e.high) > BigInt(e.low) && (at.get(e.partition) ?? -1n) < BigInt(e.high));
  if (behind.length === 0) return true;
  const from = new Map(behind.map((e) => {
    const c = at.get(e.partition) ?? -1n;
    return [e.partition, c < BigInt(e.low) ? BigInt(e.low) : c] as const;
  }));
  const r = await readRange(kafka, topic, from, new Map(behind.map((e) => [e.partition, BigInt(e.high)])), { timeoutMs: 10_000, stopAtFirst: true });
  return !r.timedOut && r.messages.length === 0;
}

/** Reads the committed messages of `topic` in [from, end) per partition (other partitions skipped), with a fresh group seeking to `from`. */
async function readRange(
  kafka: Kafka, topic: string, from: ReadonlyMap<number, bigint>, end: ReadonlyMap<number, bigint>,
  o: { timeoutMs: number; stopAtFirst: boolean },
): Promise<{ messages: ReadMessage[]; timedOut: boolean; behind: string }> {
  const position = new Map(from);
  const pending = () => [...end].filter(([p, high]) => (position.get(p) ?? high) < high);
  const behind = () => pending().map(([p, high]) => `partition ${p} at ${position.get(p)} of ${high}`).join(', ');
  const got: ReadMessage[] = [];
  // Per partition, the offset after the last record taken: a batch handed over again (the reader's group
  // rejoining, a seek applied after a fetch) is one record per offset, not a second copy.
  const taken = new Map(from);
  if (pending().length === 0) return { messages: got, timedOut: false, behind: '' };
  const groupId = `reader-${topic}-${process.hrtime.bigint()}`;
  // kafkajs's own read_committed filter can hand over records of aborted transactions (kafkajs-patch.ts, 3).
  patchKafkajs();
  const consumer = kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 250 });
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    if (payload.topic !== topic || !from.has(payload.partition)) return;
    const next = BigInt(payload.lastOffset) + 1n;
    if (next > (position.get(payload.partition) ?? 0n)) position.set(payload.partition, next);
    if (pending().length === 0) done();
  });
  await consumer.connect();
  let timer: NodeJS.Timeout | undefined;
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        const high = end.get(batch.partition);
        if (!taken.has(batch.partition) || high === undefined) return;
        for (const m of batch.messages) {
          const offset = BigInt(m.offset);
          if (offset < taken.get(batch.partition)! || offset >= high) continue;
          taken.set(batch.partition, offset + 1n);
          got.push({ partition: batch.partition, offset: m.offset, key: m.key?.toString() ?? null, value: m.value, headers: m.headers ?? {}, timestamp: Number(m.timestamp) });
          if (o.stopAtFirst) done();
        }
      },
    });
    // Start each partition at `from` (a batch fetched before the seek applies is filtered above, so a late seek changes nothing).
    for (const [partition, offset] of from) consumer.seek({ topic, partition, offset: offset.toString() });
    const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), o.timeoutMs)));
    const outcome = await Promise.race([finished, timedOut]);
    return { messages: got, timedOut: outcome === 'timeout', behind: behind() };
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
}
