// The feature-aggregator on the in-memory harness: per entity, aggregates of
// its own recent events go to the online store as of event time +
// availableAfterMs; how far it got is recorded per partition for the
// preprocessor; events it cannot use are skipped (the preprocessor
// dead-letters them); a crash after a chunk and a redelivery of committed
// events leave the store and the state exactly as without them.
import { describe, expect, it } from 'vitest';
import { parseSpec } from '../../pipelines/spec.js';
import type { ClientEvent } from '../../schemas/types.js';
import { createMemoryStores, type MemoryStores } from '../../store/memory.js';
import { runFlow, type FlowInput } from '../../streams/testing.js';
import { elec2 } from '../../test/support/elec2.js';
import { cleanAndCrashed } from '../../test/support/flows.js';
import { FEATURE_AGGREGATOR, featureAggregator } from './index.js';

const raw = structuredClone(elec2) as unknown as Record<string, any>;
raw.featureSets.push({
  name: 'demand',
  source: 'events',
  features: { nswdemand_mean3: 'numeric', day_last: 'categorical', seen: 'numeric' },
  aggregates: {
    nswdemand_mean3: { field: 'nswdemand', op: 'mean', window: 3 },
    day_last: { field: 'day', op: 'last' },
    seen: { field: 'nswdemand', op: 'count', window: 10 },
  },
  availableAfterMs: 60_000,
  pointInTime: true,
  waitForWatermarkMs: 0,
});
const spec = parseSpec(raw);
const T0 = Date.UTC(1997, 0, 15);
const HALF_HOUR = 1_800_000;

const event = (n: number, entity: string, nswdemand: number | null, patch: Partial<ClientEvent> = {}, fields: Partial<ClientEvent['fields']> = {}): ClientEvent => ({
  event_id: `e${n}`, pipeline: 'elec2', entity_id: entity, event_time: T0 + n * HALF_HOUR, produced_at: T0 + n * HALF_HOUR,
  fields: { day: String((n % 7) + 1), period: 0.5, nswdemand, vicprice: 0.003, vicdemand: 0.4, transfer: 0.4, ...fields } as ClientEvent['fields'],
  ...patch,
});
const E = (e: ClientEvent, partition = 0): FlowInput => ({ topic: 'events.client', value: e, key: e.entity_id, partition });

async function demandOf(stores: MemoryStores, entities: string[]) {
  const latest = await stores.features.lookup('demand', entities);
  const marks = await stores.features.watermarks('demand', entities);
  const history = await Promise.all(entities.map(async (e) => [e, [...(await stores.features.history('demand', e, ['nswdemand_mean3', 'day_last', 'seen'], 0, Number.MAX_SAFE_INTEGER))]]));
  return { latest: [...latest].map(([e, row]) => [e, [...row]]), marks: [...marks], history };
}

