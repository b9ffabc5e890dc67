/**
 * Can this process reach the stack? One real round trip to each server
 * (Kafka `describeCluster`, CQL `SELECT release_version FROM system.local`,
 * registry `GET /subjects`), each bounded in time, never throwing.
 */
import type { OperatorClients } from './clients.js';

export interface ServerHealth {
  server: 'kafka' | 'cassandra' | 'schema-registry';
  address: string;
  ok: boolean;
  ms: number;
  detail: string;
}

async function timed(server: ServerHealth['server'], address: string, timeoutMs: number, fn: () => Promise<string>): Promise<ServerHealth> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const detail = await Promise.race([fn(), new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)))]);
    return { server, address, ok: true, ms: Date.now() - started, detail };
  } catch (err) {
    return { server, address, ok: false, ms: Date.now() - started, detail: (err as Error).message.split('\n')[0]! };
  } finally {
    clearTimeout(timer);
  }
}

export async function checkStack(c: OperatorClients, timeoutMs = 8000): Promise<ServerHealth[]> {
  const registryAddress = (() => {
    const u = new URL(c.config.registry.url);
    u.username = '';
    u.password = '';
    return u.toString();
  })();
  return Promise.all([
    timed('kafka', c.config.kafka.brokers.join(','), timeoutMs, async () => {
      await c.admin.connect();
      const d = await c.admin.describeCluster();
      return `${d.brokers.length} broker(s), controller ${d.controller}`;
    }),
    timed('cassandra', c.config.cassandra.contactPoints.join(','), timeoutMs, async () => {
      const rs = await c.cql.execute('SELECT release_version FROM system.local');
      return `Cassandra ${rs.first()?.get('release_version') as string}`;
    }),
    timed('schema-registry', registryAddress, timeoutMs, async () => `${(await c.registry.subjects()).length} subjects`),
  ]);
}
