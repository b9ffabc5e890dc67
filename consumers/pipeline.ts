/**
 * Runs a pipeline's workers in this process: each is an ordinary consumer
 * group member, so the same command on more machines scales out (up to one
 * member per input partition). Iterates the worker definitions
 * (consumers/index.ts): settings compiled from the environment at start, one
 * metrics registry, one Cassandra session and one set of stores for all.
 *
 * Kafka: one client for all, as LOOPLINE_KAFKA_SASL_USERNAME; a worker with
 * its own credentials (LOOPLINE_KAFKA_SASL_<WORKER>_USERNAME / _PASSWORD, e.g.
 * the secured local stack's `workers.env`) gets its own client, so on a
 * cluster with per-worker ACLs (streams/acls.ts) one process can run every
 * worker as its own principal. Without them, run one process per worker,
 * each with that worker's credentials as the shared pair.
 *
 *   const pipeline = await startPipeline(config, spec, logger, { workers: ['preprocessor', 'scorer'] });
 *   …
 *   await pipeline.stop();
 */
import { Registry } from 'prom-client';
import { ConfigError } from '../core/errors.js';
import type { LooplineConfig } from '../config/config.js';
import type { PipelineSpec } from '../pipelines/spec.js';
import { createCodec } from '../schemas/codec.js';
import { createRegistryClient } from '../schemas/registry-client.js';
import { createCassandraClient, type CassandraClient } from '../store/cassandra.js';
import { createStores, type Stores } from '../store/stores.js';
import { compileWorkerConfig, RUNTIME_SETTINGS } from '../streams/definition.js';
import { createKafka } from '../streams/kafka.js';
import type { Logger } from '../streams/logger.js';
import { createWorkerMetrics } from '../streams/metrics.js';
import { createWorker, type Broadcast, type Worker } from '../streams/runtime.js';
import { createTopicNames } from '../streams/topics.js';
import { chainWorkers } from '../streams/chain.js';
import type { AnyWorkerDefinition } from '../streams/definition.js';
import { WORKER_NAMES, WORKERS, type WorkerName } from './index.js';
import { preprocessor } from './preprocessor/index.js';
import { scorer } from './scorer/index.js';

export { SCORING_WORKERS, WORKER_NAMES, type WorkerName } from './index.js';

export interface PipelineOptions {
  workers?: readonly string[];
  /** Runtime settings for every worker, over the environment (tests, the demo). */
  runtime?: Partial<Record<keyof typeof RUNTIME_SETTINGS, number>>;
  /** Environment to compile worker settings from. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * Run the preprocessor and the scorer chained in one consumer and one transaction when both are
   * wanted (streams/chain.ts): one Kafka hop less per event. Default: LOOPLINE_CHAIN_SCORING, else true.
   */
  chainScoring?: boolean;
  metrics?: Registry;
}

export interface RunningPipeline {
  workers: Worker[];
  /** The topic prefix (workers' `topics` are physical names). */
  prefix: string;
  /** The live implementation of each worker by name (the scorer's `reload()`, for tests and the demo). */
  impls: Map<string, unknown>;
  /** The implementation of one worker, typed by the caller: `pipeline.impl<Scorer>('scorer')?.reload()`. */
  impl<T>(name: WorkerName): T | undefined;
  metrics: Registry;
  cql: CassandraClient;
  stores: Stores;
  stop(): Promise<void>;
}

