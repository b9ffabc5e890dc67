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
import { createTopicNames, ensureTopics, TOPICS, type TopicNames, type TopicSpec } from '../../streams/topics.js';

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
   * Partitions of every catalogue topic that has more than one and is not
   * co-partitioned (events.client, features.updates, features.vectors,
   * predictions, predictions.labeled), instead of the catalogue's: they are
   * created with this count before the bootstrap, which leaves existing topics
   * as they are. The join's co-partitioned topics keep the catalogue's count
   * (the bootstrap refuses them at any other).
   */
  partitions?: number;
}

export async function createTestEnv(label: string, options: TestEnvOptions = {}): Promise<TestEnv> {
  const id = crypto.randomBytes(4).toString('hex');
  const config = loadConfig({
    ...process.env,
    LOOPLINE_TOPIC_PREFIX: `t-${label}-${id}.`,
    LOOPLINE_CASSANDRA_KEYSPACE: `t_${label.replace(/[^a-z0-9]/g, '_')}_${id}`.slice(0, 48),
    LOOPLINE_LOG_LEVEL: process.env.LOOPLINE_TEST_LOG_LEVEL ?? 'warn',
  });
  const logger = createLogger({ level: config.logLevel, name: `test-${label}` });
  if (options.partitions !== undefined) await createPartitionedTopics(config, logger, options.partitions);
  const bootstrap = await bootstrapInfra(config, logger);
  const kafka = createKafka(config.kafka, logger, `test-${label}`);
  const admin = kafka.admin();
  await admin.connect();
  const cql = createCassandraClient(config.cassandra);
  await cql.connect();
  const registry = createRegistryClient(config.registry);
  const names = createTopicNames(config.kafka.topicPrefix);
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

async function createPartitionedTopics(config: LooplineConfig, logger: Logger, partitions: number): Promise<void> {
  const admin = createKafka(config.kafka, logger, 'test-topics').admin();
  await admin.connect();
  try {
    const specs = (TOPICS as readonly TopicSpec[]).filter((t) => t.partitions > 1 && !t.copartition).map((t) => ({ ...t, partitions }));
    const r = await ensureTopics(admin, createTopicNames(config.kafka.topicPrefix), specs);
    if (r.mismatched.length) throw new Error(`topics exist with other partition counts: ${r.mismatched.map((m) => `${m.topic} (${m.partitions})`).join(', ')}`);
  } finally {
    await admin.disconnect().catch(() => {});
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
