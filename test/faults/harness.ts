/**
 * One fault case on a real multi-process run: a fresh topic prefix and
 * keyspace on the fault stack, the bootstrap model, the workers as
 * supervised `loopline run` child processes, the Elec2 workload replayed at a
 * steady pace (events, feature updates and labels), the case's fault injected
 * at moments drawn from its seed, then — once every consumer group has caught
 * up — the checks of test/support/run-check.ts on what the run wrote.
 *
 * Recovery is measured from each fault's end to the first committed
 * transaction after it of the workers the case watches, read from the
 * processes' /metrics (`loopline_worker_last_progress_timestamp_seconds`).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Admin } from 'kafkajs';
import { WORKERS } from '../../consumers/index.js';
import { trainBootstrap } from '../../producers/bootstrap.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan, type ReplayPlan } from '../../producers/replay-plan.js';
import type { ReplayResult } from '../../producers/replayer.js';
import { loadSpec } from '../../pipelines/spec.js';
import { createModelRegistry } from '../../store/model-registry.js';
import { createFeeder } from '../support/feeder.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';
import { checkLoop, checkScoring, createDrainTracker, groupCaughtUp, type DrainTracker, type LoopCheck, type ScoringCheck } from '../support/run-check.js';
import { createWorkerProcess, metricValue, type WorkerProcess } from '../support/worker-processes.js';
import type { FaultStack } from './fault-stack.js';

export const SPEC_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'elec2-spread.json');
const { spec, dir } = loadSpec(SPEC_FILE);
let csvRows: Array<Record<string, string>> | null = null;

/** Mulberry32: a small seeded generator, so a case's moments repeat with its seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ProcessSpec {
  name: string;
  workers: string[];
  sessionTimeoutMs?: number;
  /** Started with the run (default true); others are started by the case. */
  atStart?: boolean;
}

/** The loop as four processes: the scoring path in two, the label loop in two. */
export const LOOP_LAYOUT: ProcessSpec[] = [
  { name: 'ingest', workers: ['feature-writer', 'preprocessor'] },
  { name: 'scorer', workers: ['scorer'] },
  { name: 'join-monitor', workers: ['joiner', 'drift-monitor'] },
  { name: 'control', workers: ['retrain-trigger', 'model-builder', 'evaluator'] },
];

export interface CaseContext {
  name: string;
  seed: number;
  random: () => number;
  stack: FaultStack;
  env: TestEnv;
  admin: Admin;
  procs: Map<string, WorkerProcess>;
  proc(name: string): WorkerProcess;
  /** Starts a process of the case's layout that was not started with the run. */
  startProcess(name: string): Promise<WorkerProcess>;
  /** Resolves once the feeder has sent this share of the events. */
  atShare(share: number): Promise<void>;
  /** A uniform draw in [lo, hi). */
  between(lo: number, hi: number): number;
  /** Waits until `worker`'s group has input it has not committed (it is mid-chunk), up to `timeoutMs`; false if it never had. */
  midChunk(worker: string, timeoutMs?: number): Promise<boolean>;
  /** Polls until every worker in `workers` committed a transaction after `since`; returns the ms it took (null on timeout), and records it. */
  recovered(since: number, workers?: readonly string[], timeoutMs?: number): Promise<number | null>;
  log(message: string): void;
  /** Free-form facts for the report (kill times, exit codes, effects seen). */
  details: Record<string, unknown>;
  /** A failure of the case's own checks. */
  fail(reason: string): void;
}

export interface FaultCase {
  name: string;
  /** One line: the fault and when it strikes. */
  summary: string;
  layout: ProcessSpec[];
  /** Workers whose first commit after a fault's end counts as recovery. */
  watch: string[];
  events?: number;
  eventsPerSecond?: number;
  inject(ctx: CaseContext): Promise<void>;
  /** Checks after the run drained, before the processes stop. */
  verify?(ctx: CaseContext, scoring: ScoringCheck): Promise<void>;
}

export interface CaseResult {
  name: string;
  seed: number;
  in: number;
  logged: number;
  deadLettered: number;
  lost: number;
  duplicates: number;
  recoveryMs: number | null;
  passed: boolean;
  failures: string[];
  wallMs: number;
  scoring: ScoringCheck | null;
  loop: LoopCheck | null;
  restarts: Record<string, number>;
  details: Record<string, unknown>;
}

