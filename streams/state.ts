/**
 * The one scheme every stateful worker uses for state that must survive a
 * crash without losing or double-counting a record (the drift monitor's
 * windows, the retrain trigger's policy state, the aggregator's per-entity
 * windows, the joiner's per-event join state).
 *
 * A stateful worker is a pure `apply(state, record) → { state, outputs,
 * effects }` plus a key per record (`keyOf`). For each chunk, the scheme:
 * 1. loads the state of every key the chunk touches (`StateStore.load`);
 * 2. lets the worker fetch what its pure core needs (`prepare`: model
 *    baselines, the serving models);
 * 3. applies the records in offset order. Each state row keeps, per input
 *    topic-partition, the last offset applied to it; a record at or below it
 *    is a replay (the chunk's first attempt saved state, then crashed before
 *    its Kafka transaction committed). A replayed record is not applied
 *    again: the outputs and effects it produced the first time, saved with
 *    the state, are produced again (the first attempt's transaction was
 *    aborted, so nobody saw them);
 * 4. saves the changed rows with what their records emitted, dropping what
 *    records below the committed offset emitted (those transactions did
 *    commit, so they are never replayed);
 * 5. runs the effects (idempotent writes such as a registry rollback or a
 *    feature-store update), replayed ones included;
 * 6. returns the outputs, which the runtime commits with the input offsets.
 *
 * Invalid records (`validate`) are dead-lettered on every attempt. A record
 * whose key is null is not this worker's (another pipeline's) and is skipped.
 *
 * Step 1 reads the store only for keys not in the task's cache: the entries a
 * chunk saved, kept in memory (bounded, least recently used out) for the
 * next chunk, as Kafka Streams keeps a task's state local. A task owns its
 * keys exclusively while it holds its partition, so what it saved last is
 * what the store holds. A chunk takes its entries out of the cache and puts
 * them back only once their save succeeded, so an entry changed by a chunk
 * that then failed is read again from the store. An entry serves only the
 * task (partition) that saved it, and only while the runtime's `stateEpoch`
 * of that task is unchanged. The epoch changes with a new incarnation of the
 * task, a re-fence after a failure, and after half a session timeout without
 * a confirmation (a commit or a fencing): beyond that this member may have
 * been evicted from its group while stalled, and another may be writing its keys.
 */
import { createLruCache } from '../schemas/lru-cache.js';
import type { RecordName } from '../schemas/catalogue.js';
import type { RecordTypes } from '../schemas/codec.js';
import type { InputRecord, OutputRecord, ProcessContext, ProcessResult, RecordFailure } from './runtime.js';

/** A key's state as stored, with the bookkeeping that makes replays safe. */
export interface StateEntry<S, E = unknown> {
  value: S;
  /** Last applied input offset per `topic/partition`. */
  applied: Record<string, string>;
  /** What recent records emitted, kept until their transaction is known committed. */
  emitted: Array<{ tp: string; offset: string; outputs: OutputRecord[]; effects: E[] }>;
}

/** Where a worker's keyed state lives (Cassandra in production, memory in flow tests). */
export interface StateStore<S, E = unknown> {
  load(keys: readonly string[]): Promise<Map<string, StateEntry<S, E>>>;
  save(entries: ReadonlyArray<{ key: string; entry: StateEntry<S, E> }>): Promise<void>;
}

export interface ApplyResult<S, E> {
  state: S;
  outputs?: OutputRecord[];
  effects?: E[];
}

/** A stateful worker's logic: pure apart from `prepare` and `runEffects`. */
export interface StatefulLogic<N extends RecordName, S, C, E> {
  /** The state key of a record, or null when the record is not this worker's. */
  keyOf(record: InputRecord<RecordTypes[N]>): string | null;
  /** The state of a key never seen. */
  initial(key: string): S;
  /** Rebuilds a state from its stored JSON (for states kept as class instances with a toJSON()). Default: as stored. */
  revive?(stored: unknown): S;
  /** A record that can never be applied (dead-lettered, state unchanged), or null. */
  validate?(record: InputRecord<RecordTypes[N]>): Omit<RecordFailure, 'index'> | null;
  /** Fetches what `apply` needs for this chunk (it must not depend on whether a record is a replay). */
  prepare?(records: ReadonlyArray<InputRecord<RecordTypes[N]>>, states: ReadonlyMap<string, S>): Promise<C>;
  /** Pure: the state after one record, and what the record emits. */
  apply(state: S, record: InputRecord<RecordTypes[N]>, context: C): ApplyResult<S, E>;
  /** Carries out effects, in order; must be idempotent (it runs again on a replay). */
  runEffects?(effects: E[]): Promise<void>;
}

export const tpOf = (topic: string, partition: number): string => `${topic}/${partition}`;

