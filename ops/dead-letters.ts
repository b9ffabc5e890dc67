/**
 * Dead letters as a workflow: read every dead-letter topic of a prefix, count
 * them by topic and reason, show one with its `__connect.errors.*` headers and
 * its body decoded where the bytes allow, and replay chosen ones to their
 * source topic once a fix is in (a spec or worker change, or a patch of the
 * record itself). Replays go through the `dlq_replays` ledger (claim, send,
 * confirm), so a record is re-delivered once however often the replay runs;
 * each copy carries `loopline.replayed-from: <dlq topic>/<partition>/<offset>`.
 *
 *   const letters = await readDeadLetters(kafka, admin, names);
 *   summarize(letters);                                   // counts by topic and reason
 *   await replayDeadLetters(ctx, letters.filter(byReason('WRONG_TYPE')), { patch: { fields: { period: 0.5 } } });
 */
import type { Admin, IHeaders, Kafka, Producer } from 'kafkajs';
import { LooplineError } from '../core/errors.js';
import type { RecordName } from '../schemas/catalogue.js';
import type { Codec } from '../schemas/codec.js';
import type { DlqReplayLedger, ReplayRow } from '../store/dlq-replays.js';
import { TOPICS, topicSpec, type TopicNames, type TopicSpec } from '../streams/topics.js';
import { headerText, readToEnd } from './read-to-end.js';

/** Headers the runtime sets on a dead letter (streams/runtime.ts `deadLetterMessage`). */
export const DEAD_LETTER_HEADERS = {
  '__connect.errors.topic': 'physical topic the record was read from',
  '__connect.errors.partition': 'its partition',
  '__connect.errors.offset': 'its offset there',
  '__connect.errors.stage': 'VALUE_CONVERTER (decode), VALIDATION, PROCESSING or OUTPUT',
  '__connect.errors.class.name': 'the reason code (same as error.code)',
  '__connect.errors.exception.message': 'what was wrong, at most 2,000 characters',
  '__connect.errors.connector.name': 'the worker that gave up on it',
  'error.code': 'machine-readable reason: BAD_MAGIC, SCHEMA_NOT_ALLOWED, NON_FINITE, WRONG_TYPE, …',
  'error.limit': 'for LIMIT_EXCEEDED, TOO_LARGE and BAD_BODY: which decode limit was broken',
  'loopline.worker.version': 'version of the worker runtime that wrote it',
  'loopline.value.omitted': 'set instead of the value when the original record was too large to keep',
  'loopline.replayed-from': 'on a record `loopline dlq replay` sent back: `<dead-letter topic>/<partition>/<offset>` it came from',
} as const;

/** Headers of a dead letter that describe the failure, not the record: dropped from a replayed copy. */
const FAILURE_HEADER = /^(__connect\.errors\.|error\.|loopline\.worker\.version$|loopline\.value\.omitted$|loopline\.replayed-)/;

