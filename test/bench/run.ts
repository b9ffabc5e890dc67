/**
 * `npm run bench [-- --events N] [--rate R] [--batch-max B] [--paced-events M] [--no-baseline] [--no-paced]`
 *
 * Throughput and latency of Loopline's online scoring path (feature-writer,
 * preprocessor, scorer on real Kafka + Cassandra + registry), next to a bare
 * kafkajs pass-through on the same broker in the same run. Prints a table,
 * then one `BENCH_JSON {...}` line with every figure. Exits 1 when any event
 * lacked a prediction or had more than one (or the baseline lost or
 * duplicated a record), 2 on a usage error. See test/bench/README.md.
 */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { loadSpec } from '../../pipelines/spec.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan } from '../../producers/replay-plan.js';
import type { ClientEvent } from '../../schemas/types.js';
import { createKafka } from '../../streams/kafka.js';
import { createLogger } from '../../streams/logger.js';
import { createTestEnv, type TestEnv } from '../support/fixtures.js';
import { acquireServices, type TestServices } from '../support/services.js';
import { runBaseline, type BaselineResult } from './baseline.js';
import { runLoopline, type LooplineResult, type RunPlan } from './loopline.js';
import { countLogLine, fmt, progress, runInterruptClosers, table, type LatencySummary } from './stats.js';

const WARMUP_ROWS = 300;

function usage(message: string): never {
  process.stderr.write(`bench: ${message}\nusage: npm run bench -- [--events N] [--rate R] [--batch-max B] [--paced-events M] [--no-baseline] [--no-paced]\n`);
  process.exit(2);
}

function positiveInt(name: string, raw: string | undefined, fallback: number | undefined): number | undefined {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) usage(`--${name} must be a positive integer (got "${raw}")`);
  return n;
}

const { values: args } = (() => {
  try {
    return parseArgs({
      options: {
        events: { type: 'string' },
        rate: { type: 'string' },
        'batch-max': { type: 'string' },
        'paced-events': { type: 'string' },
        'no-baseline': { type: 'boolean', default: false },
        'no-paced': { type: 'boolean', default: false },
        chain: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      allowPositionals: false,
    });
  } catch (err) {
    usage((err as Error).message);
  }
})();
if (args.help) {
  process.stdout.write('npm run bench -- [--events N (10000)] [--rate R events/s for the paced run (default: 50% of the saturation throughput)] [--batch-max B (500)] [--paced-events M (N)] [--no-baseline] [--no-paced]\n');
  process.exit(0);
}
const events = positiveInt('events', args.events, 10_000)!;
const rate = positiveInt('rate', args.rate, undefined);
const batchMax = positiveInt('batch-max', args['batch-max'], 500)!;
const pacedEvents = positiveInt('paced-events', args['paced-events'], events)!;
const withBaseline = !args['no-baseline'];
const withPaced = !args['no-paced'];
if (args.chain !== undefined && args.chain !== 'on' && args.chain !== 'off') usage(`--chain must be on or off (got "${args.chain}")`);
const chain = args.chain === undefined ? undefined : args.chain === 'on';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { spec, dir: specDir } = loadSpec(path.join(root, 'pipelines', 'elec2.json'));
const csv = readCsv(path.join(specDir, spec.replay!.csv));
const rowsNeeded = WARMUP_ROWS + events + (withPaced ? pacedEvents : 0);
if (rowsNeeded > csv.length) {
  usage(`the Elec2 replay has ${csv.length} rows; a warm-up of ${WARMUP_ROWS}, ${events} saturation events${withPaced ? ` and ${pacedEvents} paced events` : ''} need ${rowsNeeded} (lower --events or --paced-events)`);
}

const machine = {
  cores: os.cpus().length,
  cpu: os.cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
  node: process.version,
  platform: `${os.platform()} ${os.release()}`,
  loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  loadAverageAtEnd: [] as number[],
};

// Logs (kafkajs warnings, worker retries) go to stderr so stdout holds only the results.
const stderr = pino.destination({ dest: 2, sync: true });
const logger = createLogger({
  level: process.env.LOOPLINE_TEST_LOG_LEVEL ?? 'warn',
  name: 'bench',
  destination: {
    write(line: string) {
      countLogLine(line);
      stderr.write(line);
    },
  },
});

let services: TestServices | null = null;
let env: TestEnv | null = null;
let cleaning: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    if (env) {
      progress(`cleaning up: dropping topics ${env.config.kafka.topicPrefix}* and keyspace ${env.config.cassandra.keyspace}`);
      await env.cleanup().catch((err: unknown) => progress(`cleanup failed: ${(err as Error).message}`));
    }
    await services?.release().catch((err: unknown) => progress(`releasing services failed: ${(err as Error).message}`));
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    progress(`${signal}: stopping the workers and consumers, then cleaning up`);
    void runInterruptClosers()
      .then(() => cleanup())
      .finally(() => {
        progress('interrupted (exit 130)');
        process.exit(130);
      });
  });
}

