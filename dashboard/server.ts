/**
 * The live dashboard: an HTTP server that reads the configured cluster
 * (Cassandra tables, Kafka offsets and dead-letter topics, and the Prometheus
 * metrics of running workers when given a source) and serves a page that
 * polls its JSON endpoints every 2 s and draws them with Chart.js (served
 * from node_modules, no CDN).
 *
 *   const d = await startDashboard({ config, spec, logger, port: 18700, metrics: metricsFromUrl('http://127.0.0.1:9464/metrics') });
 *   d.setBaseline('static (bootstrap model alone)', [{ x: eventTimeMs, y: 0.74 }, …]);
 *   …
 *   await d.close();
 *
 * | endpoint | what |
 * |---|---|
 * | `GET /` | the page |
 * | `GET /api/overview` | pipeline, model, prefix, keyspace, serving state, sampling period |
 * | `GET /api/quality` | quality per model version and variant over event time, baselines, promotion / rollback / alarm markers |
 * | `GET /api/drift` | PSI per feature and window (the heat map) |
 * | `GET /api/labels` | label coverage and delay over time (needs a metrics source) |
 * | `GET /api/flow` | records/s and lag per worker group over time, latest lag per partition |
 * | `GET /api/dead-letters` | dead letters by topic and reason, newest records |
 * | `GET /api/registry` | versions with lineage, status and verdict; serving state; history |
 * | `GET /api/status` | the `loopline status --json` object |
 * | `POST /api/baselines` | `{"name": "…", "points": [{"x": eventTimeMs, "y": value}]}` adds or replaces a baseline series |
 *
 * Bound to 127.0.0.1 by default: the endpoints have no authentication.
 */
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LooplineConfig } from '../config/config.js';
import type { PipelineSpec } from '../pipelines/spec.js';
import type { DriftReport, QualityReport } from '../schemas/types.js';
import { createModelRegistry } from '../store/model-registry.js';
import { createMonitorReportStore } from '../store/monitor-reports.js';
import type { Logger } from '../streams/logger.js';
import { openClients } from '../ops/clients.js';
import { watchDeadLetters } from '../ops/dead-letter-watch.js';
import { histogramQuantile, sumOf, type MetricsSource } from '../ops/metrics-source.js';
import { lagRows, sampleOffsets, workerGroups, type OffsetSample } from '../ops/offsets.js';
import { collectStatus } from '../ops/status.js';
import { driftView, flowView, labelView, qualityView, registryView, type FlowSample, type LabelSample, type Point } from './series.js';

export interface DashboardOptions {
  config: LooplineConfig;
  spec: PipelineSpec;
  logger: Logger;
  /** Default 18700; 0 takes any free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Prometheus metrics of the running workers (label coverage and delay, records by worker). */
  metrics?: MetricsSource;
  /** Offsets and metrics are sampled this often. Default 2000 ms. */
  sampleMs?: number;
}

export interface DashboardServer {
  port: number;
  url: string;
  /** Adds or replaces a baseline series drawn beside the live quality (x: event time in ms). */
  setBaseline(name: string, points: readonly Point[]): void;
  close(): Promise<void>;
}

const pageDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'page');
const require = createRequire(import.meta.url);
const VENDOR: Record<string, string> = {
  '/vendor/chart.umd.min.js': path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.min.js'),
  '/vendor/chartjs-chart-matrix.min.js': path.join(path.dirname(require.resolve('chartjs-chart-matrix')), 'chartjs-chart-matrix.min.js'),
};
const STATIC: Record<string, [string, string]> = {
  '/': [path.join(pageDir, 'index.html'), 'text/html; charset=utf-8'],
  '/app.js': [path.join(pageDir, 'app.js'), 'text/javascript; charset=utf-8'],
  ...Object.fromEntries(Object.entries(VENDOR).map(([k, f]) => [k, [f, 'text/javascript; charset=utf-8'] as [string, string]])),
};
const KEEP_SAMPLES = 600;

export class BadRequestError extends Error {}

/** Validates a POSTed baseline. Pure. */
export function parseBaseline(body: unknown): { name: string; points: Point[] } {
  const b = body as { name?: unknown; points?: unknown };
  if (typeof b?.name !== 'string' || b.name.length === 0 || b.name.length > 200) throw new BadRequestError('name must be a non-empty string of at most 200 characters');
  if (!Array.isArray(b.points) || b.points.length > 100_000) throw new BadRequestError('points must be an array of at most 100000 {x, y}');
  const points = b.points.map((p: unknown, i: number) => {
    const q = p as { x?: unknown; y?: unknown };
    if (typeof q?.x !== 'number' || typeof q?.y !== 'number' || !Number.isFinite(q.x) || !Number.isFinite(q.y)) throw new BadRequestError(`points[${i}] must be {x: number, y: number}`);
    return { x: q.x, y: q.y };
  });
  return { name: b.name, points };
}

