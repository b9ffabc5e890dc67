/**
 * Four small, tested changes to kafkajs 2.2.4's transaction path, applied
 * once per process by `patchKafkajs()` (idempotent). Why:
 *
 * 1. **Coordinator lookups are cached.** kafkajs's eosManager asks
 *    FindCoordinator before every AddPartitionsToTxn, AddOffsetsToTxn,
 *    TxnOffsetCommit and EndTxn, so one transaction costs four extra round
 *    trips. Measured on the local broker (one consume-transform-produce hop
 *    at 300 records/s): p50 67–143 ms with lookups and 200 ms backoffs,
 *    9–11 ms with lookups cached and 10 ms backoffs. The cache maps
 *    (coordinator type, group or transactional id) to the coordinator's node
 *    id; an entry is dropped as soon as a request sent to that coordinator
 *    fails with a coordinator error (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
 *    COORDINATOR_LOAD_IN_PROGRESS) or a connection error, so the next call
 *    asks again — which is what kafkajs does anyway on those errors.
 * 2. **CONCURRENT_TRANSACTIONS is retried quickly where kafkajs does not.**
 *    The coordinator answers CONCURRENT_TRANSACTIONS to AddPartitionsToTxn or
 *    AddOffsetsToTxn while the previous transaction's markers are still being
 *    written (a few ms after a commit). kafkajs retries it only inside a send
 *    (with the client's backoff) and not at all in sendOffsets, so about 3% of
 *    transactions paid a full runtime backoff. Here both requests retry it with
 *    a short doubling backoff (2 ms, then 4, 8, … up to 30 tries, about 1 s in
 *    all) before giving up with the original error.
 *
 * 3. **read_committed drops every aborted record.** kafkajs's
 *    filterAbortedMessages walks a fetched partition assuming the broker's
 *    aborted-transaction list is sorted by first offset, and activates at most
 *    one entry per record. The broker lists them in the order their ABORT
 *    markers were written, so when two producers' aborted transactions
 *    interleave in one partition (a scorer's per-task producers all write
 *    predictions.by-event; a broker restart aborts several at once), a record
 *    of the later-listed one is handed to the consumer as if committed. Seen
 *    in the fault suite (kafka-sigterm-restart): a prediction whose
 *    transaction was aborted read back beside its committed retry. Kafka's own
 *    consumer keeps the list in a priority queue by first offset and activates
 *    every entry at or below the batch (Fetcher / CompletedFetch). Here each
 *    fetch response's list is rewritten, with those semantics, into one entry
 *    per aborted run at the offset of its first fetched record, in offset
 *    order — a list kafkajs's one-per-record walk applies exactly.
 *
 * 4. **Committed offsets are read stable (KIP-447's require_stable).**
 *    kafkajs speaks OffsetFetch up to v4, which answers with the last
 *    *completed* offset commit even while a transaction's offsets are still
 *    being materialised. The runtime fences a task's previous owner
 *    (InitProducerId, which settles its transaction) and then reads the
 *    committed offsets, trusting that the settled transaction's offsets are
 *    visible by then. Kafka 4.2 does not promise that: measured on the local
 *    broker (the experiment is test/integration/stable-offsets.test.ts),
 *    3 of 150 reads right after a new producer's
 *    InitProducerId returned the offset *before* the transaction that had
 *    just committed — and a new owner that starts there processes those
 *    records a second time (seen: 2 and 123 duplicate predictions in the
 *    three-member test on a loaded machine). Here OffsetFetch v7 is added,
 *    sent with require_stable = true, so the broker answers
 *    UNSTABLE_OFFSET_COMMIT while any transaction's offsets for the group are
 *    pending, and that answer is retried (1 ms doubling to 100 ms, up to
 *    30 s) as the Java consumer does. Every kafkajs offset read goes through
 *    it: the runtime's and the consumer's own at each join.
 *
 * kafkajs is unmaintained upstream (tulios/kafkajs#1603), so these live here;
 * `kafkajs-patch.test.ts` pins the internals they rely on.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

type BrokerLike = { nodeId: number };
type AnyFn = (this: unknown, ...args: any[]) => Promise<any>;

interface ClusterProto {
  findGroupCoordinator: (this: { findBroker(a: { nodeId: number }): Promise<BrokerLike> }, a: { groupId: string; coordinatorType?: number }) => Promise<BrokerLike>;
}

const COORDINATOR_ERRORS = new Set([
  'NOT_COORDINATOR', 'NOT_COORDINATOR_FOR_GROUP', 'COORDINATOR_NOT_AVAILABLE', 'GROUP_COORDINATOR_NOT_AVAILABLE',
  'COORDINATOR_LOAD_IN_PROGRESS', 'GROUP_LOAD_IN_PROGRESS',
]);
const CONNECTION_ERRORS = new Set(['KafkaJSConnectionError', 'KafkaJSConnectionClosedError', 'KafkaJSRequestTimeoutError']);

/** Coordinator node ids by `<type>:<id>`; exported for tests and for `coordinatorCacheSize()`. */
const coordinators = new Map<string, number>();
const TRANSACTION = 1;
const GROUP = 0;

