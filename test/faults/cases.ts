/**
 * The fault cases. Each names its fault, the process layout it runs on, the
 * workers whose recovery it measures, and how it strikes: at moments drawn
 * from the case's seed while the replay is flowing.
 */
import type { ServiceName } from '../../infra/local-stack/services.js';
import { readToEnd } from '../support/run-check.js';
import { metricValue } from '../support/worker-processes.js';
import { waitFor } from '../support/fixtures.js';
import { LOOP_LAYOUT, type CaseContext, type FaultCase, type ProcessSpec } from './harness.js';

const SCORING = ['preprocessor', 'scorer'];
const ALL_STREAMING = ['feature-writer', 'preprocessor', 'scorer', 'joiner', 'drift-monitor'];

/** SIGKILL a process twice (as Kafka's TransactionsTest bounces its copiers), each time while `midChunkOf` has uncommitted input. */
function killCase(process: string, midChunkOf: string[], watch: string[]): FaultCase {
  return {
    name: `kill-9:${process}`,
    summary: `SIGKILL of the ${process} process (${LOOP_LAYOUT.find((p) => p.name === process)!.workers.join(', ')}) twice, each time while ${midChunkOf.join(' or ')} holds uncommitted input; the supervisor restarts it at once`,
    layout: LOOP_LAYOUT,
    watch,
    async inject(ctx) {
      const kills: Array<Record<string, unknown>> = [];
      const windows = [[0.15, 0.35], [0.5, 0.7]] as const;
      for (const [lo, hi] of windows) {
        await ctx.atShare(ctx.between(lo, hi));
        let mid: string | null = null;
        for (const w of midChunkOf) {
          if (await ctx.midChunk(w, midChunkOf.length > 1 ? 20_000 : 60_000)) {
            mid = w;
            break;
          }
        }
        const jitter = Math.round(ctx.between(0, 200));
        await new Promise((r) => setTimeout(r, jitter));
        const p = ctx.proc(process);
        const pid = p.pid();
        const at = Date.now();
        p.signal('SIGKILL');
        ctx.log(`SIGKILL ${process} (pid ${pid}) ${mid ? `while ${mid} was mid-chunk` : 'at a random moment (no uncommitted input seen)'}, +${jitter} ms`);
        await waitFor(`${process} restarted`, () => p.pid() !== null && p.pid() !== pid, 30_000, 50);
        const recoveryMs = await ctx.recovered(at);
        kills.push({ at, midChunk: mid, recoveryMs });
      }
      ctx.details.kills = kills;
    },
  };
}

/** The control process's builder and evaluator only work on the rare retrain request: strike while they hold one. */
function killControlCase(): FaultCase {
  return {
    name: 'kill-9:control',
    summary: 'SIGKILL of the control process (retrain-trigger, model-builder, evaluator): once while the builder trains on a retrain request, once while the evaluator judges a candidate (or at a random moment if none comes)',
    layout: LOOP_LAYOUT,
    watch: ['retrain-trigger'],
    events: 3000,
    async inject(ctx) {
      const kills: Array<Record<string, unknown>> = [];
      for (const [worker, lo, hi] of [['model-builder', 0.2, 0.4], ['evaluator', 0.45, 0.65]] as const) {
        await ctx.atShare(ctx.between(lo, hi));
        const mid = await ctx.midChunk(worker, 90_000);
        const jitter = Math.round(ctx.between(0, 500));
        await new Promise((r) => setTimeout(r, jitter));
        const p = ctx.proc('control');
        const pid = p.pid();
        const at = Date.now();
        p.signal('SIGKILL');
        ctx.log(`SIGKILL control (pid ${pid}) ${mid ? `while ${worker} was mid-chunk` : `at a random moment (${worker} had no input within 90 s)`}, +${jitter} ms`);
        await waitFor('control restarted', () => p.pid() !== null && p.pid() !== pid, 30_000, 50);
        kills.push({ at, target: worker, midChunk: mid, recoveryMs: await ctx.recovered(at) });
      }
      ctx.details.kills = kills;
    },
  };
}

