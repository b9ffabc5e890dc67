/**
 * The demo's report, measured from what the loop wrote, never assumed:
 * predictions read back from the topic and the prediction log and counted
 * against the replayed event ids, dead letters read from every dead-letter
 * topic, joined labels from predictions.labeled, retrains and promotions from
 * the registry, and quality recomputed from the joined labels. The static
 * baseline is the bootstrap model scoring the very feature values that were
 * served during the run, i.e. the same replay without any retraining.
 */
import fs from 'node:fs';
import path from 'node:path';
import type cassandra from 'cassandra-driver';
import type { Kafka } from 'kafkajs';
import { modelInputs } from '../models/lifecycle.js';
import { qualityMetrics, type QualityMetrics } from '../models/metrics.js';
import type { ModelOutput } from '../models/model-output.js';
import { loadOnnxModel } from '../models/onnx-model.js';
import { periodicBaselineForPipeline } from '../models/periodic-baseline.js';
import type { ModelRegistry } from '../models/registry.js';
import type { PipelineSpec } from '../pipelines/spec.js';
import type { BootstrapResult } from '../producers/bootstrap.js';
import type { Codec, RecordTypes } from '../schemas/codec.js';
import type { RecordName } from '../schemas/catalogue.js';
import type { Prediction, QualityReport } from '../schemas/types.js';
import { readToEnd, type ReadMessage } from '../streams/topic-reader.js';
import { TOPICS, type TopicNames } from '../streams/topics.js';

export interface MetricSet {
  /** The spec's promotion metric. */
  name: string;
  closedLoop: number | null;
  /** The bootstrap model alone, never retrained, scoring the same served features. */
  staticBaseline: number | null;
  /** The same trainer refitted every `everyLabels` joined labels on the newest window, replayed offline over the served features and joined labels. */
  periodicBaseline: number | null;
  rows: number;
  /** Every metric of the task for each of the three (binary: accuracy, balancedAccuracy, auc, logLoss; multiclass: accuracy, macroF1; regression: mae, rmse). */
  all: { closedLoop: Record<string, number | null>; staticBaseline: Record<string, number | null>; periodicBaseline: Record<string, number | null> | null };
  /** Refits the periodic baseline made. */
  periodicRefits: number;
  /** Whether lower is better (mae, rmse, log_loss). */
  lowerIsBetter: boolean;
}

export interface PromotionTiming {
  version: number;
  /** Event time at which the loop decided to retrain (the label that completed the deciding window became known). */
  requestedAt: number;
  /** Event time of the first prediction the new champion served. */
  firstServedAt: number | null;
  /** Events scored between the decision and the new champion's first prediction. */
  eventsToServe: number | null;
  /**
   * Wall-clock milliseconds of each step from the deciding label to the first prediction (Kafka record
   * timestamps): label sent → joined → monitor report → retrain request → candidate → promoted → first served.
   * null when a step is missing (a promoted version that never served: superseded first).
   */
  stagesMs: CycleStages | null;
}

export const CYCLE_STAGES = ['join', 'monitor', 'trigger', 'build', 'evaluate', 'serve'] as const;
export type CycleStages = Record<(typeof CYCLE_STAGES)[number] | 'total', number>;

export interface DemoReport {
  pipeline: string;
  /** live: the replay runs at its rate; backtest: event time paced by the loop's progress. */
  pacing: 'live' | 'backtest';
  /** Events per backtest step (the loop settles between steps); null when live. */
  backtestStep: number | null;
  eventsPerSecondTarget: number;
  events: number;
  predictionsLogged: number;
  duplicates: number;
  lost: number;
  deadLettered: number;
  labelsSent: number;
  labelsJoined: number;
  labelsLate: number;
  retrains: number;
  promotions: number;
  rollbacks: number;
  champion: number | null;
  metric: MetricSet;
  promotionTimings: PromotionTiming[];
  /** Median and largest wall-clock milliseconds per step of the retrain cycle, over the promotions that served. */
  cycleMs: Record<keyof CycleStages, { p50: number | null; max: number | null }>;
  latencyMs: { p50: number | null; p99: number | null; max: number | null };
  eventsPerSecond: number | null;
  wallSeconds: number;
  timeline: Array<{ fromEvent: number; closedLoop: number; staticBaseline: number; periodicBaseline: number | null; version: number }>;
  promotionsAt: Array<{ event: number; version: number }>;
  /**
   * The drift monitor's accuracy estimated before labels (monitoring.estimate) against the realised
   * accuracy of the same windows, over the served windows compared (`…/e<i>/realised` reports):
   * mean |estimated − realised|, mean of estimated − realised, and the share inside the band. Null without estimates.
   */
  estimate: { meanAbsError: number; bias: number; coverage: number | null; windows: number } | null;
  /** `demo --evolve` only: the spec version applied halfway and how the model on it rolled out. */
  evolution?: Evolution;
}

