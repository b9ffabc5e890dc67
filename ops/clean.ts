/**
 * What a run leaves on a shared cluster — topics and registry subjects under
 * its topic prefix, its keyspace — found and removed on request (`loopline
 * clean`, and the demo at its end unless `--keep`). An empty prefix or the
 * default keyspace is never removed by pattern: that would be every
 * pipeline's data.
 */
import type { LooplineConfig } from '../config/config.js';
import { LooplineError } from '../core/errors.js';
import type { OperatorClients } from './clients.js';

export interface RunLeftovers {
  prefix: string;
  keyspace: string | null;
  topics: string[];
  subjects: string[];
}

const DEMO_PREFIX = /^demo-(\d{14}[0-9a-f]{4})\.$/;

/** The topic prefix and keyspace a demo run uses for its run id (cli/demo.ts). Pure. */
export function demoRunOf(prefix: string): string | null {
  return DEMO_PREFIX.exec(prefix)?.[1] ?? null;
}

/** What `prefix` and `keyspace` hold on the cluster. */
export async function findLeftovers(c: OperatorClients, prefix: string, keyspace: string | null): Promise<RunLeftovers> {
  if (prefix === '') throw new LooplineError('refusing to clean the empty topic prefix: it would remove every topic; set LOOPLINE_TOPIC_PREFIX or pass --prefix', { code: 'USAGE', retriable: false });
  await c.admin.connect();
  const topics = (await c.admin.listTopics()).filter((t) => t.startsWith(prefix)).sort();
  const subjects = (await c.registry.subjects()).filter((s) => s.startsWith(prefix)).sort();
  let ks: string | null = null;
  if (keyspace) {
    const rs = await c.cql.execute('SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?', [keyspace], { prepare: true });
    ks = rs.rowLength > 0 ? keyspace : null;
  }
  return { prefix, keyspace: ks, topics, subjects };
}

/** Every demo run's prefix and keyspace present on the cluster (`demo-<run>.` topics, `demo_<run>` keyspaces). */
export async function findDemoRuns(c: OperatorClients): Promise<Array<{ prefix: string; keyspace: string }>> {
  await c.admin.connect();
  const runs = new Set<string>();
  for (const t of await c.admin.listTopics()) {
    const m = /^demo-(\d{14}[0-9a-f]{4})\./.exec(t);
    if (m) runs.add(m[1]!);
  }
  for (const s of await c.registry.subjects()) {
    const m = /^demo-(\d{14}[0-9a-f]{4})\./.exec(s);
    if (m) runs.add(m[1]!);
  }
  const rs = await c.cql.execute('SELECT keyspace_name FROM system_schema.keyspaces');
  for (const r of rs.rows) {
    const m = /^demo_(\d{14}[0-9a-f]{4})$/.exec(r.get('keyspace_name') as string);
    if (m) runs.add(m[1]!);
  }
  return [...runs].sort().map((run) => ({ prefix: `demo-${run}.`, keyspace: `demo_${run}` }));
}

/** Deletes what `findLeftovers` found. */
export async function removeLeftovers(c: OperatorClients, l: RunLeftovers): Promise<void> {
  if (l.topics.length > 0) await c.admin.deleteTopics({ topics: l.topics, timeout: 30_000 });
  for (const s of l.subjects) await c.registry.deleteSubject(s);
  if (l.keyspace) await c.cql.execute(`DROP KEYSPACE IF EXISTS "${l.keyspace.replaceAll('"', '')}"`);
}

/** The leftovers of the run a configuration points at (its prefix and keyspace). */
export function runOf(config: LooplineConfig): { prefix: string; keyspace: string } {
  return { prefix: config.kafka.topicPrefix, keyspace: config.cassandra.keyspace };
}