let patched = false;
export const patchStats = { lookups: 0, cached: 0, invalidated: 0, concurrentRetries: 0, unstableRetries: 0 };

export function coordinatorCacheSize(): number {
  return coordinators.size;
}

/** Forgets every cached coordinator (after a broker restart the runtime calls it before recovering). */
export function forgetCoordinators(): void {
  coordinators.clear();
}

function isCoordinatorFailure(err: unknown): boolean {
  const e = err as { type?: string; name?: string } | null;
  return !!e && ((e.type !== undefined && COORDINATOR_ERRORS.has(e.type)) || (e.name !== undefined && CONNECTION_ERRORS.has(e.name)));
}

/** A findGroupCoordinator that answers from the cache when it can (exported for its unit test). */
export function cachingFindCoordinator<T extends { findBroker(a: { nodeId: number }): Promise<BrokerLike> }>(original: (this: T, a: { groupId: string; coordinatorType?: number }) => Promise<BrokerLike>) {
  return async function (this: T, args: { groupId: string; coordinatorType?: number }): Promise<BrokerLike> {
    const key = `${args.coordinatorType ?? GROUP}:${args.groupId}`;
    const nodeId = coordinators.get(key);
    if (nodeId !== undefined) {
      try {
        const broker = await this.findBroker({ nodeId });
        patchStats.cached++;
        return broker;
      } catch {
        coordinators.delete(key);
        patchStats.invalidated++;
      }
    }
    patchStats.lookups++;
    const broker = await original.call(this, args);
    coordinators.set(key, broker.nodeId);
    return broker;
  };
}

const keyOf: Record<string, (a: Record<string, unknown>) => string> = {
  initProducerId: (a) => `${TRANSACTION}:${String(a.transactionalId)}`,
  addPartitionsToTxn: (a) => `${TRANSACTION}:${String(a.transactionalId)}`,
  addOffsetsToTxn: (a) => `${TRANSACTION}:${String(a.transactionalId)}`,
  endTxn: (a) => `${TRANSACTION}:${String(a.transactionalId)}`,
  txnOffsetCommit: (a) => `${GROUP}:${String(a.groupId)}`,
};
const RETRY_CONCURRENT = new Set(['addPartitionsToTxn', 'addOffsetsToTxn']);
export const PATCHED_BROKER_METHODS = Object.keys(keyOf);

/** The producer id and epoch the newest InitProducerId of a transactional id answered (for logs: which incarnation wrote what). */
const identities = new Map<string, { producerId: string; producerEpoch: number }>();
export function producerIdentity(transactionalId: string): { producerId: string; producerEpoch: number } | null {
  return identities.get(transactionalId) ?? null;
}

/** A Broker request that drops its coordinator from the cache when the coordinator fails, and retries CONCURRENT_TRANSACTIONS where kafkajs does not. */
export function coordinatorAwareRequest(method: string, send: AnyFn): AnyFn {
  const key = keyOf[method]!;
  return async function (this: unknown, args: Record<string, unknown>) {
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await send.call(this, args);
        if (method === 'initProducerId' && result && typeof args.transactionalId === 'string') {
          const r = result as { producerId?: unknown; producerEpoch?: unknown };
          if (identities.size > 10_000) identities.clear();
          identities.set(args.transactionalId, { producerId: String(r.producerId), producerEpoch: Number(r.producerEpoch) });
        }
        return result;
      } catch (err) {
        if (isCoordinatorFailure(err) && coordinators.delete(key(args))) patchStats.invalidated++;
        if (RETRY_CONCURRENT.has(method) && (err as { type?: string }).type === 'CONCURRENT_TRANSACTIONS' && attempt < 30) {
          patchStats.concurrentRetries++;
          await new Promise((r) => setTimeout(r, Math.min(2 ** (attempt + 1), 64)));
          continue;
        }
        throw err;
      }
    }
  };
}

interface FetchedRecord {
  offset: string;
  key?: Buffer | null;
  isControlRecord?: boolean;
  batchContext?: { producerId?: string; inTransaction?: boolean };
}
interface AbortedTransaction {
  producerId: string;
  firstOffset: string;
}

/** An ABORT control record's key: version 0, type 0 (COMMIT is type 1). */
const isAbortMarker = (r: FetchedRecord): boolean => r.isControlRecord === true && !!r.key && Buffer.from(r.key).equals(Buffer.from([0, 0, 0, 0]));