export interface StatefulProcessOptions {
  /** Entries kept in memory per task between chunks (see the module comment). 0 disables the cache. Default 5000. */
  cacheEntries?: number;
}

/** Turns stateful logic and a store into a runtime `process` function. */
export function createStatefulProcess<N extends RecordName, S, C, E>(
  logic: StatefulLogic<N, S, C, E>,
  store: StateStore<S, E>,
  options: StatefulProcessOptions = {},
): (records: Array<InputRecord<RecordTypes[N]>>, ctx: ProcessContext) => Promise<ProcessResult> {
  const cacheEntries = options.cacheEntries ?? 5000;
  // One cache for the process; an entry is good only for the task incarnation (partition and epoch) that saved it.
  const cache = cacheEntries > 0 ? createLruCache<string, { entry: StateEntry<S, E>; partition: number; epoch: number }>({ maxEntries: cacheEntries }) : null;
  return async (records, ctx) => {
    const keys = [...new Set(records.map((r) => logic.keyOf(r)).filter((k): k is string => k !== null))];
    const epoch = cache ? ctx.stateEpoch : 0;
    const entries = new Map<string, StateEntry<S, E>>();
    const missing: string[] = [];
    for (const k of keys) {
      const hit = cache?.get(k);
      if (hit) cache!.delete(k); // taken: back only once saved
      if (hit && hit.partition === ctx.partition && hit.epoch === epoch) entries.set(k, hit.entry);
      else missing.push(k);
    }
    const loaded = missing.length > 0 ? await store.load(missing) : new Map<string, StateEntry<S, E>>();
    for (const k of missing) {
      const row = loaded.get(k);
      entries.set(k, row ? { ...row, value: logic.revive ? logic.revive(row.value) : row.value } : { value: logic.initial(k), applied: {}, emitted: [] });
    }
    const context = logic.prepare ? await logic.prepare(records, new Map([...entries].map(([k, e]) => [k, e.value]))) : (undefined as C);

    const outputs: OutputRecord[] = [];
    const effects: E[] = [];
    const deadLetters: RecordFailure[] = [];
    const dirty = new Set<string>();
    records.forEach((r, index) => {
      const problem = logic.validate?.(r) ?? null;
      if (problem) {
        deadLetters.push({ index, ...problem });
        return;
      }
      const key = logic.keyOf(r);
      if (key === null) return;
      const entry = entries.get(key)!;
      const tp = tpOf(r.topic, r.partition);
      const last = entry.applied[tp];
      if (last !== undefined && BigInt(r.offset) <= BigInt(last)) {
        const before = entry.emitted.find((e) => e.tp === tp && e.offset === r.offset);
        if (before) {
          outputs.push(...before.outputs);
          effects.push(...before.effects);
        }
        return;
      }
      const result = logic.apply(entry.value, r, context);
      entry.value = result.state;
      entry.applied[tp] = r.offset;
      const out = result.outputs ?? [];
      const eff = result.effects ?? [];
      if (out.length > 0 || eff.length > 0) entry.emitted.push({ tp, offset: r.offset, outputs: out, effects: eff });
      outputs.push(...out);
      effects.push(...eff);
      dirty.add(key);
    });

    for (const key of dirty) {
      const entry = entries.get(key)!;
      entry.emitted = entry.emitted.filter((e) => {
        const [topic, partition] = splitTp(e.tp);
        const committed = ctx.committed(topic, partition);
        return committed === null || BigInt(e.offset) >= committed;
      });
    }
    if (dirty.size > 0) await store.save([...dirty].map((key) => ({ key, entry: entries.get(key)! })));
    // Saved (or unchanged): what the store holds for these keys, for the next chunk.
    if (cache) for (const [key, entry] of entries) cache.set(key, { entry, partition: ctx.partition, epoch });
    if (effects.length > 0) await logic.runEffects?.(effects);
    return { outputs, deadLetters };
  };
}

function splitTp(tp: string): [string, number] {
  const i = tp.lastIndexOf('/');
  return [tp.slice(0, i), Number(tp.slice(i + 1))];
}

/** A StateStore in memory, for flow tests and the in-memory harness. */
export function createMemoryStateStore<S, E = unknown>(): StateStore<S, E> & { rows: Map<string, StateEntry<S, E>> } {
  const rows = new Map<string, StateEntry<S, E>>();
  return {
    rows,
    async load(keys) {
      const out = new Map<string, StateEntry<S, E>>();
      for (const k of keys) {
        const row = rows.get(k);
        if (row) out.set(k, JSON.parse(JSON.stringify(row)) as StateEntry<S, E>);
      }
      return out;
    },
    async save(entries) {
      // A JSON round trip, as the Cassandra store does (states with a toJSON() are stored as their JSON).
      for (const { key, entry } of entries) rows.set(key, JSON.parse(JSON.stringify(entry)) as StateEntry<S, E>);
    },
  };
}
