import { describe, expect, it } from 'vitest';
import type { InputRecord, OutputRecord, ProcessContext } from './runtime.js';
import { createMemoryStateStore, createStatefulProcess, type StatefulLogic } from './state.js';

/** A counter per key; every third count of a key emits an output and an effect. */
const logic: StatefulLogic<'ClientEvent', { n: number }, undefined, string> = {
  keyOf: (r) => (r.value.pipeline === 'mine' ? r.value.entity_id : null),
  initial: () => ({ n: 0 }),
  validate: (r) => (r.value.event_id === 'bad' ? { stage: 'VALIDATION', code: 'BAD', message: 'bad id' } : null),
  apply(s, r) {
    const n = s.n + 1;
    if (n % 3 !== 0) return { state: { n } };
    const out: OutputRecord = { topic: 'features.vectors', record: 'FeatureVector', key: r.value.entity_id, value: { event_id: `${r.value.entity_id}#${n}`, pipeline: 'mine', entity_id: r.value.entity_id, event_time: 0, produced_at: 0, processed_at: 0, values: {}, missing: [], feature_age_ms: {} } };
    return { state: { n }, outputs: [out], effects: [`${r.value.entity_id}:${n}`] };
  },
};

const rec = (offset: number, entity: string, opts: { pipeline?: string; id?: string } = {}): InputRecord<any> => ({
  topic: 'events.client', record: 'ClientEvent', partition: 0, offset: String(offset), key: entity, timestamp: offset, headers: {},
  value: { event_id: opts.id ?? `e${offset}`, pipeline: opts.pipeline ?? 'mine', entity_id: entity, event_time: offset, produced_at: 0, fields: {} },
});

function ctx(committed: bigint | null, stateEpoch = 1): ProcessContext {
  return { partition: 0, committed: () => committed, heartbeat: async () => {}, signal: new AbortController().signal, stateEpoch };
}

/** A memory store that counts the keys it is asked to load and can be told to fail its next save. */
function countingStore() {
  const inner = createMemoryStateStore<{ n: number }, string>();
  const loads: string[][] = [];
  let failNextSave = false;
  return {
    rows: inner.rows,
    loads,
    failNextSave: () => void (failNextSave = true),
    async load(keys: readonly string[]) {
      loads.push([...keys]);
      return inner.load(keys);
    },
    async save(entries: Parameters<typeof inner.save>[0]) {
      if (failNextSave) {
        failNextSave = false;
        throw new Error('save failed');
      }
      return inner.save(entries);
    },
  };
}