const EXTERNAL_INPUTS = new Set(['events.client', 'features.updates', 'labels.ground-truth']);

export interface HarnessOptions {
  stack: FaultStack;
  /** Where process logs go: <logDir>/<case>/<process>.log. */
  logDir: string;
  metricsPortBase: number;
  log: (m: string) => void;
  /** Keep a passed case's topics and keyspace (default: dropped). */
  keepData?: boolean;
}

export async function runCase(fc: FaultCase, seed: number, o: HarnessOptions): Promise<CaseResult> {
  const started = Date.now();
  const random = seeded(seed);
  const failures: string[] = [];
  const details: Record<string, unknown> = {};
  const recoveries: number[] = [];
  const log = (m: string) => o.log(`[${fc.name}] ${m}`);
  // The stack's connection and replication variables (brokers, contact points, local DC, registry URL).
  const stackEnv = o.stack.clientEnv();
  const baseEnv: NodeJS.ProcessEnv = { ...process.env, ...stackEnv, LOOPLINE_TEST_LOG_LEVEL: 'error' };
  const label = fc.name.replace(/[^a-z0-9]/g, '').slice(0, 12);
  const env = await createTestEnv(`f${label}`, { env: baseEnv, partitions: { 'events.client': 6, 'features.vectors': 6, 'predictions': 6 } });
  const caseDir = path.join(o.logDir, fc.name.replace(/[^a-zA-Z0-9_.-]/g, '_'));
  fs.mkdirSync(caseDir, { recursive: true });
  log(`seed ${seed}; prefix ${env.config.kafka.topicPrefix}, keyspace ${env.config.cassandra.keyspace}; logs in ${caseDir}`);

  const childEnv: NodeJS.ProcessEnv = {
    ...stackEnv,
    LOOPLINE_TOPIC_PREFIX: env.config.kafka.topicPrefix,
    LOOPLINE_CASSANDRA_KEYSPACE: env.config.cassandra.keyspace,
    LOOPLINE_LOG_LEVEL: process.env.LOOPLINE_FAULTS_WORKER_LOG_LEVEL ?? 'warn',
  };
  const procs = new Map<string, WorkerProcess>();
  fc.layout.forEach((p, i) => {
    procs.set(p.name, createWorkerProcess({
      name: p.name, workers: p.workers, spec: SPEC_FILE, env: childEnv, metricsPort: o.metricsPortBase + i,
      sessionTimeoutMs: p.sessionTimeoutMs ?? 10_000, logFile: path.join(caseDir, `${p.name}.log`),
    }));
  });
  const proc = (name: string) => {
    const p = procs.get(name);
    if (!p) throw new Error(`case ${fc.name} has no process ${name}`);
    return p;
  };

  /** The newest commit time (ms) of a worker over every process that runs it. */
  const lastProgress = async (worker: string): Promise<number | null> => {
    let newest: number | null = null;
    for (const p of procs.values()) {
      if (!p.workers.includes(worker) || p.pid() === null) continue;
      const text = await p.metrics();
      const v = text ? metricValue(text, 'loopline_worker_last_progress_timestamp_seconds', { worker }) : null;
      if (v !== null) newest = Math.max(newest ?? 0, v * 1000);
    }
    return newest;
  };

  const groupOf = (worker: string) => `${env.names.prefix}loopline-${worker}`;
  const inputsOf = (worker: string) => WORKERS.find((w) => w.name === worker)!.input.topics.map((t: { topic: string }) => ({ topic: env.names.physical(t.topic), transactional: !EXTERNAL_INPUTS.has(t.topic) }));

  let sentEvents = 0;
  let plan: ReplayPlan = [];
  let totalEvents = 0;
  const ctx: CaseContext = {
    name: fc.name, seed, random, stack: o.stack, env, admin: env.admin, procs, proc, details, log,
    async startProcess(name) {
      const p = proc(name);
      await p.start();
      await p.waitReady();
      return p;
    },
    async atShare(share) {
      await waitFor(`${Math.round(share * 100)}% of the events sent`, () => sentEvents >= totalEvents * share, 900_000, 100);
    },
    between: (lo, hi) => lo + (hi - lo) * random(),
    async midChunk(worker, timeoutMs = 60_000) {
      const def = WORKERS.find((w) => w.name === worker)!;
      const groupId = `${env.names.prefix}loopline-${worker}`;
      const topics = def.input.topics.map((t: { topic: string }) => ({ topic: env.names.physical(t.topic), transactional: !EXTERNAL_INPUTS.has(t.topic) }));
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        try {
          if (!(await groupCaughtUp(env.admin, groupId, topics))) return true;
        } catch {
          // the broker may be restarting: poll again
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      return false;
    },
    async recovered(since, workers = fc.watch, timeoutMs = 240_000) {
      const deadline = since + timeoutMs;
      const pending = new Set(workers);
      let worst: number | null = null;
      // A worker with nothing left to process after the fault (its input all committed) has not stalled:
      // it counts as recovered without a figure. Checked exactly, with a tracker, once 5 s have passed.
      let tracker: DrainTracker | null = null;
      try {
        while (pending.size > 0 && Date.now() < deadline) {
          for (const w of [...pending]) {
            const at = await lastProgress(w);
            if (at !== null && at >= since) {
              pending.delete(w);
              worst = Math.max(worst ?? 0, at - since);
              details[`recovery.${w}`] = [...((details[`recovery.${w}`] as number[] | undefined) ?? []), Math.round(at - since)];
            } else if (tracker && (await tracker.caughtUp(env.admin, groupOf(w), inputsOf(w).map((t) => t.topic)).catch(() => false))) {
              pending.delete(w);
              details[`idle.${w}`] = [...((details[`idle.${w}`] as number[] | undefined) ?? []), Math.round(Date.now() - since)];
              log(`${w}: nothing left to process after the fault (input all committed): recovered without a figure`);
            }
          }
          if (pending.size > 0 && !tracker && Date.now() - since > 5000) tracker = await createDrainTracker(env.kafka, [...new Set([...pending].flatMap((w) => inputsOf(w).map((t) => t.topic)))]).catch(() => null);
          if (pending.size > 0) await new Promise((r) => setTimeout(r, 200));
        }
      } finally {
        await tracker?.close().catch(() => {});
      }
      if (pending.size > 0) {
        failures.push(`no committed progress of ${[...pending].join(', ')} within ${timeoutMs} ms after the fault ended`);
        return null;
      }
      if (worst !== null) {
        recoveries.push(worst);
        log(`recovered: first commit of ${workers.join(', ')} ${Math.round(worst)} ms after the fault ended`);
      }
      return worst;
    },
    fail: (reason) => failures.push(reason),
  };

  let scoring: ScoringCheck | null = null;
  let loop: LoopCheck | null = null;
  let feeder: Awaited<ReturnType<typeof createFeeder>> | null = null;
  try {
    const boot = await trainBootstrap(spec, dir, createModelRegistry(env.cql));
    log(`bootstrap model v${boot.model.version} trained`);
    csvRows ??= readCsv(path.resolve(dir, spec.replay!.csv));
    const events = fc.events ?? 2400;
    plan = buildReplayPlan(spec, csvRows, { offset: spec.trainer.bootstrapRows, limit: events });
    totalEvents = plan.filter((a) => a.kind === 'event').length;
    const labelled = plan.filter((a) => a.kind === 'label').map((a) => (a.record as { event_id: string }).event_id);

    const t0 = Date.now();
    await Promise.all(fc.layout.filter((p) => p.atStart !== false).map((p) => proc(p.name).start()));
    await Promise.all(fc.layout.filter((p) => p.atStart !== false).map((p) => proc(p.name).waitReady()));
    log(`${fc.layout.filter((p) => p.atStart !== false).length} worker processes ready in ${Date.now() - t0} ms`);

    feeder = await createFeeder({ config: env.config, codec: env.codec, names: env.names, logger: env.logger });
    const rate = fc.eventsPerSecond ?? 40;
    const feeding: Promise<ReplayResult> = feeder.run(plan, rate, (n) => (sentEvents = n));
    feeding.catch(() => {});
    const injecting = fc.inject(ctx);
    const [sent] = await Promise.all([feeding, injecting]);
    sentEvents = sent.events;
    details.inputResent = feeder.resent();
    log(`fed ${sent.events} events, ${sent.features} feature updates, ${sent.labels} labels in ${Math.round((sent.finishedAt - sent.startedAt) / 1000)} s`);

    // Every group of the layout caught up with its inputs, or the run hangs: a finding in itself.
    const groups = [...new Set(fc.layout.flatMap((p) => p.workers))].map((w) => {
      const def = WORKERS.find((d) => d.name === w)!;
      return { w, groupId: `${env.names.prefix}loopline-${w}`, topics: def.input.topics.map((t: { topic: string }) => ({ topic: env.names.physical(t.topic), transactional: !EXTERNAL_INPUTS.has(t.topic) })) };
    });
    const drainStart = Date.now();
    const tracker = await createDrainTracker(env.kafka, [...new Set(groups.flatMap((g) => g.topics.map((t) => t.topic)))]);
    try {
      for (const g of groups) {
        await waitFor(`${g.w} to commit all its input`, () => tracker.caughtUp(env.admin, g.groupId, g.topics.map((t) => t.topic)), Math.max(30_000, 420_000 - (Date.now() - drainStart)), 500);
      }
    } finally {
      await tracker.close();
    }
    log(`drained ${Date.now() - drainStart} ms after the feed ended`);

    scoring = await checkScoring({ kafka: env.kafka, codec: env.codec, names: env.names, cql: env.cql }, sent.eventIds);
    loop = await checkLoop({ kafka: env.kafka, codec: env.codec, names: env.names }, labelled);
    await fc.verify?.(ctx, scoring);
  } catch (err) {
    failures.push(`run failed: ${(err as Error).message}`);
  } finally {
    await feeder?.close();
    const exits = await Promise.all([...procs.values()].map(async (p) => [p.name, await p.stop()] as const));
    details.exits = Object.fromEntries(exits.filter(([, e]) => e).map(([n, e]) => [n, e!.code ?? e!.signal]));
  }

  if (scoring) {
    if (scoring.lost > 0) failures.push(`${scoring.lost} events lost (no prediction on the topic or no log row)`);
    if (scoring.duplicates > 0) failures.push(`${scoring.duplicates} duplicate predictions or log rows`);
    if (scoring.deadLettered > 0) failures.push(`${scoring.deadLettered} records dead-lettered although every input was valid (a transient fault taken for a poison record?)`);
    if (scoring.inputDuplicates > 0) failures.push(`${scoring.inputDuplicates} events sent twice by the feeder: the run's input is not clean`);
  }
  if (loop) {
    if (loop.joinLost > 0) failures.push(`${loop.joinLost} labelled predictions never joined`);
    if (loop.joinDuplicates > 0) failures.push(`${loop.joinDuplicates} duplicate joins on predictions.labeled`);
    if (loop.byEventDuplicates > 0) failures.push(`${loop.byEventDuplicates} duplicates on predictions.by-event`);
    if (loop.reportDuplicates > 0) failures.push(`${loop.reportDuplicates} duplicate monitor reports`);
    if (loop.retrainDuplicates > 0) failures.push(`${loop.retrainDuplicates} duplicate retrain requests`);
    if (loop.candidateDuplicates > 0) failures.push(`${loop.candidateDuplicates} duplicate candidates`);
    if (loop.modelEventDuplicates > 0) failures.push(`${loop.modelEventDuplicates} duplicate model events`);
  }
  const restarts = Object.fromEntries([...procs.values()].map((p) => [p.name, p.restarts()]));
  details.crashExits = Object.fromEntries([...procs.values()].filter((p) => p.crashes.length > 0).map((p) => [p.name, p.crashes.map((c) => c.code ?? c.signal)]));
  const passed = failures.length === 0;
  if (passed && !o.keepData) await env.cleanup().catch(() => {});
  else {
    details.keptData = { prefix: env.config.kafka.topicPrefix, keyspace: env.config.cassandra.keyspace };
    await env.admin.disconnect().catch(() => {});
    await env.cql.shutdown().catch(() => {});
  }
  return {
    name: fc.name,
    seed,
    in: scoring?.in ?? sentEvents,
    logged: scoring?.logged ?? 0,
    deadLettered: scoring?.deadLettered ?? 0,
    lost: scoring?.lost ?? totalEvents,
    duplicates: (scoring?.duplicates ?? 0) + (loop ? loop.joinDuplicates + loop.byEventDuplicates + loop.reportDuplicates + loop.retrainDuplicates + loop.candidateDuplicates + loop.modelEventDuplicates : 0),
    recoveryMs: recoveries.length > 0 ? Math.round(Math.max(...recoveries)) : null,
    passed,
    failures,
    wallMs: Date.now() - started,
    scoring,
    loop,
    restarts,
    details,
  };
}

export function caseId(): string {
  return crypto.randomBytes(3).toString('hex');
}
