/**
 * The same three services in Docker, for machines with a Docker engine:
 * apache/kafka (KRaft), cassandra:5.0 and Confluent's schema registry on one
 * network. Used by the tests when a Docker engine answers.
 */
import { GenericContainer, Network, Wait, type StartedTestContainer } from 'testcontainers';
import type { StackAddresses } from '../../infra/local-stack/local-stack.js';

export const IMAGES = {
  kafka: 'apache/kafka:4.1.1',
  cassandra: 'cassandra:5.0.8',
  registry: 'confluentinc/cp-schema-registry:8.0.0',
};

export async function startContainers(): Promise<{ addresses: StackAddresses; stop: () => Promise<void> }> {
  const network = await new Network().start();
  const hostPort = 29092;
  const kafka = await new GenericContainer(IMAGES.kafka)
    .withNetwork(network)
    .withNetworkAliases('kafka')
    .withExposedPorts({ container: 9092, host: hostPort })
    .withEnvironment({
      KAFKA_NODE_ID: '1',
      KAFKA_PROCESS_ROLES: 'broker,controller',
      KAFKA_CONTROLLER_QUORUM_VOTERS: '1@kafka:29093',
      KAFKA_LISTENERS: 'INTERNAL://:19092,CONTROLLER://:29093,EXTERNAL://:9092',
      KAFKA_ADVERTISED_LISTENERS: `INTERNAL://kafka:19092,EXTERNAL://localhost:${hostPort}`,
      KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT',
      KAFKA_INTER_BROKER_LISTENER_NAME: 'INTERNAL',
      KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
      KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS: '1',
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
      KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false',
    })
    .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
    .withStartupTimeout(180_000)
    .start();
  const [cassandra, registry] = await Promise.all([
    new GenericContainer(IMAGES.cassandra)
      .withExposedPorts(9042)
      .withEnvironment({
        CASSANDRA_NUM_TOKENS: '1',
        MAX_HEAP_SIZE: '1G',
        HEAP_NEWSIZE: '200M',
        JVM_EXTRA_OPTS: '-Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.initial_token=0',
      })
      .withWaitStrategy(Wait.forLogMessage(/Starting listening for CQL clients/))
      .withStartupTimeout(180_000)
      .start(),
    new GenericContainer(IMAGES.registry)
      .withNetwork(network)
      .withExposedPorts(8081)
      .withEnvironment({
        SCHEMA_REGISTRY_HOST_NAME: 'schema-registry',
        SCHEMA_REGISTRY_LISTENERS: 'http://0.0.0.0:8081',
        SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS: 'PLAINTEXT://kafka:19092',
      })
      .withWaitStrategy(Wait.forHttp('/subjects', 8081))
      .withStartupTimeout(180_000)
      .start(),
  ]);
  const containers: StartedTestContainer[] = [registry, cassandra, kafka];
  return {
    addresses: {
      kafkaBrokers: [`${kafka.getHost()}:${hostPort}`],
      cassandraContactPoints: [`${cassandra.getHost()}:${cassandra.getMappedPort(9042)}`],
      cassandraLocalDataCenter: 'datacenter1',
      schemaRegistryUrl: `http://${registry.getHost()}:${registry.getMappedPort(8081)}`,
    },
    stop: async () => {
      for (const c of containers) await c.stop();
      await network.stop();
    },
  };
}
