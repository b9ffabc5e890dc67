import { createRequire } from 'node:module';
import { describe, expect, it, vi } from 'vitest';
import { createSendMessages, type SendDeps } from './kafkajs-send.js';
import { cachingFindCoordinator, coordinatorAwareRequest, coordinatorCacheSize, forgetCoordinators, normalizeAbortedTransactions, PATCHED_BROKER_METHODS, PATCHED_FETCH_VERSIONS, patchKafkajs, patchStats, sendPatched } from './kafkajs-patch.js';

const require = createRequire(import.meta.url);

describe('kafkajs patch', () => {
  it('fits the installed kafkajs: the internals it wraps exist, and it applies once', () => {
    const Cluster = require('kafkajs/src/cluster/index.js') as { prototype: Record<string, unknown> };
    const Broker = require('kafkajs/src/broker/index.js') as { prototype: Record<string, unknown> };
    expect(typeof Cluster.prototype.findGroupCoordinator).toBe('function');
    for (const m of PATCHED_BROKER_METHODS) expect(typeof Broker.prototype[m]).toBe('function');
    patchKafkajs();
    const once = Cluster.prototype.findGroupCoordinator;
    patchKafkajs();
    expect(Cluster.prototype.findGroupCoordinator).toBe(once);
    // The eosManager still calls cluster.findGroupCoordinator before each transaction request (what the cache saves).
    const eos = require('fs').readFileSync(require.resolve('kafkajs/src/producer/eosManager/index.js'), 'utf8') as string;
    expect(eos).toMatch(/cluster\.findGroupCoordinator\(\{\s*groupId: transactionalId,\s*coordinatorType: COORDINATOR_TYPES\.TRANSACTION/);
  });

  it('asks FindCoordinator once per id, then answers from the cache until the coordinator fails', async () => {
    forgetCoordinators();
    let lookups = 0;
    const cluster = { findBroker: async ({ nodeId }: { nodeId: number }) => ({ nodeId }) };
    const find = cachingFindCoordinator<typeof cluster>(async () => {
      lookups++;
      return { nodeId: 7 };
    });
    const args = { groupId: 'g-task-0', coordinatorType: 1 };
    expect(await find.call(cluster, args)).toEqual({ nodeId: 7 });
    expect(await find.call(cluster, args)).toEqual({ nodeId: 7 });
    expect(await find.call(cluster, { groupId: 'g', coordinatorType: 0 })).toEqual({ nodeId: 7 });
    expect(lookups).toBe(2);
    expect(coordinatorCacheSize()).toBe(2);

    // A request to the coordinator fails with NOT_COORDINATOR: the entry goes, the next call asks again.
    const endTxn = coordinatorAwareRequest('endTxn', async () => {
      throw Object.assign(new Error('not coordinator'), { type: 'NOT_COORDINATOR' });
    });
    await expect(endTxn.call({}, { transactionalId: 'g-task-0' })).rejects.toThrow('not coordinator');
    await find.call(cluster, args);
    expect(lookups).toBe(3);

    // So does a consumer group's own request (the group coordinator moved): its next lookup asks again.
    const heartbeat = coordinatorAwareRequest('heartbeat', async () => {
      throw Object.assign(new Error('This is not the correct coordinator for this group'), { type: 'NOT_COORDINATOR' });
    });
    await expect(heartbeat.call({}, { groupId: 'g', groupGenerationId: 1, memberId: 'm' })).rejects.toThrow('not the correct coordinator');
    await find.call(cluster, { groupId: 'g', coordinatorType: 0 });
    await find.call(cluster, { groupId: 'g' });
    expect(lookups).toBe(4);
  });

  it('retries CONCURRENT_TRANSACTIONS on AddOffsetsToTxn quickly, and passes other errors through', async () => {
    let calls = 0;
    const before = patchStats.concurrentRetries;
    const addOffsets = coordinatorAwareRequest('addOffsetsToTxn', async () => {
      if (++calls < 4) throw Object.assign(new Error('concurrent'), { type: 'CONCURRENT_TRANSACTIONS' });
      return 'ok';
    });
    expect(await addOffsets.call({}, { transactionalId: 't' })).toBe('ok');
    expect(calls).toBe(4);
    expect(patchStats.concurrentRetries - before).toBe(3);
    const endTxn = coordinatorAwareRequest('endTxn', async () => {
      throw Object.assign(new Error('concurrent'), { type: 'CONCURRENT_TRANSACTIONS' });
    });
    await expect(endTxn.call({}, { transactionalId: 't' })).rejects.toThrow('concurrent'); // EndTxn is not retried here
  });

  describe('read_committed filtering of aborted records', () => {
    const filter = require('kafkajs/src/consumer/filterAbortedMessages.js') as (a: { messages: unknown[]; abortedTransactions: unknown[] }) => Array<{ offset: string }>;
    const rec = (offset: number, producerId: string) => ({ offset: String(offset), key: Buffer.from('k'), isControlRecord: false, batchContext: { producerId, inTransaction: true } });
    const marker = (offset: number, producerId: string, type: 0 | 1) => ({ offset: String(offset), key: Buffer.from([0, 0, 0, type]), isControlRecord: true, batchContext: { producerId, inTransaction: true } });
    const kept = (messages: unknown[], aborted: unknown[]) => filter({ messages, abortedTransactions: aborted }).filter((m) => !(m as unknown as { isControlRecord: boolean }).isControlRecord).map((m) => Number(m.offset));

    // The log of predictions.by-event partition 0 in the fault suite's kafka-sigterm-restart case (offsets 332-339):
    // producers 371 and 368 both aborted when the broker restarted, then wrote their retries and committed.
    const log = [rec(332, '371'), rec(333, '368'), marker(334, '368', 0), marker(335, '371', 0), rec(336, '368'), rec(337, '371'), marker(338, '368', 1), marker(339, '371', 1)];
    // The broker lists aborted transactions in the order of their ABORT markers, not of their first offsets.
    const brokerList = [{ producerId: '368', firstOffset: '333' }, { producerId: '371', firstOffset: '332' }];

    it('shows the kafkajs bug: with the broker\'s order, an aborted record is delivered', () => {
      expect(kept(log, brokerList)).toEqual([332, 336, 337]);
    });

    it('drops exactly the aborted records once the list is normalized', () => {
      expect(normalizeAbortedTransactions(log, brokerList)).toEqual([{ producerId: '371', firstOffset: '332' }, { producerId: '368', firstOffset: '333' }]);
      expect(kept(log, normalizeAbortedTransactions(log, brokerList))).toEqual([336, 337]);
    });

    it('activates every transaction that began before the fetch, not one per record', () => {
      // The fetch starts at 20; both transactions began earlier (10 and 12); 20 and 21 belong to them.
      const fetched = [rec(20, 'b'), rec(21, 'a'), marker(22, 'a', 0), marker(23, 'b', 0), rec(24, 'a')];
      const aborted = [{ producerId: 'a', firstOffset: '10' }, { producerId: 'b', firstOffset: '12' }];
      expect(kept(fetched, aborted)).toEqual([20, 24]); // kafkajs as shipped: 20 leaks
      expect(kept(fetched, normalizeAbortedTransactions(fetched, aborted))).toEqual([24]);
    });

    it('keeps committed and non-transactional records, and a producer\'s later transactions', () => {
      const fetched = [rec(1, 'a'), marker(2, 'a', 0), rec(3, 'a'), marker(4, 'a', 1), { ...rec(5, 'x'), batchContext: { producerId: 'x', inTransaction: false } }, rec(6, 'a'), marker(7, 'a', 0)];
      const aborted = [{ producerId: 'a', firstOffset: '6' }, { producerId: 'a', firstOffset: '1' }];
      expect(kept(fetched, normalizeAbortedTransactions(fetched, aborted))).toEqual([3, 5]);
      expect(normalizeAbortedTransactions(fetched, [])).toEqual([]);
    });

    it('is wired into every fetch response version that carries aborted transactions', async () => {
      patchKafkajs();
      for (const v of PATCHED_FETCH_VERSIONS) {
        const mod = require(`kafkajs/src/protocol/requests/fetch/v${v}/response.js`) as { decode: { normalizesAbortedTransactions?: boolean } };
        expect(mod.decode.normalizesAbortedTransactions).toBe(true);
      }
    });
  });

  describe('a send when a broker dies (4)', () => {
    const original = require('kafkajs/src/producer/sendMessages.js') as unknown;
    const { KafkaJSConnectionError } = require('kafkajs/src/errors.js') as { KafkaJSConnectionError: new (m: string) => Error };
    const createRetry = require('kafkajs/src/retry/index.js') as (c: object) => SendDeps['retrier'];

    /**
     * Two topics, partitions 0 and 1 each. Broker 1 leads t/0 and u/0; broker 2 leads t/1 and u/1 and dies at
     * its first produce; the refreshed metadata then names broker 1 leader of everything (what one dead broker
     * of three looks like to one send). `moves` also moves u/0 to broker 3 on the refresh, a partition already
     * written. Returns what each broker was sent (`topic/partition:firstSequence`) and the call's answer.
     */
    async function run(create: (d: SendDeps) => (a: { acks: number; topicMessages: Array<{ topic: string; messages: unknown[] }> }) => Promise<unknown[]>, moves = false) {
      let refreshed = false;
      const leaderOf = (topic: string, partition: number) => (!refreshed ? (partition === 0 ? 1 : 2) : moves && topic === 'u' && partition === 0 ? 3 : 1);
      const sequences = new Map<string, number>();
      const written: string[] = [];
      const broker = (nodeId: number) => ({
        nodeId,
        async produce({ topicData }: { topicData: Array<{ topic: string; partitions: Array<{ partition: number; messages: unknown[]; firstSequence: number }> }> }) {
          if (nodeId === 2) throw new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.2:25092');
          for (const t of topicData) for (const p of t.partitions) written.push(`${t.topic}/${p.partition}:${p.firstSequence}`);
          return { topics: topicData.map((t) => ({ topicName: t.topic, partitions: t.partitions.map((p) => ({ partition: p.partition, errorCode: 0, baseOffset: '0' })) })) };
        },
      });
      const brokers = new Map([1, 2, 3].map((n) => [n, broker(n)]));
      const deps: SendDeps = {
        logger: { debug() {}, error() {} },
        cluster: {
          async refreshMetadataIfNecessary() {},
          async refreshMetadata() { refreshed = true; },
          async addMultipleTargetTopics() {},
          findTopicPartitionMetadata: (topic) => [0, 1].map((partitionId) => ({ partitionId, leader: leaderOf(topic, partitionId) })),
          findLeaderForPartitions(topic, partitions) {
            const out: Record<string, number[]> = {};
            for (const p of partitions) (out[leaderOf(topic, Number(p))] ??= []).push(Number(p));
            return out;
          },
          findBroker: async ({ nodeId }) => brokers.get(Number(nodeId))!,
          isConnected: () => true,
          async connect() {},
          removeBroker() {},
        },
        partitioner: ({ message }) => (message as { p: number }).p,
        eosManager: {
          async acquireBrokerLock() {},
          async releaseBrokerLock() {},
          isTransactional: () => false,
          async addPartitionsToTransaction() {},
          getSequence: (topic, partition) => sequences.get(`${topic}/${partition}`) ?? 0,
          updateSequence: (topic, partition, n) => void sequences.set(`${topic}/${partition}`, (sequences.get(`${topic}/${partition}`) ?? 0) + n),
          getTransactionalId: () => 'tx',
          getProducerId: () => 1,
          getProducerEpoch: () => 0,
        },
        retrier: createRetry({ initialRetryTime: 1, retries: 3 }),
      };
      const messages = [0, 1].map((p) => ({ p, value: `m${p}` }));
      const answer = await create(deps)({ acks: -1, topicMessages: [{ topic: 't', messages }, { topic: 'u', messages }] });
      return { written: written.sort(), answered: answer.length };
    }

    it('shows the kafkajs bug: a partition whose leader moved to a broker that had answered is never sent, and one written is sent again', async () => {
      const shipped = await run(original as never);
      expect(shipped.written).toEqual(['t/0:0', 'u/0:0']); // t/1 and u/1 lost, and the send resolved
      const moved = await run(original as never, true);
      expect(moved.written).toEqual(['t/0:0', 'u/0:0', 'u/0:1']); // t/1 and u/1 lost; u/0 written twice, the copy under a new sequence
    });

    it('sends every partition exactly once, after the broker that led it died', async () => {
      expect(await run(createSendMessages)).toEqual({ written: ['t/0:0', 't/1:0', 'u/0:0', 'u/1:0'], answered: 4 });
      expect(await run(createSendMessages, true)).toEqual({ written: ['t/0:0', 't/1:0', 'u/0:0', 'u/1:0'], answered: 4 });
    });

    it('is what every producer created after patchKafkajs() sends with, once per process', async () => {
      patchKafkajs();
      expect(sendPatched()).toBe(true);
      const installed = require('kafkajs/src/index.js').prototype.producer as unknown;
      // A test runner evaluates this module again for the next test file; require's cache (kafkajs) stays.
      vi.resetModules();
      const again = (await import('./kafkajs-patch.js')) as typeof import('./kafkajs-patch.js');
      again.patchKafkajs();
      expect(require('kafkajs/src/index.js').prototype.producer).toBe(installed);
      expect(again.sendPatched()).toBe(true);
      const messageProducer = require.cache[require.resolve('kafkajs/src/producer/messageProducer.js')]!;
      expect(messageProducer.loaded).toBe(true);
      const { Kafka } = require('kafkajs') as typeof import('kafkajs');
      const Client = require('kafkajs/src/index.js') as unknown;
      expect(Kafka).toBe(Client);
      const producer = new Kafka({ brokers: ['127.0.0.1:9'], logLevel: 0 }).producer({ idempotent: true });
      expect(typeof producer.sendBatch).toBe('function');
      expect(String(Kafka.prototype.producer)).not.toMatch(/warnOfDefaultPartitioner/);
    });
  });
});
