import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../core/errors.js';
import { loadConfig } from './config.js';

describe('loadConfig', () => {
  it('defaults to the embedded local stack', () => {
    const c = loadConfig({});
    expect(c.kafka.brokers).toEqual(['127.0.0.1:19092']);
    expect(c.cassandra.contactPoints).toEqual(['127.0.0.1:19042']);
    expect(c.cassandra.replication).toEqual({ class: 'SimpleStrategy', replication_factor: 1 });
    expect(c.registry.url).toBe('http://127.0.0.1:18081/apis/ccompat/v7');
    expect(c.kafka.sasl).toBeNull();
    expect([c.kafka.replicationFactor, c.kafka.minInsyncReplicas]).toEqual([1, null]);
  });

  it('takes the topics\' replication and min.insync.replicas, and refuses a minimum above the replication', () => {
    const c = loadConfig({ LOOPLINE_KAFKA_REPLICATION_FACTOR: '3', LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS: '2' });
    expect([c.kafka.replicationFactor, c.kafka.minInsyncReplicas]).toEqual([3, 2]);
    expect(() => loadConfig({ LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS: '2' })).toThrow(/LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS \(2\) is above LOOPLINE_KAFKA_REPLICATION_FACTOR \(1\)/);
    expect(() => loadConfig({ LOOPLINE_KAFKA_REPLICATION_FACTOR: '0' })).toThrow(/LOOPLINE_KAFKA_REPLICATION_FACTOR/);
    expect(() => loadConfig({ LOOPLINE_KAFKA_REPLICATION_FACTOR: 'three' })).toThrow(/LOOPLINE_KAFKA_REPLICATION_FACTOR/);
  });

  it.each([
    [{ LOOPLINE_CASSANDRA_KEYSPACE: 'Bad-Name' }, /LOOPLINE_CASSANDRA_KEYSPACE must be a lower-case CQL identifier/],
    [{ LOOPLINE_KAFKA_SSL: 'maybe' }, /LOOPLINE_KAFKA_SSL/],
    [{ LOOPLINE_SCHEMA_REGISTRY_URL: 'not a url' }, /LOOPLINE_SCHEMA_REGISTRY_URL/],
    [{ LOOPLINE_CASSANDRA_REPLICATION: 'Whatever:3' }, /SimpleStrategy:<rf>/],
    [{ LOOPLINE_KAFKA_SASL_MECHANISM: 'plain' }, /SASL_USERNAME and LOOPLINE_KAFKA_SASL_PASSWORD are required/],
    [{ LOOPLINE_CASSANDRA_USERNAME: 'u' }, /must be set together/],
  ])('rejects %o naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('parses lists, SASL and network topology replication', () => {
    const c = loadConfig({
      LOOPLINE_KAFKA_BROKERS: 'a:9092, b:9092',
      LOOPLINE_KAFKA_SASL_MECHANISM: 'scram-sha-512',
      LOOPLINE_KAFKA_SASL_USERNAME: 'u',
      LOOPLINE_KAFKA_SASL_PASSWORD: 'p',
      LOOPLINE_CASSANDRA_REPLICATION: 'NetworkTopologyStrategy:dc1=3,dc2=2',
    });
    expect(c.kafka.brokers).toEqual(['a:9092', 'b:9092']);
    expect(c.kafka.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'u', password: 'p' });
    expect(c.cassandra.replication).toEqual({ class: 'NetworkTopologyStrategy', dc1: 3, dc2: 2 });
  });

  describe('errors never echo a secret', () => {
    const S = 'S3ntinel-cfg';
    it.each([
      [{ LOOPLINE_SCHEMA_REGISTRY_AUTH: S }, /LOOPLINE_SCHEMA_REGISTRY_AUTH must be user:password \(value not shown: it is a secret\)/],
      [{ LOOPLINE_SCHEMA_REGISTRY_TOKEN: `${S} x` }, /LOOPLINE_SCHEMA_REGISTRY_TOKEN must be a bearer token \(no spaces\) \(value not shown: it is a secret\)/],
      [{ LOOPLINE_SCHEMA_REGISTRY_URL: `htp//svc:${S}@registry:8081` }, /LOOPLINE_SCHEMA_REGISTRY_URL Invalid url \(got "\[Redacted\]@registry:8081"\)/],
      [{ LOOPLINE_SCHEMA_REGISTRY_URL: `http://svc:${S}@reg istry` }, /LOOPLINE_SCHEMA_REGISTRY_URL/],
      [{ LOOPLINE_KAFKA_SSL: `yes-${S}`, LOOPLINE_KAFKA_SASL_PASSWORD: S }, /LOOPLINE_KAFKA_SSL/],
      [{ LOOPLINE_KAFKA_SASL_MECHANISM: 'plain', LOOPLINE_KAFKA_SASL_PASSWORD: S }, /LOOPLINE_KAFKA_SASL_USERNAME and LOOPLINE_KAFKA_SASL_PASSWORD are required/],
      [{ LOOPLINE_CASSANDRA_PASSWORD: S }, /must be set together/],
      [{ LOOPLINE_KAFKA_SASL_MECHANISM: 'gssapi', LOOPLINE_KAFKA_SASL_PASSWORD: S }, /LOOPLINE_KAFKA_SASL_MECHANISM .*received 'gssapi' \(got "gssapi"\)/],
    ])('%o', (env, message) => {
      let err: unknown;
      try {
        loadConfig(env);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      const e = err as ConfigError;
      expect(e.message).toMatch(message);
      // LOOPLINE_KAFKA_SSL is not a secret, so its value is shown, but the unrelated password never is.
      const leaked = e.message.split(`yes-${S}`).join('');
      expect(leaked).not.toContain(S);
      expect(JSON.stringify(e)).not.toContain(`svc:${S}`);
    });

    it('accepts credentials in the registry URL (the client moves them into a header)', () => {
      expect(loadConfig({ LOOPLINE_SCHEMA_REGISTRY_URL: `https://svc:${S}@registry:8081/apis/ccompat/v7` }).registry.url).toContain('registry:8081');
    });
  });
});

