/**
 * Reading topics back in tests (read_committed).
 *
 * - `readToEnd` (streams/topic-reader.ts): every committed message of every
 *   partition up to the end offsets taken when it starts — for counts and
 *   duplicate checks, which must see everything there is, not merely the first N.
 * - `readTopic`: from the beginning until `until` holds or the deadline
 *   passes — for waiting on something that is still to come.
 */
import type { Admin, IHeaders, Kafka } from 'kafkajs';
import { WORKERS } from '../../consumers/index.js';
import { groupAtEnd, type ReadMessage } from '../../streams/topic-reader.js';

export { groupAtEnd, readToEnd, type ReadMessage } from '../../streams/topic-reader.js';

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
        got.push({ partition, offset: message.offset, key: message.key?.toString() ?? null, value: message.value, headers: message.headers ?? {}, timestamp: Number(message.timestamp) });
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

/** A header's value as text (the first, when repeated). */
export function header(headers: IHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v[0]?.toString() : v.toString();
}

/**
 * True once `groupId` has committed every partition of `topic` up to its high
 * watermark. A topic written in transactions ends each partition with a
 * commit marker, which occupies an offset no consumer is handed: pass
 * `transactional` to accept a committed offset at that marker. That is a
 * guess (a partition can end with several markers, or aborted records): use
 * `groupAtEnd` for transactional topics.
 */
export async function groupCaughtUp(admin: import('kafkajs').Admin, groupId: string, topic: string, transactional = false): Promise<boolean> {
  const [ends, committed] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId, topics: [topic] })]);
  const byPartition = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
  return ends.every((e) => Number(e.high) === 0 || (byPartition.get(e.partition) ?? -1) >= Number(e.high) - (transactional ? 1 : 0));
}

/**
 * True once every worker of a running pipeline has consumed every input partition to its end.
 * Topics the workers write are transactional, so those are checked exactly with `groupAtEnd`.
 */
export async function workersCaughtUp(kafka: Kafka, admin: Admin, workers: ReadonlyArray<{ groupId: string; topics: readonly string[] }>, prefix: string): Promise<boolean> {
  const written = new Set(WORKERS.flatMap((d) => d.outputs.map((o) => `${prefix}${o}`)));
  for (const w of workers) {
    for (const t of w.topics) {
      const done = written.has(t) ? await groupAtEnd(kafka, admin, w.groupId, t) : await groupCaughtUp(admin, w.groupId, t);
      if (!done) return false;
    }
  }
  return true;
}

/** The consumer group that scores events (the preprocessor and scorer chained, the default) and the topic it commits on. */
export function scoringGroup(prefix: string): { groupId: string; topic: string } {
  return { groupId: `${prefix}loopline-preprocessor-scorer`, topic: `${prefix}events.client` };
}
