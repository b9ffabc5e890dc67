/**
 * The three servers of the local stack, each a real JVM process on loopback:
 * Kafka 4.x (KRaft, combined broker + controller), Cassandra 5.0 and Apicurio
 * Registry (Confluent-compatible API). Each definition writes its own config,
 * says how to launch it and how to probe it with a real client round trip.
 *
 * In secure mode (`stack up --secure`) the same servers are locked down:
 * - Kafka: clients on SASL_SSL with SCRAM-SHA-512 (users bootstrapped into the
 *   metadata log at format time), the controller on mutual TLS,
 *   StandardAuthorizer with no access unless an ACL grants it; `broker` and
 *   `admin` are super users, every worker has its own user (streams/acls.ts);
 * - Cassandra: PasswordAuthenticator + CassandraAuthorizer, TLS required on the
 *   native port with a client certificate, internode TLS; at first start a
 *   superuser is created and the default cassandra role loses login and
 *   superuser;
 * - the registry: HTTPS only, and every request needs a bearer token (a JWT
 *   signed by the stack's own key). Apicurio 2.6 has no basic auth without an
 *   OIDC server and fixes client-certificate auth at build time, but its
 *   OIDC layer verifies tokens offline against a public key.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import cassandra from 'cassandra-driver';
import { Kafka, logLevel } from 'kafkajs';
import { createRegistryClient } from '../../schemas/registry-client.js';
import { findJava } from './java.js';
import type { StackPaths } from './paths.js';
import { BROKER_CERT_PRINCIPAL, REGISTRY_TOKEN_AUDIENCE, REGISTRY_TOKEN_ISSUER, type Credentials, type SecureMaterial } from './secure.js';

/** What a server is. */
export type ServiceKind = 'kafka' | 'cassandra' | 'schema-registry';
/** A server of the stack: its kind (one node), or `kafka-<n>` / `cassandra-<n>` (a node of the cluster). */
export type ServiceName = ServiceKind | `kafka-${number}` | `cassandra-${number}`;
export type StackMode = 'plain' | 'secure';
/**
 * `single`: one node of each server; `cluster` (`stack up --cluster`): three
 * Kafka nodes (each broker + controller, replication 3, min.insync.replicas 2)
 * and three Cassandra nodes (keyspaces with replication 3, read and written at
 * LOCAL_QUORUM), on the loopback addresses 127.0.0.1–3 with the same ports
 * each, and one registry.
 */
export type StackTopology = 'single' | 'cluster';

/** The loopback addresses of the cluster's nodes (Linux routes all of 127/8 to lo). */
export const CLUSTER_HOSTS: readonly string[] = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];

export function topologyHosts(topology: StackTopology): readonly string[] {
  return topology === 'cluster' ? CLUSTER_HOSTS : ['127.0.0.1'];
}

export interface StackPorts {
  kafka: number;
  kafkaController: number;
  cassandra: number;
  cassandraStorage: number;
  registry: number;
}

/**
 * Default ports, chosen away from the servers' usual ones so a developer's own servers do not clash;
 * the secure stack's defaults are 10000 higher and the cluster's 5000 higher, so the stacks can run
 * side by side (all below Linux's ephemeral range, 32768–60999).
 */
