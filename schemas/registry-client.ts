/**
 * A client for the Confluent Schema Registry REST API (also served by
 * Apicurio at /apis/ccompat/v7 and by Karapace). Only what Loopline needs:
 * register, fetch by id, a subject's versions, compatibility.
 *
 * Every failure is classified, carries a code and says what was being done:
 * | answer | error | what the runtime does |
 * |---|---|---|
 * | network fault, timeout, 408, 429, 5xx | TransientError `REGISTRY_UNAVAILABLE` | retries, never dead-letters |
 * | a certificate the client cannot verify, or a TLS handshake the registry refuses (no or wrong client certificate, http on an https port) | RegistryTlsError `REGISTRY_TLS` (a ConfigError) | stops the worker: no retry fixes a trust setting |
 * | 401, 403 | RegistryAuthError `REGISTRY_AUTH` (a ConfigError) | stops the worker: credentials are wrong, every record would fail |
 * | 404 with error 40403 for an id | SchemaNotFoundError `UNKNOWN_SCHEMA` | the codec dead-letters that record |
 * | 409 on register | IncompatibleSchemaError `INCOMPATIBLE_SCHEMA` (names subject and rule) | stops: a deploy problem |
 * | 422 on register | InvalidSchemaError `INVALID_SCHEMA` (names subject and rule) | stops |
 * | any other 4xx, or a 404 without a registry error code (wrong base URL) | RegistryError `REGISTRY_ERROR` | stops |
 *
 * Credentials may come as `basicAuth` or as userinfo in the URL
 * (`https://user:pass@host/...`); either way they are sent as a Basic
 * Authorization header and never appear in an error message. A bearer
 * `token` (e.g. the JWT the secured local stack signs for Apicurio's OIDC
 * layer) is sent as `Authorization: Bearer …` instead; asking for both is a
 * ConfigError.
 *
 * Requests go through node:http(s) with a keep-alive agent. Over https the
 * server certificate is always verified (against `ca` when given, else the
 * system CAs), and `cert`/`key` are presented to a registry that requires
 * client certificates; these files are read once, when the client is made.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { ConfigError, LooplineError, TransientError } from '../core/errors.js';
import { redactText, redactUrl } from '../streams/redact.js';

export type Compatibility =
  | 'BACKWARD' | 'BACKWARD_TRANSITIVE' | 'FORWARD' | 'FORWARD_TRANSITIVE' | 'FULL' | 'FULL_TRANSITIVE' | 'NONE';

/** The registry has no schema with this id (404, error 40403). The record carrying it can never be decoded. */
export class SchemaNotFoundError extends LooplineError {
  constructor(readonly id: number) {
    super(`fetching schema id ${id}: the registry has no such schema`, { code: 'UNKNOWN_SCHEMA', retriable: false });
  }
}

/** The registry refused a request in a way no retry fixes (4xx other than the cases below, or a wrong base URL). */
export class RegistryError extends LooplineError {
  constructor(message: string, readonly status: number, code = 'REGISTRY_ERROR') {
    super(message, { code, retriable: false });
  }
}

/** 401/403: the configured credentials are missing, wrong or not allowed. Configuration: stop, never dead-letter. */
export class RegistryAuthError extends ConfigError {
  constructor(message: string, readonly status: number) {
    super(message, 'REGISTRY_AUTH');
  }
}

/** TLS fails for want of trust: an unverifiable server certificate, or a handshake the registry refuses. Configuration: stop, never dead-letter. */
export class RegistryTlsError extends ConfigError {
  constructor(message: string, readonly tlsCode: string) {
    super(message, 'REGISTRY_TLS');
  }
}

/** 409 on register: the schema breaks the subject's compatibility rule. */
export class IncompatibleSchemaError extends LooplineError {
  constructor(readonly subject: string, readonly compatibility: Compatibility | null, detail: string) {
    super(`registering a schema under subject ${subject}: the registry refused it as incompatible with the subject's ${compatibility ?? 'configured'} compatibility rule (409): ${detail}`, { code: 'INCOMPATIBLE_SCHEMA', retriable: false });
  }
}

/** 422 on register: the registry does not accept the schema text (invalid Avro, bad references). */
export class InvalidSchemaError extends LooplineError {
  constructor(readonly subject: string, readonly compatibility: Compatibility | null, detail: string) {
    super(`registering a schema under subject ${subject} (compatibility rule ${compatibility ?? 'unknown'}): the registry rejected the schema as invalid (422): ${detail}`, { code: 'INVALID_SCHEMA', retriable: false });
  }
}

