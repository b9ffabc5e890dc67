/**
 * The topic catalogue: every topic of the loop, its partitions, key,
 * retention, cleanup policy, record type(s) and dead-letter topic. Created
 * idempotently by `ensureTopics` (existing topics are left as they are, with
 * a warning when their partition count differs). Names get the configured
 * prefix, so several pipelines or test runs can share a cluster.
 */
import type { Admin } from 'kafkajs';
import { recordSchema, type RecordName } from '../schemas/catalogue.js';
import { FatalError, TransientError } from '../core/errors.js';
import type { DecodeLimits, DecodeOptions } from '../schemas/codec.js';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface TopicSpec {
  /** Logical name, without prefix. */
  name: string;
  partitions: number;
  /** What the message key holds (documentation and producers). */
  key: 'entity_id' | 'event_id' | 'pipeline' | 'model' | 'original key';
  retentionMs: number;
  cleanupPolicy: 'delete' | 'compact';
  /** Record types carried; one type means subject `<topic>-value`, several mean `<topic>-<record full name>`. */
  values: readonly RecordName[];
  /** Dead-letter topic for records of this topic that can never be processed. */
  deadLetter: string | null;
  /** Schema compatibility enforced on the topic's subjects. */
  compatibility: 'BACKWARD' | 'FULL_TRANSITIVE';
  /**
   * Topics that must have the same partition count and key (a co-partitioned
   * join reads partition i of each, in one member): checked by `ensureTopics`.
   */
  copartition?: string;
  /** Written and read by Loopline only (a repartition topic), not an interface for applications. */
  internal?: boolean;
  /** Decode limits of the topic's records (maxRecordBytes, maxCollectionItems...); unset ones take the codec's defaults. */
  limits?: Partial<DecodeLimits>;
  doc: string;
}

const dlq = <N extends string>(name: N) => ({
  name,
  partitions: 1,
  key: 'original key' as const,
  retentionMs: 30 * DAY_MS,
  cleanupPolicy: 'delete' as const,
  values: [] as RecordName[],
  deadLetter: null,
  compatibility: 'BACKWARD' as const,
  doc: 'Dead letters: original key and value bytes, reason in __connect.errors.* headers.',
});