function brokerRestart(sig: 'SIGTERM' | 'SIGKILL'): FaultCase {
  return {
    name: `kafka-${sig.toLowerCase()}-restart`,
    summary: `${sig} of the Kafka broker mid-stream, then a start on the same data; recovery is from the broker answering again`,
    layout: LOOP_LAYOUT,
    watch: ALL_STREAMING,
    async inject(ctx) {
      await ctx.atShare(ctx.between(0.25, 0.45));
      const began = Date.now();
      await ctx.stack.stop('kafka', sig);
      const stoppedMs = Date.now() - began;
      await ctx.stack.start();
      const end = Date.now();
      ctx.details.broker = { stoppedMs, downMs: end - began };
      ctx.log(`broker ${sig}: down ${stoppedMs} ms to exit, back after ${end - began} ms`);
      await ctx.recovered(end);
    },
  };
}

function pauseCase(service: ServiceName, ms: number, watch: string[]): FaultCase {
  return {
    name: `${service}-sigstop-${ms / 1000}s`,
    summary: `SIGSTOP of ${service} for ${ms / 1000} s mid-stream, then SIGCONT`,
    layout: LOOP_LAYOUT,
    watch,
    events: 3000,
    async inject(ctx) {
      await ctx.atShare(ctx.between(0.15, 0.3));
      ctx.stack.pause(service);
      const began = Date.now();
      await new Promise((r) => setTimeout(r, ms));
      ctx.stack.resume(service);
      const end = Date.now();
      ctx.log(`${service} paused ${end - began} ms`);
      await ctx.recovered(end);
    },
  };
}

function cassandraKill(): FaultCase {
  return {
    name: 'cassandra-kill-restart',
    summary: 'SIGKILL of Cassandra mid-stream, then a start on the same data (commit log replay)',
    layout: LOOP_LAYOUT,
    watch: ALL_STREAMING,
    events: 3000,
    async inject(ctx) {
      await ctx.atShare(ctx.between(0.2, 0.4));
      const began = Date.now();
      await ctx.stack.stop('cassandra', 'SIGKILL');
      await ctx.stack.start();
      const end = Date.now();
      ctx.details.cassandraDownMs = end - began;
      ctx.log(`cassandra killed and back after ${end - began} ms`);
      await ctx.recovered(end);
    },
  };
}

function registryDown(ms: number): FaultCase {
  return {
    name: `registry-down-${ms / 1000}s`,
    summary: `the schema registry stopped (SIGTERM) for ${ms / 1000} s mid-stream, then started again (its start is part of the outage); ${ms / 6000} s in, the scorer process is SIGKILLed so that one worker must start while the registry is away`,
    layout: LOOP_LAYOUT,
    watch: ALL_STREAMING,
    // Long enough that events still flow after the registry is back, even if its start takes a minute.
    events: 4400,
    async inject(ctx) {
      await ctx.atShare(ctx.between(0.1, 0.2));
      const began = Date.now();
      await ctx.stack.stop('schema-registry', 'SIGTERM');
      await new Promise((r) => setTimeout(r, ms / 6));
      const scorer = ctx.proc('scorer');
      scorer.signal('SIGKILL');
      ctx.log('registry down; scorer SIGKILLed while it is');
      await new Promise((r) => setTimeout(r, Math.max(0, ms - (Date.now() - began))));
      await ctx.stack.start();
      const end = Date.now();
      ctx.details.registryDownMs = end - began;
      ctx.details.scorerCrashesWhileDown = scorer.crashes.filter((c) => c.at >= began && c.at <= end).length;
      ctx.log(`registry back after ${end - began} ms; scorer exits meanwhile: ${JSON.stringify(scorer.crashes.map((c) => c.code ?? c.signal))}`);
      await ctx.recovered(end);
    },
  };
}

