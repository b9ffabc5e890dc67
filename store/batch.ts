/**
 * Many small writes as few requests: the hot paths of the loop (the joiner's
 * per-event state, ground truth, the prediction log) write one row per
 * record, and on this machine a Cassandra request costs the server about
 * 100 µs of CPU and the driver 30–70 µs whatever its size, while a row inside
 * an unlogged batch costs about half and a tenth of that (measured with
 * 20,000 rows of worker_state: one request per row 100–120 µs server and
 * 32–69 µs client CPU per row; batches of 50 rows 49–54 µs and 7 µs).
 *
 * Rows are grouped by the replica that owns them (the driver's token map,
 * from the partition key's values) or, where the key is not plain text, by
 * partition, so a batch never makes its coordinator forward rows to other
 * nodes it does not need to; each group goes out in unlogged batches of at
 * most `rows` rows and about `bytes` bytes (under Cassandra's default
 * `batch_size_fail_threshold` of 50 KiB). An unlogged batch is not atomic,
 * which these writes do not need: each is an idempotent upsert keyed by
 * deterministic ids, retried whole by the runtime when any part fails.
 *
 * `rows: 1` (`LOOPLINE_CASSANDRA_BATCH_ROWS=1`) sends every row as its own
 * request (for a cluster whose operators forbid multi-partition batches).
 *
 *   const writer = createBatchWriter(client);
 *   await writer.write([{ query: INSERT, params, key: [eventId] }], 'writing ground truth');
 */
import type cassandra from 'cassandra-driver';
import { storeCall } from './errors.js';

/** One row to write. */
export interface RowWrite {
  query: string;
  params: unknown[];
  /** The partition key's values in order, when all are text: routes the row to its replica. */
  key?: readonly string[];
  /** Otherwise a string naming the row's partition: rows of one partition share a batch. */
  partition?: string;
}

export interface BatchOptions {
  /** Most rows per batch. Default 50; 1 = no batches. */
  rows?: number;
  /** About the most bytes per batch (approxBytes). Default 24 000; a batch the server still finds too large is split. */
  bytes?: number;
  /** Batches in flight at once per call. Default 16. */
  concurrency?: number;
  /** Runs every request (a process-wide limit on requests in flight, for backpressure). */
  limit?: <T>(fn: () => Promise<T>) => Promise<T>;
}

export interface BatchWriter {
  write(rows: readonly RowWrite[], doing: string): Promise<void>;
}

/** Pure: the routing key Cassandra hashes for a partition key of text columns (composite keys: length, bytes, 0 per part). */
export function routingKey(parts: readonly string[]): Buffer {
  if (parts.length === 1) return Buffer.from(parts[0]!, 'utf8');
  return Buffer.concat(parts.flatMap((p) => {
    const b = Buffer.from(p, 'utf8');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    return [len, b, Buffer.from([0])];
  }));
}

/** Pure: a rough size of a row's values, to keep batches under the server's batch size limit. */
export function approxBytes(params: readonly unknown[]): number {
  // Cassandra counts a batch's size in its mutations, cells included: about 16 bytes per cell on top of its value.
  let n = 32;
  for (const v of params) n += valueBytes(v);
  return n;
}

function valueBytes(v: unknown): number {
  if (typeof v === 'string') return v.length + 16;
  if (v === null || typeof v !== 'object') return 24;
  if (v instanceof Uint8Array) return v.byteLength + 16;
  if (v instanceof Date) return 24;
  let n = 0;
  if (Array.isArray(v)) {
    for (const x of v) n += valueBytes(x);
  } else {
    for (const k in v) n += k.length + 16 + valueBytes((v as Record<string, unknown>)[k]);
  }
  return n;
}

/** Pure: rows split into groups of at most `rows` rows and about `bytes` bytes, in order. */
export function chunkRows<T extends { params: readonly unknown[] }>(rows: readonly T[], maxRows: number, maxBytes: number): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let size = 0;
  for (const r of rows) {
    const b = approxBytes(r.params);
    if (cur.length > 0 && (cur.length >= maxRows || size + b > maxBytes)) {
      out.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(r);
    size += b;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Groups `keys` by the replica that owns each (first replica's address), or into one group when the token map is unknown. */
export function byReplica<T>(client: cassandra.Client, items: readonly T[], keyOf: (t: T) => readonly string[] | undefined, partitionOf: (t: T) => string | undefined): Map<string, { routing: Buffer | null; items: T[] }> {
  const groups = new Map<string, { routing: Buffer | null; items: T[] }>();
  const keyspace = client.keyspace;
  for (const item of items) {
    const key = keyOf(item);
    let group: string;
    let routing: Buffer | null = null;
    if (key) {
      routing = routingKey(key);
      const hosts = keyspace ? client.getReplicas(keyspace, routing) : null;
      group = `r:${hosts?.[0]?.address ?? '?'}`;
    } else {
      group = `p:${partitionOf(item) ?? '?'}`;
    }
    const g = groups.get(group);
    if (g) g.items.push(item);
    else groups.set(group, { routing, items: [item] });
  }
  return groups;
}

/** The server refused a batch as larger than its batch_size_fail_threshold. */
function tooLarge(err: unknown): boolean {
  return /batch too large/i.test((err as { message?: string })?.message ?? '');
}

/** One batch (or one row alone); a batch the server finds too large goes again as two halves. */
async function send(client: cassandra.Client, rows: readonly RowWrite[], routing: Buffer | null): Promise<void> {
  if (rows.length === 1) {
    await client.execute(rows[0]!.query, rows[0]!.params, { prepare: true, isIdempotent: true });
    return;
  }
  try {
    await client.batch(rows.map((r) => ({ query: r.query, params: r.params })), { prepare: true, logged: false, isIdempotent: true, ...(routing ? { routingKey: routing } : {}) });
  } catch (err) {
    if (!tooLarge(err)) throw err;
    const half = Math.ceil(rows.length / 2);
    await send(client, rows.slice(0, half), routing);
    await send(client, rows.slice(half), routing);
  }
}

export function createBatchWriter(client: cassandra.Client, options: BatchOptions = {}): BatchWriter {
  const maxRows = options.rows ?? 50;
  const maxBytes = options.bytes ?? 24_000;
  const concurrency = options.concurrency ?? 16;
  const limit = options.limit ?? (<T>(fn: () => Promise<T>) => fn());
  return {
    write(rows, doing) {
      if (rows.length === 0) return Promise.resolve();
      return storeCall(doing, async () => {
        const jobs: Array<() => Promise<unknown>> = [];
        for (const { routing, items } of byReplica(client, rows, (r) => r.key, (r) => r.partition).values()) {
          for (const part of chunkRows(items, maxRows, maxBytes)) {
            jobs.push(() => send(client, part, routing));
          }
        }
        let next = 0;
        let failed: unknown = null;
        await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, async () => {
          while (next < jobs.length && failed === null) {
            const job = jobs[next++]!;
            try {
              await limit(job);
            } catch (err) {
              failed ??= err;
            }
          }
        }));
        if (failed !== null) throw failed;
      });
    },
  };
}
