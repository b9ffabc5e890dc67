/**
 * The one consume-process-produce loop every Loopline worker runs.
 *
 *   const worker = createWorker(handler, { kafka, codec, names, logger, metrics }, options);
 *   await worker.start();            // joins the group, runs until stop()
 *   await worker.stop();             // drains: commits what is in hand, closes
 *
 * Tasks. The unit of work is a task: one input partition, or, for a
 * co-partitioned input (the joiner reads labels and predictions keyed by event
 * id), partition i of every input topic. A task's chunks are processed one at
 * a time, in offset order; different tasks run concurrently. Co-partitioned
 * inputs are assigned with `copartitionedAssigner`, so one member owns task i.
 *
 * Delivery, per task:
 * 1. decode each record; bytes that are not valid Avro become dead letters;
 * 2. `handler.process(chunk, ctx)`: pure logic plus idempotent side effects
 *    (Cassandra rows keyed by record ids), returning outputs and dead letters;
 * 3. the outputs and dead letters go into the task's open Kafka transaction;
 *    the transaction commits, with the input offsets (`sendOffsets`, last + 1),
 *    once `commitIntervalMs` has passed since it began, or it holds
 *    `transactionMaxRecords` records, or the fetched batch is done — so a quiet
 *    partition commits at once and a busy one commits larger transactions.
 * A crash before a commit replays from the committed offset: side effects
 * rewrite identical rows, stateful handlers re-emit what they emitted
 * (streams/state.ts), and the aborted transaction's outputs are never seen by
 * read_committed readers.
 *
 * Fencing. kafkajs 2.2.4 lacks KIP-447, so each task has its own transactional
 * producer with the stable id `<group>-<topic>-<partition>` (`<group>-task-<i>`
 * for co-partitioned inputs). On every assignment the runtime initialises the
 * producer of each assigned task — which fences any previous owner and
 * completes or aborts its open transaction — and only then reads the group's
 * committed offsets, so records a previous owner committed just before the
 * rebalance are skipped, not processed twice. (kafkajs sends that
 * InitProducerId at a producer's first transaction(), not at connect(): the
 * runtime opens and aborts an empty transaction to fence before it reads;
 * test/integration/fencing.test.ts pins this.) A fenced producer (another member
 * took the task) stops that task's work and pauses it until the next
 * assignment. A commit that fails ambiguously (timeout, broken connection) is
 * never resent blindly: the task is re-fenced and its committed offset re-read,
 * and only what did not commit is processed again.
 *
 * Errors: a retriable error is retried with backoff inside the retry budget and
 * never dead-letters a record; once the budget is spent, or on a FatalError,
 * the worker reports `failed` (run exits for its supervisor). Any other error is
 * narrowed down (by bisection) to the records that cause it, which go to
 * `<topic>.dlq` with the original bytes and `__connect.errors.*` headers.
 */
import crypto from 'node:crypto';
import type { Admin, Consumer, EachBatchPayload, IHeaders, Kafka, KafkaMessage, Producer, Transaction } from 'kafkajs';
import type { RecordName } from '../schemas/catalogue.js';
import type { Codec, RecordTypes } from '../schemas/codec.js';
import { copartitionedAssigner } from './assigner.js';
import {
  classifyKafkaError, errorCode, FatalError, FencedError, isAmbiguous, isFatal, isRetriable, LooplineError, PoisonRecordError, TransientError,
  type DeadLetterStage,
} from '../core/errors.js';
import { patchKafkajs, producerIdentity } from './kafkajs-patch.js';
import type { Logger } from './logger.js';
import type { WorkerMetrics } from './metrics.js';
import { DEFAULT_RETRY, RetryState, sleep, type RetryPolicy } from './retry.js';
import { planSends } from './batch-bytes.js';
import { decodeOptionsFor, topicSpec, type TopicName, type TopicNames } from './topics.js';

export interface InputRecord<V> {
  /** Logical topic name (no prefix). */
  topic: string;
  /** The record type the value was decoded as. */
  record: RecordName;
  partition: number;
  offset: string;
  key: string | null;
  /** Broker timestamp (ms) of the input message. */
  timestamp: number;
  headers: IHeaders;
  value: V;
}

export interface OutputRecord<N extends RecordName = RecordName> {
  /** Logical topic name from the catalogue. */
  topic: TopicName;
  record: N;
  key: string;
  value: RecordTypes[N];
}

export interface RecordFailure {
  /** Index into the records given to `process`. */
  index: number;
  stage: DeadLetterStage;
  code: string;
  message: string;
  /** Which decode limit a record broke (LIMIT_EXCEEDED, TOO_LARGE, BAD_BODY). */
  limit?: string;
}

