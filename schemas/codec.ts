/**
 * Avro in the Confluent framing: magic byte 0, a 4-byte big-endian schema
 * id, then the Avro binary body. Encoding registers the writer schema once
 * per subject; decoding fetches the writer schema by id (cached) and
 * resolves it to the reader's schema, so evolved producers keep working.
 *
 *   const codec = createCodec(registry);
 *   const options = { subjects: ['events.client-value'], maxRecordBytes: 65_536 }; // once per topic
 *   const d = await codec.decode('ClientEvent', message.value, options);
 *   if (!d.ok) deadLetter(d.error.code, d.error.message);
 *
 * Decoding checks, in this order, before any allocation sized from the wire:
 * | check | error code |
 * |---|---|
 * | message longer than `maxRecordBytes` | TOO_LARGE (limit `maxRecordBytes`) |
 * | 5 bytes or fewer | TOO_SHORT |
 * | first byte not 0 | BAD_MAGIC |
 * | id not among the topic's `subjects` versions / `schemaIds` (no registry lookup of the id) | SCHEMA_NOT_ALLOWED |
 * | id unknown to the registry (remembered for `unknownSchemaTtlMs`) | UNKNOWN_SCHEMA |
 * | writer record cannot be read as the expected record | SCHEMA_MISMATCH |
 * | a count, length or nesting beyond the limits (see avro-guard.ts) | LIMIT_EXCEEDED (with `limit`) |
 * | a count or length beyond the bytes left (limit `bytesRemaining`), anything else avsc refuses, truncation, trailing bytes | BAD_BODY |
 *
 * Decode failures are returned as values, never thrown, so the runtime can
 * dead-letter the record and move on. Registry failures are thrown, because
 * the record is fine: a TransientError (outage: retry) or a ConfigError such
 * as RegistryAuthError (stop the worker; dead-lettering would lose good records).
 *
 * Memory is bounded whatever ids arrive: writer schemas and resolvers live in
 * LRU caches of `maxCachedSchemas`, unknown ids in a TTL cache, and a
 * topic's allowed ids come from its subjects' version lists, refreshed at most
 * once per `subjectRefreshMs` per subject however many unknown ids arrive.
 */
import avro from 'avsc';
import { ConfigError } from '../core/errors.js';
import { compileDecodeLimits, guardAvroBody, type DecodeLimitName, type DecodeLimits } from './avro-guard.js';
import { recordSchema, type RecordName } from './catalogue.js';
import { createLruCache } from './lru-cache.js';
import { SchemaNotFoundError, type RegistryClient } from './registry-client.js';
import type * as T from './types.js';

export { DEFAULT_DECODE_LIMITS, type DecodeLimitName, type DecodeLimits } from './avro-guard.js';

export const MAGIC_BYTE = 0;
export const HEADER_BYTES = 5;

export type DecodeErrorCode =
  | 'TOO_SHORT' | 'TOO_LARGE' | 'BAD_MAGIC' | 'SCHEMA_NOT_ALLOWED' | 'UNKNOWN_SCHEMA' | 'SCHEMA_MISMATCH' | 'LIMIT_EXCEEDED' | 'BAD_BODY';

export interface DecodeError {
  code: DecodeErrorCode;
  message: string;
  schemaId: number | null;
  /** For TOO_LARGE and LIMIT_EXCEEDED: the limit broken; for BAD_BODY, `bytesRemaining` when a declared count or length exceeds the bytes left. */
  limit?: DecodeLimitName | 'maxRecordBytes';
}

export type Decoded<V> = { ok: true; value: V; schemaId: number } | { ok: false; error: DecodeError };

/**
 * What one topic may carry. Build it once per topic and pass the same object
 * to every decode (compiled forms are cached by object identity).
 */
export interface DecodeOptions extends Partial<DecodeLimits> {
  /**
   * Registry subjects whose registered versions the topic may carry (e.g.
   * `names.subject(topic, record)`). An id outside them is SCHEMA_NOT_ALLOWED
   * without the registry being asked about that id. Omit both this and
   * `schemaIds` to accept any id the registry knows.
   */
  subjects?: readonly string[];
  /** Schema ids the topic may carry in addition to its subjects' versions. */
  schemaIds?: readonly number[];
}

export interface CodecOptions {
  /** Limits for every decode; a topic's DecodeOptions override them. Default DEFAULT_DECODE_LIMITS. */
  limits?: Partial<DecodeLimits>;
  /** Writer schemas (and as many resolvers) kept in memory, least recently used evicted. Default 1000. */
  maxCachedSchemas?: number;
  /** How long an id the registry does not know (or a topic does not allow) is answered from memory. Default 30 000 ms. */
  unknownSchemaTtlMs?: number;
  /** Unknown ids remembered at once. Default 10 000. */
  maxUnknownSchemas?: number;
  /** Least time between two fetches of one subject's version list, however many unknown ids arrive. Default 1000 ms. */
  subjectRefreshMs?: number;
  /** Clock in ms, for tests. Default Date.now. */
  now?: () => number;
}