describe('feature-aggregator (in-memory harness)', () => {
  it('aggregates each entity\'s own events, known availableAfterMs after each event', async () => {
    const stores = createMemoryStores();
    const run = await runFlow(featureAggregator, [E(event(0, 'nsw', 1)), E(event(1, 'vic', 10)), E(event(2, 'nsw', 2)), E(event(3, 'nsw', null)), E(event(4, 'nsw', 6)), E(event(5, 'vic', 20))], { spec, stores });
    expect(run.outputs).toEqual([]);
    expect(run.deadLetters).toEqual([]);
    const rows = await stores.features.lookup('demand', ['nsw', 'vic']);
    const values = (e: string) => Object.fromEntries([...rows.get(e)!].map(([f, s]) => [f, s.value]));
    // nsw: 1, 2, null, 6 → the mean of the last three skips the missing value, the count counts it.
    expect(values('nsw')).toEqual({ nswdemand_mean3: 4, day_last: '5', seen: 4 });
    expect(values('vic')).toEqual({ nswdemand_mean3: 15, day_last: '6', seen: 2 });
    expect(rows.get('nsw')!.get('seen')).toMatchObject({ asOf: T0 + 4 * HALF_HOUR + 60_000, prevValue: 3, prevAsOf: T0 + 3 * HALF_HOUR + 60_000 });
    expect((await stores.features.watermarks('demand', ['nsw', 'vic']))).toEqual(new Map([['nsw', T0 + 4 * HALF_HOUR + 60_000], ['vic', T0 + 5 * HALF_HOUR + 60_000]]));
    // Every event's aggregate is in the history, as of its own time.
    const seen = (await stores.features.history('demand', 'nsw', ['seen'], 0, Number.MAX_SAFE_INTEGER)).get('seen')!;
    expect(seen.map((h) => [h.asOf - T0 - 60_000, h.value])).toEqual([[4 * HALF_HOUR, 4], [3 * HALF_HOUR, 3], [2 * HALF_HOUR, 2], [0, 1]]);
  });

  it('records how far it got per partition, after each chunk', async () => {
    const stores = createMemoryStores();
    const progress = stores.progress(FEATURE_AGGREGATOR);
    await runFlow(featureAggregator, [E(event(0, 'nsw', 1), 0), E(event(1, 'nsw', 2), 0), E(event(2, 'vic', 3), 1)], { spec, stores });
    expect(await progress.read('events.client')).toEqual(new Map([[0, 2n], [1, 1n]]));
    const offsets = new Map([['events.client/0', 2n]]);
    await runFlow(featureAggregator, [E(event(3, 'nsw', 4), 0)], { spec, stores, offsets });
    expect((await progress.read('events.client')).get(0)).toBe(3n);
  });

  it('skips events it cannot use (invalid, another pipeline) without a dead letter, and still records progress', async () => {
    const stores = createMemoryStores();
    const run = await runFlow(
      featureAggregator,
      [E(event(0, 'nsw', 1)), E(event(1, 'nsw', Number.NaN)), E(event(2, 'nsw', 2, {}, { day: 3 as unknown as string })), E(event(3, 'nsw', 100, { pipeline: 'sea' })), E(event(4, '', 5))],
      { spec, stores },
    );
    expect(run.deadLetters).toEqual([]);
    const row = (await stores.features.lookup('demand', ['nsw'])).get('nsw')!;
    expect(row.get('seen')!.value).toBe(1);
    expect(row.get('nswdemand_mean3')!.value).toBe(1);
    expect((await stores.progress(FEATURE_AGGREGATOR).read('events.client')).get(0)).toBe(5n);
  });

  it('a crash after a chunk leaves the store, the state and the progress exactly as without it', async () => {
    const inputs: FlowInput[] = [];
    for (let n = 0; n < 16; n++) inputs.push(E(event(n, n % 3 === 0 ? 'vic' : 'nsw', n), n % 2));
    const { clean, crashed } = await cleanAndCrashed(featureAggregator, inputs, () => ({ spec, batchMax: 3 }), [0, 1, 4]);
    expect(crashed.run.calls).toBe(clean.run.calls + 3);
    expect(await demandOf(crashed.stores, ['nsw', 'vic'])).toEqual(await demandOf(clean.stores, ['nsw', 'vic']));
    const state = (s: MemoryStores) => [...(s.states.get(FEATURE_AGGREGATOR) as unknown as { rows: Map<string, { value: unknown }> }).rows].map(([k, e]) => [k, e.value]);
    expect(state(crashed.stores)).toEqual(state(clean.stores));
    expect(await crashed.stores.progress(FEATURE_AGGREGATOR).read('events.client')).toEqual(await clean.stores.progress(FEATURE_AGGREGATOR).read('events.client'));
    expect((await clean.stores.features.lookup('demand', ['nsw'])).get('nsw')!.get('seen')!.value).toBe(10);
  });

  it('counts a redelivered event once (the group re-reads committed offsets after a rebalance)', async () => {
    const stores = createMemoryStores();
    const inputs = [E(event(0, 'nsw', 1)), E(event(1, 'nsw', 2)), E(event(2, 'nsw', 3))];
    await runFlow(featureAggregator, inputs, { spec, stores });
    const once = await demandOf(stores, ['nsw']);
    // The same offsets again, with a fresh worker instance.
    await runFlow(featureAggregator, inputs, { spec, stores });
    expect(await demandOf(stores, ['nsw'])).toEqual(once);
    expect((await stores.features.lookup('demand', ['nsw'])).get('nsw')!.get('seen')!.value).toBe(3);
  });
});