export interface RegistryClientOptions {
  /** Base URL of the Confluent-compatible API, e.g. http://127.0.0.1:18081/apis/ccompat/v7; may hold `user:password@`. */
  url: string;
  /** Per-request timeout. Default 10 000 ms. */
  timeoutMs?: number;
  /** Optional basic auth, `user:password`; wins over userinfo in `url`. */
  basicAuth?: string | null;
  /** Optional bearer token, sent as `Authorization: Bearer …`; not with basic auth (from `basicAuth` or the URL). */
  token?: string | null;
  /** PEM file of the CA that signed the registry's certificate (https only). Default: the system CAs. */
  ca?: string | null;
  /** PEM files of the client certificate and its key, for a registry that requires one (https only). */
  cert?: string | null;
  key?: string | null;
}

export interface SubjectVersion {
  subject: string;
  version: number;
  /** The schema id records written with this version carry. */
  id: number;
  schema: string;
}

export interface RegistryClient {
  /** The id of `schema` under `subject`, registering it as a new version if needed. */
  register(subject: string, schema: string): Promise<number>;
  /** The schema text for an id; SchemaNotFoundError if the registry has none. */
  getSchema(id: number): Promise<string>;
  /** The versions registered under `subject` (soft-deleted ones included where the registry lists them); [] for an unknown subject. */
  subjectVersions(subject: string): Promise<number[]>;
  /** One registered version of `subject` with its schema id. */
  subjectVersion(subject: string, version: number): Promise<SubjectVersion>;
  setCompatibility(subject: string, level: Compatibility): Promise<void>;
  getCompatibility(subject: string): Promise<Compatibility | null>;
  isCompatible(subject: string, schema: string): Promise<boolean>;
  subjects(): Promise<string[]>;
  /** Deletes a subject and its versions for good (soft delete, then permanent); false if there was none. For `loopline clean`. */
  deleteSubject(subject: string): Promise<boolean>;
}

interface Answer {
  status: number;
  json: unknown;
  text: string;
}

/** Node error codes of TLS failures that are about trust (certificates, protocol), not the network; EPROTO with an OpenSSL reason too (https on a plain port). */
const TLS_CONFIG_CODES = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH|ERR_OSSL_)/;

type Transport = (method: string, url: string, headers: Record<string, string>, body: string | null, timeoutMs: number) => Promise<{ status: number; text: string }>;

/** A deadline passed without an answer (any phase: connect, TLS, headers, body). */
class RequestTimeout extends Error {}

