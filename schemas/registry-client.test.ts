/**
 * The registry client against a scripted HTTP server on loopback: every
 * answer classified into the taxonomy, with the code, the gerund context,
 * and never the credentials.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, isConfigError, LooplineError, TransientError, wrapError } from '../core/errors.js';
import {
  createRegistryClient, IncompatibleSchemaError, InvalidSchemaError, RegistryAuthError, RegistryError, RegistryTlsError, SchemaNotFoundError,
} from './registry-client.js';

const SENTINEL = 'S3ntinel-registry-pw';

interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
}

let server: http.Server;
let base: string;
const seen: Seen[] = [];
/** path → [status, body]; `hang` never answers. */
const script = new Map<string, [number, unknown] | 'hang'>();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    const path = (req.url ?? '').replace(/\?.*$/, '');
    const answer = script.get(`${req.method} ${path}`);
    if (answer === 'hang') return;
    const [status, body] = answer ?? [404, { error_code: 0, message: `RESTEASY003210: Could not find resource for full path: ${path}` }];
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/apis/ccompat/v7`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const client = (extra: { url?: string; basicAuth?: string; timeoutMs?: number } = {}) => createRegistryClient({ url: base, timeoutMs: 2000, ...extra });

async function thrown(p: Promise<unknown>): Promise<LooplineError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(LooplineError);
    const e = err as LooplineError;
    expect(e.message).not.toContain(SENTINEL);
    expect(JSON.stringify({ ...e, message: e.message })).not.toContain(SENTINEL);
    return e;
  }
  throw new Error('expected a rejection');
}

describe('registry client: classification', () => {
  it.each([401, 403])('%i → RegistryAuthError (a ConfigError), not retriable, names the variable', async (status) => {
    script.set('GET /apis/ccompat/v7/schemas/ids/7', [status, { error_code: status * 100 + 1, message: 'nope' }]);
    const e = await thrown(client({ basicAuth: `svc:${SENTINEL}` }).getSchema(7));
    expect(e).toBeInstanceOf(RegistryAuthError);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e).toMatchObject({ code: 'REGISTRY_AUTH', retriable: false, status });
    expect(e.message).toMatch(/^fetching schema id 7: schema registry at http:\/\/127\.0\.0\.1:\d+\/apis\/ccompat\/v7 answered 40[13]/);
    expect(e.message).toMatch(/LOOPLINE_SCHEMA_REGISTRY_AUTH/);
    // Wrapping keeps it a ConfigError, so the runtime still stops instead of dead-lettering.
    expect(isConfigError(wrapError(e, 'decoding a record'))).toBe(true);
  });

  it('404 with error 40403 → SchemaNotFoundError (UNKNOWN_SCHEMA)', async () => {
    script.set('GET /apis/ccompat/v7/schemas/ids/8', [404, { error_code: 40403, message: "No content with id/hash 'contentId-8' was found." }]);
    const e = await thrown(client().getSchema(8));
    expect(e).toBeInstanceOf(SchemaNotFoundError);
    expect(e).toMatchObject({ code: 'UNKNOWN_SCHEMA', retriable: false });
  });

  it('404 without a registry error code (wrong base URL) → RegistryError, not UNKNOWN_SCHEMA', async () => {
    const e = await thrown(createRegistryClient({ url: base.replace('/v7', '/v9') }).getSchema(9));
    expect(e).toBeInstanceOf(RegistryError);
    expect(e.code).toBe('REGISTRY_ERROR');
    expect(e.message).toMatch(/is LOOPLINE_SCHEMA_REGISTRY_URL the API base/);
  });

  it.each([500, 502, 503, 408, 429])('%i → TransientError REGISTRY_UNAVAILABLE', async (status) => {
    script.set('GET /apis/ccompat/v7/schemas/ids/10', [status, { error_code: status, message: 'busy' }]);
    const e = await thrown(client().getSchema(10));
    expect(e).toBeInstanceOf(TransientError);
    expect(e).toMatchObject({ code: 'REGISTRY_UNAVAILABLE', retriable: true });
    expect(e.message).toMatch(new RegExp(`^fetching schema id 10: schema registry at .* answered ${status}: busy`));
  });

  it('a timeout → TransientError with no cause (kafkajs reads retriability from the innermost cause)', async () => {
    script.set('GET /apis/ccompat/v7/schemas/ids/11', 'hang');
    const e = await thrown(client({ timeoutMs: 100 }).getSchema(11));
    expect(e).toBeInstanceOf(TransientError);
    expect(e.message).toMatch(/no answer within 100 ms/);
    expect(e.cause).toBeUndefined();
  });

  it('connection refused → TransientError, the URL shown without its credentials', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const e = await thrown(createRegistryClient({ url: `http://svc:${SENTINEL}@127.0.0.1:${port}/apis/ccompat/v7`, timeoutMs: 2000 }).getSchema(1));
    expect(e).toBeInstanceOf(TransientError);
    expect(e.message).toBe(`fetching schema id 1: schema registry at http://127.0.0.1:${port}/apis/ccompat/v7 unreachable: connect ECONNREFUSED 127.0.0.1:${port}`);
  });

  it('409 on register → IncompatibleSchemaError naming the subject and its rule', async () => {
    script.set('POST /apis/ccompat/v7/subjects/labels-value/versions', [409, { error_code: 409, message: 'Incompatible artifact: reader type: STRING not compatible with writer type: INT at /fields/0/type' }]);
    script.set('GET /apis/ccompat/v7/config/labels-value', [200, { compatibilityLevel: 'FULL_TRANSITIVE' }]);
    const e = await thrown(client().register('labels-value', '{"type":"string"}'));
    expect(e).toBeInstanceOf(IncompatibleSchemaError);
    expect(e).toMatchObject({ code: 'INCOMPATIBLE_SCHEMA', retriable: false, subject: 'labels-value', compatibility: 'FULL_TRANSITIVE' });
    expect(e.message).toMatch(/^registering a schema under subject labels-value: .*FULL_TRANSITIVE compatibility rule \(409\): Incompatible artifact: reader type: STRING/);
  });

  it('409 with no subject rule falls back to the global rule', async () => {
    script.set('POST /apis/ccompat/v7/subjects/other-value/versions', [409, { error_code: 409, message: 'incompatible' }]);
    script.set('GET /apis/ccompat/v7/config/other-value', [404, { error_code: 40401, message: 'no subject' }]);
    script.set('GET /apis/ccompat/v7/config', [200, { compatibilityLevel: 'BACKWARD' }]);
    const e = await thrown(client().register('other-value', '{"type":"string"}'));
    expect(e.message).toMatch(/subject's BACKWARD compatibility rule/);
  });

  it('422 on register → InvalidSchemaError naming the subject and the rule', async () => {
    script.set('POST /apis/ccompat/v7/subjects/labels-value/versions', [422, { error_code: 42201, message: 'Failed to discover artifact type from content.' }]);
    const e = await thrown(client().register('labels-value', '{"type":"recor'));
    expect(e).toBeInstanceOf(InvalidSchemaError);
    expect(e).toMatchObject({ code: 'INVALID_SCHEMA', retriable: false });
    expect(e.message).toMatch(/^registering a schema under subject labels-value \(compatibility rule FULL_TRANSITIVE\): .* invalid \(422\): Failed to discover/);
  });

  it('other 4xx → RegistryError with the gerund context', async () => {
    script.set('PUT /apis/ccompat/v7/config/x-value', [400, { error_code: 40001, message: 'bad level' }]);
    const e = await thrown(client().setCompatibility('x-value', 'FULL'));
    expect(e).toMatchObject({ code: 'REGISTRY_ERROR', retriable: false });
    expect(e.message).toBe('setting the compatibility rule of subject x-value to FULL: schema registry answered 400: bad level');
  });

  it('reads a subject\'s versions with their ids; an unknown subject has none', async () => {
    script.set('GET /apis/ccompat/v7/subjects/ev-value/versions', [200, [1, 2]]);
    script.set('GET /apis/ccompat/v7/subjects/ev-value/versions/2', [200, { subject: 'ev-value', version: 2, id: 31, schema: '"string"' }]);
    script.set('GET /apis/ccompat/v7/subjects/none-value/versions', [404, { error_code: 40401, message: 'no subject' }]);
    const c = client();
    expect(await c.subjectVersions('ev-value')).toEqual([1, 2]);
    expect(await c.subjectVersion('ev-value', 2)).toEqual({ subject: 'ev-value', version: 2, id: 31, schema: '"string"' });
    expect(await c.subjectVersions('none-value')).toEqual([]);
  });
});