export function stackPorts(env: NodeJS.ProcessEnv = process.env, mode: StackMode = 'plain', topology: StackTopology = 'single'): StackPorts {
  const offset = (mode === 'secure' ? 10_000 : 0) + (topology === 'cluster' ? 5_000 : 0);
  const port = (key: string, fallback: number): number => {
    const raw = env[key];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${key} must be a port number in 1..65535, got "${raw}"`);
    return n;
  };
  return {
    kafka: port('LOOPLINE_STACK_KAFKA_PORT', 19092 + offset),
    kafkaController: port('LOOPLINE_STACK_KAFKA_CONTROLLER_PORT', 19093 + offset),
    cassandra: port('LOOPLINE_STACK_CASSANDRA_PORT', 19042 + offset),
    cassandraStorage: port('LOOPLINE_STACK_CASSANDRA_STORAGE_PORT', 17000 + offset),
    registry: port('LOOPLINE_STACK_REGISTRY_PORT', 18081 + offset),
  };
}

export interface Launch {
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
}

/** What a service definition works with: where, on which ports, and (secure mode) the key material. */
export interface ServiceContext {
  paths: StackPaths;
  ports: StackPorts;
  secure: SecureMaterial | null;
}

/**
 * `ready`: answers as configured (secure mode: as the admin principal);
 * `uninitialized`: answers, but its secured state is not set up yet (`initialize` does it);
 * `down`: no answer.
 */
export type ProbeResult = 'ready' | 'uninitialized' | 'down';

export interface ServiceDef {
  name: ServiceName;
  kind: ServiceKind;
  /** The loopback address it listens on. */
  host: string;
  /** Milliseconds to wait for readiness after launch. */
  startTimeoutMs: number;
  /** Writes config files and prepares data folders; returns how to launch. */
  prepare(ctx: ServiceContext): Launch;
  /** Resolves when the server may be launched (a cluster's non-seed Cassandra node waits for its seed to answer). */
  beforeLaunch?(ctx: ServiceContext): Promise<void>;
  /** One real client round trip. */
  probe(ctx: ServiceContext): Promise<ProbeResult>;
  /** Brings an `uninitialized` server to `ready` (secure mode: users and roles); idempotent. */
  initialize?(ctx: ServiceContext): Promise<void>;
  /** Where to connect, for people and for the environment. */
  address(ctx: ServiceContext): string;
}

const readPem = (file: string): Buffer => fs.readFileSync(file);

/** Writes a file only its owner can read (configs holding passwords). */
/** A KRaft cluster id (16 random bytes, base64url) that does not begin with '-', as Kafka's Uuid.randomUuid() makes them. */
export function kafkaClusterId(random: () => Buffer = () => crypto.randomBytes(16)): string {
  for (;;) {
    const id = random().toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function writePrivate(file: string, text: string): void {
  fs.writeFileSync(file, text, { mode: 0o600 });
  fs.chmodSync(file, 0o600);
}

/** Kafka's JAAS line for a SCRAM login; the values are base64url, so no quoting issues. */
function scramJaas(c: Credentials): string {
  return `org.apache.kafka.common.security.scram.ScramLoginModule required username="${c.username}" password="${c.password}";`;
}

/** Every SCRAM user the secure broker knows: its own, the admin's and one per worker. */
function scramUsers(secure: SecureMaterial): Credentials[] {
  return [secure.credentials.kafka.broker, secure.credentials.kafka.admin, ...Object.values(secure.credentials.kafka.workers)];
}

/** Listener and security settings of the plain broker. */
function plainKafkaProps(ports: StackPorts, host: string): string[] {
  return [
    `listeners=PLAINTEXT://${host}:${ports.kafka},CONTROLLER://${host}:${ports.kafkaController}`,
    `advertised.listeners=PLAINTEXT://${host}:${ports.kafka}`,
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
  ];
}

/**
 * The secure broker: clients (and the broker itself, inter-broker) on
 * SASL_SSL + SCRAM-SHA-512; the controller listener on mutual TLS, where the
 * broker's certificate maps to a super user (KRaft cannot use SCRAM there: the
 * credentials live in the metadata the controller serves).
 */
function secureKafkaProps(ports: StackPorts, secure: SecureMaterial): string[] {
  const { tls, credentials } = secure;
  return [
    `listeners=CLIENT://127.0.0.1:${ports.kafka},CONTROLLER://127.0.0.1:${ports.kafkaController}`,
    `advertised.listeners=CLIENT://127.0.0.1:${ports.kafka}`,
    'inter.broker.listener.name=CLIENT',
    'listener.security.protocol.map=CLIENT:SASL_SSL,CONTROLLER:SSL',
    'sasl.enabled.mechanisms=SCRAM-SHA-512',
    'sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512',
    `listener.name.client.scram-sha-512.sasl.jaas.config=${scramJaas(credentials.kafka.broker)}`,
    'listener.name.controller.ssl.client.auth=required',
    'ssl.keystore.type=PKCS12',
    `ssl.keystore.location=${tls.serverKeystore}`,
    `ssl.keystore.password=${credentials.storePassword}`,
    `ssl.key.password=${credentials.storePassword}`,
    'ssl.truststore.type=PKCS12',
    `ssl.truststore.location=${tls.truststore}`,
    `ssl.truststore.password=${credentials.storePassword}`,
    'ssl.endpoint.identification.algorithm=https',
    // Certificate principals: CN=loopline-server -> User:loopline-server.
    'ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT',
    'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer',
    'allow.everyone.if.no.acl.found=false',
    `super.users=User:${BROKER_CERT_PRINCIPAL};User:${credentials.kafka.broker.username};User:${credentials.kafka.admin.username}`,
  ];
}

