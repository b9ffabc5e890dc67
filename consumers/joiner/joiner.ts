/**
 * joiner: ground truth meets the predictions it labels. Two handlers share
 * one pure core and one claim table:
 *
 * - the label joiner (labels.ground-truth): a label past the horizon goes to
 *   late_labels and labels.late and is never joined; an invalid one is
 *   dead-lettered (VALIDATION/BAD_LABEL); otherwise it is written to
 *   ground_truth FIRST, then the prediction log is read and every logged
 *   prediction of the event (champion, A/B and shadow) is joined. With none
 *   logged yet, the label waits in ground_truth.
 * - the prediction joiner (predictions): reads ground_truth for the event; if
 *   a label is there, every logged prediction of the event is joined (the
 *   log also holds shadow predictions, which never reach the topic).
 *
 * No join is missed: the scorer writes the log before its prediction is
 * committed to the topic, and the label joiner writes ground_truth before it
 * reads the log, so at least one side sees the other. Both may, and labels
 * may be duplicated, and a crash replays a chunk: a claim makes the output
 * exactly one LabeledPrediction per logged prediction. The claim is
 * `INSERT INTO labeled_claims ... IF NOT EXISTS` with claimed_by =
 * `<worker>:<topic>:<partition>:<offset>` of the input record; the record
 * whose claim applied emits, and so does a replay of that same record (its
 * first attempt's Kafka transaction was aborted, so nothing was emitted).
 * Anyone else is absorbed. A claim is never orphaned, because the claiming
 * record's offset is only committed with the transaction carrying the output.
 *
 * Each emitted prediction is also written to labeled_by_time, and the served
 * one (champion or an A/B arm, not shadow) to training_rows: the features the
 * model saw plus the ground truth, one row per event, read back with
 * `readTrainingRows`.
 *
 *   const labels = createLabelJoiner({ spec, cql, log, metrics });
 *   const predictions = createPredictionJoiner({ spec, cql, log, metrics });
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type cassandra from 'cassandra-driver';
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { GroundTruth, LabeledPrediction, Prediction } from '../../schemas/types.js';
import type { LoggedPrediction, PredictionLog } from '../../store/prediction-log.js';
import { TransientError } from '../../streams/errors.js';
import type { Logger } from '../../streams/logger.js';
import type { InputRecord, OutputRecord, RecordFailure, WorkerHandler } from '../../streams/runtime.js';
import { createJoinerStore, type ClaimResult, type JoinerStore, type StoredTruth } from './store.js';

export { monthOf, readTrainingRows, type TrainingRow } from './store.js';

export interface JoinerDeps {
  spec: PipelineSpec;
  cql: cassandra.Client;
  log: PredictionLog;
  now?: () => number;
  /** Registry for the loopline_joiner_* metrics; both handlers of a process should share one. */
  metrics?: Registry;
  logger?: Logger;
  /** Events joined at once within a chunk. Default 16. */
  concurrency?: number;
}

export const LABEL_JOINER = 'label-joiner';
export const PREDICTION_JOINER = 'prediction-joiner';

export type LabelOutcome = 'joined' | 'pending' | 'late' | 'duplicate' | 'invalid';
export type ClaimDecision = 'claimed' | 'reclaimed' | 'absorbed';

// ---------------------------------------------------------------- pure core

/** A label is late when it became known more than the horizon after its event (event time). */
export function isLate(spec: PipelineSpec, l: { event_time: number; label_time: number }): boolean {
  return l.label_time - l.event_time > spec.label.horizonMs;
}

/** Label delay in seconds (event time → label time), never negative. */
export function labelDelaySeconds(l: { event_time: number; label_time: number }): number {
  return Math.max(0, l.label_time - l.event_time) / 1000;
}

/** The label's identity: an event id and this worker's pipeline. */
export function checkIdentity(spec: PipelineSpec, l: Pick<GroundTruth, 'event_id' | 'pipeline'>): Omit<RecordFailure, 'index'> | null {
  if (!l.event_id) return { stage: 'VALIDATION', code: 'BAD_LABEL', message: 'event_id is empty' };
  if (l.pipeline !== spec.name) return { stage: 'VALIDATION', code: 'WRONG_PIPELINE', message: `label is for pipeline "${l.pipeline}", this worker joins "${spec.name}"` };
  return null;
}

