/**
 * `loopline dlq list | show | replay`: dead letters as a workflow
 * (ops/dead-letters.ts). `list` counts them by topic and reason with their
 * offsets; `show` prints one with its headers and its body decoded where the
 * bytes allow; `replay` sends chosen ones back to their source topic once the
 * cause is fixed — by offsets, by reason, or all of a topic — each at most
 * once (the `dlq_replays` ledger), optionally patched (`--patch` JSON merge
 * patch of the decoded record).
 *
 *   npm start -- dlq list
 *   npm start -- dlq show events.client.dlq 0/4
 *   npm start -- dlq replay events.client.dlq --reason WRONG_TYPE --patch '{"fields":{"period":0.5}}'
 */
import { InvalidArgumentError, type Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { followDemo } from '../ops/demo-run.js';
import { LooplineError } from '../core/errors.js';
import { openClients, type OperatorClients } from '../ops/clients.js';
import { decodeBody, dlqTopics, readDeadLetters, replayDeadLetters, sourceOf, summarize, type DeadLetterRecord } from '../ops/dead-letters.js';
import { createDlqReplayLedger } from '../store/dlq-replays.js';
import { createLogger } from '../streams/logger.js';

const DLQ_NAMES = () => dlqTopics().map((d) => d.dlq);

function dlqArg(v: string): string {
  if (!DLQ_NAMES().includes(v)) throw new InvalidArgumentError(`not a dead-letter topic; choose from ${DLQ_NAMES().join(', ')}`);
  return v;
}

/** `3`, `0/3`, `0/3-9`, comma-separated: partition/offset (partition 0 when omitted), ranges inclusive. Pure. */
export function parseOffsets(raw: string): Array<{ partition: number; from: bigint; to: bigint }> {
  return raw.split(',').map((part) => {
    const m = /^\s*(?:(\d+)\/)?(\d+)(?:-(\d+))?\s*$/.exec(part);
    if (!m) throw new InvalidArgumentError(`"${part}" is not an offset: use 12, 0/12 or 0/12-20 (partition/offset)`);
    const from = BigInt(m[2]!);
    const to = m[3] === undefined ? from : BigInt(m[3]);
    if (to < from) throw new InvalidArgumentError(`"${part}": a range ends before it starts`);
    return { partition: Number(m[1] ?? 0), from, to };
  });
}

function patchArg(raw: string): unknown {
  try {
    const v = JSON.parse(raw) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v;
  } catch {
    throw new InvalidArgumentError('must be a JSON object (a merge patch of the record, e.g. \'{"fields":{"period":0.5}}\')');
  }
}

async function withClients<T>(fn: (c: OperatorClients) => Promise<T>): Promise<T> {
  const config = loadConfig(followDemo());
  const c = openClients(config, createLogger({ level: 'error', name: 'dlq' }), 'dlq');
  try {
    await c.admin.connect();
    return await fn(c);
  } finally {
    await c.close();
  }
}

const toJson = (l: DeadLetterRecord) => ({ ...l, key: l.key?.toString('utf8') ?? null, value: l.value ? { bytes: l.value.length, base64: l.value.toString('base64') } : null });

export function registerDlqCommands(program: Command): void {
  const dlq = program.command('dlq').description('dead letters: list them by topic and reason, show one, replay fixed ones to their source topic (once each)');

  dlq
    .command('list [topic]')
    .description('dead letters by topic and reason, with counts and first/last partition/offset')
    .option('--json', 'print one JSON object alone on stdout')
    .option('--records', 'also list every record (partition/offset, reason, message)')
    .action(async (topic: string | undefined, o: { json?: boolean; records?: boolean }) => {
      if (topic !== undefined) dlqArg(topic);
      await withClients(async (c) => {
        const { letters, complete } = await readDeadLetters(c.kafka, c.admin, c.names, topic ? { only: [topic] } : {});
        const byReason = summarize(letters);
        if (o.json) {
          console.log(JSON.stringify({ total: letters.length, complete, byReason, ...(o.records ? { records: letters.map((l) => ({ dlqTopic: l.dlqTopic, partition: l.partition, offset: l.offset, code: l.code, stage: l.stage, message: l.message, replayedFrom: l.replayedFrom })) } : {}) }));
          return;
        }
        console.log(`${letters.length} dead letters${complete ? '' : ' (read timed out: incomplete)'} under prefix ${c.names.prefix || '(none)'}`);
        for (const r of byReason) console.log(`  ${r.dlqTopic.padEnd(28)} ${r.code.padEnd(22)} ${String(r.count).padStart(6)}   ${r.first} … ${r.last}   ${r.message.slice(0, 100)}`);
        if (o.records) for (const l of letters) console.log(`  ${l.dlqTopic} ${l.partition}/${l.offset}  ${l.code}  ${l.message.slice(0, 120)}${l.replayedFrom ? `  (a replay of ${l.replayedFrom})` : ''}`);
      });
    });

  dlq
    .command('show <topic> <offset>')
    .description('one dead letter (offset as partition/offset, or offset on partition 0): headers, key, body decoded where possible')
    .option('--json', 'print one JSON object alone on stdout')
    .action(async (topic: string, offset: string, o: { json?: boolean }) => {
      dlqArg(topic);
      const [at] = parseOffsets(offset);
      await withClients(async (c) => {
        const { letters } = await readDeadLetters(c.kafka, c.admin, c.names, { only: [topic] });
        const l = letters.find((x) => x.partition === at!.partition && BigInt(x.offset) === at!.from);
        if (!l) throw new LooplineError(`no dead letter at ${topic} ${at!.partition}/${at!.from}; \`loopline dlq list ${topic} --records\` lists them`, { code: 'NOT_FOUND', retriable: false });
        const body = await decodeBody(c.codec, l);
        if (o.json) {
          console.log(JSON.stringify({ ...toJson(l), decoded: body.ok ? { record: body.record, value: body.value } : { error: body.error } }));
          return;
        }
        console.log(`${topic} ${l.partition}/${l.offset}  from ${l.source.topic ?? sourceOf(topic).name} ${l.source.partition ?? '?'}/${l.source.offset ?? '?'}  at ${new Date(l.timestamp).toISOString()}`);
        console.log(`reason   ${l.stage} ${l.code}${l.limit ? ` (limit ${l.limit})` : ''}: ${l.message}`);
        console.log('headers');
        for (const [k, v] of Object.entries(l.headers)) console.log(`  ${k}: ${v}`);
        console.log(`key      ${l.key?.toString('utf8') ?? '(none)'}`);
        console.log(body.ok ? `body     ${body.record} ${JSON.stringify(body.value, null, 2)}` : `body     not decodable (${body.error}); ${l.value ? `${l.value.length} bytes, base64 ${l.value.toString('base64').slice(0, 200)}` : 'no value'}`);
      });
    });

  dlq
    .command('replay <topic>')
    .description('send dead letters back to their source topic after a fix, each at most once (recorded in dlq_replays; copies carry loopline.replayed-from)')
    .option('--offsets <list>', 'which: partition/offset[-offset], comma-separated (e.g. 0/3,0/7-9)', parseOffsets)
    .option('--reason <code>', 'which: every dead letter of the topic with this error.code')
    .option('--all', 'which: every dead letter of the topic')
    .option('--patch <json>', 'JSON merge patch applied to the decoded record before it is re-encoded and sent', patchArg)
    .option('--dry-run', 'print what would be replayed and send nothing')
    .option('--json', 'print one JSON object alone on stdout')
    .action(async (topic: string, o: { offsets?: ReturnType<typeof parseOffsets>; reason?: string; all?: boolean; patch?: unknown; dryRun?: boolean; json?: boolean }) => {
      dlqArg(topic);
      const chosen = [o.offsets, o.reason, o.all].filter((x) => x !== undefined).length;
      if (chosen !== 1) throw new InvalidArgumentError('choose the records with exactly one of --offsets, --reason or --all');
      await withClients(async (c) => {
        const { letters, complete } = await readDeadLetters(c.kafka, c.admin, c.names, { only: [topic] });
        if (!complete) throw new LooplineError(`reading ${c.names.physical(topic)} timed out; nothing was replayed`, { code: 'INCOMPLETE', retriable: true });
        const selected = letters.filter((l) =>
          o.all ? true : o.reason !== undefined ? l.code === o.reason : o.offsets!.some((r) => r.partition === l.partition && BigInt(l.offset) >= r.from && BigInt(l.offset) <= r.to),
        );
        if (selected.length === 0) throw new LooplineError(`no dead letter of ${topic} matches; \`loopline dlq list ${topic}\` shows them`, { code: 'NOT_FOUND', retriable: false });
        if (o.dryRun) {
          for (const l of selected) console.log(`would replay ${topic} ${l.partition}/${l.offset} (${l.code}) to ${c.names.physical(l.sourceTopic)}`);
          return;
        }
        const producer = c.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
        await producer.connect();
        try {
          const results = await replayDeadLetters({ codec: c.codec, names: c.names, producer, ledger: createDlqReplayLedger(c.cql), actor: process.env.USER ?? 'operator' }, selected, o.patch === undefined ? {} : { patch: o.patch });
          const count = (k: string) => results.filter((r) => r.outcome === k).length;
          if (o.json) {
            console.log(JSON.stringify({
              replayed: count('replayed'), alreadyReplayed: count('already-replayed'), claimedUnconfirmed: count('claimed-unconfirmed'), failed: count('failed'),
              results: results.map((r) => ({ partition: r.letter.partition, offset: r.letter.offset, code: r.letter.code, outcome: r.outcome, ...(r.outcome === 'replayed' ? { to: r.to } : {}), ...(r.outcome === 'failed' ? { error: r.error } : {}), ...('row' in r ? { at: new Date(r.row.sentAt ?? r.row.claimedAt).toISOString() } : {}) })),
            }));
          } else {
            for (const r of results) {
              const at = `${topic} ${r.letter.partition}/${r.letter.offset}`;
              if (r.outcome === 'replayed') console.log(`replayed ${at} → ${c.names.physical(r.letter.sourceTopic)} ${r.to}`);
              else if (r.outcome === 'already-replayed') console.log(`skipped  ${at}: already replayed ${new Date(r.row.sentAt!).toISOString()} by ${r.row.actor} → ${r.row.replayedTo}`);
              else if (r.outcome === 'claimed-unconfirmed') console.log(`skipped  ${at}: claimed by ${r.row.actor} at ${new Date(r.row.claimedAt).toISOString()} but never confirmed (the replay stopped between claim and send); look for loopline.replayed-from on the source topic before deleting its dlq_replays row`);
              else console.log(`failed   ${at}: ${r.error}`);
            }
            console.log(`${count('replayed')} replayed, ${count('already-replayed')} already replayed, ${count('claimed-unconfirmed')} unconfirmed, ${count('failed')} failed`);
          }
          if (count('failed') > 0) process.exitCode = 1;
        } finally {
          await producer.disconnect();
        }
      });
    });
}
