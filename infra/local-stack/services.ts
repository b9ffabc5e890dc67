/**
 * The three servers of the local stack, each a real JVM process on loopback:
 * Kafka 4.x (KRaft, combined broker + controller), Cassandra 5.0 and Apicurio
 * Registry (Confluent-compatible API). Each definition writes its own config,
 * says how to launch it and how to probe it with a real client round trip.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import cassandra from 'cassandra-driver';
import { Kafka, logLevel } from 'kafkajs';
import { findJava } from './java.js';
import type { StackPaths } from './paths.js';

export type ServiceName = 'kafka' | 'cassandra' | 'schema-registry';

export interface StackPorts {
  kafka: number;
  kafkaController: number;
  cassandra: number;
  cassandraStorage: number;
  registry: number;
}

/** Default ports, chosen away from the servers' usual ones so a developer's own servers do not clash. */
export function stackPorts(env: NodeJS.ProcessEnv = process.env): StackPorts {
  const port = (key: string, fallback: number): number => {
    const raw = env[key];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${key} must be a port number in 1..65535, got "${raw}"`);
    return n;
  };
  return {
    kafka: port('LOOPLINE_STACK_KAFKA_PORT', 19092),
    kafkaController: port('LOOPLINE_STACK_KAFKA_CONTROLLER_PORT', 19093),
    cassandra: port('LOOPLINE_STACK_CASSANDRA_PORT', 19042),
    cassandraStorage: port('LOOPLINE_STACK_CASSANDRA_STORAGE_PORT', 17000),
    registry: port('LOOPLINE_STACK_REGISTRY_PORT', 18081),
  };
}

export interface Launch {
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
}

export interface ServiceDef {
  name: ServiceName;
  /** Seconds to wait for readiness after launch. */
  startTimeoutMs: number;
  /** Writes config files and prepares data folders; returns how to launch. */
  prepare(paths: StackPaths, ports: StackPorts): Launch;
  /** One real client round trip; resolves true when the server answers correctly. */
  probe(ports: StackPorts): Promise<boolean>;
  /** Where to connect, for people and for the environment. */
  address(ports: StackPorts): string;
}

const kafka: ServiceDef = {
  name: 'kafka',
  startTimeoutMs: 90_000,
  address: (p) => `127.0.0.1:${p.kafka}`,
  prepare(paths, ports) {
    const run = paths.run('kafka');
    const data = path.join(run, 'data');
    fs.mkdirSync(data, { recursive: true });
    fs.mkdirSync(path.join(run, 'logs'), { recursive: true });
    const props = [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${ports.kafkaController}`,
      `listeners=PLAINTEXT://127.0.0.1:${ports.kafka},CONTROLLER://127.0.0.1:${ports.kafkaController}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${ports.kafka}`,
      'inter.broker.listener.name=PLAINTEXT',
      'controller.listener.names=CONTROLLER',
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      `log.dirs=${data}`,
      // One node: internal topics cannot have the default replication factor of 3.
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=1',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'transaction.state.log.num.partitions=1',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      'group.initial.rebalance.delay.ms=0',
      'num.partitions=1',
      // Topics are created by Loopline's catalogue, never by a typo.
      'auto.create.topics.enable=false',
      'num.network.threads=2',
      'num.io.threads=2',
      'num.recovery.threads.per.data.dir=1',
      'log.segment.bytes=16777216',
      'log.retention.check.interval.ms=60000',
    ];
    const config = path.join(run, 'server.properties');
    fs.writeFileSync(config, props.join('\n') + '\n');
    const java = findJava([17, 21, 25]);
    const classpath = path.join(paths.lib('kafka'), '*');
    if (!fs.existsSync(path.join(data, 'meta.properties'))) {
      const idFile = path.join(run, 'cluster-id');
      if (!fs.existsSync(idFile)) fs.writeFileSync(idFile, crypto.randomBytes(16).toString('base64url'));
      execFileSync(
        java,
        [
          '-Xmx256m',
          `-Dlog4j2.configurationFile=${path.join(paths.templates, 'kafka', 'tools-log4j2.properties')}`,
          '-cp', classpath, 'kafka.tools.StorageTool', 'format',
          '-t', fs.readFileSync(idFile, 'utf8').trim(), '-c', config, '--ignore-formatted',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
    }
    return {
      command: java,
      args: [
        '-Xms512m', '-Xmx512m', '-server', '-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20',
        '-XX:InitiatingHeapOccupancyPercent=35', '-XX:+ExplicitGCInvokesConcurrent', '-Djava.awt.headless=true',
        `-Dlog4j2.configurationFile=${path.join(paths.templates, 'kafka', 'log4j2.properties')}`,
        `-Dkafka.logs.dir=${path.join(run, 'logs')}`,
        '-cp', classpath, 'kafka.Kafka', config,
      ],
    };
  },
  async probe(ports) {
    const admin = new Kafka({
      clientId: 'loopline-stack-probe',
      brokers: [`127.0.0.1:${ports.kafka}`],
      logLevel: logLevel.NOTHING,
      connectionTimeout: 2000,
      retry: { retries: 0 },
    }).admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      return cluster.brokers.length > 0;
    } catch {
      return false;
    } finally {
      await admin.disconnect().catch(() => {});
    }
  },
};

