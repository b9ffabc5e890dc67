import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadSpec, parseSpec } from '../pipelines/spec.js';
import { ConfigError } from '../core/errors.js';
import { parseCsv, readCsv } from './csv.js';
import { buildReplayPlan, pointInTimeRows, type ReplayPlan } from './replay-plan.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const MIN = 60_000;
const T0 = Date.UTC(2024, 0, 1);

const spec = parseSpec({
  name: 'tiny',
  task: 'binary',
  entity: { name: 'shop' },
  events: { fields: { x: 'numeric', color: 'categorical' } },
  featureSets: [{ name: 'stats', features: { y_prev: 'numeric', y_mean2: 'numeric', color_prev: 'categorical' }, maxAgeMs: 90_000 }],
  model: { name: 'tiny-model', features: ['x', 'color', 'y_prev', 'y_mean2'] },
  label: { type: 'categorical', classes: ['no', 'yes'], delayMs: 2 * MIN, horizonMs: 10 * MIN },
  replay: {
    csv: 'tiny.csv',
    eventId: 'id',
    eventTime: 'ts',
    entityId: { column: 'shop' },
    label: 'ok',
    feeds: [
      {
        featureSet: 'stats',
        availableAfterMs: MIN,
        features: {
          y_prev: { lag: { column: 'y', rows: 0 } },
          y_mean2: { mean: { column: 'y', rows: 2 } },
          color_prev: { lag: { column: 'color', rows: 1 } },
        },
      },
    ],
  },
});

// Shop s1 has rows a, b, d, e; s2 has c. Minute spacing, then a 3-minute gap before e.
const rows = parseCsv(
  [
    'id,ts,shop,x,color,y,ok',
    'a,2024-01-01T00:00:00,s1,1.5,red,10,yes',
    'b,2024-01-01T00:01:00,s1,,blue,20,no',
    'c,2024-01-01T00:02:00,s2,NaN,"green, light",30,yes',
    'd,2024-01-01T00:03:00,s1,4,red,,no',
    'e,2024-01-01T00:06:00,s1,5,red,50,',
  ].join('\n'),
);

const summary = (plan: ReplayPlan) =>
  plan.map((a) => `${(a.at - T0) / MIN} ${a.kind} ${a.kind === 'feature' ? a.record.update_id : a.record.event_id}`);

