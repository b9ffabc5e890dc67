/**
 * Loopline's connection and runtime configuration, compiled once at start
 * from the environment into a validated, typed object. An error names the
 * variable and what it accepts, and never echoes the value of a secret
 * (`*_PASSWORD`, `*_AUTH`, `*_SECRET`, `*_TOKEN`, `*_KEY`) or URL userinfo.
 * Defaults point at the embedded local stack.
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | LOOPLINE_KAFKA_BROKERS | 127.0.0.1:19092 | comma-separated bootstrap brokers |
 * | LOOPLINE_KAFKA_CLIENT_ID | loopline | kafkajs client id prefix |
 * | LOOPLINE_KAFKA_SSL | false | TLS to the brokers (certificates verified) |
 * | LOOPLINE_KAFKA_SASL_MECHANISM | (none) | plain, scram-sha-256 or scram-sha-512 |
 * | LOOPLINE_KAFKA_SASL_USERNAME / _PASSWORD | | SASL credentials |
 * | LOOPLINE_KAFKA_SASL_<WORKER>_USERNAME / _PASSWORD | | one worker's own SASL credentials (e.g. `LOOPLINE_KAFKA_SASL_FEATURE_WRITER_USERNAME`), so one `run` process can run each worker as its own principal; needs LOOPLINE_KAFKA_SASL_MECHANISM; the shared pair is then optional |
 * | LOOPLINE_KAFKA_SSL_CA | (system CAs) | PEM file of the CA that signed the brokers' certificates; needs LOOPLINE_KAFKA_SSL=true |
 * | LOOPLINE_KAFKA_SSL_CERT / _KEY | | PEM client certificate and key, for brokers that require one |
 * | LOOPLINE_TOPIC_PREFIX | (empty) | prepended to every topic name, e.g. `staging.` |
 * | LOOPLINE_KAFKA_REPLICATION_FACTOR | 1 | replicas of each topic `setup` creates (existing topics are left as they are) |
 * | LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS | (broker default) | `min.insync.replicas` of each topic `setup` creates: with replication 3, 2 keeps an acknowledged write on two brokers and the topic writable with one down; at most the replication factor |
 * | LOOPLINE_CASSANDRA_CONTACT_POINTS | 127.0.0.1:19042 | comma-separated host:port |
 * | LOOPLINE_CASSANDRA_LOCAL_DC | datacenter1 | the driver's local data center |
 * | LOOPLINE_CASSANDRA_KEYSPACE | loopline | keyspace of every table |
 * | LOOPLINE_CASSANDRA_REPLICATION | SimpleStrategy:1 | `SimpleStrategy:<rf>` or `NetworkTopologyStrategy:<dc>=<rf>,...` |
 * | LOOPLINE_CASSANDRA_BATCH_ROWS | 50 | most rows per unlogged batch in the hot write paths (grouped by replica, store/batch.ts); 1 sends each row alone |
 * | LOOPLINE_CASSANDRA_USERNAME / _PASSWORD | | PasswordAuthenticator credentials |
 * | LOOPLINE_CASSANDRA_SSL | false | TLS to Cassandra (certificates verified) |
 * | LOOPLINE_CASSANDRA_SSL_CA | (system CAs) | PEM file of the CA that signed Cassandra's certificate; needs LOOPLINE_CASSANDRA_SSL=true |
 * | LOOPLINE_CASSANDRA_SSL_CERT / _KEY | | PEM client certificate and key, for nodes that require one |
 * | LOOPLINE_SCHEMA_REGISTRY_URL | http://127.0.0.1:18081/apis/ccompat/v7 | Confluent-compatible registry; `user:password@` in it becomes a Basic header |
 * | LOOPLINE_SCHEMA_REGISTRY_AUTH | | `user:password` basic auth (wins over the URL's) |
 * | LOOPLINE_SCHEMA_REGISTRY_TOKEN | | bearer token (e.g. a JWT the registry's OIDC layer verifies); not with basic auth (_AUTH or the URL's) |
 * | LOOPLINE_SCHEMA_REGISTRY_CA | (system CAs) | PEM file of the CA that signed the registry's certificate; needs an https URL |
 * | LOOPLINE_SCHEMA_REGISTRY_CERT / _KEY | | PEM client certificate and key, for a registry that requires one |
 * | LOOPLINE_LOG_LEVEL | info | pino level |
 */
