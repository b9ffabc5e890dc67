/**
 * A worker definition: everything the composition root, the docs and the
 * tests need to know about a worker, in one value per worker
 * (`consumers/<worker>/index.ts`), so a maintainer who knows one worker knows
 * them all and can follow a record's route from the code.
 *
 *   export const definition = defineWorker({
 *     name: 'scorer', doc: '…',
 *     input: { topics: [{ topic: 'features.vectors', record: 'FeatureVector' }] },
 *     outputs: ['predictions', 'predictions.by-event'],
 *     broadcasts: ['control.models'],
 *     tables: { reads: ['models'], writes: ['prediction_log', 'predictions_by_time'] },
 *     state: 'none',
 *     settings: { reloadIntervalMs: setting.integer(10_000, 100, 3_600_000, 'registry poll period') },
 *     createMetrics: (registry) => scorerMetrics(registry),
 *     create: (settings, ctx, metrics) => createScorer(…),
 *   });
 *
 * Settings are compiled once, at start, from the environment: a worker
 * setting `fooBarMs` of worker `x-y` is `LOOPLINE_X_Y_FOO_BAR_MS`; the runtime
 * settings (batchMax, commitIntervalMs, …) are `LOOPLINE_WORKER_<NAME>` for
 * every worker or `LOOPLINE_<WORKER>_<NAME>` for one. A bad value fails at
 * start with an error naming the variable and the allowed values.
 */
import type { Registry } from 'prom-client';
import { ConfigError } from '../core/errors.js';
import type { PipelineSpec } from '../pipelines/spec.js';
import type { RecordName } from '../schemas/catalogue.js';
import type { Logger } from './logger.js';
import type { Broadcast, ProcessContext, ProcessResult, InputRecord, WorkerInput, WorkerOptions } from './runtime.js';
import type { RecordTypes } from '../schemas/codec.js';
import type { TopicName } from './topics.js';

/** One documented setting: its default, its bounds and what it means. */
export interface Setting<T> {
  kind: 'integer' | 'number' | 'boolean' | 'string';
  default: T;
  min?: number;
  max?: number;
  choices?: readonly string[];
  doc: string;
  parse(raw: string, key: string): T;
}

export const setting = {
  integer(def: number, min: number, max: number, doc: string): Setting<number> {
    return {
      kind: 'integer', default: def, min, max, doc,
      parse(raw, key) {
        const n = Number(raw);
        if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) throw new ConfigError(`${key} must be an integer in ${min}..${max} (got ${JSON.stringify(raw)})`);
        return n;
      },
    };
  },
  number(def: number, min: number, max: number, doc: string): Setting<number> {
    return {
      kind: 'number', default: def, min, max, doc,
      parse(raw, key) {
        const n = Number(raw);
        if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new ConfigError(`${key} must be a number in ${min}..${max} (got ${JSON.stringify(raw)})`);
        return n;
      },
    };
  },
  boolean(def: boolean, doc: string): Setting<boolean> {
    return {
      kind: 'boolean', default: def, doc,
      parse(raw, key) {
        const v = raw.trim().toLowerCase();
        if (['true', '1', 'yes'].includes(v)) return true;
        if (['false', '0', 'no'].includes(v)) return false;
        throw new ConfigError(`${key} must be true or false (got ${JSON.stringify(raw)})`);
      },
    };
  },
  choice<T extends string>(def: T, choices: readonly T[], doc: string): Setting<T> {
    return {
      kind: 'string', default: def, choices, doc,
      parse(raw, key) {
        if (!(choices as readonly string[]).includes(raw)) throw new ConfigError(`${key} must be one of ${choices.join(', ')} (got ${JSON.stringify(raw)})`);
        return raw as T;
      },
    };
  },
};

export type Settings = Record<string, Setting<unknown>>;
export type SettingValues<S extends Settings> = { [K in keyof S]: S[K] extends Setting<infer T> ? T : never };

/** The runtime settings every worker has; a definition may change their defaults with `runtime`. */
export const RUNTIME_SETTINGS = {
  batchMax: setting.integer(500, 1, 10_000, 'records per process() call'),
  commitIntervalMs: setting.integer(100, 0, 60_000, 'longest a transaction stays open while more fetched records wait (Kafka Streams commit.interval.ms)'),
  transactionMaxRecords: setting.integer(5000, 1, 1_000_000, 'a transaction commits once it holds this many input records'),
  partitionsConsumedConcurrently: setting.integer(3, 1, 64, 'tasks (partitions) processed at once by one member'),
  sessionTimeoutMs: setting.integer(30_000, 6000, 1_800_000, 'how soon a silent member\'s partitions move to another'),
  retryBudgetMs: setting.integer(300_000, 1000, 86_400_000, 'failing transiently for longer than this stops the worker (reported failed; run exits)'),
} satisfies Settings;

