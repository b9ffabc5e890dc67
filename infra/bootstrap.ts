/**
 * Brings a cluster to what Loopline needs, idempotently: topics from the
 * catalogue, CQL migrations, and schemas registered with their compatibility.
 * Safe to run on every start and from several processes at once.
 */
import type { LooplineConfig } from '../config/config.js';
import { createRegistryClient } from '../schemas/registry-client.js';
import { registerSchemas, type RegisteredSubject } from '../schemas/register.js';
import { createCassandraClient } from '../store/cassandra.js';
import { migrate, type MigrateResult } from '../store/migrate.js';
import { createKafka } from '../streams/kafka.js';
import type { Logger } from '../streams/logger.js';
import { createTopicNames, ensureTopics, type EnsureTopicsResult } from '../streams/topics.js';

export interface BootstrapResult {
  topics: EnsureTopicsResult;
  migrations: MigrateResult;
  subjects: RegisteredSubject[];
}

export async function bootstrapInfra(config: LooplineConfig, logger: Logger): Promise<BootstrapResult> {
  const admin = createKafka(config.kafka, logger, 'bootstrap').admin();
  const cql = createCassandraClient(config.cassandra, { keyspace: false });
  try {
    await admin.connect();
    const topics = await ensureTopics(admin, createTopicNames(config.kafka.topicPrefix));
    for (const m of topics.mismatched) logger.warn(m, 'topic exists with a different partition count; left unchanged');
    const migrations = await migrate(cql, config.cassandra);
    const registry = createRegistryClient({ url: config.registry.url, basicAuth: config.registry.basicAuth ?? undefined });
    const subjects = await registerSchemas(registry, createTopicNames(config.kafka.topicPrefix));
    logger.info(
      { topicsCreated: topics.created.length, migrationsApplied: migrations.applied, subjects: subjects.length },
      'infrastructure ready',
    );
    return { topics, migrations, subjects };
  } finally {
    await admin.disconnect().catch(() => {});
    await cql.shutdown().catch(() => {});
  }
}
