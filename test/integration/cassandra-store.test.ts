// CQL migrations on a real Cassandra node: applied once, idempotent, versioned,
// and the tables take and return rows.
import cassandra from 'cassandra-driver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCassandraClient } from '../../store/cassandra.js';
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