/** One request over http or https with a keep-alive agent (idle sockets close after 5 s); rejects on network and TLS faults and on the deadline. */
function createTransport(secure: boolean, options: RegistryClientOptions): Transport {
  const read = (file: string | null | undefined) => (file ? fs.readFileSync(file) : undefined);
  const agent = secure
    ? new https.Agent({ keepAlive: true, timeout: 5000, ca: read(options.ca), cert: read(options.cert), key: read(options.key), rejectUnauthorized: true })
    : new http.Agent({ keepAlive: true, timeout: 5000 });
  const send = secure ? https.request : http.request;
  return (method, url, headers, body, timeoutMs) =>
    new Promise((resolve, reject) => {
      const req = send(url, { method, headers: body === null ? headers : { ...headers, 'Content-Length': String(Buffer.byteLength(body)) }, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      });
      const timer = setTimeout(() => req.destroy(new RequestTimeout(`no answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end(body ?? undefined);
    });
}

/** The Confluent `error_code` of an answer (40403 schema not found, 40401 subject not found, ...), or null. */
function registryCode(json: unknown): number | null {
  const code = (json as { error_code?: unknown } | null)?.error_code;
  return typeof code === 'number' && code > 0 ? code : null;
}

/** Splits `user:pass@` out of a URL: the request URL must not carry it, and error messages must not show it. */
function parseBase(url: string): { base: string; userinfo: string | null } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`schema registry URL ${redactUrl(url)} is not a valid URL (LOOPLINE_SCHEMA_REGISTRY_URL)`);
  }
  const userinfo = parsed.username || parsed.password ? `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}` : null;
  parsed.username = '';
  parsed.password = '';
  return { base: parsed.toString().replace(/\/+$/, ''), userinfo };
}

export function createRegistryClient(options: RegistryClientOptions): RegistryClient {
  const { base, userinfo } = parseBase(options.url);
  const shownBase = redactUrl(base);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const credentials = options.basicAuth ?? userinfo;
  const secure = base.startsWith('https:');
  if (credentials && options.token) {
    throw new ConfigError('schema registry: basic auth (LOOPLINE_SCHEMA_REGISTRY_AUTH or userinfo in LOOPLINE_SCHEMA_REGISTRY_URL) and a bearer token (LOOPLINE_SCHEMA_REGISTRY_TOKEN) are both set; choose one');
  }
  if (!secure && (options.ca || options.cert || options.key)) {
    throw new ConfigError(`schema registry URL ${shownBase} is not https, so LOOPLINE_SCHEMA_REGISTRY_CA / _CERT / _KEY cannot apply`);
  }
  if (Boolean(options.cert) !== Boolean(options.key)) throw new ConfigError('schema registry: a client certificate needs its key and the other way round (LOOPLINE_SCHEMA_REGISTRY_CERT / _KEY)');
  const headers: Record<string, string> = { 'Content-Type': 'application/vnd.schemaregistry.v1+json', Accept: 'application/vnd.schemaregistry.v1+json, application/json' };
  if (credentials) headers.Authorization = `Basic ${Buffer.from(credentials).toString('base64')}`;
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  const checkWhat = options.token
    ? 'LOOPLINE_SCHEMA_REGISTRY_TOKEN (a bearer token was sent)'
    : `LOOPLINE_SCHEMA_REGISTRY_AUTH or the credentials in LOOPLINE_SCHEMA_REGISTRY_URL (${credentials ? 'credentials were sent' : 'none were sent'})`;
  const transport = createTransport(secure, options);

  /** One request; throws the transient and auth classes, returns every other answer for the caller to read. */
  async function call(doing: string, method: string, path: string, body?: unknown): Promise<Answer> {
    let res: { status: number; text: string };
    try {
      res = await transport(method, `${base}${path}`, headers, body === undefined ? null : JSON.stringify(body), timeoutMs);
    } catch (err) {
      // No `cause`: socket errors can quote the URL, and kafkajs judges retriability by the innermost cause.
      const e = err as Error & { code?: unknown };
      const code = typeof e.code === 'string' ? e.code : '';
      if (TLS_CONFIG_CODES.test(code) || (code === 'EPROTO' && /SSL routines/.test(e.message))) {
        throw new RegistryTlsError(
          `${doing}: schema registry at ${shownBase}: TLS failed: ${redactText(e.message)} (${code}); check LOOPLINE_SCHEMA_REGISTRY_CA${secure ? ' / _CERT / _KEY' : ''} and the URL's scheme`,
          code,
        );
      }
      const why = e instanceof RequestTimeout ? e.message : `${e.message}${code && !e.message.includes(code) ? ` (${code})` : ''}`;
      throw new TransientError(`${doing}: schema registry at ${shownBase} unreachable: ${redactText(why)}`, undefined, 'REGISTRY_UNAVAILABLE');
    }
    const text = res.text;
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    const answer = { status: res.status, json, text };
    if (res.status === 401 || res.status === 403) {
      throw new RegistryAuthError(
        `${doing}: schema registry at ${shownBase} answered ${res.status} ${res.status === 401 ? 'Unauthorized' : 'Forbidden'}; check ${checkWhat}`,
        res.status,
      );
    }
    if (res.status >= 500 || res.status === 408 || res.status === 429) {
      throw new TransientError(`${doing}: schema registry at ${shownBase} answered ${res.status}: ${detailOf(answer)}`, undefined, 'REGISTRY_UNAVAILABLE');
    }
    return answer;
  }

  const detailOf = (a: Answer): string => redactText((typeof a.json === 'object' && a.json && 'message' in a.json ? String((a.json as { message: unknown }).message) : a.text).slice(0, 500));

  const fail = (doing: string, a: Answer): never => {
    if (a.status === 404 && registryCode(a.json) === null) {
      throw new RegistryError(`${doing}: ${shownBase} answered 404 without a registry error code; is LOOPLINE_SCHEMA_REGISTRY_URL the API base (…/apis/ccompat/v7 for Apicurio)? ${detailOf(a)}`, a.status);
    }
    throw new RegistryError(`${doing}: schema registry answered ${a.status}: ${detailOf(a)}`, a.status);
  };

  /** The subject's rule, else the global one; null if neither can be read (only for error messages). */
  async function ruleOf(subject: string): Promise<Compatibility | null> {
    try {
      return (await client.getCompatibility(subject)) ?? (await globalCompatibility());
    } catch {
      return null;
    }
  }

  async function globalCompatibility(): Promise<Compatibility | null> {
    const r = await call('reading the global compatibility rule', 'GET', '/config');
    if (r.status !== 200) return null;
    const j = r.json as { compatibilityLevel?: Compatibility; compatibility?: Compatibility };
    return j.compatibilityLevel ?? j.compatibility ?? null;
  }

  const client: RegistryClient = {
    async register(subject, schema) {
      const doing = `registering a schema under subject ${subject}`;
      const r = await call(doing, 'POST', `/subjects/${encodeURIComponent(subject)}/versions`, { schema, schemaType: 'AVRO' });
      if (r.status === 409) throw new IncompatibleSchemaError(subject, await ruleOf(subject), detailOf(r));
      if (r.status === 422) throw new InvalidSchemaError(subject, await ruleOf(subject), detailOf(r));
      if (r.status !== 200) fail(doing, r);
      const id = (r.json as { id?: unknown }).id;
      if (typeof id !== 'number') throw new RegistryError(`${doing}: the registry answered without an id: ${detailOf(r)}`, r.status);
      return id;
    },
    async getSchema(id) {
      const doing = `fetching schema id ${id}`;
      const r = await call(doing, 'GET', `/schemas/ids/${id}`);
      if (r.status === 404 && registryCode(r.json) !== null) throw new SchemaNotFoundError(id);
      if (r.status !== 200) fail(doing, r);
      const schema = (r.json as { schema?: unknown }).schema;
      if (typeof schema !== 'string') throw new RegistryError(`${doing}: the registry answered without a schema`, r.status);
      return schema;
    },
    async subjectVersions(subject) {
      const doing = `listing the versions of subject ${subject}`;
      const r = await call(doing, 'GET', `/subjects/${encodeURIComponent(subject)}/versions?deleted=true`);
      if (r.status === 404 && registryCode(r.json) !== null) return [];
      if (r.status !== 200 || !Array.isArray(r.json)) fail(doing, r);
      return (r.json as unknown[]).filter((v): v is number => Number.isSafeInteger(v));
    },
    async subjectVersion(subject, version) {
      const doing = `fetching version ${version} of subject ${subject}`;
      const r = await call(doing, 'GET', `/subjects/${encodeURIComponent(subject)}/versions/${version}?deleted=true`);
      if (r.status !== 200) fail(doing, r);
      const j = r.json as { id?: unknown; version?: unknown; schema?: unknown };
      if (typeof j.id !== 'number' || typeof j.schema !== 'string') throw new RegistryError(`${doing}: the registry answered without an id and schema`, r.status);
      return { subject, version: typeof j.version === 'number' ? j.version : version, id: j.id, schema: j.schema };
    },
    async setCompatibility(subject, level) {
      const doing = `setting the compatibility rule of subject ${subject} to ${level}`;
      const r = await call(doing, 'PUT', `/config/${encodeURIComponent(subject)}`, { compatibility: level });
      if (r.status !== 200) fail(doing, r);
    },
    async getCompatibility(subject) {
      const doing = `reading the compatibility rule of subject ${subject}`;
      const r = await call(doing, 'GET', `/config/${encodeURIComponent(subject)}`);
      if (r.status === 404 && registryCode(r.json) !== null) return null;
      if (r.status !== 200) fail(doing, r);
      const j = r.json as { compatibilityLevel?: Compatibility; compatibility?: Compatibility };
      return j.compatibilityLevel ?? j.compatibility ?? null;
    },
    async isCompatible(subject, schema) {
      const doing = `checking a schema against subject ${subject}`;
      const r = await call(doing, 'POST', `/compatibility/subjects/${encodeURIComponent(subject)}/versions/latest`, { schema, schemaType: 'AVRO' });
      if (r.status === 404 && registryCode(r.json) !== null) return true; // no versions yet: anything is compatible
      if (r.status !== 200) fail(doing, r);
      return (r.json as { is_compatible: boolean }).is_compatible;
    },
    async subjects() {
      const r = await call('listing subjects', 'GET', '/subjects');
      if (r.status !== 200 || !Array.isArray(r.json)) fail('listing subjects', r);
      return r.json as string[];
    },
    async deleteSubject(subject) {
      const doing = `deleting subject ${subject}`;
      const soft = await call(doing, 'DELETE', `/subjects/${encodeURIComponent(subject)}`);
      if (soft.status === 404 && registryCode(soft.json) === 40401) return false;
      if (soft.status !== 200 && !(soft.status === 404 && registryCode(soft.json) !== null)) fail(doing, soft);
      const hard = await call(doing, 'DELETE', `/subjects/${encodeURIComponent(subject)}?permanent=true`);
      if (hard.status !== 200 && !(hard.status === 404 && registryCode(hard.json) !== null)) fail(doing, hard);
      return true;
    },
  };
  return client;
}
