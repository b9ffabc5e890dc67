/**
 * `loopline status` as data: one snapshot of a pipeline for operators —
 * stack health, lag and throughput per worker group and partition, what
 * serves (champion, shadow, A/B arm), the latest quality and drift reports,
 * recent alarms, dead letters by reason and recent registry decisions. Every
 * part is read independently: a part that cannot be read says why in
 * `errors` instead of failing the whole snapshot.
 */
import type { PipelineSpec } from '../pipelines/spec.js';
import { createModelRegistry } from '../store/model-registry.js';
import { createMonitorReportStore } from '../store/monitor-reports.js';
import type { DriftReport, QualityReport } from '../schemas/types.js';
import type { OperatorClients } from './clients.js';
import { readDeadLetters, summarize, type ReasonCount } from './dead-letters.js';
import { checkStack, type ServerHealth } from './health.js';
import { histogramQuantile, sumOf, type MetricsSource } from './metrics-source.js';
import { byGroup, lagRows, sampleOffsets, workerGroups, type GroupSummary, type OffsetSample } from './offsets.js';

export interface StatusSnapshot {
  at: string;
  pipeline: string;
  model: string;
  topicPrefix: string;
  keyspace: string;
  stack: ServerHealth[];
  serving: { champion: number | null; previous: number | null; shadow: number | null; ab: { version: number; share: number } | null } | null;
  groups: GroupSummary[];
  quality: Array<{ variant: string; version: number; windowEnd: string; count: number; metrics: Record<string, number>; alarm: string | null }>;
  drift: { version: number; windowEnd: string; drifted: boolean; predictionPsi: number | null; drifted_features: string[]; topPsi: Array<{ feature: string; psi: number | null; drifted: boolean }> } | null;
  alarms: Array<{ version: number; variant: string; windowEnd: string; alarm: string }>;
  deadLetters: { total: number; complete: boolean; byReason: ReasonCount[] };
  decisions: Array<{ at: string; action: string; version: number; previous: number | null; actor: string; reason: string }>;
  metrics: { source: string; recordsPerSecond: Record<string, number> | null; labelCoverage: number | null; labelDelayP50Seconds: number | null } | null;
  /** Parts that could not be read, and why. */
  errors: Record<string, string>;
}

