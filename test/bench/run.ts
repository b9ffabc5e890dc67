/**
 * `npm run bench [-- --workload elec2|many|both] [--chain on|off|both] [--events N] [--rate R] [--batch-max B] [--paced-events M] [--no-baseline] [--no-paced] [--cpu-profile DIR]`
 *
 * Throughput, latency and CPU per event of Loopline's online scoring path
 * (feature-writer, preprocessor, scorer on real Kafka + Cassandra + registry),
 * next to a bare kafkajs pass-through on the same broker in the same run, for
 * two workloads: Elec2 (one entity, so one partition carries everything) and
 * credit-default (30,000 entities over 6 partitions). Prints tables, then one
 * `BENCH_JSON {...}` line with every figure and a `summary`. Exits 1 when any
 * event lacked a prediction or had more than one (or the baseline lost or
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
import { startBaseline, type BaselineResult } from './baseline.js';
import { createCpuMeter, portOf, type CpuMeter } from './cpu.js';
import { startLoopline, type LooplineResult, type RunResult } from './loopline.js';
import { countKafkaLog, countLogLine, fmt, progress, runInterruptClosers, table, type LatencySummary } from './stats.js';

const WARMUP_ROWS = 300;

/** The workloads: which pipeline, and over how many partitions its topics spread. */
const WORKLOADS = {
  elec2: { spec: 'elec2.json', partitions: undefined as number | undefined, doc: 'Elec2, one entity: every topic of the path uses one partition' },
  many: { spec: 'credit-default.json', partitions: 6 as number | undefined, doc: 'credit-default, 30,000 entities over 6 partitions' },
} as const;
type WorkloadName = keyof typeof WORKLOADS;

const USAGE = 'usage: npm run bench -- [--workload elec2|many|both] [--chain on|off|both] [--events N] [--rate R] [--batch-max B] [--paced-events M] [--no-baseline] [--no-paced] [--cpu-profile DIR]';

function usage(message: string): never {
  process.stderr.write(`bench: ${message}\n${USAGE}\n`);
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
        workload: { type: 'string', default: 'both' },
        events: { type: 'string' },
        rate: { type: 'string' },
        'batch-max': { type: 'string' },
        'paced-events': { type: 'string' },
        'no-baseline': { type: 'boolean', default: false },
        'no-paced': { type: 'boolean', default: false },
        chain: { type: 'string' },
        'cpu-profile': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      allowPositionals: false,
    });
  } catch (err) {
    usage((err as Error).message);
  }
})();
if (args.help) {
  process.stdout.write(`${USAGE}\n  --workload   elec2 (one entity), many (credit-default, 30,000 entities over 6 partitions) or both (default)\n  --chain      on (preprocessor and scorer in one consumer, the default), off, or both side by side\n  --events N   events per saturation run (10000); --paced-events M (N); --rate R events/s of the paced runs (50% of the chained saturation)\n  --batch-max  records per chunk (500)\n  --cpu-profile DIR  write a V8 CPU profile of this process per measured run, and summarise it\n`);
  process.exit(0);
}
if (!['elec2', 'many', 'both'].includes(args.workload!)) usage(`--workload must be elec2, many or both (got "${args.workload}")`);
if (args.chain !== undefined && !['on', 'off', 'both'].includes(args.chain)) usage(`--chain must be on, off or both (got "${args.chain}")`);
const workloads: WorkloadName[] = args.workload === 'both' ? ['elec2', 'many'] : [args.workload as WorkloadName];
/** undefined = the pipeline's default (chained). */
const variants: Array<boolean | undefined> = args.chain === 'both' ? [true, false] : [args.chain === undefined ? undefined : args.chain === 'on'];
const events = positiveInt('events', args.events, 10_000)!;
const rate = positiveInt('rate', args.rate, undefined);
const batchMax = positiveInt('batch-max', args['batch-max'], 500)!;
const pacedEvents = positiveInt('paced-events', args['paced-events'], events)!;
const withBaseline = !args['no-baseline'];
const withPaced = !args['no-paced'];
const profileDir = args['cpu-profile'] ? path.resolve(args['cpu-profile']) : undefined;

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const data = Object.fromEntries(
  workloads.map((w) => {
    const { spec, dir } = loadSpec(path.join(root, 'pipelines', WORKLOADS[w].spec));
    const csv = readCsv(path.join(dir, spec.replay!.csv));
    const needed = WARMUP_ROWS + events + (withPaced ? pacedEvents : 0);
    if (needed > csv.length) usage(`the ${spec.name} replay has ${csv.length} rows; a warm-up of ${WARMUP_ROWS}, ${events} saturation events${withPaced ? ` and ${pacedEvents} paced events` : ''} need ${needed} (lower --events or --paced-events)`);
    return [w, { spec, specDir: dir, csv }];
  }),
) as Record<WorkloadName, { spec: ReturnType<typeof loadSpec>['spec']; specDir: string; csv: Array<Record<string, string>> }>;

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

