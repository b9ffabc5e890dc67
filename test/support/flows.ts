/**
 * Helpers for flow tests on the in-memory harness (streams/testing.ts):
 * the same records run twice on fresh in-memory stores, once clean and once
 * with a simulated crash after some chunks, so a test can require that the
 * crash changes nothing a reader or a store would see.
 *
 *   const { clean, crashed } = await cleanAndCrashed(scorer, inputs, (stores) => ({ spec, stores }), [0, 2]);
 *   expect(crashed.run.outputs).toEqual(clean.run.outputs);
 */
import type { RecordName } from '../../schemas/catalogue.js';
import { createMemoryStores, type MemoryStores } from '../../store/memory.js';
import type { Settings, WorkerDefinition, WorkerImpl } from '../../streams/definition.js';
import { runFlow, type FlowInput, type FlowOptions, type FlowRun } from '../../streams/testing.js';

export interface FlowResult {
  run: FlowRun;
  stores: MemoryStores;
}

/** Runs `inputs` on fresh stores (prepared by `prepare`), closing the implementation afterwards. */
export async function flowOnFreshStores<N extends RecordName, S extends Settings, M, St>(
  def: WorkerDefinition<N, S, M, St, WorkerImpl<N>>,
  inputs: readonly FlowInput[],
  options: (stores: MemoryStores) => Omit<FlowOptions<St>, 'stores'>,
  o: { crashAfterChunks?: number[]; prepare?: (stores: MemoryStores) => Promise<void> } = {},
): Promise<FlowResult> {
  const stores = createMemoryStores();
  await o.prepare?.(stores);
  const run = await runFlow(def, inputs, { ...options(stores), stores: stores as unknown as St, ...(o.crashAfterChunks ? { crashAfterChunks: o.crashAfterChunks } : {}) });
  await run.impl.close?.();
  return { run, stores };
}

/** The same flow twice on fresh stores: without a crash, and crashing after each chunk in `crashAfterChunks`. */
export async function cleanAndCrashed<N extends RecordName, S extends Settings, M, St>(
  def: WorkerDefinition<N, S, M, St, WorkerImpl<N>>,
  inputs: readonly FlowInput[],
  options: (stores: MemoryStores) => Omit<FlowOptions<St>, 'stores'>,
  crashAfterChunks: number[],
  prepare?: (stores: MemoryStores) => Promise<void>,
): Promise<{ clean: FlowResult; crashed: FlowResult }> {
  const clean = await flowOnFreshStores(def, inputs, options, prepare ? { prepare } : {});
  const crashed = await flowOnFreshStores(def, inputs, options, { crashAfterChunks, ...(prepare ? { prepare } : {}) });
  return { clean, crashed };
}