/**
 * A spec version applied during the run (`demo --evolve`): the model's inputs before and after, the event
 * (index in replay order) at which the version was applied, the first version trained on it that served
 * and the first event it served; and every logged prediction (Cassandra prediction_log, shadows included)
 * checked against the inputs its model version takes in the registry.
 */
export interface Evolution {
  fromFeatures: string[];
  toFeatures: string[];
  specVersion: number;
  appliedAtEvent: number;
  /** The first champion (or A/B arm) trained on the new version that served; null when none did. */
  promotedVersion: number | null;
  promotedAtEvent: number | null;
  /** Rows of prediction_log read, and those whose model_features differ from their model's inputs (should be 0). */
  loggedPredictions: number;
  modelFeaturesMismatched: number;
  /**
   * The stages models on the new version went through (promotion.rollout: shadow, A/B arm, champion), each with the
   * first event (replay order) whose logged predictions show it there, in that order.
   */
  stages: EvolutionStage[];
}

export interface EvolutionStage {
  stage: 'shadow' | 'ab' | 'champion';
  version: number;
  atEvent: number;
}

/** Pure: the stages of `versions` from the first event index of each `<version>/<variant>` logged, ordered by event. */
export function evolutionStages(firstAt: ReadonlyMap<string, number>, versions: ReadonlySet<number>): EvolutionStage[] {
  const out: EvolutionStage[] = [];
  for (const [key, atEvent] of firstAt) {
    const [v, stage] = key.split('/') as [string, string];
    if (versions.has(Number(v)) && (stage === 'shadow' || stage === 'ab' || stage === 'champion')) out.push({ stage, version: Number(v), atEvent });
  }
  const order = { shadow: 0, ab: 1, champion: 2 } as const;
  return out.sort((a, b) => a.atEvent - b.atEvent || a.version - b.version || order[a.stage] - order[b.stage]);
}

/** Every committed record of the topics, each read to the end offsets it had when the read began. */
export async function readTopics(kafka: Kafka, topics: string | string[]): Promise<ReadMessage[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const all: ReadMessage[] = [];
    for (const t of Array.isArray(topics) ? topics : [topics]) all.push(...(await readToEnd(kafka, admin, t, 120_000)));
    return all;
  } finally {
    await admin.disconnect();
  }
}

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export interface ReportInput {
  spec: PipelineSpec;
  kafka: Kafka;
  codec: Codec;
  names: TopicNames;
  cql: cassandra.Client;
  registry: ModelRegistry;
  replayedIds: string[];
  labelsSent: number;
  bootstrap: BootstrapResult;
  pacing: 'live' | 'backtest';
  backtestStep?: number | null;
  eventsPerSecondTarget: number;
  wallSeconds: number;
  progress: (m: string) => void;
  /** `demo --evolve`: the spec version applied halfway. */
  evolution?: Pick<Evolution, 'fromFeatures' | 'toFeatures' | 'specVersion' | 'appliedAtEvent'>;
}

const METRIC_KEYS: Record<string, string> = { accuracy: 'accuracy', log_loss: 'logLoss', auc: 'auc', mae: 'mae', rmse: 'rmse', macro_f1: 'macroF1', balanced_accuracy: 'balancedAccuracy' };
const LOWER_IS_BETTER = new Set(['log_loss', 'mae', 'rmse']);

/** A served prediction as the model output it was. */
function outputOf(spec: PipelineSpec, p: Prediction): ModelOutput {
  if (spec.task === 'regression') return { label: null, score: p.value ?? p.score, probabilities: null, value: p.value };
  return { label: p.label, score: p.score, probabilities: spec.label.classes.map((c) => p.probabilities[c] ?? 0), value: null };
}