export interface StatusOptions {
  /** Offsets read this long ago, for throughput; without it two samples are taken `sampleMs` apart. */
  previous?: OffsetSample;
  sampleMs?: number;
  metrics?: MetricsSource;
  deadLetterTimeoutMs?: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

export async function collectStatus(c: OperatorClients, spec: PipelineSpec, options: StatusOptions = {}): Promise<{ snapshot: StatusSnapshot; offsets: OffsetSample | null }> {
  const errors: Record<string, string> = {};
  const attempt = async <T>(part: string, fn: () => Promise<T>): Promise<T | null> => {
    try {
      return await fn();
    } catch (err) {
      errors[part] = (err as Error).message.split('\n')[0]!;
      return null;
    }
  };
  const stack = await checkStack(c);
  const up = (s: ServerHealth['server']) => stack.find((x) => x.server === s)?.ok ?? false;
  if (!up('kafka')) errors.kafka = 'Kafka unreachable: lag and dead letters not read';
  if (!up('cassandra')) errors.cassandra = 'Cassandra unreachable: serving, reports and decisions not read';

  const groups = workerGroups(spec, c.names);
  let offsets: OffsetSample | null = null;
  let groupRows: GroupSummary[] = [];
  if (up('kafka')) {
    await attempt('lag', async () => {
      let before = options.previous;
      if (!before) {
        before = await sampleOffsets(c.admin, c.names, groups);
        await new Promise((r) => setTimeout(r, options.sampleMs ?? 2000));
      }
      offsets = await sampleOffsets(c.admin, c.names, groups);
      groupRows = byGroup(lagRows(offsets, before));
    });
  }

  const registry = createModelRegistry(c.cql);
  const reports = createMonitorReportStore(c.cql);
  const model = spec.model.name;
  const [serving, quality, drift, history] = up('cassandra')
    ? await Promise.all([
        attempt('serving', () => registry.serving(spec.name, model)),
        attempt('quality', () => reports.latest(spec.name, 'quality', 200)),
        attempt('drift', () => reports.latest(spec.name, 'drift', 1)),
        attempt('decisions', () => registry.history(spec.name, model, 10)),
      ])
    : [null, null, null, null];

  const qualityReports = (quality ?? []).map((r) => ({ variant: r.variant, report: r.report as QualityReport }));
  const latestPerArm = new Map<string, (typeof qualityReports)[number]>();
  for (const q of qualityReports) {
    const k = `${q.variant}|${q.report.model_version}`;
    if (!latestPerArm.has(k)) latestPerArm.set(k, q);
  }
  const d = drift?.[0]?.report as DriftReport | undefined;

  const dead = up('kafka') ? await attempt('deadLetters', () => readDeadLetters(c.kafka, c.admin, c.names, { timeoutMs: options.deadLetterTimeoutMs ?? 10_000 })) : null;

  let metrics: StatusSnapshot['metrics'] = null;
  if (options.metrics) {
    const source = options.metrics;
    metrics = await attempt('metrics', async () => {
      const a = await source.read();
      const t0 = Date.now();
      await new Promise((r) => setTimeout(r, options.sampleMs ?? 2000));
      const b = await source.read();
      const seconds = (Date.now() - t0) / 1000;
      const perWorker: Record<string, number> = {};
      for (const g of groups) perWorker[g.worker] = Math.max(0, (sumOf(b, 'loopline_worker_records_total', { worker: g.worker }) - sumOf(a, 'loopline_worker_records_total', { worker: g.worker })) / seconds);
      const coverage = b.find((s) => s.name === 'loopline_joiner_label_coverage');
      return { source: source.describe, recordsPerSecond: perWorker, labelCoverage: coverage?.value ?? null, labelDelayP50Seconds: histogramQuantile(b, 'loopline_joiner_label_delay_seconds', 0.5) };
    });
  }

  const snapshot: StatusSnapshot = {
    at: iso(Date.now()),
    pipeline: spec.name,
    model,
    topicPrefix: c.names.prefix,
    keyspace: c.config.cassandra.keyspace,
    stack,
    serving: serving ? { champion: serving.champion, previous: serving.previous, shadow: serving.shadow, ab: serving.ab === null ? null : { version: serving.ab, share: serving.abShare } } : null,
    groups: groupRows,
    quality: [...latestPerArm.values()].map((q) => ({ variant: q.variant, version: q.report.model_version, windowEnd: iso(q.report.window_end), count: q.report.count, metrics: q.report.metrics, alarm: q.report.alarm })),
    drift: d
      ? {
          version: d.model_version,
          windowEnd: iso(d.window_end),
          drifted: d.drifted,
          predictionPsi: d.prediction_psi,
          drifted_features: d.features.filter((f) => f.drifted).map((f) => f.feature),
          topPsi: [...d.features].sort((x, y) => (y.psi ?? 0) - (x.psi ?? 0)).slice(0, 5).map((f) => ({ feature: f.feature, psi: f.psi, drifted: f.drifted })),
        }
      : null,
    alarms: qualityReports.filter((q) => q.report.alarm).slice(0, 10).map((q) => ({ version: q.report.model_version, variant: q.variant, windowEnd: iso(q.report.window_end), alarm: q.report.alarm! })),
    deadLetters: dead ? { total: dead.letters.length, complete: dead.complete, byReason: summarize(dead.letters) } : { total: 0, complete: false, byReason: [] },
    decisions: (history ?? []).map((h) => ({ at: iso(h.at), action: h.action, version: h.version, previous: h.previous, actor: h.actor, reason: h.reason })),
    metrics,
    errors,
  };
  return { snapshot, offsets };
}
