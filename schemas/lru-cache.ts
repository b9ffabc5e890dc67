/**
 * A small least-recently-used map with a size cap and optional expiry, for
 * caches keyed by data from the wire (schema ids): however many distinct
 * keys arrive, memory stays bounded.
 *
 *   const unknown = createLruCache<number, string>({ maxEntries: 10_000, ttlMs: 30_000 });
 *   unknown.set(42, 'not in the registry');
 *   unknown.get(42); // 'not in the registry' for 30 s, then undefined
 */
export interface LruCacheOptions {
  /** Entries kept; the least recently used is evicted beyond it. At least 1. */
  maxEntries: number;
  /** Entries expire this long after being set. Default: never. */
  ttlMs?: number;
  /** Clock in ms; injectable for tests. Default Date.now. */
  now?: () => number;
}

export interface LruCache<K, V> {
  /** The value, marking it recently used; undefined when absent or expired. */
  get(key: K): V | undefined;
  set(key: K, value: V): void;
  delete(key: K): boolean;
  readonly size: number;
  clear(): void;
}

export function createLruCache<K, V>(options: LruCacheOptions): LruCache<K, V> {
  if (!Number.isSafeInteger(options.maxEntries) || options.maxEntries < 1) {
    throw new RangeError(`maxEntries must be a positive integer, got ${options.maxEntries}`);
  }
  const { maxEntries, ttlMs } = options;
  const now = options.now ?? Date.now;
  // Map iteration order is insertion order: the first key is the least recently used.
  const entries = new Map<K, { value: V; expiresAt: number }>();
  return {
    get(key) {
      const e = entries.get(key);
      if (!e) return undefined;
      entries.delete(key);
      if (e.expiresAt <= now()) return undefined;
      entries.set(key, e);
      return e.value;
    },
    set(key, value) {
      entries.delete(key);
      entries.set(key, { value, expiresAt: ttlMs === undefined ? Infinity : now() + ttlMs });
      while (entries.size > maxEntries) entries.delete(entries.keys().next().value as K);
    },
    delete: (key) => entries.delete(key),
    get size() {
      return entries.size;
    },
    clear: () => entries.clear(),
  };
}
