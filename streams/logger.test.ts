/**
 * No secret in any log line: a deep config, errors with causes, URLs with
 * userinfo, child bindings and kafkajs logs, all carrying sentinel secrets,
 * are logged through the real pino logger into a buffer; the sentinel must
 * never appear, and the non-secret fields must.
 */
import { Writable } from 'node:stream';
import { logLevel } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/config.js';
import { TransientError, wrapError } from '../core/errors.js';
import { createLogger, kafkaLogCreator } from './logger.js';
import { isSecretKey, redactDeep, redactText, redactUrl, REDACTED } from './redact.js';

const S = 'Sentinel-9f3c'; // every secret below contains it

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  const logger = createLogger({ level: 'trace', name: 'test', destination });
  return { logger, text: () => lines.join(''), lines };
}

const deepConfig = () => ({
  kafka: { brokers: ['b:9092'], sasl: { mechanism: 'scram-sha-512', username: 'svc', password: `${S}-kafka` }, ssl: { ca: 'public-ca', key: `${S}-tls-key`, cert: `${S}-tls-cert`, passphrase: `${S}-pp` } },
  cassandra: { contactPoints: ['c:9042'], credentials: { username: 'cass', password: `${S}-cass` }, nested: { deeper: { still: { password: `${S}-deep`, dbPassword: `${S}-db` } } } },
  registry: { url: `https://reg-user:${S}-url@registry.example:8081/apis/ccompat/v7`, basicAuth: `reg-user:${S}-basic` },
  http: { headers: { Authorization: `Basic ${Buffer.from(`u:${S}`).toString('base64')}`, cookie: `session=${S}` } },
  tokens: [{ accessToken: `${S}-at`, refresh_token: `${S}-rt` }],
  env: { LOOPLINE_KAFKA_SASL_PASSWORD: `${S}-env`, LOOPLINE_SCHEMA_REGISTRY_AUTH: `u:${S}-env2`, LOOPLINE_API_SECRET: `${S}-env3`, LOOPLINE_SSL_KEY: `${S}-env4` },
  apiKey: `${S}-apikey`,
  client_secret: `${S}-cs`,
});

