/**
 * Every Cassandra-backed store of the loop, built once per process from one
 * driver session. Workers receive this (or, in flow tests, the in-memory
 * stores of store/memory.ts) and take the narrow interfaces they need; only
 * store/ imports cassandra-driver.
 */
import type cassandra from 'cassandra-driver';
import type { ModelRegistry } from '../models/registry.js';
import type { StateStore } from '../streams/state.js';
import { createFeatureStore, type FeatureStore } from './feature-store.js';
import { createLabelStore, type LabelStore } from './labels.js';
import { createModelRegistry } from './model-registry.js';
import { createMonitorReportStore, type MonitorReportStore } from './monitor-reports.js';
import { createPipelineSpecStore, type PipelineSpecStore } from './pipeline-specs.js';
import { createLimiter, createPredictionLog, type PredictionLog } from './prediction-log.js';
import { createRetrainRequestStore, type RetrainRequestStore } from './retrain-requests.js';
import { createProgressStore, createStateStore, type ProgressStore, type StateStoreOptions } from './state-store.js';
import { createTrainingSet, type TrainingSet } from './training-set.js';

export interface Stores {
  features: FeatureStore;
  predictions: PredictionLog;
  registry: ModelRegistry;
  labels: LabelStore;
  training: TrainingSet;
  reports: MonitorReportStore;
  requests: RetrainRequestStore;
  /** The applied versions of each pipeline's spec (`loopline setup --spec`), which running workers pick up. */
  specs: PipelineSpecStore;
  /** The keyed state of a stateful worker (streams/state.ts). */
  state<S, E = unknown>(worker: string, options?: StateStoreOptions): StateStore<S, E>;
  progress(worker: string): ProgressStore;
}

/** `batchRows`: most rows per unlogged batch in the hot write paths (config LOOPLINE_CASSANDRA_BATCH_ROWS; store/batch.ts). */
export function createStores(cql: cassandra.Client, options: { inFlight?: number; batchRows?: number } = {}): Stores {
  const inFlight = createLimiter(options.inFlight ?? 512);
  const batchRows = options.batchRows ?? 50;
  return {
    features: createFeatureStore(cql),
    predictions: createPredictionLog(cql, { inFlight, batchRows }),
    registry: createModelRegistry(cql),
    labels: createLabelStore(cql, { batchRows }),
    training: createTrainingSet(cql, { batchRows }),
    reports: createMonitorReportStore(cql),
    requests: createRetrainRequestStore(cql),
    specs: createPipelineSpecStore(cql),
    state: (worker, opts) => createStateStore(cql, worker, { batchRows, ...opts }),
    progress: (worker) => createProgressStore(cql, worker),
  };
}
