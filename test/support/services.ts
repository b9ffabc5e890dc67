/**
 * Where the tests' Kafka, Cassandra and schema registry come from, in order:
 * 1. existing servers, when LOOPLINE_KAFKA_BROKERS, LOOPLINE_CASSANDRA_CONTACT_POINTS
 *    and LOOPLINE_SCHEMA_REGISTRY_URL are all set;
 * 2. testcontainers, when a Docker engine answers (LOOPLINE_TEST_SERVICES=docker forces it);
 * 3. the embedded local stack (real JVM processes), started if not running.
 * LOOPLINE_TEST_SERVICES=existing|docker|local forces a choice.
 * `npm run test:secure` (run-secure.ts) uses 1: it starts the secured local
 * stack itself and passes its admin environment (TLS, SASL, tokens) down.
 */
import fs from 'node:fs';
import { createLocalStack, type StackAddresses } from '../../infra/local-stack/local-stack.js';

export type ServiceMode = 'existing' | 'docker' | 'local';

export interface TestServices {
  mode: ServiceMode;
  addresses: StackAddresses;
  /** Stops what this run started (nothing for existing servers or a stack that was already up). */
  release(): Promise<void>;
}

function existingFromEnv(): StackAddresses | null {
  const { LOOPLINE_KAFKA_BROKERS: k, LOOPLINE_CASSANDRA_CONTACT_POINTS: c, LOOPLINE_SCHEMA_REGISTRY_URL: r } = process.env;
  if (!k || !c || !r) return null;
  return {
    kafkaBrokers: k.split(','),
    cassandraContactPoints: c.split(','),
    cassandraLocalDataCenter: process.env.LOOPLINE_CASSANDRA_LOCAL_DC ?? 'datacenter1',
    schemaRegistryUrl: r,
  };
}

async function dockerAvailable(): Promise<boolean> {
  if (!fs.existsSync('/var/run/docker.sock') && !process.env.DOCKER_HOST) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

export async function acquireServices(log: (m: string) => void = () => {}): Promise<TestServices> {
  const forced = process.env.LOOPLINE_TEST_SERVICES as ServiceMode | undefined;
  const existing = existingFromEnv();
  if (forced === 'existing' || (!forced && existing)) {
    if (!existing) throw new Error('LOOPLINE_TEST_SERVICES=existing needs LOOPLINE_KAFKA_BROKERS, LOOPLINE_CASSANDRA_CONTACT_POINTS and LOOPLINE_SCHEMA_REGISTRY_URL');
    log(`using existing servers: ${JSON.stringify(existing)}`);
    return { mode: 'existing', addresses: existing, release: async () => {} };
  }
  if (forced === 'docker' || (!forced && (await dockerAvailable()))) {
    const { startContainers } = await import('./containers.js');
    log('starting Kafka, Cassandra and a schema registry with testcontainers');
    const c = await startContainers();
    return { mode: 'docker', addresses: c.addresses, release: c.stop };
  }
  const stack = createLocalStack({ progress: (m) => log(`local stack: ${m}`) });
  const before = await stack.status();
  const wasUp = before.every((s) => s.ready);
  const addresses = await stack.up();
  return {
    mode: 'local',
    addresses,
    release: async () => {
      if (!wasUp && process.env.LOOPLINE_KEEP_STACK !== '1') await stack.down();
    },
  };
}
