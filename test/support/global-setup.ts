/**
 * Vitest global setup of the integration project: acquires real servers once
 * per run and publishes their addresses through LOOPLINE_* variables, which
 * test files read with loadConfig() like any Loopline process.
 */
import { acquireServices, type TestServices } from './services.js';

let services: TestServices | null = null;

export async function setup(): Promise<void> {
  services = await acquireServices((m) => console.log(`[services] ${m}`));
  const a = services.addresses;
  process.env.LOOPLINE_KAFKA_BROKERS = a.kafkaBrokers.join(',');
  process.env.LOOPLINE_CASSANDRA_CONTACT_POINTS = a.cassandraContactPoints.join(',');
  process.env.LOOPLINE_CASSANDRA_LOCAL_DC = a.cassandraLocalDataCenter;
  process.env.LOOPLINE_SCHEMA_REGISTRY_URL = a.schemaRegistryUrl;
  process.env.LOOPLINE_TEST_SERVICE_MODE = services.mode;
  console.log(`[services] ${services.mode}: kafka ${a.kafkaBrokers.join(',')}, cassandra ${a.cassandraContactPoints.join(',')}, registry ${a.schemaRegistryUrl}`);
}

export async function teardown(): Promise<void> {
  await services?.release();
}
