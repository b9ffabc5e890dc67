// The feature-writer on the in-memory harness: streamed feature updates land
// in the online store (latest value with the one before it, history for as-of
// reads, the watermark the preprocessor waits on); an update older than the
// stored one changes nothing; bad updates are dead-lettered; a crash after a
// chunk leaves the store exactly as without it.
import { describe, expect, it } from 'vitest';
import type { FeatureUpdate } from '../../schemas/types.js';
import { createMemoryStores, type MemoryStores } from '../../store/memory.js';
import { runFlow, type FlowInput } from '../../streams/testing.js';
import { elec2 as spec } from '../../test/support/elec2.js';
import { cleanAndCrashed } from '../../test/support/flows.js';
import { featureWriter } from './index.js';

const T0 = Date.UTC(1997, 0, 15);
const HALF_HOUR = 1_800_000;
const update = (n: number, values: FeatureUpdate['values'], patch: Partial<FeatureUpdate> = {}): FeatureUpdate => ({
  update_id: `market:nsw:${n}`, feature_set: 'market', entity_id: 'nsw', event_time: T0 + n * HALF_HOUR, values, ...patch,
});
const U = (u: FeatureUpdate, partition = 0): FlowInput => ({ topic: 'features.updates', value: u, key: u.entity_id, partition });

/** Everything the store holds for `entities` of the market set: latest rows, history, watermarks. */
async function snapshot(stores: MemoryStores, entities: string[]) {
  const latest = await stores.features.lookup('market', entities);
  const marks = await stores.features.watermarks('market', entities);
  const history = await Promise.all(entities.map((e) => stores.features.history('market', e, ['nswprice_prev', 'nswprice_ma48'], 0, Number.MAX_SAFE_INTEGER)));
  return { latest: [...latest].map(([e, row]) => [e, [...row]]), marks: [...marks], history: history.map((h) => [...h]) };
}

describe('feature-writer (in-memory harness)', () => {
  it('applies updates: latest with its predecessor, history, watermark; no outputs', async () => {
    const stores = createMemoryStores();
    const run = await runFlow(featureWriter, [U(update(0, { nswprice_prev: 0.05, nswprice_ma48: 0.06 })), U(update(1, { nswprice_prev: 0.07 }))], { spec, stores });
    expect(run.outputs).toEqual([]);
    expect(run.deadLetters).toEqual([]);
    const row = (await stores.features.lookup('market', ['nsw'])).get('nsw')!;
    expect(row.get('nswprice_prev')).toEqual({ value: 0.07, asOf: T0 + HALF_HOUR, prevValue: 0.05, prevAsOf: T0 });
    expect(row.get('nswprice_ma48')).toEqual({ value: 0.06, asOf: T0, prevValue: null, prevAsOf: null });
    expect((await stores.features.watermarks('market', ['nsw'])).get('nsw')).toBe(T0 + HALF_HOUR);
    const history = await stores.features.history('market', 'nsw', ['nswprice_prev'], T0, T0 + HALF_HOUR);
    expect(history.get('nswprice_prev')).toEqual([{ asOf: T0 + HALF_HOUR, value: 0.07 }, { asOf: T0, value: 0.05 }]);
  });

  it('skips an update older than the stored one, and a replay of the same update, without a dead letter', async () => {
    const stores = createMemoryStores();
    await runFlow(featureWriter, [U(update(2, { nswprice_prev: 0.2 }))], { spec, stores });
    const before = await snapshot(stores, ['nsw']);
    const run = await runFlow(featureWriter, [U(update(2, { nswprice_prev: 0.2 })), U(update(1, { nswprice_prev: 0.1 }, { update_id: 'late' }))], { spec, stores });
    expect(run.deadLetters).toEqual([]);
    const after = await snapshot(stores, ['nsw']);
    expect(after.latest).toEqual(before.latest);
    expect(after.latest).toEqual([['nsw', [['nswprice_prev', { value: 0.2, asOf: T0 + 2 * HALF_HOUR, prevValue: null, prevAsOf: null }]]]]);
    expect(after.marks).toEqual([['nsw', T0 + 2 * HALF_HOUR]]);
  });

  it('dead-letters updates of an unknown set or feature, a wrong type, a non-finite number or no entity, and applies the rest', async () => {
    const stores = createMemoryStores();
    const run = await runFlow(
      featureWriter,
      [
        U(update(0, { nswprice_prev: 0.05 })),
        U(update(1, { x: 1 }, { feature_set: 'weather' })),
        U(update(2, { price: 1 })),
        U(update(3, { nswprice_prev: 'high' })),
        U(update(4, { nswprice_ma48: Number.POSITIVE_INFINITY })),
        U(update(5, { nswprice_prev: 0.3 }, { entity_id: '' })),
        U(update(6, { nswprice_prev: 0.06 })),
      ],
      { spec, stores },
    );
    expect(run.deadLetters.map((d) => [d.offset, d.failure.stage, d.failure.code])).toEqual([
      ['1', 'VALIDATION', 'UNKNOWN_FEATURE_SET'],
      ['2', 'VALIDATION', 'UNKNOWN_FIELD'],
      ['3', 'VALIDATION', 'WRONG_TYPE'],
      ['4', 'VALIDATION', 'NON_FINITE'],
      ['5', 'VALIDATION', 'MISSING_ENTITY'],
    ]);
    for (const d of run.deadLetters) expect(d.failure.message).not.toBe('');
    const row = (await stores.features.lookup('market', ['nsw'])).get('nsw')!;
    expect(row.get('nswprice_prev')).toMatchObject({ value: 0.06, prevValue: 0.05 });
    expect(row.has('nswprice_ma48')).toBe(false);
    expect((await stores.features.lookup('weather', ['nsw'])).size).toBe(0);
  });

  it('leaves the store exactly as without a crash after a chunk', async () => {
    const inputs: FlowInput[] = [];
    for (let n = 0; n < 12; n++) inputs.push(U(update(n, { nswprice_prev: n / 10, nswprice_ma48: n / 20 }, { entity_id: n % 2 ? 'nsw' : 'vic' }), n % 2));
    const { clean, crashed } = await cleanAndCrashed(featureWriter, inputs, () => ({ spec, batchMax: 2 }), [0, 3, 5]);
    expect(crashed.run.calls).toBe(clean.run.calls + 3);
    expect(crashed.run.deadLetters).toEqual(clean.run.deadLetters);
    expect(await snapshot(crashed.stores, ['nsw', 'vic'])).toEqual(await snapshot(clean.stores, ['nsw', 'vic']));
    expect((await snapshot(clean.stores, ['nsw', 'vic'])).marks).toEqual([['nsw', T0 + 11 * HALF_HOUR], ['vic', T0 + 10 * HALF_HOUR]]);
  });
});