export const TOPICS = [
  { name: 'events.client', partitions: 3, key: 'entity_id', retentionMs: 7 * DAY_MS, cleanupPolicy: 'delete', values: ['ClientEvent'], deadLetter: 'events.client.dlq', compatibility: 'BACKWARD', doc: 'Application events to score.' },
  { name: 'features.updates', partitions: 3, key: 'entity_id', retentionMs: 7 * DAY_MS, cleanupPolicy: 'delete', values: ['FeatureUpdate'], deadLetter: 'features.updates.dlq', compatibility: 'BACKWARD', doc: 'Streamed online feature values.' },
  { name: 'features.vectors', partitions: 3, key: 'entity_id', retentionMs: 3 * DAY_MS, cleanupPolicy: 'delete', values: ['FeatureVector'], deadLetter: 'features.vectors.dlq', compatibility: 'BACKWARD', doc: 'Events joined with the features served.' },
  { name: 'predictions', partitions: 3, key: 'entity_id', retentionMs: 7 * DAY_MS, cleanupPolicy: 'delete', values: ['Prediction'], deadLetter: 'predictions.dlq', compatibility: 'FULL_TRANSITIVE', doc: 'Predictions, for services and the joiner.' },
  { name: 'labels.ground-truth', partitions: 3, key: 'event_id', retentionMs: 14 * DAY_MS, cleanupPolicy: 'delete', values: ['GroundTruth'], deadLetter: 'labels.ground-truth.dlq', compatibility: 'FULL_TRANSITIVE', copartition: 'join', doc: 'Ground truth as it becomes known.' },
  { name: 'predictions.by-event', partitions: 3, key: 'event_id', retentionMs: 14 * DAY_MS, cleanupPolicy: 'delete', values: ['Prediction'], deadLetter: 'predictions.by-event.dlq', compatibility: 'BACKWARD', copartition: 'join', internal: true, doc: 'Every prediction (champion, A/B and shadow) keyed by event id: the joiner\'s repartition of `predictions`, co-partitioned with the labels.' },
  { name: 'labels.late', partitions: 1, key: 'event_id', retentionMs: 30 * DAY_MS, cleanupPolicy: 'delete', values: ['GroundTruth'], deadLetter: null, compatibility: 'FULL_TRANSITIVE', doc: 'Labels past the join horizon: counted, kept, not joined.' },
  { name: 'predictions.by-model', partitions: 3, key: 'model', retentionMs: 3 * DAY_MS, cleanupPolicy: 'delete', values: ['Prediction'], deadLetter: 'predictions.by-model.dlq', compatibility: 'BACKWARD', copartition: 'monitor', internal: true, doc: 'Every prediction (champion, A/B and shadow) keyed by model: the drift monitor\'s repartition of `predictions`, co-partitioned with `predictions.labeled`, for the quality estimate before labels (monitoring.estimate).' },
  { name: 'predictions.labeled', partitions: 3, key: 'model', retentionMs: 14 * DAY_MS, cleanupPolicy: 'delete', values: ['LabeledPrediction'], deadLetter: 'predictions.labeled.dlq', compatibility: 'FULL_TRANSITIVE', copartition: 'monitor', doc: 'Predictions joined with ground truth.' },
  { name: 'monitor.reports', partitions: 1, key: 'model', retentionMs: 90 * DAY_MS, cleanupPolicy: 'delete', values: ['QualityReport', 'DriftReport'], deadLetter: 'monitor.reports.dlq', compatibility: 'BACKWARD', doc: 'Quality and drift reports per window, and the label progress (every windowSize / 10 served labels) the retrain trigger counts fresh labels by.' },
  { name: 'control.retrain', partitions: 1, key: 'pipeline', retentionMs: 90 * DAY_MS, cleanupPolicy: 'delete', values: ['RetrainRequest'], deadLetter: 'control.retrain.dlq', compatibility: 'BACKWARD', doc: 'Retrain decisions.' },
  { name: 'control.candidates', partitions: 1, key: 'pipeline', retentionMs: 90 * DAY_MS, cleanupPolicy: 'delete', values: ['ModelCandidate'], deadLetter: 'control.candidates.dlq', compatibility: 'BACKWARD', doc: 'Trained candidates awaiting evaluation.' },
  { name: 'control.models', partitions: 1, key: 'model', retentionMs: 365 * DAY_MS, cleanupPolicy: 'delete', values: ['ModelEvent'], deadLetter: 'control.models.dlq', compatibility: 'BACKWARD', doc: 'Promotions, rollbacks, shadow and A/B changes (a staged rollout\'s steps among them); scorers hot-swap on them.' },
  dlq('events.client.dlq'),
  dlq('features.updates.dlq'),
  dlq('features.vectors.dlq'),
  dlq('predictions.dlq'),
  dlq('predictions.by-event.dlq'),
  dlq('labels.ground-truth.dlq'),
  dlq('predictions.by-model.dlq'),
  dlq('predictions.labeled.dlq'),
  dlq('control.retrain.dlq'),
  dlq('control.candidates.dlq'),
  dlq('monitor.reports.dlq'),
  dlq('control.models.dlq'),
] as const satisfies readonly TopicSpec[];

/** A topic of the catalogue, by its logical name: what workers declare as input and outputs. */
export type TopicName = (typeof TOPICS)[number]['name'];

export function isTopicName(name: string): name is TopicName {
  return TOPICS.some((t) => t.name === name);
}

export function topicSpec(name: string): TopicSpec {
  const spec = (TOPICS as readonly TopicSpec[]).find((t) => t.name === name);
  if (!spec) throw new FatalError(`unknown topic ${name}; the catalogue has ${TOPICS.map((t) => t.name).join(', ')}`, 'UNKNOWN_TOPIC');
  return spec;
}

/** Resolves logical names to physical ones under a prefix. */
export function createTopicNames(prefix: string) {
  return {
    prefix,
    physical: (name: string): string => `${prefix}${name}`,
    /** The registry subject for a record type on a topic (TopicNameStrategy, or TopicRecordNameStrategy for multi-type topics). */
    subject(name: string, record: RecordName): string {
      const spec = topicSpec(name);
      return spec.values.length > 1 ? `${prefix}${name}-${recordSchema(record).fullName}` : `${prefix}${name}-value`;
    },
  };
}
export type TopicNames = ReturnType<typeof createTopicNames>;

