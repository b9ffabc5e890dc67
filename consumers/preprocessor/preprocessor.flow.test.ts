// The preprocessor on the in-memory harness: each event joined with the
// entity's online features as they were at its event time (an as-of join on
// the feature history, within the set's maxAgeMs), after waiting for the
// feature-writer's watermark or the feature-aggregator's progress; an
// unknown entity imputed or dead-lettered as the spec says; invalid events
// dead-lettered; sets keyed by an event field (credit-default's age cohort)
// looked up by that field's value.
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseSpec, type PipelineSpec } from '../../pipelines/spec.js';
import type { ClientEvent, FeatureUpdate, FeatureVector } from '../../schemas/types.js';
import { createMemoryStores, type MemoryStores } from '../../store/memory.js';
import { runFlow, type FlowInput } from '../../streams/testing.js';
import { elec2, shippedSpec, withDemandMean } from '../../test/support/elec2.js';
import { cleanAndCrashed } from '../../test/support/flows.js';
import { featureAggregator } from '../feature-aggregator/index.js';
import { preprocessor } from './index.js';

const T0 = Date.UTC(1997, 0, 15);
const MIN = 60_000;
const NOW = T0 + 999;

/** Elec2 with the watermark wait shortened, so a test that is not about waiting does not wait 3 s. */
const withWait = (spec: PipelineSpec, waitForWatermarkMs: number): PipelineSpec => ({ ...spec, featureSets: spec.featureSets.map((s) => ({ ...s, waitForWatermarkMs })) });
const spec = withWait(elec2, 20);

const event = (id: string, at: number, fields: Partial<Record<string, number | string | null>> = {}, patch: Partial<ClientEvent> = {}): ClientEvent => ({
  event_id: id, pipeline: 'elec2', entity_id: 'nsw', event_time: at, produced_at: at + 1,
  fields: { day: '3', period: 0.5, nswdemand: 0.4, vicprice: 0.003, vicdemand: 0.42, transfer: 0.41, ...fields } as ClientEvent['fields'],
  ...patch,
});
const E = (e: ClientEvent, partition = 0): FlowInput => ({ topic: 'events.client', value: e, key: e.entity_id, partition });
const market = (at: number, prev: number, ma: number, entity = 'nsw'): FeatureUpdate => ({ update_id: `m:${entity}:${at}`, feature_set: 'market', entity_id: entity, event_time: at, values: { nswprice_prev: prev, nswprice_ma48: ma } });
const vectors = (run: { outputs: Array<{ topic: string; value: unknown }> }) => run.outputs.filter((o) => o.topic === 'features.vectors').map((o) => o.value as FeatureVector);

/** Resolves once the preprocessor has begun waiting on the store's watermarks (its waiter registered). */
function waitBegins(stores: MemoryStores): Promise<void> {
  const wait = stores.features.waitForWatermarks.bind(stores.features);
  return new Promise((began) => {
    stores.features.waitForWatermarks = (set, newest, maxMs) => {
      const waiting = wait(set, newest, maxMs);
      began();
      return waiting;
    };
  });
}

/** Lets every pending promise callback run (setImmediate stays real under the fake timers below). */
const settle = () => new Promise<void>((r) => setImmediate(r));

async function storeWith(updates: FeatureUpdate[]): Promise<MemoryStores> {
  const stores = createMemoryStores();
  await stores.features.apply(updates, () => 3600);
  return stores;
}

