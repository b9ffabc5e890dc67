/**
 * The dashboard's charts as data: pure functions from what the loop wrote
 * (quality and drift reports, the registry and its history, offset and
 * metric samples, dead letters) to the series the page draws. No I/O here;
 * `dashboard/server.ts` reads and `dashboard/page/app.js` draws.
 */
import type { ModelInfo, ServingState } from '../models/registry.js';
import type { DriftReport, QualityReport } from '../schemas/types.js';
import type { ReasonCount } from '../ops/dead-letters.js';
import type { LagRow } from '../ops/offsets.js';

export interface Point {
  x: number;
  y: number;
}

export interface Marker {
  x: number;
  y: number;
  kind: 'promote' | 'rollback' | 'alarm';
  label: string;
}

export interface QualitySeries {
  /** `champion v3`, `shadow v2`, `ab v4`. */
  label: string;
  variant: string;
  version: number;
  points: Point[];
}

export interface QualityView {
  metric: string;
  /** x is event time (ms) of each window's end. */
  series: QualitySeries[];
  baselines: Array<{ name: string; points: Point[] }>;
  markers: Marker[];
}

export interface HistoryEntry {
  at: number;
  action: string;
  version: number;
  previous: number | null;
  reason: string;
  actor: string;
}

/** The metric the dashboard charts: the promotion metric if the reports carry it, else the first they carry. */
export function chartMetric(preferred: string, reports: readonly QualityReport[]): string {
  if (reports.some((r) => r.metrics[preferred] !== undefined)) return preferred;
  return Object.keys(reports[0]?.metrics ?? {})[0] ?? preferred;
}

/**
 * Quality per model version and variant over event time, with promotions and
 * rollbacks marked where the version they brought in first scored a window
 * (the history is in wall-clock time, the reports in event time), and
 * detector alarms at the window that raised them.
 */
export function qualityView(metricName: string, reports: ReadonlyArray<{ variant: string; report: QualityReport }>, history: readonly HistoryEntry[], baselines: ReadonlyArray<{ name: string; points: Point[] }> = []): QualityView {
  const metric = chartMetric(metricName, reports.map((r) => r.report));
  const bySeries = new Map<string, QualitySeries>();
  const sorted = [...reports].sort((a, b) => a.report.window_end - b.report.window_end);
  for (const { variant, report } of sorted) {
    const y = report.metrics[metric];
    if (y === undefined || !Number.isFinite(y)) continue;
    const key = `${variant} v${report.model_version}`;
    const s = bySeries.get(key) ?? { label: key, variant, version: report.model_version, points: [] };
    s.points.push({ x: report.window_end, y });
    bySeries.set(key, s);
  }
  const champion = sorted.filter((r) => r.variant === 'champion' && Number.isFinite(r.report.metrics[metric]));
  const markers: Marker[] = [];
  let after = -Infinity;
  for (const h of [...history].sort((a, b) => a.at - b.at)) {
    if (h.action !== 'PROMOTE' && h.action !== 'ROLLBACK') continue;
    const first = champion.find((r) => r.report.model_version === h.version && r.report.window_end > after);
    if (!first) continue;
    after = first.report.window_end;
    markers.push({
      x: first.report.window_end,
      y: first.report.metrics[metric]!,
      kind: h.action === 'PROMOTE' ? 'promote' : 'rollback',
      label: h.action === 'PROMOTE' ? `v${h.version} promoted${h.previous ? ` over v${h.previous}` : ''}: ${h.reason}` : `rolled back v${h.previous} → v${h.version}: ${h.reason}`,
    });
  }
  for (const { variant, report } of sorted) {
    if (!report.alarm) continue;
    const y = report.metrics[metric];
    markers.push({ x: report.window_end, y: y !== undefined && Number.isFinite(y) ? y : 0, kind: 'alarm', label: `${variant} v${report.model_version}: ${report.alarm}` });
  }
  return { metric, series: [...bySeries.values()], baselines: baselines.map((b) => ({ name: b.name, points: [...b.points].sort((p, q) => p.x - q.x) })), markers };
}

export interface DriftView {
  features: string[];
  /** Window ends (event time), oldest first: the columns. */
  windows: number[];
  /** One cell per feature and window: PSI, or the test statistic where the report has no PSI. */
  cells: Array<{ x: number; y: string; v: number; drifted: boolean; test: string }>;
  threshold: number;
}

