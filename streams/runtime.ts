/**
 * The one consume-process-produce loop every Loopline worker runs.
 *
 *   const worker = createWorker(handler, { kafka, codec, names, logger, metrics, options });
 *   await worker.start();            // joins the group, runs until stop()
 *   await worker.stop();             // drains: finishes the batch in hand, commits, closes
 *
 * Delivery, per chunk of a partition's batch (at most `batchMax` records):
 * 1. decode every record; bytes that are not valid Avro become dead letters;
 * 2. `handler.process(records)`: pure logic plus idempotent side effects
 *    (Cassandra rows keyed by record ids), returning output records and
 *    records to dead-letter;
 * 3. one Kafka transaction per chunk sends the outputs, the dead letters and
 *    the input offsets (`sendOffsets`, last offset + 1), then commits.
 * A crash before 3 commits replays the chunk: side effects rewrite identical
 * rows and the aborted transaction's outputs are never seen by read_committed
 * readers, so nothing is lost and nothing counted twice.
 *
 * kafkajs 2.2.4 lacks KIP-447 fencing, so each input partition gets its own
 * transactional producer with a stable id `<group>-<topic>-<partition>`: the
 * new owner of a partition fences the old one's zombie transactions.
 *
 * Errors: a retriable error (broker, Cassandra, registry outage) is retried
 * with backoff for as long as it takes and never dead-letters a record; a
 * non-retriable error from the handler is narrowed down to the records that
 * cause it, which are dead-lettered with the reason, and the partition moves on.
 */
import type { Consumer, EachBatchPayload, IHeaders, Kafka, KafkaMessage, Producer } from 'kafkajs';
import type { RecordName } from '../schemas/catalogue.js';
import type { Codec, RecordTypes } from '../schemas/codec.js';
import { isRetriable, PoisonRecordError, type DeadLetterStage } from './errors.js';
import type { Logger } from './logger.js';
import type { WorkerMetrics } from './metrics.js';
import { topicSpec, type TopicNames } from './topics.js';

export interface InputRecord<V> {
  topic: string;
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
  topic: string;
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
}

export interface ProcessResult {
  outputs: OutputRecord[];
  deadLetters?: RecordFailure[];
}

/** What a worker is: its input and its logic. Only the runtime touches kafkajs. */
export interface WorkerHandler<N extends RecordName> {
  /** Worker name: consumer group suffix, metrics label, transactional id part. */
  name: string;
  /** Logical input topic and the record type it carries (several for a multi-type topic such as monitor.reports). */
  input: { topic: string; record: N | readonly N[] };
  /** Processes decoded records in offset order. Throw a retriable error to retry, a PoisonRecordError to dead-letter. */
  process(records: Array<InputRecord<RecordTypes[N]>>): Promise<ProcessResult>;
  /** Called once before consuming starts (load models, warm caches). */
  open?(): Promise<void>;
  /** Called after the consumer stopped. */
  close?(): Promise<void>;
}

export interface WorkerOptions {
  /** Consumer group id; default `<prefix>loopline-<worker>`. */
  groupId?: string;
  /** Records per processed chunk and per transaction. Default 500. */
  batchMax?: number;
  /** Partitions processed at once by this member. Default 3. */
  partitionsConsumedConcurrently?: number;
  /** Start from the earliest offset when the group has none. Default true. */
  fromBeginning?: boolean;
  sessionTimeoutMs?: number;
  /** Backoff bounds for retriable failures. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Kafka transaction timeout. Default 30 000 ms. */
  transactionTimeoutMs?: number;
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
  /** ms since epoch of the last committed chunk, or null. */
  lastProgressAt: number | null;
  assigned: Array<{ topic: string; partitions: number[] }>;
  /** Records waiting behind the last committed offset, by partition, as of the last batch. */
  lag: Record<string, number>;
  error: string | null;
}

export interface Worker {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  health(): WorkerHealth;
}

const WORKER_VERSION = '0.1.0';

