// The secured stack under attack, run by `npm run test:secure` (skipped
// elsewhere): a real worker (the preprocessor, through startPipeline like
// `loopline run --workers preprocessor`) runs as its own least-privilege
// principal and does its whole job (consume, produce, dead-letter, commit in
// transactions), while everything outside its ACLs is refused by the broker;
// the scoring path and the co-partitioned joiner run in one process with
// per-worker credentials only (each worker its own Kafka client and
// principal: task fencing, the admin's offset reads, the scorer's
// control.models broadcast); and clients without the right credentials,
// certificates or tokens get nowhere with Kafka, Cassandra or the registry.
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import cassandra from 'cassandra-driver';
import kafkajs, { Kafka, logLevel, type Admin, type Producer, type SASLOptions } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type LooplineConfig } from '../../config/config.js';
import { createModelAnnouncer } from '../../cli/announce.js';
import { SCORING_WORKERS, startPipeline, type RunningPipeline } from '../../consumers/pipeline.js';
import type { Scorer } from '../../consumers/scorer/scorer.js';
import { isConfigError } from '../../core/errors.js';
import { signRegistryToken, type SecureCredentials } from '../../infra/local-stack/secure.js';
import { modelEvent } from '../../models/lifecycle.js';
import { trainForPipeline } from '../../models/pipeline-training.js';
import { artifactOf } from '../../models/registry.js';
import { loadSpec } from '../../pipelines/spec.js';
import { trainBootstrap } from '../../producers/bootstrap.js';
import { createLooplineProducer } from '../../producers/client.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan, pointInTimeRows } from '../../producers/replay-plan.js';
import { createReplayer } from '../../producers/replayer.js';
import { createRegistryClient, type RegistryClientOptions } from '../../schemas/registry-client.js';
import type { ClientEvent, LabeledPrediction } from '../../schemas/types.js';
import { createModelRegistry } from '../../store/model-registry.js';
import { SECURED_WORKERS, workerPrincipal } from '../../infra/acls.js';
import { createKafka, kafkaTls } from '../../streams/kafka.js';
import { createLogger } from '../../streams/logger.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';
import { groupCaughtUp, header, readTopic } from '../support/read-topic.js';

const credentialsFile = process.env.LOOPLINE_TEST_SECURE_CREDENTIALS;
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { spec, dir } = loadSpec(path.join(root, 'pipelines', 'elec2.json'));

// kafkajs's table of broker error codes: FindCoordinator refusals reach the caller only as
// KafkaJSGroupCoordinatorNotFound, so the broker's answer is read from kafkajs's own log.
const { errorCodes } = createRequire(import.meta.url)('kafkajs/src/protocol/error.js') as { errorCodes: Array<{ type: string; message: string }> };
const brokerLog: Array<{ error?: string }> = [];
const typeOfMessage = (message: string | undefined) => errorCodes.find((c) => c.message === message)?.type;

/** The broker's error type, wherever kafkajs put it (the error itself, its cause, or a retry wrapper's originalError). */
function kafkaErrorType(err: unknown): string | undefined {
  for (let e = err as { type?: string; originalError?: unknown; cause?: unknown; errors?: unknown[] } | undefined, depth = 0; e && depth < 6; depth++) {
    if (typeof e.type === 'string') return e.type;
    const next = e.originalError ?? e.cause ?? e.errors?.[0];
    e = next as typeof e;
  }
  return undefined;
}

async function refusedWith(action: () => Promise<unknown>): Promise<string> {
  const from = brokerLog.length;
  try {
    await action();
  } catch (err) {
    const logged = brokerLog.slice(from).map((l) => typeOfMessage(l.error)).find(Boolean);
    return kafkaErrorType(err) ?? logged ?? `${(err as Error).name}: ${(err as Error).message}`;
  }
  return 'ALLOWED';
}

function event(i: number): ClientEvent {
  return {
    event_id: `acl-${i}`,
    pipeline: spec.name,
    entity_id: 'nsw',
    event_time: Date.UTC(1996, 7, 1) + i * 1_800_000,
    produced_at: Date.now(),
    fields: { day: '3', period: (i % 48) / 48, nswdemand: 0.4, vicprice: 0.003, vicdemand: 0.4, transfer: 0.4 },
  };
}

