/**
 * Brings a cluster to what Loopline needs, idempotently: topics from the
 * catalogue, the workers' ACLs for the topic prefix (when Kafka is reached
 * over SASL, so an authorizer may be in place; streams/acls.ts), CQL
 * migrations, and schemas registered with their compatibility. Safe to run on
 * every start and from several processes at once. Run it as an admin
 * principal: it creates topics and ACLs.
 */
import type { Admin } from 'kafkajs';
import type { LooplineConfig } from '../config/config.js';
import { createRegistryClient } from '../schemas/registry-client.js';
import { registerSchemas, type RegisteredSubject } from '../schemas/register.js';
import { createCassandraClient } from '../store/cassandra.js';
import { migrate, type MigrateResult } from '../store/migrate.js';
import { grantWorkerAcls } from './acls.js';
import { createKafka } from '../streams/kafka.js';
import type { Logger } from '../streams/logger.js';
import { createTopicNames, ensureTopics, type EnsureTopicsResult } from '../streams/topics.js';

export interface BootstrapResult {
  topics: EnsureTopicsResult;
  /** ACL bindings granted to the workers' principals (0 without SASL or without an authorizer). */
  acls: number;
  migrations: MigrateResult;
  subjects: RegisteredSubject[];
}

export async function bootstrapInfra(config: LooplineConfig, logger: Logger): Promise<BootstrapResult> {
  const admin = createKafka(config.kafka, logger, 'bootstrap').admin();
  const cql = createCassandraClient(config.cassandra, { keyspace: false });
  try {
    await admin.connect();
    const topics = await ensureTopics(admin, createTopicNames(config.kafka.topicPrefix), undefined, config.kafka);
    for (const m of topics.mismatched) logger.warn(m, 'topic exists with a different partition count; left unchanged');
    const acls = config.kafka.sasl ? await grantAcls(admin, config.kafka.topicPrefix, logger) : 0;
    const migrations = await migrate(cql, config.cassandra);
    const registry = createRegistryClient(config.registry);
    const subjects = await registerSchemas(registry, createTopicNames(config.kafka.topicPrefix));
    logger.info(
      { topicsCreated: topics.created.length, acls, migrationsApplied: migrations.applied, subjects: subjects.length },
      'infrastructure ready',
    );
    return { topics, acls, migrations, subjects };
  } finally {
    await admin.disconnect().catch(() => {});
    await cql.shutdown().catch(() => {});
  }
}

/** A cluster without an authorizer has nothing to grant; a principal that may not alter ACLs leaves them to the operator. */
async function grantAcls(admin: Admin, prefix: string, logger: Logger): Promise<number> {
  try {
    return await grantWorkerAcls(admin, prefix);
  } catch (err) {
    const type = (err as { type?: string }).type;
    if (type === 'SECURITY_DISABLED') {
      logger.info('the brokers have no authorizer; worker ACLs not needed');
      return 0;
    }
    if (type === 'CLUSTER_AUTHORIZATION_FAILED') {
      logger.warn({ principal: 'this client' }, 'not allowed to create ACLs; grant the workers\' ACLs (streams/acls.ts) as an admin');
      return 0;
    }
    throw err;
  }
}