describe('the state scheme', () => {
  it('applies records in order per key, skips other pipelines, dead-letters invalid records and runs effects after saving', async () => {
    const store = createMemoryStateStore<{ n: number }, string>();
    const effects: string[][] = [];
    const process = createStatefulProcess({ ...logic, runEffects: async (e) => void effects.push(e) }, store);
    const r = await process([rec(0, 'a'), rec(1, 'b'), rec(2, 'a'), rec(3, 'x', { pipeline: 'other' }), rec(4, 'a'), rec(5, 'a', { id: 'bad' })], ctx(0n));
    expect(r.outputs.map((o) => (o.value as { event_id: string }).event_id)).toEqual(['a#3']);
    expect(r.deadLetters).toEqual([{ index: 5, stage: 'VALIDATION', code: 'BAD', message: 'bad id' }]);
    expect(effects).toEqual([['a:3']]);
    expect(store.rows.get('a')).toMatchObject({ value: { n: 3 }, applied: { 'events.client/0': '4' } });
    expect(store.rows.get('x')).toBeUndefined();
  });

  it('a replayed chunk (saved, then not committed) re-emits exactly what it emitted and re-runs its effects, without counting again', async () => {
    const store = createMemoryStateStore<{ n: number }, string>();
    const effects: string[] = [];
    const process = createStatefulProcess({ ...logic, runEffects: async (e) => void effects.push(...e) }, store);
    const chunk = [rec(10, 'a'), rec(11, 'a'), rec(12, 'a'), rec(13, 'b')];
    const first = await process(chunk, ctx(10n));
    const replay = await process(chunk, ctx(10n)); // the first attempt's transaction aborted
    expect(replay.outputs).toEqual(first.outputs);
    expect(effects).toEqual(['a:3', 'a:3']);
    expect(store.rows.get('a')!.value).toEqual({ n: 3 });
    // A replay that starts mid-way (the committed offset moved on) and continues with new records.
    const more = await process([rec(12, 'a'), rec(13, 'b'), rec(14, 'a'), rec(15, 'a'), rec(16, 'a')], ctx(12n));
    expect(more.outputs.map((o) => (o.value as { event_id: string }).event_id)).toEqual(['a#3', 'a#6']);
    expect(store.rows.get('a')!.value).toEqual({ n: 6 });
  });

  it('forgets what committed records emitted once they are below the committed offset', async () => {
    const store = createMemoryStateStore<{ n: number }, string>();
    const process = createStatefulProcess(logic, store);
    await process([rec(0, 'a'), rec(1, 'a'), rec(2, 'a')], ctx(0n));
    expect(store.rows.get('a')!.emitted).toHaveLength(1);
    await process([rec(3, 'a'), rec(4, 'a'), rec(5, 'a')], ctx(3n));
    expect(store.rows.get('a')!.emitted.map((e) => e.offset)).toEqual(['5']);
  });

  describe('the cache of what a task saved', () => {
    it('serves the next chunk of the same epoch from memory: only keys never seen are loaded', async () => {
      const store = countingStore();
      const process = createStatefulProcess(logic, store);
      await process([rec(0, 'a'), rec(1, 'b')], ctx(0n));
      await process([rec(2, 'a'), rec(3, 'c')], ctx(2n));
      expect(store.loads).toEqual([['a', 'b'], ['c']]);
      expect(store.rows.get('a')!.value).toEqual({ n: 2 });
    });

    it('is dropped when the epoch changes (a new owner incarnation, a re-fence, a stale session): everything is loaded again', async () => {
      const store = countingStore();
      const process = createStatefulProcess(logic, store);
      await process([rec(0, 'a')], ctx(0n, 1));
      // Another owner of the partition wrote the key meanwhile.
      store.rows.set('a', { value: { n: 10 }, applied: { 'events.client/0': '5' }, emitted: [] });
      await process([rec(6, 'a')], ctx(6n, 2));
      expect(store.loads).toEqual([['a'], ['a']]);
      expect(store.rows.get('a')!.value).toEqual({ n: 11 });
    });

    it('keeps nothing a failed chunk changed: the next attempt reads what the store holds', async () => {
      const store = countingStore();
      const process = createStatefulProcess(logic, store);
      await process([rec(0, 'a')], ctx(0n));
      store.failNextSave();
      await expect(process([rec(1, 'a'), rec(2, 'a')], ctx(1n))).rejects.toThrow('save failed');
      const retry = await process([rec(1, 'a'), rec(2, 'a')], ctx(1n));
      expect(store.loads).toEqual([['a'], ['a']]);
      expect(store.rows.get('a')!.value).toEqual({ n: 3 });
      expect(retry.outputs.map((o) => (o.value as { event_id: string }).event_id)).toEqual(['a#3']);
    });

    it('is bounded: beyond cacheEntries the least recently used keys are loaded again', async () => {
      const store = countingStore();
      const process = createStatefulProcess(logic, store, { cacheEntries: 2 });
      await process([rec(0, 'a'), rec(1, 'b'), rec(2, 'c')], ctx(0n));
      await process([rec(3, 'a'), rec(4, 'c')], ctx(3n));
      expect(store.loads).toEqual([['a', 'b', 'c'], ['a']]);
    });

    it('cacheEntries 0 loads every chunk', async () => {
      const store = countingStore();
      const process = createStatefulProcess(logic, store, { cacheEntries: 0 });
      await process([rec(0, 'a')], ctx(0n));
      await process([rec(1, 'a')], ctx(1n));
      expect(store.loads).toEqual([['a'], ['a']]);
    });
  });
});