/**
 * The aborted transactions of one fetched partition as kafkajs's filter can apply them: walking
 * the records with the Java consumer's rules (entries by first offset; every entry at or below a
 * record is active; a producer's ABORT marker ends its run), one entry per run of aborted records
 * actually in the fetch, at the offset of the run's first record, in offset order.
 */
export function normalizeAbortedTransactions(records: readonly FetchedRecord[], aborted: readonly AbortedTransaction[] | undefined): AbortedTransaction[] {
  if (!aborted || aborted.length === 0) return [];
  const pending = [...aborted].sort((a, b) => (BigInt(a.firstOffset) < BigInt(b.firstOffset) ? -1 : BigInt(a.firstOffset) > BigInt(b.firstOffset) ? 1 : 0));
  const active = new Set<string>();
  const inRun = new Set<string>();
  const out: AbortedTransaction[] = [];
  for (const r of records) {
    const offset = BigInt(r.offset);
    while (pending.length > 0 && BigInt(pending[0]!.firstOffset) <= offset) active.add(pending.shift()!.producerId);
    const pid = r.batchContext?.producerId;
    if (pid === undefined) continue;
    if (r.isControlRecord) {
      if (isAbortMarker(r)) {
        active.delete(pid);
        inRun.delete(pid);
      }
      continue;
    }
    if (active.has(pid) && r.batchContext?.inTransaction && !inRun.has(pid)) {
      inRun.add(pid);
      out.push({ producerId: pid, firstOffset: r.offset });
    }
  }
  return out;
}

/** Fetch response versions whose partitions carry aborted transactions (v4 on). */
export const PATCHED_FETCH_VERSIONS = [4, 5, 6, 7, 8, 9, 10, 11];

function patchFetchResponses(): void {
  for (const v of PATCHED_FETCH_VERSIONS) {
    const mod = require(`kafkajs/src/protocol/requests/fetch/v${v}/response.js`) as { decode: (raw: Buffer) => Promise<{ responses: Array<{ partitions: Array<{ messages: FetchedRecord[]; abortedTransactions?: AbortedTransaction[] }> }> }> };
    if (typeof mod.decode !== 'function') throw new Error(`kafkajs fetch v${v} response has no decode: the patch does not fit this kafkajs version`);
    const decode = mod.decode;
    mod.decode = Object.assign(async (raw: Buffer) => {
      const decoded = await decode(raw);
      for (const topic of decoded.responses ?? []) {
        for (const p of topic.partitions ?? []) {
          if (p.abortedTransactions && p.abortedTransactions.length > 0) p.abortedTransactions = normalizeAbortedTransactions(p.messages ?? [], p.abortedTransactions);
        }
      }
      return decoded;
    }, { normalizesAbortedTransactions: true });
  }
}

/** OffsetFetch v7 (flexible) with require_stable: the request of one group's offsets. */
export const STABLE_OFFSET_FETCH_VERSION = 7;

interface KafkajsEncoder {
  writeInt8(v: number): KafkajsEncoder;
  writeInt32(v: number): KafkajsEncoder;
  writeUVarInt(v: number): KafkajsEncoder;
  writeUVarIntString(v: string | null): KafkajsEncoder;
  writeEncoder(e: KafkajsEncoder): KafkajsEncoder;
  buffer: Buffer;
}
interface KafkajsDecoder {
  readInt16(): number;
  readInt32(): number;
  readInt64(): { toString(): string };
  readUVarIntString(): string | null;
  readUVarIntArray<T>(reader: (d: KafkajsDecoder) => T): T[] | null;
  readTaggedFields(): unknown;
}
export interface OffsetFetchTopic {
  topic: string;
  partitions: Array<{ partition: number }>;
}
export interface OffsetFetchResponse {
  throttleTime: number;
  errorCode: number;
  responses: Array<{ topic: string; partitions: Array<{ partition: number; offset: string; metadata: string | null; errorCode: number }> }>;
}

/**
 * OffsetFetch v7: request header v2 (kafkajs writes v1: the empty tagged-field buffer that v2 adds
 * after the client id opens the body), then group_id, topics (null: all), require_stable.
 */
export function stableOffsetFetchRequest({ groupId, topics }: { groupId: string; topics: OffsetFetchTopic[] | null }) {
  const Encoder = require('kafkajs/src/protocol/encoder.js') as new () => KafkajsEncoder;
  const apiKeys = require('kafkajs/src/protocol/requests/apiKeys.js') as { OffsetFetch: number };
  return {
    apiKey: apiKeys.OffsetFetch,
    apiVersion: STABLE_OFFSET_FETCH_VERSION,
    apiName: 'OffsetFetch',
    encode: async () => {
      const e = new Encoder().writeUVarInt(0).writeUVarIntString(groupId);
      if (topics === null) e.writeUVarInt(0);
      else {
        e.writeUVarInt(topics.length + 1);
        for (const t of topics) {
          e.writeUVarIntString(t.topic).writeUVarInt(t.partitions.length + 1);
          for (const p of t.partitions) e.writeInt32(p.partition);
          e.writeUVarInt(0);
        }
      }
      return e.writeInt8(1).writeUVarInt(0); // require_stable, no tagged fields
    },
  };
}

