/**
 * kafkajs 2.2.4's `sendMessages` (the body of every `send` and `sendBatch`, in
 * a transaction or not) with its retry bookkeeping kept per partition instead
 * of per broker. Installed by `patchKafkajs()` (streams/kafkajs-patch.ts, 4).
 *
 * Why: kafkajs remembers which *brokers* answered. When a request to one
 * broker fails (it died) and the retry finds that broker's partitions led by
 * another broker that had already answered for its own partitions, the retry
 * skips that broker, so those partitions' messages are never sent and the call
 * resolves as if they were. In a transaction the commit then succeeds without
 * them: events lost with every other output of their chunk committed. And a
 * partition that was written, then moved to a broker that had not answered, is
 * written a second time under new sequence numbers: a duplicate. Seen in the
 * cluster fault case (one of three brokers SIGKILLed): 37 predictions missing
 * from `predictions` even read_uncommitted, while their `predictions.by-event`
 * copies committed, some twice (tulios/kafkajs#1303 reports the loss outside
 * transactions).
 *
 * Here, besides the per-partition answers:
 * - each topic's messages are assigned to partitions once, at the first attempt
 *   with metadata, so a retry can neither move a keyless message into a
 *   partition already written nor send it twice;
 * - a partition the metadata gives no leader is an error to retry, not skipped
 *   (kafkajs's `findLeaderForPartitions` leaves it out silently);
 * - an attempt waits for all its requests to settle before the retry, so no
 *   request of one attempt is in flight when the next decides what to send.
 * Everything else is kafkajs's: sequence numbers taken under the broker lock
 * and given back when a request fails (the broker drops a resent batch it
 * already has), AddPartitionsToTxn before each produce, metadata refreshed on
 * the same errors, the same retrier.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

type Dict = Record<string, unknown>;

export interface SendDeps {
  logger: { debug(msg: string, extra?: Dict): void; error(msg: string, extra?: Dict): void };
  cluster: {
    refreshMetadataIfNecessary(): Promise<void>;
    refreshMetadata(): Promise<void>;
    addMultipleTargetTopics(topics: string[]): Promise<void>;
    findTopicPartitionMetadata(topic: string): Array<{ partitionId: number; leader?: number | null }>;
    findLeaderForPartitions(topic: string, partitions: number[]): Record<string, number[]>;
    findBroker(a: { nodeId: number }): Promise<BrokerLike>;
    isConnected(): boolean;
    connect(): Promise<void>;
    removeBroker(a: { host: string; port: number }): void;
  };
  partitioner: (a: { topic: string; partitionMetadata: unknown[]; message: unknown }) => number;
  eosManager: {
    acquireBrokerLock(b: BrokerLike): Promise<void>;
    releaseBrokerLock(b: BrokerLike): Promise<void>;
    isTransactional(): boolean;
    addPartitionsToTransaction(topicData: TopicData[]): Promise<void>;
    getSequence(topic: string, partition: number): number;
    updateSequence(topic: string, partition: number, increment: number): void;
    getTransactionalId(): string;
    getProducerId(): unknown;
    getProducerEpoch(): unknown;
  };
  retrier: <T>(fn: (bail: (e: unknown) => void, retryCount: number, retryTime: number) => Promise<T>) => Promise<T>;
}

interface BrokerLike {
  nodeId?: number;
  produce(a: Dict): Promise<{ topics: Array<{ topicName: string; partitions: Array<Dict & { partition: number }> }> }>;
}
interface TopicData {
  topic: string;
  partitions: Array<{ partition: number; messages: unknown[]; firstSequence?: number }>;
}
type Answer = Dict & { topicName: string; partition: number };

const { KafkaJSMetadataNotLoaded } = require('kafkajs/src/errors.js') as { KafkaJSMetadataNotLoaded: new (m: string) => Error };
const { staleMetadata } = require('kafkajs/src/protocol/error.js') as { staleMetadata: (e: unknown) => boolean };

export function createSendMessages({ logger, cluster, partitioner, eosManager, retrier }: SendDeps) {
  return async ({ acks, timeout, compression, topicMessages }: { acks: number; timeout?: number; compression?: number; topicMessages: Array<{ topic: string; messages: unknown[] }> }): Promise<Answer[]> => {
    /** Per topic, its messages by partition: fixed at the first attempt that has the topic's metadata. */
    const placed = new Map<string, Map<number, unknown[]>>();
    /** Per `topic\0partition`, the broker's answer: a partition with one is never sent again. */
    const answered = new Map<string, Answer>();
    const id = (topic: string, partition: number) => `${topic}\0${partition}`;

    const attempt = async (): Promise<void> => {
      await cluster.refreshMetadataIfNecessary();
      const perLeader = new Map<number, TopicData[]>();
      for (const { topic, messages } of topicMessages) {
        const partitionMetadata = cluster.findTopicPartitionMetadata(topic);
        if (partitionMetadata.length === 0) {
          logger.debug('Producing to topic without metadata', { topic });
          throw new KafkaJSMetadataNotLoaded('Producing to topic without metadata');
        }
        let byPartition = placed.get(topic);
        if (!byPartition) {
          byPartition = new Map();
          for (const message of messages) {
            const p = partitioner({ topic, partitionMetadata, message });
            byPartition.set(p, [...(byPartition.get(p) ?? []), message]);
          }
          placed.set(topic, byPartition);
        }
        const pending = [...byPartition.keys()].filter((p) => !answered.has(id(topic, p)));
        if (pending.length === 0) continue;
        const leaders = cluster.findLeaderForPartitions(topic, pending);
        const led = new Set(Object.values(leaders).flat());
        const leaderless = pending.filter((p) => !led.has(p));
        if (leaderless.length > 0) throw new KafkaJSMetadataNotLoaded(`no leader known for ${topic} partition(s) ${leaderless.join(', ')}`);
        for (const [nodeId, partitions] of Object.entries(leaders)) {
          const list = perLeader.get(Number(nodeId)) ?? [];
          list.push({ topic, partitions: partitions.map((partition) => ({ partition, messages: byPartition.get(partition)! })) });
          perLeader.set(Number(nodeId), list);
        }
      }

      const settled = await Promise.allSettled(
        [...perLeader].map(async ([nodeId, wanted]) => {
          const broker = await cluster.findBroker({ nodeId });
          await eosManager.acquireBrokerLock(broker);
          try {
            const topicData = wanted
              .map((t) => ({ topic: t.topic, partitions: t.partitions.filter((p) => !answered.has(id(t.topic, p.partition))) }))
              .filter((t) => t.partitions.length > 0);
            if (topicData.length === 0) return;
            if (eosManager.isTransactional()) await eosManager.addPartitionsToTransaction(topicData);
            for (const { topic, partitions } of topicData) {
              for (const entry of partitions) {
                entry.firstSequence = eosManager.getSequence(topic, entry.partition);
                eosManager.updateSequence(topic, entry.partition, entry.messages.length);
              }
            }
            let response: Awaited<ReturnType<BrokerLike['produce']>>;
            try {
              response = await broker.produce({
                transactionalId: eosManager.isTransactional() ? eosManager.getTransactionalId() : undefined,
                producerId: eosManager.getProducerId(),
                producerEpoch: eosManager.getProducerEpoch(),
                acks,
                timeout,
                compression,
                topicData,
              });
            } catch (e) {
              for (const { topic, partitions } of topicData) for (const entry of partitions) eosManager.updateSequence(topic, entry.partition, -entry.messages.length);
              throw e;
            }
            const answers = acks !== 0 ? response.topics.flatMap(({ topicName, partitions }) => partitions.map((p) => ({ topicName, ...p }))) : [];
            for (const { topic, partitions } of topicData) {
              for (const { partition } of partitions) answered.set(id(topic, partition), answers.find((a) => a.topicName === topic && a.partition === partition) ?? { topicName: topic, partition });
            }
          } finally {
            await eosManager.releaseBrokerLock(broker);
          }
        }),
      );
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
    };

    return retrier(async (bail, retryCount, retryTime) => {
      await cluster.addMultipleTargetTopics(topicMessages.map(({ topic }) => topic));
      try {
        await attempt();
        return acks !== 0 ? [...answered.values()] : [];
      } catch (err) {
        const e = err as { name?: string; host?: string; port?: number; message?: string; retriable?: boolean };
        if (e.name === 'KafkaJSConnectionClosedError') cluster.removeBroker({ host: e.host!, port: e.port! });
        if (!cluster.isConnected()) {
          logger.debug(`Cluster has disconnected, reconnecting: ${e.message}`, { retryCount, retryTime });
          await cluster.connect();
          await cluster.refreshMetadata();
          throw err;
        }
        if (staleMetadata(err) || e.name === 'KafkaJSMetadataNotLoaded' || e.name === 'KafkaJSConnectionError' || e.name === 'KafkaJSConnectionClosedError' || (e.name === 'KafkaJSProtocolError' && e.retriable)) {
          logger.error(`Failed to send messages: ${e.message}`, { retryCount, retryTime });
          await cluster.refreshMetadata();
          throw err;
        }
        logger.error(`${e.message}`, { retryCount, retryTime });
        if (e.retriable) throw err;
        bail(err);
        return [];
      }
    });
  };
}