function pickMetrics(m: QualityMetrics, task: PipelineSpec['task']): Record<string, number | null> {
  const keys = task === 'regression' ? ['mae', 'rmse'] : task === 'binary' ? ['accuracy', 'balancedAccuracy', 'auc', 'logLoss'] : ['accuracy', 'macroF1', 'balancedAccuracy', 'logLoss'];
  return Object.fromEntries(keys.map((k) => [k, (m as unknown as Record<string, number | null | undefined>)[k] ?? null]));
}

export async function buildReport(r: ReportInput): Promise<DemoReport> {
  const { spec, kafka, codec, names, cql, registry, progress } = r;
  const replayed = new Set(r.replayedIds);

  progress('reading predictions back from the topic');
  const onTopic = await readTopics(kafka, names.physical('predictions'));
  const preds: Array<{ p: Prediction; t: number }> = [];
  for (const m of onTopic) {
    const d = await codec.decode('Prediction', m.value);
    if (d.ok) preds.push({ p: d.value, t: m.timestamp });
  }
  const perEvent = new Map<string, number>();
  for (const { p } of preds) if (replayed.has(p.event_id)) perEvent.set(p.event_id, (perEvent.get(p.event_id) ?? 0) + 1);

  progress(`checking the prediction log for ${replayed.size} events`);
  const ids = [...replayed];
  const loggedPerEvent = new Map<string, number>();
  // Each logged row with the inputs it records its model took, checked against the model's feature spec in the registry.
  const inputsOf = new Map((await registry.list(spec.name, spec.model.name)).map((m) => [m.version, modelInputs(m)]));
  let loggedRows = 0;
  let mismatched = 0;
  /** First event index (replay order) of each `<version>/<variant>` in the log, for the evolution's stages. */
  const firstAt = new Map<string, number>();
  for (let i = 0; i < ids.length; i += 256) {
    const slice = ids.slice(i, i + 256);
    const counts = await Promise.all(
      slice.map(async (id, j) => {
        const rs = await cql.execute('SELECT variant, model_version, model_features FROM prediction_log WHERE event_id = ?', [id], { prepare: true });
        for (const row of rs.rows) {
          loggedRows++;
          const key = `${row.get('model_version') as number}/${row.get('variant') as string}`;
          if ((firstAt.get(key) ?? Infinity) > i + j) firstAt.set(key, i + j);
          if (((row.get('model_features') as string[] | null) ?? []).join(',') !== inputsOf.get(row.get('model_version') as number)) mismatched++;
        }
        return rs.rows.filter((row) => row.get('variant') !== 'shadow').length;
      }),
    );
    slice.forEach((id, j) => loggedPerEvent.set(id, counts[j]!));
  }

  progress('counting dead letters');
  const deadLettered = (await readTopics(kafka, TOPICS.filter((x) => x.name.endsWith('.dlq')).map((t) => names.physical(t.name)))).length;

  progress('reading joined labels');
  const labels = new Map<string, { label: string | number; labelTime: number; joinedTs: number }>();
  for (const m of await readTopics(kafka, names.physical('predictions.labeled'))) {
    const d = await codec.decode('LabeledPrediction', m.value);
    if (d.ok && d.value.prediction.variant !== 'shadow' && replayed.has(d.value.prediction.event_id)) labels.set(d.value.prediction.event_id, { label: d.value.label, labelTime: d.value.label_time, joinedTs: m.timestamp });
  }
  const late = (await readTopics(kafka, names.physical('labels.late'))).length;

  // Served predictions in event order (one per event), with their joined label when there is one.
  const firstById = new Map<string, Prediction>();
  for (const { p } of preds) if (replayed.has(p.event_id) && !firstById.has(p.event_id)) firstById.set(p.event_id, p);
  const served = [...firstById.values()].sort((a, b) => a.event_time - b.event_time);
  const joined = served.filter((p) => labels.has(p.event_id));
  const truth = joined.map((p) => labels.get(p.event_id)!.label);
  const classes = spec.label.classes;
  const mspec = { task: spec.task, classes };

  progress('scoring the served features with the bootstrap model for the static baseline');
  const v1 = await registry.get(spec.name, spec.model.name, r.bootstrap.model.version);
  const model = await loadOnnxModel(v1.onnx, v1.spec);
  const staticOut = await model.predict(joined.map((p) => p.features));
  await model.close();
  const loopOut = joined.map((p) => outputOf(spec, p));

  let periodic: { outputs: ModelOutput[]; refits: number } | null = null;
  if (r.bootstrap.trained) {
    progress(`replaying the periodic yardstick: the ${spec.trainer.algorithm} trainer refitted every ${spec.retrain.everyLabels ?? 1000} joined labels on the newest ${spec.trainer.windowRows}`);
    const rows = served.map((p) => {
      const l = labels.get(p.event_id);
      return { eventTime: p.event_time, values: p.features, label: l?.label ?? null, labelTime: l?.labelTime ?? Number.POSITIVE_INFINITY };
    });
    const result = periodicBaselineForPipeline(spec, { rows, history: r.bootstrap.history, bootstrap: r.bootstrap.trained.predict });
    const byRow = result.predictions.map((x) => x.output);
    periodic = { outputs: served.map((_, i) => byRow[i]!).filter((_, i) => labels.has(served[i]!.event_id)), refits: result.refits.length };
  }

  const closedAll = pickMetrics(qualityMetrics(mspec, truth, loopOut), spec.task);
  const staticAll = pickMetrics(qualityMetrics(mspec, truth, staticOut), spec.task);
  const periodicAll = periodic ? pickMetrics(qualityMetrics(mspec, truth, periodic.outputs), spec.task) : null;
  const key = METRIC_KEYS[spec.promotion.metric] ?? spec.promotion.metric;

  // Accuracy (or the promotion metric) over the replay, in buckets, for the chart.
  const bucket = Math.max(500, Math.round(joined.length / 40));
  const timeline: DemoReport['timeline'] = [];
  for (let i = 0; i < joined.length; i += bucket) {
    const slice = (xs: ModelOutput[]) => xs.slice(i, i + bucket);
    const value = (outs: ModelOutput[]) => (qualityMetrics(mspec, truth.slice(i, i + bucket), outs) as unknown as Record<string, number | null>)[key] ?? Number.NaN;
    timeline.push({
      fromEvent: i,
      closedLoop: value(slice(loopOut)),
      staticBaseline: value(slice(staticOut)),
      periodicBaseline: periodic ? value(slice(periodic.outputs)) : null,
      version: joined[Math.min(joined.length - 1, i + bucket - 1)]!.model_version,
    });
  }
  const promotionsAt: DemoReport['promotionsAt'] = [];
  joined.forEach((p, i) => {
    const prev = joined[i - 1]?.model_version;
    if (prev !== undefined && prev !== p.model_version) promotionsAt.push({ event: i, version: p.model_version });
  });

  // How fast the loop reacted: events between each retrain decision and its champion's first prediction.
  const events = await registry.history(spec.name, spec.model.name, 1000);
  const requests = new Map((await cql.execute('SELECT request_id, requested_at FROM retrain_requests WHERE pipeline = ?', [spec.name], { prepare: true, fetchSize: 10_000 })).rows.map((row) => [row.get('request_id') as string, (row.get('requested_at') as Date).getTime()]));
  const models = await registry.list(spec.name, spec.model.name);
  const servedTimes = served.map((p) => p.event_time);
  const stages = await cycleStages(kafka, codec, names, served, preds, labels);
  const promotionTimings: PromotionTiming[] = [];
  for (const e of events.filter((x) => x.action === 'PROMOTE' && x.actor === 'evaluator').reverse()) {
    const m = models.find((x) => x.version === e.version);
    const at = m?.requestId ? requests.get(m.requestId) : undefined;
    if (at === undefined) continue;
    const decidedAt = at + spec.label.delayMs;
    const first = served.find((p) => p.model_version === e.version)?.event_time ?? null;
    promotionTimings.push({
      version: e.version, requestedAt: decidedAt, firstServedAt: first,
      eventsToServe: first === null ? null : servedTimes.filter((t) => t > decidedAt && t < first).length,
      stagesMs: stages.get(e.version) ?? null,
    });
  }
  const cycleMs = Object.fromEntries(([...CYCLE_STAGES, 'total'] as const).map((k) => {
    const v = promotionTimings.flatMap((t) => (t.stagesMs ? [t.stagesMs[k]] : [])).sort((a, b) => a - b);
    return [k, { p50: quantile(v, 0.5), max: v.at(-1) ?? null }];
  })) as DemoReport['cycleMs'];

  const retrains = requests.size;
  const latencies = preds.filter(({ p }) => replayed.has(p.event_id)).map(({ p, t }) => t - p.produced_at).sort((a, b) => a - b);
  const firstProduced = Math.min(...preds.map(({ p }) => p.produced_at));
  const lastOut = Math.max(...preds.map(({ t }) => t));

  let lost = 0;
  let duplicates = 0;
  let logged = 0;
  for (const id of replayed) {
    const nTopic = perEvent.get(id) ?? 0;
    const nLog = loggedPerEvent.get(id) ?? 0;
    logged += Math.min(nLog, 1);
    if (nTopic === 0 || nLog === 0) lost++;
    duplicates += Math.max(0, nTopic - 1) + Math.max(0, nLog - 1);
  }
  // An event can be lost only if it was not dead-lettered: the replayed ids are all valid, so none should be.
  const serving = await registry.serving(spec.name, spec.model.name);
  progress('reading the quality estimates');
  const compared: QualityReport[] = [];
  for (const m of await readTopics(kafka, names.physical('monitor.reports'))) {
    const d = await codec.decodeAny(['QualityReport', 'DriftReport'] as const, m.value);
    if (d.ok && d.record === 'QualityReport') {
      const q = d.value as QualityReport;
      if (q.variant !== 'shadow' && /\/e\d+\/realised$/.test(q.report_id) && Number.isFinite(q.metrics.estimate_error)) compared.push(q);
    }
  }
  const banded = compared.filter((q) => q.metrics.estimate_within_band !== undefined);
  const estimate = compared.length
    ? {
        meanAbsError: compared.reduce((a, q) => a + Math.abs(q.metrics.estimate_error!), 0) / compared.length,
        bias: compared.reduce((a, q) => a + q.metrics.estimate_error!, 0) / compared.length,
        coverage: banded.length ? banded.filter((q) => q.metrics.estimate_within_band === 1).length / banded.length : null,
        windows: compared.length,
      }
    : null;
  let evolution: Evolution | undefined;
  if (r.evolution) {
    // The first served prediction (in replay order) of a model trained on the new spec version.
    const onNew = new Set(models.filter((m) => m.specVersion === r.evolution!.specVersion).map((m) => m.version));
    const firstServed = new Map<string, Prediction>();
    for (const { p } of preds) if (!firstServed.has(p.event_id)) firstServed.set(p.event_id, p);
    const at = ids.findIndex((id) => onNew.has(firstServed.get(id)?.model_version ?? -1));
    evolution = {
      ...r.evolution,
      promotedVersion: at < 0 ? null : firstServed.get(ids[at]!)!.model_version,
      promotedAtEvent: at < 0 ? null : at,
      loggedPredictions: loggedRows,
      modelFeaturesMismatched: mismatched,
      stages: evolutionStages(firstAt, onNew),
    };
  }
  return {
    pipeline: spec.name,
    pacing: r.pacing,
    backtestStep: r.pacing === 'backtest' ? (r.backtestStep ?? null) : null,
    eventsPerSecondTarget: r.eventsPerSecondTarget,
    events: replayed.size,
    predictionsLogged: logged,
    duplicates,
    lost,
    deadLettered,
    labelsSent: r.labelsSent,
    labelsJoined: labels.size,
    labelsLate: late,
    retrains,
    promotions: events.filter((e) => e.action === 'PROMOTE' && e.actor !== 'bootstrap').length,
    rollbacks: events.filter((e) => e.action === 'ROLLBACK').length,
    champion: serving.champion,
    metric: {
      name: spec.promotion.metric,
      closedLoop: closedAll[key] ?? null,
      staticBaseline: staticAll[key] ?? null,
      periodicBaseline: periodicAll?.[key] ?? null,
      rows: joined.length,
      all: { closedLoop: closedAll, staticBaseline: staticAll, periodicBaseline: periodicAll },
      periodicRefits: periodic?.refits ?? 0,
      lowerIsBetter: LOWER_IS_BETTER.has(spec.promotion.metric),
    },
    promotionTimings,
    cycleMs,
    latencyMs: { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), max: latencies.at(-1) ?? null },
    eventsPerSecond: preds.length ? replayed.size / ((lastOut - firstProduced) / 1000) : null,
    wallSeconds: r.wallSeconds,
    timeline,
    promotionsAt,
    estimate,
    ...(evolution ? { evolution } : {}),
  };
}