const SCORER_A_B: ProcessSpec[] = [
  LOOP_LAYOUT[0]!,
  { name: 'scorer-a', workers: ['scorer'], sessionTimeoutMs: 6000 },
  { name: 'scorer-b', workers: ['scorer'], sessionTimeoutMs: 6000 },
  LOOP_LAYOUT[2]!,
  LOOP_LAYOUT[3]!,
];

async function assignedPartitions(ctx: CaseContext, proc: string): Promise<number[]> {
  const h = await ctx.proc(proc).health();
  return (h?.workers.find((w) => w.name === 'scorer')?.assigned ?? []).flatMap((a) => a.partitions);
}

function zombieCase(): FaultCase {
  return {
    name: 'zombie-scorer',
    summary: 'two scorer members (session timeout 6 s); twice, one is SIGSTOPped mid-chunk and SIGCONTed only once it is past its session timeout, the group has rebalanced and the other member has committed on its partitions: a zombie resuming with a chunk in hand',
    layout: SCORER_A_B,
    watch: ['scorer'],
    events: 3000,
    async inject(ctx) {
      const rounds: Array<Record<string, unknown>> = [];
      for (const [zombie, other, lo, hi] of [['scorer-a', 'scorer-b', 0.15, 0.3], ['scorer-b', 'scorer-a', 0.55, 0.7]] as const) {
        await ctx.atShare(ctx.between(lo, hi));
        // Both members share the partitions (the previous round's rebalances are over).
        await waitFor('both scorers to own partitions', async () => {
          const [a, b] = await Promise.all([assignedPartitions(ctx, zombie), assignedPartitions(ctx, other)]);
          return a.length > 0 && b.length > 0 && a.length + b.length === 6;
        }, 120_000, 200);
        const parts = await assignedPartitions(ctx, zombie);
        await ctx.midChunk('scorer', 20_000);
        await new Promise((r) => setTimeout(r, Math.round(ctx.between(0, 150))));
        const stopAt = Date.now();
        ctx.proc(zombie).signal('SIGSTOP');
        ctx.log(`SIGSTOP ${zombie} (partitions ${parts.join(',')})`);
        await waitFor(`${other} to own every partition`, async () => (await assignedPartitions(ctx, other)).length === 6, 120_000, 200);
        const takeoverAt = Date.now();
        const takeover = await ctx.recovered(takeoverAt, ['scorer'], 120_000);
        await waitFor(`${zombie} stalled past its session timeout`, () => Date.now() - stopAt > 7000, 30_000, 100);
        ctx.proc(zombie).signal('SIGCONT');
        const contAt = Date.now();
        ctx.log(`SIGCONT ${zombie} after ${contAt - stopAt} ms (group rebalanced ${takeoverAt - stopAt} ms after the stop)`);
        rounds.push({ zombie, partitions: parts, stoppedAt: stopAt, resumedAt: contAt, rebalancedAfterMs: takeoverAt - stopAt, takeoverCommitMs: takeover, recoveryMs: await ctx.recovered(contAt, ['scorer']) });
      }
      ctx.details.zombies = rounds;
    },
    async verify(ctx, scoring) {
      // What a zombie could still do after SIGCONT: write prediction_log rows after the new owner's, before its fenced commit failed.
      ctx.details.zombieLogMismatches = scoring.logMismatches;
      ctx.details.zombieLogMismatchSamples = scoring.logMismatchSamples;
      const fenced: Record<string, number | null> = {};
      for (const name of ['scorer-a', 'scorer-b']) {
        const text = await ctx.proc(name).metrics();
        fenced[name] = text ? metricValue(text, 'loopline_worker_tasks_fenced_total', { worker: 'scorer' }) : null;
      }
      ctx.details.fencedScorerTasks = fenced;
    },
  };
}