export interface ProcessResult {
  outputs: OutputRecord[];
  deadLetters?: RecordFailure[];
}

/** What `process` may ask of the runtime while it works on a chunk. */
export interface ProcessContext {
  /** The task's partition number. */
  partition: number;
  /** The group's committed offset (the next to read) of a logical topic-partition of this task, or null if none. */
  committed(topic: string, partition: number): bigint | null;
  /**
   * Keeps the group membership during long work (kafkajs heartbeats only when
   * asked). Throws when the group is rebalancing: stop the work and let the
   * error propagate, the runtime hands the task back.
   */
  heartbeat(): Promise<void>;
  /** Aborted when the task is revoked or the worker stops. */
  signal: AbortSignal;
  /**
   * Changes whenever state a worker kept in memory since an earlier chunk may no longer be what its
   * store holds (streams/state.ts): a new incarnation of the task, a re-fence after a failure, or no
   * confirmation of ownership (a commit or a fencing) for half the session timeout.
   */
  readonly stateEpoch: number;
}

export interface WorkerInput<N extends RecordName> {
  /** Logical input topics and the record type(s) each carries (several for a multi-type topic such as monitor.reports). */
  topics: ReadonlyArray<{ topic: TopicName; record: N | readonly N[] }>;
  /** Partition i of every input topic forms one task owned by one member (a co-partitioned join). */
  copartitioned?: boolean;
}

/** A broadcast subscription: every instance sees every record from now on; no offsets are kept (control.models). */
export interface Broadcast {
  topic: TopicName;
  record: RecordName;
  onRecord(value: unknown): Promise<void>;
}

/** What a worker is to the runtime: its input and its logic. Only the runtime touches kafkajs. */
export interface WorkerHandler<N extends RecordName> {
  /** Worker name: consumer group suffix, metrics label, transactional id part. */
  name: string;
  input: WorkerInput<N>;
  /** Processes decoded records of one task in offset order. Throw a retriable error to retry, a PoisonRecordError to dead-letter. */
  process(records: Array<InputRecord<RecordTypes[N]>>, ctx: ProcessContext): Promise<ProcessResult>;
  /** Called once before consuming starts (load models, warm caches). */
  open?(): Promise<void>;
  /** Called after the consumer stopped. */
  close?(): Promise<void>;
  broadcasts?: Broadcast[];
}

/** Runtime options; every field has a default (see `resolveWorkerOptions`). */
export interface WorkerOptions {
  /** Consumer group id; default `<prefix>loopline-<worker>`. */
  groupId?: string;
  /** Records per `process` call. Default 500. */
  batchMax?: number;
  /** A transaction stays open at most this long while more records of the fetched batch wait (Kafka Streams' commit.interval.ms). Default 100. */
  commitIntervalMs?: number;
  /** A transaction commits once it holds this many input records. Default 5000. */
  transactionMaxRecords?: number;
  /** Tasks processed at once by this member. Default 3. */
  partitionsConsumedConcurrently?: number;
  /** Start from the earliest offset when the group has none. Default true. */
  fromBeginning?: boolean;
  /** How soon a silent member's partitions move. Default 30 000. */
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Kafka transaction timeout. Default 60 000 ms. */
  transactionTimeoutMs?: number;
  /** Encoded outputs larger than this are a record failure (OUTPUT_TOO_LARGE). Default 900 000 bytes (the broker takes 1 MiB). */
  maxMessageBytes?: number;
  /** Outputs of one transaction go out in sends of at most this many bytes (each partition's batch stays under the broker's 1 MiB). Default 900 000. */
  maxSendBytes?: number;
  /** Largest input record accepted per logical topic (bytes); larger ones are dead-lettered (TOO_LARGE) before decoding. Default 1 MiB. */
  maxRecordBytes?: number;
}

export type ResolvedWorkerOptions = Required<Omit<WorkerOptions, 'groupId' | 'retry'>> & { retry: RetryPolicy };

export function resolveWorkerOptions(o: WorkerOptions = {}): ResolvedWorkerOptions {
  return {
    batchMax: o.batchMax ?? 500,
    commitIntervalMs: o.commitIntervalMs ?? 100,
    transactionMaxRecords: o.transactionMaxRecords ?? 5000,
    partitionsConsumedConcurrently: o.partitionsConsumedConcurrently ?? 3,
    fromBeginning: o.fromBeginning ?? true,
    sessionTimeoutMs: o.sessionTimeoutMs ?? 30_000,
    heartbeatIntervalMs: o.heartbeatIntervalMs ?? 3000,
    retry: { ...DEFAULT_RETRY, ...o.retry },
    transactionTimeoutMs: o.transactionTimeoutMs ?? 60_000,
    maxMessageBytes: o.maxMessageBytes ?? 900_000,
    maxSendBytes: o.maxSendBytes ?? 900_000,
    maxRecordBytes: o.maxRecordBytes ?? 1024 * 1024,
  };
}