/**
 * The wall-clock steps of every evaluator promotion that served, by version, from the Kafka timestamps of
 * the records that carried it: the label completing the deciding monitor window (labels.ground-truth), its
 * join (predictions.labeled), the window's report (monitor.reports), the retrain request (control.retrain),
 * the candidate (control.candidates), the promotion (control.models) and the new version's first prediction.
 */
async function cycleStages(
  kafka: Kafka, codec: Codec, names: TopicNames,
  served: readonly Prediction[], preds: ReadonlyArray<{ p: Prediction; t: number }>, labels: ReadonlyMap<string, { joinedTs: number }>,
): Promise<Map<number, CycleStages>> {
  const decoded = async <R extends RecordName>(topic: string, record: R) => {
    const out: Array<{ v: RecordTypes[R]; t: number }> = [];
    for (const m of await readTopics(kafka, names.physical(topic))) {
      const d = await codec.decode(record, m.value);
      if (d.ok) out.push({ v: d.value, t: m.timestamp });
    }
    return out;
  };
  const labelSent = new Map((await decoded('labels.ground-truth', 'GroundTruth')).map(({ v, t }) => [v.event_id, t]));
  const reports = new Map<number, number>();
  for (const m of await readTopics(kafka, names.physical('monitor.reports'))) {
    const d = await codec.decodeAny(['QualityReport', 'DriftReport'] as const, m.value);
    if (d.ok && d.record === 'QualityReport' && (d.value as QualityReport).variant === 'champion' && !/\/e\d+(\/realised)?$/.test((d.value as QualityReport).report_id)) {
      const r = d.value as QualityReport;
      if (!reports.has(r.created_at)) reports.set(r.created_at, m.timestamp);
    }
  }
  const requests = new Map((await decoded('control.retrain', 'RetrainRequest')).map(({ v, t }) => [v.request_id, { t, createdAt: v.requested_at }]));
  const candidates = new Map((await decoded('control.candidates', 'ModelCandidate')).map(({ v, t }) => [v.model_version, { t, request: v.request_id }]));
  const byEventTime = new Map(served.map((p) => [p.event_time, p.event_id]));
  const firstServed = new Map<number, number>();
  for (const { p, t } of preds) if (p.variant !== 'shadow' && (firstServed.get(p.model_version) ?? Infinity) > t) firstServed.set(p.model_version, t);
  const out = new Map<number, CycleStages>();
  for (const { v: e, t: promoted } of await decoded('control.models', 'ModelEvent')) {
    if (e.action !== 'PROMOTE' || e.actor !== 'evaluator') continue;
    const c = candidates.get(e.model_version);
    const r = c?.request ? requests.get(c.request) : undefined;
    const reported = r ? reports.get(r.createdAt) : undefined;
    const eventId = r ? byEventTime.get(r.createdAt) : undefined;
    const joined = eventId ? labels.get(eventId)?.joinedTs : undefined;
    const sent = eventId ? labelSent.get(eventId) : undefined;
    const first = firstServed.get(e.model_version);
    if (!c || !r || reported === undefined || joined === undefined || sent === undefined || first === undefined) continue;
    out.set(e.model_version, {
      join: joined - sent, monitor: reported - joined, trigger: r.t - reported, build: c.t - r.t, evaluate: promoted - c.t, serve: first - promoted, total: first - sent,
    });
  }
  return out;
}

