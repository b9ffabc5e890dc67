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
 *    asks again — which is what kafkajs does anyway on those errors. That
 *    holds for a consumer group's own requests too (JoinGroup, SyncGroup,
 *    Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch): without them a group
 *    whose coordinator moved (a broker back after a kill takes its partitions
 *    back) kept asking the old one, NOT_COORDINATOR until its retries ran out,
 *    in every process of the cluster fault case.
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
 * 4. **A send loses no partition when a broker dies.** kafkajs's
 *    sendMessages keeps its retry bookkeeping per broker, so a retry skips a
 *    partition whose new leader had already answered for other partitions: its
 *    messages are never sent and the call (and in a transaction the commit)
 *    succeeds without them. `kafkajs-send.ts` holds the fixed sendMessages
 *    and says what was seen; since kafkajs's producer module captured the
 *    original when it loaded, the patch loads kafkajs's producer modules again
 *    with the fixed one in place and points `Kafka#producer` at them, so every
 *    producer created after `patchKafkajs()` uses it.
 *
 * kafkajs is unmaintained upstream (tulios/kafkajs#1603), so these live here;
 * `kafkajs-patch.test.ts` pins the internals they rely on.
 */
import { createRequire } from 'node:module';
import { createSendMessages } from './kafkajs-send.js';

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
export const patchStats = { lookups: 0, cached: 0, invalidated: 0, concurrentRetries: 0 };

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
  // A consumer group's own requests: the cache is shared by every client of the process, and a consumer that
  // meets NOT_COORDINATOR looks the coordinator up again, which must not answer the stale entry.
  joinGroup: (a) => `${GROUP}:${String(a.groupId)}`,
  syncGroup: (a) => `${GROUP}:${String(a.groupId)}`,
  heartbeat: (a) => `${GROUP}:${String(a.groupId)}`,
  leaveGroup: (a) => `${GROUP}:${String(a.groupId)}`,
  offsetCommit: (a) => `${GROUP}:${String(a.groupId)}`,
  offsetFetch: (a) => `${GROUP}:${String(a.groupId)}`,
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

const SEND_PATCHED = Symbol.for('loopline.kafkajs.sendMessagesPerPartition');

/**
 * Installs kafkajs-send.ts's sendMessages (4): kafkajs's producer modules are loaded again with it in
 * require's cache, and `Kafka#producer` builds producers from them, as kafkajs 2.2.4's does.
 */
function patchSendMessages(): void {
  const Client = require('kafkajs/src/index.js') as { prototype: Record<string | symbol, unknown> };
  // Once per process: require's cache outlives this module where a test runner evaluates it again per file.
  if ((Client.prototype.producer as Record<symbol, unknown>)[SEND_PATCHED]) return;
  const at = (m: string) => require.resolve(`kafkajs/src/producer/${m}`);
  const sendModule = require.cache[at('sendMessages.js')] ?? (require(at('sendMessages.js')), require.cache[at('sendMessages.js')]);
  if (!sendModule) throw new Error('kafkajs producer/sendMessages.js is not in require\'s cache: the patch does not fit this kafkajs version');
  sendModule.exports = Object.assign((deps: Parameters<typeof createSendMessages>[0]) => createSendMessages(deps), { [SEND_PATCHED]: true });
  delete require.cache[at('messageProducer.js')];
  delete require.cache[at('index.js')];
  const createProducer = require(at('index.js')) as (a: Record<string, unknown>) => unknown;
  const InstrumentationEventEmitter = require('kafkajs/src/instrumentation/emitter.js') as new () => unknown;
  const symbol = (o: object, description: string) => Object.getOwnPropertySymbols(o).find((s) => s.description === description);
  if (!/this\[PRIVATE\.CREATE_CLUSTER\]\(/.test(String(Client.prototype.producer)) || !String(Client.prototype.producer).includes('createProducer(')) throw new Error('kafkajs Kafka#producer is not the one the patch replaces: the patch does not fit this kafkajs version');
  Client.prototype.producer = Object.assign(function (this: Record<symbol, unknown>, o: Record<string, unknown> = {}) {
    const logger = symbol(this, 'private:Kafka:logger');
    const clusterRetry = symbol(this, 'private:Kafka:clusterRetry');
    const createCluster = symbol(this, 'private:Kafka:createCluster');
    if (!logger || !clusterRetry || !createCluster) throw new Error('a kafkajs Kafka client without its private logger, retry or cluster factory: the patch does not fit this kafkajs version');
    const instrumentationEmitter = new InstrumentationEventEmitter();
    const cluster = (this[createCluster] as (a: Record<string, unknown>) => unknown).call(this, {
      metadataMaxAge: o.metadataMaxAge ?? 300_000,
      allowAutoTopicCreation: o.allowAutoTopicCreation,
      maxInFlightRequests: o.maxInFlightRequests,
      instrumentationEmitter,
    });
    return createProducer({
      retry: { ...(this[clusterRetry] as object), ...(o.retry as object | undefined) },
      logger: this[logger],
      cluster,
      createPartitioner: o.createPartitioner,
      idempotent: o.idempotent,
      transactionalId: o.transactionalId,
      transactionTimeout: o.transactionTimeout,
      instrumentationEmitter,
    });
  }, { [SEND_PATCHED]: true });
}

/** Whether this process's kafkajs producers send with kafkajs-send.ts (4): `Kafka#producer` and the cached sendMessages both carry the mark. */
export function sendPatched(): boolean {
  const Client = require('kafkajs/src/index.js') as { prototype: Record<string, unknown> };
  const cached = require.cache[require.resolve('kafkajs/src/producer/sendMessages.js')]?.exports as Record<symbol, unknown> | undefined;
  return !!(Client.prototype.producer as Record<symbol, unknown>)[SEND_PATCHED] && !!cached?.[SEND_PATCHED];
}

export function patchKafkajs(): void {
  if (patched) return;
  patched = true;
  patchFetchResponses();
  patchSendMessages();
  const Cluster = require('kafkajs/src/cluster/index.js') as { prototype: ClusterProto };
  const Broker = require('kafkajs/src/broker/index.js') as { prototype: Record<string, AnyFn> };
  if (typeof Cluster.prototype.findGroupCoordinator !== 'function') throw new Error('kafkajs Cluster has no findGroupCoordinator: the patch does not fit this kafkajs version');
  Cluster.prototype.findGroupCoordinator = cachingFindCoordinator(Cluster.prototype.findGroupCoordinator);
  for (const method of PATCHED_BROKER_METHODS) {
    const send = Broker.prototype[method];
    if (typeof send !== 'function') throw new Error(`kafkajs Broker has no ${method}: the patch does not fit this kafkajs version`);
    Broker.prototype[method] = coordinatorAwareRequest(method, send);
  }
}

/** Whether patchKafkajs() has run in this process. */
export function isPatched(): boolean {
  return patched;
}