describe('buildReplayPlan', () => {
  const plan = buildReplayPlan(spec, rows);

  it('orders by time; at a tie feature updates, then events, then labels', () => {
    expect(summary(plan)).toEqual([
      '0 event a',
      '1 feature stats:s1:a',
      '1 event b',
      '2 feature stats:s1:b',
      '2 event c',
      '2 label a',
      '3 feature stats:s2:c',
      '3 event d',
      '3 label b',
      '4 feature stats:s1:d',
      '4 label c',
      '5 label d',
      '6 event e',
      '7 feature stats:s1:e',
    ]);
  });

  it('builds events: UTC times, typed fields, produced_at left to the sender', () => {
    const events = plan.flatMap((a) => (a.kind === 'event' ? [a.record] : []));
    expect(events[0]).toEqual({ event_id: 'a', pipeline: 'tiny', entity_id: 's1', event_time: T0, produced_at: 0, fields: { x: 1.5, color: 'red' } });
    expect(events.map((e) => e.fields)).toEqual([
      { x: 1.5, color: 'red' },
      { x: null, color: 'blue' },
      { x: null, color: 'green, light' },
      { x: 4, color: 'red' },
      { x: 5, color: 'red' },
    ]);
  });

  it("computes feeds from the entity's rows up to this one, as of availableAfterMs later", () => {
    const updates = plan.flatMap((a) => (a.kind === 'feature' ? [a.record] : []));
    expect(updates.map((u) => [u.update_id, (u.event_time - T0) / MIN, u.values])).toEqual([
      ['stats:s1:a', 1, { y_prev: 10, y_mean2: 10, color_prev: null }],
      ['stats:s1:b', 2, { y_prev: 20, y_mean2: 15, color_prev: 'red' }],
      ['stats:s2:c', 3, { y_prev: 30, y_mean2: 30, color_prev: null }],
      ['stats:s1:d', 4, { y_prev: null, y_mean2: 20, color_prev: 'blue' }],
      ['stats:s1:e', 7, { y_prev: 50, y_mean2: 50, color_prev: 'red' }],
    ]);
    for (const a of plan) if (a.kind === 'feature') expect(a.at).toBe(a.record.event_time);
    expect(updates[0]).toMatchObject({ feature_set: 'stats', entity_id: 's1' });
  });

  it('delivers each label delayMs after its event; a row without a label has none', () => {
    const labels = plan.flatMap((a) => (a.kind === 'label' ? [a] : []));
    expect(labels.map((l) => l.record)).toEqual([
      { event_id: 'a', pipeline: 'tiny', label: 'yes', event_time: T0, label_time: T0 + 2 * MIN },
      { event_id: 'b', pipeline: 'tiny', label: 'no', event_time: T0 + MIN, label_time: T0 + 3 * MIN },
      { event_id: 'c', pipeline: 'tiny', label: 'yes', event_time: T0 + 2 * MIN, label_time: T0 + 4 * MIN },
      { event_id: 'd', pipeline: 'tiny', label: 'no', event_time: T0 + 3 * MIN, label_time: T0 + 5 * MIN },
    ]);
    for (const l of labels) expect(l.at).toBe(l.record.label_time);
  });

  it('numeric labels are numbers', () => {
    const reg = parseSpec({ ...structuredClone(spec), task: 'regression', label: { ...spec.label, type: 'numeric', classes: [] } });
    const labels = buildReplayPlan(reg, rows).flatMap((a) => (a.kind === 'label' ? [a.record.label] : []));
    expect(labels).toEqual([]); // "yes"/"no" are not numbers: no ground truth
    const numeric = parseCsv('id,ts,shop,x,color,y,ok\na,2024-01-01T00:00:00,s1,1,red,1,0.25');
    expect(buildReplayPlan(reg, numeric).find((a) => a.kind === 'label')?.record).toMatchObject({ label: 0.25 });
  });

  it('is deterministic', () => {
    expect(buildReplayPlan(spec, rows)).toEqual(plan);
    expect(JSON.stringify(buildReplayPlan(spec, rows))).toBe(JSON.stringify(plan));
  });

  it('offset and limit select rows; feeds still see earlier rows as history', () => {
    const part = buildReplayPlan(spec, rows, { offset: 1, limit: 2 });
    expect(part.filter((a) => a.kind === 'event').map((a) => a.record.event_id)).toEqual(['b', 'c']);
    const b = part.find((a) => a.kind === 'feature' && a.record.update_id === 'stats:s1:b');
    expect(b?.record).toMatchObject({ values: { y_prev: 20, y_mean2: 15, color_prev: 'red' } });
    expect(buildReplayPlan(spec, rows, { limit: 0 })).toEqual([]);
    expect(buildReplayPlan(spec, rows, { offset: 9 })).toEqual([]);
    expect(() => buildReplayPlan(spec, rows, { offset: -1 })).toThrow(ConfigError);
  });

  it('an offset plan warms the store up: the latest earlier update per entity, due at the window start', () => {
    const tail = buildReplayPlan(spec, rows, { offset: 3 });
    expect(summary(tail)).toEqual([
      '3 feature stats:s1:b',
      '3 feature stats:s2:c',
      '3 event d',
      '4 feature stats:s1:d',
      '5 label d',
      '6 event e',
      '7 feature stats:s1:e',
    ]);
    expect(tail[0]?.record).toMatchObject({ event_time: T0 + 2 * MIN }); // the true as-of
    expect(pointInTimeRows(spec, tail).map((r) => r.values)).toEqual(pointInTimeRows(spec, plan).slice(3).map((r) => r.values));

    // Values known only after the window starts keep their own time.
    const slow = parseSpec({ ...structuredClone(spec), replay: { ...spec.replay!, feeds: [{ ...spec.replay!.feeds[0]!, availableAfterMs: 2.5 * MIN }] } });
    const slowTail = buildReplayPlan(slow, rows, { offset: 2 });
    expect(summary(slowTail).slice(0, 3)).toEqual(['2 event c', '2.5 feature stats:s1:a', '3 event d']);
    expect(pointInTimeRows(slow, slowTail)).toEqual(pointInTimeRows(slow, buildReplayPlan(slow, rows)).slice(2));
  });

  it('names missing columns, bad times and repeated ids', () => {
    const noY = parseCsv('id,ts,shop,x,color,ok\na,2024-01-01T00:00:00,s1,1,red,yes');
    expect(() => buildReplayPlan(spec, noY)).toThrow(ConfigError);
    expect(() => buildReplayPlan(spec, noY)).toThrow(/column "y" \(replay\.feeds\.0\.features\.y_prev\.lag\.column\)/);
    const badTime = parseCsv('id,ts,shop,x,color,y,ok\na,yesterday,s1,1,red,1,yes');
    expect(() => buildReplayPlan(spec, badTime)).toThrow(/row 0 \(a\): ts "yesterday" is not a date-time/);
    const twice = parseCsv('id,ts,shop,x,color,y,ok\na,2024-01-01,s1,1,red,1,yes\na,2024-01-02,s1,1,red,1,yes');
    expect(() => buildReplayPlan(spec, twice)).toThrow(/row 1: id "a" repeats/);
  });

  it('reads times with a zone as given and without one as UTC', () => {
    const zoned = parseCsv('id,ts,shop,x,color,y,ok\na,2024-01-01T01:00:00+01:00,s1,1,red,1,yes\nb,2024-01-01,s1,1,red,1,yes');
    expect(buildReplayPlan(spec, zoned).filter((a) => a.kind === 'event').map((a) => a.record.event_time)).toEqual([T0, T0]);
  });
});

