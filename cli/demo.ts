/**
 * `loopline demo`: the whole loop on the bundled Elec2 data, from nothing.
 * Brings the local stack up (or uses the servers named in LOOPLINE_*),
 * creates a fresh topic prefix and keyspace for this run, trains the
 * bootstrap model, starts every worker, replays the dataset with labels
 * delayed by the spec's label delay, lets the loop retrain and promote, then
 * reports what it measured (text and chart, or `--report json`).
 */
import crypto from 'node:crypto';
import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { startPipeline } from '../consumers/pipeline.js';
import type { Scorer } from '../consumers/scorer/scorer.js';
import { bootstrapInfra } from '../infra/bootstrap.js';
import { createLocalStack } from '../infra/local-stack/local-stack.js';
import { projectRoot } from '../infra/local-stack/paths.js';
import { trainBootstrap } from '../producers/bootstrap.js';
import { createModelRegistry } from '../store/model-registry.js';
import { loadSpec } from '../pipelines/spec.js';
import { createLooplineProducer } from '../producers/client.js';
import { readCsv } from '../producers/csv.js';
import { buildReplayPlan, type ReplayPlan } from '../producers/replay-plan.js';
import { createReplayer } from '../producers/replayer.js';
import { createCodec } from '../schemas/codec.js';
import { createRegistryClient } from '../schemas/registry-client.js';
import { createCassandraClient } from '../store/cassandra.js';
import { startOpsServer } from '../streams/http.js';
import { createKafka } from '../streams/kafka.js';
import { createLogger } from '../streams/logger.js';
import { createTopicNames } from '../streams/topics.js';
import { buildReport, textChart, writeHtmlReport, type DemoReport } from './demo-report.js';
import { createProgress } from './progress.js';
import { DEFAULT_SPEC } from './workers.js';

export interface DemoOptions {
  spec: string;
  rows?: number;
  eventsPerSecond: number;
  report: 'text' | 'json';
  metricsPort: number;
  /** Share of labels delivered past the spec's join horizon, to show late labels are counted, not joined. Default 0.01. */
  lateShare?: number;
}

export interface DemoRun {
  report: DemoReport;
  /** Where this run's data lives (its own topic prefix and keyspace). */
  config: ReturnType<typeof loadConfig>;
  html: string;
}

/** Moves a deterministic share of labels past the join horizon (a label system's stragglers). */
export function delayLabelsPastHorizon(plan: ReplayPlan, horizonMs: number, share: number): number {
  let moved = 0;
  for (const a of plan) {
    if (a.kind !== 'label') continue;
    const h = crypto.createHash('sha1').update(a.record.event_id).digest().readUInt32BE(0) / 0x1_0000_0000;
    if (h >= share) continue;
    a.record = { ...a.record, label_time: a.record.event_time + horizonMs + 3_600_000 };
    a.at = a.record.label_time;
    moved++;
  }
  const order = { feature: 0, event: 1, label: 2 } as const;
  plan.sort((x, y) => x.at - y.at || order[x.kind] - order[y.kind]);
  return moved;
}

async function metricSum(metrics: import('prom-client').Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = metrics.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  return values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((a, v) => a + v.value, 0);
}