export interface WorkerDeps {
  kafka: Kafka;
  codec: Codec;
  names: TopicNames;
  logger: Logger;
  metrics: WorkerMetrics;
}

export type WorkerState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface WorkerHealth {
  name: string;
  state: WorkerState;
  /** ms since epoch of the last committed transaction, or null. */
  lastProgressAt: number | null;
  assigned: Array<{ topic: string; partitions: number[] }>;
  /** Records behind the high watermark, by `topic/partition`, as of the last commit. */
  lag: Record<string, number>;
  /** Committed input records (processed or dead-lettered) and committed outputs, by logical topic, since start. */
  counts: { in: Record<string, number>; out: Record<string, number> };
  error: string | null;
}

export interface Worker {
  readonly name: string;
  readonly groupId: string;
  /** Physical input topics. */
  readonly topics: readonly string[];
  start(): Promise<void>;
  stop(): Promise<void>;
  health(): WorkerHealth;
}

const WORKER_VERSION = '0.2.0';

interface Task {
  id: string;
  partition: number;
  /** Physical topic → committed next offset, read after fencing. */
  committed: Map<string, bigint>;
  producer: Producer | null;
  /** Fencing + committed offsets; awaited before the task's first chunk. */
  ready: Promise<void>;
  lock: Promise<void>;
  fenced: boolean;
  abort: AbortController;
  retry: RetryState;
  /** See ProcessContext.stateEpoch; `confirmedAt`: the last commit or fencing (ms). */
  epoch: number;
  confirmedAt: number;
}

let epochs = 0;

class Rebalancing extends Error {}

