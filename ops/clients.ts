/**
 * The connections an operator command opens, built one way for every command
 * from the compiled configuration (brokers with their TLS/SASL, Cassandra
 * with its credentials, the schema registry with `config.registry.basicAuth`),
 * so no command passes credentials differently from another.
 *
 *   const c = openClients(loadConfig(), logger, 'status');
 *   await c.admin.connect(); …; await c.close();
 */
import type { Admin, Kafka } from 'kafkajs';
import type { LooplineConfig } from '../config/config.js';
import { createCodec, type Codec } from '../schemas/codec.js';
import { createRegistryClient, type RegistryClient } from '../schemas/registry-client.js';
import { createCassandraClient, type CassandraClient } from '../store/cassandra.js';
import { createKafka } from '../streams/kafka.js';
import type { Logger } from '../streams/logger.js';
import { createTopicNames, type TopicNames } from '../streams/topics.js';

/** The registry client of a configuration: its URL (userinfo in it included), credentials, token and TLS files. */
export function registryClientOf(config: LooplineConfig, timeoutMs?: number): RegistryClient {
  return createRegistryClient({ ...config.registry, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
}

export interface OperatorClients {
  config: LooplineConfig;
  kafka: Kafka;
  admin: Admin;
  cql: CassandraClient;
  registry: RegistryClient;
  codec: Codec;
  names: TopicNames;
  /** Disconnects whatever was connected; never throws. */
  close(): Promise<void>;
}

/** Builds the clients without connecting any (a status check must survive a server that is down). */
export function openClients(config: LooplineConfig, logger: Logger, purpose: string): OperatorClients {
  const kafka = createKafka(config.kafka, logger, purpose);
  const admin = kafka.admin();
  const cql = createCassandraClient(config.cassandra);
  const registry = registryClientOf(config);
  return {
    config,
    kafka,
    admin,
    cql,
    registry,
    codec: createCodec(registry),
    names: createTopicNames(config.kafka.topicPrefix),
    async close() {
      await admin.disconnect().catch(() => {});
      await cql.shutdown().catch(() => {});
    },
  };
}