describe.runIf(credentialsFile)('secure stack', () => {
  let env: TestEnv;
  let workerConfig: LooplineConfig;
  let workerKafka: Kafka;
  let pipeline: RunningPipeline | null = null;
  const worker = 'preprocessor';

  beforeAll(async () => {
    env = await createTestEnv('secure');
    const creds = (JSON.parse(fs.readFileSync(credentialsFile!, 'utf8')) as SecureCredentials).kafka.workers[worker];
    expect(creds.username).toBe(workerPrincipal(worker));
    // The worker process's own configuration: same servers, same prefix and keyspace, its own Kafka principal.
    workerConfig = loadConfig({
      ...process.env,
      LOOPLINE_TOPIC_PREFIX: env.config.kafka.topicPrefix,
      LOOPLINE_CASSANDRA_KEYSPACE: env.config.cassandra.keyspace,
      LOOPLINE_KAFKA_SASL_USERNAME: creds.username,
      LOOPLINE_KAFKA_SASL_PASSWORD: creds.password,
      LOOPLINE_LOG_LEVEL: 'error',
    });
    const capture = createLogger({ level: 'warn', name: 'acl-probe', destination: { write: (line: string) => void brokerLog.push(JSON.parse(line) as { error?: string }) } });
    workerKafka = createKafka({ ...workerConfig.kafka, clientId: 'acl-probe' }, capture);
  });
  afterAll(async () => {
    await pipeline?.stop();
    await env?.cleanup();
  });

  it('runs the preprocessor as its own principal: it consumes, produces and dead-letters, and is refused everything else', async () => {
    expect(env.bootstrap.acls).toBeGreaterThan(0);
    const lines: string[] = [];
    const logger = createLogger({ level: 'warn', name: 'secure-preprocessor', destination: { write: (l: string) => void lines.push(l) } });
    pipeline = await startPipeline(workerConfig, spec, logger, { workers: [worker], runtime: { batchMax: 100 } });

    // Input, sent by the admin: 60 events and 2 records that cannot be decoded.
    const producer = createLooplineProducer({ kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger });
    await producer.connect();
    await producer.sendEvents(Array.from({ length: 60 }, (_, i) => event(i)));
    await producer.sendRaw('events.client', [{ key: 'nsw', value: Buffer.from('not avro') }, { key: 'nsw', value: Buffer.from([0, 0, 0]) }]);
    await producer.disconnect();

    const vectors = await readTopic(env.kafka, env.names.physical('features.vectors'), (m) => m.length >= 60, 90_000);
    expect(new Set(vectors.map((m) => m.key)).size).toBe(1);
    expect(vectors).toHaveLength(60);
    const dead = await readTopic(env.kafka, env.names.physical('events.client.dlq'), (m) => m.length >= 2, 30_000);
    expect(dead.map((m) => header(m.headers, '__connect.errors.stage'))).toEqual(['VALUE_CONVERTER', 'VALUE_CONVERTER']);
    const group = `${env.names.prefix}loopline-${worker}`;
    await waitFor('the preprocessor to commit its offsets', () => groupCaughtUp(env.admin, group, env.names.physical('events.client')), 60_000);
    expect(pipeline.workers.every((w) => w.health().state === 'running')).toBe(true);
    expect(lines.filter((l) => /AUTHORIZATION_FAILED/.test(l))).toEqual([]);

    // Outside its ACLs: every attempt is refused by the broker's authorizer.
    const names = env.names;
    const asWorker = workerKafka;
    const withProducer = async (options: Parameters<Kafka['producer']>[0], fn: (p: Producer) => Promise<unknown>) => {
      const p = asWorker.producer({ ...options, retry: { retries: 1 } });
      try {
        await p.connect();
        await fn(p);
      } finally {
        await p.disconnect().catch(() => {});
      }
    };
    const withAdmin = async (fn: (a: Admin) => Promise<unknown>) => {
      const a = asWorker.admin({ retry: { retries: 1 } });
      try {
        await a.connect();
        await fn(a);
      } finally {
        await a.disconnect().catch(() => {});
      }
    };
    const forged = { topic: names.physical('labels.ground-truth'), messages: [{ key: 'x', value: 'forged label' }] };
    const refusals = {
      // writing another worker's topic (the note's test: a worker producing labels)
      writeLabels: await refusedWith(() => withProducer({}, (p) => p.send(forged))),
      // writing a topic it only reads
      writeOwnInput: await refusedWith(() => withProducer({}, (p) => p.send({ topic: names.physical('events.client'), messages: [{ value: 'x' }] }))),
      // reading a topic it has no business with
      describePredictions: await refusedWith(() => withAdmin((a) => a.fetchTopicOffsets(names.physical('predictions')))),
      // another worker's consumer group
      scorerGroupOffsets: await refusedWith(() => withAdmin((a) => a.fetchOffsets({ groupId: `${names.prefix}loopline-scorer`, topics: [names.physical('features.vectors')] }))),
      // another worker's transactional ids (fencing the scorer's producers)
      scorerTransactionalId: await refusedWith(() =>
        withProducer({ transactionalId: `${names.prefix}loopline-scorer-${names.physical('features.vectors')}-0`, idempotent: true, maxInFlightRequests: 1 }, (p) => p.transaction()),
      ),
      // the same topics under another prefix (another pipeline or environment)
      otherPrefix: await refusedWith(() => withProducer({}, (p) => p.send({ topic: `other-${names.physical('features.vectors')}`, messages: [{ value: 'x' }] }))),
      // administration
      createTopic: await refusedWith(() => withAdmin((a) => a.createTopics({ topics: [{ topic: `${names.prefix}rogue`, numPartitions: 1 }] }))),
      deleteOwnInput: await refusedWith(() => withAdmin((a) => a.deleteTopics({ topics: [names.physical('events.client')], timeout: 5000 }))),
      grantItself: await refusedWith(() =>
        withAdmin((a) =>
          a.createAcls({
            acl: [{
              resourceType: kafkajs.AclResourceTypes.TOPIC, resourceName: '*', resourcePatternType: kafkajs.ResourcePatternTypes.LITERAL,
              principal: `User:${workerPrincipal(worker)}`, host: '*', operation: kafkajs.AclOperationTypes.ALL, permissionType: kafkajs.AclPermissionTypes.ALLOW,
            }],
          }),
        ),
      ),
    };
    expect(refusals).toEqual({
      writeLabels: 'TOPIC_AUTHORIZATION_FAILED',
      writeOwnInput: 'TOPIC_AUTHORIZATION_FAILED',
      describePredictions: 'TOPIC_AUTHORIZATION_FAILED',
      scorerGroupOffsets: 'GROUP_AUTHORIZATION_FAILED',
      scorerTransactionalId: 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
      otherPrefix: 'TOPIC_AUTHORIZATION_FAILED',
      createTopic: 'TOPIC_AUTHORIZATION_FAILED',
      deleteOwnInput: 'TOPIC_AUTHORIZATION_FAILED',
      grantItself: 'CLUSTER_AUTHORIZATION_FAILED',
    });
    // Nothing forged reached the labels topic.
    expect((await env.admin.fetchTopicOffsets(names.physical('labels.ground-truth'))).every((p) => p.high === '0')).toBe(true);
  });

  it('runs the scoring path and the joiner in one process, each worker as its own principal (per-worker credentials, no shared pair)', async () => {
    await pipeline?.stop();
    pipeline = null;
    const own = await createTestEnv('secure-all');
    let all: RunningPipeline | null = null;
    try {
      expect(own.bootstrap.acls).toBeGreaterThan(0);
      const registry = createModelRegistry(own.cql);
      expect((await trainBootstrap(spec, dir, registry)).promoted).toBe(true);

      const creds = (JSON.parse(fs.readFileSync(credentialsFile!, 'utf8')) as SecureCredentials).kafka.workers;
      const perWorker = Object.fromEntries(
        SECURED_WORKERS.flatMap((w) => {
          const scope = w.toUpperCase().replaceAll('-', '_');
          return [[`LOOPLINE_KAFKA_SASL_${scope}_USERNAME`, creds[w].username], [`LOOPLINE_KAFKA_SASL_${scope}_PASSWORD`, creds[w].password]];
        }),
      );
      const { LOOPLINE_KAFKA_SASL_USERNAME: _u, LOOPLINE_KAFKA_SASL_PASSWORD: _p, ...shared } = process.env;
      const config = loadConfig({ ...shared, ...perWorker, LOOPLINE_TOPIC_PREFIX: own.config.kafka.topicPrefix, LOOPLINE_CASSANDRA_KEYSPACE: own.config.cassandra.keyspace, LOOPLINE_LOG_LEVEL: 'warn' });
      expect(config.kafka.sasl).toBeNull();
      const lines: string[] = [];
      const logger = createLogger({ level: 'info', name: 'secure-workers', destination: { write: (l: string) => void lines.push(l) } });
      const workers = [...SCORING_WORKERS, 'joiner'];
      all = await startPipeline(config, spec, logger, { workers, env: { ...process.env, LOOPLINE_SCORER_RELOAD_INTERVAL_MS: '3600000' }, runtime: { batchMax: 200 } });

      // The admin replays 300 rows: features, events and their labels.
      const csv = readCsv(path.join(dir, spec.replay!.csv));
      const producer = createLooplineProducer({ kafka: own.kafka, codec: own.codec, names: own.names, logger: own.logger });
      await producer.connect();
      const sent = await createReplayer({ producer, logger: own.logger }).run(buildReplayPlan(spec, csv, { offset: 6000, limit: 300 }), { speed: 'max', eventsPerSecond: 1500 });
      await producer.disconnect();
      expect(sent.labels).toBeGreaterThan(0);

      const group = (w: string) => `${own.names.prefix}loopline-${w}`;
      await waitFor('the preprocessor to consume every event', () => groupCaughtUp(own.admin, group('preprocessor'), own.names.physical('events.client')), 120_000, 500);
      await waitFor('the scorer to consume every vector', () => groupCaughtUp(own.admin, group('scorer'), own.names.physical('features.vectors'), true), 120_000, 500);
      const byEvent = await readTopic(own.kafka, own.names.physical('predictions.by-event'), (m) => m.length >= sent.events, 60_000);
      expect(byEvent).toHaveLength(sent.events);
      const labeledMessages = await readTopic(own.kafka, own.names.physical('predictions.labeled'), (m) => m.length >= sent.labels, 120_000);
      const labeled: LabeledPrediction[] = [];
      for (const m of labeledMessages) {
        const d = await own.codec.decode('LabeledPrediction', m.value);
        if (d.ok) labeled.push(d.value);
      }
      expect(labeled).toHaveLength(sent.labels);
      expect(labeled.every((l) => sent.eventIds.includes(l.prediction.event_id))).toBe(true);
      for (const t of ['labels.ground-truth', 'predictions.by-event'] as const) {
        await waitFor(`the joiner to commit ${t}`, () => groupCaughtUp(own.admin, group('joiner'), own.names.physical(t), true), 60_000, 500);
      }

      // The scorer's broadcast consumer (group <group>-broadcast-<uuid>) sees a promotion long before its hourly poll.
      const window = pointInTimeRows(spec, buildReplayPlan(spec, csv, { offset: 1000, limit: 3000 })).filter((r) => r.label !== null);
      const v2 = trainForPipeline(spec, window.map((r) => r.values), window.map((r) => r.label!));
      expect((await registry.register({ pipeline: spec.name, modelName: spec.model.name, status: 'candidate', ...artifactOf(v2), parentVersion: 1 })).version).toBe(2);
      expect(await registry.promote({ pipeline: spec.name, modelName: spec.model.name, version: 2, expected: 1, actor: 'test', reason: 'broadcast under ACLs' })).toBe(true);
      const announcer = createModelAnnouncer(own.kafka, own.codec, own.names);
      await announcer.announce(modelEvent({ pipeline: spec.name, modelName: spec.model.name, actor: 'test', reason: 'broadcast under ACLs', cause: 'test' }, 'PROMOTE', 2, 1));
      await announcer.close();
      await waitFor('the scorer to swap to version 2 on the broadcast', () => all!.impl<Scorer>('scorer')!.serving().champion === 2, 60_000);

      expect(Object.fromEntries(all.workers.map((w) => [w.name, w.health().state]))).toEqual(Object.fromEntries(all.workers.map((w) => [w.name, 'running'])));
      expect(all.workers.map((w) => w.name)).toEqual(expect.arrayContaining(['preprocessor', 'scorer', 'joiner']));
      expect(lines.filter((l) => /AUTHORIZATION_FAILED|authentication failed/i.test(l))).toEqual([]);
    } finally {
      await all?.stop();
      await own.cleanup();
    }
  }, 600_000);

  it('refuses clients without TLS, with the wrong credentials, without a client certificate or a valid token', async () => {
    const k = env.config.kafka;
    const kafkaRefusal = (options: Partial<ConstructorParameters<typeof Kafka>[0]>) =>
      refusedWith(async () => {
        const a = new Kafka({ clientId: 'intruder', brokers: k.brokers, logLevel: logLevel.NOTHING, connectionTimeout: 3000, retry: { retries: 0 }, ...options }).admin();
        try {
          await a.connect();
          await a.listTopics();
        } finally {
          await a.disconnect().catch(() => {});
        }
      });
    const tls = kafkaTls(k);
    const kafka = {
      plaintext: await kafkaRefusal({}),
      wrongPassword: await kafkaRefusal({ ssl: tls, sasl: { mechanism: 'scram-sha-512', username: k.sasl!.username, password: 'guess' } }),
      noSasl: await kafkaRefusal({ ssl: tls }),
      unverifiedServer: await kafkaRefusal({ ssl: { rejectUnauthorized: true }, sasl: k.sasl as SASLOptions }),
    };
    expect(kafka.plaintext).not.toBe('ALLOWED');
    expect(kafka.wrongPassword).toMatch(/SASL|Authentication/i);
    expect(kafka.noSasl).not.toBe('ALLOWED');
    expect(kafka.unverifiedServer).toMatch(/self-signed certificate|unable to verify/i);

    const c = env.config.cassandra;
    const read = (f: string | null) => fs.readFileSync(f!);
    const cql = async (options: Partial<cassandra.ClientOptions>) => {
      const client = new cassandra.Client({ contactPoints: c.contactPoints, localDataCenter: c.localDataCenter, socketOptions: { connectTimeout: 3000 }, ...options });
      try {
        await client.connect();
        await client.execute('SELECT release_version FROM system.local');
        return 'ALLOWED';
      } catch (err) {
        return (err as Error).message;
      } finally {
        await client.shutdown().catch(() => {});
      }
    };
    const fullTls = { ca: [read(c.sslCa)], cert: read(c.sslCert), key: read(c.sslKey), rejectUnauthorized: true };
    expect(await cql({ credentials: c.credentials!, sslOptions: fullTls })).toBe('ALLOWED');
    expect(await cql({ credentials: { username: 'cassandra', password: 'cassandra' }, sslOptions: fullTls })).toMatch(/AuthenticationError|incorrect/);
    expect(await cql({ sslOptions: fullTls })).toMatch(/requires authentication|AuthenticationError|credentials/i);
    expect(await cql({ credentials: c.credentials! })).not.toBe('ALLOWED');
    expect(await cql({ credentials: c.credentials!, sslOptions: { ca: [read(c.sslCa)], rejectUnauthorized: true } })).toMatch(/certificate required|alert/i);

    // The registry: HTTPS only, and a bearer token signed by the stack's key, with its issuer and audience.
    const r = env.config.registry;
    const creds = JSON.parse(fs.readFileSync(credentialsFile!, 'utf8')) as SecureCredentials;
    expect(creds.registry.token).toBe(r.token);
    expect(await createRegistryClient(r).subjects()).toContain(env.names.subject('events.client', 'ClientEvent'));
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const tokenKey = fs.readFileSync(path.join(path.dirname(credentialsFile!), 'tls', 'registry-token.key'));
    const registryRefusal = (options: Omit<RegistryClientOptions, 'url'>) =>
      createRegistryClient({ url: r.url, ca: r.ca, timeoutMs: 5000, ...options }).subjects().then(
        () => 'ALLOWED',
        (err: { code?: string; retriable?: boolean }) => `${err.code}${isConfigError(err) ? ' (stops the worker: never retried, never dead-lettered)' : err.retriable ? ' (retried)' : ''}`,
      );
    expect({
      noToken: await registryRefusal({}),
      forgedToken: await registryRefusal({ token: signRegistryToken(privateKey.export({ type: 'pkcs8', format: 'pem' })) }),
      otherIssuer: await registryRefusal({ token: signRegistryToken(tokenKey, { iss: 'someone-else' }) }),
      expiredToken: await registryRefusal({ token: signRegistryToken(tokenKey, {}, -60) }),
      basicAuth: await registryRefusal({ basicAuth: 'admin:admin' }),
      unverifiedServer: await registryRefusal({ ca: null, token: r.token }),
    }).toEqual({
      noToken: 'REGISTRY_AUTH (stops the worker: never retried, never dead-lettered)',
      forgedToken: 'REGISTRY_AUTH (stops the worker: never retried, never dead-lettered)',
      otherIssuer: 'REGISTRY_AUTH (stops the worker: never retried, never dead-lettered)',
      expiredToken: 'REGISTRY_AUTH (stops the worker: never retried, never dead-lettered)',
      basicAuth: 'REGISTRY_AUTH (stops the worker: never retried, never dead-lettered)',
      unverifiedServer: 'REGISTRY_TLS (stops the worker: never retried, never dead-lettered)',
    });
    await expect(createRegistryClient({ url: r.url.replace('https:', 'http:'), timeoutMs: 3000, token: r.token }).subjects()).rejects.toThrow();
  });
});