/** The SCRAM users already in the broker's metadata (recorded at format, and when `initialize` adds one). */
const scramUsersFile = (run: string) => path.join(run, 'scram-users.json');
function knownScramUsers(run: string): string[] {
  try {
    return JSON.parse(fs.readFileSync(scramUsersFile(run), 'utf8')) as string[];
  } catch {
    return [];
  }
}

/** One node of a stack's servers: its number (1-based), its address, and every node's address. */
interface NodeSpec {
  index: number;
  host: string;
  hosts: readonly string[];
}

/**
 * Copies of every topic and row on `nodes` nodes, and how many must take a
 * write: one node cannot have the default replication factor of 3; three
 * nodes keep 3 copies and accept a write on 2 of them. The broker's internal
 * topics (and, in a cluster, every topic's default) use it, and so does a
 * client's environment (clientEnv).
 */
export function clusterReplication(nodes: number): { replicas: number; minInsync: number } {
  const replicas = Math.min(3, nodes);
  return { replicas, minInsync: Math.max(1, replicas - 1) };
}

function kafkaReplicationProps(nodes: number): string[] {
  const { replicas: rf, minInsync: isr } = clusterReplication(nodes);
  return [
    `offsets.topic.replication.factor=${rf}`,
    'offsets.topic.num.partitions=1',
    `transaction.state.log.replication.factor=${rf}`,
    `transaction.state.log.min.isr=${isr}`,
    'transaction.state.log.num.partitions=1',
    `share.coordinator.state.topic.replication.factor=${rf}`,
    `share.coordinator.state.topic.min.isr=${isr}`,
    ...(nodes > 1 ? [`default.replication.factor=${rf}`, `min.insync.replicas=${isr}`, 'unclean.leader.election.enable=false'] : []),
  ];
}

/** What every node of a kind shares: its name (`kafka`; `kafka-2` in a cluster), address and start timeout. */
function nodeIdentity(kind: 'kafka' | 'cassandra', node: NodeSpec, timeoutMs: { single: number; cluster: number }, port: (p: StackPorts) => number) {
  const cluster = node.hosts.length > 1;
  const name: ServiceName = cluster ? `${kind}-${node.index}` : kind;
  const address = ({ ports }: Pick<ServiceContext, 'ports'>) => `${node.host}:${port(ports)}`;
  return { cluster, name, identity: { name, kind, host: node.host, startTimeoutMs: cluster ? timeoutMs.cluster : timeoutMs.single, address } };
}