export function createWorker<N extends RecordName>(handler: WorkerHandler<N>, deps: WorkerDeps, options: WorkerOptions = {}): Worker {
  patchKafkajs();
  const { kafka, codec, names, metrics } = deps;
  const o = resolveWorkerOptions(options);
  const logger = deps.logger.child({ worker: handler.name });
  const groupId = options.groupId ?? `${names.prefix}loopline-${handler.name}`;
  // Decode options once per input: the topic's subjects as the schema-id allow-list, its limits, the byte cap.
  const inputs = handler.input.topics.map((t) => ({ ...t, physical: names.physical(t.topic), spec: topicSpec(t.topic), decode: decodeOptionsFor(names, t.topic, { maxRecordBytes: o.maxRecordBytes }) }));
  const byPhysical = new Map(inputs.map((i) => [i.physical, i]));
  const copartitioned = handler.input.copartitioned === true && inputs.length > 1;

  let consumer: Consumer | null = null;
  let admin: Admin | null = null;
  const broadcastConsumers: Consumer[] = [];
  const tasks = new Map<string, Task>();
  /**
   * The newest offset this process committed per `<topic>/<partition>`, across task incarnations. Committed
   * offsets only move forward in consume-transform-produce, so a read below it (seen: none at all, right after
   * a broker's SIGKILL and restart, RELIABILITY.md 12) is not trusted; the read that reopens a task uses the
   * higher of the two.
   */
  const ownCommits = new Map<string, bigint>();
  let state: WorkerState = 'idle';
  let lastProgressAt: number | null = null;
  let lastError: string | null = null;
  let assigned: WorkerHealth['assigned'] = [];
  const lag: Record<string, number> = {};
  const counts = { in: {} as Record<string, number>, out: {} as Record<string, number> };

  const taskId = (physicalTopic: string, partition: number) => (copartitioned ? `task-${partition}` : `${physicalTopic}-${partition}`);

  function fail(err: unknown, why: string): void {
    if (state === 'failed') return;
    state = 'failed';
    lastError = `${why}: ${(err as Error)?.message ?? String(err)}`;
    logger.error({ err, why }, 'worker failed and stops processing; its supervisor should restart it');
    for (const t of tasks.values()) t.abort.abort();
  }

  /** Initialises the task's producer (fencing its previous owner), then reads the committed offsets it covers. */
  async function openTask(t: Task, topics: string[]): Promise<void> {
    const producer = kafka.producer({
      transactionalId: `${groupId}-${t.id}`,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: o.transactionTimeoutMs,
      retry: { initialRetryTime: 10, maxRetryTime: 1000, retries: 20 },
    });
    try {
      await producer.connect();
      // The fence. kafkajs's connect() asks only for an idempotent producer id; the transactional
      // InitProducerId (which bumps the epoch of this task's transactional id, fencing any previous
      // owner, and settles its open transaction) is sent at the first transaction(). Force it here,
      // before the offsets are read: otherwise a previous owner could still commit after the read.
      // An abort with nothing in the transaction sends nothing.
      const fence = await producer.transaction();
      await fence.abort();
    } catch (err) {
      await producer.disconnect().catch(() => {});
      throw classifyKafkaError(err, `initialising the transactional producer of ${t.id}`);
    }
    // The task gets its producer only with fresh committed offsets: a task whose offsets could not be
    // read must open again (fence, read), not process from offsets a previous owner has moved past.
    try {
      await readCommitted(t, topics);
    } catch (err) {
      await producer.disconnect().catch(() => {});
      throw err;
    }
    t.producer = producer;
    t.epoch = ++epochs;
    t.confirmedAt = Date.now();
    metrics.fencings.inc({ worker: handler.name });
    logger.info({ task: t.id, producer: producerIdentity(`${groupId}-${t.id}`), committed: Object.fromEntries([...t.committed].map(([k, v]) => [k, v.toString()])) }, 'task opened: previous owner fenced, committed offsets read');
  }

  async function readCommitted(t: Task, topics: string[]): Promise<void> {
    let got: Awaited<ReturnType<Admin['fetchOffsets']>>;
    try {
      got = await admin!.fetchOffsets({ groupId, topics });
    } catch (err) {
      throw classifyKafkaError(err, `reading the committed offsets of ${t.id}`);
    }
    for (const topic of topics) {
      // kafkajs asks only for the partitions its cached metadata lists: a partition missing from the
      // answer was not asked about, which is not the broker saying "no committed offset" (-1).
      const p = got.find((x) => x.topic === topic)?.partitions.find((x) => x.partition === t.partition);
      if (!p) throw new TransientError(`reading the committed offsets of ${t.id}: the answer has no entry for ${topic}-${t.partition} (metadata without that partition); asking again`);
      const read = Number(p.offset) >= 0 ? BigInt(p.offset) : null;
      const own = ownCommits.get(`${topic}/${t.partition}`) ?? null;
      if (own !== null && (read === null || read < own)) {
        logger.warn({ task: t.id, topic, read: read?.toString() ?? 'none', committedHere: own.toString() }, 'the broker answered a committed offset below one this process committed; going on from the higher');
        metrics.offsetRegressions.inc({ worker: handler.name });
        t.committed.set(topic, own);
      } else if (read !== null) t.committed.set(topic, read);
    }
  }

  async function closeTask(t: Task): Promise<void> {
    t.abort.abort();
    const p = t.producer;
    t.producer = null;
    await p?.disconnect().catch(() => {});
  }

  function newTask(id: string, partition: number, topics: string[]): Task {
    const t: Task = { id, partition, committed: new Map(), producer: null, ready: Promise.resolve(), lock: Promise.resolve(), fenced: false, abort: new AbortController(), retry: new RetryState(o.retry), epoch: ++epochs, confirmedAt: 0 };
    t.ready = openTask(t, topics);
    t.ready.catch((err: unknown) => logger.warn({ err, task: id }, 'opening task failed; retried on its first batch'));
    return t;
  }

  /** A rebalance finished: every task is re-opened (re-fenced, offsets re-read); revoked ones are closed. */
  async function onAssignment(memberAssignment: Record<string, number[]>): Promise<void> {
    const wanted = new Map<string, { partition: number; topics: string[] }>();
    for (const [topic, partitions] of Object.entries(memberAssignment)) {
      for (const p of partitions) {
        const id = taskId(topic, p);
        const w = wanted.get(id) ?? { partition: p, topics: [] };
        w.topics.push(topic);
        wanted.set(id, w);
      }
    }
    const old = [...tasks.values()];
    tasks.clear();
    // New tasks first (their InitProducerId fences the old producers anyway), so no batch finds its task missing.
    for (const [id, w] of wanted) tasks.set(id, newTask(id, w.partition, w.topics));
    const paused = consumer?.paused() ?? [];
    if (paused.length > 0) consumer?.resume(paused);
    await Promise.all(old.map(closeTask));
  }

  /** Re-fences a task after an ambiguous or failed transaction and re-reads what committed. */
  async function recoverTask(t: Task, topics: string[]): Promise<void> {
    const p = t.producer;
    t.producer = null;
    await p?.disconnect().catch(() => {});
    t.ready = openTask(t, topics);
    await t.ready;
  }

  function deadLetterMessage(physicalTopic: string, m: KafkaMessage, partition: number, f: Omit<RecordFailure, 'index'>): { key: Buffer | null; value: Buffer | null; headers: IHeaders } {
    const headers: IHeaders = {
      ...m.headers,
      '__connect.errors.topic': physicalTopic,
      '__connect.errors.partition': String(partition),
      '__connect.errors.offset': m.offset,
      '__connect.errors.stage': f.stage,
      '__connect.errors.class.name': f.code,
      '__connect.errors.exception.message': f.message.slice(0, 2000),
      '__connect.errors.connector.name': handler.name,
      'error.code': f.code,
      ...(f.limit ? { 'error.limit': f.limit } : {}),
      'loopline.worker.version': WORKER_VERSION,
    };
    const size = (m.value?.length ?? 0) + (m.key?.length ?? 0);
    if (size > o.maxMessageBytes) return { key: m.key, value: null, headers: { ...headers, 'loopline.value.omitted': `original record of ${size} bytes exceeds the dead-letter size limit` } };
    return { key: m.key, value: m.value, headers };
  }

  interface Encoded {
    topic: string;
    key: string;
    value: Buffer;
  }

  /** Processes and encodes records; a non-retriable failure is narrowed to single records, which are dead-lettered. */
  async function processIsolating(records: Array<InputRecord<RecordTypes[N]>>, ctx: ProcessContext): Promise<{ outputs: Encoded[]; failures: RecordFailure[] }> {
    try {
      const r = await handler.process(records, ctx);
      const outputs = await Promise.all(
        r.outputs.map(async (out) => {
          const value = await codec.encode(out.record, names.subject(out.topic, out.record), out.value);
          if (value.length + out.key.length > o.maxMessageBytes) throw new PoisonRecordError('OUTPUT', 'OUTPUT_TOO_LARGE', `an output to ${out.topic} is ${value.length} bytes; the limit is ${o.maxMessageBytes}`);
          return { topic: names.physical(out.topic), key: out.key, value };
        }),
      );
      return { outputs, failures: r.deadLetters ?? [] };
    } catch (err) {
      if (err instanceof Rebalancing || isRetriable(err) || isFatal(err) || err instanceof FencedError) throw err;
      if (ctx.signal.aborted) throw new Rebalancing('task revoked');
      if (records.length === 1) {
        const stage = err instanceof PoisonRecordError ? err.stage : 'PROCESSING';
        return { outputs: [], failures: [{ index: 0, stage, code: errorCode(err), message: (err as Error).message ?? String(err) }] };
      }
      logger.warn({ err, records: records.length }, 'non-retriable failure in a chunk; isolating the records that cause it');
      const mid = Math.ceil(records.length / 2);
      const left = await processIsolating(records.slice(0, mid), ctx);
      const right = await processIsolating(records.slice(mid), ctx);
      return {
        outputs: [...left.outputs, ...right.outputs],
        failures: [...left.failures, ...right.failures.map((f) => ({ ...f, index: f.index + mid }))],
      };
    }
  }

  /** Decodes and processes one chunk; returns what to send. */
  async function runChunk(physicalTopic: string, partition: number, chunk: KafkaMessage[], ctx: ProcessContext) {
    const input = byPhysical.get(physicalTopic)!;
    const types = input.record;
    const dead: Array<{ message: KafkaMessage; failure: Omit<RecordFailure, 'index'> }> = [];
    const good: Array<InputRecord<RecordTypes[N]>> = [];
    const goodMessages: KafkaMessage[] = [];
    const decoded = await Promise.all(
      chunk.map(async (m) => {
        if (typeof types === 'string') {
          const d = await codec.decode(types as N, m.value, input.decode);
          return d.ok ? { ok: true as const, value: d.value, record: types as RecordName } : d;
        }
        const d = await codec.decodeAny(types as readonly N[], m.value, input.decode);
        return d.ok ? { ok: true as const, value: d.value, record: (d.record ?? (types as readonly N[])[0]) as RecordName } : d;
      }),
    );
    decoded.forEach((d, i) => {
      const m = chunk[i]!;
      if (d.ok) {
        good.push({ topic: input.topic, record: d.record, partition, offset: m.offset, key: m.key?.toString() ?? null, timestamp: Number(m.timestamp), headers: m.headers ?? {}, value: d.value as RecordTypes[N] });
        goodMessages.push(m);
      } else {
        dead.push({ message: m, failure: { stage: 'VALUE_CONVERTER', code: d.error.code, message: d.error.message, ...(d.error.limit ? { limit: d.error.limit } : {}) } });
      }
    });
    const result: { outputs: Encoded[]; failures: RecordFailure[] } = good.length > 0 ? await processIsolating(good, ctx) : { outputs: [], failures: [] };
    for (const f of result.failures) dead.push({ message: goodMessages[f.index]!, failure: f });
    const dlq = input.spec.deadLetter ? names.physical(input.spec.deadLetter) : null;
    if (dead.length > 0 && !dlq) throw new FatalError(`${handler.name}: ${dead.length} records of ${input.topic} cannot be processed and the topic has no dead-letter topic`, 'NO_DEAD_LETTER_TOPIC');
    const messages: Array<{ topic: string; key: string | Buffer | null; value: Buffer | null; headers?: IHeaders }> = result.outputs.map((e) => ({ topic: e.topic, key: e.key, value: e.value }));
    for (const d of dead) messages.push({ topic: dlq!, ...deadLetterMessage(physicalTopic, d.message, partition, d.failure) });
    return { messages, processed: good.length - result.failures.length, outputs: result.outputs, dead };
  }

  /** Sends messages in the open transaction, in sends that fit the broker's limits (outputs were already checked against maxMessageBytes). */
  async function send(tx: Transaction, messages: Array<{ topic: string; key: string | Buffer | null; value: Buffer | null; headers?: IHeaders }>): Promise<void> {
    const byTopic = new Map<string, Array<{ key: string | Buffer | null; value: Buffer | null; headers?: IHeaders }>>();
    for (const { topic, ...m } of messages) {
      const list = byTopic.get(topic) ?? [];
      list.push(m);
      byTopic.set(topic, list);
    }
    const plan = planSends([...byTopic].map(([topic, ms]) => ({ topic, messages: ms })), { maxBatchBytes: o.maxSendBytes, maxMessageBytes: o.maxSendBytes });
    if (plan.oversized.length > 0) throw new FatalError(`${plan.oversized.length} messages exceed ${o.maxSendBytes} bytes`, 'OUTPUT_TOO_LARGE');
    for (const topicMessages of plan.sends) await tx.sendBatch({ topicMessages: topicMessages as never });
  }

  async function heartbeatOrRebalance(payload: EachBatchPayload): Promise<void> {
    try {
      await payload.heartbeat();
    } catch (err) {
      throw Object.assign(new Rebalancing('the group is rebalancing'), { cause: err });
    }
  }

  async function eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const t = tasks.get(taskId(batch.topic, batch.partition));
    if (!t || state === 'failed') return;
    // One chunk of a task at a time (co-partitioned topics share the task).
    const previous = t.lock;
    let release!: () => void;
    t.lock = new Promise<void>((r) => (release = r));
    await previous;
    try {
      await processBatch(payload, t);
    } catch (err) {
      if (err instanceof Rebalancing) throw (err.cause ?? err);
      throw err;
    } finally {
      release();
    }
  }

  async function processBatch(payload: EachBatchPayload, t: Task): Promise<void> {
    const { batch } = payload;
    const topic = batch.topic;
    const input = byPhysical.get(topic)!;
    const messages = batch.messages;
    const taskTopics = inputs.map((i) => i.physical).filter((p) => copartitioned || p === topic);
    const ctx: ProcessContext = {
      partition: batch.partition,
      committed: (logical, partition) => (partition === batch.partition ? t.committed.get(names.physical(logical)) ?? null : null),
      heartbeat: () => heartbeatOrRebalance(payload),
      signal: t.abort.signal,
      get stateEpoch() {
        if (Date.now() - t.confirmedAt > o.sessionTimeoutMs / 2) {
          t.epoch = ++epochs;
          t.confirmedAt = Date.now();
        }
        return t.epoch;
      },
    };
    const alive = () => payload.isRunning() && !payload.isStale() && !t.abort.signal.aborted && state !== 'failed';

    for (;;) {
      if (!alive()) return;
      try {
        await t.ready;
        if (!t.producer) await recoverTask(t, taskTopics);
      } catch (err) {
        if (!(await backOff(t, err, 'opening the task', payload))) return;
        t.ready = Promise.resolve();
        continue;
      }
      // Records below the committed offset were committed by us or a previous owner: skip them.
      const committed = t.committed.get(topic) ?? null;
      let cursor = committed === null ? 0 : messages.findIndex((m) => BigInt(m.offset) >= committed);
      if (cursor === -1) cursor = messages.length;
      if (cursor > 0) payload.resolveOffset(messages[cursor - 1]!.offset);
      if (cursor >= messages.length) return;

      let tx: Transaction | null = null;
      try {
        while (cursor < messages.length) {
          tx = await t.producer!.transaction();
          const began = Date.now();
          let inTx = 0;
          let lastOffset = '';
          const stats = { records: 0, processed: 0, outputs: new Map<string, number>(), dead: [] as Array<{ message: KafkaMessage; failure: Omit<RecordFailure, 'index'> }> };
          const started = process.hrtime.bigint();
          while (cursor < messages.length) {
            const chunk = messages.slice(cursor, cursor + o.batchMax);
            const r = await runChunk(topic, batch.partition, chunk, ctx);
            if (r.messages.length > 0) await send(tx, r.messages);
            stats.records += chunk.length;
            stats.processed += r.processed;
            for (const o of r.outputs) stats.outputs.set(o.topic, (stats.outputs.get(o.topic) ?? 0) + 1);
            stats.dead.push(...r.dead);
            cursor += chunk.length;
            inTx += chunk.length;
            lastOffset = chunk[chunk.length - 1]!.offset;
            if (!alive() || Date.now() - began >= o.commitIntervalMs || inTx >= o.transactionMaxRecords) break;
          }
          const next = BigInt(lastOffset) + 1n;
          await tx.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: [{ partition: batch.partition, offset: next.toString() }] }] });
          const commitStarted = process.hrtime.bigint();
          await tx.commit();
          tx = null;
          t.confirmedAt = Date.now();
          t.committed.set(topic, next);
          ownCommits.set(`${topic}/${batch.partition}`, next);
          t.retry.succeeded();
          payload.resolveOffset(lastOffset);
          observeCommit(input.topic, batch.partition, batch.highWatermark, lastOffset, stats, started, commitStarted);
          await heartbeatOrRebalance(payload);
          if (!alive()) return;
        }
        return;
      } catch (err) {
        if (tx) await tx.abort().catch(() => {});
        if (err instanceof Rebalancing) throw err;
        const e = err instanceof LooplineError ? err : classifyKafkaError(err, 'committing a transaction');
        if (e instanceof FencedError) {
          t.fenced = true;
          metrics.fenced.inc({ worker: handler.name });
          logger.warn({ task: t.id, err: e }, 'task fenced: another member owns it now; pausing it until the next assignment');
          await closeTask(t);
          consumer?.pause(taskTopics.map((x) => ({ topic: x, partitions: [t.partition] })));
          return;
        }
        if (isFatal(e) || (!isRetriable(e) && !isAmbiguous(err))) {
          fail(e, `processing ${input.topic}/${batch.partition}`);
          return;
        }
        // Ambiguous or transient: re-fence and re-read what committed, then go on from there. The
        // producer is dropped first: after a failed commit kafkajs leaves it in COMMITTING for good,
        // and the task's next batch (if the back-off ends this one) must not begin a transaction on it.
        t.producer?.disconnect().catch(() => {});
        t.producer = null;
        t.ready = Promise.resolve();
        if (!(await backOff(t, e, 'processing a chunk', payload))) return;
      }
    }
  }

  /** Waits out a retriable failure; false when the worker should stop working on this batch. */
  async function backOff(t: Task, err: unknown, doing: string, payload: EachBatchPayload): Promise<boolean> {
    if (isFatal(err)) {
      fail(err, doing);
      return false;
    }
    const wait = t.retry.failed();
    const code = errorCode(err);
    metrics.retries.inc({ worker: handler.name, code });
    if (wait === null) {
      fail(err, `${doing}: still failing after the ${o.retry.budgetMs} ms retry budget`);
      return false;
    }
    logger.warn({ err, task: t.id, attempt: t.retry.attempt, delayMs: wait }, `${doing} failed, retrying`);
    await sleep(wait, t.abort.signal);
    await heartbeatOrRebalance(payload);
    return payload.isRunning() && !payload.isStale() && !t.abort.signal.aborted;
  }

  function observeCommit(
    logicalTopic: string, partition: number, highWatermark: string, lastOffset: string,
    stats: { records: number; processed: number; outputs: Map<string, number>; dead: Array<{ message: KafkaMessage; failure: Omit<RecordFailure, 'index'> }> },
    started: bigint, commitStarted: bigint,
  ): void {
    const now = process.hrtime.bigint();
    metrics.batchSeconds.observe({ worker: handler.name }, Number(now - started) / 1e9);
    metrics.commitSeconds.observe({ worker: handler.name }, Number(now - commitStarted) / 1e9);
    metrics.records.inc({ worker: handler.name, topic: logicalTopic, outcome: 'processed' }, stats.processed);
    counts.in[logicalTopic] = (counts.in[logicalTopic] ?? 0) + stats.records;
    for (const [physical, n] of stats.outputs) {
      const topic = physical.slice(names.prefix.length);
      metrics.outputs.inc({ worker: handler.name, topic }, n);
      counts.out[topic] = (counts.out[topic] ?? 0) + n;
    }
    for (const d of stats.dead) {
      metrics.records.inc({ worker: handler.name, topic: logicalTopic, outcome: 'dead_letter' });
      metrics.deadLetters.inc({ worker: handler.name, code: d.failure.code });
      logger.warn({ partition, offset: d.message.offset, stage: d.failure.stage, code: d.failure.code, reason: d.failure.message }, 'record dead-lettered');
    }
    const behind = Math.max(0, Number(BigInt(highWatermark) - BigInt(lastOffset) - 1n));
    lag[`${logicalTopic}/${partition}`] = behind;
    metrics.lag.set({ worker: handler.name, topic: logicalTopic, partition: String(partition) }, behind);
    lastProgressAt = Date.now();
    metrics.lastProgress.set({ worker: handler.name }, lastProgressAt / 1000);
  }

  async function startBroadcasts(): Promise<void> {
    for (const b of handler.broadcasts ?? []) {
      const c = kafka.consumer({ groupId: `${groupId}-broadcast-${crypto.randomUUID()}`, sessionTimeout: o.sessionTimeoutMs, heartbeatInterval: o.heartbeatIntervalMs });
      await c.connect();
      await c.subscribe({ topic: names.physical(b.topic), fromBeginning: false });
      await c.run({
        autoCommit: false,
        eachMessage: async ({ message }) => {
          const d = await codec.decode(b.record, message.value);
          if (!d.ok) {
            logger.warn({ topic: b.topic, code: d.error.code }, 'undecodable broadcast record ignored');
            return;
          }
          await b.onRecord(d.value).catch((err: unknown) => logger.error({ err, topic: b.topic }, 'handling a broadcast record failed'));
        },
      });
      broadcastConsumers.push(c);
    }
  }

  return {
    name: handler.name,
    groupId,
    topics: inputs.map((i) => i.physical),
    async start() {
      state = 'starting';
      await handler.open?.();
      admin = kafka.admin();
      await admin.connect();
      if (copartitioned) {
        const meta = await admin.fetchTopicMetadata({ topics: inputs.map((i) => i.physical) });
        const counts = new Set(meta.topics.map((m) => m.partitions.length));
        if (counts.size > 1) throw new FatalError(`${handler.name} joins ${inputs.map((i) => i.topic).join(' and ')}, which must have the same number of partitions (found ${[...counts].join(', ')})`, 'COPARTITION');
      }
      consumer = kafka.consumer({
        groupId,
        sessionTimeout: o.sessionTimeoutMs,
        heartbeatInterval: o.heartbeatIntervalMs,
        readUncommitted: false,
        retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 5000 },
        ...(copartitioned ? { partitionAssigners: [copartitionedAssigner] } : {}),
      });
      consumer.on(consumer.events.GROUP_JOIN, (e) => {
        assigned = Object.entries(e.payload.memberAssignment).map(([topic, partitions]) => ({ topic, partitions }));
        logger.info({ assigned }, 'joined group; fencing the assigned tasks');
        void onAssignment(e.payload.memberAssignment);
      });
      consumer.on(consumer.events.CRASH, (e) => {
        lastError = String(e.payload.error?.message ?? e.payload.error);
        metrics.crashes.inc({ worker: handler.name });
        if (!e.payload.restart) fail(e.payload.error, 'the consumer crashed and will not restart');
        else logger.warn({ err: e.payload.error }, 'consumer crashed; kafkajs restarts it');
      });
      await consumer.connect();
      for (const i of inputs) await consumer.subscribe({ topic: i.physical, fromBeginning: o.fromBeginning });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: o.partitionsConsumedConcurrently,
        eachBatch,
      });
      await startBroadcasts();
      if (state === 'starting') state = 'running';
      logger.info({ groupId, inputs: inputs.map((i) => i.physical), batchMax: o.batchMax, commitIntervalMs: o.commitIntervalMs }, 'worker running');
    },
    async stop() {
      if (state === 'stopped' || state === 'idle') return;
      const failed = state === 'failed';
      state = 'stopping';
      for (const c of broadcastConsumers) await c.disconnect().catch(() => {});
      // consumer.disconnect() waits for the batch in hand, which commits what it processed.
      await consumer?.disconnect().catch((err: unknown) => logger.warn({ err }, 'disconnecting consumer'));
      await Promise.all([...tasks.values()].map(closeTask));
      tasks.clear();
      await admin?.disconnect().catch(() => {});
      await handler.close?.();
      state = failed ? 'failed' : 'stopped';
      logger.info('worker stopped');
    },
    health: () => ({ name: handler.name, state, lastProgressAt, assigned, lag: { ...lag }, counts: { in: { ...counts.in }, out: { ...counts.out } }, error: lastError }),
  };
}