function rebalanceCase(): FaultCase {
  const scorers = ['scorer-a', 'scorer-b', 'scorer-c'];
  return {
    name: 'rebalance-3-members',
    summary: 'three scorer members joining and leaving under load: b joins, c joins, a leaves (SIGTERM), a rejoins, c is SIGKILLed, b leaves',
    layout: [LOOP_LAYOUT[0]!, ...scorers.map((name) => ({ name, workers: ['scorer'], sessionTimeoutMs: 6000, atStart: name === 'scorer-a' })), LOOP_LAYOUT[2]!, LOOP_LAYOUT[3]!],
    watch: ['scorer'],
    events: 3000,
    async inject(ctx) {
      const steps: Array<[number, string, (c: CaseContext) => Promise<void>]> = [
        [0.1, 'b joins', async (c) => void (await c.startProcess('scorer-b'))],
        [0.25, 'c joins', async (c) => void (await c.startProcess('scorer-c'))],
        [0.4, 'a leaves (SIGTERM)', async (c) => void (await c.proc('scorer-a').stop())],
        [0.55, 'a rejoins', async (c) => void (await c.startProcess('scorer-a'))],
        [0.7, 'c SIGKILLed (not restarted until the end)', async (c) => {
          await c.midChunk('scorer', 10_000);
          await c.proc('scorer-c').stop(0, 'SIGKILL'); // a crash the supervisor leaves down: the group must move c's partitions
        }],
        [0.85, 'b leaves (SIGTERM)', async (c) => void (await c.proc('scorer-b').stop())],
      ];
      const log: Array<Record<string, unknown>> = [];
      for (const [share, what, act] of steps) {
        await ctx.atShare(share + ctx.between(-0.03, 0.03));
        const at = Date.now();
        await act(ctx);
        ctx.log(what);
        log.push({ what, recoveryMs: await ctx.recovered(Date.now(), ['scorer'], 120_000), tookMs: Date.now() - at });
      }
      ctx.details.steps = log;
    },
  };
}

function drainCase(): FaultCase {
  return {
    name: 'sigterm-drain',
    summary: 'SIGTERM of every worker process mid-stream; each must exit 0 within its 30 s drain, leaving no open transaction, with what it processed committed (outputs of exactly the committed inputs); then all restart',
    layout: LOOP_LAYOUT,
    watch: ALL_STREAMING,
    async inject(ctx) {
      await ctx.atShare(ctx.between(0.3, 0.5));
      const began = Date.now();
      const exits = await Promise.all([...ctx.procs.values()].map(async (p) => ({ name: p.name, exit: await p.stop(45_000), ms: Date.now() - began })));
      ctx.details.drains = exits.map((e) => ({ name: e.name, code: e.exit?.code ?? null, signal: e.exit?.signal ?? null, ms: e.ms }));
      for (const e of exits) if (e.exit?.code !== 0) ctx.fail(`${e.name} did not drain cleanly: exit ${e.exit?.code ?? e.exit?.signal}`);
      // With every worker stopped: the scorer's outputs are exactly the predictions of the vectors below its committed offsets.
      const { env } = ctx;
      const vectors = await readToEnd(env.kafka, [env.names.physical('features.vectors')]);
      const committed = await env.admin.fetchOffsets({ groupId: `${env.names.prefix}loopline-scorer`, topics: [env.names.physical('features.vectors')] });
      const at = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
      const consumedIds = new Set<string>();
      for (const v of vectors) {
        if (Number(v.offset) >= (at.get(v.partition) ?? 0)) continue;
        const d = await env.codec.decode('FeatureVector', v.value);
        if (d.ok) consumedIds.add(d.value.event_id);
      }
      const predicted = new Set<string>();
      for (const p of await readToEnd(env.kafka, [env.names.physical('predictions')])) {
        const d = await env.codec.decode('Prediction', p.value);
        if (d.ok) predicted.add(d.value.event_id);
      }
      const uncommittedOutputs = [...predicted].filter((id) => !consumedIds.has(id)).length;
      const committedWithoutOutput = [...consumedIds].filter((id) => !predicted.has(id)).length;
      ctx.details.drainCheck = { committedInputs: consumedIds.size, outputs: predicted.size, uncommittedOutputs, committedWithoutOutput };
      if (uncommittedOutputs > 0 || committedWithoutOutput > 0) ctx.fail(`after the drain, scorer outputs and committed inputs differ: ${uncommittedOutputs} outputs of uncommitted input, ${committedWithoutOutput} committed inputs without output`);
      ctx.log(`drained in ${Math.max(...exits.map((e) => e.ms))} ms; ${consumedIds.size} vectors committed, ${predicted.size} predictions`);
      await Promise.all([...ctx.procs.values()].map((p) => p.start()));
      const restartedAt = Date.now();
      await Promise.all([...ctx.procs.values()].map((p) => p.waitReady()));
      await ctx.recovered(restartedAt);
    },
  };
}

