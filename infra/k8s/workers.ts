/**
 * What the Kubernetes manifests need to know about each worker, as a small
 * typed description, and the one adapter that computes it from the code.
 *
 *   describeWorkers()   // → WorkerDeployment[], in WORKER_NAMES order
 *
 * `generate.ts` renders the manifests from this description only; the input
 * topics, the "does this pipeline run it" rule and the consumer group come
 * from the worker definitions (consumers/index.ts); resources and lag
 * thresholds are deployment choices kept here.
 */
import { WORKERS, type WorkerName } from '../../consumers/index.js';
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
   * Most consumers the group can use: its number of tasks (the input partitions, summed, or one topic's partitions
   * for a co-partitioned join). KEDA's maxReplicaCount; 1 for the single-partition control topics.
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

const SMALL: WorkerResources = { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } };
/** The scorer holds ONNX sessions (champion, shadow, A/B arm); the builder and evaluator hold training sets. */
const RESOURCES: Partial<Record<WorkerName, WorkerResources>> = {
  scorer: { requests: { cpu: '250m', memory: '384Mi' }, limits: { cpu: '1', memory: '1Gi' } },
  'model-builder': { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '2', memory: '2Gi' } },
  evaluator: { requests: { cpu: '250m', memory: '512Mi' }, limits: { cpu: '1', memory: '1Gi' } },
};

/** Everything up to the drift monitor sees a record per event; the retrain trigger and later see a few reports and control records. */
const LAG_THRESHOLD: Partial<Record<WorkerName, number>> = {
  'feature-writer': 1000, 'feature-aggregator': 1000, preprocessor: 1000, scorer: 1000, joiner: 1000, 'drift-monitor': 1000,
};

/** The adapter: the deployment description of every worker, from its definition and the topic catalogue. */
export function describeWorkers(): WorkerDeployment[] {
  return WORKERS.map((d) => {
    const name = d.name as WorkerName;
    const inputs = d.input.topics.map((t) => ({ topic: t.topic as string, partitions: topicSpec(t.topic).partitions }));
    return {
      name,
      consumerGroup: `loopline-${name}`,
      inputs,
      // A co-partitioned worker has one task per partition number; otherwise every subscribed partition is a task.
      partitionCap: d.input.copartitioned ? Math.max(...inputs.map((i) => i.partitions)) : inputs.reduce((n, i) => n + i.partitions, 0),
      lagThreshold: LAG_THRESHOLD[name] ?? 10,
      resources: RESOURCES[name] ?? SMALL,
      env: {},
      runsFor: (spec: PipelineSpec) => d.enabled?.(spec) ?? true,
    };
  });
}
