/**
 * Two small, tested changes to kafkajs 2.2.4's transaction path, applied
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
};
const RETRY_CONCURRENT = new Set(['addPartitionsToTxn', 'addOffsetsToTxn']);
export const PATCHED_BROKER_METHODS = Object.keys(keyOf);

/** A Broker request that drops its coordinator from the cache when the coordinator fails, and retries CONCURRENT_TRANSACTIONS where kafkajs does not. */
export function coordinatorAwareRequest(method: string, send: AnyFn): AnyFn {
  const key = keyOf[method]!;
  return async function (this: unknown, args: Record<string, unknown>) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await send.call(this, args);
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

export function patchKafkajs(): void {
  if (patched) return;
  patched = true;
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