describe('preprocessor (in-memory harness)', () => {
  it('serves each event the values known at its event time (point in time), not the latest', async () => {
    const stores = await storeWith([market(T0, 0.1, 0.11), market(T0 + 30 * MIN, 0.2, 0.22), market(T0 + 60 * MIN, 0.3, 0.33)]);
    const run = await runFlow(preprocessor, [E(event('a', T0 + 10 * MIN)), E(event('b', T0 + 40 * MIN, { vicprice: null })), E(event('c', T0 + 60 * MIN)), E(event('d', T0 - MIN))], { spec, stores, now: () => NOW });
    expect(run.deadLetters).toEqual([]);
    expect(run.outputs.map((o) => [o.topic, o.record, o.key])).toEqual(Array(4).fill(['features.vectors', 'FeatureVector', 'nsw']));
    const [a, b, c, d] = vectors(run);
    expect(a).toEqual({
      event_id: 'a', pipeline: 'elec2', entity_id: 'nsw', event_time: T0 + 10 * MIN, produced_at: T0 + 10 * MIN + 1, processed_at: NOW,
      values: { day: '3', period: 0.5, nswdemand: 0.4, vicprice: 0.003, vicdemand: 0.42, transfer: 0.41, nswprice_prev: 0.1, nswprice_ma48: 0.11 },
      missing: [], feature_age_ms: { market: 10 * MIN },
    });
    expect([b!.values.nswprice_prev, b!.values.nswprice_ma48, b!.values.vicprice, b!.missing]).toEqual([0.2, 0.22, null, ['vicprice']]);
    expect([c!.values.nswprice_prev, c!.feature_age_ms]).toEqual([0.3, { market: 0 }]);
    // Before any value was known: served as missing, never a value from its future.
    expect([d!.values.nswprice_prev, d!.values.nswprice_ma48, d!.missing.sort(), d!.feature_age_ms]).toEqual([null, null, ['nswprice_ma48', 'nswprice_prev'], {}]);
  });

  it('serves nothing older than the set\'s maxAgeMs', async () => {
    const stores = await storeWith([market(T0, 0.1, 0.11)]);
    const maxAge = elec2.featureSets[0]!.maxAgeMs!;
    const run = await runFlow(preprocessor, [E(event('fresh', T0 + maxAge)), E(event('stale', T0 + maxAge + 1))], { spec: withWait(elec2, 0), stores, now: () => NOW });
    const [fresh, stale] = vectors(run);
    expect(fresh!.values.nswprice_prev).toBe(0.1);
    expect([stale!.values.nswprice_prev, stale!.missing.sort()]).toEqual([null, ['nswprice_ma48', 'nswprice_prev']]);
  });

  describe('the wait for the feature-writer, on a clock the test drives', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('waits for the feature-writer to reach the chunk\'s newest event time, then serves what arrived', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
      const stores = await storeWith([market(T0, 0.1, 0.11)]);
      const metrics = new Registry();
      const began = waitBegins(stores);
      let done = false;
      const running = runFlow(preprocessor, [E(event('a', T0 + 30 * MIN))], { spec: withWait(elec2, 10_000), stores, metrics, now: () => NOW }).finally(() => (done = true));
      await began;
      // 60 ms into the chunk's wait, the writer is still behind the event's time: nothing is served yet.
      await vi.advanceTimersByTimeAsync(60);
      await settle();
      expect(done).toBe(false);
      // Then the update known at the event's time arrives, and ends the wait at once.
      await stores.features.apply([market(T0 + 30 * MIN, 0.2, 0.22)], () => 3600);
      const run = await running;
      expect(vectors(run)[0]!.values.nswprice_prev).toBe(0.2);
      const text = await metrics.metrics();
      expect(text).toMatch(/loopline_preprocessor_watermark_wait_seconds_count\{feature_set="market",caught_up="true"\} 1\n/);
      expect(text).toMatch(/loopline_preprocessor_watermark_wait_seconds_sum\{feature_set="market",caught_up="true"\} 0\.06\n/);
    });

    it('gives up waiting after waitForWatermarkMs and serves what is there', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
      const stores = await storeWith([market(T0, 0.1, 0.11)]);
      const metrics = new Registry();
      const began = waitBegins(stores);
      let done = false;
      const running = runFlow(preprocessor, [E(event('a', T0 + 30 * MIN))], { spec: withWait(elec2, 100), stores, metrics, now: () => NOW }).finally(() => (done = true));
      await began;
      await vi.advanceTimersByTimeAsync(99);
      await settle();
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      const run = await running;
      expect(vectors(run)[0]!.values.nswprice_prev).toBe(0.1);
      const text = await metrics.metrics();
      expect(text).toMatch(/loopline_preprocessor_watermark_wait_seconds_count\{feature_set="market",caught_up="false"\} 1\n/);
      expect(text).toMatch(/loopline_preprocessor_watermark_wait_seconds_sum\{feature_set="market",caught_up="false"\} 0\.1\n/);
    });

    it('waits for an entity the writer has never seen only while the set\'s watermark is behind the event', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
      // The writer has applied the set up to T0 + 30 min; 'vic' has no row yet.
      const stores = await storeWith([market(T0 + 30 * MIN, 0.1, 0.11)]);
      const metrics = new Registry();
      // An event of 'vic' at the set's watermark: nothing is on its way for it, no wait.
      const past = await runFlow(preprocessor, [E(event('v1', T0 + 30 * MIN, {}, { entity_id: 'vic' }))], { spec: withWait(elec2, 10_000), stores, metrics, now: () => NOW });
      expect(vectors(past)[0]!.missing.sort()).toEqual(['nswprice_ma48', 'nswprice_prev']);
      expect(await metrics.metrics()).toMatch(/loopline_preprocessor_watermark_wait_seconds_sum\{feature_set="market",caught_up="true"\} 0\n/);
      // An event of 'vic' after it: its first value may be on its way, so the chunk waits for it.
      const began = waitBegins(stores);
      const later = new Registry();
      const running = runFlow(preprocessor, [E(event('v2', T0 + 60 * MIN, {}, { entity_id: 'vic' }))], { spec: withWait(elec2, 10_000), stores, metrics: later, now: () => NOW });
      await began;
      await vi.advanceTimersByTimeAsync(25);
      await stores.features.apply([market(T0 + 60 * MIN, 0.5, 0.55, 'vic')], () => 3600);
      const run = await running;
      expect(vectors(run)[0]!.values.nswprice_prev).toBe(0.5);
      expect(await later.metrics()).toMatch(/loopline_preprocessor_watermark_wait_seconds_sum\{feature_set="market",caught_up="true"\} 0\.025\n/);
    });
  });

  it('imputes an entity without features (missingEntity: impute), or dead-letters it (dead-letter)', async () => {
    const stores = await storeWith([market(T0, 0.1, 0.11)]);
    const inputs = [E(event('known', T0 + MIN)), E(event('unknown', T0 + MIN, {}, { entity_id: 'vic' }))];
    const imputed = await runFlow(preprocessor, inputs, { spec, stores, now: () => NOW });
    expect(imputed.deadLetters).toEqual([]);
    const v = vectors(imputed).find((x) => x.entity_id === 'vic')!;
    expect([v.values.nswprice_prev, v.values.nswprice_ma48, v.missing.sort(), v.feature_age_ms]).toEqual([null, null, ['nswprice_ma48', 'nswprice_prev'], {}]);

    const strict = await runFlow(preprocessor, inputs, { spec: { ...spec, missingEntity: 'dead-letter' }, stores, now: () => NOW });
    expect(vectors(strict).map((x) => x.event_id)).toEqual(['known']);
    expect(strict.deadLetters).toEqual([{ topic: 'events.client', partition: 0, offset: '1', failure: { stage: 'VALIDATION', code: 'UNKNOWN_ENTITY', message: expect.stringContaining('entity "vic" has no online features in set "market"') } }]);
  });

  it('dead-letters invalid events with the reason and serves the rest; an absent field is missing, not invalid', async () => {
    const stores = await storeWith([market(T0, 0.1, 0.11)]);
    const run = await runFlow(
      preprocessor,
      [
        E(event('ok', T0 + MIN)),
        E(event('nan', T0 + MIN, { nswdemand: Number.NaN })),
        E(event('type', T0 + MIN, { period: 'noon' })),
        E(event('cat', T0 + MIN, { day: 3 })),
        E(event('other', T0 + MIN, {}, { pipeline: 'sea' })),
        E(event('noentity', T0 + MIN, {}, { entity_id: '' })),
        E(event('', T0 + MIN)),
        E({ ...event('absent', T0 + MIN), fields: { day: '3', period: 0.5 } }),
      ],
      { spec, stores, now: () => NOW },
    );
    expect(run.deadLetters.map((d) => [d.offset, d.failure.stage, d.failure.code])).toEqual([
      ['1', 'VALIDATION', 'NON_FINITE'],
      ['2', 'VALIDATION', 'WRONG_TYPE'],
      ['3', 'VALIDATION', 'WRONG_TYPE'],
      ['4', 'VALIDATION', 'WRONG_PIPELINE'],
      ['5', 'VALIDATION', 'MISSING_ENTITY'],
      ['6', 'VALIDATION', 'MISSING_ID'],
    ]);
    expect(run.deadLetters[0]!.failure.message).toMatch(/nswdemand/);
    const out = vectors(run);
    expect(out.map((v) => v.event_id)).toEqual(['ok', 'absent']);
    expect(out[1]!.missing.sort()).toEqual(['nswdemand', 'transfer', 'vicdemand', 'vicprice']);
    expect(out[1]!.values.vicprice).toBeNull();
  });

  it('picks up a spec version applied while it runs: the next chunk serves the new feature set', async () => {
    const stores = await storeWith([market(T0, 0.1, 0.11)]);
    await stores.specs.record('elec2', JSON.stringify(spec), 'first', T0);
    const opts = { spec, stores, now: () => NOW, settings: { specPollIntervalMs: 0 } };
    const before = await runFlow(preprocessor, [E(event('a', T0 + 10 * MIN))], opts);
    expect(Object.keys(vectors(before)[0]!.values)).not.toContain('nswdemand_ma48');

    // setup --spec applies version 2 (the aggregator, not run here, has written the new set's value).
    await stores.specs.record('elec2', JSON.stringify(withDemandMean(spec, { waitForWatermarkMs: 0 })), 'added inputs nswdemand_ma48', T0);
    await stores.features.apply([{ update_id: 'd:1', feature_set: 'rolling', entity_id: 'nsw', event_time: T0, values: { nswdemand_ma48: 0.42 } }], () => 3600);
    const after = await runFlow(preprocessor, [E(event('b', T0 + 20 * MIN))], { ...opts, impl: before.impl, offsets: before.offsets });
    const v = vectors(after)[0]!;
    expect(v.values).toMatchObject({ nswprice_prev: 0.1, nswdemand_ma48: 0.42 });
    expect(v.missing).not.toContain('nswdemand_ma48');
  });

  it('keeps serving its start spec when the applied version is another spec, and ignores a version naming another pipeline', async () => {
    const stores = await storeWith([market(T0, 0.1, 0.11)]);
    await stores.specs.record('elec2', JSON.stringify(withDemandMean(spec)), 'an earlier setup', T0);
    const opts = { spec, stores, now: () => NOW, settings: { specPollIntervalMs: 0 } };
    const first = await runFlow(preprocessor, [E(event('a', T0 + 10 * MIN))], opts);
    expect(Object.keys(vectors(first)[0]!.values)).not.toContain('nswdemand_ma48');
    await stores.specs.record('elec2', JSON.stringify({ ...withDemandMean(spec), name: 'other' }), 'renamed', T0);
    const second = await runFlow(preprocessor, [E(event('b', T0 + 20 * MIN))], { ...opts, impl: first.impl, offsets: first.offsets });
    expect(Object.keys(vectors(second)[0]!.values)).not.toContain('nswdemand_ma48');
  });

  it('gives the same vectors and dead letters with a crash after a chunk', async () => {
    const inputs: FlowInput[] = [];
    for (let n = 0; n < 12; n++) inputs.push(E(event(`e${n}`, T0 + n * 10 * MIN, n === 5 ? { transfer: Number.POSITIVE_INFINITY } : {}, n % 4 === 3 ? { entity_id: 'vic' } : {}), n % 2));
    const prepare = async (s: MemoryStores) => void (await s.features.apply([market(T0, 0.1, 0.11), market(T0 + 60 * MIN, 0.2, 0.22), market(T0 + 30 * MIN, 0.5, 0.55, 'vic'), market(T0 + 120 * MIN, 0.3, 0.33)], () => 3600));
    const { clean, crashed } = await cleanAndCrashed(preprocessor, inputs, () => ({ spec: withWait(elec2, 0), now: () => NOW, batchMax: 2 }), [0, 2, 5], prepare);
    expect(crashed.run.calls).toBe(clean.run.calls + 3);
    expect(crashed.run.outputs).toEqual(clean.run.outputs);
    expect(crashed.run.deadLetters).toEqual(clean.run.deadLetters);
    expect(clean.run.outputs).toHaveLength(11);
    expect(clean.run.deadLetters.map((d) => d.failure.code)).toEqual(['NON_FINITE']);
  });

  describe('a set keyed by an event field (credit-default: age_cohort by age)', () => {
    const credit = shippedSpec('credit-default');
    const C0 = Date.UTC(2005, 9, 1);
    const DAY = 86_400_000;
    const client = (id: string, age: number | null, at = C0 + DAY): ClientEvent => ({
      event_id: id, pipeline: 'credit-default', entity_id: `client-${id}`, event_time: at, produced_at: at,
      fields: { limit_bal: 20000, sex: '2', education: '2', marriage: '1', age, pay_sep: 0 },
    });
    const cohort = (age: string, rate: number, at: number): FeatureUpdate => ({ update_id: `age_cohort:${age}:${at}`, feature_set: 'age_cohort', entity_id: age, event_time: at, values: { age_default_rate: rate } });

    it('looks the set up by the field\'s value, as of the event time; no key value or no row is missing', async () => {
      expect(credit.featureSets[0]!.key).toEqual({ field: 'age' });
      const stores = await storeWith([cohort('35', 0.2, C0), cohort('35', 0.25, C0 + 2 * DAY), cohort('41', 0.1, C0)]);
      const run = await runFlow(preprocessor, [E(client('1', 35)), E(client('2', 35, C0 + 3 * DAY)), E(client('3', 41)), E(client('4', 36)), E(client('5', null))], { spec: credit, stores, now: () => NOW });
      expect(run.deadLetters).toEqual([]);
      const byId = new Map(vectors(run).map((v) => [v.event_id, v]));
      expect(byId.get('1')!.values.age_default_rate).toBe(0.2);
      expect(byId.get('1')!.feature_age_ms).toEqual({ age_cohort: DAY });
      expect(byId.get('1')!.entity_id).toBe('client-1');
      expect(byId.get('2')!.values.age_default_rate).toBe(0.25);
      expect(byId.get('3')!.values.age_default_rate).toBe(0.1);
      for (const id of ['4', '5']) {
        expect(byId.get(id)!.values.age_default_rate).toBeNull();
        expect(byId.get(id)!.missing).toContain('age_default_rate');
      }
    });

    it('dead-letters an event whose key value has no row under missingEntity: dead-letter, naming the field and value', async () => {
      const stores = await storeWith([cohort('35', 0.2, C0)]);
      const run = await runFlow(preprocessor, [E(client('1', 35)), E(client('4', 36))], { spec: { ...credit, missingEntity: 'dead-letter' }, stores, now: () => NOW });
      expect(vectors(run).map((v) => v.event_id)).toEqual(['1']);
      expect(run.deadLetters.map((d) => [d.offset, d.failure.code])).toEqual([['1', 'UNKNOWN_ENTITY']]);
      expect(run.deadLetters[0]!.failure.message).toMatch(/age 36 has no online features in set "age_cohort"/);
    });
  });

  describe('an events-sourced set: waits for the feature-aggregator of the same partitions', () => {
    const raw = structuredClone(elec2) as unknown as Record<string, any>;
    raw.featureSets[0].waitForWatermarkMs = 0;
    raw.featureSets.push({
      name: 'demand', source: 'events', features: { nswdemand_mean2: 'numeric', seen: 'numeric' },
      aggregates: { nswdemand_mean2: { field: 'nswdemand', op: 'mean', window: 2 }, seen: { field: 'nswdemand', op: 'count', window: 10 } },
      availableAfterMs: MIN, pointInTime: true, waitForWatermarkMs: 5000,
    });
    const events = (n: number) => Array.from({ length: n }, (_, i) => E(event(`e${i}`, T0 + i * 10 * MIN, { nswdemand: i + 1 })));

    it('serves each event the aggregates of the entity\'s earlier events, never its own, once the aggregator has caught up', async () => {
      const withEvents = parseSpec(raw);
      const stores = createMemoryStores();
      const inputs = events(5);
      // The preprocessor starts first; the aggregator starts once the preprocessor has read its progress
      // on partition 0 (and found it behind), so the wait is exercised on every run, whatever the speed.
      const progress = stores.progress(featureAggregator.name);
      const read = progress.read.bind(progress);
      let waiting!: () => void;
      const preprocessorWaits = new Promise<void>((r) => (waiting = r));
      progress.read = async (topic) => {
        const at = await read(topic);
        waiting();
        return at;
      };
      const [pre] = await Promise.all([
        runFlow(preprocessor, inputs, { spec: withEvents, stores, now: () => NOW }),
        preprocessorWaits.then(() => runFlow(featureAggregator, inputs, { spec: withEvents, stores })),
      ]);
      const served = vectors(pre).map((v) => [v.event_id, v.values.nswdemand_mean2, v.values.seen]);
      expect(served).toEqual([['e0', null, null], ['e1', 1, 1], ['e2', 1.5, 2], ['e3', 2.5, 3], ['e4', 3.5, 4]]);
    });

    it('gives up after waitForWatermarkMs when the aggregator is behind', async () => {
      raw.featureSets[1].waitForWatermarkMs = 100;
      const withEvents = parseSpec(raw);
      const metrics = new Registry();
      const run = await runFlow(preprocessor, events(2), { spec: withEvents, stores: createMemoryStores(), metrics, now: () => NOW });
      expect(vectors(run).map((v) => v.values.seen)).toEqual([null, null]);
      expect(await metrics.metrics()).toMatch(/loopline_preprocessor_watermark_wait_seconds_count\{feature_set="demand",caught_up="false"\} 1/);
    });
  });
});