export interface RecordTypes {
  ClientEvent: T.ClientEvent;
  FeatureUpdate: T.FeatureUpdate;
  FeatureVector: T.FeatureVector;
  Prediction: T.Prediction;
  GroundTruth: T.GroundTruth;
  LabeledPrediction: T.LabeledPrediction;
  QualityReport: T.QualityReport;
  DriftReport: T.DriftReport;
  RetrainRequest: T.RetrainRequest;
  ModelCandidate: T.ModelCandidate;
  ModelEvent: T.ModelEvent;
  DeadLetter: T.DeadLetter;
}

export interface Codec {
  /** Frames `value` with the schema id registered for `subject` (registered on first use). */
  encode<N extends RecordName>(name: N, subject: string, value: RecordTypes[N]): Promise<Buffer>;
  /** Decodes a framed message as record `name`; never throws for bad bytes (throws registry failures, see above). */
  decode<N extends RecordName>(name: N, bytes: Buffer | null, options?: DecodeOptions): Promise<Decoded<RecordTypes[N]>>;
  /**
   * Decodes a message of a topic that carries several record types
   * (TopicRecordNameStrategy): the writer schema's full name picks the type.
   */
  decodeAny<N extends RecordName>(names: readonly N[], bytes: Buffer | null, options?: DecodeOptions): Promise<Decoded<RecordTypes[N]> & { record?: N }>;
  /** The schema id registered for `subject` with record `name`. */
  schemaId(name: RecordName, subject: string): Promise<number>;
}

/** Parses the 5-byte header; pure, for tests and for tools. */
export function readHeader(bytes: Buffer | null): { ok: true; schemaId: number } | { ok: false; error: DecodeError } {
  if (!bytes || bytes.length <= HEADER_BYTES) {
    return { ok: false, error: { code: 'TOO_SHORT', message: `message has ${bytes?.length ?? 0} bytes; a framed Avro record needs more than ${HEADER_BYTES}`, schemaId: null } };
  }
  if (bytes[0] !== MAGIC_BYTE) {
    return { ok: false, error: { code: 'BAD_MAGIC', message: `magic byte is ${bytes[0]}, expected ${MAGIC_BYTE} (not Confluent-framed Avro)`, schemaId: null } };
  }
  return { ok: true, schemaId: bytes.readUInt32BE(1) };
}

export function frame(schemaId: number, body: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt8(MAGIC_BYTE, 0);
  header.writeUInt32BE(schemaId, 1);
  return Buffer.concat([header, body]);
}

interface CompiledOptions {
  limits: DecodeLimits;
  /** false: any id the registry knows. */
  restricted: boolean;
  schemaIds: ReadonlySet<number>;
  subjects: readonly string[];
  /** Key of the allow-list, for the not-allowed cache. */
  allowKey: string;
}

interface SubjectState {
  ids: Set<number>;
  /** version → id, so a refresh fetches only versions it has not seen. */
  versions: Map<number, number>;
  lastStartedAt: number;
  /** The latest refresh; `startedSeq` null while it waits for its slot. */
  next: { startedSeq: number | null; done: Promise<void> } | null;
}

const fail = (code: DecodeErrorCode, message: string, schemaId: number | null, limit?: DecodeError['limit']): { ok: false; error: DecodeError } => ({
  ok: false,
  error: limit ? { code, message, schemaId, limit } : { code, message, schemaId },
});