export interface DeadLetterRecord {
  /** Logical dead-letter topic, e.g. `events.client.dlq`. */
  dlqTopic: string;
  partition: number;
  offset: string;
  /** Logical source topic it came from (the catalogue's topic whose deadLetter this is). */
  sourceTopic: string;
  /** Physical source topic, partition and offset, from the headers. */
  source: { topic: string | null; partition: number | null; offset: string | null };
  stage: string;
  code: string;
  message: string;
  worker: string | null;
  limit: string | null;
  valueOmitted: string | null;
  replayedFrom: string | null;
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

export function dlqTopics(): Array<{ dlq: string; source: TopicSpec }> {
  return (TOPICS as readonly TopicSpec[]).filter((t) => t.deadLetter).map((t) => ({ dlq: t.deadLetter!, source: t }));
}

/** The source topic of a logical dead-letter topic. */
export function sourceOf(dlqTopic: string): TopicSpec {
  const found = dlqTopics().find((d) => d.dlq === dlqTopic);
  if (!found) throw new LooplineError(`${dlqTopic} is not a dead-letter topic; they are ${dlqTopics().map((d) => d.dlq).join(', ')}`, { code: 'USAGE', retriable: false });
  return found.source;
}

/** A dead-letter message as a typed record. Pure. */
export function parseDeadLetter(dlqTopic: string, m: { partition: number; offset: string; key: Buffer | null; value: Buffer | null; headers: IHeaders; timestamp: number }): DeadLetterRecord {
  const h = (k: string) => headerText(m.headers, k) ?? null;
  const headers = Object.fromEntries(Object.keys(m.headers).map((k) => [k, headerText(m.headers, k) ?? '']));
  const partition = h('__connect.errors.partition');
  return {
    dlqTopic,
    partition: m.partition,
    offset: m.offset,
    sourceTopic: sourceOf(dlqTopic).name,
    source: { topic: h('__connect.errors.topic'), partition: partition === null ? null : Number(partition), offset: h('__connect.errors.offset') },
    stage: h('__connect.errors.stage') ?? 'UNKNOWN',
    code: h('error.code') ?? h('__connect.errors.class.name') ?? 'UNKNOWN',
    message: h('__connect.errors.exception.message') ?? '',
    worker: h('__connect.errors.connector.name'),
    limit: h('error.limit'),
    valueOmitted: h('loopline.value.omitted'),
    replayedFrom: h('loopline.replayed-from'),
    timestamp: m.timestamp,
    key: m.key,
    value: m.value,
    headers,
  };
}

/** Every dead letter of the prefix's dead-letter topics (or of `only`), oldest first per partition. */
export async function readDeadLetters(kafka: Kafka, admin: Admin, names: TopicNames, options: { only?: readonly string[]; timeoutMs?: number } = {}): Promise<{ letters: DeadLetterRecord[]; complete: boolean }> {
  const logical = options.only ?? dlqTopics().map((d) => d.dlq);
  const byPhysical = new Map(logical.map((l) => [names.physical(l), l]));
  const { messages, complete } = await readToEnd(kafka, admin, [...byPhysical.keys()], { timeoutMs: options.timeoutMs ?? 15_000 });
  return { letters: messages.map((m) => parseDeadLetter(byPhysical.get(m.topic)!, m)), complete };
}

export interface ReasonCount {
  dlqTopic: string;
  sourceTopic: string;
  code: string;
  stage: string;
  count: number;
  /** `partition/offset` of the first and last of them. */
  first: string;
  last: string;
  /** A sample message. */
  message: string;
}

/** Counts by dead-letter topic and reason, most frequent first. Pure. */
export function summarize(letters: readonly DeadLetterRecord[]): ReasonCount[] {
  const out = new Map<string, ReasonCount>();
  for (const l of letters) {
    const k = `${l.dlqTopic}|${l.code}`;
    const at = `${l.partition}/${l.offset}`;
    const c = out.get(k);
    if (c) {
      c.count++;
      c.last = at;
    } else out.set(k, { dlqTopic: l.dlqTopic, sourceTopic: l.sourceTopic, code: l.code, stage: l.stage, count: 1, first: at, last: at, message: l.message });
  }
  return [...out.values()].sort((a, b) => b.count - a.count || a.dlqTopic.localeCompare(b.dlqTopic) || a.code.localeCompare(b.code));
}

/** Record types a source topic carries. */
function recordsOf(sourceTopic: string): readonly RecordName[] {
  return topicSpec(sourceTopic).values as readonly RecordName[];
}

/** The body of a dead letter decoded as its source topic's record, or why it cannot be. */
export async function decodeBody(codec: Codec, letter: DeadLetterRecord): Promise<{ ok: true; record: RecordName; value: unknown } | { ok: false; error: string }> {
  if (letter.value === null) return { ok: false, error: letter.valueOmitted ?? 'the dead letter has no value' };
  const types = recordsOf(letter.sourceTopic);
  const d = await codec.decodeAny(types, letter.value);
  if (!d.ok) return { ok: false, error: `${d.error.code}: ${d.error.message}` };
  return { ok: true, record: d.record ?? types[0]!, value: d.value };
}

/** JSON merge patch (RFC 7396): objects merge, null deletes, anything else replaces. Pure. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const base: Record<string, unknown> = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete base[k];
    else base[k] = mergePatch(base[k], v);
  }
  return base;
}

export interface ReplayContext {
  codec: Codec;
  names: TopicNames;
  producer: Producer;
  ledger: DlqReplayLedger;
  actor: string;
}

export type ReplayOutcome =
  | { letter: DeadLetterRecord; outcome: 'replayed'; to: string }
  | { letter: DeadLetterRecord; outcome: 'already-replayed'; row: ReplayRow }
  | { letter: DeadLetterRecord; outcome: 'claimed-unconfirmed'; row: ReplayRow }
  | { letter: DeadLetterRecord; outcome: 'failed'; error: string };

/** The key of the ledger row of a dead letter. */
const keyOf = (names: TopicNames, l: DeadLetterRecord) => ({ dlqTopic: names.physical(l.dlqTopic), partition: l.partition, offset: l.offset });

/**
 * Sends each dead letter back to its source topic, once: claimed in the
 * ledger first (a record claimed before is reported, not resent), the copy
 * carrying the original key, the original headers without the failure ones,
 * and `loopline.replayed-from`; with `patch`, the body is decoded, merged with
 * the patch and encoded again with the topic's schema.
 */
export async function replayDeadLetters(ctx: ReplayContext, letters: readonly DeadLetterRecord[], options: { patch?: unknown } = {}): Promise<ReplayOutcome[]> {
  const out: ReplayOutcome[] = [];
  for (const l of letters) {
    const key = keyOf(ctx.names, l);
    let value: Buffer;
    try {
      value = await bodyToSend(ctx.codec, ctx.names, l, options.patch);
    } catch (err) {
      out.push({ letter: l, outcome: 'failed', error: (err as Error).message });
      continue;
    }
    const existing = await ctx.ledger.claim({ ...key, sourceTopic: ctx.names.physical(l.sourceTopic), code: l.code, patched: options.patch !== undefined, actor: ctx.actor });
    if (existing) {
      out.push(existing.status === 'sent' ? { letter: l, outcome: 'already-replayed', row: existing } : { letter: l, outcome: 'claimed-unconfirmed', row: existing });
      continue;
    }
    const headers: IHeaders = Object.fromEntries(Object.entries(l.headers).filter(([k]) => !FAILURE_HEADER.test(k)));
    headers['loopline.replayed-from'] = `${key.dlqTopic}/${l.partition}/${l.offset}`;
    try {
      const [meta] = await ctx.producer.send({ topic: ctx.names.physical(l.sourceTopic), messages: [{ key: l.key, value, headers }] });
      const to = `${meta?.partition ?? '?'}/${meta?.baseOffset ?? '?'}`;
      await ctx.ledger.confirm(key, to);
      out.push({ letter: l, outcome: 'replayed', to });
    } catch (err) {
      await ctx.ledger.release(key).catch(() => {});
      out.push({ letter: l, outcome: 'failed', error: (err as Error).message });
    }
  }
  return out;
}

async function bodyToSend(codec: Codec, names: TopicNames, l: DeadLetterRecord, patch: unknown): Promise<Buffer> {
  if (l.value === null) throw new LooplineError(`cannot replay ${l.dlqTopic} ${l.partition}/${l.offset}: ${l.valueOmitted ?? 'no value kept'}`, { code: 'NO_VALUE', retriable: false });
  if (patch === undefined) return l.value;
  const decoded = await decodeBody(codec, l);
  if (!decoded.ok) throw new LooplineError(`cannot patch ${l.dlqTopic} ${l.partition}/${l.offset}: its body does not decode (${decoded.error}); replay it unpatched after fixing the cause`, { code: 'NOT_DECODABLE', retriable: false });
  const patched = mergePatch(decoded.value, patch);
  try {
    return await codec.encode(decoded.record, names.subject(l.sourceTopic, decoded.record), patched as never);
  } catch (err) {
    throw new LooplineError(`the patched ${decoded.record} does not fit its schema: ${(err as Error).message}`, { code: 'INVALID_PATCH', retriable: false });
  }
}
