/**
 * Reading topics back in tests (read_committed).
 *
 * - `readToEnd`: every committed message of every partition up to the end
 *   offsets taken when it starts — for counts and duplicate checks, which
 *   must see everything there is, not merely the first N messages.
 * - `readTopic`: from the beginning until `until` holds or the deadline
 *   passes — for waiting on something that is still to come.
 */
import type { Admin, IHeaders, Kafka } from 'kafkajs';

export interface ReadMessage {
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: IHeaders;
}

export async function readTopic(kafka: Kafka, topic: string, until: (messages: ReadMessage[]) => boolean, timeoutMs = 60_000): Promise<ReadMessage[]> {
  const consumer = kafka.consumer({ groupId: `reader-${topic}-${process.hrtime.bigint()}`, readUncommitted: false });
  const got: ReadMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        got.push({ partition, offset: message.offset, key: message.key?.toString() ?? null, value: message.value, headers: message.headers ?? {} });
        if (until(got)) done();
      },
    });
    if (!until(got)) {
      await Promise.race([finished, new Promise((r) => setTimeout(r, timeoutMs))]);
    }
    return got;
  } finally {
    await consumer.disconnect();
  }
}

/**
 * Every committed message of `topic`, reading each partition up to the end
 * offset it had when the call began (its high watermark). Done is exact, not
 * a guess from a count or an idle time: the reader tracks, per partition, the
 * offset after the last record batch the broker handed over, control records
 * and aborted records included. That matters for transactional topics: the
 * last offset of a partition is often a commit marker, which no consumer is
 * handed as a message, so "the last message's offset + 1" never reaches the
 * high watermark. kafkajs reports a batch's last offset, markers included, in
 * its END_BATCH_PROCESS event (also for batches that held only markers or
 * aborted records). Fails, naming the partitions, when the end is not reached
 * within `timeoutMs` (an open transaction that never completes).
 */
export async function readToEnd(kafka: Kafka, admin: Admin, topic: string, timeoutMs = 60_000): Promise<ReadMessage[]> {
  const offsets = await admin.fetchTopicOffsets(topic);
  const end = new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
  const position = new Map(offsets.map((o) => [o.partition, BigInt(o.low)]));
  const pending = () => [...end].filter(([p, high]) => (position.get(p) ?? 0n) < high);
  if (pending().length === 0) return [];
  const consumer = kafka.consumer({ groupId: `reader-${topic}-${process.hrtime.bigint()}`, readUncommitted: false, maxWaitTimeInMs: 250 });
  const got: ReadMessage[] = [];
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    if (payload.topic !== topic) return;
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
        for (const m of batch.messages) got.push({ partition: batch.partition, offset: m.offset, key: m.key?.toString() ?? null, value: m.value, headers: m.headers ?? {} });
      },
    });
    const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
    if ((await Promise.race([finished, timedOut])) === 'timeout') {
      const behind = pending().map(([p, high]) => `partition ${p} at ${position.get(p)} of ${high}`).join(', ');
      throw new Error(`reading ${topic} to its end offsets timed out after ${timeoutMs} ms (${behind})`);
    }
    return got;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
}

export function header(headers: IHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v[0]?.toString() : v.toString();
}

/**
 * True once `groupId` has committed every partition of `topic` up to its high
 * watermark. A topic written in transactions ends each partition with a
 * commit marker, which occupies an offset no consumer is handed: pass
 * `transactional` to accept a committed offset at that marker.
 */
export async function groupCaughtUp(admin: import('kafkajs').Admin, groupId: string, topic: string, transactional = false): Promise<boolean> {
  const [ends, committed] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId, topics: [topic] })]);
  const byPartition = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
  return ends.every((e) => Number(e.high) === 0 || (byPartition.get(e.partition) ?? -1) >= Number(e.high) - (transactional ? 1 : 0));
}