export function createCodec(registry: RegistryClient, options: CodecOptions = {}): Codec {
  const now = options.now ?? Date.now;
  const baseLimits = compile(() => compileDecodeLimits(options.limits), 'codec limits');
  const maxCached = options.maxCachedSchemas ?? 1000;
  const unknownTtlMs = options.unknownSchemaTtlMs ?? 30_000;
  const refreshMs = options.subjectRefreshMs ?? 1000;

  const ids = new Map<string, Promise<number>>();
  const writers = createLruCache<number, avro.Type>({ maxEntries: maxCached });
  const inflight = new Map<number, Promise<avro.Type | null>>();
  const unknown = createLruCache<number, string>({ maxEntries: options.maxUnknownSchemas ?? 10_000, ttlMs: unknownTtlMs, now });
  const notAllowed = createLruCache<string, true>({ maxEntries: options.maxUnknownSchemas ?? 10_000, ttlMs: unknownTtlMs, now });
  const resolvers = createLruCache<string, avro.Resolver | Error>({ maxEntries: maxCached });
  const subjects = new Map<string, SubjectState>();
  /** Orders misses and refresh starts (see refreshSubject). */
  let seq = 0;
  const compiled = new WeakMap<DecodeOptions, CompiledOptions>();
  const defaults: CompiledOptions = { limits: baseLimits, restricted: false, schemaIds: new Set(), subjects: [], allowKey: '' };

  function compileOptions(o: DecodeOptions | undefined): CompiledOptions {
    if (!o) return defaults;
    let c = compiled.get(o);
    if (!c) {
      const { subjects: subs = [], schemaIds = [], ...limits } = o;
      const restricted = o.subjects !== undefined || o.schemaIds !== undefined;
      c = {
        limits: compile(() => compileDecodeLimits(limits, baseLimits), 'decode options'),
        restricted,
        schemaIds: new Set(schemaIds),
        subjects: [...new Set(subs)],
        allowKey: `${[...new Set(subs)].sort().join('\u0000')}\u0001${[...new Set(schemaIds)].sort((a, b) => a - b).join(',')}`,
      };
      compiled.set(o, c);
    }
    return c;
  }

  function schemaId(name: RecordName, subject: string): Promise<number> {
    const key = `${subject}\u0000${name}`;
    let id = ids.get(key);
    if (!id) {
      id = registry.register(subject, recordSchema(name).text);
      id.catch(() => ids.delete(key));
      ids.set(key, id);
    }
    return id;
  }

  /** The writer schema of `id`; null (remembered for a while) when the registry has none or it is not Avro; throws registry failures. */
  function writerType(id: number): Promise<avro.Type | null> {
    const hit = writers.get(id);
    if (hit) return Promise.resolve(hit);
    if (unknown.get(id) !== undefined) return Promise.resolve(null);
    let w = inflight.get(id);
    if (!w) {
      w = registry.getSchema(id).then(
        (text) => {
          let type: avro.Type;
          try {
            type = avro.Type.forSchema(JSON.parse(text) as avro.Schema);
          } catch (err) {
            unknown.set(id, `schema id ${id} is not a readable Avro schema: ${(err as Error).message}`);
            return null;
          }
          writers.set(id, type);
          return type;
        },
        (err: unknown) => {
          if (err instanceof SchemaNotFoundError) {
            unknown.set(id, `schema id ${id} is not in the registry`);
            return null;
          }
          throw err;
        },
      );
      const settled = w.finally(() => inflight.delete(id));
      settled.catch(() => {});
      inflight.set(id, w);
    }
    return w;
  }

  function subjectState(subject: string): SubjectState {
    let s = subjects.get(subject);
    if (!s) {
      s = { ids: new Set(), versions: new Map(), lastStartedAt: -Infinity, next: null };
      subjects.set(subject, s);
    }
    return s;
  }

  async function fetchVersions(subject: string, s: SubjectState): Promise<void> {
    const versions = await registry.subjectVersions(subject);
    const fresh = versions.filter((v) => !s.versions.has(v));
    const got = await Promise.all(fresh.map((v) => registry.subjectVersion(subject, v)));
    // Ids once seen stay allowed: records written with a since-deleted version are still this topic's.
    for (const g of got) {
      s.versions.set(g.version, g.id);
      s.ids.add(g.id);
      // The version's schema came with it: a record of this id then costs no request of its own.
      if (!writers.get(g.id)) {
        try {
          writers.set(g.id, avro.Type.forSchema(JSON.parse(g.schema) as avro.Schema));
        } catch {
          // Left to writerType, which remembers the id as unreadable.
        }
      }
    }
  }

  /**
   * Resolves once `subject`'s version list has been fetched by a request that
   * started after the miss numbered `observed` (events are numbered by `seq`,
   * not timed, so no clock granularity can reorder them): a producer
   * registers before it writes, so that list holds the record's version if
   * it has one. Single-flight, and at most one start per `refreshMs`.
   */
  function refreshSubject(subject: string, observed: number): Promise<void> {
    const s = subjectState(subject);
    const last = s.next;
    // Not started yet, or started after the miss: its answer covers the miss.
    if (last && (last.startedSeq === null || last.startedSeq > observed)) return last.done;
    const previous = last?.done.catch(() => {}) ?? Promise.resolve();
    const entry: { startedSeq: number | null; done: Promise<void> } = { startedSeq: null, done: Promise.resolve() };
    entry.done = previous.then(async () => {
      await sleep(s.lastStartedAt + refreshMs - now());
      s.lastStartedAt = now();
      entry.startedSeq = ++seq;
      await fetchVersions(subject, s);
    });
    s.next = entry;
    // A failed refresh is not joined by later misses: they schedule their own.
    entry.done.catch(() => {
      if (s.next === entry) s.next = null;
    });
    return entry.done;
  }

  const inSubjects = (o: CompiledOptions, id: number) => o.subjects.some((sub) => subjects.get(sub)?.ids.has(id));

  /** Whether the topic may carry `id`; asks the registry for subjects' version lists only, never about the id itself. */
  async function allowed(o: CompiledOptions, id: number): Promise<boolean> {
    if (!o.restricted) return true;
    if (o.schemaIds.has(id) || inSubjects(o, id)) return true;
    if (o.subjects.length === 0) return false;
    const key = `${o.allowKey}\u0002${id}`;
    if (notAllowed.get(key)) return false;
    const observed = ++seq;
    await Promise.all(o.subjects.map((sub) => refreshSubject(sub, observed)));
    if (inSubjects(o, id)) return true;
    notAllowed.set(key, true);
    return false;
  }

  /** Header, size and allow-list checks, then the writer schema: a DecodeError, or the id and its writer type. */
  async function prepare(bytes: Buffer | null, o: CompiledOptions): Promise<{ ok: false; error: DecodeError } | { ok: true; id: number; writer: avro.Type }> {
    const max = o.limits.maxRecordBytes;
    if (bytes && bytes.length > max) return fail('TOO_LARGE', `message has ${bytes.length} bytes; the limit is ${max}`, null, 'maxRecordBytes');
    const header = readHeader(bytes);
    if (!header.ok) return header;
    const id = header.schemaId;
    if (!(await allowed(o, id))) {
      const allowedIds = o.schemaIds.size > 0 ? `ids ${[...o.schemaIds].join(', ')}` : '';
      const what = o.subjects.length > 0 ? `a registered version of ${o.subjects.join(', ')}${allowedIds ? ` nor one of ${allowedIds}` : ''}` : `one of ${allowedIds || 'no allowed ids'}`;
      return fail('SCHEMA_NOT_ALLOWED', `schema id ${id} is not ${what}, so this topic may not carry it`, id);
    }
    const writer = await writerType(id);
    if (!writer) return fail('UNKNOWN_SCHEMA', unknown.get(id) ?? `schema id ${id} is not in the registry`, id);
    return { ok: true, id, writer };
  }

  function decodeBody<N extends RecordName>(name: N, id: number, writer: avro.Type, bytes: Buffer, limits: DecodeLimits): Decoded<RecordTypes[N]> {
    const reader = recordSchema(name).type;
    const rkey = `${id}\u0000${name}`;
    let resolver = resolvers.get(rkey);
    if (!resolver) {
      try {
        resolver = reader.createResolver(writer);
      } catch (err) {
        resolver = err as Error;
      }
      resolvers.set(rkey, resolver);
    }
    if (resolver instanceof Error) {
      return fail('SCHEMA_MISMATCH', `writer schema ${id} (${writer.name ?? 'anonymous'}) cannot be read as ${name}: ${resolver.message}`, id);
    }
    const body = bytes.subarray(HEADER_BYTES);
    const violation = guardAvroBody(writer, body, limits);
    if (violation) return fail(violation.code, `invalid Avro body for ${name} (schema ${id}): ${violation.message}`, id, violation.limit);
    try {
      const { value, offset } = reader.decode(body, 0, resolver);
      if (offset !== body.length) {
        const detail = offset < 0 ? 'body is truncated' : `${body.length - offset} trailing bytes after the record`;
        return fail('BAD_BODY', `invalid Avro body for ${name} (schema ${id}): ${detail}`, id);
      }
      return { ok: true, value: value as RecordTypes[N], schemaId: id };
    } catch (err) {
      return fail('BAD_BODY', `invalid Avro body for ${name} (schema ${id}): ${(err as Error).message}`, id);
    }
  }

  return {
    schemaId,
    async encode(name, subject, value) {
      const id = await schemaId(name, subject);
      return frame(id, recordSchema(name).type.toBuffer(value));
    },
    async decode(name, bytes, decodeOptions) {
      const o = compileOptions(decodeOptions);
      const p = await prepare(bytes, o);
      if (!p.ok) return p;
      return decodeBody(name, p.id, p.writer, bytes as Buffer, o.limits);
    },
    async decodeAny(names, bytes, decodeOptions) {
      const o = compileOptions(decodeOptions);
      const p = await prepare(bytes, o);
      if (!p.ok) return p;
      const match = names.find((n) => recordSchema(n).fullName === p.writer.name);
      if (!match) return fail('SCHEMA_MISMATCH', `writer schema ${p.id} is ${p.writer.name ?? 'anonymous'}, expected one of ${names.join(', ')}`, p.id);
      const d = decodeBody(match, p.id, p.writer, bytes as Buffer, o.limits);
      return d.ok ? { ...d, record: match } : d;
    },
  };
}

function compile<T>(fn: () => T, what: string): T {
  try {
    return fn();
  } catch (err) {
    throw new ConfigError(`${what}: ${(err as Error).message}`);
  }
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}