describe('pointInTimeRows', () => {
  const plan = buildReplayPlan(spec, rows);
  const pit = pointInTimeRows(spec, plan);

  it('serves each event the latest feed values known at its time, null when none or stale', () => {
    expect(pit.map((r) => [r.event.event_id, r.values, r.label])).toEqual([
      ['a', { x: 1.5, color: 'red', y_prev: null, y_mean2: null, color_prev: null }, 'yes'],
      // a's update is as of exactly b's time: visible. b's own (as of 00:02) is not.
      ['b', { x: null, color: 'blue', y_prev: 10, y_mean2: 10, color_prev: null }, 'no'],
      // another entity's values are never served.
      ['c', { x: null, color: 'green, light', y_prev: null, y_mean2: null, color_prev: null }, 'yes'],
      ['d', { x: 4, color: 'red', y_prev: 20, y_mean2: 15, color_prev: 'red' }, 'no'],
      // d's update is 2 minutes old at e's time, past maxAgeMs (90 s): stale, so null.
      ['e', { x: 5, color: 'red', y_prev: null, y_mean2: null, color_prev: null }, null],
    ]);
  });

  it('never serves a value whose as-of time is after the event, whatever the plan order', () => {
    const early = plan.find((a) => a.kind === 'feature' && a.record.update_id === 'stats:s1:b')!;
    const shuffled: ReplayPlan = [early, ...plan.filter((a) => a !== early)];
    const b = pointInTimeRows(spec, shuffled).find((r) => r.event.event_id === 'b');
    expect(b?.values).toMatchObject({ y_prev: null, y_mean2: null });
  });
});

