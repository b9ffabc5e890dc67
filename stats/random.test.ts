import { describe, expect, it } from 'vitest';
import { Mulberry32 } from './random.js';

describe('Mulberry32', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    const draw = (seed: number): number[] => {
      const r = new Mulberry32(seed);
      return Array.from({ length: 5 }, () => r.next());
    };
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
  });

  it('continues identically after restoring from its state', () => {
    const r = new Mulberry32(7);
    for (let i = 0; i < 100; i++) r.next();
    const restored = Mulberry32.fromState(JSON.parse(JSON.stringify(r.state)) as number);
    for (let i = 0; i < 100; i++) expect(restored.next()).toBe(r.next());
  });

  it('draws uniform values in [0, 1) and integers in [0, n)', () => {
    const r = new Mulberry32(1);
    const xs = Array.from({ length: 30_000 }, () => r.next());
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(xs.reduce((s, x) => s + x, 0) / xs.length).toBeCloseTo(0.5, 2);
    const counts = [0, 0, 0];
    for (let i = 0; i < 30_000; i++) {
      const k = r.nextInt(3);
      counts[k] = (counts[k] ?? 0) + 1;
    }
    for (const c of counts) expect(c / 30_000).toBeCloseTo(1 / 3, 1);
  });

  it.each([0, -1, 1.5, Number.NaN])('nextInt rejects n = %s', (n) => {
    expect(() => new Mulberry32(1).nextInt(n)).toThrow(RangeError);
  });
});