describe('logger: no secret in any log line', () => {
  it('a deep config with sentinel secrets at every depth', () => {
    const { logger, text } = capture();
    logger.info({ config: deepConfig() }, 'starting');
    logger.info(deepConfig(), 'flat');
    const out = text();
    expect(out).not.toContain(S);
    // What is not secret stays readable.
    expect(out).toContain('b:9092');
    expect(out).toContain('"contactPoints":["c:9042"]');
    expect(out).toContain('public-ca');
    expect(out).toContain('https://[Redacted]@registry.example:8081/apis/ccompat/v7');
  });

  it('the real LooplineConfig, as loadConfig builds it', () => {
    const { logger, text } = capture();
    const config = loadConfig({
      LOOPLINE_KAFKA_SASL_MECHANISM: 'plain', LOOPLINE_KAFKA_SASL_USERNAME: 'u', LOOPLINE_KAFKA_SASL_PASSWORD: `${S}-1`,
      LOOPLINE_CASSANDRA_USERNAME: 'c', LOOPLINE_CASSANDRA_PASSWORD: `${S}-2`,
      LOOPLINE_SCHEMA_REGISTRY_URL: `http://u:${S}-3@127.0.0.1:18081/apis/ccompat/v7`, LOOPLINE_SCHEMA_REGISTRY_AUTH: `u:${S}-4`,
    });
    logger.info({ config }, 'config');
    logger.child({ config }).warn('child bindings too');
    logger.child({ worker: 'w' }).child({ registry: config.registry }).info('grandchild bindings too');
    expect(text()).not.toContain(S);
    expect(text()).toContain('127.0.0.1:18081');
  });

  it('the secured stack\'s config: the registry\'s bearer token, per-worker SASL, TLS paths', () => {
    const { logger, text } = capture();
    const jwt = `eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJsb29wbGluZSJ9${S}.c2lnbmF0dXJl${S}`;
    const config = loadConfig({
      LOOPLINE_KAFKA_SASL_MECHANISM: 'scram-sha-512', LOOPLINE_KAFKA_SASL_SCORER_USERNAME: 'loopline-scorer', LOOPLINE_KAFKA_SASL_SCORER_PASSWORD: `${S}-w`,
      LOOPLINE_SCHEMA_REGISTRY_URL: 'https://127.0.0.1:28081/apis/ccompat/v7', LOOPLINE_SCHEMA_REGISTRY_TOKEN: jwt,
    });
    logger.info({ config }, 'config');
    logger.info(config, 'flat config');
    logger.child({ registry: config.registry }).info('child');
    logger.warn(`the registry refused ${jwt}`);
    logger.warn({ err: new Error(`token ${jwt} expired`) }, 'registry');
    expect(text()).not.toContain(S);
    expect(text()).toContain('"workerSasl":"[Redacted]"');
    expect(text()).toContain('https://127.0.0.1:28081/apis/ccompat/v7');
  });

  it('errors: message, stack, own fields and causes (a registry URL logged on every retry)', () => {
    const { logger, text } = capture();
    const url = `http://svc:${S}@registry:8081/apis/ccompat/v7`;
    const cause = Object.assign(new Error(`connect to ${url} failed`), { config: { password: `${S}-own` } });
    const err = wrapError(new TransientError(`schema registry at ${url} unreachable`, cause), 'decoding a record');
    for (let attempt = 1; attempt <= 3; attempt++) logger.warn({ err, attempt }, 'decoding failed, retrying');
    logger.error(err);
    logger.error(new Error(`Basic ${Buffer.from(`svc:${S}`).toString('base64')} refused`));
    const out = text();
    expect(out).not.toContain(S);
    expect(out).not.toContain(Buffer.from(`svc:${S}`).toString('base64'));
    expect(out).toContain('"type":"TransientError"'); // still serialized as an error, class kept by wrapError
    expect(out).toContain('decoding a record: schema registry at http://[Redacted]@registry:8081/apis/ccompat/v7 unreachable');
  });

  it('message strings and interpolation arguments', () => {
    const { logger, text } = capture();
    logger.info(`connecting to https://u:${S}@h/x?token=${S}-q`);
    logger.info('value %s', `password=${S}-kv`);
    expect(text()).not.toContain(S);
  });

  it('kafkajs logs routed through the logCreator', () => {
    const { logger, text } = capture();
    const log = kafkaLogCreator(logger)(logLevel.DEBUG);
    log({ namespace: 'Connection', level: logLevel.ERROR, label: 'ERROR', log: { message: 'auth failed', timestamp: 'x', logger: 'kafkajs', sasl: { mechanism: 'plain', username: 'u', password: `${S}-k` }, broker: 'b:9092' } });
    expect(text()).not.toContain(S);
    expect(text()).toContain('auth failed');
    log({ namespace: 'Runner', level: logLevel.ERROR, label: 'ERROR', log: { message: 'Error when calling eachBatch', timestamp: 'x', logger: 'kafkajs', error: new Error(`registry at http://u:${S}@h unreachable`) } });
    expect(text()).not.toContain(S);
    expect(text()).toContain('"err":{"type":"Error","message":"registry at http://[Redacted]@h unreachable"');
  });

  it('broker errors kafkajs retries by itself are logged at debug, others at error', () => {
    const { logger, lines } = capture();
    const log = kafkaLogCreator(logger)(logLevel.DEBUG);
    const concurrent = 'The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing';
    log({ namespace: 'Connection', level: logLevel.ERROR, label: 'ERROR', log: { message: 'Response AddPartitionsToTxn(key: 24, version: 1)', timestamp: 'x', logger: 'kafkajs', error: concurrent, correlationId: 1, size: 67 } });
    log({ namespace: 'Connection', level: logLevel.ERROR, label: 'ERROR', log: { message: 'Response InitProducerId(key: 22, version: 1)', timestamp: 'x', logger: 'kafkajs', error: 'Not authorized to access topics: [Topic authorization failed]', correlationId: 2, size: 10 } });
    const levels = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).map((l) => [l.msg, l.level]);
    expect(levels).toEqual([
      ['Response AddPartitionsToTxn(key: 24, version: 1)', 20],
      ['Response InitProducerId(key: 22, version: 1)', 50],
    ]);
  });

  it('survives cycles and very deep objects without leaking', () => {
    const { logger, text } = capture();
    const a: Record<string, unknown> = { name: 'a' };
    a.self = a;
    let deep: Record<string, unknown> = { password: `${S}-bottom` };
    for (let i = 0; i < 50; i++) deep = { next: deep };
    logger.info({ a, deep }, 'weird shapes');
    expect(text()).not.toContain(S);
    expect(text()).toContain('[Circular]');
  });
});