/** A small text chart of accuracy over the replay: closed loop (█) against the static baseline (·). */
export function textChart(report: DemoReport): string {
  const rows = report.timeline;
  if (rows.length === 0) return '(no labeled predictions to chart)';
  const lo = Math.min(...rows.flatMap((r) => [r.closedLoop, r.staticBaseline]));
  const hi = Math.max(...rows.flatMap((r) => [r.closedLoop, r.staticBaseline]));
  const width = 40;
  const pos = (v: number) => Math.round(((v - lo) / Math.max(1e-9, hi - lo)) * width);
  const lines = [`accuracy per ${rows[1] ? rows[1].fromEvent - rows[0]!.fromEvent : rows.length} labeled events   ${lo.toFixed(2)}${' '.repeat(width - 4)}${hi.toFixed(2)}`];
  for (const r of rows) {
    const line = Array.from({ length: width + 1 }, () => ' ');
    line[pos(r.staticBaseline)] = '·';
    for (let i = 0; i <= pos(r.closedLoop); i++) if (line[i] === ' ') line[i] = i === pos(r.closedLoop) ? '█' : '─';
    lines.push(`${String(r.fromEvent).padStart(7)}  v${String(r.version).padEnd(3)} ${line.join('')}  ${r.closedLoop.toFixed(3)} vs ${r.staticBaseline.toFixed(3)}`);
  }
  return lines.join('\n');
}