describe('registry client: credentials', () => {
  it('moves userinfo out of the URL into a Basic header, and never shows it', async () => {
    seen.length = 0;
    script.set('GET /apis/ccompat/v7/schemas/ids/12', [200, { schema: '"string"' }]);
    const url = base.replace('http://', `http://svc%40corp:${encodeURIComponent(SENTINEL)}@`);
    expect(await createRegistryClient({ url }).getSchema(12)).toBe('"string"');
    expect(seen[0]!.url).toBe('/apis/ccompat/v7/schemas/ids/12');
    expect(Buffer.from(seen[0]!.authorization!.replace(/^Basic /, ''), 'base64').toString()).toBe(`svc@corp:${SENTINEL}`);
    script.set('GET /apis/ccompat/v7/schemas/ids/13', [503, { message: 'down' }]);
    const e = await thrown(createRegistryClient({ url }).getSchema(13));
    expect(e.message).toMatch(/at http:\/\/127\.0\.0\.1:\d+\/apis\/ccompat\/v7 answered 503: down$/);
  });

  it('sends a bearer token instead, and names it when the registry refuses it', async () => {
    seen.length = 0;
    script.set('GET /apis/ccompat/v7/schemas/ids/14', [200, { schema: '"int"' }]);
    const token = `eyJhbGciOiJSUzI1NiJ9.${SENTINEL}.c2ln`;
    expect(await client({ token } as never).getSchema(14)).toBe('"int"');
    expect(seen[0]!.authorization).toBe(`Bearer ${token}`);
    script.set('GET /apis/ccompat/v7/schemas/ids/15', [401, { message: 'expired' }]);
    const e = await thrown(createRegistryClient({ url: base, token }).getSchema(15));
    expect(e).toBeInstanceOf(RegistryAuthError);
    expect(e.message).toMatch(/LOOPLINE_SCHEMA_REGISTRY_TOKEN.*\(a bearer token was sent\)/);
  });

  it('refuses basic auth and a token together, and TLS files on an http URL, as ConfigErrors', () => {
    expect(() => createRegistryClient({ url: base, basicAuth: `svc:${SENTINEL}`, token: 't' })).toThrow(ConfigError);
    expect(() => createRegistryClient({ url: base.replace('http://', `http://svc:${SENTINEL}@`), token: 't' })).toThrow(/choose one/);
    expect(() => createRegistryClient({ url: base, ca: '/nonexistent/ca.pem' })).toThrow(/is not https, so LOOPLINE_SCHEMA_REGISTRY_CA/);
    expect(() => createRegistryClient({ url: base.replace('http:', 'https:'), cert: '/x.pem' })).toThrow(/needs its key/);
  });

  it('a TLS failure (https on a plain port) → RegistryTlsError, a ConfigError: the worker stops, nothing is retried or dead-lettered', async () => {
    const e = await thrown(createRegistryClient({ url: base.replace('http:', 'https:'), token: SENTINEL }).getSchema(16));
    expect(e).toBeInstanceOf(RegistryTlsError);
    expect(isConfigError(wrapError(e, 'decoding a record'))).toBe(true);
    expect(e).toMatchObject({ code: 'REGISTRY_TLS', retriable: false });
    expect(e.message).toMatch(/^fetching schema id 16: schema registry at https:\/\/127\.0\.0\.1:\d+\/apis\/ccompat\/v7: TLS failed: .*wrong version number/);
  });

  it('an invalid URL is a ConfigError that does not echo it', () => {
    expect(() => createRegistryClient({ url: `ht!tp://svc:${SENTINEL}@` })).toThrow(ConfigError);
    try {
      createRegistryClient({ url: `ht!tp://svc:${SENTINEL}@` });
    } catch (err) {
      expect((err as Error).message).not.toContain(SENTINEL);
    }
  });
});
