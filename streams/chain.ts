/**
 * Chaining stateless workers (as Flink chains operators): on one machine the
 * preprocessor and the scorer can run as one consumer and one transaction —
 * the preprocessor's vectors go straight into the scorer and also, as
 * always, to features.vectors — saving a Kafka hop (a commit and a fetch)
 * per event. Each worker's code stays its own; only stateless workers chain
 * (their process() needs no committed offsets of the intermediate topic).
 *
 *   const scoring = chainWorkers(preprocessor, scorer);   // name 'preprocessor-scorer', group `<prefix>loopline-preprocessor-scorer`
 *
 * A record the second worker refuses is dead-lettered as the input record
 * that produced it (to the first worker's dead-letter topic, with the second
 * worker's reason).
 */
import type { RecordName } from '../schemas/catalogue.js';
import { ConfigError, LooplineError } from '../core/errors.js';
import type { AnyWorkerDefinition, WorkerImpl } from './definition.js';
import type { Broadcast, InputRecord, OutputRecord, ProcessContext, ProcessResult, RecordFailure } from './runtime.js';

export function chainWorkers(first: AnyWorkerDefinition, second: AnyWorkerDefinition): AnyWorkerDefinition {
  const link = second.input.topics[0]!.topic;
  if (second.input.topics.length !== 1 || !first.outputs.includes(link)) throw new ConfigError(`cannot chain ${first.name} into ${second.name}: ${second.name} must read one topic that ${first.name} writes`);
  if (first.state !== 'none' && !first.state.startsWith('none')) throw new ConfigError(`cannot chain ${first.name}: only stateless workers chain`);
  return {
    name: `${first.name}-${second.name}`,
    doc: `${first.name} and ${second.name} chained in one consumer and one transaction (${link} is still written)`,
    input: first.input,
    outputs: [...new Set([...first.outputs, ...second.outputs])],
    broadcasts: [...new Set([...(first.broadcasts ?? []), ...(second.broadcasts ?? [])])],
    tables: { reads: [...new Set([...first.tables.reads, ...second.tables.reads])], writes: [...new Set([...first.tables.writes, ...second.tables.writes])] },
    state: 'none',
    settings: { ...first.settings, ...second.settings },
    settingScopes: Object.fromEntries([...Object.keys(first.settings).map((k) => [k, first.settingScopes?.[k] ?? first.name]), ...Object.keys(second.settings).map((k) => [k, second.settingScopes?.[k] ?? second.name])]),
    runtime: { ...first.runtime, ...second.runtime },
    createMetrics: (registry) => ({ first: first.createMetrics(registry), second: second.createMetrics(registry) }),
    create(settings, ctx, metrics: { first: unknown; second: unknown }) {
      const a = first.create(settings, ctx, metrics.first) as WorkerImpl<RecordName>;
      const b = second.create(settings, ctx, metrics.second) as WorkerImpl<RecordName>;
      return chainImpls(a, b, link, second.input.topics[0]!.record as RecordName, [first.name, second.name]);
    },
  };
}

/** The two implementations as one: `a`'s outputs to `link` feed `b` in the same call. */
export function chainImpls(a: WorkerImpl<RecordName>, b: WorkerImpl<RecordName>, link: string, record: RecordName, names: [string, string] = ['first', 'second']): WorkerImpl<RecordName> & { parts: Record<string, WorkerImpl<RecordName>> } {
  return {
    parts: { [names[0]]: a, [names[1]]: b },
    async open() {
      await a.open?.();
      await b.open?.();
    },
    async close() {
      await b.close?.();
      await a.close?.();
    },
    broadcasts: [...(a.broadcasts ?? []), ...(b.broadcasts ?? [])] as Broadcast[],
    async process(records: Array<InputRecord<never>>, ctx: ProcessContext): Promise<ProcessResult> {
      const first = await a.process(records, ctx);
      const linked: Array<{ out: OutputRecord; from: number }> = [];
      // Each linked output is attributed to the input record it came from (by position among a's outputs to `link`, in input order).
      let cursor = 0;
      const failed = new Set((first.deadLetters ?? []).map((d) => d.index));
      const producing = records.map((_, i) => i).filter((i) => !failed.has(i));
      for (const out of first.outputs) if (out.topic === link) linked.push({ out, from: producing[cursor++] ?? -1 });
      if (linked.length !== producing.length || linked.some((l) => l.from < 0)) {
        throw new LooplineError(`chained worker emitted ${linked.length} ${link} records for ${producing.length} inputs; chaining needs one per input`, { code: 'CHAIN_MISMATCH', retriable: false });
      }
      const inputs = linked.map(({ out, from }): InputRecord<never> => ({ ...records[from]!, topic: link, record, key: out.key, value: out.value as never }));
      const second = inputs.length > 0 ? await b.process(inputs, ctx) : { outputs: [], deadLetters: [] };
      const deadLetters: RecordFailure[] = [...(first.deadLetters ?? [])];
      const refused = new Set<number>();
      for (const d of second.deadLetters ?? []) {
        const from = linked[d.index]!.from;
        refused.add(d.index);
        deadLetters.push({ ...d, index: from, message: `${d.message} (while scoring the record's ${link} output)` });
      }
      const outputs = [...first.outputs.filter((o) => o.topic !== link), ...linked.filter((_, i) => !refused.has(i)).map((l) => l.out), ...second.outputs];
      return { outputs, deadLetters };
    },
  };
}
