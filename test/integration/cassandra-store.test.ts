// CQL migrations on a real Cassandra node: applied once, idempotent, versioned,
// and the tables take and return rows.
import cassandra from 'cassandra-driver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBatchWriter } from '../../store/batch.js';
import { createCassandraClient } from '../../store/cassandra.js';
import { createStateStore } from '../../store/state-store.js';
import { loadMigrations, migrate } from '../../store/migrate.js';
import { createTestEnv, type TestEnv } from '../support/fixtures.js';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv('store');
});
afterAll(async () => env?.cleanup());

describe('Cassandra migrations and tables', () => {
  it('applied every migration once and a second run applies nothing', async () => {
    const all = loadMigrations(env.config.cassandra.keyspace).map((m) => m.name);
    expect(env.bootstrap.migrations.applied).toEqual(all);
    const admin = createCassandraClient(env.config.cassandra, { keyspace: false });
    try {
      const again = await migrate(admin, env.config.cassandra);
      expect(again).toEqual({ applied: [], alreadyApplied: all });
    } finally {
      await admin.shutdown();
    }
    const tables = await env.cql.execute('SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?', [env.config.cassandra.keyspace]);
    const names = tables.rows.map((r) => r.get('table_name') as string);
    for (const t of ['features_online', 'prediction_log', 'predictions_by_time', 'ground_truth', 'late_labels', 'labeled_by_time', 'models', 'model_serving', 'model_events', 'worker_checkpoints', 'monitor_reports', 'retrain_requests', 'schema_migrations']) {
      expect(names, t).toContain(t);
    }
  });

  it('refuses a migration whose text changed after it was applied', async () => {
    await env.cql.execute('UPDATE schema_migrations SET checksum = ? WHERE version = ?', ['0'.repeat(64), 1]);
    const admin = createCassandraClient(env.config.cassandra, { keyspace: false });
    try {
      await expect(migrate(admin, env.config.cassandra)).rejects.toThrow(/changed after it was applied/);
    } finally {
      await admin.shutdown();
    }
  });

  it('writes and reads feature rows, with older updates never overwriting newer ones', async () => {
    const insert = 'INSERT INTO features_online (feature_set, entity_id, feature, num_value, as_of, update_id) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?';
    const at = (ms: number) => cassandra.types.Long.fromNumber(ms * 1000);
    await env.cql.execute(insert, ['prices', 'nsw', 'price', 0.7, new Date(2000), 'u2', at(2000)], { prepare: true });
    await env.cql.execute(insert, ['prices', 'nsw', 'price', 0.1, new Date(1000), 'u1', at(1000)], { prepare: true }); // late, older
    const row = (await env.cql.execute('SELECT num_value, update_id FROM features_online WHERE feature_set = ? AND entity_id = ?', ['prices', 'nsw'], { prepare: true })).first();
    expect(row.get('num_value')).toBe(0.7);
    expect(row.get('update_id')).toBe('u2');
  });

  it('promotes by compare-and-set: a stale expectation loses', async () => {
    const cas = 'UPDATE model_serving SET champion_version = ? WHERE pipeline = ? AND model_name = ? IF champion_version = ?';
    await env.cql.execute('INSERT INTO model_serving (pipeline, model_name, champion_version) VALUES (?, ?, ?)', ['p', 'm', 1], { prepare: true });
    const win = await env.cql.execute(cas, [2, 'p', 'm', 1], { prepare: true });
    const lose = await env.cql.execute(cas, [3, 'p', 'm', 1], { prepare: true });
    expect(win.wasApplied()).toBe(true);
    expect(lose.wasApplied()).toBe(false);
    const row = (await env.cql.execute('SELECT champion_version FROM model_serving WHERE pipeline = ? AND model_name = ?', ['p', 'm'], { prepare: true })).first();
    expect(row.get('champion_version')).toBe(2);
  });
});

describe('batched writes and keyed reads (store/batch.ts)', () => {
  it('writes rows of many partitions in batches, splits a batch the server finds too large, and reads keys back by replica', async () => {
    const state = createStateStore<{ n: number; pad: string }>(env.cql, 'batch-test');
    // 230 keys, each ~1 KB: more than one batch by count, and by size
    const entries = Array.from({ length: 230 }, (_, i) => ({ key: `k${i}`, entry: { value: { n: i, pad: 'x'.repeat(1000) }, applied: { 't/0': String(i) }, emitted: [] } }));
    await state.save(entries);
    const back = await state.load([...entries.map((e) => e.key), 'absent']);
    expect(back.size).toBe(230);
    expect(entries.every((e) => back.get(e.key)?.value.n === e.entry.value.n)).toBe(true);
    expect(back.has('absent')).toBe(false);

    // A byte limit far above the server's 50 KiB batch_size_fail_threshold: the writer splits what the server refuses.
    const writer = createBatchWriter(env.cql, { rows: 100, bytes: 10_000_000 });
    const insert = 'INSERT INTO worker_state (worker, key, state, updated_at) VALUES (?, ?, ?, ?)';
    const big = 'y'.repeat(2000);
    await writer.write(Array.from({ length: 100 }, (_, i) => ({ query: insert, params: ['batch-big', `b${i}`, big, new Date()], key: ['batch-big', `b${i}`] })), 'writing big rows');
    const rs = await env.cql.execute('SELECT key FROM worker_state WHERE worker = ? AND key IN ?', ['batch-big', Array.from({ length: 100 }, (_, i) => `b${i}`)], { prepare: true });
    expect(rs.rows.length).toBe(100);
  });
});
