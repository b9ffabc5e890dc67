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
import { IDEMPOTENT, storeCall } from './errors.js';

export interface StateStoreOptions {
  /** Rows expire this long after their last write (the joiner's per-event state); none by default. */
  ttlSeconds?: number;
  /** Keys read at once. Default 64. */
  concurrency?: number;
}

export function createStateStore<S, E = unknown>(client: cassandra.Client, worker: string, options: StateStoreOptions = {}): StateStore<S, E> {
  const concurrencyLevel = options.concurrency ?? 64;
  const insert = `INSERT INTO worker_state (worker, key, state, updated_at) VALUES (?, ?, ?, ?)${options.ttlSeconds ? ` USING TTL ${Math.round(options.ttlSeconds)}` : ''}`;
  return {
    load(keys) {
      return storeCall(`loading ${worker} state of ${keys.length} keys`, async () => {
        const out = new Map<string, StateEntry<S, E>>();
        let next = 0;
        await Promise.all(
          Array.from({ length: Math.min(concurrencyLevel, keys.length) }, async () => {
            while (next < keys.length) {
              const key = keys[next++]!;
              const row = (await client.execute('SELECT state FROM worker_state WHERE worker = ? AND key = ?', [worker, key], IDEMPOTENT)).first();
              if (row) out.set(key, JSON.parse(row.get('state') as string) as StateEntry<S, E>);
            }
          }),
        );
        return out;
      });
    },
    save(entries) {
      return storeCall(`saving ${worker} state of ${entries.length} keys`, async () => {
        const now = new Date();
        await cassandra.concurrent.executeConcurrent(
          client,
          insert,
          entries.map(({ key, entry }) => [worker, key, JSON.stringify(entry), now]),
          { concurrencyLevel, raiseOnFirstError: true, executionProfile: undefined },
        );
      });
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