/** The label's value against spec.label: a known class (categorical) or a finite number (numeric). */
export function checkLabel(spec: PipelineSpec, label: unknown): Omit<RecordFailure, 'index'> | null {
  const bad = (message: string) => ({ stage: 'VALIDATION' as const, code: 'BAD_LABEL', message });
  if (spec.label.type === 'categorical') {
    if (typeof label !== 'string') return bad(`label must be a class name (string), got ${JSON.stringify(label)}`);
    if (spec.label.classes.length > 0 && !spec.label.classes.includes(label)) return bad(`label "${label}" is not one of the classes ${spec.label.classes.join(', ')}`);
    return null;
  }
  if (typeof label !== 'number') return bad(`label must be a number, got ${JSON.stringify(label)}`);
  if (!Number.isFinite(label)) return bad(`label is ${label}; numeric labels must be finite`);
  return null;
}

/** The claim id of an input record: `<worker>:<topic>:<partition>:<offset>`. */
export function claimTag(worker: string, r: Pick<InputRecord<unknown>, 'topic' | 'partition' | 'offset'>): string {
  return `${worker}:${r.topic}:${r.partition}:${r.offset}`;
}

/** Emit on a fresh claim or on my own earlier claim (a replay); otherwise someone else emitted it. */
export function claimDecision(r: ClaimResult, mine: string): ClaimDecision {
  if (r.applied) return 'claimed';
  return r.claimedBy === mine ? 'reclaimed' : 'absorbed';
}

/** Served to the application (champion or an A/B arm), as opposed to shadow. */
export function isServed(variant: string): boolean {
  return variant !== 'shadow';
}

/**
 * A Prediction from a prediction-log row. The log omits null features (they
 * are listed in `missing`); they are restored as null.
 */
export function fromLogged(l: LoggedPrediction): Prediction {
  const features: Prediction['features'] = {};
  for (const m of l.missing) features[m] = null;
  Object.assign(features, l.features);
  return {
    prediction_id: l.prediction_id,
    event_id: l.event_id,
    pipeline: l.pipeline,
    entity_id: l.entity_id,
    model_name: l.model_name,
    model_version: l.model_version,
    variant: l.variant,
    label: l.label,
    score: l.score,
    probabilities: l.probabilities,
    value: l.value,
    features,
    missing: l.missing,
    event_time: l.event_time,
    produced_at: l.produced_at,
    scored_at: l.scored_at,
  };
}

/** Pure: a prediction joined with its label. correct (classification) / error = value − truth (regression). */
export function toLabeledPrediction(p: Prediction, truth: { label: string | number; label_time: number }, joinedAt: number): LabeledPrediction {
  const classification = typeof truth.label === 'string';
  return {
    prediction: p,
    label: truth.label,
    label_time: truth.label_time,
    joined_at: joinedAt,
    correct: classification ? p.label === truth.label : null,
    error: !classification && p.value !== null ? p.value - (truth.label as number) : null,
  };
}

export function labeledKey(p: Pick<Prediction, 'pipeline' | 'model_name'>): string {
  return `${p.pipeline}/${p.model_name}`;
}

// ---------------------------------------------------------------- metrics

/**
 * loopline_joiner_*, shared by both handlers of a process (one set per registry):
 * - labels_total{outcome}: each label record, once, by its outcome on arrival:
 *   joined (≥1 prediction emitted), pending (no prediction logged yet; it waits
 *   in ground_truth and the prediction joiner joins it later), late (past the
 *   horizon), duplicate (every prediction already emitted for an earlier copy),
 *   invalid (dead-lettered). A replayed chunk counts again.
 * - label_delay_seconds: label_time − event_time of valid labels, late ones included.
 * - claims_total{worker,result}: claimed (emitted), reclaimed (re-emitted by a
 *   replay of the claiming record), absorbed (emitted by someone else).
 * - served_predictions_total: served (non-shadow) predictions consumed by the prediction joiner.
 * - joined_predictions_total{worker}: served predictions newly joined with their label (each
 *   exactly once across all joiners, whichever joiner did it).
 * - label_coverage: joined_predictions_total (both workers) / served_predictions_total, in this
 *   process since it started: the share of served predictions whose event has been joined with
 *   ground truth. It trails 1 by the labels not yet due (label delay) and the ones that never
 *   come; in steady state ≈ 1 − delay × prediction rate / predictions seen. Run both handlers in
 *   one process for it to mean this; across processes use
 *   sum(rate(joined_predictions_total)) / sum(rate(served_predictions_total)).
 */
export interface JoinerMetrics {
  /** Plain tallies behind the coverage gauge. */
  counts: { served: number; joined: number };
  labels: Counter<'outcome'>;
  delay: Histogram;
  claims: Counter<'worker' | 'result'>;
  served: Counter;
  joined: Counter<'worker'>;
  coverage: Gauge;
}

