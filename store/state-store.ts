/**
 * The Cassandra side of the state scheme (streams/state.ts): one row of
 * `worker_state` per worker and key, holding the JSON of its StateEntry (the
 * state, the input offsets applied to it, what its recent records emitted).
 * Reads and writes are plain idempotent statements: a key belongs to one
 * task at a time (its input is keyed by it), and the runtime fences a task's
 * previous owner before the new one touches its state.
 *
 *   const store = createStateStore<MonitorState>(cql, 'drift-monitor');
 */
import cassandra from 'cassandra-driver';
import type { StateEntry, StateStore } from '../streams/state.js';
import { byReplica, createBatchWriter, routingKey } from './batch.js';
import { IDEMPOTENT, storeCall } from './errors.js';

export interface StateStoreOptions {
  /** Rows expire this long after their last write (the joiner's per-event state); none by default. */
  ttlSeconds?: number;
  /** Requests in flight at once. Default 64. */
  concurrency?: number;
  /** Rows per write batch and keys per read (store/batch.ts). Default 50. */
  batchRows?: number;
}

export function createStateStore<S, E = unknown>(client: cassandra.Client, worker: string, options: StateStoreOptions = {}): StateStore<S, E> {
  const concurrencyLevel = options.concurrency ?? 64;
  const insert = `INSERT INTO worker_state (worker, key, state, updated_at) VALUES (?, ?, ?, ?)${options.ttlSeconds ? ` USING TTL ${Math.round(options.ttlSeconds)}` : ''}`;
  const inRows = options.batchRows ?? 50;
  const writer = createBatchWriter(client, { rows: inRows });
  return {
    load(keys) {
      return storeCall(`loading ${worker} state of ${keys.length} keys`, async () => {
        const out = new Map<string, StateEntry<S, E>>();
        // Keys owned by one replica are read in one request (key IN …), up to the batch size at a time.
        const reads: string[][] = [];
        for (const { items } of byReplica(client, keys, (k) => [worker, k], () => undefined).values()) {
          for (let i = 0; i < items.length; i += inRows) reads.push(items.slice(i, i + inRows));
        }
        let next = 0;
        await Promise.all(
          Array.from({ length: Math.min(concurrencyLevel, reads.length) }, async () => {
            while (next < reads.length) {
              const part = reads[next++]!;
              const rs = part.length === 1
                ? await client.execute('SELECT key, state FROM worker_state WHERE worker = ? AND key = ?', [worker, part[0]], IDEMPOTENT)
                : await client.execute('SELECT key, state FROM worker_state WHERE worker = ? AND key IN ?', [worker, part], { ...IDEMPOTENT, routingKey: routingKey([worker, part[0]!]) });
              for (const row of rs.rows) out.set(row.get('key') as string, JSON.parse(row.get('state') as string) as StateEntry<S, E>);
            }
          }),
        );
        return out;
      });
    },
    save(entries) {
      const now = new Date();
      return writer.write(entries.map(({ key, entry }) => ({ query: insert, params: [worker, key, JSON.stringify(entry), now], key: [worker, key] })), `saving ${worker} state of ${entries.length} keys`);
    },
  };
}

/** A worker's progress per input partition (the next offset it will apply). */
export interface ProgressStore {
  write(topic: string, partition: number, next: bigint): Promise<void>;
  read(topic: string): Promise<Map<number, bigint>>;
}

export function createProgressStore(client: cassandra.Client, worker: string): ProgressStore {
  return {
    write(topic, partition, next) {
      return storeCall(`writing ${worker} progress on ${topic}/${partition}`, async () => {
        await client.execute('INSERT INTO worker_progress (worker, topic, partition, next, updated_at) VALUES (?, ?, ?, ?, ?)', [worker, topic, partition, cassandra.types.Long.fromString(next.toString()), new Date()], IDEMPOTENT);
      });
    },
    read(topic) {
      return storeCall(`reading ${worker} progress on ${topic}`, async () => {
        const rs = await client.execute('SELECT partition, next FROM worker_progress WHERE worker = ? AND topic = ?', [worker, topic], IDEMPOTENT);
        return new Map(rs.rows.map((r) => [r.get('partition') as number, BigInt((r.get('next') as cassandra.types.Long).toString())]));
      });
    },
  };
}