function kafkaNode(node: NodeSpec): ServiceDef {
  const { cluster, name, identity } = nodeIdentity('kafka', node, { single: 90_000, cluster: 180_000 }, (p) => p.kafka);
  return {
    ...identity,
    prepare({ paths, ports, secure }) {
      const run = paths.run(name);
      const data = path.join(run, 'data');
      fs.mkdirSync(data, { recursive: true });
      fs.mkdirSync(path.join(run, 'logs'), { recursive: true });
      const props = [
        'process.roles=broker,controller',
        `node.id=${node.index}`,
        `controller.quorum.voters=${node.hosts.map((h, i) => `${i + 1}@${h}:${ports.kafkaController}`).join(',')}`,
        'controller.listener.names=CONTROLLER',
        ...(secure ? secureKafkaProps(ports, secure) : plainKafkaProps(ports, node.host)),
        `log.dirs=${data}`,
        ...kafkaReplicationProps(node.hosts.length),
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
      writePrivate(config, props.join('\n') + '\n');
      const java = findJava([17, 21, 25]);
      const classpath = path.join(paths.lib('kafka'), '*');
      if (!fs.existsSync(path.join(data, 'meta.properties'))) {
        // Every node of a cluster is formatted with the same cluster id.
        const idFile = cluster ? path.join(paths.runRoot, 'kafka-cluster-id') : path.join(run, 'cluster-id');
        fs.mkdirSync(path.dirname(idFile), { recursive: true });
        // A cluster id that begins with '-' is taken for an option by kafka-storage's argument parser
        // (Kafka's own Uuid.randomUuid() never makes one): draw again, also over an old file's id.
        if (!fs.existsSync(idFile) || fs.readFileSync(idFile, 'utf8').trim().startsWith('-')) fs.writeFileSync(idFile, kafkaClusterId());
        // Secure mode: SCRAM users go into the bootstrap metadata, so they exist before the first client connects.
        const users = secure ? scramUsers(secure) : [];
        execFileSync(
          java,
          [
            '-Xmx256m',
            `-Dlog4j2.configurationFile=${path.join(paths.templates, 'kafka', 'tools-log4j2.properties')}`,
            '-cp', classpath, 'kafka.tools.StorageTool', 'format',
            '-t', fs.readFileSync(idFile, 'utf8').trim(), '-c', config, '--ignore-formatted',
            ...users.flatMap((u) => ['--add-scram', `SCRAM-SHA-512=[name=${u.username},password=${u.password}]`]),
          ],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        );
        if (secure) fs.writeFileSync(scramUsersFile(run), JSON.stringify(users.map((u) => u.username)));
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
    async probe({ paths, ports, secure }) {
      const admin = new Kafka({
        clientId: 'loopline-stack-probe',
        brokers: [`${node.host}:${ports.kafka}`],
        logLevel: logLevel.NOTHING,
        connectionTimeout: 2000,
        retry: { retries: 0 },
        ...(secure
          ? { ssl: { ca: [readPem(secure.tls.ca)], rejectUnauthorized: true }, sasl: { mechanism: 'scram-sha-512' as const, ...secure.credentials.kafka.admin } }
          : {}),
      }).admin();
      try {
        await admin.connect();
        // Ready once the cluster's metadata lists this broker: it has registered with the controller
        // quorum (so `up` returns with every broker of a cluster registered, and a node stays ready
        // while another is down).
        const described = await admin.describeCluster();
        if (!described.brokers.some((b) => b.nodeId === node.index)) return 'down';
      } catch {
        return 'down';
      } finally {
        await admin.disconnect().catch(() => {});
      }
      if (!secure) return 'ready';
      const known = new Set(knownScramUsers(paths.run(name)));
      return scramUsers(secure).every((u) => known.has(u.username)) ? 'ready' : 'uninitialized';
    },
    /** Adds SCRAM users of workers added to the ACL table since the broker was formatted. */
    async initialize({ paths, ports, secure }) {
      if (!secure) return;
      const run = paths.run(name);
      const known = knownScramUsers(run);
      const missing = scramUsers(secure).filter((u) => !known.includes(u.username));
      if (missing.length === 0) return;
      const clientConfig = path.join(run, 'admin-client.properties');
      writePrivate(clientConfig, [
        'security.protocol=SASL_SSL',
        'sasl.mechanism=SCRAM-SHA-512',
        `sasl.jaas.config=${scramJaas(secure.credentials.kafka.admin)}`,
        'ssl.truststore.type=PKCS12',
        `ssl.truststore.location=${secure.tls.truststore}`,
        `ssl.truststore.password=${secure.credentials.storePassword}`,
      ].join('\n') + '\n');
      for (const u of missing) {
        execFileSync(
          findJava([17, 21, 25]),
          [
            '-Xmx256m',
            `-Dlog4j2.configurationFile=${path.join(paths.templates, 'kafka', 'tools-log4j2.properties')}`,
            '-cp', path.join(paths.lib('kafka'), '*'), 'kafka.admin.ConfigCommand',
            '--bootstrap-server', `127.0.0.1:${ports.kafka}`, '--command-config', clientConfig,
            '--alter', '--entity-type', 'users', '--entity-name', u.username, '--add-config', `SCRAM-SHA-512=[password=${u.password}]`,
          ],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        );
        known.push(u.username);
        fs.writeFileSync(scramUsersFile(run), JSON.stringify(known));
      }
    },
  };
}

/** Authentication, authorization and TLS of the secure node (client certificates required on both ports). */
function secureCassandraYaml(secure: SecureMaterial): string {
  const { tls, credentials } = secure;
  const stores = `  keystore: ${tls.serverKeystore}
  keystore_password: "${credentials.storePassword}"
  truststore: ${tls.truststore}
  truststore_password: "${credentials.storePassword}"
  store_type: PKCS12
  require_client_auth: true
  protocol: TLS`;
  return `authenticator:
  class_name: org.apache.cassandra.auth.PasswordAuthenticator
authorizer: CassandraAuthorizer
role_manager: CassandraRoleManager
client_encryption_options:
  enabled: true
  optional: false
${stores}
server_encryption_options:
  internode_encryption: all
  legacy_ssl_storage_port_enabled: false
${stores}
`;
}

const PLAIN_CASSANDRA_AUTH = `authenticator:
  class_name: org.apache.cassandra.auth.AllowAllAuthenticator
authorizer: AllowAllAuthorizer
`;

/**
 * Whether the node at `host` answers CQL ('refused': it rejects the credentials); with `peers`, only
 * 'yes' once it knows that many other nodes (a cluster's ring formed).
 */
async function cqlAnswers(host: string, ports: StackPorts, secure: SecureMaterial | null, credentials: Credentials | null, peers = 0): Promise<'yes' | 'refused' | 'no'> {
  const client = new cassandra.Client({
    contactPoints: [`${host}:${ports.cassandra}`],
    localDataCenter: 'datacenter1',
    socketOptions: { connectTimeout: 2000, readTimeout: 5000 },
    ...(credentials ? { credentials } : {}),
    ...(secure ? { sslOptions: { ca: [readPem(secure.tls.ca)], cert: readPem(secure.tls.clientCert), key: readPem(secure.tls.clientKey), rejectUnauthorized: true } } : {}),
  });
  try {
    await client.connect();
    const rs = await client.execute('SELECT release_version FROM system.local');
    if (typeof rs.first()?.get('release_version') !== 'string') return 'no';
    if (peers === 0) return 'yes';
    const known = await client.execute('SELECT peer FROM system.peers_v2');
    return known.rowLength >= peers ? 'yes' : 'no';
  } catch (err) {
    const inner = Object.values((err as { innerErrors?: Record<string, unknown> }).innerErrors ?? {});
    const authFailed = [err, ...inner].some((e) => (e as { name?: string })?.name === 'AuthenticationError' || /Provided username .* incorrect|AuthenticationFailed/i.test(String((e as Error)?.message)));
    return authFailed ? 'refused' : 'no';
  } finally {
    await client.shutdown().catch(() => {});
  }
}

/** The default superuser every fresh PasswordAuthenticator node starts with. */
const DEFAULT_ROLE: Credentials = { username: 'cassandra', password: 'cassandra' };

/**
 * Node i of n owns one token, evenly spaced over Murmur3's range, so a
 * cluster's nodes join at once without bootstrapping (no data to stream on a
 * new cluster, `auto_bootstrap: false`); a single node owns token 0.
 */
export function cassandraToken(index: number, nodes: number): string {
  if (nodes === 1) return '0';
  const span = 2n ** 64n / BigInt(nodes);
  return String(-(2n ** 63n) + span * BigInt(index - 1));
}

function cassandraNode(node: NodeSpec): ServiceDef {
  const { cluster, name, identity } = nodeIdentity('cassandra', node, { single: 180_000, cluster: 300_000 }, (p) => p.cassandra);
  return {
    ...identity,
    /**
     * A non-seed node started before its seed answers gives up gossiping and
     * exits ("Unable to gossip with any peers"), which three JVMs starting on
     * two cores make likely: it waits for the seed's CQL first.
     */
    ...(node.index > 1 ? { beforeLaunch: async ({ ports }: ServiceContext) => {
      const deadline = Date.now() + 300_000;
      while ((await cqlAnswers(node.hosts[0]!, ports, null, null)) !== 'yes') {
        if (Date.now() > deadline) throw new Error(`cassandra-${node.index}: its seed ${node.hosts[0]}:${ports.cassandra} did not answer within 300 s`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    } } : {}),
    prepare({ paths, ports, secure }) {
      const run = paths.run(name);
      fs.mkdirSync(path.join(run, 'data'), { recursive: true });
      fs.mkdirSync(path.join(run, 'logs'), { recursive: true });
      const yaml = `# Generated by Loopline's local stack: ${cluster ? `node ${node.index} of ${node.hosts.length}` : 'one node'} on loopback, sized for a small machine.
cluster_name: '${cluster ? 'loopline-cluster' : 'loopline-local'}'
num_tokens: 1
initial_token: ${cassandraToken(node.index, node.hosts.length)}
${cluster ? 'auto_bootstrap: false\n' : ''}partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "${node.hosts[0]}:${ports.cassandraStorage}"
listen_address: ${node.host}
rpc_address: ${node.host}
storage_port: ${ports.cassandraStorage}
native_transport_port: ${ports.cassandra}
start_native_transport: true
${commitlogSync(process.env)}
commitlog_segment_size: 32MiB
commitlog_disk_access_mode: legacy
${secure ? secureCassandraYaml(secure) : PLAIN_CASSANDRA_AUTH}memtable_allocation_type: heap_buffers
memtable_heap_space: 256MiB
concurrent_compactors: 1
# The loop writes rows in unlogged batches per replica (store/batch.ts): no warning for each one.
batch_size_warn_threshold: 40KiB
unlogged_batch_across_partitions_warn_threshold: 64
compaction_throughput: 0MiB/s
key_cache_size: 16MiB
prepared_statements_cache_size: 8MiB
auto_snapshot: false
hinted_handoff_enabled: ${cluster ? 'true' : 'false'}
storage_compatibility_mode: NONE
`;
      const config = path.join(run, 'cassandra.yaml');
      writePrivate(config, yaml);
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
          // The default role exists at once, so the first start can replace it without a 10 s wait.
          ...(secure ? ['-Dcassandra.superuser_setup_delay_ms=0'] : []),
          '-cp', path.join(lib, '*'),
          'org.apache.cassandra.service.CassandraDaemon',
        ],
      };
    },
    async probe({ ports, secure }) {
      if (!secure) return (await cqlAnswers(node.host, ports, null, null, node.hosts.length - 1)) === 'yes' ? 'ready' : 'down';
      const admin = await cqlAnswers(node.host, ports, secure, secure.credentials.cassandra.admin);
      if (admin === 'yes') return 'ready';
      if (admin === 'refused' && (await cqlAnswers(node.host, ports, secure, DEFAULT_ROLE)) === 'yes') return 'uninitialized';
      return 'down';
    },
    /** First start: our superuser in, the default cassandra/cassandra superuser out (no login, no superuser, a random password). */
    async initialize({ ports, secure }) {
      if (!secure) return;
      const { admin } = secure.credentials.cassandra;
      const connect = async (credentials: Credentials) => {
        const c = new cassandra.Client({
          contactPoints: [`${node.host}:${ports.cassandra}`],
          localDataCenter: 'datacenter1',
          credentials,
          sslOptions: { ca: [readPem(secure.tls.ca)], cert: readPem(secure.tls.clientCert), key: readPem(secure.tls.clientKey), rejectUnauthorized: true },
        });
        await c.connect();
        return c;
      };
      // Role statements take no bind markers; the password is base64url, so it needs no escaping.
      const asDefault = await connect(DEFAULT_ROLE);
      try {
        await asDefault.execute(`CREATE ROLE IF NOT EXISTS ${admin.username} WITH PASSWORD = '${admin.password}' AND SUPERUSER = true AND LOGIN = true`);
      } finally {
        await asDefault.shutdown().catch(() => {});
      }
      const asAdmin = await connect(admin);
      try {
        await asAdmin.execute(`ALTER ROLE cassandra WITH PASSWORD = '${crypto.randomBytes(24).toString('base64url')}' AND SUPERUSER = false AND LOGIN = false`);
      } finally {
        await asAdmin.shutdown().catch(() => {});
      }
    },
  };
}

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

/**
 * The secure registry: HTTPS only (no plain port), and Apicurio's auth on with
 * Quarkus OIDC verifying bearer tokens against our public key, offline (an
 * empty auth-server-url means no OIDC server), pinned to our issuer and
 * audience. The OIDC provider's debug log, which would print rejected
 * tokens, is turned down.
 */
function secureRegistryArgs(ports: StackPorts, secure: SecureMaterial): { args: string[]; env: NodeJS.ProcessEnv } {
  return {
    args: [
      `-Dquarkus.http.ssl-port=${ports.registry}`,
      '-Dquarkus.http.insecure-requests=disabled',
      `-Dquarkus.http.ssl.certificate.files=${secure.tls.serverCert}`,
      `-Dquarkus.http.ssl.certificate.key-files=${secure.tls.serverKey}`,
      '-Dquarkus.oidc.auth-server-url=',
      `-Dquarkus.oidc.token.issuer=${REGISTRY_TOKEN_ISSUER}`,
      `-Dquarkus.oidc.token.audience=${REGISTRY_TOKEN_AUDIENCE}`,
      '-Dquarkus.log.category."io.quarkus.oidc.runtime.OidcProvider".level=INFO',
    ],
    env: { REGISTRY_AUTH_ENABLED: 'true', QUARKUS_OIDC_PUBLIC_KEY: fs.readFileSync(secure.tls.tokenPublicKey, 'utf8').trim() },
  };
}

const registryUrl = ({ ports, secure }: Pick<ServiceContext, 'ports' | 'secure'>) => `${secure ? 'https' : 'http'}://127.0.0.1:${ports.registry}/apis/ccompat/v7`;

const registry: ServiceDef = {
  name: 'schema-registry',
  kind: 'schema-registry',
  host: '127.0.0.1',
  startTimeoutMs: 90_000,
  address: registryUrl,
  prepare({ paths, ports, secure }) {
    const run = paths.run('schema-registry');
    fs.mkdirSync(path.join(run, 'data'), { recursive: true });
    fs.mkdirSync(path.join(run, 'logs'), { recursive: true });
    const runner = fs.readdirSync(paths.registryDist).find((f) => f.endsWith('-runner.jar'));
    if (!runner) throw new Error(`no *-runner.jar in ${paths.registryDist}; run the stack's fetch step again`);
    const tls = secure ? secureRegistryArgs(ports, secure) : { args: [`-Dquarkus.http.port=${ports.registry}`], env: {} };
    return {
      command: findJava([17, 21, 11]),
      args: [
        '-Xms128m', '-Xmx384m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1',
        '-Dquarkus.http.host=127.0.0.1', ...tls.args,
        '-Dquarkus.log.console.format=%d{HH:mm:ss} %-5p [%c{2.}] %s%e%n',
        '-jar', path.join(paths.registryDist, runner),
      ],
      // Schemas persist in an H2 file database, so ids stay valid across restarts.
      // WRITE_DELAY=0: every commit reaches the file at once, so an acknowledged registration survives kill -9.
      env: { REGISTRY_DATASOURCE_URL: `jdbc:h2:file:${path.join(run, 'data', 'registry')};WRITE_DELAY=0`, ...tls.env },
    };
  },
  async probe(ctx) {
    const { secure } = ctx;
    try {
      const client = createRegistryClient({
        url: registryUrl(ctx),
        timeoutMs: 3000,
        ...(secure ? { ca: secure.tls.ca, token: secure.credentials.registry.token } : {}),
      });
      await client.subjects();
      return 'ready';
    } catch {
      return 'down';
    }
  },
};

/**
 * The servers of a topology. They all start together: the registry is
 * independent of Kafka (H2 storage), a cluster's Kafka nodes need each other
 * for their controller quorum, and its Cassandra nodes join at fixed tokens.
 */
export function stackServices(topology: StackTopology = 'single'): readonly ServiceDef[] {
  const hosts = topologyHosts(topology);
  const nodes = hosts.map((host, i) => ({ index: i + 1, host, hosts }));
  return [...nodes.map(kafkaNode), ...nodes.map(cassandraNode), registry];
}

/** The single-node stack's servers. */
export const SERVICES: readonly ServiceDef[] = stackServices('single');
