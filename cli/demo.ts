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
import { ConfigError } from '../core/errors.js';
import { startPipeline, WORKER_NAMES } from '../consumers/pipeline.js';
import { createQuiescence } from '../consumers/quiescence.js';
import type { Scorer } from '../consumers/scorer/scorer.js';
import { bootstrapInfra } from '../infra/bootstrap.js';
import { createLocalStack } from '../infra/local-stack/local-stack.js';
import { projectRoot } from '../infra/local-stack/paths.js';
import { trainBootstrap } from '../producers/bootstrap.js';
import { createModelRegistry } from '../store/model-registry.js';
import { createTrainingSet } from '../store/training-set.js';
import { loadSpec } from '../pipelines/spec.js';
import { createLooplineProducer, type LooplineProducer } from '../producers/client.js';
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
import { setupSpec } from '../infra/spec-setup.js';
import { defaultRollingMean, withRollingMean } from '../pipelines/evolution.js';
import { buildReport, textChart, writeHtmlReport, type DemoReport, type ReportInput } from './demo-report.js';
import { createProgress } from './progress.js';
import { startDashboard } from '../dashboard/server.js';
import { writeDemoRun } from '../ops/demo-run.js';
import { metricsFromRegistry } from '../ops/metrics-source.js';
import { cleanRun } from './clean.js';
import { choiceOption, intOption } from './options.js';
import { DEFAULT_SPEC } from './workers.js';

