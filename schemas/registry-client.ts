/**
 * A client for the Confluent Schema Registry REST API (also served by
 * Apicurio at /apis/ccompat/v7 and by Karapace). Only what Loopline needs:
 * register, fetch by id, compatibility. Network faults and 5xx are
 * TransientError (retry); a missing id is SchemaNotFoundError (dead-letter);
 * a certificate the client cannot verify, or one the registry refuses, is a
 * non-retriable REGISTRY_TLS error. Over https the server certificate is
 * always verified (against `ca` when given), and `cert`/`key` are presented
 * to a registry that requires client certificates.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { LooplineError, TransientError } from '../streams/errors.js';

export type Compatibility =
  | 'BACKWARD' | 'BACKWARD_TRANSITIVE' | 'FORWARD' | 'FORWARD_TRANSITIVE' | 'FULL' | 'FULL_TRANSITIVE' | 'NONE';

export class SchemaNotFoundError extends LooplineError {
  constructor(readonly id: number) {
    super(`schema id ${id} is not in the registry`, { code: 'UNKNOWN_SCHEMA', retriable: false });
  }
}

export class IncompatibleSchemaError extends LooplineError {
  constructor(subject: string, detail: string) {
    super(`schema is incompatible with subject ${subject}: ${detail}`, { code: 'INCOMPATIBLE_SCHEMA', retriable: false });
  }
}

export interface RegistryClientOptions {
  /** Base URL of the Confluent-compatible API, e.g. http://127.0.0.1:18081/apis/ccompat/v7. */
  url: string;
  /** Per-request timeout. Default 10 000 ms. */
  timeoutMs?: number;
  /** Optional basic auth, `user:password`. */
  basicAuth?: string | null;
  /** Optional bearer token (sent as `Authorization: Bearer …`); not with basicAuth. */
  token?: string | null;
  /** PEM file of the CA that signed the registry's certificate (https only). Default: the system CAs. */
  ca?: string | null;
  /** PEM files of the client certificate and its key, for a registry that requires one (https only). */
  cert?: string | null;
  key?: string | null;
}

/** TLS failures of configuration, not of the network: an unverifiable or refused certificate. */
const TLS_CONFIG_CODES = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH)/;

interface Reply {
  status: number;
  text: string;
}

