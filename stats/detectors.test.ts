import { describe, expect, it } from 'vitest';
import { Adwin, PageHinkley, type AdwinState, type PageHinkleyState } from './detectors.js';
import { Mulberry32 } from './random.js';

/** 0/1 error stream: Bernoulli(p(i)) for i = 0..n-1. */
function bernoulli(n: number, seed: number, p: (i: number) => number): number[] {
  const r = new Mulberry32(seed);
  return Array.from({ length: n }, (_, i) => (r.next() < p(i) ? 1 : 0));
}

interface Detector {
  update(x: number): boolean;
}

function alarms(d: Detector, xs: readonly number[]): number[] {
  return xs.flatMap((x, i) => (d.update(x) ? [i] : []));
}

const detectors: [string, () => Detector, (d: Detector) => Detector][] = [
  ['PageHinkley', () => new PageHinkley(), (d) => PageHinkley.fromJSON(JSON.parse(JSON.stringify(d)) as PageHinkleyState)],
  ['Adwin', () => new Adwin(), (d) => Adwin.fromJSON(JSON.parse(JSON.stringify(d)) as AdwinState)],
];

describe.each(detectors)('%s', (_, make, restore) => {
  it.each([1, 2, 3, 4, 5])('detects Bernoulli(0.1) → Bernoulli(0.5) within 300 values (seed %s)', (seed) => {
    const xs = bernoulli(3000, seed, (i) => (i < 1000 ? 0.1 : 0.5));
    const found = alarms(make(), xs);
    expect(found.filter((i) => i < 1000)).toEqual([]);
    expect(found.find((i) => i >= 1000)).toBeLessThan(1300);
  });

  it('raises no alarm on 20,000 values of a stationary Bernoulli(0.2) stream', () => {
    expect(alarms(make(), bernoulli(20_000, 2024, () => 0.2))).toEqual([]);
  });

  it('continues exactly after a JSON snapshot/restore at 500 of 1000 values', () => {
    const xs = bernoulli(1000, 9, (i) => (i < 300 ? 0.1 : i < 600 ? 0.5 : 0.95));
    const reference = make();
    const expected = xs.map((x) => reference.update(x));
    expect(expected.slice(0, 500).some(Boolean)).toBe(true);
    expect(expected.slice(500).some(Boolean)).toBe(true);
    const first = make();
    const head = xs.slice(0, 500).map((x) => first.update(x));
    const second = restore(first);
    const tail = xs.slice(500).map((x) => second.update(x));
    expect([...head, ...tail]).toEqual(expected);
    expect(JSON.stringify(second)).toBe(JSON.stringify(reference));
  });

  it('rejects non-finite input', () => {
    expect(() => make().update(Number.NaN)).toThrow(RangeError);
  });
});

describe('PageHinkley specifics', () => {
  it('resets itself after an alarm and on reset()', () => {
    const d = new PageHinkley();
    const xs = bernoulli(2000, 1, (i) => (i < 1000 ? 0.1 : 0.5));
    const at = alarms(d, xs)[0] ?? -1;
    expect(at).toBeGreaterThan(1000);
    const after = new PageHinkley();
    xs.slice(0, at + 1).forEach((x) => after.update(x));
    expect(after.n).toBe(0);
    after.update(1);
    after.reset();
    expect([after.n, after.mean]).toEqual([0, 0]);
  });

  it.each([
    ['up', 0, false],
    ['down', 0, true],
    ['both', 0, true],
    ['down', 1, false],
    ['up', 1, true],
  ] as const)('direction %s with a jump of the mean from 0.5 to %s alarms: %s', (direction, after, alarm) => {
    const xs = Array.from({ length: 1000 }, (_, i) => (i < 500 ? i % 2 : after));
    expect(alarms(new PageHinkley({ direction }), xs).length > 0).toBe(alarm);
  });

  it('never alarms before minInstances values', () => {
    expect(alarms(new PageHinkley({ lambda: 1, minInstances: 50 }), Array.from({ length: 49 }, (_, i) => i))).toEqual([]);
  });

  it('validates its options', () => {
    expect(() => new PageHinkley({ lambda: 0 })).toThrow(RangeError);
    expect(() => new PageHinkley({ alpha: 1.5 })).toThrow(RangeError);
  });
});

describe('Adwin specifics', () => {
  it('keeps exact window statistics in its exponential histogram', () => {
    const d = new Adwin();
    const xs = Array.from({ length: 777 }, (_, i) => Math.sin(i) ** 2);
    xs.forEach((x) => d.update(x));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(d.width).toBe(777);
    expect(d.estimation).toBeCloseTo(mean, 12);
    expect(d.variance).toBeCloseTo(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length, 12);
    const state = d.toJSON();
    expect(state.rows.reduce((s, row, i) => s + row.totals.length * 2 ** i, 0)).toBe(777);
    for (const row of state.rows) expect(row.totals.length).toBeLessThanOrEqual(5);
    expect(state.rows.length).toBeLessThanOrEqual(8);
  });

  it('shrinks the window to the new concept after a change and counts detections', () => {
    const d = new Adwin();
    bernoulli(4000, 3, (i) => (i < 2000 ? 0.1 : 0.5)).forEach((x) => d.update(x));
    expect(d.detections).toBeGreaterThan(0);
    expect(d.width).toBeLessThan(2100);
    expect(d.estimation).toBeGreaterThan(0.4);
    d.reset();
    expect([d.width, d.detections, d.estimation]).toEqual([0, 0, 0]);
  });

  it('also detects a decrease of the error rate', () => {
    const found = alarms(new Adwin(), bernoulli(3000, 4, (i) => (i < 1000 ? 0.5 : 0.1)));
    expect(found[0]).toBeGreaterThan(1000);
    expect(found[0]).toBeLessThan(1300);
  });

  it('validates its options', () => {
    expect(() => new Adwin({ delta: 0 })).toThrow(RangeError);
    expect(() => new Adwin({ clock: 0 })).toThrow(RangeError);
  });
});
