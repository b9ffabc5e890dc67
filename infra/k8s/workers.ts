/**
 * What the Kubernetes manifests need to know about each worker, as a small
 * typed description, and the one adapter that computes it from the code.
 *
 *   describeWorkers()   // → WorkerDeployment[], in WORKER_NAMES order
 *
 * `generate.ts` renders the manifests from this description only, so when the
 * workers become self-describing definitions (name, input topics, outputs,
 * config schema, runtime options), `describeWorkers` is the only function to
 * point at them: the input topic, the "does this pipeline run it" rule and the
 * runtime options below are today copied from `consumers/*` (a unit test checks
 * the input topics against the real handlers).
 */
import { WORKER_NAMES, type WorkerName } from '../../consumers/pipeline.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import { topicSpec } from '../../streams/topics.js';

/** Container resources, in Kubernetes quantities. */
export interface WorkerResources {
  requests: { cpu: string; memory: string };
  limits: { cpu: string; memory: string };
}

export interface WorkerDeployment {
  /** Worker name, as `loopline run --workers` takes it; also the Kubernetes component label. */
  name: WorkerName;
  /** Consumer group without the topic prefix (the runtime's `<prefix>loopline-<name>`). */
  consumerGroup: string;
  /** Logical input topics (catalogue names, without the prefix) and their partition counts from the catalogue. */
  inputs: Array<{ topic: string; partitions: number }>;
  /**
   * Most consumers the group can use: the input partitions, summed (the assigner spreads every subscribed
   * partition). KEDA's maxReplicaCount; 1 for the single-partition control topics.
   */
  partitionCap: number;
  /** Records of lag per replica that KEDA aims at (its `lagThreshold`). */
  lagThreshold: number;
  resources: WorkerResources;
  /** Extra non-secret environment of this worker's container (on top of the shared ConfigMap). */
  env: Record<string, string>;
  /** Whether a pipeline with this spec runs the worker at all (`startPipeline` skips it otherwise). */
  runsFor: (spec: PipelineSpec) => boolean;
}

/** Logical input topic of each worker: the `input.topic` of its handler in consumers/*. */
const INPUT_TOPICS: Record<WorkerName, readonly string[]> = {
  'feature-writer': ['features.updates'],
  'feature-aggregator': ['events.client'],
  preprocessor: ['events.client'],
  scorer: ['features.vectors'],
  'label-joiner': ['labels.ground-truth'],
  'prediction-joiner': ['predictions'],
  'drift-monitor': ['predictions.labeled'],
  'retrain-trigger': ['monitor.reports'],
  'model-builder': ['control.retrain'],
  evaluator: ['control.candidates'],
};

const SMALL: WorkerResources = { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } };
/** The scorer holds ONNX sessions (champion, shadow, A/B arm); the builder and evaluator hold training sets. */
const RESOURCES: Partial<Record<WorkerName, WorkerResources>> = {
  scorer: { requests: { cpu: '250m', memory: '384Mi' }, limits: { cpu: '1', memory: '1Gi' } },
  'model-builder': { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '2', memory: '2Gi' } },
  evaluator: { requests: { cpu: '250m', memory: '512Mi' }, limits: { cpu: '1', memory: '1Gi' } },
};

/** Everything up to the drift monitor sees a record per event; the retrain trigger and later see a few reports and control records. */
const LAG_THRESHOLD: Partial<Record<WorkerName, number>> = {
  'feature-writer': 1000, 'feature-aggregator': 1000, preprocessor: 1000, scorer: 1000, 'label-joiner': 1000, 'prediction-joiner': 1000, 'drift-monitor': 1000,
};

/** `startPipeline` starts the aggregator only for pipelines with events-sourced feature sets (consumers/pipeline.ts). */
const RUNS_FOR: Partial<Record<WorkerName, (spec: PipelineSpec) => boolean>> = {
  'feature-aggregator': (spec) => spec.featureSets.some((s) => s.source === 'events'),
};

/** The adapter: the deployment description of every worker, from WORKER_NAMES and the topic catalogue. */
export function describeWorkers(): WorkerDeployment[] {
  return WORKER_NAMES.map((name) => {
    const inputs = INPUT_TOPICS[name].map((topic) => ({ topic, partitions: topicSpec(topic).partitions }));
    return {
      name,
      consumerGroup: `loopline-${name}`,
      inputs,
      partitionCap: inputs.reduce((n, i) => n + i.partitions, 0),
      lagThreshold: LAG_THRESHOLD[name] ?? 10,
      resources: RESOURCES[name] ?? SMALL,
      env: {},
      runsFor: RUNS_FOR[name] ?? (() => true),
    };
  });
}
