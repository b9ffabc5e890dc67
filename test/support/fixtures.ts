/**
 * Per-test-file isolation on shared real servers: a fresh topic prefix and a
 * fresh keyspace, bootstrapped like production (on a secured cluster: with the
 * workers' ACLs for that prefix), dropped afterwards. The test itself acts as
 * whatever LOOPLINE_* says: on the secure stack, the admin principal.
 */
import crypto from 'node:crypto';
import type { Admin, Kafka } from 'kafkajs';
import { loadConfig, type LooplineConfig } from '../../config/config.js';
import { bootstrapInfra, type BootstrapResult } from '../../infra/bootstrap.js';
import { createCodec, type Codec } from '../../schemas/codec.js';
import { createRegistryClient, type RegistryClient } from '../../schemas/registry-client.js';
import { createCassandraClient, type CassandraClient } from '../../store/cassandra.js';
import { revokeWorkerAcls } from '../../infra/acls.js';
import { createKafka } from '../../streams/kafka.js';
import { createLogger, type Logger } from '../../streams/logger.js';
import { createTopicNames, ensureTopics, TOPICS, type TopicName, type TopicNames, type TopicSpec } from '../../streams/topics.js';

export interface TestEnv {
  id: string;
  config: LooplineConfig;
  logger: Logger;
  kafka: Kafka;
  admin: Admin;
  cql: CassandraClient;
  registry: RegistryClient;
  codec: Codec;
  names: TopicNames;
  bootstrap: BootstrapResult;
  cleanup(): Promise<void>;
}

export interface TestEnvOptions {
  /**
   * Partition counts that differ from the catalogue's, for tests whose members need more
   * partitions to share: per topic (e.g. `{ 'events.client': 6 }`), or one count for every
   * catalogue topic that has more than one and is not co-partitioned (events.client,
   * features.updates, features.vectors, predictions, predictions.labeled; the join's
   * co-partitioned topics keep the catalogue's count, the bootstrap refuses any other).
   * These topics are created first, and bootstrapping leaves existing topics as they are.
   */
  partitions?: number | Partial<Record<TopicName, number>>;
  /** Environment to read the servers' addresses from. Default process.env. */
  env?: NodeJS.ProcessEnv;
}

export async function createTestEnv(label: string, options: TestEnvOptions = {}): Promise<TestEnv> {
  const id = crypto.randomBytes(4).toString('hex');
  const config = loadConfig({
    ...(options.env ?? process.env),
    LOOPLINE_TOPIC_PREFIX: `t-${label}-${id}.`,
    LOOPLINE_CASSANDRA_KEYSPACE: `t_${label.replace(/[^a-z0-9]/g, '_')}_${id}`.slice(0, 48),
    LOOPLINE_LOG_LEVEL: process.env.LOOPLINE_TEST_LOG_LEVEL ?? 'warn',
  });
  const logger = createLogger({ level: config.logLevel, name: `test-${label}` });
  const kafka = createKafka(config.kafka, logger, `test-${label}`);
  const admin = kafka.admin();
  await admin.connect();
  const names = createTopicNames(config.kafka.topicPrefix);
  const counts: Partial<Record<TopicName, number>> = typeof options.partitions === 'number'
    ? Object.fromEntries((TOPICS as readonly TopicSpec[]).filter((t) => t.partitions > 1 && !t.copartition).map((t) => [t.name, options.partitions]))
    : options.partitions ?? {};
  const wider = Object.entries(counts);
  if (wider.length > 0) {
    const specs = TOPICS.filter((t) => counts[t.name] !== undefined).map((t) => ({ ...t, partitions: counts[t.name]! }));
    if (specs.length !== wider.length) throw new Error(`createTestEnv: unknown topic in partitions ${JSON.stringify(options.partitions)}`);
    // Right after CreateTopics a KRaft broker may still answer UNKNOWN_TOPIC_OR_PARTITION for a
    // while (to the leader wait or to bootstrap's metadata read): wait until the metadata is there.
    await ensureTopics(admin, names, specs, config.kafka).catch(() => {});
    await waitFor('the wider topics to have leaders', async () => {
      await ensureTopics(admin, names, specs, config.kafka);
      const meta = await admin.fetchTopicMetadata({ topics: specs.map((t) => names.physical(t.name)) });
      return meta.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0));
    }, 30_000, 250);
  }
  const bootstrap = await bootstrapWithRetry(config, logger);
  const cql = createCassandraClient(config.cassandra);
  await cql.connect();
  const registry = createRegistryClient(config.registry);
  return {
    id, config, logger, kafka, admin, cql, registry, codec: createCodec(registry), names, bootstrap,
    async cleanup() {
      const mine = (await admin.listTopics()).filter((t) => t.startsWith(config.kafka.topicPrefix));
      if (mine.length > 0) await admin.deleteTopics({ topics: mine }).catch(() => {});
      if (config.kafka.sasl) await revokeWorkerAcls(admin, config.kafka.topicPrefix).catch(() => {});
      await admin.disconnect().catch(() => {});
      await cql.execute(`DROP KEYSPACE IF EXISTS ${config.cassandra.keyspace}`).catch(() => {});
      await cql.shutdown().catch(() => {});
    },
  };
}

/**
 * bootstrapInfra, asked again when the broker answers UNKNOWN_TOPIC_OR_PARTITION right after
 * creating the topics (kafkajs's leader wait retries only LEADER_NOT_AVAILABLE; seen on the
 * KRaft broker while it is busy, e.g. deleting the previous test's topics). It is idempotent.
 */
async function bootstrapWithRetry(config: LooplineConfig, logger: Logger): Promise<BootstrapResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await bootstrapInfra(config, logger);
    } catch (err) {
      if (attempt >= 5 || (err as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw err;
      logger.warn({ attempt }, 'bootstrap met UNKNOWN_TOPIC_OR_PARTITION right after creating topics; again');
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

/** Polls `check` until it returns a value other than undefined/false, or fails with `what` at the deadline. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 60_000, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
