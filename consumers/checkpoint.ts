/**
 * Worker state that must survive restarts without double counting, stored
 * in Cassandra (`worker_checkpoints`) in the same unit as the input offsets
 * it covers. A stateful handler, in each process() call:
 * 1. loads the checkpoint of its scope (once, then keeps it in memory);
 * 2. if the chunk was already applied (a replay after a crash between the
 *    checkpoint write and the Kafka commit), returns the outputs saved with
 *    it instead of applying the records again;
 * 3. otherwise applies only records past the saved offset, saves state,
 *    offsets and the outputs together, and returns the outputs.
 * The Kafka transaction then commits those outputs with the input offsets.
 */
import type cassandra from 'cassandra-driver';
import { TransientError } from '../streams/errors.js';
import type { OutputRecord } from '../streams/runtime.js';

export interface Checkpoint<S> {
  state: S;
  /** Last applied input offset per partition. */
  offsets: Record<number, string>;
  /** Outputs of the last applied chunk and the offsets it spanned, for replays. */
  last: { partition: number; from: string; to: string; outputs: OutputRecord[]; rollbacks?: Array<{ from: number; reason: string }> } | null;
}

export interface CheckpointStore {
  load<S>(scope: string): Promise<Checkpoint<S> | null>;
  save<S>(scope: string, cp: Checkpoint<S>): Promise<void>;
}

export function createCheckpointStore(client: cassandra.Client, worker: string): CheckpointStore {
  return {
    async load<S>(scope: string) {
      try {
        const row = (await client.execute('SELECT state FROM worker_checkpoints WHERE worker = ? AND scope = ?', [worker, scope], { prepare: true, isIdempotent: true })).first();
        return row ? (JSON.parse(row.get('state') as string) as Checkpoint<S>) : null;
      } catch (err) {
        throw new TransientError(`loading ${worker} checkpoint ${scope}: ${(err as Error).message}`, err, 'STORE_UNAVAILABLE');
      }
    },
    async save<S>(scope: string, cp: Checkpoint<S>) {
      const offsets = Object.fromEntries(Object.entries(cp.offsets).map(([p, o]) => [Number(p), o]));
      try {
        await client.execute(
          'INSERT INTO worker_checkpoints (worker, scope, state, offsets, updated_at) VALUES (?, ?, ?, ?, ?)',
          [worker, scope, JSON.stringify(cp), offsets, new Date()],
          { prepare: true, isIdempotent: true },
        );
      } catch (err) {
        throw new TransientError(`saving ${worker} checkpoint ${scope}: ${(err as Error).message}`, err, 'STORE_UNAVAILABLE');
      }
    },
  };
}

/** Whether input `offset` on `partition` was already applied under `cp`. */
export function applied(cp: Checkpoint<unknown> | null, partition: number, offset: string): boolean {
  const last = cp?.offsets[partition];
  return last !== undefined && BigInt(offset) <= BigInt(last);
}
