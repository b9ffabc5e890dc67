// readToEnd and groupAtEnd (test/support/read-topic.ts) on a real broker:
// readToEnd returns every committed message of every partition and stops
// exactly at the end offsets, also when a partition ends with a transaction
// marker (which no consumer is handed) or holds aborted records; it never
// waits for an idle time or a count. groupAtEnd tells exactly whether a group
// has consumed everything a read_committed consumer would be handed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, type TestEnv } from '../support/fixtures.js';
import { groupAtEnd, groupCaughtUp, readToEnd } from '../support/read-topic.js';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv('readend');
});
afterAll(async () => env?.cleanup());

async function topic(name: string, numPartitions: number): Promise<string> {
  const t = `${env.config.kafka.topicPrefix}${name}`;
  await env.admin.createTopics({ topics: [{ topic: t, numPartitions }], waitForLeaders: true });
  return t;
}

const values = (ms: Array<{ partition: number; value: Buffer | null }>) => ms.map((m) => `${m.partition}:${m.value!.toString()}`).sort();

describe('readToEnd', () => {
  it('reads committed transactions to the end offsets, skipping aborted records and the markers after them', async () => {
    const t = await topic('txn', 2);
    const producer = env.kafka.producer({ transactionalId: `${t}-writer`, idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const send = async (commit: boolean, messages: Array<[number, string]>) => {
      const tx = await producer.transaction();
      await tx.send({ topic: t, messages: messages.map(([partition, value]) => ({ partition, value })) });
      await (commit ? tx.commit() : tx.abort());
    };
    await send(true, [[0, 'a'], [0, 'b'], [1, 'c']]);
    await send(false, [[0, 'aborted-1'], [1, 'aborted-2']]);
    await send(true, [[1, 'd']]);
    await send(false, [[0, 'aborted-3']]); // partition 0 now ends with an aborted record and its marker
    await producer.disconnect();

    const ends = await env.admin.fetchTopicOffsets(t);
    const started = Date.now();
    const got = await readToEnd(env.kafka, env.admin, t, 30_000);
    expect(values(got)).toEqual(['0:a', '0:b', '1:c', '1:d']);
    // The last message handed over is not at the end offset: what follows it are markers and aborted records.
    for (const e of ends) {
      const last = Math.max(...got.filter((m) => m.partition === e.partition).map((m) => Number(m.offset)));
      expect(last + 1).toBeLessThan(Number(e.high));
    }
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('reads a plain topic to its end, and returns at once for an empty one', async () => {
    const t = await topic('plain', 3);
    const producer = env.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic: t, messages: Array.from({ length: 30 }, (_, i) => ({ partition: i % 3, value: String(i) })) });
    await producer.disconnect();
    const got = await readToEnd(env.kafka, env.admin, t);
    expect(got).toHaveLength(30);
    expect(new Set(got.map((m) => m.value!.toString())).size).toBe(30);
    expect(await readToEnd(env.kafka, env.admin, await topic('empty', 2))).toEqual([]);
  });

  it('groupAtEnd: a group is at the end once past the last committed record, whatever markers and aborted records follow it', async () => {
    const t = await topic('atend', 1);
    const producer = env.kafka.producer({ transactionalId: `${t}-writer`, idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const committed = await producer.transaction();
    await committed.send({ topic: t, messages: [{ value: 'a' }, { value: 'b' }] }); // offsets 0, 1; commit marker 2
    await committed.commit();
    const aborted = await producer.transaction();
    await aborted.send({ topic: t, messages: [{ value: 'x' }] }); // offset 3, never handed over; abort marker 4
    await aborted.abort();
    await producer.disconnect();
    expect((await env.admin.fetchTopicOffsets(t))[0]!.high).toBe('5');

    const at = async (offset: string) => {
      const groupId = `${t}-group-${offset}`;
      await env.admin.setOffsets({ groupId, topic: t, partitions: [{ partition: 0, offset }] });
      return { exact: await groupAtEnd(env.kafka, env.admin, groupId, t), guess: await groupCaughtUp(env.admin, groupId, t, true) };
    };
    // Past 'b': at the end, though two offsets lie beyond (the guess says no).
    expect(await at('2')).toEqual({ exact: true, guess: false });
    // Before 'b': not at the end.
    expect((await at('1')).exact).toBe(false);
    expect(await groupAtEnd(env.kafka, env.admin, `${t}-nobody`, t)).toBe(false);
  });
});
