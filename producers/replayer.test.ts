import { describe, expect, it } from 'vitest';
import type { ClientEvent, FeatureUpdate, GroundTruth } from '../schemas/types.js';
import { createLogger } from '../streams/logger.js';
import type { LooplineProducer } from './client.js';
import type { ReplayPlan } from './replay-plan.js';
import { createReplayer, type ReplayProgress } from './replayer.js';

const logger = createLogger({ level: 'silent' });

/** A plan of n rows, one second of event time apart: the feature of row t is as of row t+1's time, labels 2 s late. */
function plan(n: number): ReplayPlan {
  const out: ReplayPlan = [];
  for (let t = 0; t < n; t++) {
    const at = t * 1000;
    out.push({ at, kind: 'event', record: { event_id: `e${t}`, pipeline: 'p', entity_id: 'x', event_time: at, produced_at: 0, fields: {} } });
    out.push({ at: at + 1000, kind: 'feature', record: { update_id: `f${t}`, feature_set: 's', entity_id: 'x', event_time: at + 1000, values: {} } });
    out.push({ at: at + 2000, kind: 'label', record: { event_id: `e${t}`, pipeline: 'p', label: 'y', event_time: at, label_time: at + 2000 } });
  }
  return out.sort((a, b) => a.at - b.at || ['feature', 'event', 'label'].indexOf(a.kind) - ['feature', 'event', 'label'].indexOf(b.kind));
}

function fakeProducer(onSend?: () => void) {
  const sends: Array<{ kind: 'feature' | 'event' | 'label'; ids: string[]; at: number }> = [];
  const record = (kind: 'feature' | 'event' | 'label', ids: string[]) => {
    if (ids.length > 0) sends.push({ kind, ids, at: Date.now() });
    onSend?.();
    return Promise.resolve();
  };
  const producer: LooplineProducer = {
    connect: async () => {},
    disconnect: async () => {},
    sendRaw: async () => {},
    sendEvents: (events: ClientEvent[]) => record('event', events.map((e) => e.event_id)),
    sendFeatureUpdates: (updates: FeatureUpdate[]) => record('feature', updates.map((u) => u.update_id)),
    sendGroundTruth: (labels: GroundTruth[]) => record('label', labels.map((l) => `${l.event_id}!`)),
  };
  return { producer, sends };
}

const ids = (p: ReplayPlan) => p.map((a) => (a.kind === 'feature' ? a.record.update_id : a.kind === 'label' ? `${a.record.event_id}!` : a.record.event_id));

