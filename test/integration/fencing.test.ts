// What fences a task's previous owner, on a real broker. The runtime reads a task's committed offsets
// only after fencing its previous owner (streams/runtime.ts, openTask); the fence is the transactional
// InitProducerId, and kafkajs 2.2.4 sends it at a producer's first transaction(), not at connect()
// (connect() asks only for an idempotent producer id). Pinned here: after the new owner's connect()
// alone, the previous owner can still commit records and offsets, so offsets read then would be stale
// and the new owner would process those records again (seen: duplicate predictions in the three-member
// test); after transaction() + abort(), which sends no EndTxn, the previous owner's commit fails as
// fenced, its records are aborted, and the offsets read are the last ones it really committed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { patchKafkajs } from '../../streams/kafkajs-patch.js';
import { readToEnd } from '../support/read-topic.js';
import { createTestEnv, type TestEnv } from '../support/fixtures.js';

patchKafkajs();
let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv('fencing');
});
afterAll(async () => env?.cleanup());

describe('fencing a task\'s previous owner', () => {
  it('takes the first transaction(), not connect(): only then can the old owner no longer commit', async () => {
    const topic = `${env.config.kafka.topicPrefix}fenced`;
    await env.admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    const groupId = `${env.config.kafka.topicPrefix}fencing-group`;
    const transactionalId = `${groupId}-${topic}-0`;
    const producer = () => env.kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1, retry: { initialRetryTime: 10, maxRetryTime: 1000, retries: 20 } });
    const committedOffset = async () => Number((await env.admin.fetchOffsets({ groupId, topics: [topic] }))[0]!.partitions[0]!.offset);
    /**
     * The committed offset once it reads `expected`, or what it reads after 30 s. A commit's offsets become
     * visible only when its markers are written, a moment after EndTxn returns (kafkajs cannot ask for stable
     * offsets, KIP-447), so a read at once can still show the previous value.
     */
    const settledOffset = async (expected: number) => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const offset = await committedOffset();
        if (offset === expected || Date.now() > deadline) return offset;
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    /** One transaction of the old owner: a record and the offset it covers, left open for the caller to end. */
    const openTransaction = async (owner: ReturnType<typeof producer>, value: string, offset: number) => {
      for (let attempt = 0; ; attempt++) {
        const tx = await owner.transaction();
        try {
          await tx.send({ topic, messages: [{ value }] });
          await tx.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: [{ partition: 0, offset: String(offset) }] }] });
          return tx;
        } catch (err) {
          // A topic this new may not be known to the transaction coordinator yet (kafkajs does not retry that).
          await tx.abort().catch(() => {});
          if (attempt >= 50) throw err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    };

    const old = producer();
    await old.connect();
    await (await openTransaction(old, 'committed-1', 1)).commit();
    expect(await settledOffset(1)).toBe(1);

    // 1. The next owner only connects: the old owner's open transaction still commits.
    const pending = await openTransaction(old, 'committed-2', 2);
    const next = producer();
    await next.connect();
    await expect(pending.commit()).resolves.toBeUndefined();
    expect(await settledOffset(2)).toBe(2);

    // 2. The next owner opens (and aborts) an empty transaction, as the runtime does: now the old owner is fenced.
    const late = await openTransaction(old, 'fenced-3', 3);
    await (await next.transaction()).abort();
    await expect(late.commit()).rejects.toThrow(/epoch|fenced/i);
    expect(await committedOffset()).toBe(2);
    await old.disconnect().catch(() => {});

    // The next owner goes on from offset 2; the fenced record is aborted, invisible to read_committed readers.
    const tx = await next.transaction();
    await tx.send({ topic, messages: [{ value: 'next-3' }] });
    await tx.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: [{ partition: 0, offset: '3' }] }] });
    await tx.commit();
    await next.disconnect();
    // Once the offset shows the commit, its markers are written: the read sees the whole partition.
    expect(await settledOffset(3)).toBe(3);
    const read = await readToEnd(env.kafka, env.admin, topic, 30_000);
    expect(read.map((m) => m.value!.toString())).toEqual(['committed-1', 'committed-2', 'next-3']);
  }, 120_000);
});