/** The same chart as an HTML page with an inline SVG, for people who would rather look than read. */
export function writeHtmlReport(report: DemoReport, file: string): void {
  const w = 900;
  const h = 320;
  const pad = 40;
  const rows = report.timeline;
  const ys = rows.flatMap((r) => [r.closedLoop, r.staticBaseline]);
  const lo = Math.min(...ys, 0.5);
  const hi = Math.max(...ys, 0.9);
  const x = (i: number) => pad + (i / Math.max(1, rows.length - 1)) * (w - 2 * pad);
  const y = (v: number) => h - pad - ((v - lo) / (hi - lo)) * (h - 2 * pad);
  const line = (key: 'closedLoop' | 'staticBaseline') => rows.map((r, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(r[key]).toFixed(1)}`).join(' ');
  const last = rows.at(-1)?.fromEvent ?? 1;
  const markers = report.promotionsAt
    .map((p) => {
      const px = pad + (p.event / Math.max(1, last)) * (w - 2 * pad);
      return `<line x1="${px}" x2="${px}" y1="${pad}" y2="${h - pad}" stroke="#999" stroke-dasharray="4"/><text x="${px + 3}" y="${pad + 12}" font-size="11">v${p.version}</text>`;
    })
    .join('');
  const html = `<!doctype html><meta charset="utf-8"><title>Loopline demo: ${report.pipeline}</title>
<body style="font-family:system-ui,sans-serif;max-width:960px;margin:2em auto">
<h1>Loopline demo: ${report.pipeline}</h1>
<p>${report.events} events replayed; ${report.predictionsLogged} predictions logged, ${report.lost} lost, ${report.duplicates} duplicates, ${report.deadLettered} dead letters;
${report.labelsJoined} labels joined; ${report.retrains} retrains, ${report.promotions} promotions, ${report.rollbacks} rollbacks.</p>
<p>Prequential accuracy: closed loop <b>${report.metric.closedLoop?.toFixed(4)}</b>, bootstrap model alone ${report.metric.staticBaseline?.toFixed(4)}.
Latency event → logged prediction p50 ${report.latencyMs.p50} ms, p99 ${report.latencyMs.p99} ms.</p>
<svg width="${w}" height="${h}" style="border:1px solid #ddd">
<path d="${line('staticBaseline')}" fill="none" stroke="#bbb" stroke-width="2"/>
<path d="${line('closedLoop')}" fill="none" stroke="#1565c0" stroke-width="2.5"/>
${markers}
<text x="${pad}" y="${h - 10}" font-size="12">labeled events →</text>
<text x="4" y="${y(hi)}" font-size="11">${hi.toFixed(2)}</text><text x="4" y="${y(lo)}" font-size="11">${lo.toFixed(2)}</text>
<text x="${w - 260}" y="${pad - 10}" font-size="12"><tspan fill="#1565c0">━ closed loop</tspan>  <tspan fill="#999">━ bootstrap model alone</tspan></text>
</svg>
<pre>${JSON.stringify({ ...report, timeline: undefined }, null, 2)}</pre></body>`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, html);
}