/**
 * What the codec should accept on `topic`: only ids registered under the
 * topic's subjects (one per record type it carries), with the topic's limits,
 * then `overrides` (a worker's own maxRecordBytes, say). Build it once per
 * worker and pass the same object to every decode.
 *
 *   const decodeOptions = decodeOptionsFor(names, 'events.client', { maxRecordBytes: 65_536 });
 *   const d = await codec.decode('ClientEvent', message.value, decodeOptions);
 */
export function decodeOptionsFor(names: TopicNames, topic: string, overrides: Partial<DecodeOptions> = {}): DecodeOptions {
  const spec = topicSpec(topic);
  return { subjects: spec.values.map((r) => names.subject(topic, r)), ...spec.limits, ...overrides };
}

export interface EnsureTopicsResult {
  created: string[];
  existing: string[];
  mismatched: Array<{ topic: string; partitions: number; expected: number }>;
}

const UNSETTLED = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE']);

/** Waits until every partition of `topics` has a leader; a topic the broker does not know yet counts as not ready. */
export async function waitForTopicLeaders(admin: Admin, topics: string[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const meta = await admin.fetchTopicMetadata({ topics });
      if (meta.topics.length === topics.length && meta.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return;
    } catch (err) {
      if (!UNSETTLED.has((err as { type?: string }).type ?? '')) throw err;
    }
    if (Date.now() > deadline) throw new TransientError(`topics ${topics.join(', ')} have no leader after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** How many copies of each created topic (`LOOPLINE_KAFKA_REPLICATION_FACTOR`, `_MIN_INSYNC_REPLICAS`). */
export interface TopicReplication {
  replicationFactor: number;
  /** null: the broker's `min.insync.replicas`. */
  minInsyncReplicas: number | null;
}

/** Creates missing topics; never alters existing ones (a partition change reshuffles keys, an operator's call). */
export async function ensureTopics(
  admin: Admin,
  names: TopicNames,
  specs: readonly TopicSpec[] = TOPICS,
  { replicationFactor, minInsyncReplicas }: TopicReplication = { replicationFactor: 1, minInsyncReplicas: null },
): Promise<EnsureTopicsResult> {
  for (const group of new Set(specs.map((s) => s.copartition).filter(Boolean))) {
    const members = specs.filter((s) => s.copartition === group);
    if (new Set(members.map((m) => m.partitions)).size > 1) throw new FatalError(`co-partitioned topics ${members.map((m) => m.name).join(', ')} must have the same partition count`, 'COPARTITION');
  }
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((s) => !existing.has(names.physical(s.name)));
  if (missing.length > 0) {
    // Not kafkajs's waitForLeaders: it retries only LEADER_NOT_AVAILABLE, and a loaded broker can answer the
    // first metadata request after CreateTopics with UNKNOWN_TOPIC_OR_PARTITION, which failed the bootstrap.
    await admin.createTopics({
      waitForLeaders: false,
      topics: missing.map((s) => ({
        topic: names.physical(s.name),
        numPartitions: s.partitions,
        replicationFactor,
        configEntries: [
          { name: 'retention.ms', value: String(s.retentionMs) },
          { name: 'cleanup.policy', value: s.cleanupPolicy },
          ...(minInsyncReplicas === null ? [] : [{ name: 'min.insync.replicas', value: String(minInsyncReplicas) }]),
        ],
      })),
    });
    await waitForTopicLeaders(admin, missing.map((s) => names.physical(s.name)));
  }
  const present = specs.filter((s) => existing.has(names.physical(s.name)));
  const mismatched: EnsureTopicsResult['mismatched'] = [];
  if (present.length > 0) {
    const meta = await admin.fetchTopicMetadata({ topics: present.map((s) => names.physical(s.name)) });
    for (const t of meta.topics) {
      const spec = present.find((s) => names.physical(s.name) === t.name);
      if (spec && t.partitions.length !== spec.partitions) mismatched.push({ topic: t.name, partitions: t.partitions.length, expected: spec.partitions });
    }
  }
  for (const m of mismatched) {
    const spec = specs.find((s) => names.physical(s.name) === m.topic);
    if (spec?.copartition) throw new FatalError(`${m.topic} has ${m.partitions} partitions but is co-partitioned (${spec.copartition}) at ${m.expected}: a join would miss records; recreate it or repartition`, 'COPARTITION');
  }
  return { created: missing.map((s) => names.physical(s.name)), existing: present.map((s) => names.physical(s.name)), mismatched };
}
