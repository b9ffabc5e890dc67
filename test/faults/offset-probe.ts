/**
 * Probe for finding 12 (RELIABILITY.md): after a broker SIGKILL and restart, does Kafka answer "no
 * committed offset" for partitions whose offsets were committed in transactions, and if so, is it a
 * load race (the offsets come back later) or are they gone, and does it hang on a transaction that
 * was open at the kill?
 *
 *   npx tsx test/faults/offset-probe.ts [--rounds 3] [--partitions 8] [--seconds 20]
 *
 * On the fault stack's ports moved by +1000 below (24092 …), so it can run beside the fault suite.
 * Each round: one transactional producer per partition (`probe-g-probe.in-<p>`, as the runtime names
 * its tasks) commits offsets n = 1, 2, 3 … for its partition via sendOffsets, with a consumer of the
 * group joined so the group is a live classic group; the broker is SIGKILLed while transactions are
 * open, restarted, and the group's offsets are read every 100 ms for 20 s, first before and then after
 * the producers are re-initialised (InitProducerId aborts what each left open).
 */
import { Kafka, logLevel, type Producer } from 'kafkajs';
import { createFaultStack } from './fault-stack.js';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const rounds = arg('rounds', 3);
const partitions = arg('partitions', 8);
const seconds = arg('seconds', 20);
for (const [k, v] of Object.entries({ KAFKA_PORT: 24092, KAFKA_CONTROLLER_PORT: 24093, CASSANDRA_PORT: 24042, CASSANDRA_STORAGE_PORT: 24000, REGISTRY_PORT: 24081 })) process.env[`LOOPLINE_FAULTS_${k}`] ??= String(v);

const log = (m: string, o?: unknown) => console.log(`${new Date().toISOString().slice(11, 23)} ${m}${o === undefined ? '' : ' ' + JSON.stringify(o)}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const stack = createFaultStack((m) => log(`stack: ${m}`));
const addresses = await stack.up();
const brokers = [`127.0.0.1:${stack.ports.kafka}`];
const kafka = new Kafka({ clientId: 'offset-probe', brokers, logLevel: logLevel.NOTHING, retry: { initialRetryTime: 50, retries: 30 } });
const admin = kafka.admin();
await admin.connect();
log('stack up', addresses);

const summary: unknown[] = [];
for (let round = 1; round <= rounds; round++) {
  const topic = `probe.in.${Date.now()}`;
  const group = `probe-g-${round}-${Date.now()}`;
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: partitions }, { topic: `${topic}.out`, numPartitions: partitions }] });
  const consumer = kafka.consumer({ groupId: group, sessionTimeout: 30_000 });
  await consumer.connect();
  await consumer.subscribe({ topic });
  void consumer.run({ eachMessage: async () => {} });
  const producers: Producer[] = [];
  const acked = new Array<number>(partitions).fill(0); // highest offset whose commit returned
  const sent = new Array<number>(partitions).fill(0); // highest offset sent in a transaction
  let stop = false;
  const loops = Array.from({ length: partitions }, async (_, p) => {
    const producer = kafka.producer({ transactionalId: `${group}-${topic}-${p}`, idempotent: true, maxInFlightRequests: 1 });
    producers.push(producer);
    await producer.connect();
    for (let n = 1; !stop; n++) {
      try {
        const tx = await producer.transaction();
        await tx.send({ topic: `${topic}.out`, messages: [{ value: `p${p}-n${n}`, partition: p }] });
        sent[p] = n;
        await tx.sendOffsets({ consumerGroupId: group, topics: [{ topic, partitions: [{ partition: p, offset: String(n) }] }] });
        await tx.commit();
        acked[p] = n;
      } catch {
        return; // the broker went away mid-transaction: this producer is done for the round
      }
      await sleep(20);
    }
  });
  await sleep(seconds * 1000);
  const before = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  log(`round ${round}: committing`, { acked: [...acked], fetched: before[0]!.partitions.map((x) => x.offset) });
  await stack.stop('kafka', 'SIGKILL');
  stop = true;
  const ackedAtKill = [...acked];
  const sentAtKill = [...sent];
  log(`round ${round}: kafka SIGKILLed`, { ackedAtKill, sentAtKill });
  await stack.start();
  log(`round ${round}: kafka restarted`);
  // The old clients go only now (with the broker gone their disconnect waits on retries); bounded.
  const bounded = (p: Promise<unknown>) => Promise.race([p.catch(() => {}), sleep(5000)]);
  await bounded(Promise.all(loops));
  await bounded(consumer.disconnect());
  await Promise.all(producers.map((p) => bounded(p.disconnect())));

  // Per partition: every distinct answer in order, with the ms after restart it was first seen.
  const seen: Array<Array<[string, number]>> = Array.from({ length: partitions }, () => []);
  const t0 = Date.now();
  const watch = async (ms: number, phase: string) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      try {
        const got = await admin.fetchOffsets({ groupId: group, topics: [topic] });
        for (const x of got[0]!.partitions) {
          const s = seen[x.partition]!;
          const v = `${phase}:${x.offset}`;
          if (s.at(-1)?.[0] !== v) s.push([v, Date.now() - t0]);
        }
      } catch (err) {
        const s = seen[0]!;
        const v = `${phase}:error ${(err as Error).message}`;
        if (s.at(-1)?.[0] !== v) s.push([v, Date.now() - t0]);
      }
      await sleep(100);
    }
  };
  await watch(10_000, 'pre-fence');
  // Re-initialise each transactional id: InitProducerId aborts the transaction it left open.
  await Promise.all(
    Array.from({ length: partitions }, async (_, p) => {
      const producer = kafka.producer({ transactionalId: `${group}-${topic}-${p}`, idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      const tx = await producer.transaction();
      await tx.abort();
      await producer.disconnect();
    }),
  );
  await watch(10_000, 'post-fence');
  const lostOrBehind = seen
    .map((s, p) => ({ p, ackedAtKill: ackedAtKill[p], sentAtKill: sentAtKill[p], answers: s }))
    .filter((x) => x.answers.some(([v]) => Number(v.split(':')[1]) < (x.ackedAtKill ?? 0) || v.endsWith(':-1')));
  log(`round ${round}: answers after restart`, seen.map((s, p) => ({ p, ackedAtKill: ackedAtKill[p], sentAtKill: sentAtKill[p], answers: s })));
  summary.push({ round, partitions, anomalies: lostOrBehind.length, lostOrBehind });
}
console.log(`PROBE_JSON ${JSON.stringify(summary)}`);
await admin.disconnect();
await stack.down();