/** Kafka protocol error codes the runtime's retry metric may carry, by number. */
const KAFKA_CODES: Record<string, string> = { '51': 'CONCURRENT_TRANSACTIONS', '47': 'INVALID_PRODUCER_EPOCH', '48': 'INVALID_TXN_STATE', '90': 'PRODUCER_FENCED' };

function latencyRow(name: string, thr: number, l: LatencySummary, basis: string): string[] {
  return [name, fmt(thr), fmt(l.p50), fmt(l.p90), fmt(l.p99), fmt(l.max), basis];
}

function report(baseline: BaselineResult | null, loopline: LooplineResult, problems: string[]): void {
  const out: string[] = [];
  out.push('');
  out.push(`Loopline benchmark: ${machine.cores} cores (${machine.cpu}), ${machine.memoryGiB} GiB, Node ${machine.node}; batchMax ${batchMax}; single broker, RF=1`);
  out.push(`load average at start ${machine.loadAverageAtStart.join(' ')}, at end ${machine.loadAverageAtEnd.join(' ')}`);
  out.push('');
  const rows: string[][] = [['run', 'records/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'latency measured from']];
  if (baseline) {
    rows.push(latencyRow('baseline pass-through, drain', baseline.drain.recordsPerSecond, baseline.drain.latencyMs, 'pass-through produce (1 hop)'));
    rows.push(latencyRow('baseline pass-through, live', baseline.live.recordsPerSecond, baseline.live.latencyMs, 'produced_at'));
  }
  for (const r of loopline.runs) {
    const name = r.label === 'saturation' ? 'loopline saturation (max)' : `loopline paced @ ${fmt(r.rateTarget ?? 0)}/s`;
    rows.push(latencyRow(name, r.eventsPerSecond, r.latencyMs, 'produced_at'));
  }
  out.push(table(rows));
  out.push('');

  const detail: string[][] = [['loopline run', 'events', 'sent/s', 'wall s', 'to scorer p50', 'to scorer p99', 'scorer→read p50', 'scorer→read p99', 'txn conflicts', 'lost', 'dups', 'log rows']];
  for (const r of loopline.runs) {
    detail.push([
      r.label, fmt(r.events), fmt(r.sendEventsPerSecond), fmt(r.seconds, 1), fmt(r.toScorerMs.p50), fmt(r.toScorerMs.p99), fmt(r.scorerToReadMs.p50), fmt(r.scorerToReadMs.p99),
      fmt(r.concurrentTransactions), String(r.lost), String(r.duplicated), `${r.logSample.found}/${r.logSample.checked}`,
    ]);
  }
  out.push(table(detail));
  out.push('');

  const chunks: string[][] = [['worker chunks', 'run', 'chunks', 'records/chunk', 'mean chunk ms', 'busy %', 'retries']];
  const order = (w: string) => ['feature-writer', 'preprocessor', 'scorer', 'preprocessor-scorer'].indexOf(w);
  for (const r of loopline.runs) {
    for (const [w, s] of Object.entries(r.workers).sort(([a], [b]) => order(a) - order(b))) chunks.push([w, r.label, fmt(s.chunks), fmt(s.recordsPerChunk, 1), fmt(s.meanChunkMs, 1), fmt(s.busy * 100), Object.entries(s.retries).map(([c, n]) => `${n} ${KAFKA_CODES[c] ?? c}`).join(', ') || 'none']);
  }
  out.push(table(chunks));
  out.push('');
  if (baseline) {
    out.push(
      `baseline: ${fmt(baseline.messageBytes.mean, 1)}-byte ClientEvents (${baseline.messageBytes.min}..${baseline.messageBytes.max}), ${baseline.partitionsUsed} of ${baseline.partitions} partitions used (one key, like Elec2); ` +
        `plain idempotent producer ${fmt(baseline.produce.recordsPerSecond)} records/s; lost ${baseline.drain.lost + baseline.live.lost}, duplicated ${baseline.drain.duplicated + baseline.live.duplicated}`,
    );
  }
  out.push(`bootstrap model v${loopline.bootstrap.version}: ${fmt(loopline.bootstrap.rows)} rows, ${loopline.bootstrap.seconds.toFixed(1)} s; warm-up ${loopline.warmup.events} events in ${loopline.warmup.seconds.toFixed(1)} s (not measured)`);
  out.push(problems.length ? `FAILED:\n  ${problems.join('\n  ')}` : 'OK: every event has exactly one prediction on the topic; sampled prediction-log rows present.');
  process.stdout.write(`${out.join('\n')}\n`);
}

async function main(): Promise<number> {
  progress(`machine: ${machine.cores} cores, Node ${machine.node}, load ${machine.loadAverageAtStart.join(' ')}`);
  services = await acquireServices((m) => progress(`services: ${m}`));
  const a = services.addresses;
  process.env.LOOPLINE_KAFKA_BROKERS = a.kafkaBrokers.join(',');
  process.env.LOOPLINE_CASSANDRA_CONTACT_POINTS = a.cassandraContactPoints.join(',');
  process.env.LOOPLINE_CASSANDRA_LOCAL_DC = a.cassandraLocalDataCenter;
  process.env.LOOPLINE_SCHEMA_REGISTRY_URL = a.schemaRegistryUrl;
  progress(`services (${services.mode}): kafka ${a.kafkaBrokers.join(',')}, cassandra ${a.cassandraContactPoints.join(',')}, registry ${a.schemaRegistryUrl}`);

  env = await createTestEnv('bench');
  progress(`environment: topic prefix ${env.config.kafka.topicPrefix}, keyspace ${env.config.cassandra.keyspace}`);
  const kafka = createKafka(env.config.kafka, logger, 'bench');
  const problems: string[] = [];

  let baseline: BaselineResult | null = null;
  if (withBaseline) {
    const sample = buildReplayPlan(spec, csv, { limit: events }).filter((x) => x.kind === 'event').map((x) => x.record as ClientEvent);
    baseline = await runBaseline({ kafka, admin: env.admin, codec: env.codec, names: env.names }, sample, batchMax);
    problems.push(...baseline.problems);
  }

  const runs: RunPlan[] = [{ label: 'saturation', offset: WARMUP_ROWS, events }];
  if (withPaced) runs.push({ label: 'paced', offset: WARMUP_ROWS + events, events: pacedEvents, ...(rate !== undefined ? { rate } : {}) });
  const loopline = await runLoopline(
    { config: env.config, kafka, admin: env.admin, codec: env.codec, names: env.names, cql: env.cql, logger, spec, specDir, csv },
    { batchMax, runs, pacedRate: (s) => Math.max(1, Math.round(s.eventsPerSecond / 2)), ...(chain === undefined ? {} : { chain }) },
  );
  problems.push(...loopline.problems);

  machine.loadAverageAtEnd = os.loadavg().map((l) => Math.round(l * 100) / 100);
  report(baseline, loopline, problems);
  const json = {
    machine,
    batchMax,
    services: services.mode,
    kafka: { brokers: a.kafkaBrokers.length, replicationFactor: 1 },
    args: { events, pacedEvents: withPaced ? pacedEvents : 0, rate: rate ?? null, baseline: withBaseline },
    baseline,
    loopline,
    ok: problems.length === 0,
    problems,
  };
  process.stdout.write(`BENCH_JSON ${JSON.stringify(json)}\n`);
  return problems.length === 0 ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  progress(`failed: ${(err as Error).stack ?? String(err)}`);
  code = 1;
} finally {
  await cleanup();
}
progress(`done (exit ${code})`);
process.exit(code);
