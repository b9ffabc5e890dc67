import { describe, expect, it } from 'vitest';
import { loadMigrations, parseCql } from './migrate.js';

describe('CQL migrations', () => {
  it('splits statements, drops comments and substitutes the keyspace', () => {
    const s = parseCql('-- a comment; with a semicolon\nCREATE TABLE ${keyspace}.a (k int PRIMARY KEY);\n\nCREATE TABLE ${keyspace}.b (\n  k int PRIMARY KEY\n);\n', 'ks');
    expect(s).toEqual(['CREATE TABLE ks.a (k int PRIMARY KEY)', 'CREATE TABLE ks.b (\n  k int PRIMARY KEY\n)']);
  });

  it('loads numbered migrations in order, every statement idempotent', () => {
    const ms = loadMigrations('ks');
    expect(ms.length).toBeGreaterThan(0);
    expect(ms.map((m) => m.version)).toEqual([...ms.map((m) => m.version)].sort((a, b) => a - b));
    for (const m of ms) for (const st of m.statements) expect(st, m.name).toMatch(/IF NOT EXISTS/);
  });
});