export function createWorker<N extends RecordName>(handler: WorkerHandler<N>, deps: WorkerDeps, options: WorkerOptions = {}): Worker {
  const { kafka, codec, names, metrics } = deps;
  const logger = deps.logger.child({ worker: handler.name });
  const groupId = options.groupId ?? `${names.prefix}loopline-${handler.name}`;
  const batchMax = options.batchMax ?? 500;
  const retryInitialMs = options.retryInitialMs ?? 200;
  const retryMaxMs = options.retryMaxMs ?? 10_000;
  const inputTopic = names.physical(handler.input.topic);
  const dlqLogical = topicSpec(handler.input.topic).deadLetter;
  const dlqTopic = dlqLogical ? names.physical(dlqLogical) : null;

  let consumer: Consumer | null = null;
  const producers = new Map<number, Promise<Producer>>();
  let state: WorkerState = 'idle';
  let lastProgressAt: number | null = null;
  let lastError: string | null = null;
  let assigned: WorkerHealth['assigned'] = [];
  const lag: Record<string, number> = {};

  function producerFor(partition: number): Promise<Producer> {
    let p = producers.get(partition);
    if (!p) {
      const producer = kafka.producer({
        transactionalId: `${groupId}-${inputTopic}-${partition}`,
        idempotent: true,
        maxInFlightRequests: 1,
        transactionTimeout: options.transactionTimeoutMs ?? 30_000,
      });
      p = producer.connect().then(() => producer);
      p.catch(() => producers.delete(partition));
      producers.set(partition, p);
    }
    return p;
  }

  async function resetProducer(partition: number): Promise<void> {
    const p = producers.get(partition);
    producers.delete(partition);
    if (p) await p.then((x) => x.disconnect()).catch(() => {});
  }

  /** Runs `fn` until it succeeds, backing off on retriable errors; rethrows the rest. Returns null if the worker is stopping. */
  async function withRetry<T>(what: string, payload: EachBatchPayload, fn: () => Promise<T>): Promise<T | null> {
    let delay = retryInitialMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!isRetriable(err)) throw err;
        const code = (err as { code?: string }).code ?? (err as Error).name ?? 'UNKNOWN';
        metrics.retries.inc({ worker: handler.name, code });
        logger.warn({ err, attempt, delayMs: delay, partition: payload.batch.partition }, `${what} failed, retrying`);
        if (!payload.isRunning() || payload.isStale()) return null;
        await sleep(delay);
        delay = Math.min(delay * 2, retryMaxMs);
        await payload.heartbeat().catch(() => {});
        if (!payload.isRunning() || payload.isStale()) return null;
      }
    }
  }

  /** Processes records; a non-retriable failure is narrowed to single records, which are dead-lettered. */
  async function processIsolating(records: Array<InputRecord<RecordTypes[N]>>): Promise<{ outputs: OutputRecord[]; failures: RecordFailure[] }> {
    try {
      const r = await handler.process(records);
      return { outputs: r.outputs, failures: r.deadLetters ?? [] };
    } catch (err) {
      if (isRetriable(err)) throw err;
      if (records.length === 1) {
        const stage = err instanceof PoisonRecordError ? err.stage : 'PROCESSING';
        const code = (err as { code?: string }).code ?? 'PROCESSING_FAILED';
        return { outputs: [], failures: [{ index: 0, stage, code, message: (err as Error).message }] };
      }
      logger.warn({ err, records: records.length }, 'non-retriable failure in a chunk; isolating the records that cause it');
      const mid = Math.ceil(records.length / 2);
      const left = await processIsolating(records.slice(0, mid));
      const right = await processIsolating(records.slice(mid));
      return {
        outputs: [...left.outputs, ...right.outputs],
        failures: [...left.failures, ...right.failures.map((f) => ({ ...f, index: f.index + mid }))],
      };
    }
  }

  function deadLetterMessage(m: KafkaMessage, partition: number, f: Omit<RecordFailure, 'index'>): { key: Buffer | null; value: Buffer | null; headers: IHeaders } {
    return {
      key: m.key,
      value: m.value,
      headers: {
        ...m.headers,
        '__connect.errors.topic': inputTopic,
        '__connect.errors.partition': String(partition),
        '__connect.errors.offset': m.offset,
        '__connect.errors.stage': f.stage,
        '__connect.errors.class.name': f.code,
        '__connect.errors.exception.message': f.message.slice(0, 2000),
        '__connect.errors.connector.name': handler.name,
        'error.code': f.code,
        'loopline.worker.version': WORKER_VERSION,
      },
    };
  }

  async function processChunk(payload: EachBatchPayload, chunk: KafkaMessage[]): Promise<boolean> {
    const { partition } = payload.batch;
    const started = process.hrtime.bigint();
    const { record } = handler.input;
    const decode = (m: KafkaMessage) => (typeof record === 'string' ? codec.decode(record as N, m.value) : codec.decodeAny(record, m.value));
    const decoded = await withRetry('decoding', payload, () => Promise.all(chunk.map(decode)));
    if (!decoded) return false;
    const good: Array<InputRecord<RecordTypes[N]>> = [];
    const goodMessages: KafkaMessage[] = [];
    const dead: Array<{ message: KafkaMessage; failure: Omit<RecordFailure, 'index'> }> = [];
    decoded.forEach((d, i) => {
      const m = chunk[i]!;
      if (d.ok) {
        good.push({ topic: inputTopic, partition, offset: m.offset, key: m.key?.toString() ?? null, timestamp: Number(m.timestamp), headers: m.headers ?? {}, value: d.value });
        goodMessages.push(m);
      } else {
        dead.push({ message: m, failure: { stage: 'VALUE_CONVERTER', code: d.error.code, message: d.error.message } });
      }
    });
    const result = good.length > 0 ? await withRetry('processing', payload, () => processIsolating(good)) : { outputs: [], failures: [] };
    if (!result) return false;
    for (const f of result.failures) dead.push({ message: goodMessages[f.index]!, failure: f });
    if (dead.length > 0 && !dlqTopic) {
      throw new Error(`${handler.name}: ${dead.length} records cannot be processed and ${handler.input.topic} has no dead-letter topic`);
    }
    const encoded = await withRetry('encoding outputs', payload, () =>
      Promise.all(result.outputs.map(async (o) => ({ topic: names.physical(o.topic), key: o.key, value: await codec.encode(o.record, names.subject(o.topic, o.record), o.value) }))),
    );
    if (!encoded) return false;
    const lastOffset = chunk[chunk.length - 1]!.offset;
    const committed = await withRetry('committing a transaction', payload, async () => {
      const producer = await producerFor(partition);
      const tx = await producer.transaction();
      try {
        const byTopic = new Map<string, Array<{ key: string; value: Buffer }>>();
        for (const e of encoded) {
          const list = byTopic.get(e.topic) ?? [];
          list.push({ key: e.key, value: e.value });
          byTopic.set(e.topic, list);
        }
        const topicMessages: Array<{ topic: string; messages: Array<{ key: string | Buffer | null; value: Buffer | null; headers?: IHeaders }> }> = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
        if (dead.length > 0 && dlqTopic) topicMessages.push({ topic: dlqTopic, messages: dead.map((d) => deadLetterMessage(d.message, partition, d.failure)) });
        if (topicMessages.length > 0) await tx.sendBatch({ topicMessages });
        await tx.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: inputTopic, partitions: [{ partition, offset: (BigInt(lastOffset) + 1n).toString() }] }] });
        await tx.commit();
      } catch (err) {
        await tx.abort().catch(async () => resetProducer(partition));
        // kafkajs can be left believing a transaction is open after a broker fault: start over with a fresh producer.
        if (isRetriable(err)) await resetProducer(partition);
        throw err;
      }
      return true;
    });
    if (!committed) return false;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    metrics.batchSeconds.observe({ worker: handler.name }, seconds);
    metrics.records.inc({ worker: handler.name, topic: handler.input.topic, outcome: 'processed' }, good.length - result.failures.length);
    metrics.outputs.inc({ worker: handler.name }, encoded.length);
    for (const d of dead) {
      metrics.records.inc({ worker: handler.name, topic: handler.input.topic, outcome: 'dead_letter' });
      metrics.deadLetters.inc({ worker: handler.name, code: d.failure.code });
      logger.warn({ partition, offset: d.message.offset, stage: d.failure.stage, code: d.failure.code, reason: d.failure.message }, 'record dead-lettered');
    }
    lastProgressAt = Date.now();
    metrics.lastProgress.set({ worker: handler.name }, lastProgressAt / 1000);
    return true;
  }

  async function eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const messages = batch.messages;
    for (let i = 0; i < messages.length; i += batchMax) {
      if (!payload.isRunning() || payload.isStale()) return;
      const chunk = messages.slice(i, i + batchMax);
      if (!(await processChunk(payload, chunk))) return;
      payload.resolveOffset(chunk[chunk.length - 1]!.offset);
      const behind = Number(BigInt(batch.highWatermark) - BigInt(chunk[chunk.length - 1]!.offset) - 1n);
      lag[`${batch.topic}/${batch.partition}`] = behind;
      metrics.lag.set({ worker: handler.name, topic: handler.input.topic, partition: String(batch.partition) }, behind);
      await payload.heartbeat();
    }
  }

  return {
    name: handler.name,
    async start() {
      state = 'starting';
      await handler.open?.();
      consumer = kafka.consumer({
        groupId,
        sessionTimeout: options.sessionTimeoutMs ?? 30_000,
        heartbeatInterval: 3000,
        readUncommitted: false,
        retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 10_000 },
      });
      consumer.on(consumer.events.GROUP_JOIN, (e) => {
        assigned = Object.entries(e.payload.memberAssignment).map(([topic, partitions]) => ({ topic, partitions }));
        logger.info({ assigned }, 'joined group');
      });
      consumer.on(consumer.events.CRASH, (e) => {
        lastError = String(e.payload.error?.message ?? e.payload.error);
        metrics.crashes.inc({ worker: handler.name });
        if (!e.payload.restart) {
          state = 'failed';
          logger.error({ err: e.payload.error }, 'consumer crashed and will not restart');
        } else {
          logger.warn({ err: e.payload.error }, 'consumer crashed; kafkajs restarts it');
        }
      });
      await consumer.connect();
      await consumer.subscribe({ topic: inputTopic, fromBeginning: options.fromBeginning ?? true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 3,
        eachBatch,
      });
      state = 'running';
      logger.info({ groupId, input: inputTopic, batchMax }, 'worker running');
    },
    async stop() {
      if (state === 'stopped' || state === 'idle') return;
      state = 'stopping';
      // consumer.disconnect() waits for the batch in hand; nothing uncommitted is acknowledged.
      await consumer?.disconnect().catch((err: unknown) => logger.warn({ err }, 'disconnecting consumer'));
      await Promise.all([...producers.keys()].map((p) => resetProducer(p)));
      await handler.close?.();
      state = 'stopped';
      logger.info('worker stopped');
    },
    health: () => ({ name: handler.name, state, lastProgressAt, assigned, lag: { ...lag }, error: lastError }),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
