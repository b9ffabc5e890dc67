/**
 * The in-memory flow harness (as Bytewax's `testing.py`): a worker
 * definition run over records in memory, with in-memory stores
 * (store/memory.ts) and no Kafka, so a worker's logic is tested in
 * milliseconds. It behaves like the runtime where it matters to a worker:
 * records are grouped into chunks per topic-partition in offset order, each
 * input and output goes through its Avro schema, `ctx.committed()` reports
 * what committed, and a simulated crash after a chunk drops that chunk's
 * outputs and processes it again from the committed offset.
 *
 *   const run = await runFlow(scorer, [{ topic: 'features.vectors', value: v }], { spec, stores });
 *   expect(run.outputs.filter((o) => o.topic === 'predictions')).toHaveLength(1);
 */
import { recordSchema, type RecordName } from '../schemas/catalogue.js';
import { compileWorkerConfig, type SettingValues, type Settings, type WorkerDefinition, type WorkerImpl } from './definition.js';
import { createLogger, type Logger } from './logger.js';
import { Registry } from 'prom-client';
import type { InputRecord, OutputRecord, ProcessContext, RecordFailure } from './runtime.js';
import type { TopicName } from './topics.js';
import type { PipelineSpec } from '../pipelines/spec.js';

export interface FlowInput {
  topic: TopicName;
  value: unknown;
  key?: string;
  partition?: number;
  /** Broker timestamp; default: a counter from 1. */
  timestamp?: number;
}

export interface FlowOptions<Stores> {
  spec: PipelineSpec;
  stores: Stores;
  settings?: Record<string, unknown>;
  logger?: Logger;
  now?: () => number;
  /** Records per process() call. Default 100. */
  batchMax?: number;
  /** 0-based indexes of chunks after which the worker "crashes": the chunk's outputs are dropped and it is processed again. */
  crashAfterChunks?: number[];
  metrics?: Registry;
  /** A worker implementation already opened by an earlier run (keeps in-memory caches, like a live process). */
  impl?: WorkerImpl<RecordName>;
  /** Offsets to continue from, per `topic/partition` (from an earlier run). */
  offsets?: Map<string, bigint>;
}

export interface FlowRun {
  outputs: OutputRecord[];
  deadLetters: Array<{ topic: string; partition: number; offset: string; failure: Omit<RecordFailure, 'index'> }>;
  /** Process calls made (a crashed chunk counts twice). */
  calls: number;
  impl: WorkerImpl<RecordName>;
  offsets: Map<string, bigint>;
}

/** Encodes and decodes a value with its record's Avro schema: what Kafka would carry. */
function throughAvro(record: RecordName, value: unknown): unknown {
  const type = recordSchema(record).type;
  return type.fromBuffer(type.toBuffer(value));
}

export async function runFlow<N extends RecordName, S extends Settings, M, Stores>(
  def: WorkerDefinition<N, S, M, Stores, WorkerImpl<N>>,
  inputs: readonly FlowInput[],
  options: FlowOptions<Stores>,
): Promise<FlowRun> {
  const compiled = compileWorkerConfig(def, {});
  const settings = { ...compiled.settings, ...(options.settings ?? {}) } as SettingValues<S>;
  const logger = options.logger ?? createLogger({ level: 'silent' });
  const impl = (options.impl as WorkerImpl<N> | undefined) ?? def.create(settings, { spec: options.spec, logger, stores: options.stores, now: options.now ?? Date.now }, def.createMetrics(options.metrics ?? new Registry()));
  if (!options.impl) await impl.open?.();
  const batchMax = options.batchMax ?? 100;
  const crashes = new Set(options.crashAfterChunks ?? []);
  const offsets = new Map(options.offsets ?? []);
  const run: FlowRun = { outputs: [], deadLetters: [], calls: 0, impl: impl as WorkerImpl<RecordName>, offsets };

  // Records in input order, each with its offset in its topic-partition.
  let clock = 0;
  const records: Array<InputRecord<unknown>> = inputs.map((x) => {
    const input = def.input.topics.find((t) => t.topic === x.topic);
    if (!input) throw new Error(`${def.name} does not read ${x.topic}`);
    const types = (typeof input.record === 'string' ? [input.record] : input.record) as readonly RecordName[];
    const record = types.find((t) => recordSchema(t).type.isValid(x.value)) ?? types[0]!;
    const partition = x.partition ?? 0;
    const tp = `${x.topic}/${partition}`;
    const offset = offsets.get(tp) ?? 0n;
    offsets.set(tp, offset + 1n);
    return { topic: x.topic, record, partition, offset: offset.toString(), key: x.key ?? null, timestamp: x.timestamp ?? ++clock, headers: {}, value: throughAvro(record, x.value) };
  });

  const committed = new Map<string, bigint>();
  for (const r of records) {
    const tp = `${r.topic}/${r.partition}`;
    if (!committed.has(tp)) committed.set(tp, BigInt(r.offset));
  }
  // Chunks: consecutive records of one topic-partition, at most batchMax.
  const chunks: Array<Array<InputRecord<unknown>>> = [];
  for (const r of records) {
    const last = chunks.at(-1);
    if (last && last.length < batchMax && last[0]!.topic === r.topic && last[0]!.partition === r.partition) last.push(r);
    else chunks.push([r]);
  }
  const abort = new AbortController();
  // A crash is a new process: whatever a worker kept in memory between chunks is gone.
  let epoch = 1;
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i]!;
    const ctx: ProcessContext = {
      partition: chunk[0]!.partition,
      committed: (topic, partition) => committed.get(`${topic}/${partition}`) ?? null,
      heartbeat: async () => {},
      signal: abort.signal,
      get stateEpoch() {
        return epoch;
      },
    };
    for (let attempt = 0; ; attempt++) {
      run.calls++;
      const result = await impl.process(chunk as never, ctx);
      if (attempt === 0 && crashes.has(i)) {
        epoch++;
        continue; // crashed before the commit: nothing it emitted is seen
      }
      for (const o of result.outputs) run.outputs.push({ ...o, value: throughAvro(o.record, o.value) as never });
      for (const d of result.deadLetters ?? []) {
        const r = chunk[d.index]!;
        run.deadLetters.push({ topic: r.topic, partition: r.partition, offset: r.offset, failure: { stage: d.stage, code: d.code, message: d.message } });
      }
      break;
    }
    const last = chunk.at(-1)!;
    committed.set(`${last.topic}/${last.partition}`, BigInt(last.offset) + 1n);
  }
  return run;
}