export async function runDemo(opts: DemoOptions): Promise<DemoRun> {
  const progress = createProgress();
  const started = Date.now();
  const external = Boolean(process.env.LOOPLINE_KAFKA_BROKERS && process.env.LOOPLINE_CASSANDRA_CONTACT_POINTS && process.env.LOOPLINE_SCHEMA_REGISTRY_URL);
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (!external) {
    progress('starting the local stack (first run downloads Kafka, Cassandra and the schema registry from Maven Central)');
    const a = await createLocalStack({ progress }).up();
    env.LOOPLINE_KAFKA_BROKERS = a.kafkaBrokers.join(',');
    env.LOOPLINE_CASSANDRA_CONTACT_POINTS = a.cassandraContactPoints.join(',');
    env.LOOPLINE_CASSANDRA_LOCAL_DC = a.cassandraLocalDataCenter;
    env.LOOPLINE_SCHEMA_REGISTRY_URL = a.schemaRegistryUrl;
  }
  const run = `${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}${crypto.randomBytes(2).toString('hex')}`;
  env.LOOPLINE_TOPIC_PREFIX = `demo-${run}.`;
  env.LOOPLINE_CASSANDRA_KEYSPACE = `demo_${run}`;
  env.LOOPLINE_LOG_LEVEL ??= 'warn';
  const config = loadConfig(env);
  const logger = createLogger({ level: config.logLevel, name: 'loopline-demo' });
  const { spec, dir } = loadSpec(opts.spec);

  progress(`creating topics (prefix ${config.kafka.topicPrefix}), tables (keyspace ${config.cassandra.keyspace}) and schemas`);
  await bootstrapInfra(config, logger);
  const cql = createCassandraClient(config.cassandra);
  await cql.connect();
  const registry = createModelRegistry(cql);
  progress(`training the bootstrap model on the first ${spec.trainer.bootstrapRows} rows`);
  const boot = await trainBootstrap(spec, dir, registry);
  progress(`bootstrap model ${spec.model.name}@${boot.model.version}: training accuracy ${boot.model.metrics.accuracy?.toFixed(3)}`);

  progress('starting the workers: feature-writer, preprocessor, scorer, joiners, drift-monitor, retrain-trigger, model-builder, evaluator');
  const pipeline = await startPipeline(config, spec, logger, { runtime: { batchMax: 200 } });
  const ops = await startOpsServer(pipeline.metrics, () => pipeline.workers, opts.metricsPort).catch(() => startOpsServer(pipeline.metrics, () => pipeline.workers, 0));
  progress(`metrics at http://127.0.0.1:${ops.port}/metrics`);

  const kafka = createKafka(config.kafka, logger, 'demo');
  const codec = createCodec(createRegistryClient(config.registry));
  const names = createTopicNames(config.kafka.topicPrefix);
  const producer = createLooplineProducer({ kafka, codec, names, logger });
  await producer.connect();
  const csv = readCsv(path.resolve(dir, spec.replay!.csv));
  const remaining = csv.length - spec.trainer.bootstrapRows;
  const plan = buildReplayPlan(spec, csv, { offset: spec.trainer.bootstrapRows, limit: opts.rows ?? remaining });
  const late = delayLabelsPastHorizon(plan, spec.label.horizonMs, opts.lateShare ?? 0.01);
  const labelsSent = plan.filter((a) => a.kind === 'label').length;
  const eventsTotal = plan.filter((a) => a.kind === 'event').length;
  progress(`replaying ${eventsTotal} events at ${opts.eventsPerSecond}/s with labels ${spec.label.delayMs / 3_600_000} h of event time later (${late} of them past the ${spec.label.horizonMs / 86_400_000}-day horizon)`);

  let stopTicker = false;
  const ticker = (async () => {
    while (!stopTicker) {
      await new Promise((r) => setTimeout(r, 5000));
      if (stopTicker) break;
      const scored = await metricSum(pipeline.metrics, 'loopline_worker_outputs_total', { worker: 'scorer' });
      const joined = await metricSum(pipeline.metrics, 'loopline_joiner_joined_predictions_total');
      const hist = await registry.history(spec.name, spec.model.name, 200).catch(() => []);
      const promotions = hist.filter((h) => h.action === 'PROMOTE' && h.actor !== 'bootstrap').length;
      const rollbacks = hist.filter((h) => h.action === 'ROLLBACK').length;
      progress(`${scored}/${eventsTotal} predictions, ${joined} labels joined, champion v${(pipeline.impls.get('scorer') as Scorer | undefined)?.serving().champion}, ${promotions} promotions, ${rollbacks} rollbacks`);
    }
  })();

  const replay = await createReplayer({ producer, logger }).run(plan, { speed: 'max', eventsPerSecond: opts.eventsPerSecond });
  await producer.disconnect();
  progress(`replay sent ${replay.events} events, ${replay.features} feature updates, ${replay.labels} labels; waiting for the loop to finish`);

  // Drained when scoring has caught up and joined labels stop growing for a while.
  let lastJoined = -1;
  let stableSince = Date.now();
  const deadline = Date.now() + 20 * 60_000;
  const expectedJoins = labelsSent - late;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 2000));
    const scored = await metricSum(pipeline.metrics, 'loopline_worker_records_total', { worker: 'scorer' });
    const joined = await metricSum(pipeline.metrics, 'loopline_worker_outputs_total', { worker: 'joiner' });
    if (joined !== lastJoined) {
      lastJoined = joined;
      stableSince = Date.now();
    }
    const labelJoins = await metricSum(pipeline.metrics, 'loopline_joiner_labels_total', { outcome: 'joined' });
    if (scored >= replay.events && (labelJoins >= expectedJoins || Date.now() - stableSince > 30_000)) break;
  }
  stopTicker = true;
  await ticker;
  const wallSeconds = (Date.now() - started) / 1000;
  const report = await buildReport({ spec, kafka, codec, names, cql, registry, replayedIds: replay.eventIds, labelsSent, bootstrapVersion: boot.model.version, wallSeconds, progress });
  await pipeline.stop();
  await ops.close();
  await cql.shutdown();
  const html = path.join(projectRoot, '.infra', 'demo', `report-${run}.html`);
  writeHtmlReport(report, html);
  progress(`chart written to ${html}`);
  return { report, config, html };
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo', { isDefault: true })
    .description('run the whole loop on the bundled Elec2 data from nothing and report what it measured (the default command)')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .option('--rows <n>', 'replay only this many events after the bootstrap rows (default: all)')
    .option('--events-per-second <n>', 'replay pace', '300')
    .option('--report <format>', 'text or json (json prints one object on stdout)', 'text')
    .option('--metrics-port <port>', 'port of /metrics during the run', '9464')
    .action(async (o: { spec: string; rows?: string; eventsPerSecond: string; report: string; metricsPort: string }) => {
      if (o.report !== 'text' && o.report !== 'json') throw new Error(`--report must be text or json, got ${o.report}`);
      const { report } = await runDemo({
        spec: o.spec,
        ...(o.rows ? { rows: Number(o.rows) } : {}),
        eventsPerSecond: Number(o.eventsPerSecond),
        report: o.report,
        metricsPort: Number(o.metricsPort),
      });
      if (o.report === 'json') {
        const { timeline: _t, promotionsAt: _p, ...rest } = report;
        console.log(JSON.stringify(rest));
      } else {
        console.log(`\nLoopline demo — ${report.pipeline}`);
        console.log(`  events replayed        ${report.events}`);
        console.log(`  predictions logged     ${report.predictionsLogged}   lost ${report.lost}   duplicates ${report.duplicates}`);
        console.log(`  dead-lettered          ${report.deadLettered}`);
        console.log(`  labels joined          ${report.labelsJoined} of ${report.labelsSent} sent (${report.labelsLate} late)`);
        console.log(`  retrains               ${report.retrains}   promotions ${report.promotions}   rollbacks ${report.rollbacks}   champion v${report.champion}`);
        console.log(`  accuracy               closed loop ${report.metric.closedLoop?.toFixed(4)}   bootstrap model alone ${report.metric.staticBaseline?.toFixed(4)}   (${report.metric.rows} labeled events)`);
        console.log(`  latency event→logged   p50 ${report.latencyMs.p50} ms   p99 ${report.latencyMs.p99} ms`);
        console.log(`  throughput             ${report.eventsPerSecond?.toFixed(0)} events/s   (wall ${report.wallSeconds.toFixed(0)} s)\n`);
        console.log(textChart(report));
        console.log('\nThe local stack keeps running for inspection: `npm start -- stack down` stops it.');
      }
    });
}