describe('loadConfig: TLS files and registry tokens', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loopline-config-'));
  const pem = path.join(dir, 'ca.pem');
  fs.writeFileSync(pem, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');

  it('takes CA and client-certificate paths for Kafka, Cassandra and the registry', () => {
    const c = loadConfig({
      LOOPLINE_KAFKA_SSL: 'true', LOOPLINE_KAFKA_SSL_CA: pem, LOOPLINE_KAFKA_SSL_CERT: pem, LOOPLINE_KAFKA_SSL_KEY: pem,
      LOOPLINE_CASSANDRA_SSL: 'true', LOOPLINE_CASSANDRA_SSL_CA: pem, LOOPLINE_CASSANDRA_SSL_CERT: pem, LOOPLINE_CASSANDRA_SSL_KEY: pem,
      LOOPLINE_SCHEMA_REGISTRY_URL: 'https://127.0.0.1:28081/apis/ccompat/v7', LOOPLINE_SCHEMA_REGISTRY_CA: pem, LOOPLINE_SCHEMA_REGISTRY_TOKEN: 'a.b.c',
    });
    expect([c.kafka.sslCa, c.kafka.sslCert, c.kafka.sslKey]).toEqual([pem, pem, pem]);
    expect([c.cassandra.sslCa, c.cassandra.sslCert, c.cassandra.sslKey]).toEqual([pem, pem, pem]);
    expect(c.registry).toMatchObject({ ca: pem, cert: null, key: null, token: 'a.b.c', basicAuth: null });
    expect(loadConfig({}).kafka).toMatchObject({ sslCa: null, sslCert: null, sslKey: null });
  });

  it.each([
    [{ LOOPLINE_KAFKA_SSL_CA: pem }, /LOOPLINE_KAFKA_SSL_CA is set, which needs LOOPLINE_KAFKA_SSL=true/],
    [{ LOOPLINE_CASSANDRA_SSL: 'true', LOOPLINE_CASSANDRA_SSL_CERT: pem }, /LOOPLINE_CASSANDRA_SSL_CERT and LOOPLINE_CASSANDRA_SSL_KEY must be set together/],
    [{ LOOPLINE_KAFKA_SSL: 'true', LOOPLINE_KAFKA_SSL_CA: path.join(dir, 'missing.pem') }, /LOOPLINE_KAFKA_SSL_CA must name an existing file/],
    [{ LOOPLINE_SCHEMA_REGISTRY_CA: pem }, /LOOPLINE_SCHEMA_REGISTRY_CA is set, which needs an https LOOPLINE_SCHEMA_REGISTRY_URL/],
    [{ LOOPLINE_SCHEMA_REGISTRY_AUTH: 'u:p', LOOPLINE_SCHEMA_REGISTRY_TOKEN: 't' }, /choose basic auth or a bearer token/],
    [{ LOOPLINE_SCHEMA_REGISTRY_URL: 'https://u:p@registry:8081/apis/ccompat/v7', LOOPLINE_SCHEMA_REGISTRY_TOKEN: 't' }, /userinfo in LOOPLINE_SCHEMA_REGISTRY_URL and LOOPLINE_SCHEMA_REGISTRY_TOKEN are both set/],
    [{ LOOPLINE_SCHEMA_REGISTRY_TOKEN: 'has space' }, /LOOPLINE_SCHEMA_REGISTRY_TOKEN must be a bearer token/],
  ])('rejects %o naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});

describe('loadConfig: per-worker Kafka credentials', () => {
  it('reads LOOPLINE_KAFKA_SASL_<WORKER>_USERNAME / _PASSWORD by worker name; the shared pair is then optional', () => {
    const c = loadConfig({
      LOOPLINE_KAFKA_SASL_MECHANISM: 'scram-sha-512',
      LOOPLINE_KAFKA_SASL_FEATURE_WRITER_USERNAME: 'loopline-feature-writer', LOOPLINE_KAFKA_SASL_FEATURE_WRITER_PASSWORD: 'p1',
      LOOPLINE_KAFKA_SASL_SCORER_USERNAME: 'loopline-scorer', LOOPLINE_KAFKA_SASL_SCORER_PASSWORD: 'p2',
    });
    expect(c.kafka.sasl).toBeNull();
    expect(c.kafka.workerSasl).toEqual({
      'feature-writer': { mechanism: 'scram-sha-512', username: 'loopline-feature-writer', password: 'p1' },
      scorer: { mechanism: 'scram-sha-512', username: 'loopline-scorer', password: 'p2' },
    });
    const both = loadConfig({ LOOPLINE_KAFKA_SASL_MECHANISM: 'plain', LOOPLINE_KAFKA_SASL_USERNAME: 'u', LOOPLINE_KAFKA_SASL_PASSWORD: 'p', LOOPLINE_KAFKA_SASL_JOINER_USERNAME: 'j', LOOPLINE_KAFKA_SASL_JOINER_PASSWORD: 'q' });
    expect(both.kafka.sasl).toEqual({ mechanism: 'plain', username: 'u', password: 'p' });
    expect(Object.keys(both.kafka.workerSasl)).toEqual(['joiner']);
    expect(loadConfig({}).kafka.workerSasl).toEqual({});
  });

  it.each([
    [{ LOOPLINE_KAFKA_SASL_SCORER_USERNAME: 'u', LOOPLINE_KAFKA_SASL_SCORER_PASSWORD: 'S3ntinel-w' }, /LOOPLINE_KAFKA_SASL_SCORER_USERNAME is set, which needs LOOPLINE_KAFKA_SASL_MECHANISM/],
    [{ LOOPLINE_KAFKA_SASL_MECHANISM: 'plain', LOOPLINE_KAFKA_SASL_SCORER_PASSWORD: 'S3ntinel-w' }, /LOOPLINE_KAFKA_SASL_SCORER_USERNAME and LOOPLINE_KAFKA_SASL_SCORER_PASSWORD must be set together/],
    [{ LOOPLINE_KAFKA_SASL_MECHANISM: 'plain', LOOPLINE_KAFKA_SASL_USERNAME: 'u', LOOPLINE_KAFKA_SASL_SCORER_USERNAME: 'w', LOOPLINE_KAFKA_SASL_SCORER_PASSWORD: 'S3ntinel-w' }, /LOOPLINE_KAFKA_SASL_USERNAME and LOOPLINE_KAFKA_SASL_PASSWORD are required/],
    [{ LOOPLINE_KAFKA_SASL_MECHANISM: 'plain' }, /LOOPLINE_KAFKA_SASL_USERNAME and LOOPLINE_KAFKA_SASL_PASSWORD are required/],
  ])('rejects %o without echoing a password', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
    try {
      loadConfig(env);
    } catch (err) {
      expect((err as Error).message).not.toContain('S3ntinel');
    }
  });
});