describe('the Elec2 replay', () => {
  const { spec: elec2, dir } = loadSpec(path.join(here, '..', 'pipelines', 'elec2.json'));
  const all = readCsv(path.join(dir, elec2.replay!.csv));
  const plan = buildReplayPlan(elec2, all, { limit: 200 });
  const count = (kind: string) => plan.filter((a) => a.kind === kind).length;

  it('has one event, one feature update and one label per row', () => {
    expect([count('event'), count('feature'), count('label')]).toEqual([200, 200, 200]);
    const first = plan[0];
    expect(first?.kind).toBe('event');
    expect(first?.record).toMatchObject({ event_id: '0', entity_id: 'nsw', pipeline: 'elec2', event_time: Date.UTC(1996, 4, 7) });
    for (const a of plan) {
      if (a.kind === 'label') expect(a.record.label_time - a.record.event_time).toBe(86_400_000);
    }
  });

  it("serves the previous period's price and its 48-period mean, never the event's own price", () => {
    const pit = pointInTimeRows(elec2, plan);
    const price = all.slice(0, 200).map((r) => Number(r.nswprice));
    expect(pit[0]?.values.nswprice_prev).toBeNull();
    for (let t = 1; t < 200; t++) {
      const row = pit[t]!;
      expect(row.event.event_id).toBe(String(t));
      expect(row.values.nswprice_prev).toBe(price[t - 1]);
      const window = price.slice(Math.max(0, t - 48), t);
      expect(row.values.nswprice_ma48).toBeCloseTo(window.reduce((s, v) => s + v, 0) / window.length, 12);
      expect(row.label).toBe(all[t]!.class);
      expect(Object.keys(row.values)).toEqual(expect.arrayContaining(elec2.model.features));
    }
  });

  it('serves an offset replay exactly what the full replay would', () => {
    const full = pointInTimeRows(elec2, plan);
    const tail = pointInTimeRows(elec2, buildReplayPlan(elec2, all, { offset: 120, limit: 80 }));
    expect(tail).toEqual(full.slice(120));
  });
});

describe('replay.eventTime formats', () => {
  const base = { ...structuredClone(spec), featureSets: [], replay: { ...structuredClone(spec.replay!), feeds: [] }, model: { name: 'tiny-model', features: ['x'] } };
  const timed = (eventTime: unknown) => parseSpec({ ...base, replay: { ...base.replay, eventTime } });
  const times = (eventTime: unknown, csv: string, opts = {}) =>
    buildReplayPlan(timed(eventTime), parseCsv(csv), opts).filter((a) => a.kind === 'event').map((a) => a.record.event_time);
  const header = 'id,ts,hr,shop,x,color,ok';

  it('epoch seconds (fractions rounded to the ms) and epoch milliseconds', () => {
    const csv = `${header}\na,1704067200,0,s1,1,red,yes\nb,1704067200.0015,0,s1,1,red,yes`;
    expect(times({ column: 'ts', format: 'epoch-s' }, csv)).toEqual([T0, T0 + 2]);
    expect(times({ column: 'ts', format: 'epoch-ms' }, `${header}\na,1704067200000,0,s1,1,red,yes\nb,1704067260000,0,s1,1,red,yes`)).toEqual([T0, T0 + MIN]);
  });

  it('a date plus an hour column (a wall clock: no zone, no daylight-saving shift)', () => {
    const csv = `${header}\na,2024-01-01,0,s1,1,red,yes\nb,2024-01-01,5,s1,1,red,yes\nc,2024-01-02,23,s1,1,red,yes`;
    expect(times({ column: 'ts', format: 'iso', plus: [{ column: 'hr', unit: 'h' }] }, csv)).toEqual([T0, T0 + 5 * 60 * MIN, T0 + 47 * 60 * MIN]);
    expect(times({ column: 'ts', plus: [{ column: 'hr', unit: 'h' }, { column: 'x', unit: 'min' }] }, csv)).toEqual([T0 + MIN, T0 + 5 * 60 * MIN + MIN, T0 + 47 * 60 * MIN + MIN]);
  });

  it('row order with a step counts rows of the file, whatever the offset', () => {
    const csv = `${header}\na,,,s1,1,red,yes\nb,,,s1,1,red,yes\nc,,,s1,1,red,yes`;
    const rowOrder = { rowOrder: { start: '2024-01-01T00:00:00Z', stepMs: 1000 } };
    expect(times(rowOrder, csv)).toEqual([T0, T0 + 1000, T0 + 2000]);
    expect(times(rowOrder, csv, { offset: 2 })).toEqual([T0 + 2000]);
    // A row-order plan needs no time column.
    expect(times(rowOrder, 'id,shop,x,color,ok\na,s1,1,red,yes')).toEqual([T0]);
  });

  it('names the row, the column and the format of a bad time; a missing time column by its spec path', () => {
    const csv = (ts: string, hr = '0') => `${header}\na,${ts},${hr},s1,1,red,yes`;
    expect(() => times({ column: 'ts', format: 'epoch-s' }, csv('2024-01-01'))).toThrow(/replay row 0 \(a\): ts "2024-01-01" is not an epoch-s number/);
    expect(() => times({ column: 'ts', format: 'epoch-ms' }, csv(''))).toThrow(/ts "" is not an epoch-ms number/);
    expect(() => times({ column: 'ts', plus: [{ column: 'hr', unit: 'h' }] }, csv('2024-01-01', 'noon'))).toThrow(/hr "noon" is not a number \(of h added to ts\)/);
    expect(() => times({ column: 'ts' }, csv('01/02/2024'))).toThrow(/ts "01\/02\/2024" is not a date-time/);
    expect(() => times({ column: 'ts', plus: [{ column: 'hour', unit: 'h' }] }, csv('2024-01-01'))).toThrow(/column "hour" \(replay\.eventTime\.plus\.0\.column\)/);
  });
});

