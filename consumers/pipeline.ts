/**
 * Runs a pipeline's workers in this process: each is an ordinary consumer
 * group member, so the same command on more machines scales out (up to one
 * member per input partition). The scorer also follows control.models (its
 * own group, so every instance sees every announcement) and re-reads the
 * registry on a timer, whichever comes first.
 */
import crypto from 'node:crypto';
import type { Consumer } from 'kafkajs';
import { Gauge, Histogram, Registry } from 'prom-client';
import type { LooplineConfig } from '../config/config.js';
import { createModelRegistry } from '../models/registry.js';
import type { PipelineSpec } from '../pipelines/spec.js';
import { createCodec } from '../schemas/codec.js';
import { createRegistryClient } from '../schemas/registry-client.js';
import { createCassandraClient, type CassandraClient } from '../store/cassandra.js';
import { createFeatureStore } from '../store/feature-store.js';
import { createPredictionLog } from '../store/prediction-log.js';
import { createKafka } from '../streams/kafka.js';
import type { Logger } from '../streams/logger.js';
import { createWorkerMetrics } from '../streams/metrics.js';
import { createWorker, type Worker, type WorkerOptions } from '../streams/runtime.js';
import { createTopicNames } from '../streams/topics.js';
import { createCheckpointStore } from './checkpoint.js';
import { createDriftMonitor } from './drift-monitor/drift-monitor.js';
import { createEvaluator } from './evaluator/evaluator.js';
import { createEventAggregator } from './feature-writer/event-aggregator.js';
import { createFeatureWriter } from './feature-writer/feature-writer.js';
import { createLabelJoiner, createPredictionJoiner } from './joiner/joiner.js';
import { createModelBuilder } from './model-builder/model-builder.js';
import { createRetrainTrigger } from './retrain-trigger/retrain-trigger.js';
import { createPreprocessor } from './preprocessor/preprocessor.js';
import { createScorer, type Scorer } from './scorer/scorer.js';

/** Every worker of the loop, in the order data flows through them. */
export const WORKER_NAMES = [
  'feature-writer', 'feature-aggregator', 'preprocessor', 'scorer', 'label-joiner', 'prediction-joiner',
  'drift-monitor', 'retrain-trigger', 'model-builder', 'evaluator',
] as const;
/** The online scoring path alone. */
export const SCORING_WORKERS = ['feature-writer', 'feature-aggregator', 'preprocessor', 'scorer'] as const;
export type WorkerName = (typeof WORKER_NAMES)[number];

export interface PipelineOptions {
  workers?: readonly WorkerName[];
  worker?: WorkerOptions;
  /** Registry poll period of the scorer. Default 10 000 ms. */
  reloadIntervalMs?: number;
  metrics?: Registry;
}

export interface RunningPipeline {
  workers: Worker[];
  scorer: Scorer | null;
  metrics: Registry;
  cql: CassandraClient;
  stop(): Promise<void>;
}

export async function startPipeline(config: LooplineConfig, spec: PipelineSpec, logger: Logger, options: PipelineOptions = {}): Promise<RunningPipeline> {
  const wanted = options.workers ?? WORKER_NAMES;
  const metrics = options.metrics ?? new Registry();
  const kafka = createKafka(config.kafka, logger, spec.name);
  const codec = createCodec(createRegistryClient(config.registry));
  const names = createTopicNames(config.kafka.topicPrefix);
  const cql = createCassandraClient(config.cassandra);
  await cql.connect();
  const deps = { kafka, codec, names, logger, metrics: createWorkerMetrics(metrics) };
  const store = createFeatureStore(cql);
  const registry = createModelRegistry(cql);
  const log = createPredictionLog(cql);
  const championGauge = new Gauge({ name: 'loopline_scorer_champion_version', help: 'Model version serving as champion.', labelNames: ['pipeline'], registers: [metrics] });

  let scorer: Scorer | null = null;
  const workers: Worker[] = [];
  for (const name of wanted) {
    if (name === 'feature-writer') workers.push(createWorker(createFeatureWriter({ spec, store }), deps, options.worker));
    // Only pipelines with events-sourced feature sets need the aggregator.
    if (name === 'feature-aggregator' && spec.featureSets.some((s) => s.source === 'events')) {
      workers.push(createWorker(createEventAggregator({ spec, store, cql }), deps, options.worker));
    }
    if (name === 'preprocessor') {
      const waited = new Histogram({ name: 'loopline_preprocessor_watermark_wait_seconds', help: 'Time spent waiting for the feature-writer to reach the events\' time.', labelNames: ['feature_set', 'caught_up'], buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [metrics] });
      const onWait = (set: string, ms: number, caughtUp: boolean) => waited.observe({ feature_set: set, caught_up: String(caughtUp) }, ms / 1000);
      workers.push(createWorker(createPreprocessor({ spec, store, onWait }), deps, options.worker));
    }
    if (name === 'scorer') {
      scorer = createScorer({
        spec,
        registry,
        log,
        logger: logger.child({ worker: 'scorer' }),
        onSwap: (s) => championGauge.set({ pipeline: spec.name }, s.champion.version),
      });
      workers.push(createWorker(scorer, deps, options.worker));
    }
    const child = logger.child({ worker: name });
    if (name === 'label-joiner') workers.push(createWorker(createLabelJoiner({ spec, cql, log, metrics, logger: child }), deps, options.worker));
    if (name === 'prediction-joiner') workers.push(createWorker(createPredictionJoiner({ spec, cql, log, metrics, logger: child }), deps, options.worker));
    if (name === 'drift-monitor') workers.push(createWorker(createDriftMonitor({ spec, cql, registry, logger: child, metrics }), deps, options.worker));
    if (name === 'retrain-trigger') {
      workers.push(createWorker(createRetrainTrigger({ spec, registry, checkpoints: createCheckpointStore(cql, 'retrain-trigger'), logger: child }), deps, options.worker));
    }
    if (name === 'model-builder') workers.push(createWorker(createModelBuilder({ spec, cql, registry, logger: child }), deps, { ...options.worker, sessionTimeoutMs: 120_000 }));
    if (name === 'evaluator') workers.push(createWorker(createEvaluator({ spec, cql, registry, logger: child }), deps, { ...options.worker, sessionTimeoutMs: 120_000 }));
  }

  let control: Consumer | null = null;
  let timer: NodeJS.Timeout | null = null;
  if (scorer) {
    const s = scorer;
    const reload = (why: string) => s.reload().catch((err: unknown) => logger.error({ err, why }, 'scorer reload failed'));
    control = kafka.consumer({ groupId: `${names.prefix}loopline-scorer-control-${crypto.randomUUID()}` });
    await control.connect();
    await control.subscribe({ topic: names.physical('control.models'), fromBeginning: false });
    await control.run({
      eachMessage: async ({ message }) => {
        const d = await codec.decode('ModelEvent', message.value);
        if (d.ok && d.value.pipeline === spec.name && d.value.model_name === spec.model.name) {
          logger.info({ action: d.value.action, version: d.value.model_version }, 'model event received');
          await reload('control event');
        }
      },
    });
    timer = setInterval(() => void reload('poll'), options.reloadIntervalMs ?? 10_000);
    timer.unref();
  }

  await Promise.all(workers.map((w) => w.start()));
  return {
    workers,
    scorer,
    metrics,
    cql,
    async stop() {
      if (timer) clearInterval(timer);
      await control?.disconnect().catch(() => {});
      await Promise.all(workers.map((w) => w.stop()));
      await cql.shutdown().catch(() => {});
    },
  };
}
