// The embedded local stack's own lifecycle, on a second stack with its own
// ports and run folder (the shared one keeps serving the other tests):
// cold start, recovery after `kill -9` of every server with data intact, and
// `down` leaving no process behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import cassandra from 'cassandra-driver';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { createLocalStack } from '../../infra/local-stack/local-stack.js';
import { stackPaths } from '../../infra/local-stack/paths.js';
import { recordSchema } from '../../schemas/catalogue.js';
import { createRegistryClient } from '../../schemas/registry-client.js';

const local = process.env.LOOPLINE_TEST_SERVICE_MODE === 'local';
const runRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'loopline-stack-'));
const stack = createLocalStack({
  paths: stackPaths(undefined, runRoot),
  ports: { kafka: 29192, kafkaController: 29193, cassandra: 29142, cassandraStorage: 27100, registry: 28181 },
});

afterAll(async () => {
  await stack.down();
  fs.rmSync(runRoot, { recursive: true, force: true });
});

function ourProcesses(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(runRoot);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe.runIf(local)('local stack lifecycle', () => {
  it('starts cold, survives kill -9 of every server with data intact, and stops without leftovers', async () => {
    const a = await stack.up();
    const kafka = new Kafka({ clientId: 'stack-test', brokers: a.kafkaBrokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'survivor', numPartitions: 2 }], waitForLeaders: true });
    await admin.disconnect();
    const cql = new cassandra.Client({ contactPoints: a.cassandraContactPoints, localDataCenter: a.cassandraLocalDataCenter });
    await cql.execute("CREATE KEYSPACE survivor WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}");
    await cql.execute('CREATE TABLE survivor.t (k text PRIMARY KEY, v int)');
    await cql.execute("INSERT INTO survivor.t (k, v) VALUES ('a', 42)");
    await cql.shutdown();
    const registry = createRegistryClient({ url: a.schemaRegistryUrl });
    const id = await registry.register('survivor-value', recordSchema('GroundTruth').text);

    const before = await stack.status();
    expect(before.every((s) => s.ready)).toBe(true);
    for (const s of before) process.kill(s.pid!, 'SIGKILL');
    await expect.poll(async () => (await stack.status()).some((s) => s.running), { timeout: 10_000 }).toBe(false);

    await stack.up();
    const after = await stack.status();
    expect(after.every((s) => s.ready)).toBe(true);
    expect(after.map((s) => s.pid)).not.toEqual(before.map((s) => s.pid));

    const admin2 = kafka.admin();
    await admin2.connect();
    expect(await admin2.listTopics()).toContain('survivor');
    await admin2.disconnect();
    const cql2 = new cassandra.Client({ contactPoints: a.cassandraContactPoints, localDataCenter: a.cassandraLocalDataCenter });
    expect((await cql2.execute("SELECT v FROM survivor.t WHERE k = 'a'")).first().get('v')).toBe(42);
    await cql2.shutdown();
    expect(JSON.parse(await registry.getSchema(id))).toEqual(recordSchema('GroundTruth').schema);

    const stopped = await stack.down();
    expect(stopped.sort()).toEqual(['cassandra', 'kafka', 'schema-registry']);
    expect(ourProcesses()).toEqual([]);
    expect((await stack.status()).some((s) => s.running)).toBe(false);
  }, 600_000);
});