// kafkajs's retried error responses reach the logger at debug, which the bench's level drops: count them on the way.
const debug = logger.debug.bind(logger);
logger.debug = ((fields: unknown, ...rest: unknown[]) => {
  countKafkaLog(fields, rest[0]);
  (debug as (...a: unknown[]) => void)(fields, ...rest);
}) as typeof logger.debug;

let services: TestServices | null = null;
const envs: TestEnv[] = [];
let cleaning: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const env of envs) {
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

interface WorkloadResult {
  workload: WorkloadName;
  doc: string;
  pipeline: string;
  partitions: number;
  baseline: BaselineResult | null;
  loopline: LooplineResult[];
  summary: Summary | null;
}

interface Summary {
  workload: WorkloadName;
  /** scoring ÷ pass-through events/s, same run, same broker (the pipeline's default variant at saturation against the live pass-through). */
  ratio: number;
  passThroughEventsPerSecond: number;
  scoringEventsPerSecond: number;
  /** p99 latency of the paced runs, both at the same rate. */
  passThroughPacedP99Ms: number;
  scoringPacedP99Ms: number;
  pacedRate: number;
  /** Events of every Loopline run without a prediction, and with more than one. */
  lost: number;
  duplicates: number;
  chained: boolean;
}

function latencyRow(name: string, thr: number, l: LatencySummary, cpuMs: string, basis: string): string[] {
  return [name, fmt(thr), fmt(l.p50), fmt(l.p90), fmt(l.p99), fmt(l.max), cpuMs, basis];
}

const perEvent = (cpu: Record<string, number>, n: number) =>
  Object.entries(cpu).map(([k, v]) => `${k} ${fmt((v * 1000) / n, 2)}`).join(', ');

function summarise(w: WorkloadResult): Summary | null {
  const main = w.loopline[0];
  const sat = main?.runs.find((r) => r.label === 'saturation');
  if (!w.baseline || !main || !sat) return null;
  const paced = main.runs.find((r) => r.label === 'paced');
  const all = w.loopline.flatMap((l) => l.runs);
  return {
    workload: w.workload,
    ratio: Math.round((sat.eventsPerSecond / w.baseline.live.recordsPerSecond) * 1000) / 1000,
    passThroughEventsPerSecond: Math.round(w.baseline.live.recordsPerSecond),
    scoringEventsPerSecond: Math.round(sat.eventsPerSecond),
    passThroughPacedP99Ms: w.baseline.paced?.latencyMs.p99 ?? Number.NaN,
    scoringPacedP99Ms: paced?.latencyMs.p99 ?? Number.NaN,
    pacedRate: paced?.rateTarget ?? Number.NaN,
    lost: all.reduce((s, r) => s + r.lost, 0),
    duplicates: all.reduce((s, r) => s + r.duplicated, 0),
    chained: main.chained,
  };
}

function report(results: WorkloadResult[], cpuPids: Record<string, number>, problems: string[]): void {
  const out: string[] = [];
  out.push('');
  out.push(`Loopline benchmark: ${machine.cores} cores (${machine.cpu}), ${machine.memoryGiB} GiB, Node ${machine.node}; batchMax ${batchMax}; single broker, RF=1`);
  out.push(`load average at start ${machine.loadAverageAtStart.join(' ')}, at end ${machine.loadAverageAtEnd.join(' ')}; CPU measured for this process${Object.keys(cpuPids).length ? ` and ${Object.entries(cpuPids).map(([k, p]) => `${k} (pid ${p})`).join(', ')}` : ''}`);
  for (const w of results) {
    out.push('');
    out.push(`== ${w.workload}: ${w.doc} (${w.pipeline}, ${w.partitions} partitions)`);
    out.push('');
    const rows: string[][] = [['run', 'events/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'CPU ms/event', 'latency from']];
    const b = w.baseline;
    if (b) {
      rows.push(latencyRow('pass-through, drain', b.drain.recordsPerSecond, b.drain.latencyMs, perEvent(b.drain.cpuSeconds, b.drain.records), 'produce (1 hop)'));
      rows.push(latencyRow('pass-through, live', b.live.recordsPerSecond, b.live.latencyMs, perEvent(b.live.cpuSeconds, b.live.records), 'produced_at'));
      if (b.paced) rows.push(latencyRow(`pass-through, paced @ ${fmt(b.paced.rate)}/s`, b.paced.recordsPerSecond, b.paced.latencyMs, perEvent(b.paced.cpuSeconds, b.paced.records), 'produced_at'));
    }
    for (const l of w.loopline) {
      const variant = l.chained ? 'chained' : 'unchained';
      for (const r of l.runs) {
        rows.push(latencyRow(`loopline ${variant}, ${r.label === 'saturation' ? 'saturation' : `paced @ ${fmt(r.rateTarget ?? 0)}/s`}`, r.eventsPerSecond, r.latencyMs, perEvent(r.cpuSeconds, r.events), 'produced_at'));
      }
    }
    out.push(table(rows));
    out.push('');
    const detail: string[][] = [['loopline run', 'events', 'sent/s', 'wall s', 'to scorer p50', 'to scorer p99', 'scorer→read p50', 'scorer→read p99', 'txn conflicts', 'lost', 'dups', 'log rows']];
    const chunks: string[][] = [['worker chunks', 'run', 'chunks', 'records/chunk', 'mean chunk ms', 'busy %', 'retries']];
    const order = (x: string) => ['feature-writer', 'preprocessor', 'scorer', 'preprocessor-scorer'].indexOf(x);
    for (const l of w.loopline) {
      const variant = l.chained ? 'chained' : 'unchained';
      for (const r of l.runs) {
        detail.push([`${variant} ${r.label}`, fmt(r.events), fmt(r.sendEventsPerSecond), fmt(r.seconds, 1), fmt(r.toScorerMs.p50), fmt(r.toScorerMs.p99), fmt(r.scorerToReadMs.p50), fmt(r.scorerToReadMs.p99), fmt(r.concurrentTransactions), String(r.lost), String(r.duplicated), `${r.logSample.found}/${r.logSample.checked}`]);
        for (const [name, s] of Object.entries(r.workers).sort(([a], [c]) => order(a) - order(c))) {
          chunks.push([name, `${variant} ${r.label}`, fmt(s.chunks), fmt(s.recordsPerChunk, 1), fmt(s.meanChunkMs, 1), fmt(s.busy * 100), Object.entries(s.retries).map(([c, n]) => `${n} ${KAFKA_CODES[c] ?? c}`).join(', ') || 'none']);
        }
      }
    }
    out.push(table(detail));
    out.push('');
    out.push(table(chunks));
    for (const l of w.loopline) {
      for (const r of l.runs) {
        if (!r.profile) continue;
        out.push('');
        out.push(`CPU profile of this process, ${l.chained ? 'chained' : 'unchained'} ${r.label}: ${fmt(r.profile.busyMs)} ms busy of ${fmt(r.profile.totalMs)} ms (${r.profile.file})`);
        out.push(table([['spent in', 'ms', 'share of busy'], ...r.profile.byOwner.slice(0, 14).map((o) => [o.owner, fmt(o.ms), `${fmt(o.share * 100, 1)}%`])]));
      }
    }
    out.push('');
    if (b) out.push(`pass-through: ${fmt(b.messageBytes.mean, 1)}-byte ClientEvents (${b.messageBytes.min}..${b.messageBytes.max}), ${b.partitionsUsed} of ${b.partitions} partitions used; plain idempotent producer ${fmt(b.produce.recordsPerSecond)} records/s`);
    for (const l of w.loopline) out.push(`${l.label}: bootstrap model v${l.bootstrap.version} on ${fmt(l.bootstrap.rows)} rows in ${l.bootstrap.seconds.toFixed(1)} s; warm-up ${l.warmup.events} events in ${l.warmup.seconds.toFixed(1)} s (not measured)`);
    const s = w.summary;
    if (s) out.push(`summary: ratio ${s.ratio} (scoring ${fmt(s.scoringEventsPerSecond)} ÷ pass-through ${fmt(s.passThroughEventsPerSecond)} events/s); paced p99 ${fmt(s.scoringPacedP99Ms)} ms against ${fmt(s.passThroughPacedP99Ms)} ms at ${fmt(s.pacedRate)}/s (${fmt(s.scoringPacedP99Ms / s.passThroughPacedP99Ms, 1)}×); lost ${s.lost}, duplicates ${s.duplicates}`);
  }
  out.push('');
  out.push(problems.length ? `FAILED:\n  ${problems.join('\n  ')}` : 'OK: every event has exactly one prediction on the topic; sampled prediction-log rows present.');
  process.stdout.write(`${out.join('\n')}\n`);
}

async function runWorkload(name: WorkloadName, cpu: CpuMeter, problems: string[]): Promise<WorkloadResult> {
  const w = WORKLOADS[name];
  const { spec, specDir, csv } = data[name];
  const result: WorkloadResult = { workload: name, doc: w.doc, pipeline: spec.name, partitions: w.partitions ?? 3, baseline: null, loopline: [], summary: null };
  const newEnv = async () => {
    const env = await createTestEnv(`bench-${name}`, w.partitions ? { partitions: w.partitions } : {});
    envs.push(env);
    progress(`${name}: topic prefix ${env.config.kafka.topicPrefix}, keyspace ${env.config.cassandra.keyspace}`);
    return env;
  };
  const env = await newEnv();
  const kafka = createKafka(env.config.kafka, logger, 'bench');
  const partitionsConsumedConcurrently = 3; // the runtime's default
  const baseline = withBaseline ? await startBaseline({ kafka, admin: env.admin, codec: env.codec, names: env.names, cpu }, { partitions: result.partitions, batchMax, partitionsConsumedConcurrently, label: name }) : null;
  const sample = (offset: number, limit: number) => buildReplayPlan(spec, csv, { offset, limit }).filter((x) => x.kind === 'event').map((x) => x.record as ClientEvent);
  let pacedRate = rate;
  try {
    if (baseline) await baseline.run(sample(WARMUP_ROWS, events));
    for (const [i, chain] of variants.entries()) {
      const e = i === 0 ? env : await newEnv();
      const k = i === 0 ? kafka : createKafka(e.config.kafka, logger, 'bench');
      const label = `${name}/${chain === false ? 'unchained' : 'chained'}`;
      const loop = await startLoopline(
        { config: e.config, kafka: k, admin: e.admin, codec: e.codec, names: e.names, cql: e.cql, logger, spec, specDir, csv, cpu },
        { label, batchMax, ...(chain === undefined ? {} : { chain }), ...(profileDir ? { profileDir } : {}) },
      );
      try {
        const sat: RunResult = await loop.run({ label: 'saturation', offset: WARMUP_ROWS, events });
        if (withPaced) {
          pacedRate ??= Math.max(1, Math.round(sat.eventsPerSecond / 2));
          if (i === 0 && baseline) await baseline.paced(sample(WARMUP_ROWS + events, pacedEvents), pacedRate);
          await loop.run({ label: 'paced', offset: WARMUP_ROWS + events, events: pacedEvents, rate: pacedRate });
        }
      } finally {
        await loop.stop();
      }
      const r = loop.result();
      result.loopline.push(r);
      problems.push(...r.problems);
    }
  } finally {
    if (baseline) {
      await baseline.stop();
      result.baseline = baseline.result();
      problems.push(...result.baseline.problems);
    }
  }
  result.summary = summarise(result);
  return result;
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
  const cpu = createCpuMeter({ kafka: portOf(a.kafkaBrokers[0]), cassandra: portOf(a.cassandraContactPoints[0]), registry: portOf(a.schemaRegistryUrl) });
  progress(`CPU measured for this process${Object.keys(cpu.pids).length ? ` and ${Object.entries(cpu.pids).map(([k, p]) => `${k} (pid ${p})`).join(', ')}` : ' only (the servers are not local processes)'}`);

  const problems: string[] = [];
  const results: WorkloadResult[] = [];
  for (const w of workloads) results.push(await runWorkload(w, cpu, problems));

  machine.loadAverageAtEnd = os.loadavg().map((l) => Math.round(l * 100) / 100);
  report(results, cpu.pids, problems);
  const summaries = results.map((r) => r.summary).filter((s): s is Summary => s !== null);
  // The headline is the many-entity workload (every partition carries load) when it ran; each workload's is under byWorkload.
  const headline = summaries.find((s) => s.workload === 'many') ?? summaries[0] ?? null;
  const json = {
    machine,
    batchMax,
    services: services.mode,
    kafka: { brokers: a.kafkaBrokers.length, replicationFactor: 1 },
    cpuProcesses: cpu.pids,
    args: { workloads, chain: args.chain ?? 'default', events, pacedEvents: withPaced ? pacedEvents : 0, rate: rate ?? null, baseline: withBaseline, cpuProfile: profileDir ?? null },
    workloads: results,
    ok: problems.length === 0,
    problems,
    summary: headline ? { ...headline, byWorkload: Object.fromEntries(summaries.map((s) => [s.workload, s])) } : null,
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
