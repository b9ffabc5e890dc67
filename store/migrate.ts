/**
 * Versioned, idempotent CQL migrations from `infra/cql/NNNN_name.cql`.
 * Applied migrations are recorded in `<keyspace>.schema_migrations` with a
 * checksum; a changed migration that was already applied is an error (write
 * a new one instead). Every statement is `IF NOT EXISTS`, so two processes
 * migrating at once both succeed.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type cassandra from 'cassandra-driver';
import type { CassandraConfig } from '../config/config.js';
import { LooplineError } from '../core/errors.js';

export const migrationsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'infra', 'cql');

export interface Migration {
  version: number;
  name: string;
  checksum: string;
  statements: string[];
}

/** Splits a CQL file into statements (semicolon at end of line), dropping comments. */
export function parseCql(text: string, keyspace: string): string[] {
  const body = text
    .split('\n')
    .filter((line) => !line.trim().startsWith('--'))
    .join('\n')
    .replaceAll('${keyspace}', keyspace);
  return body
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter(Boolean);
}

export function loadMigrations(keyspace: string, dir = migrationsDir): Migration[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.cql$/.test(f))
    .sort()
    .map((file) => {
      const text = fs.readFileSync(path.join(dir, file), 'utf8');
      return {
        version: Number(file.slice(0, 4)),
        name: file.replace(/\.cql$/, ''),
        checksum: crypto.createHash('sha256').update(text).digest('hex'),
        statements: parseCql(text, keyspace),
      };
    });
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: string[];
}

/** Creates the keyspace if needed and applies pending migrations in order. The client must not be bound to the keyspace. */
export async function migrate(client: cassandra.Client, config: Pick<CassandraConfig, 'keyspace' | 'replication'>): Promise<MigrateResult> {
  const ks = config.keyspace;
  const replication = Object.entries(config.replication)
    .map(([k, v]) => `'${k}': ${typeof v === 'number' ? v : `'${v}'`}`)
    .join(', ');
  await client.execute(`CREATE KEYSPACE IF NOT EXISTS ${ks} WITH replication = {${replication}}`);
  await client.execute(
    `CREATE TABLE IF NOT EXISTS ${ks}.schema_migrations (version int PRIMARY KEY, name text, checksum text, applied_at timestamp)`,
  );
  const done = new Map<number, { name: string; checksum: string }>();
  for (const row of (await client.execute(`SELECT version, name, checksum FROM ${ks}.schema_migrations`)).rows) {
    done.set(row.get('version') as number, { name: row.get('name') as string, checksum: row.get('checksum') as string });
  }
  const result: MigrateResult = { applied: [], alreadyApplied: [] };
  for (const m of loadMigrations(ks)) {
    const prior = done.get(m.version);
    if (prior) {
      if (prior.checksum !== m.checksum) {
        throw new LooplineError(
          `migration ${m.name} changed after it was applied to keyspace ${ks} (checksum ${prior.checksum.slice(0, 12)} → ${m.checksum.slice(0, 12)}); add a new migration instead`,
          { code: 'MIGRATION_CHANGED', retriable: false },
        );
      }
      result.alreadyApplied.push(m.name);
      continue;
    }
    for (const statement of m.statements) await client.execute(statement);
    await client.execute(`INSERT INTO ${ks}.schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)`, [
      m.version, m.name, m.checksum, new Date(),
    ], { prepare: true });
    result.applied.push(m.name);
  }
  return result;
}