const cassandraService: ServiceDef = {
  name: 'cassandra',
  startTimeoutMs: 180_000,
  address: (p) => `127.0.0.1:${p.cassandra}`,
  prepare(paths, ports) {
    const run = paths.run('cassandra');
    fs.mkdirSync(path.join(run, 'data'), { recursive: true });
    fs.mkdirSync(path.join(run, 'logs'), { recursive: true });
    const yaml = `# Generated by Loopline's local stack: one node on loopback, sized for a small machine.
cluster_name: 'loopline-local'
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:${ports.cassandraStorage}"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: ${ports.cassandraStorage}
native_transport_port: ${ports.cassandra}
start_native_transport: true
${commitlogSync(process.env)}
commitlog_segment_size: 32MiB
commitlog_disk_access_mode: legacy
authenticator:
  class_name: org.apache.cassandra.auth.AllowAllAuthenticator
authorizer: AllowAllAuthorizer
memtable_allocation_type: heap_buffers
memtable_heap_space: 128MiB
concurrent_compactors: 1
compaction_throughput: 0MiB/s
key_cache_size: 16MiB
prepared_statements_cache_size: 8MiB
auto_snapshot: false
hinted_handoff_enabled: false
storage_compatibility_mode: NONE
`;
    const config = path.join(run, 'cassandra.yaml');
    fs.writeFileSync(config, yaml);
    const lib = paths.lib('cassandra');
    const jamm = fs.readdirSync(lib).find((f) => /^jamm-.*\.jar$/.test(f));
    return {
      command: findJava([17, 11]),
      args: [
        '-ea', '-da:net.openhft...', '-XX:+UseThreadPriorities', '-XX:+HeapDumpOnOutOfMemoryError',
        `-XX:HeapDumpPath=${run}`, '-Xss256k', '-XX:+UseTLAB', '-XX:+ResizeTLAB', '-XX:+PerfDisableSharedMem',
        '-XX:+CrashOnOutOfMemoryError', '-Djava.net.preferIPv4Stack=true', '-Dchronicle.analytics.disable=true',
        '-Xms1G', '-Xmx1G', '-XX:+UseG1GC', '-XX:+ParallelRefProcEnabled', '-XX:MaxTenuringThreshold=1',
        '-XX:MaxGCPauseMillis=300', '-XX:InitiatingHeapOccupancyPercent=70', '-Djdk.attach.allowAttachSelf=true',
        ...JAVA17_MODULE_FLAGS,
        '-Dio.netty.tryReflectionSetAccessible=true', '-Dio.netty.allocator.useCacheForAllThreads=true',
        '-Dio.netty.allocator.maxOrder=11',
        ...(jamm ? [`-javaagent:${path.join(lib, jamm)}`] : []),
        `-Dcassandra.config=file://${config}`,
        `-Dcassandra.storagedir=${path.join(run, 'data')}`,
        `-Dcassandra.logdir=${path.join(run, 'logs')}`,
        `-Dlogback.configurationFile=${path.join(paths.templates, 'cassandra', 'logback.xml')}`,
        '-Dcassandra-foreground=yes',
        '-Dcassandra.skip_wait_for_gossip_to_settle=0',
        '-cp', path.join(lib, '*'),
        'org.apache.cassandra.service.CassandraDaemon',
      ],
    };
  },
  async probe(ports) {
    const client = new cassandra.Client({
      contactPoints: [`127.0.0.1:${ports.cassandra}`],
      localDataCenter: 'datacenter1',
      socketOptions: { connectTimeout: 2000, readTimeout: 5000 },
    });
    try {
      await client.connect();
      const rs = await client.execute('SELECT release_version FROM system.local');
      return typeof rs.first()?.get('release_version') === 'string';
    } catch {
      return false;
    } finally {
      await client.shutdown().catch(() => {});
    }
  },
};