export function joinerMetrics(registry: Registry = new Registry()): JoinerMetrics {
  const existing = metricsByRegistry.get(registry);
  if (existing) return existing;
  const counts = { served: 0, joined: 0 };
  const m: JoinerMetrics = {
    counts,
    labels: new Counter({ name: 'loopline_joiner_labels_total', help: 'Ground-truth records by outcome on arrival: joined, pending, late, duplicate, invalid.', labelNames: ['outcome'], registers: [registry] }),
    delay: new Histogram({
      name: 'loopline_joiner_label_delay_seconds',
      help: 'Label delay in event time: label_time - event_time, seconds.',
      buckets: [60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400, 2 * 86_400, 3 * 86_400, 7 * 86_400, 14 * 86_400, 30 * 86_400],
      registers: [registry],
    }),
    claims: new Counter({ name: 'loopline_joiner_claims_total', help: 'Claims of logged predictions: claimed (emitted), reclaimed (re-emitted on replay), absorbed (already emitted).', labelNames: ['worker', 'result'], registers: [registry] }),
    served: new Counter({ name: 'loopline_joiner_served_predictions_total', help: 'Served (non-shadow) predictions consumed by the prediction joiner.', registers: [registry] }),
    joined: new Counter({ name: 'loopline_joiner_joined_predictions_total', help: 'Served predictions newly joined with ground truth.', labelNames: ['worker'], registers: [registry] }),
    coverage: new Gauge({
      name: 'loopline_joiner_label_coverage',
      help: 'Joined served predictions / served predictions seen by this process since start (see joiner.ts).',
      registers: [registry],
      collect() {
        this.set(counts.served > 0 ? counts.joined / counts.served : 0);
      },
    }),
  };
  metricsByRegistry.set(registry, m);
  return m;
}
const metricsByRegistry = new WeakMap<Registry, JoinerMetrics>();

// ---------------------------------------------------------------- shared effects

interface JoinContext {
  spec: PipelineSpec;
  store: JoinerStore;
  metrics: JoinerMetrics;
  now: () => number;
  concurrency: number;
  logger: Logger | undefined;
}

function contextOf(deps: JoinerDeps): JoinContext {
  return {
    spec: deps.spec,
    store: createJoinerStore(deps.cql),
    metrics: joinerMetrics(deps.metrics),
    now: deps.now ?? Date.now,
    concurrency: deps.concurrency ?? 16,
    logger: deps.logger,
  };
}

async function byEvent(log: PredictionLog, eventId: string): Promise<LoggedPrediction[]> {
  try {
    return await log.byEvent(eventId);
  } catch (err) {
    if (err instanceof TransientError) throw err;
    throw new TransientError(`reading the prediction log of ${eventId}: ${(err as Error).message}`, err, 'STORE_UNAVAILABLE');
  }
}

/** Claims each prediction for `tag`; writes and returns the outputs of the ones to emit. */
async function joinEvent(ctx: JoinContext, worker: string, tag: string, truth: StoredTruth, predictions: Prediction[], joinedAt: number): Promise<{ outputs: OutputRecord[] }> {
  const { store, metrics } = ctx;
  const results = await Promise.all(
    predictions.map(async (p) => {
      const decision = claimDecision(await store.claim(p.prediction_id, p.event_id, tag, joinedAt), tag);
      metrics.claims.inc({ worker, result: decision });
      if (decision === 'absorbed') return { decision, output: null };
      const labeled = toLabeledPrediction(p, truth, joinedAt);
      await Promise.all([
        store.writeLabeled(p, truth.label, truth.label_time, labeled.correct, labeled.error),
        isServed(p.variant) ? store.writeTrainingRow(p, truth.label, truth.label_time) : null,
      ]);
      if (decision === 'claimed' && isServed(p.variant)) {
        metrics.joined.inc({ worker });
        metrics.counts.joined++;
      }
      const output: OutputRecord = { topic: 'predictions.labeled', record: 'LabeledPrediction', key: labeledKey(p), value: labeled };
      return { decision, output };
    }),
  );
  const outputs = results.flatMap((r) => (r.output ? [r.output] : []));
  if (outputs.length > 0) await store.markJoined(truth.event_id);
  return { outputs };
}

/** Runs `fn` over groups of record indices sharing an event id: groups concurrently, a group's records in offset order. */
async function perEvent<V>(records: Array<InputRecord<V>>, eventId: (v: V) => string, limit: number, fn: (index: number) => Promise<void>): Promise<void> {
  const groups = new Map<string, number[]>();
  records.forEach((r, i) => {
    const k = eventId(r.value);
    const g = groups.get(k);
    if (g) g.push(i);
    else groups.set(k, [i]);
  });
  const queue = [...groups.values()];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, queue.length) }, async () => {
      while (next < queue.length) {
        const group = queue[next++]!;
        for (const i of group) await fn(i);
      }
    }),
  );
}