/** PSI per feature over the newest windows of the serving champion (the heat map). */
export function driftView(reports: ReadonlyArray<{ variant: string; report: DriftReport }>, threshold: number, maxWindows = 40): DriftView {
  const champion = reports.filter((r) => r.variant === 'champion' || r.variant === '');
  const use = (champion.length > 0 ? champion : reports).map((r) => r.report).sort((a, b) => a.window_end - b.window_end).slice(-maxWindows);
  const features = [...new Set(use.flatMap((r) => r.features.map((f) => f.feature)))];
  const cells: DriftView['cells'] = [];
  use.forEach((r, i) => {
    for (const f of r.features) cells.push({ x: i, y: f.feature, v: f.psi ?? f.statistic, drifted: f.drifted, test: f.psi === null ? f.test : 'psi' });
  });
  return { features, windows: use.map((r) => r.window_end), cells, threshold };
}

export interface RegistryView {
  serving: ServingState | null;
  versions: Array<{
    version: number;
    status: string;
    role: string | null;
    parent: number | null;
    trainer: string;
    trainingRows: number;
    trainingStart: number | null;
    trainingEnd: number | null;
    requestId: string | null;
    createdAt: number;
    metrics: Record<string, number>;
    verdict: string | null;
  }>;
  history: HistoryEntry[];
}

export function registryView(models: readonly ModelInfo[], serving: ServingState | null, history: readonly HistoryEntry[]): RegistryView {
  const role = (v: number) => (serving?.champion === v ? 'champion' : serving?.shadow === v ? 'shadow' : serving?.ab === v ? `A/B ${serving.abShare}` : null);
  return {
    serving,
    versions: [...models]
      .sort((a, b) => b.version - a.version)
      .map((m) => ({
        version: m.version, status: m.status, role: role(m.version), parent: m.parentVersion, trainer: m.trainer, trainingRows: m.trainingRows,
        trainingStart: m.trainingStart, trainingEnd: m.trainingEnd, requestId: m.requestId, createdAt: m.createdAt, metrics: m.metrics, verdict: m.verdict,
      })),
    history: [...history],
  };
}

export interface FlowSample {
  at: number;
  rows: LagRow[];
}

export interface FlowView {
  /** Records/s and lag per worker group over wall-clock time. */
  groups: Array<{ worker: string; group: string; rate: Point[]; lag: Point[] }>;
  /** Latest lag per group and partition (the bars). */
  partitions: Array<{ label: string; worker: string; topic: string; partition: number; lag: number; perSecond: number | null; committed: number | null; end: number }>;
}

export function flowView(samples: readonly FlowSample[]): FlowView {
  const groups = new Map<string, FlowView['groups'][number]>();
  for (const s of samples) {
    const perGroup = new Map<string, { worker: string; lag: number; rate: number | null }>();
    for (const r of s.rows) {
      const g = perGroup.get(r.group) ?? { worker: r.worker, lag: 0, rate: null };
      g.lag += r.lag;
      if (r.perSecond !== null) g.rate = (g.rate ?? 0) + r.perSecond;
      perGroup.set(r.group, g);
    }
    for (const [group, g] of perGroup) {
      const out = groups.get(group) ?? { worker: g.worker, group, rate: [], lag: [] };
      out.lag.push({ x: s.at, y: g.lag });
      if (g.rate !== null) out.rate.push({ x: s.at, y: g.rate });
      groups.set(group, out);
    }
  }
  const last = samples.at(-1)?.rows ?? [];
  return {
    groups: [...groups.values()],
    partitions: last.map((r) => ({ label: `${r.worker} ${r.topic}[${r.partition}]`, worker: r.worker, topic: r.topic, partition: r.partition, lag: r.lag, perSecond: r.perSecond, committed: r.committed, end: r.end })),
  };
}

export interface LabelSample {
  at: number;
  coverage: number | null;
  delayP50Seconds: number | null;
  delayMeanSeconds: number | null;
  joined: number;
  late: number;
}

export interface LabelView {
  coverage: Point[];
  delayP50Hours: Point[];
  delayMeanHours: Point[];
  joined: number;
  late: number;
  source: string | null;
}

export function labelView(samples: readonly LabelSample[], source: string | null): LabelView {
  const pts = (f: (s: LabelSample) => number | null) => samples.flatMap((s) => {
    const y = f(s);
    return y === null || !Number.isFinite(y) ? [] : [{ x: s.at, y }];
  });
  const last = samples.at(-1);
  return {
    coverage: pts((s) => s.coverage),
    delayP50Hours: pts((s) => (s.delayP50Seconds === null ? null : s.delayP50Seconds / 3600)),
    delayMeanHours: pts((s) => (s.delayMeanSeconds === null ? null : s.delayMeanSeconds / 3600)),
    joined: last?.joined ?? 0,
    late: last?.late ?? 0,
    source,
  };
}

export interface DeadLetterView {
  total: number;
  byReason: ReasonCount[];
}
