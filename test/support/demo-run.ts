/** Removes what a test's demo run kept (its topics and keyspace); `runDemo` keeps them for the test to read. */
import type { DemoRun } from '../../cli/demo.js';
import { createCassandraClient } from '../../store/cassandra.js';
import { createKafka } from '../../streams/kafka.js';
import { createLogger } from '../../streams/logger.js';

export async function removeDemoRun(run: DemoRun | null): Promise<void> {
  if (!run) return;
  const admin = createKafka(run.config.kafka, createLogger({ level: 'silent' }), 'cleanup').admin();
  await admin.connect();
  const mine = (await admin.listTopics()).filter((t) => t.startsWith(run.config.kafka.topicPrefix));
  if (mine.length) await admin.deleteTopics({ topics: mine }).catch(() => {});
  await admin.disconnect();
  const cql = createCassandraClient(run.config.cassandra, { keyspace: false });
  await cql.execute(`DROP KEYSPACE IF EXISTS ${run.config.cassandra.keyspace}`).catch(() => {});
  await cql.shutdown();
}
