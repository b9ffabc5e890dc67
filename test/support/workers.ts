/**
 * A worker from its definition on the test's real servers: the definition's
 * settings (with overrides), its metrics on the given registry, real
 * Cassandra stores, and the runtime — what `startPipeline` does for one
 * worker, with a hook to wrap the implementation (slow it down, crash it).
 */
import { Registry } from 'prom-client';
import type { AnyWorkerDefinition } from '../../consumers/index.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import { createStores, type Stores } from '../../store/stores.js';
import { compileWorkerConfig, type WorkerImpl } from '../../streams/definition.js';
import { createWorkerMetrics } from '../../streams/metrics.js';
import { createWorker, type Worker, type WorkerOptions } from '../../streams/runtime.js';
import type { TestEnv } from './fixtures.js';

export interface TestWorker<I> {
  worker: Worker;
  impl: I;
}

export function workerOf<I extends WorkerImpl<never> = WorkerImpl<never>>(
  env: TestEnv,
  def: AnyWorkerDefinition,
  o: { spec: PipelineSpec; settings?: Record<string, unknown>; runtime?: WorkerOptions; metrics?: Registry; stores?: Stores; wrap?: (impl: I) => I } ,
): TestWorker<I> {
  const metrics = o.metrics ?? new Registry();
  const compiled = compileWorkerConfig(def, {});
  const stores = o.stores ?? createStores(env.cql);
  let impl = def.create({ ...compiled.settings, ...(o.settings ?? {}) }, { spec: o.spec, logger: env.logger, stores, now: Date.now }, def.createMetrics(metrics)) as I;
  if (o.wrap) impl = o.wrap(impl);
  const worker = createWorker({ name: def.name, input: def.input, ...(impl as object) } as never, { kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger, metrics: createWorkerMetrics(metrics) }, { ...compiled.runtime, ...o.runtime });
  return { worker, impl };
}
