// The spec a running worker serves: on the newest applied version when it started on it, on its start
// spec otherwise; a later version adopted on refresh (at most one read per pollMs unless forced); a
// version naming another pipeline, or not parsing, ignored.
import { describe, expect, it } from 'vitest';
import { createMemorySpecStore } from '../store/memory.js';
import { createLogger } from '../streams/logger.js';
import { elec2, withDemandMean } from '../test/support/elec2.js';
import { createLiveSpec } from './live-spec.js';

const logger = createLogger({ level: 'silent' });
const v2 = withDemandMean(elec2);

function setup(pollMs = 1000) {
  const store = createMemorySpecStore();
  let t = 0;
  const changes: number[] = [];
  const live = createLiveSpec({ initial: elec2, store, pollMs, logger, now: () => t, onChange: (_s, v) => changes.push(v) });
  return { store, live, changes, tick: (ms: number) => (t += ms) };
}

describe('createLiveSpec', () => {
  it('is on the newest applied version when it starts on that spec, and adopts a later one on refresh', async () => {
    const { store, live, changes, tick } = setup();
    await store.record('elec2', JSON.stringify(elec2, null, 2), 'first', 0);
    await live.open();
    expect(live.version()).toBe(1);
    await store.record('elec2', JSON.stringify(v2), 'added nswdemand_ma48', 0);
    expect(await live.refresh()).toBe(false); // polled at open, less than pollMs ago
    expect(live.current()).toBe(elec2);
    tick(1000);
    expect(await live.refresh()).toBe(true);
    expect(live.version()).toBe(2);
    expect(live.current().model.features.at(-1)).toBe('nswdemand_ma48');
    expect(changes).toEqual([2]);
    tick(1000);
    expect(await live.refresh()).toBe(false); // nothing newer
  });

  it('keeps an unversioned start spec when the newest applied version is another spec, until a later one', async () => {
    const { store, live } = setup();
    await store.record('elec2', JSON.stringify(v2), 'an earlier setup', 0);
    await live.open();
    expect(live.version()).toBeNull();
    expect(await live.refresh({ force: true })).toBe(false);
    expect(live.current()).toBe(elec2);
    await store.record('elec2', JSON.stringify(elec2), 'back', 0);
    expect(await live.refresh({ force: true })).toBe(true);
    expect(live.version()).toBe(2);
  });

  it('ignores a version naming another pipeline or model, or not parsing, and adopts the next good one', async () => {
    const { store, live } = setup(0);
    await live.open();
    await store.record('elec2', JSON.stringify({ ...v2, model: { ...v2.model, name: 'other' } }), 'renamed model', 0);
    expect(await live.refresh()).toBe(false);
    await store.record('elec2', '{"name": "elec2"}', 'broken', 0);
    expect(await live.refresh()).toBe(false);
    expect(live.current()).toBe(elec2);
    await store.record('elec2', JSON.stringify(v2), 'good', 0);
    expect(await live.refresh()).toBe(true);
    expect(live.version()).toBe(3);
  });

  it('without a store, serves its start spec for good', async () => {
    const live = createLiveSpec({ initial: elec2, pollMs: 0, logger });
    await live.open();
    expect(await live.refresh({ force: true })).toBe(false);
    expect(live.current()).toBe(elec2);
    expect(live.version()).toBeNull();
  });
});