/**
 * The commit log's sync mode, from LOOPLINE_STACK_CASSANDRA_COMMITLOG_SYNC:
 * - `periodic` (default): a write is acknowledged before its commit log is synced (every 10 s).
 *   With one node, a crash of the Cassandra process can lose acknowledged writes: the fault
 *   suite's cassandra-kill-restart case lost prediction-log rows this way (RELIABILITY.md).
 * - `group`: acknowledged once the commit log is synced, syncs grouped over 15 ms.
 * - `batch`: acknowledged once synced, synced per write.
 */
export function commitlogSync(env: NodeJS.ProcessEnv): string {
  const mode = env.LOOPLINE_STACK_CASSANDRA_COMMITLOG_SYNC ?? 'periodic';
  if (mode === 'periodic') return 'commitlog_sync: periodic\ncommitlog_sync_period: 10000ms';
  if (mode === 'group') return 'commitlog_sync: group\ncommitlog_sync_group_window: 15ms';
  if (mode === 'batch') return 'commitlog_sync: batch';
  throw new Error(`LOOPLINE_STACK_CASSANDRA_COMMITLOG_SYNC must be periodic, group or batch, got "${mode}"`);
}

/** From Cassandra 5.0's conf/jvm17-server.options: required on Java 17. */
const JAVA17_MODULE_FLAGS = [
  ...[
    'java.base/jdk.internal.misc', 'java.management.rmi/com.sun.jmx.remote.internal.rmi',
    'java.management/com.sun.jmx.remote.security', 'java.rmi/sun.rmi.registry', 'java.rmi/sun.rmi.server',
    'java.sql/java.sql', 'java.base/java.lang.ref', 'jdk.unsupported/sun.misc',
  ].flatMap((m) => ['--add-exports', `${m}=ALL-UNNAMED`]),
  ...[
    'java.base/java.lang.module', 'java.base/jdk.internal.loader', 'java.base/jdk.internal.ref',
    'java.base/jdk.internal.reflect', 'java.base/jdk.internal.math', 'java.base/jdk.internal.module',
    'java.base/jdk.internal.util.jar', 'jdk.management/com.sun.management.internal', 'java.base/sun.nio.ch',
    'java.base/java.io', 'java.base/java.lang.reflect', 'java.base/java.lang', 'java.base/java.util', 'java.base/java.nio',
  ].flatMap((m) => ['--add-opens', `${m}=ALL-UNNAMED`]),
];

const registry: ServiceDef = {
  name: 'schema-registry',
  startTimeoutMs: 90_000,
  address: (p) => `http://127.0.0.1:${p.registry}/apis/ccompat/v7`,
  prepare(paths, ports) {
    const run = paths.run('schema-registry');
    fs.mkdirSync(path.join(run, 'data'), { recursive: true });
    fs.mkdirSync(path.join(run, 'logs'), { recursive: true });
    const runner = fs.readdirSync(paths.registryDist).find((f) => f.endsWith('-runner.jar'));
    if (!runner) throw new Error(`no *-runner.jar in ${paths.registryDist}; run the stack's fetch step again`);
    return {
      command: findJava([17, 21, 11]),
      args: [
        '-Xms128m', '-Xmx384m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1',
        '-Dquarkus.http.host=127.0.0.1', `-Dquarkus.http.port=${ports.registry}`,
        '-Dquarkus.log.console.format=%d{HH:mm:ss} %-5p [%c{2.}] %s%e%n',
        '-jar', path.join(paths.registryDist, runner),
      ],
      // Schemas persist in an H2 file database, so ids stay valid across restarts.
      // WRITE_DELAY=0: every commit reaches the file at once, so an acknowledged registration survives kill -9.
      env: { REGISTRY_DATASOURCE_URL: `jdbc:h2:file:${path.join(run, 'data', 'registry')};WRITE_DELAY=0` },
    };
  },
  async probe(ports) {
    try {
      const res = await fetch(`http://127.0.0.1:${ports.registry}/apis/ccompat/v7/subjects`, { signal: AbortSignal.timeout(3000) });
      return res.ok;
    } catch {
      return false;
    }
  },
};

/** Start order: the registry is independent of Kafka (H2 storage), so all three start together. */
export const SERVICES: readonly ServiceDef[] = [kafka, cassandraService, registry];