export async function startPipeline(config: LooplineConfig, spec: PipelineSpec, logger: Logger, options: PipelineOptions = {}): Promise<RunningPipeline> {
  const wanted = options.workers ?? WORKER_NAMES;
  const unknown = wanted.filter((w) => !WORKER_NAMES.includes(w));
  if (unknown.length > 0) throw new ConfigError(`unknown worker ${unknown.join(', ')}; choose from ${WORKER_NAMES.join(', ')}`);
  const env = options.env ?? process.env;
  let definitions: AnyWorkerDefinition[] = WORKERS.filter((d) => wanted.includes(d.name) && (d.enabled?.(spec) ?? true));
  // Chained workers share one Kafka client: not by default when each worker has its own principal.
  const ownPrincipals = Object.keys(config.kafka.workerSasl ?? {}).length > 0;
  const chain = options.chainScoring ?? (!ownPrincipals && !['0', 'false', 'no'].includes(env.LOOPLINE_CHAIN_SCORING ?? 'true'));
  if (chain && definitions.includes(preprocessor) && definitions.includes(scorer)) {
    const chained = chainWorkers(preprocessor, scorer);
    definitions = definitions.flatMap((d) => (d === preprocessor ? [chained] : d === scorer ? [] : [d]));
  }
  // Settings first: a bad value fails before any connection opens.
  const compiled = definitions.map((d) => ({ d, c: compileWorkerConfig(d, env, options.runtime) }));
  const { workerSasl } = config.kafka;
  const strangers = Object.keys(workerSasl).filter((w) => !WORKER_NAMES.includes(w));
  if (strangers.length > 0) {
    throw new ConfigError(`${strangers.map((w) => `LOOPLINE_KAFKA_SASL_${w.toUpperCase().replaceAll('-', '_')}_USERNAME`).join(', ')} names no worker; the workers are ${WORKER_NAMES.join(', ')}`);
  }
  const anonymous = Object.keys(workerSasl).length > 0 && !config.kafka.sasl ? definitions.filter((d) => !workerSasl[d.name]) : [];
  if (anonymous.length > 0) {
    const w = anonymous[0]!.name.toUpperCase().replaceAll('-', '_');
    throw new ConfigError(`${anonymous.map((d) => d.name).join(', ')} ${anonymous.length > 1 ? 'have' : 'has'} no Kafka credentials: set LOOPLINE_KAFKA_SASL_${w}_USERNAME / _PASSWORD, or the shared LOOPLINE_KAFKA_SASL_USERNAME / _PASSWORD`);
  }

  const metrics = options.metrics ?? new Registry();
  const kafka = createKafka(config.kafka, logger, spec.name);
  const kafkaOf = (worker: string) => {
    const sasl = workerSasl[worker];
    return sasl ? createKafka({ ...config.kafka, sasl }, logger, `${spec.name}-${worker}`) : kafka;
  };
  const codec = createCodec(createRegistryClient(config.registry));
  const names = createTopicNames(config.kafka.topicPrefix);
  const cql = createCassandraClient(config.cassandra);
  await cql.connect();
  const stores = createStores(cql, { batchRows: config.cassandra.batchRows });
  const deps = { codec, names, logger, metrics: createWorkerMetrics(metrics) };

  const workers: Worker[] = [];
  const impls = new Map<string, unknown>();
  try {
    for (const { d, c } of compiled) {
      const impl = d.create(c.settings, { spec, logger: logger.child({ worker: d.name }), stores, now: Date.now }, d.createMetrics(metrics));
      impls.set(d.name as WorkerName, impl);
      for (const [name, part] of Object.entries((impl as { parts?: Record<string, unknown> }).parts ?? {})) impls.set(name, part);
      // The ACLs grant what the definition declares: a broadcast it does not declare would be refused on a secured cluster.
      const followed: readonly Broadcast[] = impl.broadcasts ?? [];
      const undeclared = followed.map((b) => b.topic).filter((t) => !(d.broadcasts ?? []).includes(t));
      if (undeclared.length > 0) throw new ConfigError(`${d.name} follows ${undeclared.join(', ')} without declaring it in its definition's broadcasts`);
      workers.push(createWorker({ name: d.name, input: d.input, ...impl }, { ...deps, kafka: kafkaOf(d.name) }, c.runtime));
    }
    await Promise.all(workers.map((w) => w.start()));
  } catch (err) {
    await Promise.all(workers.map((w) => w.stop().catch(() => {})));
    await cql.shutdown().catch(() => {});
    throw err;
  }
  return {
    workers,
    prefix: names.prefix,
    impls,
    impl: <T>(name: WorkerName) => impls.get(name) as T | undefined,
    metrics,
    cql,
    stores,
    async stop() {
      await Promise.all(workers.map((w) => w.stop()));
      await cql.shutdown().catch(() => {});
    },
  };
}