/** The stores a worker may be handed; each definition takes what it needs. */
export interface WorkerContext<Stores = unknown> {
  spec: PipelineSpec;
  logger: Logger;
  stores: Stores;
  now: () => number;
}

/** What `create` returns: the logic for the runtime. */
export interface WorkerImpl<N extends RecordName> {
  process(records: Array<InputRecord<RecordTypes[N]>>, ctx: ProcessContext): Promise<ProcessResult>;
  open?(): Promise<void>;
  close?(): Promise<void>;
  broadcasts?: Broadcast[];
}

export interface WorkerDefinition<N extends RecordName = RecordName, S extends Settings = Settings, M = unknown, Stores = unknown, Impl extends WorkerImpl<N> = WorkerImpl<N>> {
  name: string;
  /** One sentence: what the worker does. */
  doc: string;
  input: WorkerInput<N>;
  outputs: readonly TopicName[];
  /**
   * Topics the worker follows with a broadcast consumer (every instance sees
   * every record; group `<group>-broadcast-<uuid>`, no offsets): what its
   * implementation's `broadcasts` subscribe to, declared here so the ACL table
   * (streams/acls.ts) can grant it without building the worker. Default none.
   */
  broadcasts?: readonly TopicName[];
  tables: { reads: readonly string[]; writes: readonly string[] };
  /** 'none', or how its state is kept (for the README). */
  state: string;
  settings: S;
  /**
   * The worker whose variables name a setting, when not this one: a chain of workers
   * (streams/chain.ts) keeps its parts' names (`LOOPLINE_SCORER_RELOAD_INTERVAL_MS`), also read after
   * the chain's own (`LOOPLINE_PREPROCESSOR_SCORER_RELOAD_INTERVAL_MS`). Default: none.
   */
  settingScopes?: Record<string, string>;
  /** Runtime defaults that differ for this worker (the model builder's long session timeout). */
  runtime?: Partial<Record<keyof typeof RUNTIME_SETTINGS, number>>;
  /** Whether the pipeline needs this worker (the aggregator only with events-sourced feature sets). Default: always. */
  enabled?(spec: PipelineSpec): boolean;
  createMetrics(registry: Registry): M;
  create(settings: SettingValues<S>, ctx: WorkerContext<Stores>, metrics: M): Impl;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyWorkerDefinition = WorkerDefinition<any, any, any, any, any>;

export function defineWorker<N extends RecordName, S extends Settings, M, Stores, Impl extends WorkerImpl<N>>(d: WorkerDefinition<N, S, M, Stores, Impl>): WorkerDefinition<N, S, M, Stores, Impl> {
  return d;
}

/** `feature-writer` + `batchMax` → `LOOPLINE_FEATURE_WRITER_BATCH_MAX`. */
export function envKey(scope: string, name: string): string {
  const snake = name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
  return `LOOPLINE_${scope.replaceAll('-', '_').toUpperCase()}_${snake}`;
}

export interface CompiledWorkerConfig<S extends Settings> {
  settings: SettingValues<S>;
  runtime: WorkerOptions;
}

/** Compiles a worker's settings and runtime options from the environment (and explicit overrides); throws ConfigError naming every bad key. */
export function compileWorkerConfig<S extends Settings>(
  def: Pick<WorkerDefinition<RecordName, S>, 'name' | 'settings' | 'runtime' | 'settingScopes'>,
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<Record<keyof typeof RUNTIME_SETTINGS, number>> = {},
): CompiledWorkerConfig<S> {
  const problems: string[] = [];
  const read = <T>(keys: string[], s: Setting<T>, fallback: T): T => {
    for (const key of keys) {
      const raw = env[key];
      if (raw === undefined || raw === '') continue;
      try {
        return s.parse(raw, key);
      } catch (err) {
        problems.push((err as Error).message);
        return fallback;
      }
    }
    return fallback;
  };
  const settings = Object.fromEntries(Object.entries(def.settings).map(([k, s]) => [k, read([envKey(def.name, k), ...(def.settingScopes?.[k] ? [envKey(def.settingScopes[k], k)] : [])], s, s.default)])) as SettingValues<S>;
  const r = Object.fromEntries(
    Object.entries(RUNTIME_SETTINGS).map(([k, s]) => {
      const key = k as keyof typeof RUNTIME_SETTINGS;
      const fallback = overrides[key] ?? def.runtime?.[key] ?? s.default;
      return [k, overrides[key] ?? read([envKey(def.name, k), envKey('worker', k)], s, fallback)];
    }),
  ) as Record<keyof typeof RUNTIME_SETTINGS, number>;
  if (problems.length > 0) throw new ConfigError(`invalid configuration of ${def.name}:\n  ${problems.join('\n  ')}`);
  const { retryBudgetMs, ...rest } = r;
  return { settings, runtime: { ...rest, retry: { budgetMs: retryBudgetMs } } };
}