describe('redact helpers', () => {
  it.each([
    ['https://svc:pw@registry:8081/apis/ccompat/v7', 'https://[Redacted]@registry:8081/apis/ccompat/v7'],
    ['http://token@h/x', 'http://[Redacted]@h/x'],
    ['http://h:8081/x?api_key=abc&page=2', 'http://h:8081/x?api_key=[Redacted]&page=2'],
    ['http://127.0.0.1:18081/apis/ccompat/v7', 'http://127.0.0.1:18081/apis/ccompat/v7'],
    ['not a url but u:p@h', 'not a url but u:p@h'],
  ])('redactUrl(%s)', (input, expected) => {
    expect(redactUrl(input)).toBe(expected);
  });

  it('redactText scrubs URL userinfo (even with unescaped @ and /), Basic/Bearer and key=value pairs', () => {
    expect(redactText('GET http://u:p@ss@h/x failed')).toBe('GET http://[Redacted]@h/x failed');
    expect(redactText('GET http://u:pa/ss@h/x failed')).toBe('GET http://[Redacted]@h/x failed');
    expect(redactText('Authorization: Bearer eyJhbGciOi.J9x-1')).not.toContain('eyJhbGciOi');
    expect(redactText('token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln refused')).toBe('token [Redacted] refused');
    expect(redactText('LOOPLINE_KAFKA_SASL_PASSWORD=hunter2 and "token": "t0k"')).toBe('LOOPLINE_KAFKA_SASL_PASSWORD=[Redacted] and "token": "[Redacted]"');
    expect(redactText('max_tokens: 4096, author: Bob, Basic authentication')).toBe('max_tokens: 4096, author: Bob, Basic authentication');
  });

  it.each([
    ['password', undefined, true], ['dbPassword', undefined, true], ['sasl', undefined, true], ['credentials', undefined, true],
    ['basicAuth', undefined, true], ['authorization', undefined, true], ['LOOPLINE_SCHEMA_REGISTRY_AUTH', undefined, true],
    ['LOOPLINE_X_SECRET', undefined, true], ['LOOPLINE_SSL_KEY', undefined, true], ['accessToken', undefined, true],
    ['key', 'ssl', true], ['cert', 'sslOptions', true], ['passphrase', 'tls', true],
    ['key', undefined, false], ['username', undefined, false], ['ca', 'ssl', false], ['author', undefined, false], ['max_tokens', undefined, false],
    ['partition_key', undefined, false],
  ])('isSecretKey(%s under %s) = %s', (key, parent, expected) => {
    expect(isSecretKey(key, parent)).toBe(expected);
  });

  it('redactDeep keeps errors as errors and does not touch the original', () => {
    const err = Object.assign(new Error('x'), { password: 'p' });
    const copy = redactDeep({ err }).err;
    expect(copy).toBeInstanceOf(Error);
    expect((copy as unknown as { password: string }).password).toBe(REDACTED);
    expect(err.password).toBe('p');
  });
});