/** One request over http or https with a keep-alive agent (idle sockets close after 5 s, as Node's global agent); rejects on network faults. */
function createTransport(options: RegistryClientOptions): (method: string, url: string, headers: Record<string, string>, body: string | null, timeoutMs: number) => Promise<Reply> {
  const secure = options.url.startsWith('https:');
  const read = (file: string | null | undefined) => (file ? fs.readFileSync(file) : undefined);
  const agent = secure
    ? new https.Agent({ keepAlive: true, timeout: 5000, ca: read(options.ca), cert: read(options.cert), key: read(options.key), rejectUnauthorized: true })
    : new http.Agent({ keepAlive: true, timeout: 5000 });
  const send = secure ? https.request : http.request;
  return (method, url, headers, body, timeoutMs) =>
    new Promise((resolve, reject) => {
      const req = send(url, { method, headers: body === null ? headers : { ...headers, 'Content-Length': String(Buffer.byteLength(body)) }, agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body ?? undefined);
    });
}

export interface RegistryClient {
  register(subject: string, schema: string): Promise<number>;
  getSchema(id: number): Promise<string>;
  setCompatibility(subject: string, level: Compatibility): Promise<void>;
  getCompatibility(subject: string): Promise<Compatibility | null>;
  isCompatible(subject: string, schema: string): Promise<boolean>;
  subjects(): Promise<string[]>;
}

export function createRegistryClient(options: RegistryClientOptions): RegistryClient {
  const base = options.url.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 10_000;
  const headers: Record<string, string> = { 'Content-Type': 'application/vnd.schemaregistry.v1+json', Accept: 'application/vnd.schemaregistry.v1+json, application/json' };
  if (options.basicAuth) headers.Authorization = `Basic ${Buffer.from(options.basicAuth).toString('base64')}`;
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  if (!base.startsWith('https:') && (options.ca || options.cert || options.key)) {
    throw new LooplineError(`schema registry URL ${base} is not https, so a CA or client certificate cannot apply`, { code: 'CONFIG', retriable: false });
  }
  if (options.basicAuth && options.token) throw new LooplineError('schema registry: basic auth and a bearer token are both set; choose one', { code: 'CONFIG', retriable: false });
  const transport = createTransport(options);

  async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    let res: Reply;
    try {
      res = await transport(method, `${base}${path}`, headers, body === undefined ? null : JSON.stringify(body), timeoutMs);
    } catch (err) {
      const code = String((err as { code?: unknown }).code ?? '');
      if (TLS_CONFIG_CODES.test(code)) throw new TransientError(`schema registry at ${base}: TLS failed (${code}: ${(err as Error).message})`, err, 'REGISTRY_TLS');
      throw new TransientError(`schema registry at ${base} unreachable (${(err as Error).message})`, err, 'REGISTRY_UNAVAILABLE');
    }
    const text = res.text;
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    if (res.status >= 500) throw new TransientError(`schema registry ${method} ${path} answered ${res.status}: ${text.slice(0, 200)}`, undefined, 'REGISTRY_UNAVAILABLE');
    if (res.status === 401 || res.status === 403) {
      throw new TransientError(`schema registry ${method} ${path} refused the credentials (${res.status}); check LOOPLINE_SCHEMA_REGISTRY_TOKEN / _AUTH`, undefined, 'REGISTRY_AUTH');
    }
    return { status: res.status, json };
  }

  const fail = (what: string, r: { status: number; json: unknown }): never => {
    throw new LooplineError(`schema registry ${what} answered ${r.status}: ${JSON.stringify(r.json).slice(0, 300)}`, { code: 'REGISTRY_ERROR', retriable: false });
  };

  return {
    async register(subject, schema) {
      const r = await call('POST', `/subjects/${encodeURIComponent(subject)}/versions`, { schema, schemaType: 'AVRO' });
      if (r.status === 409 || r.status === 422) throw new IncompatibleSchemaError(subject, JSON.stringify(r.json));
      if (r.status !== 200) fail(`register ${subject}`, r);
      const id = (r.json as { id?: unknown }).id;
      if (typeof id !== 'number') fail(`register ${subject} (no id)`, r);
      return id as number;
    },
    async getSchema(id) {
      const r = await call('GET', `/schemas/ids/${id}`);
      if (r.status === 404) throw new SchemaNotFoundError(id);
      if (r.status !== 200) fail(`get schema ${id}`, r);
      return (r.json as { schema: string }).schema;
    },
    async setCompatibility(subject, level) {
      const r = await call('PUT', `/config/${encodeURIComponent(subject)}`, { compatibility: level });
      if (r.status !== 200) fail(`set compatibility of ${subject}`, r);
    },
    async getCompatibility(subject) {
      const r = await call('GET', `/config/${encodeURIComponent(subject)}`);
      if (r.status === 404) return null;
      if (r.status !== 200) fail(`get compatibility of ${subject}`, r);
      const j = r.json as { compatibilityLevel?: Compatibility; compatibility?: Compatibility };
      return j.compatibilityLevel ?? j.compatibility ?? null;
    },
    async isCompatible(subject, schema) {
      const r = await call('POST', `/compatibility/subjects/${encodeURIComponent(subject)}/versions/latest`, { schema, schemaType: 'AVRO' });
      if (r.status === 404) return true; // no versions yet: anything is compatible
      if (r.status !== 200) fail(`check compatibility of ${subject}`, r);
      return (r.json as { is_compatible: boolean }).is_compatible;
    },
    async subjects() {
      const r = await call('GET', '/subjects');
      if (r.status !== 200) fail('list subjects', r);
      return r.json as string[];
    },
  };
}