// ---------------------------------------------------------------- handlers

export function createLabelJoiner(deps: JoinerDeps): WorkerHandler<'GroundTruth'> {
  const ctx = contextOf(deps);
  const { spec, store, metrics } = ctx;
  return {
    name: LABEL_JOINER,
    input: { topic: 'labels.ground-truth', record: 'GroundTruth' },
    async process(records: Array<InputRecord<GroundTruth>>) {
      const joinedAt = ctx.now();
      const perRecord: Array<{ outputs: OutputRecord[]; failure?: RecordFailure }> = records.map(() => ({ outputs: [] }));
      const outcomes: LabelOutcome[] = [];
      await perEvent(records, (l) => l.event_id, ctx.concurrency, async (index) => {
        const r = records[index]!;
        const l = r.value;
        const identity = checkIdentity(spec, l);
        if (identity) {
          perRecord[index] = { outputs: [], failure: { index, ...identity } };
          outcomes.push('invalid');
          return;
        }
        const truth: StoredTruth = { event_id: l.event_id, pipeline: l.pipeline, label: l.label, event_time: l.event_time, label_time: l.label_time };
        if (isLate(spec, l)) {
          await store.writeLate(truth, 'past_horizon');
          perRecord[index] = { outputs: [{ topic: 'labels.late', record: 'GroundTruth', key: l.event_id, value: l }] };
          metrics.delay.observe(labelDelaySeconds(l));
          outcomes.push('late');
          return;
        }
        const problem = checkLabel(spec, l.label);
        if (problem) {
          perRecord[index] = { outputs: [], failure: { index, ...problem } };
          outcomes.push('invalid');
          return;
        }
        metrics.delay.observe(labelDelaySeconds(l));
        // Order matters: ground truth is durable before the log is read (see the header).
        await store.writeTruth(truth, joinedAt);
        const logged = (await byEvent(deps.log, l.event_id)).filter((p) => p.pipeline === spec.name);
        if (logged.length === 0) {
          outcomes.push('pending');
          return;
        }
        const predictions = logged.map(fromLogged);
        const { outputs } = await joinEvent(ctx, LABEL_JOINER, claimTag(LABEL_JOINER, r), truth, predictions, joinedAt);
        perRecord[index] = { outputs };
        outcomes.push(outputs.length > 0 ? 'joined' : 'duplicate'); // nothing to emit: every prediction was emitted for an earlier copy
      });
      for (const o of outcomes) metrics.labels.inc({ outcome: o });
      const outputs = perRecord.flatMap((p) => p.outputs);
      const deadLetters = perRecord.flatMap((p) => (p.failure ? [p.failure] : []));
      ctx.logger?.debug({ labels: records.length, outputs: outputs.length, deadLetters: deadLetters.length }, 'labels joined');
      return { outputs, deadLetters };
    },
  };
}

export function createPredictionJoiner(deps: JoinerDeps): WorkerHandler<'Prediction'> {
  const ctx = contextOf(deps);
  const { spec, store, metrics } = ctx;
  return {
    name: PREDICTION_JOINER,
    input: { topic: 'predictions', record: 'Prediction' },
    async process(records: Array<InputRecord<Prediction>>) {
      const joinedAt = ctx.now();
      const perRecord: OutputRecord[][] = records.map(() => []);
      await perEvent(records, (p) => p.event_id, ctx.concurrency, async (index) => {
        const r = records[index]!;
        const p = r.value;
        if (p.pipeline !== spec.name) return; // another pipeline's prediction on a shared topic
        if (isServed(p.variant)) {
          metrics.served.inc();
          metrics.counts.served++;
        }
        const truth = await store.readTruth(p.event_id);
        if (!truth || truth.pipeline !== spec.name || isLate(spec, truth)) return; // the label joiner joins it when the label comes
        const logged = (await byEvent(deps.log, p.event_id)).filter((l) => l.pipeline === spec.name);
        const predictions = logged.map((l) => (l.prediction_id === p.prediction_id ? p : fromLogged(l)));
        if (!predictions.some((x) => x.prediction_id === p.prediction_id)) predictions.push(p);
        const { outputs } = await joinEvent(ctx, PREDICTION_JOINER, claimTag(PREDICTION_JOINER, r), truth, predictions, joinedAt);
        perRecord[index] = outputs;
      });
      return { outputs: perRecord.flat() };
    },
  };
}