describe('replay.columns', () => {
  const mapped = parseSpec({
    name: 'bank',
    task: 'binary',
    entity: { name: 'client' },
    events: { fields: { emp_var_rate: 'numeric', job: 'categorical' } },
    model: { name: 'bank-model', features: ['emp_var_rate', 'job'] },
    label: { type: 'categorical', classes: ['no', 'yes'], delayMs: MIN, horizonMs: 10 * MIN },
    replay: { csv: 'bank.csv', eventId: 'id', eventTime: 'ts', entityId: { column: 'client.id' }, label: 'y', columns: { emp_var_rate: 'emp.var.rate', job: 'job title' } },
  });

  it('reads an event field from the column it is mapped to', () => {
    const rows = parseCsv('id,ts,client.id,emp.var.rate,job title,y\na,2024-01-01,c1,-1.8,admin.,yes\nb,2024-01-01T00:01:00,c2,1.1,blue-collar,no');
    const events = buildReplayPlan(mapped, rows).filter((a) => a.kind === 'event').map((a) => a.record);
    expect(events.map((e) => [e.entity_id, e.fields])).toEqual([
      ['c1', { emp_var_rate: -1.8, job: 'admin.' }],
      ['c2', { emp_var_rate: 1.1, job: 'blue-collar' }],
    ]);
  });

  it('a field named like an Object property is read from its own column unless mapped', () => {
    const odd = parseSpec({
      ...structuredClone(mapped),
      events: { fields: { constructor: 'categorical', emp_var_rate: 'numeric' } },
      model: { name: 'bank-model', features: ['constructor'] },
      replay: { ...structuredClone(mapped.replay!), columns: { emp_var_rate: 'emp.var.rate' } },
    });
    const rows = parseCsv('id,ts,client.id,emp.var.rate,constructor,y\na,2024-01-01,c1,-1.8,x,yes');
    expect(buildReplayPlan(odd, rows).find((a) => a.kind === 'event')?.record).toMatchObject({ fields: { constructor: 'x', emp_var_rate: -1.8 } });
  });

  it('names a missing mapped column by its spec path', () => {
    const rows = parseCsv('id,ts,client.id,emp_var_rate,job title,y\na,2024-01-01,c1,-1.8,admin.,yes');
    expect(() => buildReplayPlan(mapped, rows)).toThrow(/column "emp\.var\.rate" \(replay\.columns\.emp_var_rate\)/);
  });
});

