import { describe, expect, it } from 'vitest';
import { createLruCache } from './lru-cache.js';

describe('createLruCache', () => {
  it('evicts the least recently used beyond maxEntries', () => {
    const c = createLruCache<number, string>({ maxEntries: 2 });
    c.set(1, 'a');
    c.set(2, 'b');
    expect(c.get(1)).toBe('a'); // 1 is now the most recent
    c.set(3, 'c');
    expect(c.get(2)).toBeUndefined();
    expect(c.get(1)).toBe('a');
    expect(c.get(3)).toBe('c');
    expect(c.size).toBe(2);
  });

  it('stays bounded under a flood of distinct keys', () => {
    const c = createLruCache<number, true>({ maxEntries: 100 });
    for (let i = 0; i < 100_000; i++) c.set(i, true);
    expect(c.size).toBe(100);
    expect(c.get(99_999)).toBe(true);
    expect(c.get(0)).toBeUndefined();
  });

  it('expires entries after ttlMs', () => {
    let now = 0;
    const c = createLruCache<string, number>({ maxEntries: 10, ttlMs: 1000, now: () => now });
    c.set('x', 1);
    now = 999;
    expect(c.get('x')).toBe(1);
    now = 1000;
    expect(c.get('x')).toBeUndefined();
    expect(c.size).toBe(0);
  });

  it('rejects a non-positive size', () => {
    expect(() => createLruCache({ maxEntries: 0 })).toThrow(/maxEntries must be a positive integer/);
  });
});
