import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { cachingFindCoordinator, coordinatorAwareRequest, coordinatorCacheSize, forgetCoordinators, PATCHED_BROKER_METHODS, patchKafkajs, patchStats } from './kafkajs-patch.js';

const require = createRequire(import.meta.url);

describe('kafkajs patch', () => {
  it('fits the installed kafkajs: the internals it wraps exist, and it applies once', () => {
    const Cluster = require('kafkajs/src/cluster/index.js') as { prototype: Record<string, unknown> };
    const Broker = require('kafkajs/src/broker/index.js') as { prototype: Record<string, unknown> };
    expect(typeof Cluster.prototype.findGroupCoordinator).toBe('function');
    for (const m of PATCHED_BROKER_METHODS) expect(typeof Broker.prototype[m]).toBe('function');
    patchKafkajs();
    const once = Cluster.prototype.findGroupCoordinator;
    patchKafkajs();
    expect(Cluster.prototype.findGroupCoordinator).toBe(once);
    // The eosManager still calls cluster.findGroupCoordinator before each transaction request (what the cache saves).
    const eos = require('fs').readFileSync(require.resolve('kafkajs/src/producer/eosManager/index.js'), 'utf8') as string;
    expect(eos).toMatch(/cluster\.findGroupCoordinator\(\{\s*groupId: transactionalId,\s*coordinatorType: COORDINATOR_TYPES\.TRANSACTION/);
  });

  it('asks FindCoordinator once per id, then answers from the cache until the coordinator fails', async () => {
    forgetCoordinators();
    let lookups = 0;
    const cluster = { findBroker: async ({ nodeId }: { nodeId: number }) => ({ nodeId }) };
    const find = cachingFindCoordinator<typeof cluster>(async () => {
      lookups++;
      return { nodeId: 7 };
    });
    const args = { groupId: 'g-task-0', coordinatorType: 1 };
    expect(await find.call(cluster, args)).toEqual({ nodeId: 7 });
    expect(await find.call(cluster, args)).toEqual({ nodeId: 7 });
    expect(await find.call(cluster, { groupId: 'g', coordinatorType: 0 })).toEqual({ nodeId: 7 });
    expect(lookups).toBe(2);
    expect(coordinatorCacheSize()).toBe(2);

    // A request to the coordinator fails with NOT_COORDINATOR: the entry goes, the next call asks again.
    const endTxn = coordinatorAwareRequest('endTxn', async () => {
      throw Object.assign(new Error('not coordinator'), { type: 'NOT_COORDINATOR' });
    });
    await expect(endTxn.call({}, { transactionalId: 'g-task-0' })).rejects.toThrow('not coordinator');
    await find.call(cluster, args);
    expect(lookups).toBe(3);
  });

  it('retries CONCURRENT_TRANSACTIONS on AddOffsetsToTxn quickly, and passes other errors through', async () => {
    let calls = 0;
    const before = patchStats.concurrentRetries;
    const addOffsets = coordinatorAwareRequest('addOffsetsToTxn', async () => {
      if (++calls < 4) throw Object.assign(new Error('concurrent'), { type: 'CONCURRENT_TRANSACTIONS' });
      return 'ok';
    });
    expect(await addOffsets.call({}, { transactionalId: 't' })).toBe('ok');
    expect(calls).toBe(4);
    expect(patchStats.concurrentRetries - before).toBe(3);
    const endTxn = coordinatorAwareRequest('endTxn', async () => {
      throw Object.assign(new Error('concurrent'), { type: 'CONCURRENT_TRANSACTIONS' });
    });
    await expect(endTxn.call({}, { transactionalId: 't' })).rejects.toThrow('concurrent'); // EndTxn is not retried here
  });
});