/** Decodes an OffsetFetch v7 response body (response header v1: its tagged fields come first). */
export async function decodeStableOffsetFetch(raw: Buffer): Promise<OffsetFetchResponse> {
  const Decoder = require('kafkajs/src/protocol/decoder.js') as new (b: Buffer) => KafkajsDecoder;
  const d = new Decoder(raw);
  d.readTaggedFields();
  const throttleTime = d.readInt32();
  const responses = (d.readUVarIntArray((t) => {
    const topic = t.readUVarIntString() ?? '';
    const partitions = (t.readUVarIntArray((p) => {
      const partition = p.readInt32();
      const offset = p.readInt64().toString();
      p.readInt32(); // committed_leader_epoch
      const metadata = p.readUVarIntString();
      const errorCode = p.readInt16();
      p.readTaggedFields();
      return { partition, offset, metadata, errorCode };
    }) ?? []);
    t.readTaggedFields();
    return { topic, partitions };
  }) ?? []);
  const errorCode = d.readInt16();
  d.readTaggedFields();
  return { throttleTime, errorCode, responses };
}

/** Throws the first error of a decoded response (top level, then per partition), as kafkajs's parse does. */
async function parseOffsetFetch(data: OffsetFetchResponse): Promise<OffsetFetchResponse> {
  const { failure, createErrorFromCode } = require('kafkajs/src/protocol/error.js') as { failure(code: number): boolean; createErrorFromCode(code: number): Error };
  if (failure(data.errorCode)) throw createErrorFromCode(data.errorCode);
  const bad = data.responses.flatMap((r) => r.partitions).find((p) => failure(p.errorCode));
  if (bad) throw createErrorFromCode(bad.errorCode);
  return data;
}

function patchOffsetFetch(Broker: { prototype: Record<string, AnyFn> }): void {
  const mod = require('kafkajs/src/protocol/requests/offsetFetch/index.js') as { versions: string[]; protocol: (a: { version: number }) => unknown };
  if (!Array.isArray(mod.versions) || typeof mod.protocol !== 'function' || Math.max(...mod.versions.map(Number)) !== 4) {
    throw new Error('kafkajs offsetFetch has an unexpected version table: the patch does not fit this kafkajs version');
  }
  const protocol = mod.protocol;
  mod.versions.push(String(STABLE_OFFSET_FETCH_VERSION));
  mod.protocol = ({ version }) =>
    version === STABLE_OFFSET_FETCH_VERSION
      ? (args: { groupId: string; topics: OffsetFetchTopic[] | null }) => ({ request: stableOffsetFetchRequest(args), response: { decode: decodeStableOffsetFetch, parse: parseOffsetFetch } })
      : protocol({ version });
  const send = Broker.prototype.offsetFetch;
  if (typeof send !== 'function') throw new Error('kafkajs Broker has no offsetFetch: the patch does not fit this kafkajs version');
  Broker.prototype.offsetFetch = async function (this: unknown, args: unknown) {
    const deadline = Date.now() + 30_000;
    for (let attempt = 0; ; attempt++) {
      try {
        return await send.call(this, args);
      } catch (err) {
        if ((err as { type?: string }).type !== 'UNSTABLE_OFFSET_COMMIT' || Date.now() > deadline) throw err;
        patchStats.unstableRetries++;
        await new Promise((r) => setTimeout(r, Math.min(2 ** attempt, 100)));
      }
    }
  };
}

export function patchKafkajs(): void {
  if (patched) return;
  patched = true;
  patchFetchResponses();
  const Cluster = require('kafkajs/src/cluster/index.js') as { prototype: ClusterProto };
  const Broker = require('kafkajs/src/broker/index.js') as { prototype: Record<string, AnyFn> };
  if (typeof Cluster.prototype.findGroupCoordinator !== 'function') throw new Error('kafkajs Cluster has no findGroupCoordinator: the patch does not fit this kafkajs version');
  Cluster.prototype.findGroupCoordinator = cachingFindCoordinator(Cluster.prototype.findGroupCoordinator);
  for (const method of PATCHED_BROKER_METHODS) {
    const send = Broker.prototype[method];
    if (typeof send !== 'function') throw new Error(`kafkajs Broker has no ${method}: the patch does not fit this kafkajs version`);
    Broker.prototype[method] = coordinatorAwareRequest(method, send);
  }
  patchOffsetFetch(Broker);
}

/** Whether patchKafkajs() has run in this process. */
export function isPatched(): boolean {
  return patched;
}
