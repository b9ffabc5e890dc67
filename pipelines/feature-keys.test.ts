import fs from 'node:fs';
import path from 'node:path';
import { createMemoryFeatureStore } from '../store/memory.js';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createPreprocessor } from '../consumers/preprocessor/preprocessor.js';
import { readCsv } from '../producers/csv.js';
import { buildReplayPlan, pointInTimeRows } from '../producers/replay-plan.js';
import type { ClientEvent, FeatureUpdate, FeatureVector } from '../schemas/types.js';
import type { EntityFeatures, FeatureHistory, FeatureStore } from '../store/feature-store.js';
import type { InputRecord } from '../streams/runtime.js';
import { featureKeyOf, keyTimes, renderKey } from './feature-keys.js';
import { loadSpec, parseSpec } from './spec.js';

const here = path.dirname(fileURLToPath(import.meta.url));

describe('renderKey', () => {
  it.each([
    ['a category as it is', 'admin.', 'admin.'],
    ['an integer', 35, '35'],
    ['a fraction', 0.5, '0.5'],
    ['minus zero', -0, '0'],
    ['a large number', 1e21, '1e+21'],
    ['null', null, null],
    ['absent', undefined, null],
    ['an empty string', '', null],
    ['a non-finite number', Number.NaN, null],
  ])('%s', (_n, value, key) => {
    expect(renderKey(value)).toBe(key);
  });
});

describe('featureKeyOf and keyTimes', () => {
  const e = (entity: string, age: number | null, t: number): Pick<ClientEvent, 'entity_id' | 'fields' | 'event_time'> => ({ entity_id: entity, fields: { age }, event_time: t });
  it('keys by the entity by default and by the key field when the set has one', () => {
    expect(featureKeyOf({}, e('c1', 35, 0))).toBe('c1');
    expect(featureKeyOf({ key: { field: 'age' } }, e('c1', 35, 0))).toBe('35');
    expect(featureKeyOf({ key: { field: 'age' } }, e('c1', null, 0))).toBeNull();
    expect(featureKeyOf({ key: { field: 'constructor' } }, e('c1', 35, 0))).toBeNull();
  });
  it("gives each key its events' newest and oldest time, leaving keyless events out", () => {
    const r = keyTimes({ key: { field: 'age' } }, [e('c1', 35, 5), e('c2', 40, 3), e('c3', 35, 1), e('c4', null, 9)]);
    expect(r.keys).toEqual(['35', '40', '35', null]);
    expect([...r.newest]).toEqual([['35', 5], ['40', 3]]);
    expect([...r.oldest]).toEqual([['35', 1], ['40', 3]]);
  });
});

/** The online store's contract in memory: latest and previous value, full history, watermark per (set, key). */
/** The in-memory feature store, recording its lookups. */
function memoryStore(): FeatureStore & { lookups: Array<[string, string[]]> } {
  const store = createMemoryFeatureStore();
  const lookups: Array<[string, string[]]> = [];
  return {
    ...store,
    lookups,
    async lookup(set, keys) {
      lookups.push([set, keys]);
      return store.lookup(set, keys);
    },
  };
}

const input = (e: ClientEvent, offset: number): InputRecord<ClientEvent> => ({ topic: 'events.client', partition: 0, offset: String(offset), key: e.entity_id, timestamp: 0, headers: {}, value: e });

describe('the preprocessor serves keyed sets by their key', () => {
  const spec = parseSpec({
    name: 'loans',
    task: 'binary',
    entity: { name: 'client' },
    events: { fields: { age: 'numeric', amount: 'numeric' } },
    featureSets: [{ name: 'cohort', key: { field: 'age' }, features: { rate: 'numeric' } }],
    missingEntity: 'dead-letter',
    model: { name: 'loans-model', features: ['amount', 'rate'] },
    label: { type: 'categorical', classes: ['no', 'yes'], delayMs: 1000, horizonMs: 10_000 },
  });
  const event = (id: string, client: string, age: number | null): ClientEvent => ({ event_id: id, pipeline: 'loans', entity_id: client, event_time: 100, produced_at: 1, fields: { age, amount: 1 } });

  it("looks each set up by the key field's value, not the entity, and names the key of a dead letter", async () => {
    const store = memoryStore();
    await store.apply([{ update_id: 'u', feature_set: 'cohort', entity_id: '35', event_time: 50, values: { rate: 0.25 } }], () => 60);
    const handler = createPreprocessor({ spec, store, now: () => 7 });
    const r = await handler.process([input(event('a', 'c1', 35), 0), input(event('b', 'c2', 35), 1), input(event('c', 'c3', 41), 2), input(event('d', 'c4', null), 3)]);
    expect(store.lookups).toEqual([['cohort', ['35', '41']]]);
    expect(r.outputs.map((o) => [(o.value as FeatureVector).event_id, (o.value as FeatureVector).values.rate, o.key])).toEqual([
      ['a', 0.25, 'c1'],
      ['b', 0.25, 'c2'],
    ]);
    expect(r.deadLetters?.map((d) => [d.index, d.code, d.message])).toEqual([
      [2, 'UNKNOWN_ENTITY', 'age 41 has no online features in set "cohort" and the pipeline dead-letters unknown entities'],
      [3, 'UNKNOWN_ENTITY', 'age null has no online features in set "cohort" and the pipeline dead-letters unknown entities'],
    ]);
  });
});

describe('serving matches training for every shipped pipeline', () => {
  const files = fs.readdirSync(here).filter((f) => f.endsWith('.json'));
  it.each(files)("%s: the preprocessor, on a store holding the replay's feeds, serves exactly the bootstrap's point-in-time rows", async (file) => {
    const { spec, dir } = loadSpec(path.join(here, file));
    const rows = readCsv(path.join(dir, spec.replay!.csv));
    // Past the first labels of the slowest feed (credit default: 30 days at one client an hour).
    const plan = buildReplayPlan(spec, rows, { offset: Math.min(2000, spec.trainer.bootstrapRows), limit: 400 });
    const store = memoryStore();
    await store.apply(plan.flatMap((a) => (a.kind === 'feature' ? [a.record] : [])), () => 60);
    const events = plan.flatMap((a) => (a.kind === 'event' ? [a.record] : []));
    const handler = createPreprocessor({ spec, store });
    const served = new Map<string, FeatureVector['values']>();
    for (let i = 0; i < events.length; i += 100) {
      const r = await handler.process(events.slice(i, i + 100).map((e, j) => input(e, i + j)));
      expect(r.deadLetters ?? []).toEqual([]);
      for (const o of r.outputs) served.set((o.value as FeatureVector).event_id, (o.value as FeatureVector).values);
    }
    const pit = pointInTimeRows(spec, plan);
    expect(served.size).toBe(events.length);
    for (const row of pit) expect(served.get(row.event.event_id), row.event.event_id).toEqual(row.values);
    const setFeatures = spec.featureSets.flatMap((s) => Object.keys(s.features));
    if (setFeatures.length > 0) expect(pit.some((r) => setFeatures.every((f) => r.values[f] !== null))).toBe(true);
  });
});