export interface DemoOptions {
  spec: string;
  rows?: number;
  eventsPerSecond: number;
  report: 'text' | 'json';
  metricsPort: number;
  /** Share of labels delivered past the spec's join horizon, to show late labels are counted, not joined. Default 0.01. */
  lateShare?: number;
  /** Pace event time by the loop's progress (producers/replayer.ts): the loop settles every `backtestStep` events. */
  backtest?: boolean;
  /** Events per backtest step (1 = settle before every event). Default 100. */
  backtestStep?: number;
  /** Serve the live dashboard (dashboard/server.ts) on this port during the run (0 = any free port). */
  dashboardPort?: number;
  /** false: remove the run's topics, subjects and keyspace at the end (the CLI without --keep). Default: keep. */
  keep?: boolean;
  /**
   * Halfway through the replay, apply a spec version that adds a rolling mean of an event field
   * (pipelines/evolution.ts; Elec2: nswdemand_ma48) with `setup --spec`'s checks, while every worker runs;
   * the loop picks it up live and retrains onto it through the usual gates (the report's `evolution`).
   */
  evolve?: boolean;
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

/** Counts what the demo sends, by topic, for the loop's progress check. */
function countingProducer(p: LooplineProducer, sent: Record<string, number>): LooplineProducer {
  const add = (topic: string, n: number) => (sent[topic] = (sent[topic] ?? 0) + n);
  return {
    ...p,
    async sendEvents(xs) {
      await p.sendEvents(xs);
      add('events.client', xs.length);
    },
    async sendFeatureUpdates(xs) {
      await p.sendFeatureUpdates(xs);
      add('features.updates', xs.length);
    },
    async sendGroundTruth(xs) {
      await p.sendGroundTruth(xs);
      add('labels.ground-truth', xs.length);
    },
  };
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
  const rolling = opts.evolve ? defaultRollingMean(spec) : null;
  if (opts.evolve && !rolling) throw new ConfigError(`demo --evolve needs a numeric event field to average; ${spec.name} has none`);
  // Point in time, after waiting (bounded) for the aggregator: it starts at the switch and first aggregates the events before it.
  const evolved = rolling ? withRollingMean(spec, rolling, { pointInTime: true, waitForWatermarkMs: 10_000 }) : null;

  progress(`creating topics (prefix ${config.kafka.topicPrefix}), tables (keyspace ${config.cassandra.keyspace}) and schemas`);
  await bootstrapInfra(config, logger);
  const cql = createCassandraClient(config.cassandra);
  await cql.connect();
  const registry = createModelRegistry(cql);
  progress(`training the bootstrap model on the first ${spec.trainer.bootstrapRows} rows`);
  const boot = await trainBootstrap(spec, dir, registry, 'bootstrap', createTrainingSet(cql));
  progress(`bootstrap model ${spec.model.name}@${boot.model.version}: training accuracy ${boot.model.metrics.accuracy?.toFixed(3)}`);

  if (evolved) {
    const first = await setupSpec(config, spec, JSON.stringify(spec), logger);
    progress(`spec ${spec.name} recorded as version ${first.outcome === 'applied' ? first.version : '?'}; halfway, a version adding ${evolved.model.features.at(-1)} will be applied`);
  }
  progress(`starting the workers: ${WORKER_NAMES.join(', ')}`);
  const pipeline = await startPipeline(config, spec, logger, { runtime: { batchMax: 200 } });
  const ops = await startOpsServer(pipeline.metrics, () => pipeline.workers, opts.metricsPort).catch(() => startOpsServer(pipeline.metrics, () => pipeline.workers, 0));
  progress(`metrics at http://127.0.0.1:${ops.port}/metrics`);
  const dashboard = opts.dashboardPort === undefined ? null : await startDashboard({ config, spec, logger, port: opts.dashboardPort, metrics: metricsFromRegistry(pipeline.metrics) });
  if (dashboard) progress(`dashboard at ${dashboard.url}`);
  const clearRunFile = writeDemoRun({ prefix: config.kafka.topicPrefix, keyspace: config.cassandra.keyspace, dashboard: dashboard?.url ?? null, metrics: `http://127.0.0.1:${ops.port}/metrics` });

  const kafka = createKafka(config.kafka, logger, 'demo');
  const codec = createCodec(createRegistryClient(config.registry));
  const names = createTopicNames(config.kafka.topicPrefix);
  const sent: Record<string, number> = {};
  const producer = countingProducer(createLooplineProducer({ kafka, codec, names, logger }), sent);
  await producer.connect();
  const csv = readCsv(path.resolve(dir, spec.replay!.csv));
  const remaining = csv.length - spec.trainer.bootstrapRows;
  const plan = buildReplayPlan(spec, csv, { offset: spec.trainer.bootstrapRows, limit: opts.rows ?? remaining });
  const late = delayLabelsPastHorizon(plan, spec.label.horizonMs, opts.lateShare ?? 0.01);
  const labelsSent = plan.filter((a) => a.kind === 'label').length;
  const eventsTotal = plan.filter((a) => a.kind === 'event').length;
  const pacing = opts.backtest ? 'backtest' : 'live';
  const backtestStep = opts.backtestStep ?? 100;
  progress(
    `replaying ${eventsTotal} events at ${opts.eventsPerSecond}/s${opts.backtest ? ` at most, in steps of ${backtestStep}: each step's labels joined and their decisions served before the next step (backtest)` : ''}, labels ${spec.label.delayMs / 3_600_000} h of event time later (${late} of them past the ${spec.label.horizonMs / 86_400_000}-day horizon)`,
  );

  const loop = createQuiescence(pipeline, spec, () => sent);
  let stopTicker = false;
  const ticker = (async () => {
    while (!stopTicker) {
      await new Promise((r) => setTimeout(r, 5000));
      if (stopTicker) break;
      const outs = (topic: string) => pipeline.workers.reduce((n, w) => n + (w.health().counts.out[topic] ?? 0), 0);
      const hist = await registry.history(spec.name, spec.model.name, 200).catch(() => []);
      const promotions = hist.filter((h) => h.action === 'PROMOTE' && h.actor !== 'bootstrap').length;
      const rollbacks = hist.filter((h) => h.action === 'ROLLBACK').length;
      progress(`${outs('predictions')}/${eventsTotal} predictions, ${outs('predictions.labeled')} joined, ${outs('control.retrain')} retrains, champion v${pipeline.impl<Scorer>('scorer')?.serving().champion}, ${promotions} promotions, ${rollbacks} rollbacks`);
    }
  })();

  const replayer = createReplayer({ producer, logger });
  const runOptions = {
    speed: 'max' as const,
    eventsPerSecond: opts.eventsPerSecond,
    ...(opts.backtest ? { backtest: { step: backtestStep, scored: () => loop.scored(10 * 60_000), settled: () => loop.wait(10 * 60_000) } } : {}),
  };
  let evolution: ReportInput['evolution'];
  let aggregator: Awaited<ReturnType<typeof startPipeline>> | null = null;
  let replay: Awaited<ReturnType<typeof replayer.run>>;
  if (evolved) {
    // Halfway (by events), the spec gains the rolling mean: applied as `setup --spec` would, with no worker restarted.
    const half = Math.floor(eventsTotal / 2);
    let seen = 0;
    const cut = plan.findIndex((a) => a.kind === 'event' && seen++ === half);
    const before = await replayer.run(plan.slice(0, cut), runOptions);
    const applied = await setupSpec(config, evolved, JSON.stringify(evolved), logger);
    if (applied.outcome !== 'applied') throw new ConfigError(`demo --evolve: the evolved spec was refused: ${applied.problems.join('; ')}`);
    progress(`event ${before.events}: spec version ${applied.version} applied (${applied.summary}); starting the feature-aggregator for it`);
    aggregator = await startPipeline(config, evolved, logger, { workers: ['feature-aggregator'], runtime: { batchMax: 200 } });
    const after = await replayer.run(plan.slice(cut), runOptions);
    replay = { ...after, startedAt: before.startedAt, aborted: before.aborted || after.aborted, events: before.events + after.events, features: before.features + after.features, labels: before.labels + after.labels, eventIds: [...before.eventIds, ...after.eventIds] };
    evolution = { fromFeatures: [...spec.model.features], toFeatures: [...evolved.model.features], specVersion: applied.version, appliedAtEvent: before.events };
  } else {
    replay = await replayer.run(plan, runOptions);
  }
  await producer.disconnect();
  progress(`replay sent ${replay.events} events, ${replay.features} feature updates, ${replay.labels} labels; waiting for the loop to finish`);
  await loop.wait(20 * 60_000, 50);
  stopTicker = true;
  await ticker;
  const wallSeconds = (Date.now() - started) / 1000;
  const report = await buildReport({ spec, kafka, codec, names, cql, registry, replayedIds: replay.eventIds, labelsSent, bootstrap: boot, pacing, backtestStep, eventsPerSecondTarget: opts.eventsPerSecond, wallSeconds, progress, ...(evolution ? { evolution } : {}) });
  if (dashboard) {
    const times = plan.filter((a) => a.kind === 'event').map((a) => a.record.event_time);
    const at = (t: DemoReport['timeline'][number]) => times[t.fromEvent];
    dashboard.setBaseline('static baseline (bootstrap model alone, measured at the end)', report.timeline.flatMap((t) => (at(t) === undefined ? [] : [{ x: at(t)!, y: t.staticBaseline }])));
    dashboard.setBaseline('periodic baseline (refit every N labels, measured at the end)', report.timeline.flatMap((t) => (at(t) === undefined || t.periodicBaseline === null ? [] : [{ x: at(t)!, y: t.periodicBaseline }])));
    await dashboard.close();
  }
  clearRunFile();
  await aggregator?.stop();
  await pipeline.stop();
  await ops.close();
  await cql.shutdown();
  if (opts.keep === false) {
    const removed = await cleanRun(config);
    progress(`removed this run's ${removed.topics.length} topics, ${removed.subjects.length} schema subjects and keyspace ${config.cassandra.keyspace} (--keep keeps them)`);
  }
  const html = path.join(projectRoot, '.infra', 'demo', `report-${run}.html`);
  writeHtmlReport(report, html);
  progress(`chart written to ${html}`);
  return { report, config, html };
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run the whole loop on a pipeline\'s replay data (Elec2 by default) from nothing and report what it measured (`npm start` with no arguments)')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .option('--rows <n>', 'replay only this many events after the bootstrap rows (default: all)', intOption('--rows', 1))
    .option('--events-per-second <n>', 'replay pace (with --backtest: the most it may reach)', intOption('--events-per-second', 1, 1_000_000), 300)
    .option('--backtest', 'pace event time by the loop\'s progress: every --backtest-step events the labels due are joined and every decision they caused is served before more events go out, so quality does not depend on the speed')
    .option('--backtest-step <n>', 'events per backtest step (1 = the strict protocol, a full round of the loop per event)', intOption('--backtest-step', 1, 1_000_000), 100)
    .option('--report <format>', 'text or json (json prints one object on stdout)', choiceOption('--report', ['text', 'json'] as const), 'text')
    .option('--metrics-port <port>', 'port of /metrics during the run (another free port if taken)', intOption('--metrics-port', 0, 65535), 9464)
    .option('--dashboard-port <port>', 'serve the live dashboard on this port during the run (0 = any free port)', intOption('--dashboard-port', 0, 65535))
    .option('--keep', "keep the run's topics, schema subjects and keyspace (removed at the end otherwise; `loopline clean --demo-runs` removes kept ones)")
    .option('--evolve', 'halfway through the replay, apply a spec version adding a rolling mean of an event field (Elec2: nswdemand_ma48) while the loop runs; the report gains `evolution`')
    .action(async (o: { spec: string; rows?: number; eventsPerSecond: number; backtest?: boolean; backtestStep: number; report: 'text' | 'json'; metricsPort: number; dashboardPort?: number; keep?: boolean; evolve?: boolean }) => {
      const { report } = await runDemo({
        spec: o.spec,
        ...(o.rows === undefined ? {} : { rows: o.rows }),
        eventsPerSecond: o.eventsPerSecond,
        backtest: o.backtest === true,
        backtestStep: o.backtestStep,
        report: o.report,
        metricsPort: o.metricsPort,
        ...(o.dashboardPort === undefined ? {} : { dashboardPort: o.dashboardPort }),
        keep: Boolean(o.keep),
        evolve: o.evolve === true,
      });
      if (o.report === 'json') {
        const { timeline: _t, promotionsAt: _p, ...rest } = report;
        console.log(JSON.stringify(rest));
      } else {
        const m = report.metric;
        const f = (x: number | null) => (x === null ? '—' : x.toFixed(4));
        console.log(`\nLoopline demo — ${report.pipeline} (${report.pacing}${report.backtestStep ? ` in steps of ${report.backtestStep} events` : ''}, ${report.eventsPerSecondTarget} events/s${report.pacing === 'backtest' ? ' at most' : ''})`);
        console.log(`  events replayed        ${report.events}`);
        console.log(`  predictions logged     ${report.predictionsLogged}   lost ${report.lost}   duplicates ${report.duplicates}`);
        console.log(`  dead-lettered          ${report.deadLettered}`);
        console.log(`  labels joined          ${report.labelsJoined} of ${report.labelsSent} sent (${report.labelsLate} late)`);
        console.log(`  retrains               ${report.retrains}   promotions ${report.promotions}   rollbacks ${report.rollbacks}   champion v${report.champion}`);
        console.log(`  ${m.name.padEnd(22)} closed loop ${f(m.closedLoop)}   refitted every ${report.metric.periodicRefits ? `${Math.round(m.rows / Math.max(1, m.periodicRefits))}-ish` : 'N'} labels ${f(m.periodicBaseline)}   bootstrap model alone ${f(m.staticBaseline)}   (${m.rows} labeled events${m.lowerIsBetter ? '; lower is better' : ''})`);
        for (const [k, v] of Object.entries(m.all.closedLoop)) console.log(`    ${k.padEnd(20)} ${f(v)}   ${f(m.all.periodicBaseline?.[k] ?? null)}   ${f(m.all.staticBaseline[k] ?? null)}`);
        const timings = report.promotionTimings.filter((t) => t.eventsToServe !== null).map((t) => t.eventsToServe!);
        if (timings.length) console.log(`  retrain → serving      ${timings.join(', ')} events between each decision and the new champion's first prediction`);
        const c = report.cycleMs;
        if (c.total.p50 !== null) {
          console.log(`  retrain cycle, ms      p50 (max): label→joined ${c.join.p50} (${c.join.max})  →report ${c.monitor.p50} (${c.monitor.max})  →request ${c.trigger.p50} (${c.trigger.max})  →candidate ${c.build.p50} (${c.build.max})  →promoted ${c.evaluate.p50} (${c.evaluate.max})  →serving ${c.serve.p50} (${c.serve.max});  total ${c.total.p50} (${c.total.max})`);
        }
        if (report.estimate) console.log(`  accuracy estimated     before labels: mean |estimated − realised| ${report.estimate.meanAbsError.toFixed(4)}, bias ${report.estimate.bias >= 0 ? '+' : ''}${report.estimate.bias.toFixed(4)}, band coverage ${report.estimate.coverage === null ? '—' : report.estimate.coverage.toFixed(2)} over ${report.estimate.windows} windows`);
        const ev = report.evolution;
        if (ev) console.log(`  spec evolution         v${ev.specVersion} at event ${ev.appliedAtEvent}: [${ev.fromFeatures.join(', ')}] → [${ev.toFeatures.join(', ')}]; ${ev.promotedVersion === null ? 'no model on it served' : `v${ev.promotedVersion} on it served from event ${ev.promotedAtEvent}`}; ${ev.modelFeaturesMismatched} of ${ev.loggedPredictions} logged predictions with other inputs than their model's`);
        console.log(`  latency event→logged   p50 ${report.latencyMs.p50} ms   p99 ${report.latencyMs.p99} ms`);
        console.log(`  throughput             ${report.eventsPerSecond?.toFixed(0)} events/s   (wall ${report.wallSeconds.toFixed(0)} s)\n`);
        console.log(textChart(report));
        console.log('\nThe local stack keeps running for inspection: `npm start -- stack down` stops it.');
      }
    });
}