export async function startDashboard(o: DashboardOptions): Promise<DashboardServer> {
  const { spec, logger } = o;
  const sampleMs = o.sampleMs ?? 2000;
  const clients = openClients(o.config, logger, 'dashboard');
  const registry = createModelRegistry(clients.cql);
  const reports = createMonitorReportStore(clients.cql);
  const groups = workerGroups(spec, clients.names);
  const baselines = new Map<string, Point[]>();
  const flow: FlowSample[] = [];
  const labels: LabelSample[] = [];
  const errors: Record<string, string> = {};
  let lastOffsets: OffsetSample | undefined;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const deadLetters = watchDeadLetters(clients.kafka, clients.names, logger);

  const note = (part: string, err: unknown) => {
    errors[part] = (err as Error).message.split('\n')[0]!;
  };
  let inFlight: Promise<void> = Promise.resolve();
  async function sample(): Promise<void> {
    inFlight = sampleOnce();
    await inFlight;
    if (!closed) timer = setTimeout(() => void sample(), sampleMs);
  }
  async function sampleOnce(): Promise<void> {
    try {
      await clients.admin.connect();
      const s = await sampleOffsets(clients.admin, clients.names, groups);
      flow.push({ at: s.at, rows: lagRows(s, lastOffsets) });
      if (flow.length > KEEP_SAMPLES) flow.shift();
      lastOffsets = s;
      delete errors.offsets;
    } catch (err) {
      note('offsets', err);
    }
    if (o.metrics) {
      try {
        const m = await o.metrics.read();
        const count = sumOf(m, 'loopline_joiner_label_delay_seconds_count');
        labels.push({
          at: Date.now(),
          coverage: m.find((s) => s.name === 'loopline_joiner_label_coverage')?.value ?? null,
          delayP50Seconds: histogramQuantile(m, 'loopline_joiner_label_delay_seconds', 0.5),
          delayMeanSeconds: count > 0 ? sumOf(m, 'loopline_joiner_label_delay_seconds_sum') / count : null,
          joined: sumOf(m, 'loopline_joiner_joined_predictions_total'),
          late: sumOf(m, 'loopline_joiner_labels_total', { outcome: 'late' }),
        });
        if (labels.length > KEEP_SAMPLES) labels.shift();
        delete errors.metrics;
      } catch (err) {
        note('metrics', err);
      }
    }
  }

  /** Cassandra reads cached for a second, so many open pages cost one query a second. */
  const cache = new Map<string, { at: number; value: Promise<unknown> }>();
  const cached = <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const hit = cache.get(key);
    if (hit && Date.now() - hit.at < 1000) return hit.value as Promise<T>;
    const value = fn();
    cache.set(key, { at: Date.now(), value });
    value.catch(() => cache.delete(key));
    return value;
  };
  const model = spec.model.name;
  const history = () => cached('history', () => registry.history(spec.name, model, 200));
  const serving = () => cached('serving', () => registry.serving(spec.name, model));

  const api: Record<string, () => Promise<unknown>> = {
    '/api/overview': async () => ({
      pipeline: spec.name, model, topicPrefix: clients.names.prefix, keyspace: o.config.cassandra.keyspace, sampleMs,
      metricsSource: o.metrics?.describe ?? null, serving: await serving().catch(() => null), errors,
    }),
    '/api/quality': async () => {
      const [q, h] = await Promise.all([cached('quality', () => reports.latest(spec.name, 'quality', 2000)), history()]);
      return qualityView(spec.promotion.metric, q.map((r) => ({ variant: r.variant, report: r.report as QualityReport })), h, [...baselines].map(([name, points]) => ({ name, points })));
    },
    '/api/drift': async () => {
      const d = await cached('drift', () => reports.latest(spec.name, 'drift', 200));
      return driftView(d.map((r) => ({ variant: r.variant, report: r.report as DriftReport })), spec.monitoring.psiThreshold);
    },
    '/api/labels': async () => labelView(labels, o.metrics?.describe ?? null),
    '/api/flow': async () => flowView(flow),
    '/api/dead-letters': async () => {
      const s = deadLetters.summary();
      return { total: s.total, byReason: s.byReason, recent: s.recent.slice(0, 20).map(({ key: _k, value, ...l }) => ({ ...l, valueBytes: value?.length ?? null })) };
    },
    '/api/registry': async () => {
      const [models, s, h] = await Promise.all([cached('models', () => registry.list(spec.name, model)), serving(), history()]);
      return registryView(models, s, h);
    },
    '/api/status': async () => (await collectStatus(clients, spec, { ...(lastOffsets ? { previous: flow.length > 1 ? { at: flow.at(-2)!.at, rows: flow.at(-2)!.rows } : lastOffsets } : {}), deadLetterTimeoutMs: 5000 })).snapshot,
  };

  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://dashboard');
      if (req.method === 'POST' && url.pathname === '/api/baselines') {
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const c of req) {
          size += (c as Buffer).length;
          if (size > 5_000_000) throw new BadRequestError('body over 5 MB');
          chunks.push(c as Buffer);
        }
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          throw new BadRequestError('body must be JSON');
        }
        const b = parseBaseline(body);
        baselines.set(b.name, b.points);
        res.writeHead(204).end();
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, POST' }).end();
        return;
      }
      const handler = api[url.pathname];
      if (handler) {
        const value = await handler();
        res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
        res.end(JSON.stringify(value));
        return;
      }
      const file = STATIC[url.pathname];
      if (file) {
        res.writeHead(200, { 'Content-Type': file[1], 'Cache-Control': 'no-cache' });
        res.end(fs.readFileSync(file[0]));
        return;
      }
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
    })().catch((err: unknown) => {
      const status = err instanceof BadRequestError ? 400 : 503;
      if (!res.headersSent) res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: (err as Error).message.split('\n')[0] }));
    });
  });
  const host = o.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 18700, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : (o.port ?? 18700);
  void sample();
  return {
    port,
    url: `http://${host}:${port}/`,
    setBaseline(name, points) {
      baselines.set(name, parseBaseline({ name, points }).points);
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      await inFlight;
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await deadLetters.stop();
      await clients.close();
    },
  };
}