import fs from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { isSecretVariable, REDACTED, redactText } from '../streams/redact.js';

const list = z
  .string()
  .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
  .refine((a) => a.length > 0, 'must list at least one host:port');
const file = z.string().refine((p) => fs.existsSync(p) && fs.statSync(p).isFile(), 'must name an existing file');
const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => v === 'true' || v === '1' || v === 'yes');

const ENV = z.object({
  LOOPLINE_KAFKA_BROKERS: list.default('127.0.0.1:19092'),
  LOOPLINE_KAFKA_CLIENT_ID: z.string().min(1).default('loopline'),
  LOOPLINE_KAFKA_SSL: bool.default('false'),
  LOOPLINE_KAFKA_SASL_MECHANISM: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']).optional(),
  LOOPLINE_KAFKA_SASL_USERNAME: z.string().optional(),
  LOOPLINE_KAFKA_SASL_PASSWORD: z.string().optional(),
  LOOPLINE_KAFKA_SSL_CA: file.optional(),
  LOOPLINE_KAFKA_SSL_CERT: file.optional(),
  LOOPLINE_KAFKA_SSL_KEY: file.optional(),
  LOOPLINE_KAFKA_REPLICATION_FACTOR: z.coerce.number().int().min(1).max(32767).default(1),
  LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS: z.coerce.number().int().min(1).max(32767).optional(),
  LOOPLINE_TOPIC_PREFIX: z.string().regex(/^[A-Za-z0-9._-]*$/, 'may hold only letters, digits, ".", "_" and "-"').default(''),
  LOOPLINE_CASSANDRA_CONTACT_POINTS: list.default('127.0.0.1:19042'),
  LOOPLINE_CASSANDRA_LOCAL_DC: z.string().min(1).default('datacenter1'),
  LOOPLINE_CASSANDRA_KEYSPACE: z.string().regex(/^[a-z][a-z0-9_]{0,47}$/, 'must be a lower-case CQL identifier of at most 48 characters').default('loopline'),
  LOOPLINE_CASSANDRA_REPLICATION: z
    .string()
    .regex(/^(SimpleStrategy:\d+|NetworkTopologyStrategy:[A-Za-z0-9_-]+=\d+(,[A-Za-z0-9_-]+=\d+)*)$/, 'must be SimpleStrategy:<rf> or NetworkTopologyStrategy:<dc>=<rf>[,...]')
    .default('SimpleStrategy:1'),
  LOOPLINE_CASSANDRA_BATCH_ROWS: z.coerce.number().int().min(1).max(1000).default(50),
  LOOPLINE_CASSANDRA_USERNAME: z.string().optional(),
  LOOPLINE_CASSANDRA_PASSWORD: z.string().optional(),
  LOOPLINE_CASSANDRA_SSL: bool.default('false'),
  LOOPLINE_CASSANDRA_SSL_CA: file.optional(),
  LOOPLINE_CASSANDRA_SSL_CERT: file.optional(),
  LOOPLINE_CASSANDRA_SSL_KEY: file.optional(),
  LOOPLINE_SCHEMA_REGISTRY_URL: z.string().url().default('http://127.0.0.1:18081/apis/ccompat/v7'),
  LOOPLINE_SCHEMA_REGISTRY_AUTH: z.string().regex(/^[^:]+:.+$/, 'must be user:password').optional(),
  LOOPLINE_SCHEMA_REGISTRY_TOKEN: z.string().regex(/^[A-Za-z0-9._~+/=-]+$/, 'must be a bearer token (no spaces)').optional(),
  LOOPLINE_SCHEMA_REGISTRY_CA: file.optional(),
  LOOPLINE_SCHEMA_REGISTRY_CERT: file.optional(),
  LOOPLINE_SCHEMA_REGISTRY_KEY: file.optional(),
  LOOPLINE_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface KafkaConfig {
  brokers: string[];
  clientId: string;
  ssl: boolean;
  sasl: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string } | null;
  topicPrefix: string;
  /** Replicas, and `min.insync.replicas` (null: the broker's default), of the topics `setup` creates. */
  replicationFactor: number;
  minInsyncReplicas: number | null;
  /**
   * Per-worker SASL credentials (LOOPLINE_KAFKA_SASL_<WORKER>_USERNAME / _PASSWORD), by worker name
   * (`FEATURE_WRITER` → `feature-writer`); `startPipeline` gives such a worker its own Kafka client. Empty when none are set.
   */
  workerSasl: Record<string, NonNullable<KafkaConfig['sasl']>>;
  /** PEM file paths (LOOPLINE_KAFKA_SSL_CA, _CERT, _KEY); null when not set. */
  sslCa: string | null;
  sslCert: string | null;
  sslKey: string | null;
}

export interface CassandraConfig {
  contactPoints: string[];
  localDataCenter: string;
  keyspace: string;
  replication: Record<string, string | number>;
  /** Most rows per unlogged batch in the hot write paths (store/batch.ts); 1 = a request per row. */
  batchRows?: number;
  credentials: { username: string; password: string } | null;
  ssl: boolean;
  /** PEM file paths (LOOPLINE_CASSANDRA_SSL_CA, _CERT, _KEY); null when not set. */
  sslCa: string | null;
  sslCert: string | null;
  sslKey: string | null;
}

export interface RegistryConfig {
  url: string;
  basicAuth: string | null;
  /** Bearer token (LOOPLINE_SCHEMA_REGISTRY_TOKEN); null when not set. */
  token: string | null;
  /** PEM file paths (LOOPLINE_SCHEMA_REGISTRY_CA, _CERT, _KEY); null when not set. */
  ca: string | null;
  cert: string | null;
  key: string | null;
}

export interface LooplineConfig {
  kafka: KafkaConfig;
  cassandra: CassandraConfig;
  registry: RegistryConfig;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

/** Compiles the environment into a LooplineConfig; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): LooplineConfig {
  const picked = Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('LOOPLINE_') && v !== ''));
  const parsed = ENV.safeParse(picked);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const name = String(i.path[0]);
      return `${name} ${scrub(i.message, isSecretVariable(name) ? picked[name] : undefined)} ${shownValue(name, picked[name])}`;
    });
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const e = parsed.data;
  const workerSasl = parseWorkerSasl(picked, e.LOOPLINE_KAFKA_SASL_MECHANISM);
  let sasl: KafkaConfig['sasl'] = null;
  if (e.LOOPLINE_KAFKA_SASL_MECHANISM) {
    const shared = Boolean(e.LOOPLINE_KAFKA_SASL_USERNAME) || Boolean(e.LOOPLINE_KAFKA_SASL_PASSWORD) || Object.keys(workerSasl).length === 0;
    if (shared && (!e.LOOPLINE_KAFKA_SASL_USERNAME || !e.LOOPLINE_KAFKA_SASL_PASSWORD)) {
      throw new ConfigError('LOOPLINE_KAFKA_SASL_MECHANISM is set, so LOOPLINE_KAFKA_SASL_USERNAME and LOOPLINE_KAFKA_SASL_PASSWORD are required (or only per-worker LOOPLINE_KAFKA_SASL_<WORKER>_USERNAME / _PASSWORD)');
    }
    if (shared) sasl = { mechanism: e.LOOPLINE_KAFKA_SASL_MECHANISM, username: e.LOOPLINE_KAFKA_SASL_USERNAME!, password: e.LOOPLINE_KAFKA_SASL_PASSWORD! };
  }
  if (Boolean(e.LOOPLINE_CASSANDRA_USERNAME) !== Boolean(e.LOOPLINE_CASSANDRA_PASSWORD)) {
    throw new ConfigError('LOOPLINE_CASSANDRA_USERNAME and LOOPLINE_CASSANDRA_PASSWORD must be set together');
  }
  if (e.LOOPLINE_SCHEMA_REGISTRY_TOKEN && (e.LOOPLINE_SCHEMA_REGISTRY_AUTH || hasUserinfo(e.LOOPLINE_SCHEMA_REGISTRY_URL))) {
    const basic = e.LOOPLINE_SCHEMA_REGISTRY_AUTH ? 'LOOPLINE_SCHEMA_REGISTRY_AUTH' : 'userinfo in LOOPLINE_SCHEMA_REGISTRY_URL';
    throw new ConfigError(`${basic} and LOOPLINE_SCHEMA_REGISTRY_TOKEN are both set; choose basic auth or a bearer token`);
  }
  if (e.LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS !== undefined && e.LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS > e.LOOPLINE_KAFKA_REPLICATION_FACTOR) {
    throw new ConfigError(`LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS (${e.LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS}) is above LOOPLINE_KAFKA_REPLICATION_FACTOR (${e.LOOPLINE_KAFKA_REPLICATION_FACTOR}): no write could ever be acknowledged`);
  }
  checkTls(e.LOOPLINE_KAFKA_SSL, 'LOOPLINE_KAFKA_SSL', 'LOOPLINE_KAFKA_SSL_', e.LOOPLINE_KAFKA_SSL_CA, e.LOOPLINE_KAFKA_SSL_CERT, e.LOOPLINE_KAFKA_SSL_KEY);
  checkTls(e.LOOPLINE_CASSANDRA_SSL, 'LOOPLINE_CASSANDRA_SSL', 'LOOPLINE_CASSANDRA_SSL_', e.LOOPLINE_CASSANDRA_SSL_CA, e.LOOPLINE_CASSANDRA_SSL_CERT, e.LOOPLINE_CASSANDRA_SSL_KEY);
  checkTls(e.LOOPLINE_SCHEMA_REGISTRY_URL.startsWith('https:'), 'an https LOOPLINE_SCHEMA_REGISTRY_URL', 'LOOPLINE_SCHEMA_REGISTRY_', e.LOOPLINE_SCHEMA_REGISTRY_CA, e.LOOPLINE_SCHEMA_REGISTRY_CERT, e.LOOPLINE_SCHEMA_REGISTRY_KEY);
  return {
    kafka: {
      brokers: e.LOOPLINE_KAFKA_BROKERS, clientId: e.LOOPLINE_KAFKA_CLIENT_ID, ssl: e.LOOPLINE_KAFKA_SSL, sasl, topicPrefix: e.LOOPLINE_TOPIC_PREFIX, workerSasl,
      replicationFactor: e.LOOPLINE_KAFKA_REPLICATION_FACTOR, minInsyncReplicas: e.LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS ?? null,
      sslCa: e.LOOPLINE_KAFKA_SSL_CA ?? null, sslCert: e.LOOPLINE_KAFKA_SSL_CERT ?? null, sslKey: e.LOOPLINE_KAFKA_SSL_KEY ?? null,
    },
    cassandra: {
      contactPoints: e.LOOPLINE_CASSANDRA_CONTACT_POINTS,
      localDataCenter: e.LOOPLINE_CASSANDRA_LOCAL_DC,
      keyspace: e.LOOPLINE_CASSANDRA_KEYSPACE,
      replication: parseReplication(e.LOOPLINE_CASSANDRA_REPLICATION),
      batchRows: e.LOOPLINE_CASSANDRA_BATCH_ROWS,
      credentials: e.LOOPLINE_CASSANDRA_USERNAME ? { username: e.LOOPLINE_CASSANDRA_USERNAME, password: e.LOOPLINE_CASSANDRA_PASSWORD! } : null,
      ssl: e.LOOPLINE_CASSANDRA_SSL,
      sslCa: e.LOOPLINE_CASSANDRA_SSL_CA ?? null, sslCert: e.LOOPLINE_CASSANDRA_SSL_CERT ?? null, sslKey: e.LOOPLINE_CASSANDRA_SSL_KEY ?? null,
    },
    registry: {
      url: e.LOOPLINE_SCHEMA_REGISTRY_URL, basicAuth: e.LOOPLINE_SCHEMA_REGISTRY_AUTH ?? null, token: e.LOOPLINE_SCHEMA_REGISTRY_TOKEN ?? null,
      ca: e.LOOPLINE_SCHEMA_REGISTRY_CA ?? null, cert: e.LOOPLINE_SCHEMA_REGISTRY_CERT ?? null, key: e.LOOPLINE_SCHEMA_REGISTRY_KEY ?? null,
    },
    logLevel: e.LOOPLINE_LOG_LEVEL,
  };
}

/**
 * How a bad value appears in a config error: secrets (passwords, `*_AUTH`,
 * `*_SECRET`, `*_TOKEN`, `*_KEY`) never, others scrubbed of URL userinfo
 * (everything before an '@' goes, as in `u:p@host`) and shortened.
 */
function shownValue(name: string, value: string | undefined): string {
  if (value === undefined) return '(not set)';
  if (isSecretVariable(name)) return '(value not shown: it is a secret)';
  let v = redactText(value);
  const at = v.lastIndexOf('@');
  if (at >= 0) v = `${REDACTED}${v.slice(at)}`;
  if (v.length > 120) v = `${v.slice(0, 120)}…`;
  return `(got ${JSON.stringify(v)})`;
}

/** A validator's message without `secret` in it (zod quotes values in some messages) nor URL userinfo. */
function scrub(message: string, secret: string | undefined): string {
  const value = secret;
  const m = value && value.length >= 3 ? message.split(value).join(REDACTED) : message;
  return redactText(m);
}

const WORKER_SASL = /^LOOPLINE_KAFKA_SASL_([A-Z0-9]+(?:_[A-Z0-9]+)*)_(USERNAME|PASSWORD)$/;

/** LOOPLINE_KAFKA_SASL_<WORKER>_USERNAME / _PASSWORD pairs, by worker name; which workers exist is checked where they start. */
function parseWorkerSasl(env: Record<string, string | undefined>, mechanism: NonNullable<KafkaConfig['sasl']>['mechanism'] | undefined): KafkaConfig['workerSasl'] {
  const found = new Map<string, { username?: string; password?: string }>();
  for (const [k, v] of Object.entries(env)) {
    const m = WORKER_SASL.exec(k);
    if (!m || v === undefined) continue;
    const entry = found.get(m[1]!) ?? {};
    if (m[2] === 'USERNAME') entry.username = v;
    else entry.password = v;
    found.set(m[1]!, entry);
  }
  const out: KafkaConfig['workerSasl'] = {};
  for (const [w, c] of found) {
    if (!c.username || !c.password) throw new ConfigError(`LOOPLINE_KAFKA_SASL_${w}_USERNAME and LOOPLINE_KAFKA_SASL_${w}_PASSWORD must be set together`);
    if (!mechanism) throw new ConfigError(`LOOPLINE_KAFKA_SASL_${w}_USERNAME is set, which needs LOOPLINE_KAFKA_SASL_MECHANISM`);
    out[w.toLowerCase().replaceAll('_', '-')] = { mechanism, username: c.username, password: c.password };
  }
  return out;
}

function hasUserinfo(url: string): boolean {
  try {
    const u = new URL(url);
    return u.username !== '' || u.password !== '';
  } catch {
    return false;
  }
}

/** CA and client-certificate files only make sense over TLS; a certificate needs its key and the other way round. */
function checkTls(tls: boolean, tlsSetting: string, prefix: string, ca?: string, cert?: string, key?: string): void {
  const set = [ca && `${prefix}CA`, cert && `${prefix}CERT`, key && `${prefix}KEY`].filter(Boolean);
  if (set.length > 0 && !tls) throw new ConfigError(`${set.join(', ')} ${set.length > 1 ? 'are' : 'is'} set, which needs ${tlsSetting.startsWith('an ') ? tlsSetting : `${tlsSetting}=true`}`);
  if (Boolean(cert) !== Boolean(key)) throw new ConfigError(`${prefix}CERT and ${prefix}KEY must be set together`);
}

function parseReplication(spec: string): Record<string, string | number> {
  const [strategy, rest = ''] = spec.split(':') as [string, string?];
  if (strategy === 'SimpleStrategy') return { class: 'SimpleStrategy', replication_factor: Number(rest) };
  const out: Record<string, string | number> = { class: 'NetworkTopologyStrategy' };
  for (const pair of rest.split(',')) {
    const [dc, rf] = pair.split('=') as [string, string];
    out[dc] = Number(rf);
  }
  return out;
}
