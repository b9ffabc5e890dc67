// The training set on real Cassandra: the bootstrap's rows seeded before the
// loop starts read back newest first, across month partitions, exactly as
// written (numbers, categories, missing values), and beside joined rows; the
// bootstrap seeds them when given the training set.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSpec } from '../../pipelines/spec.js';
import { trainBootstrap } from '../../producers/bootstrap.js';
import { createModelRegistry } from '../../store/model-registry.js';
import { createTrainingSet, type TrainingRow } from '../../store/training-set.js';
import { createTestEnv, type TestEnv } from '../support/fixtures.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
let env: TestEnv;

beforeAll(async () => {
  env = await createTestEnv('training-set');
}, 120_000);
afterAll(async () => {
  await env?.cleanup();
});

describe('training set', () => {
  it('reads seeded rows back newest first across months, values and missing features intact', async () => {
    const training = createTrainingSet(env.cql);
    const day = 86_400_000;
    const start = Date.UTC(2024, 0, 20);
    const rows: TrainingRow[] = Array.from({ length: 40 }, (_, i) => ({
      eventId: `e${i}`,
      eventTime: start + i * day,
      values: { x: i / 2, kind: i % 2 ? 'odd' : 'even', gap: i % 5 === 0 ? null : i },
      label: i % 3 ? 'UP' : 'DOWN',
      labelTime: start + i * day + 3_600_000,
      modelVersion: 1,
      entityId: i % 4 ? `c${i % 4}` : null, // the entity, for backfill; null as on rows written before it was kept
    }));
    await training.seed('p', rows);
    await training.seed('p', rows); // idempotent
    const back = await training.newest('p', { limit: 100 });
    expect(back).toEqual([...rows].reverse());
    const before = await training.newest('p', { limit: 5, before: rows[30]!.eventTime });
    expect(before.map((r) => r.eventId)).toEqual(['e29', 'e28', 'e27', 'e26', 'e25']);
  });

  it('the bootstrap seeds its training rows when given the training set', async () => {
    const { spec, dir } = loadSpec(path.join(root, 'pipelines', 'elec2.json'));
    const small = { ...spec, name: 'seeded', trainer: { ...spec.trainer, bootstrapRows: 600 } };
    const training = createTrainingSet(env.cql);
    const boot = await trainBootstrap(small, dir, createModelRegistry(env.cql), 'test', training);
    const back = await training.newest('seeded', { limit: 10_000 });
    expect(back).toHaveLength(boot.rows);
    expect(back.every((r) => r.modelVersion === boot.model.version)).toBe(true);
    const newest = boot.history.at(-1)!;
    expect(back[0]).toMatchObject({ eventTime: newest.eventTime, label: newest.label, labelTime: newest.labelTime, values: newest.values });
  }, 120_000);
});
