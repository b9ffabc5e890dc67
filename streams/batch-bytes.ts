/**
 * Sizing a transaction's output against Kafka's byte limits, before sending:
 * the broker refuses a record batch over `message.max.bytes` (default
 * 1 048 588) with a non-retriable MESSAGE_TOO_LARGE, which would abort the
 * whole transaction on every retry and stall the partition.
 *
 *   const plan = planSends(topicMessages, { maxBatchBytes: 900_000, maxMessageBytes: 1_000_000 });
 *   for (const o of plan.oversized) deadLetter(o, 'OUTPUT_TOO_LARGE');
 *   for (const send of plan.sends) await tx.sendBatch({ topicMessages: send });
 *
 * Sizes follow the v2 record format uncompressed (an upper bound when
 * compression is on): per record its varint-framed key, value and headers
 * plus at most 21 bytes of framing; per batch 61 bytes. Pure.
 */

/** A message as kafkajs takes it; only its size matters here. */
export interface SizedMessage {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: Record<string, Buffer | string | Array<Buffer | string> | undefined>;
}

export interface TopicMessages<M extends SizedMessage = SizedMessage> {
  topic: string;
  messages: M[];
}

export interface SendLimits {
  /** Bytes of all records of one send (kafkajs sendBatch), batch overheads included. Keep it under the broker's message.max.bytes. */
  maxBatchBytes: number;
  /** Bytes of one record in a batch of its own; a message over it is reported, not sent. Default maxBatchBytes. */
  maxMessageBytes?: number;
}

export interface OversizedMessage {
  topic: string;
  /** Index in the topic's `messages` as given. */
  index: number;
  bytes: number;
}

export interface SendPlan<M extends SizedMessage = SizedMessage> {
  /** Sends in order; within a topic, messages keep their order across sends. */
  sends: Array<Array<TopicMessages<M>>>;
  oversized: OversizedMessage[];
}

/** Bytes of a record batch's fixed header (v2). */
export const RECORD_BATCH_OVERHEAD = 61;
/** Most framing a record adds besides its varint lengths: length (5), attributes (1), timestamp delta (10), offset delta (5). */
const RECORD_FRAMING = 21;

function varintBytes(n: number): number {
  // zigzag of a non-negative n is 2n
  let u = n * 2;
  let bytes = 1;
  while (u >= 128) {
    u = Math.floor(u / 128);
    bytes++;
  }
  return bytes;
}

const byteLength = (v: Buffer | string | null | undefined): number => (v == null ? 0 : typeof v === 'string' ? Buffer.byteLength(v) : v.length);

function field(v: Buffer | string | null | undefined): number {
  if (v == null) return 1; // length -1
  const n = byteLength(v);
  return varintBytes(n) + n;
}

/** Upper bound of one record's bytes inside a batch, uncompressed. */
export function estimateRecordBytes(m: SizedMessage): number {
  let headers = 0;
  let count = 0;
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) {
      headers += field(k) + field(one);
      count++;
    }
  }
  return RECORD_FRAMING + field(m.key) + field(m.value) + varintBytes(count) + headers;
}

/**
 * Splits `topicMessages` into sends of at most `maxBatchBytes` each (per send,
 * every topic present costs one batch overhead), and reports every message
 * that cannot fit even alone under `maxMessageBytes`.
 */
export function planSends<M extends SizedMessage>(topicMessages: ReadonlyArray<TopicMessages<M>>, limits: SendLimits): SendPlan<M> {
  const { maxBatchBytes } = limits;
  const maxMessageBytes = limits.maxMessageBytes ?? maxBatchBytes;
  if (!Number.isSafeInteger(maxBatchBytes) || maxBatchBytes <= RECORD_BATCH_OVERHEAD) throw new RangeError(`maxBatchBytes must be an integer above ${RECORD_BATCH_OVERHEAD}, got ${maxBatchBytes}`);
  if (!Number.isSafeInteger(maxMessageBytes) || maxMessageBytes <= RECORD_BATCH_OVERHEAD) throw new RangeError(`maxMessageBytes must be an integer above ${RECORD_BATCH_OVERHEAD}, got ${maxMessageBytes}`);
  const sends: Array<Array<TopicMessages<M>>> = [];
  const oversized: OversizedMessage[] = [];
  let current = new Map<string, M[]>();
  let used = 0;
  const flush = () => {
    if (current.size > 0) sends.push([...current].map(([topic, messages]) => ({ topic, messages })));
    current = new Map();
    used = 0;
  };
  for (const { topic, messages } of topicMessages) {
    messages.forEach((m, index) => {
      const bytes = estimateRecordBytes(m);
      if (bytes + RECORD_BATCH_OVERHEAD > Math.min(maxMessageBytes, maxBatchBytes)) {
        oversized.push({ topic, index, bytes: bytes + RECORD_BATCH_OVERHEAD });
        return;
      }
      const cost = bytes + (current.has(topic) ? 0 : RECORD_BATCH_OVERHEAD);
      if (used + cost > maxBatchBytes) flush();
      const list = current.get(topic);
      if (list) list.push(m);
      else current.set(topic, [m]);
      used += bytes + (list ? 0 : RECORD_BATCH_OVERHEAD);
    });
  }
  flush();
  return { sends, oversized };
}