describe('replayer', () => {
  it("at 'max' sends everything, per topic in plan order, in batches of at most batchMax", async () => {
    const p = plan(10);
    const { producer, sends } = fakeProducer();
    const progress: ReplayProgress[] = [];
    const r = await createReplayer({ producer, logger }).run(p, { speed: 'max', batchMax: 4, onProgress: (x) => progress.push(x) });
    expect(r).toMatchObject({ events: 10, features: 10, labels: 10, aborted: false });
    expect(r.eventIds).toEqual(Array.from({ length: 10 }, (_, t) => `e${t}`));
    for (const s of sends) expect(s.ids.length).toBeLessThanOrEqual(4);
    for (const kind of ['feature', 'event', 'label'] as const) {
      expect(sends.filter((s) => s.kind === kind).flatMap((s) => s.ids)).toEqual(ids(p.filter((a) => a.kind === kind)));
    }
    expect(progress.at(-1)).toEqual({ sent: 30, total: 30, events: 10, features: 10, labels: 10, lagMs: 0 });
  });

  it('paced by event time, each row goes out once due, its feature update before the next event', async () => {
    const p = plan(5); // 6 s of event time
    const { producer, sends } = fakeProducer();
    const started = Date.now();
    await createReplayer({ producer, logger }).run(p, { speed: 20 }); // 300 ms of wall time
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    // Every record goes out no earlier than its due time; the update as of an event's time goes out before it.
    const order = sends.flatMap((s) => s.ids);
    expect([...order].sort()).toEqual([...ids(p)].sort());
    for (let t = 1; t < 5; t++) expect(order.indexOf(`f${t - 1}`)).toBeLessThan(order.indexOf(`e${t}`));
    const due = new Map(p.map((a, i) => [ids(p)[i]!, started + a.at / 20]));
    for (const s of sends) for (const id of s.ids) expect(s.at).toBeGreaterThanOrEqual(due.get(id)! - 2);
  });

  it('caps the event rate with eventsPerSecond', async () => {
    const p = plan(6);
    const { producer, sends } = fakeProducer();
    const started = Date.now();
    await createReplayer({ producer, logger }).run(p, { speed: 'max', eventsPerSecond: 50 }); // 6 events: the last at 100 ms
    expect(Date.now() - started).toBeGreaterThanOrEqual(95);
    const eventTimes = sends.filter((s) => s.kind === 'event').flatMap((s) => s.ids.map(() => s.at - started));
    eventTimes.forEach((ms, k) => expect(ms).toBeGreaterThanOrEqual(k * 20 - 2));
  });

  it('stops between batches on abort and reports what was sent', async () => {
    const controller = new AbortController();
    const { producer } = fakeProducer(() => controller.abort());
    const r = await createReplayer({ producer, logger }).run(plan(50), { speed: 'max', batchMax: 5, signal: controller.signal });
    expect(r.aborted).toBe(true);
    expect(r.events + r.features + r.labels).toBeLessThan(150);
    expect(r.eventIds).toHaveLength(r.events);
  });

  it('backtest: per step, the updates and events in plan order, then (once scored) the step\'s labels, then the wait for the loop to settle', async () => {
    const log: string[] = [];
    const { producer, sends } = fakeProducer();
    const p = plan(5);
    const r = await createReplayer({ producer, logger }).run(p, {
      speed: 'max',
      backtest: {
        step: 2,
        scored: async () => void log.push(`scored after ${sends.at(-1)!.ids.join(',')}`),
        settled: async () => void log.push(`settled after ${sends.filter((s) => s.kind === 'label').flatMap((s) => s.ids).join(',') || 'no label'}`),
      },
    });
    expect(r).toMatchObject({ events: 5, features: 5, labels: 5, aborted: false });
    expect(r.eventIds).toEqual(['e0', 'e1', 'e2', 'e3', 'e4']);
    // Step 1: the updates up to e2's (f1 is as of e2's time: the store serves it to no earlier event), e0 and e1; e0's label, due at e2's time, goes with step 2.
    expect(sends.slice(0, 3).map((s) => [s.kind, s.ids])).toEqual([['feature', ['f0', 'f1']], ['event', ['e0', 'e1']], ['feature', ['f2', 'f3']]]);
    expect(log).toEqual(['scored after e0,e1', 'settled after no label', 'scored after e2,e3', 'settled after e0!,e1!', 'scored after e4', 'settled after e0!,e1!,e2!,e3!,e4!']);
  });

  it('backtest: a step of 1 settles the loop before every event', async () => {
    let settled = 0;
    const { producer, sends } = fakeProducer();
    await createReplayer({ producer, logger }).run(plan(3), { speed: 'max', backtest: { step: 1, scored: async () => {}, settled: async () => void settled++ } });
    expect(settled).toBe(3);
    expect(sends.filter((s) => s.kind === 'event').map((s) => s.ids)).toEqual([['e0'], ['e1'], ['e2']]);
    await expect(createReplayer({ producer, logger }).run(plan(1), { speed: 'max', backtest: { step: 0, scored: async () => {}, settled: async () => {} } })).rejects.toThrow(/step must be a positive integer/);
  });

  it('rejects bad pacing', async () => {
    const { producer } = fakeProducer();
    const replayer = createReplayer({ producer, logger });
    await expect(replayer.run([], { speed: 0 })).rejects.toThrow(/speed/);
    await expect(replayer.run([], { speed: 'max', eventsPerSecond: -1 })).rejects.toThrow(/eventsPerSecond/);
    await expect(replayer.run([], { speed: 'max', batchMax: 0 })).rejects.toThrow(/batchMax/);
  });
});
