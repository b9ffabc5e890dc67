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
import { WORKERS } from '../../consumers/index.js';

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
  if (r.timedOut) throw new Error(`reading ${topic} to its end offsets timed out after ${timeoutMs} ms (${r.behind})`);
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
  if (pending().length === 0) return { messages: got, timedOut: false, behind: '' };
  const groupId = `reader-${topic}-${process.hrtime.bigint()}`;
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
        const limit = from.get(batch.partition);
        const high = end.get(batch.partition);
        if (limit === undefined || high === undefined) return;
        for (const m of batch.messages) {
          const offset = BigInt(m.offset);
          if (offset < limit || offset >= high) continue;
          got.push({ partition: batch.partition, offset: m.offset, key: m.key?.toString() ?? null, value: m.value, headers: m.headers ?? {} });
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