describe('a feature set keyed by an event field', () => {
  // Clients' loan events joined with an economy set keyed by the event's month, whose rate is
  // published per month (grouping the rows by month) one minute after each event.
  const keyed = parseSpec({
    name: 'loans',
    task: 'binary',
    entity: { name: 'client' },
    events: { fields: { month: 'numeric', amount: 'numeric' } },
    featureSets: [
      { name: 'economy', key: { field: 'month' }, features: { rate_last: 'numeric', rate_mean2: 'numeric' }, pointInTime: true },
      { name: 'history', features: { amount_prev: 'numeric' } },
    ],
    model: { name: 'loans-model', features: ['amount', 'rate_last', 'rate_mean2', 'amount_prev'] },
    label: { type: 'categorical', classes: ['no', 'yes'], delayMs: 10 * MIN, horizonMs: 60 * MIN },
    replay: {
      csv: 'loans.csv',
      eventId: 'id',
      eventTime: { rowOrder: { start: '2024-01-01T00:00:00Z', stepMs: MIN } },
      entityId: { column: 'client' },
      label: 'ok',
      feeds: [
        { featureSet: 'economy', availableAfterMs: MIN, features: { rate_last: { lag: { column: 'rate', rows: 0 } }, rate_mean2: { mean: { column: 'rate', rows: 2 } } } },
        { featureSet: 'history', availableAfterMs: MIN, features: { amount_prev: { lag: { column: 'amount', rows: 0 } } } },
      ],
    },
  });
  // Months 1, 1, 2, 1, 2 over clients c1, c2, c1, c3, c2; "02" is the number 2, keyed "2"; row f has no month.
  const loanRows = parseCsv(
    [
      'id,client,month,amount,rate,ok',
      'a,c1,1,100,5,yes',
      'b,c2,1,200,6,no',
      'c,c1,02,300,7,no',
      'd,c3,1,400,8,yes',
      'e,c2,2.0,500,9,no',
      'f,c1,,600,10,yes',
    ].join('\n'),
  );
  const plan = buildReplayPlan(keyed, loanRows);

  it('publishes updates keyed by the field value, computed over the rows sharing it', () => {
    const economy = plan.flatMap((a) => (a.kind === 'feature' && a.record.feature_set === 'economy' ? [a.record] : []));
    expect(economy.map((u) => [u.update_id, u.entity_id, (u.event_time - T0) / MIN, u.values])).toEqual([
      ['economy:1:a', '1', 1, { rate_last: 5, rate_mean2: 5 }],
      ['economy:1:b', '1', 2, { rate_last: 6, rate_mean2: 5.5 }],
      ['economy:2:c', '2', 3, { rate_last: 7, rate_mean2: 7 }],
      ['economy:1:d', '1', 4, { rate_last: 8, rate_mean2: 7 }],
      ['economy:2:e', '2', 5, { rate_last: 9, rate_mean2: 8 }],
    ]); // f has no month: no economy update
    const history = plan.flatMap((a) => (a.kind === 'feature' && a.record.feature_set === 'history' ? [a.record.entity_id] : []));
    expect(history).toEqual(['c1', 'c2', 'c1', 'c3', 'c2', 'c1']); // the entity-keyed set is unchanged
  });

  it("serves each event its key's row as of its time, and its entity's row for entity-keyed sets", () => {
    const pit = pointInTimeRows(keyed, plan);
    expect(pit.map((r) => [r.event.event_id, r.event.entity_id, r.values.month, r.values.rate_last, r.values.rate_mean2, r.values.amount_prev])).toEqual([
      ['a', 'c1', 1, null, null, null],
      ['b', 'c2', 1, 5, 5, null], // month 1's update from a, though a is another client
      ['c', 'c1', 2, null, null, 100], // no month-2 row yet; c1's own history from a
      ['d', 'c3', 1, 6, 5.5, null],
      ['e', 'c2', 2, 7, 7, 200],
      ['f', 'c1', null, null, null, 300], // no month: no row in the economy set
    ]);
  });

  it('an offset replay warms the store up per key and serves what the full replay would', () => {
    for (const offset of [1, 2, 3, 4]) {
      expect(pointInTimeRows(keyed, buildReplayPlan(keyed, loanRows, { offset }))).toEqual(pointInTimeRows(keyed, plan).slice(offset));
    }
  });

  it('renders a categorical key as it is', () => {
    const cat = parseSpec({ ...structuredClone(keyed), events: { fields: { month: 'categorical', amount: 'numeric' } } });
    const ids = buildReplayPlan(cat, loanRows).flatMap((a) => (a.kind === 'feature' && a.record.feature_set === 'economy' ? [a.record.entity_id] : []));
    expect(ids).toEqual(['1', '1', '02', '1', '2.0']);
  });
});