/**
 * The cluster (`--cluster`): one of the three brokers and one of the three
 * Cassandra nodes, drawn from the seed, SIGKILLed at the same moment. With
 * replication 3, min.insync.replicas 2 and LOCAL_QUORUM the loop must go on
 * with two of each (partition leaders move to the live brokers, the driver
 * routes around the dead node); later both start again on their data and
 * catch up (the broker's replicas from the leaders, the node from hints).
 */
function clusterNodeKill(): FaultCase {
  return {
    name: 'cluster-kill-broker-and-node',
    summary: 'SIGKILL of one of three Kafka brokers and one of three Cassandra nodes at the same moment mid-stream (topics replicated 3 with min.insync.replicas 2, keyspace replicated 3 at LOCAL_QUORUM); the loop runs on two of each, then both start again on their data',
    layout: LOOP_LAYOUT,
    watch: ALL_STREAMING,
    events: 3000,
    async inject(ctx) {
      const pick = () => 1 + Math.min(2, Math.floor(ctx.between(0, 3)));
      const broker: ServiceName = `kafka-${pick()}`;
      const node: ServiceName = `cassandra-${pick()}`;
      await ctx.atShare(ctx.between(0.2, 0.35));
      const killedAt = Date.now();
      await Promise.all([ctx.stack.stop(broker, 'SIGKILL'), ctx.stack.stop(node, 'SIGKILL')]);
      ctx.log(`SIGKILL ${broker} and ${node}: the loop carries on with two of each`);
      const degradedMs = await ctx.recovered(killedAt);
      await ctx.atShare(ctx.between(0.55, 0.7));
      const restartAt = Date.now();
      await ctx.stack.start();
      const backAt = Date.now();
      ctx.details.cluster = { broker, node, degradedRecoveryMs: degradedMs, downMs: backAt - killedAt, restartMs: backAt - restartAt };
      ctx.log(`${broker} and ${node} down ${backAt - killedAt} ms (their start took ${backAt - restartAt} ms)`);
      await ctx.recovered(backAt);
    },
  };
}

/** A run with no fault: the reference figures (and a check of the harness itself). */
function baseline(): FaultCase {
  return { name: 'baseline', summary: 'no fault: the reference run', layout: LOOP_LAYOUT, watch: SCORING, async inject() {} };
}

export const CASES: FaultCase[] = [
  baseline(),
  killCase('ingest', ['preprocessor', 'feature-writer'], ['feature-writer', 'preprocessor']),
  killCase('scorer', ['scorer'], ['scorer']),
  killCase('join-monitor', ['joiner', 'drift-monitor'], ['joiner', 'drift-monitor']),
  killControlCase(),
  brokerRestart('SIGTERM'),
  brokerRestart('SIGKILL'),
  pauseCase('cassandra', 30_000, ALL_STREAMING),
  cassandraKill(),
  registryDown(30_000),
  zombieCase(),
  rebalanceCase(),
  drainCase(),
];

/** The cases of `npm run test:faults -- --cluster`, on three Kafka and three Cassandra nodes. */
export const CLUSTER_CASES: FaultCase[] = [clusterNodeKill()];