describe('every shipped pipeline', () => {
  const dir = path.join(here, '..', 'pipelines');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));

  it('is one of the specs this suite knows', () => {
    expect(files.sort()).toEqual(['bike-sharing.json', 'credit-default.json', 'elec2.json', 'outdoor-objects.json']);
  });

  it.each(files)('%s loads and its replay plan builds from its data: one event and one label per row, in time order', (file) => {
    const { spec, dir: specDir } = loadSpec(path.join(dir, file));
    const all = readCsv(path.join(specDir, spec.replay!.csv));
    const plan = buildReplayPlan(spec, all);
    const events = plan.filter((a) => a.kind === 'event');
    expect(events).toHaveLength(all.length);
    expect(plan.filter((a) => a.kind === 'label')).toHaveLength(all.length);
    expect(plan.findIndex((a, i) => i > 0 && a.at < plan[i - 1]!.at)).toBe(-1);
    for (const r of pointInTimeRows(spec, buildReplayPlan(spec, all, { limit: 50 }))) expect(Object.keys(r.values)).toEqual(expect.arrayContaining(spec.model.features));
    expect(spec.trainer.bootstrapRows).toBeLessThan(all.length);
  }, 30_000);
});

describe('the bike-sharing replay', () => {
  const { spec: bike, dir } = loadSpec(path.join(here, '..', 'pipelines', 'bike-sharing.json'));
  const all = readCsv(path.join(dir, bike.replay!.csv));
  const plan = buildReplayPlan(bike, all, { limit: 24 * 14 });
  const pit = pointInTimeRows(bike, plan);
  const HOUR = 3_600_000;

  it('times each hour by dteday + hr and delivers its count at the end of the hour', () => {
    const events = plan.flatMap((a) => (a.kind === 'event' ? [a.record] : []));
    expect(events[0]).toMatchObject({ event_id: '1', entity_id: 'dc', event_time: Date.UTC(2011, 0, 1, 0) });
    events.forEach((e, i) => expect(e.event_time).toBe(Date.parse(`${all[i]!.dteday}T00:00:00Z`) + Number(all[i]!.hr) * HOUR));
    for (const a of plan) if (a.kind === 'label') expect(a.record.label_time - a.record.event_time).toBe(HOUR);
    expect(Object.keys(events[0]!.fields)).not.toEqual(expect.arrayContaining(['casual']));
  });

  it("serves the last hour's count and, keyed by hr, that hour's count on its last day", () => {
    const time = (i: number) => Date.parse(`${all[i]!.dteday}T00:00:00Z`) + Number(all[i]!.hr) * HOUR;
    for (let t = 1; t < pit.length; t++) {
      const row = pit[t]!;
      const prev = time(t - 1) + HOUR === time(t) ? Number(all[t - 1]!.cnt) : undefined;
      if (prev !== undefined) expect(row.values.cnt_prev).toBe(prev);
      // The latest earlier row with the same hour of day (within maxAgeMs, 3 days).
      let j = t - 1;
      while (j >= 0 && all[j]!.hr !== all[t]!.hr) j--;
      const expected = j >= 0 && time(t) - (time(j) + HOUR) <= 3 * 24 * HOUR ? Number(all[j]!.cnt) : null;
      expect(row.values.cnt_hr_last, `row ${t}`).toBe(expected);
    }
  });
});
